use super::*;
use bson::{Bson, Document, doc};

fn g() -> Bson {
    Bson::Binary(bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes: vec![1; 32],
    })
}

/// A v1 insert payload holding `fields`, with `t` and `v` as given.
fn v1(t: Bson, v: Bson, extra: Document) -> Vec<u8> {
    let mut d = doc! {
        "d": g(), "s": g(), "c": g(), "p": g(),
        "u": bson::Binary { subtype: BinarySubtype::Uuid, bytes: vec![2; 16] },
        "t": t,
        "v": v,
        "e": g(),
    };
    d.extend(extra);
    let mut out = vec![INSERT_UPDATE_V1];
    out.extend_from_slice(RawDocumentBuf::from_document(&d).unwrap().as_bytes());
    out
}

fn value(len: usize) -> Bson {
    Bson::Binary(bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes: vec![3; len],
    })
}

fn parse_err(blob: &[u8]) -> Error {
    InsertUpdatePayloadV1::parse(blob).unwrap_err()
}

#[test]
fn v1_insert_payload_fields_are_checked() {
    let ok_blob = v1(Bson::Int32(2), value(40), Document::new());
    let ok = InsertUpdatePayloadV1::parse(&ok_blob).unwrap();
    assert_eq!(ok.bson_type(), 2);
    assert_eq!(ok.user_key_id(), [3; 16]);
    // A range v1 payload's edge token sets are carried, not read.
    let range = v1(Bson::Int32(2), value(40), doc! {"g": []});
    assert!(InsertUpdatePayloadV1::parse(&range).is_ok());
    assert!(matches!(
        parse_err(&v1(Bson::Int32(2), value(40), doc! {"g": 1})),
        Error::Payload(PayloadError::FieldType { field: "g", .. })
    ));
    // Duplicate, unknown and mistyped fields.
    assert!(matches!(
        parse_err(&v1(Bson::Int32(2), value(40), doc! {"k": 1i64})),
        Error::Payload(PayloadError::UnknownField { .. })
    ));
    assert!(matches!(
        parse_err(&v1(Bson::String("2".into()), value(40), Document::new())),
        Error::Payload(PayloadError::FieldType { field: "t", .. })
    ));
    assert_eq!(
        parse_err(&v1(Bson::Int32(256), value(40), Document::new())),
        Error::from(PayloadError::InvalidValueTypeField(256))
    );
    assert!(matches!(
        parse_err(&v1(Bson::Int32(2), Bson::Int32(1), Document::new())),
        Error::Payload(PayloadError::FieldType { field: "v", .. })
    ));
    // `v` shorter than the user key's UUID.
    assert_eq!(
        parse_err(&v1(Bson::Int32(2), value(15), Document::new())),
        Error::from(PayloadError::ShortValue)
    );
    // A duplicate field: appended by hand (a Document keeps keys unique).
    let mut dup = RawDocumentBuf::from_bytes(ok_blob[1..].to_vec()).unwrap();
    dup.append(
        "d",
        bson::Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![0; 32],
        },
    );
    let mut dup_blob = vec![INSERT_UPDATE_V1];
    dup_blob.extend_from_slice(dup.as_bytes());
    assert!(matches!(
        parse_err(&dup_blob),
        Error::Payload(PayloadError::DuplicateField { field: "d", .. })
    ));
    // A missing field.
    let mut no_e = RawDocumentBuf::new();
    for item in RawDocument::from_bytes(&ok_blob[1..]).unwrap() {
        let (k, v) = item.unwrap();
        if k != "e" {
            no_e.append_ref(k, v);
        }
    }
    let mut no_e_blob = vec![INSERT_UPDATE_V1];
    no_e_blob.extend_from_slice(no_e.as_bytes());
    assert_eq!(
        parse_err(&no_e_blob),
        Error::from(PayloadError::MissingField {
            what: IUP_V1,
            field: "e"
        })
    );
    // Another first byte, nothing, not BSON.
    let mut other = ok_blob.clone();
    other[0] = INSERT_UPDATE_V2;
    assert!(matches!(
        parse_err(&other),
        Error::Payload(PayloadError::WrongSubtype { .. })
    ));
    assert!(InsertUpdatePayloadV1::parse(&[]).is_err());
    assert!(InsertUpdatePayloadV1::parse(&[INSERT_UPDATE_V1, 1, 2]).is_err());
}
