//! Decoding markings: what analysis writes is read back exactly, and any
//! other shape is a typed refusal.

use super::*;
use bson::{Binary, doc};

/// The bytes of a marking whose body is `body`.
fn marking(body: &Document) -> Vec<u8> {
    let mut bytes = vec![0];
    body.to_writer(&mut bytes).unwrap();
    bytes
}

fn key() -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![7; 16],
    })
}

#[test]
fn a_marking_is_read_back() {
    let m = decode(&marking(&doc! {"a": 1, "ki": key(), "v": "secret"})).unwrap();
    assert!(matches!(m.algorithm, Algorithm::Deterministic));
    assert_eq!(m.key, KeyRef::Id(KeyId::from_bytes([7; 16])));
    assert_eq!(m.value, Bson::String("secret".into()));
    let m = decode(&marking(
        &doc! {"a": 2, "ka": "name", "v": {"nested": [1, 2]}},
    ))
    .unwrap();
    assert!(matches!(m.algorithm, Algorithm::Random));
    assert_eq!(m.key, KeyRef::AltName("name".into()));
    assert_eq!(m.value, Bson::Document(doc! {"nested": [1, 2]}));
}

#[test]
fn malformed_markings_are_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("subtype byte only", vec![0]),
        ("truncated", {
            let mut b = marking(&doc! {"a": 1, "ki": key(), "v": "x"});
            b.truncate(b.len() - 3);
            b
        }),
        (
            "algorithm 3",
            marking(&doc! {"a": 3, "ki": key(), "v": "x"}),
        ),
        (
            "algorithm as a string",
            marking(&doc! {"a": "1", "ki": key(), "v": "x"}),
        ),
        ("no algorithm", marking(&doc! {"ki": key(), "v": "x"})),
        ("no key", marking(&doc! {"a": 1, "v": "x"})),
        (
            "both keys",
            marking(&doc! {"a": 1, "ki": key(), "ka": "n", "v": "x"}),
        ),
        (
            "key id not a UUID",
            marking(
                &doc! {"a": 1, "ki": Binary { subtype: BinarySubtype::Generic, bytes: vec![7; 16] }, "v": "x"},
            ),
        ),
        (
            "key id too short",
            marking(
                &doc! {"a": 1, "ki": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 15] }, "v": "x"},
            ),
        ),
        (
            "alt name not a string",
            marking(&doc! {"a": 1, "ka": 5, "v": "x"}),
        ),
        ("no value", marking(&doc! {"a": 1, "ki": key()})),
        (
            "unknown field",
            marking(&doc! {"a": 1, "ki": key(), "v": "x", "extra": 1}),
        ),
    ];
    for (name, bytes) in cases {
        assert!(
            matches!(decode(&bytes), Err(Error::MalformedMarking(_))),
            "{name}: {:?}",
            decode(&bytes).map(|m| m.value)
        );
    }
    // A repeated field, which a `Document` cannot hold: built by hand.
    let mut body = bson::RawDocumentBuf::new();
    body.append("a", 1);
    body.append("a", 2);
    body.append("ka", "n");
    body.append("v", "x");
    let mut bytes = vec![0];
    bytes.extend_from_slice(body.as_bytes());
    assert!(matches!(decode(&bytes), Err(Error::MalformedMarking(_))));
}
