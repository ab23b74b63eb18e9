use super::*;

/// An `_id` is added first when missing, the document is kept as it is
/// otherwise, and a top-level name given twice is refused.
#[test]
fn generated_ids_and_names_given_twice() {
    let with = RawDocumentBuf::from_document(&doc! {"a": 1, "_id": 7, "b": "x"}).unwrap();
    assert_eq!(raw_with_generated_id(with.clone()).unwrap(), with);
    let without = RawDocumentBuf::from_document(&doc! {"a": 1, "b": {"c": [1, 2]}}).unwrap();
    let added = raw_with_generated_id(without).unwrap();
    let keys: Vec<&str> = added.iter().map(|e| e.unwrap().0).collect();
    assert_eq!(keys, ["_id", "a", "b"]);
    assert!(matches!(
        added.get("_id").unwrap(),
        Some(bson::RawBsonRef::ObjectId(_))
    ));
    for twice in [["_id", "_id"], ["a", "a"]] {
        let mut d = RawDocumentBuf::new();
        d.append("_id", 1);
        for k in twice {
            d.append(k, 2);
        }
        assert!(
            matches!(
                raw_with_generated_id(d),
                Err(Error::Client(ClientError::InvalidArgument { .. }))
            ),
            "{twice:?}"
        );
    }
}
