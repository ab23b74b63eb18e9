//! The `encryptedFields` parser: a hostile table (every refusal typed and
//! naming where), a legitimate table, the mapping to explicit encryption
//! (run through it), libmongocrypt's vendored `efc/`, `qe_keyAltName/` and
//! payload vectors (the `encryptionInformation` it sends, byte for byte),
//! and, ignored without the data, the specification's documents.

use super::*;
use crate::qe::QeRandom;
use crate::qe::aead::QeDataKey;
use crate::qe::explicit::{QeKeys, encrypt_range_expression, encrypt_value};
use crate::qe::payload::QeKey;
use bson::{Binary, Decimal128, RawBson, rawdoc};
use std::path::{Path, PathBuf};

// The reader of the vendored libmongocrypt files, shared with the
// integration tests (one module for the crate: `crate::qe::test_vectors`).
use crate::qe::test_vectors as qe_vectors;

fn uuid(b: u8) -> Binary {
    Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![b; 16],
    }
}

fn id(b: u8) -> [u8; 16] {
    [b; 16]
}

/// The 16 bytes of a UUID binary.
fn uuid_bytes(b: &Binary) -> [u8; 16] {
    assert_eq!(b.subtype, BinarySubtype::Uuid);
    b.bytes.as_slice().try_into().expect("16 bytes")
}

fn dec(s: &str) -> Decimal128 {
    s.parse().expect("a Decimal128 literal")
}

/// `{fields: [{path: "f", keyId, bsonType, queries}]}`.
fn one(bson_type: &str, queries: RawDocumentBuf) -> RawDocumentBuf {
    rawdoc! {
        "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": bson_type, "queries": queries }],
    }
}

/// A range index on `f` of `bson_type` with `options` after `queryType`.
fn range(bson_type: &str, options: RawDocumentBuf) -> RawDocumentBuf {
    let mut queries = rawdoc! { "queryType": "range" };
    for item in &options {
        let (key, value) = item.expect("valid test document");
        queries.append_ref(key, value);
    }
    one(bson_type, queries)
}

/// Parses in a mode, expecting a refusal matching the pattern.
macro_rules! refuse_in {
    ($mode:expr, $doc:expr, $pattern:pat $(if $guard:expr)?) => {{
        let doc: RawDocumentBuf = $doc;
        match EncryptedFields::parse(&doc, $mode) {
            Err(e) => {
                assert!(
                    matches!(e, $pattern $(if $guard)?),
                    "expected {}, got {e:?}",
                    stringify!($pattern)
                );
                // Every refusal prints.
                assert!(e.to_string().len() > 10, "{e}");
            }
            Ok(parsed) => panic!("expected {}, parsed {parsed:?}", stringify!($pattern)),
        }
    }};
}

/// Parses an `encryptedFieldsMap` entry, expecting a refusal matching the
/// pattern.
macro_rules! refuse {
    ($doc:expr, $pattern:pat $(if $guard:expr)?) => {
        refuse_in!(ParseMode::Map, $doc, $pattern $(if $guard)?)
    };
}

fn parsed(doc: &RawDocumentBuf) -> EncryptedFields {
    EncryptedFields::parse(doc, ParseMode::Map).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn hostile_documents_are_refused_with_their_variant() {
    let eq = || rawdoc! { "queryType": "equality" };
    let field =
        |path: &str, key: u8| rawdoc! { "path": path, "keyId": uuid(key), "bsonType": "string" };

    // The document.
    refuse!(
        rawdoc! { "fields": [], "extra": 1 },
        E::UnknownKey { ref at, ref key } if at == "encryptedFields" && key == "extra"
    );
    refuse!(
        rawdoc! { "fields": [], "fields": [] },
        E::DuplicateKey { ref key, .. } if key == "fields"
    );
    refuse!(rawdoc! {}, E::MissingKey { key: "fields", .. });
    refuse!(rawdoc! { "fields": {} }, E::WrongType { key: "fields", .. });
    refuse!(rawdoc! { "fields": [1] }, E::FieldNotDocument { index: 0 });
    refuse!(
        rawdoc! { "escCollection": 1, "fields": [] },
        E::WrongType {
            key: "escCollection",
            ..
        }
    );
    refuse!(
        rawdoc! { "ecocCollection": "", "fields": [] },
        E::InvalidStateCollection {
            key: "ecocCollection",
            ..
        }
    );
    refuse!(
        rawdoc! { "escCollection": "a\0b.esc", "fields": [] },
        E::InvalidStateCollection {
            key: "escCollection",
            ..
        }
    );
    refuse!(
        rawdoc! { "fields": [], "strEncodeVersion": 2 },
        E::UnsupportedStrEncodeVersion { version: 2 }
    );
    refuse!(
        rawdoc! { "fields": [], "strEncodeVersion": 1i64 },
        E::WrongType {
            key: "strEncodeVersion",
            ..
        }
    );

    // A field's keys and path; the field is named even when the unknown
    // key comes before its path.
    refuse!(
        rawdoc! { "fields": [{ "extraField": 1, "path": "f", "keyId": uuid(1), "bsonType": "string" }] },
        E::UnknownKey { ref at, ref key } if at == "field 'f'" && key == "extraField"
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "path": "g", "keyId": uuid(1), "bsonType": "string" }] },
        E::DuplicateKey { ref key, .. } if key == "path"
    );
    refuse!(
        rawdoc! { "fields": [{ "keyId": uuid(1), "bsonType": "string" }] },
        E::MissingKey { ref at, key: "path" } if at == "fields.0"
    );
    refuse!(
        rawdoc! { "fields": [{ "path": 1, "keyId": uuid(1), "bsonType": "string" }] },
        E::WrongType { key: "path", .. }
    );
    for bad in ["", "a..b", "a.", ".a", "a.$b", "$a", "_id", "_id.x", "a\0b"] {
        refuse!(
            rawdoc! { "fields": [field(bad, 1)] },
            E::InvalidPath { ref path, .. } if path == bad
        );
    }
    let deep = vec!["a"; MAX_PATH_SEGMENTS + 1].join(".");
    refuse!(
        rawdoc! { "fields": [field(&deep, 1)] },
        E::InvalidPath { .. }
    );
    refuse!(
        rawdoc! { "fields": [field("a.b", 1), field("a.b", 2)] },
        E::DuplicatePath { ref path } if path == "a.b"
    );
    refuse!(
        rawdoc! { "fields": [field("a", 1), field("a.b", 2)] },
        E::OverlappingPaths { ref path, ref prefix } if path == "a.b" && prefix == "a"
    );
    refuse!(
        rawdoc! { "fields": [field("a.b.c", 1), field("a", 2)] },
        E::OverlappingPaths { ref path, ref prefix } if path == "a.b.c" && prefix == "a"
    );

    // Keys.
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "bsonType": "string" }] },
        E::NoKey { ref field } if field == "f"
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "keyAltName": "k", "bsonType": "string" }] },
        E::KeyIdAndKeyAltName { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": Binary { subtype: BinarySubtype::Generic, bytes: vec![1; 16] }, "bsonType": "string" }] },
        E::KeyIdNotUuid { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": Binary { subtype: BinarySubtype::UuidOld, bytes: vec![1; 16] }, "bsonType": "string" }] },
        E::KeyIdNotUuid { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": Binary { subtype: BinarySubtype::Uuid, bytes: vec![1; 15] }, "bsonType": "string" }] },
        E::KeyIdNotUuid { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": "0101", "bsonType": "string" }] },
        E::WrongType { key: "keyId", .. }
    );
    for mode in [ParseMode::Map, ParseMode::Remote] {
        refuse_in!(
            mode,
            rawdoc! { "fields": [{ "path": "f", "keyId": null, "bsonType": "string" }] },
            E::KeyIdNullNotAllowed { .. }
        );
    }
    refuse_in!(
        ParseMode::Remote,
        rawdoc! { "fields": [{ "path": "f", "keyAltName": "k", "bsonType": "string" }] },
        E::KeyAltNameNotAllowed { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyAltName": "", "bsonType": "string" }] },
        E::EmptyKeyAltName { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyAltName": 1, "bsonType": "string" }] },
        E::WrongType {
            key: "keyAltName",
            ..
        }
    );
    refuse!(
        rawdoc! { "fields": [field("a", 1), field("b", 1)] },
        E::DuplicateKeyId { ref field, ref other } if field == "b" && other == "a"
    );
    refuse!(
        rawdoc! { "fields": [
            { "path": "a", "keyAltName": "k", "bsonType": "string" },
            { "path": "b", "keyAltName": "k", "bsonType": "string" },
        ] },
        E::DuplicateKeyAltName { ref name, .. } if name == "k"
    );

    // Types.
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1) }] },
        E::MissingKey {
            key: "bsonType",
            ..
        }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "int32" }] },
        E::UnknownBsonType { ref bson_type, .. } if bson_type == "int32"
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "String" }] },
        E::UnknownBsonType { .. }
    );
    for singleton in ["null", "minKey", "maxKey", "undefined"] {
        refuse!(
            rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": singleton }] },
            E::BsonTypeNotAllowed {
                index: "an unindexed field",
                ..
            }
        );
    }
    for ty in [
        "double",
        "decimal",
        "object",
        "array",
        "javascriptWithScope",
        "null",
    ] {
        refuse!(
            one(ty, eq()),
            E::BsonTypeNotAllowed {
                index: "an equality index",
                ..
            }
        );
    }
    for ty in ["string", "bool", "objectId", "timestamp", "binData"] {
        refuse!(
            range(ty, rawdoc! {}),
            E::BsonTypeNotAllowed {
                index: "a range index",
                ..
            }
        );
    }
    refuse!(
        one("int", rawdoc! { "queryType": "prefix" }),
        E::BsonTypeNotAllowed {
            index: "text search",
            ..
        }
    );

    // Queries.
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "string", "queries": "equality" }] },
        E::WrongType { key: "queries", .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "string", "queries": [1] }] },
        E::WrongType { key: "queries", .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "string", "queries": [] }] },
        E::QueryCount { count: 0, .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "string",
        "queries": [{ "queryType": "equality" }, { "queryType": "equality" }] }] },
        E::QueryCount { count: 2, .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "string",
        "queries": [{ "queryType": "equality" }, { "queryType": "prefix" }] }] },
        E::QueryCount { count: 2, .. }
    );
    for unknown in ["foo", "Equality", "RANGE", "prefixpreview", ""] {
        refuse!(
            one("string", rawdoc! { "queryType": unknown }),
            E::UnknownQueryType { ref query_type, .. } if query_type == unknown
        );
    }
    refuse!(
        one("string", rawdoc! { "contention": 0i64 }),
        E::MissingKey {
            key: "queryType",
            ..
        }
    );
    refuse!(
        one("string", rawdoc! { "queryType": 1 }),
        E::WrongType {
            key: "queryType",
            ..
        }
    );
    refuse!(
        one("int", rawdoc! { "queryType": "rangePreview", "sparsity": 1i64 }),
        E::RangePreviewRemoved { ref field } if field == "f"
    );
    refuse!(
        one("string", rawdoc! { "queryType": "equality", "bogus": 1 }),
        E::UnknownKey { ref at, ref key } if at == "field 'f' queries" && key == "bogus"
    );
    refuse!(
        one(
            "string",
            rawdoc! { "queryType": "equality", "queryType": "equality" }
        ),
        E::DuplicateKey { .. }
    );
    refuse!(
        one(
            "string",
            rawdoc! { "queryType": "equality", "contention": -1i64 }
        ),
        E::ContentionOutOfRange { contention: -1, .. }
    );
    refuse!(
        one(
            "string",
            rawdoc! { "queryType": "equality", "contention": i64::MAX }
        ),
        E::ContentionOutOfRange {
            contention: i64::MAX,
            ..
        }
    );
    refuse!(
        one(
            "string",
            rawdoc! { "queryType": "equality", "contention": 8.0 }
        ),
        E::WrongType {
            key: "contention",
            ..
        }
    );
    for (key, value) in [
        ("sparsity", RawBson::Int64(2)),
        ("min", RawBson::Int32(0)),
        ("max", RawBson::Int32(9)),
        ("trimFactor", RawBson::Int32(1)),
        ("precision", RawBson::Int32(1)),
        ("strMaxLength", RawBson::Int32(10)),
        ("caseSensitive", RawBson::Boolean(true)),
    ] {
        let mut q = eq();
        q.append(key, value);
        refuse!(
            one("int", q),
            E::QueryKeyNotAllowed { key: k, query_type: "equality", .. } if k == key
        );
    }
    refuse!(
        range("int", rawdoc! { "strMinQueryLength": 2 }),
        E::QueryKeyNotAllowed {
            key: "strMinQueryLength",
            query_type: "range",
            ..
        }
    );
    refuse!(
        one("string", rawdoc! { "queryType": "prefix", "min": 1 }),
        E::QueryKeyNotAllowed {
            key: "min",
            query_type: "prefix",
            ..
        }
    );
    refuse!(
        one(
            "string",
            rawdoc! { "queryType": "substring", "strMaxLength": "10" }
        ),
        E::WrongType {
            key: "strMaxLength",
            ..
        }
    );
    refuse!(
        one(
            "string",
            rawdoc! { "queryType": "suffix", "caseSensitive": 1 }
        ),
        E::WrongType {
            key: "caseSensitive",
            ..
        }
    );

    // Range options.
    for sparsity in [0i64, 5, -1, i64::MAX] {
        refuse!(
            range("int", rawdoc! { "sparsity": sparsity }),
            E::SparsityOutOfRange { sparsity: s, .. } if s == sparsity
        );
    }
    refuse!(
        range("int", rawdoc! { "sparsity": 2.0 }),
        E::WrongType {
            key: "sparsity",
            ..
        }
    );
    // min 0, max 200: 8 bits.
    for trim_factor in [-1i64, 8, 9, i64::from(i32::MAX) + 1] {
        refuse!(
            range("int", rawdoc! { "min": 0, "max": 200, "trimFactor": trim_factor }),
            E::TrimFactorOutOfRange { trim_factor: t, bits: 8, .. } if t == trim_factor
        );
    }
    refuse!(
        range("int", rawdoc! { "trimFactor": 32 }),
        E::TrimFactorOutOfRange { bits: 32, .. }
    );
    refuse!(
        range("long", rawdoc! { "trimFactor": 64 }),
        E::TrimFactorOutOfRange { bits: 64, .. }
    );
    refuse!(
        range("decimal", rawdoc! { "trimFactor": 128 }),
        E::TrimFactorOutOfRange { bits: 128, .. }
    );
    refuse!(
        range("int", rawdoc! { "min": 0, "max": 200, "precision": 2 }),
        E::PrecisionNotAllowed {
            bson_type: "int",
            ..
        }
    );
    refuse!(
        range("date", rawdoc! { "precision": 0 }),
        E::PrecisionNotAllowed {
            bson_type: "date",
            ..
        }
    );
    refuse!(
        range(
            "double",
            rawdoc! { "min": 0.0, "max": 1.0, "precision": -1 }
        ),
        E::PrecisionOutOfRange { precision: -1, .. }
    );
    refuse!(
        range("int", rawdoc! { "min": 0i64, "max": 200 }),
        E::BoundTypeMismatch {
            bound: "min",
            bound_type: "long",
            bson_type: "int",
            ..
        }
    );
    refuse!(
        range("long", rawdoc! { "min": 0i64, "max": 200 }),
        E::BoundTypeMismatch {
            bound: "max",
            bound_type: "int",
            bson_type: "long",
            ..
        }
    );
    refuse!(
        range("double", rawdoc! { "min": 0, "max": 1.0, "precision": 1 }),
        E::BoundTypeMismatch { bound: "min", .. }
    );
    refuse!(
        range(
            "date",
            rawdoc! { "min": "2020", "max": bson::DateTime::from_millis(1) }
        ),
        E::BoundTypeMismatch {
            bound: "min",
            bound_type: "string",
            ..
        }
    );
    refuse!(
        range("int", rawdoc! { "min": 0 }),
        E::BoundsIncomplete { .. }
    );
    refuse!(
        range("date", rawdoc! { "max": bson::DateTime::from_millis(1) }),
        E::BoundsIncomplete { .. }
    );
    refuse!(
        range("int", rawdoc! { "min": 200, "max": 0 }),
        E::MinNotBelowMax { .. }
    );
    refuse!(
        range("int", rawdoc! { "min": 5, "max": 5 }),
        E::MinNotBelowMax { .. }
    );
    refuse!(
        range("long", rawdoc! { "min": 1i64, "max": -1i64 }),
        E::MinNotBelowMax { .. }
    );
    refuse!(
        range(
            "date",
            rawdoc! { "min": bson::DateTime::from_millis(9), "max": bson::DateTime::from_millis(1) }
        ),
        E::MinNotBelowMax { .. }
    );
    refuse!(
        range("double", rawdoc! { "min": 0.0, "max": 1.0 }),
        E::BoundsIncomplete { .. }
    );
    refuse!(
        range("double", rawdoc! { "precision": 2 }),
        E::BoundsIncomplete { .. }
    );
    refuse!(
        range("double", rawdoc! { "min": 0.0, "precision": 2 }),
        E::BoundsIncomplete { .. }
    );
    refuse!(
        range(
            "double",
            rawdoc! { "min": f64::NAN, "max": 1.0, "precision": 2 }
        ),
        E::BoundNotFinite { bound: "min", .. }
    );
    refuse!(
        range(
            "double",
            rawdoc! { "min": 0.0, "max": f64::INFINITY, "precision": 2 }
        ),
        E::BoundNotFinite { bound: "max", .. }
    );
    refuse!(
        range("double", rawdoc! { "min": 2.0, "max": 1.0, "precision": 2 }),
        E::MinNotBelowMax { .. }
    );
    refuse!(
        range(
            "double",
            rawdoc! { "min": 0.0, "max": 1.234, "precision": 2 }
        ),
        E::Range {
            source: RangeError::PrecisionMaxFraction { .. },
            ..
        }
    );
    refuse!(
        range(
            "double",
            rawdoc! { "min": 0.0, "max": 1e15, "precision": 3 }
        ),
        E::Range {
            source: RangeError::PrecisionMaxTooLarge { .. },
            ..
        }
    );
    refuse!(
        range("decimal", rawdoc! { "min": dec("0"), "max": dec("1") }),
        E::BoundsIncomplete { .. }
    );
    refuse!(
        range("decimal", rawdoc! { "precision": 2 }),
        E::BoundsIncomplete { .. }
    );
}

#[test]
fn malformed_bson_is_refused_and_nothing_panics() {
    let doc = rawdoc! {
        "escCollection": "enxcol_.c.esc",
        "fields": [
            { "path": "a.b", "keyId": uuid(1), "bsonType": "string",
              "queries": { "queryType": "equality", "contention": 4i64 } },
            { "path": "r", "keyAltName": "k", "bsonType": "double",
              "queries": [{ "queryType": "range", "min": 0.0, "max": 200.0, "precision": 2,
                            "sparsity": 1, "trimFactor": 3 }] },
        ],
    };
    let good = parsed(&doc);
    assert_eq!(good.fields().len(), 2);
    // The first element's type byte made unknown: the header still reads,
    // the walk does not.
    let mut bytes = doc.as_bytes().to_vec();
    bytes[4] = 0x42;
    let bad = RawDocument::from_bytes(&bytes).expect("header intact");
    assert_eq!(
        EncryptedFields::parse(bad, ParseMode::Map),
        Err(E::InvalidBson {
            at: "encryptedFields".into()
        })
    );
    // Every byte changed, every prefix: an answer, never a panic.
    let original = doc.as_bytes();
    for i in 0..original.len() {
        for v in [
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x08, 0x0a, 0x10, 0x12, 0x7f, 0xff,
        ] {
            let mut b = original.to_vec();
            b[i] = v;
            if let Ok(d) = RawDocument::from_bytes(&b) {
                let _ = EncryptedFields::parse(d, ParseMode::Create);
            }
        }
        if let Ok(d) = RawDocument::from_bytes(&original[..i]) {
            let _ = EncryptedFields::parse(d, ParseMode::Create);
        }
    }
}

#[test]
fn legitimate_documents_parse_with_defaults() {
    // No fields: the defaults appended, after what was given.
    let empty = parsed(&rawdoc! { "fields": [] });
    assert!(empty.fields().is_empty());
    assert_eq!(
        empty.to_document("c").unwrap(),
        rawdoc! { "fields": [], "escCollection": "enxcol_.c.esc", "ecocCollection": "enxcol_.c.ecoc" }
    );
    assert_eq!(empty.esc_collection(), None);
    assert_eq!(empty.ecoc_collection_name("c"), "enxcol_.c.ecoc");

    // Given names are kept, not appended again.
    let named = parsed(&rawdoc! {
        "fields": [], "escCollection": "x.esc", "ecocCollection": "x.ecoc",
        "eccCollection": "x.ecc", "strEncodeVersion": 1,
    });
    assert_eq!(named.esc_collection_name("c"), "x.esc");
    assert_eq!(
        named.to_document("c").unwrap(),
        rawdoc! { "fields": [], "escCollection": "x.esc", "ecocCollection": "x.ecoc",
        "eccCollection": "x.ecc", "strEncodeVersion": 1 }
    );

    // Equality: contention 8 by default, else as given (int32 or int64),
    // one query or an array of one.
    let eq = |queries: RawBson| {
        parsed(
            &rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "string", "queries": queries }] },
        )
    };
    for (queries, contention) in [
        (RawBson::Document(rawdoc! { "queryType": "equality" }), 8),
        (
            RawBson::Document(rawdoc! { "queryType": "equality", "contention": 0 }),
            0,
        ),
        (
            RawBson::Document(rawdoc! { "contention": 5i64, "queryType": "equality" }),
            5,
        ),
        (
            bson::rawbson!([{ "queryType": "equality", "contention": 2 }]),
            2,
        ),
    ] {
        let f = eq(queries);
        let field = f.field("f").unwrap();
        assert_eq!(field.queries(), &FieldQueries::Equality { contention });
        assert_eq!(field.contention(), Some(contention));
        assert_eq!(field.algorithm(), Ok(QeAlgorithm::Indexed));
    }
    for ty in [
        "string",
        "int",
        "long",
        "date",
        "objectId",
        "binData",
        "bool",
        "timestamp",
        "regex",
        "javascript",
        "symbol",
        "dbPointer",
    ] {
        parsed(&one(ty, rawdoc! { "queryType": "equality" }));
    }

    // Unindexed: every type but the singletons.
    for ty in [
        "double",
        "string",
        "object",
        "array",
        "binData",
        "objectId",
        "bool",
        "date",
        "regex",
        "dbPointer",
        "javascript",
        "symbol",
        "javascriptWithScope",
        "int",
        "timestamp",
        "long",
        "decimal",
    ] {
        let f = parsed(&rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": ty }] });
        assert_eq!(f.fields()[0].queries(), &FieldQueries::Unindexed);
        assert_eq!(f.fields()[0].bson_type(), type_from_alias(ty).unwrap());
        assert_eq!(f.fields()[0].contention(), None);
    }

    // Paths that share a beginning but not a segment; dotted paths.
    let paths = parsed(&rawdoc! { "fields": [
        { "path": "a", "keyId": uuid(1), "bsonType": "string" },
        { "path": "ab", "keyId": uuid(2), "bsonType": "string" },
        { "path": "b.c.d", "keyId": uuid(3), "bsonType": "string" },
        { "path": "b.cd", "keyId": uuid(4), "bsonType": "string" },
    ] });
    assert_eq!(paths.fields().len(), 4);
    assert_eq!(paths.field("b.c.d").unwrap().key_id(), Some(id(3)));
    assert!(paths.field("b.c").is_none());

    // Range: defaults and bounds.
    let options = |doc: RawDocumentBuf| match parsed(&doc).fields()[0].queries() {
        FieldQueries::Range(r) => (r.contention(), r.options().clone()),
        other => panic!("not a range index: {other:?}"),
    };
    let (contention, o) = options(range("int", rawdoc! {}));
    assert_eq!(contention, DEFAULT_CONTENTION);
    assert_eq!(
        o,
        RangeOptions::default()
            .with_min(i32::MIN)
            .with_max(i32::MAX)
            .with_sparsity(2)
    );
    let (_, o) = options(range(
        "int",
        rawdoc! { "min": 0, "max": 200, "sparsity": 1i64, "trimFactor": 7, "contention": 0 },
    ));
    assert_eq!(
        o,
        RangeOptions::default()
            .with_min(0)
            .with_max(200)
            .with_sparsity(1)
            .with_trim_factor(7)
    );
    let (_, o) = options(range("int", rawdoc! { "trimFactor": 31i64, "sparsity": 4 }));
    assert_eq!(o.trim_factor, Some(31));
    assert_eq!(o.sparsity, Some(4));
    let (_, o) = options(range("long", rawdoc! {}));
    assert_eq!(
        (o.min, o.max),
        (Some(Bson::Int64(i64::MIN)), Some(Bson::Int64(i64::MAX)))
    );
    let (_, o) = options(range(
        "long",
        rawdoc! { "min": -5i64, "max": 5i64, "trimFactor": 0 },
    ));
    assert_eq!(
        (o.min, o.max, o.trim_factor),
        (Some(Bson::Int64(-5)), Some(Bson::Int64(5)), Some(0))
    );
    let (_, o) = options(range("date", rawdoc! {}));
    assert_eq!(
        (o.min, o.max),
        (
            Some(Bson::DateTime(bson::DateTime::MIN)),
            Some(Bson::DateTime(bson::DateTime::MAX))
        )
    );
    let (_, o) = options(range(
        "date",
        rawdoc! { "min": bson::DateTime::from_millis(0), "max": bson::DateTime::from_millis(200) },
    ));
    assert_eq!(
        o.max,
        Some(Bson::DateTime(bson::DateTime::from_millis(200)))
    );
    let (_, o) = options(range("double", rawdoc! { "trimFactor": 63 }));
    assert_eq!(
        (o.min, o.max, o.precision, o.trim_factor),
        (None, None, None, Some(63))
    );
    let (_, o) = options(range(
        "double",
        rawdoc! { "min": 0.0, "max": 200.0, "precision": 2, "trimFactor": 14 },
    ));
    assert_eq!(
        (o.min, o.max, o.precision),
        (Some(Bson::Double(0.0)), Some(Bson::Double(200.0)), Some(2))
    );
    let (_, o) = options(range("decimal", rawdoc! { "trimFactor": 127 }));
    assert_eq!((o.min, o.max, o.precision), (None, None, None));

    // Supported-but-not-by-csfle query types parse, and are named.
    let decimal = parsed(&range(
        "decimal",
        rawdoc! { "min": dec("0"), "max": dec("200"), "precision": 2 },
    ));
    assert_eq!(
        decimal.unsupported_field(),
        Some(&Unsupported {
            field: "f".into(),
            query_type: UnsupportedQuery::Decimal128RangePrecision
        })
    );
    for (queries, expected) in [
        (
            bson::rawbson!([
                { "queryType": "prefix", "strMinQueryLength": 2, "strMaxQueryLength": 10i64,
                  "contention": 0, "caseSensitive": true, "diacriticSensitive": false },
                { "queryType": "suffix", "strMinQueryLength": 2, "strMaxQueryLength": 10 },
            ]),
            UnsupportedQuery::Prefix,
        ),
        (
            bson::rawbson!([{ "queryType": "substringPreview", "strMaxLength": 10i64 }]),
            UnsupportedQuery::SubstringPreview,
        ),
        (
            bson::rawbson!([{ "queryType": "suffixPreview" }]),
            UnsupportedQuery::SuffixPreview,
        ),
        (
            bson::rawbson!([{ "queryType": "prefixPreview" }]),
            UnsupportedQuery::PrefixPreview,
        ),
        (
            bson::rawbson!([{ "queryType": "substring" }]),
            UnsupportedQuery::Substring,
        ),
        (
            bson::rawbson!([{ "queryType": "suffix" }]),
            UnsupportedQuery::Suffix,
        ),
    ] {
        let f = parsed(&rawdoc! { "fields": [
            { "path": "plain", "keyId": uuid(1), "bsonType": "string" },
            { "path": "text", "keyId": uuid(2), "bsonType": "string", "queries": queries },
        ] });
        let unsupported = f.unsupported_field().expect("marked");
        assert_eq!(
            (unsupported.field.as_str(), unsupported.query_type),
            ("text", expected)
        );
        let refusal = E::Unsupported {
            field: "text".into(),
            query_type: expected,
        };
        assert_eq!(f.check_supported(), Err(refusal.clone()));
        assert_eq!(f.to_document("c"), Err(refusal.clone()));
        assert_eq!(f.to_create_document(), Err(refusal.clone()));
        let text = f.field("text").unwrap();
        assert_eq!(text.algorithm(), Err(refusal.clone()));
        assert_eq!(text.insert_options(), Err(refusal));
        assert!(text.algorithm().unwrap_err().to_string().contains("'text'"));
        // The other field is still usable on its own terms.
        assert_eq!(
            f.field("plain").unwrap().algorithm(),
            Ok(QeAlgorithm::Unindexed)
        );
        assert!(
            f.check_supported()
                .unwrap_err()
                .to_string()
                .contains("'text'")
        );
    }
    assert_eq!(empty.check_supported(), Ok(()));
}

#[test]
fn fields_map_to_explicit_encryption_and_run() {
    let doc = rawdoc! { "fields": [
        { "path": "u", "keyId": uuid(1), "bsonType": "string" },
        { "path": "e", "keyId": uuid(2), "bsonType": "string", "queries": { "queryType": "equality", "contention": 3 } },
        { "path": "r", "keyId": uuid(3), "bsonType": "int", "queries": { "queryType": "range", "min": 0, "max": 200, "sparsity": 1 } },
        { "path": "ri", "keyId": uuid(4), "bsonType": "int", "queries": { "queryType": "range" } },
        { "path": "rd", "keyId": uuid(5), "bsonType": "date", "queries": { "queryType": "range", "contention": 0 } },
        { "path": "rl", "keyId": uuid(6), "bsonType": "long", "queries": { "queryType": "range", "contention": 0 } },
        { "path": "rp", "keyId": uuid(7), "bsonType": "double", "queries": { "queryType": "range", "min": 0.0, "max": 200.0, "precision": 2 } },
        { "path": "rf", "keyId": uuid(8), "bsonType": "double", "queries": { "queryType": "range" } },
        { "path": "rx", "keyId": uuid(9), "bsonType": "decimal", "queries": { "queryType": "range", "contention": 1 } },
    ] };
    let f = parsed(&doc);
    let key = QeDataKey::new(&[7u8; 96]).unwrap();
    let keys = QeKeys {
        user: QeKey {
            id: [1; 16],
            key: &key,
        },
        index: None,
    };

    let u = f.field("u").unwrap();
    let o = u.insert_options().unwrap();
    assert_eq!(
        (o.algorithm, o.contention_factor, o.query_type),
        (QeAlgorithm::Unindexed, None, None)
    );
    assert!(o.range_options.is_none());
    assert_eq!(
        u.query_options(),
        Err(E::NotQueryable { field: "u".into() })
    );

    let e = f.field("e").unwrap();
    let o = e.insert_options().unwrap();
    assert_eq!(
        (o.algorithm, o.contention_factor, o.query_type),
        (QeAlgorithm::Indexed, Some(3), None)
    );
    let q = e.query_options().unwrap();
    assert_eq!(q.query_type, Some(QueryType::Equality));

    let values: [(&str, RawBson); 7] = [
        ("r", RawBson::Int32(42)),
        ("ri", RawBson::Int32(-7)),
        (
            "rd",
            RawBson::DateTime(bson::DateTime::from_millis(1_700_000_000_000)),
        ),
        ("rl", RawBson::Int64(1 << 40)),
        ("rp", RawBson::Double(12.25)),
        ("rf", RawBson::Double(-0.5)),
        ("rx", RawBson::Decimal128(dec("1.5"))),
    ];
    for (path, value) in values {
        let field = f.field(path).unwrap();
        let o = field.insert_options().unwrap();
        assert_eq!(o.algorithm, QeAlgorithm::Range, "{path}");
        assert!(o.range_options.is_some(), "{path}");
        o.validate().unwrap_or_else(|e| panic!("{path}: {e}"));
        // Explicit encryption takes the options as they are. All-ones bytes:
        // a zero draw is below `2^64 mod (contention + 1)` and would be
        // rejected for ever by the contention factor's rejection sampling.
        let mut rng = QeRandom::fixed(vec![0xff; 1 << 16]);
        encrypt_value(value.as_raw_bson_ref(), keys, &o, &mut rng)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let q = field.query_options().unwrap();
        assert_eq!(q.query_type, Some(QueryType::Range));
        let mut expression = RawDocumentBuf::new();
        let mut bound = RawDocumentBuf::new();
        bound.append("$gte", value.clone());
        let mut element = RawDocumentBuf::new();
        element.append(path, bound);
        let mut and = RawArrayBuf::new();
        and.push(element);
        expression.append("$and", and);
        encrypt_range_expression(&expression, keys, &q, 0)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

#[test]
fn key_alt_names_and_created_keys_resolve() {
    let doc = rawdoc! { "fields": [
        { "path": "a", "bsonType": "string", "keyAltName": "ka" },
        { "keyId": null, "path": "b", "bsonType": "string" },
        { "path": "c", "keyId": uuid(3), "bsonType": "string" },
    ] };
    refuse!(doc.clone(), E::KeyIdNullNotAllowed { .. });
    let mut f = EncryptedFields::parse(&doc, ParseMode::Create).unwrap();
    assert_eq!(f.mode(), ParseMode::Create);
    assert_eq!(f.key_alt_names(), vec!["ka"]);
    assert!(!f.is_resolved());
    assert_eq!(
        f.to_document("c"),
        Err(E::KeyNotResolved { field: "a".into() })
    );
    assert_eq!(f.field("b").unwrap().key(), &KeyIdOrAltName::ToCreate);

    // All or nothing: a name not found changes nothing.
    let before = f.clone();
    let missing = f.resolve_keys(|field| match field.key() {
        KeyIdOrAltName::ToCreate => Some(id(2)),
        _ => None,
    });
    assert_eq!(missing, Err(E::KeyNotResolved { field: "a".into() }));
    assert_eq!(f, before);
    // Two fields on one key: refused, nothing changed.
    let twice = f.resolve_keys(|_| Some(id(3)));
    assert!(matches!(twice, Err(E::DuplicateKeyId { .. })), "{twice:?}");
    assert_eq!(f, before);

    f.resolve_keys(|field| match field.key() {
        KeyIdOrAltName::AltName(name) if name == "ka" => Some(id(1)),
        KeyIdOrAltName::ToCreate => Some(id(2)),
        _ => None,
    })
    .unwrap();
    assert!(f.is_resolved());
    assert_eq!(f.field("a").unwrap().key_id(), Some(id(1)));
    // keyAltName becomes a keyId at the end of its field; keyId: null is
    // replaced where it was.
    let expected_fields = || {
        bson::rawbson!([
            { "path": "a", "bsonType": "string", "keyId": uuid(1) },
            { "keyId": uuid(2), "path": "b", "bsonType": "string" },
            { "path": "c", "keyId": uuid(3), "bsonType": "string" },
        ])
    };
    assert_eq!(
        f.to_create_document().unwrap(),
        rawdoc! { "fields": expected_fields() }
    );
    assert_eq!(
        f.to_document("coll").unwrap(),
        rawdoc! { "fields": expected_fields(),
        "escCollection": "enxcol_.coll.esc", "ecocCollection": "enxcol_.coll.ecoc" }
    );
    // Resolving again asks nothing.
    f.resolve_keys(|field| panic!("asked again for {}", field.path()))
        .unwrap();
    assert_eq!(
        f.to_document(""),
        Err(E::InvalidCollectionName {
            collection: String::new()
        })
    );
    assert!(f.to_document("a\0b").is_err());
}

fn data(rel: &str) -> PathBuf {
    qe_vectors::data_dir().join(rel)
}

fn ejson(rel: &str) -> Document {
    let path = data(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    qe_vectors::ejson_document(&text)
}

fn raw(doc: &Document) -> RawDocumentBuf {
    RawDocumentBuf::from_document(doc).expect("a BSON document")
}

/// The value at `path` (keys, or indexes into arrays).
fn walk<'d>(doc: &'d Document, path: &[&str]) -> &'d Bson {
    let mut steps = path.iter();
    let first = steps.next().expect("a path");
    let mut v = doc.get(*first).unwrap_or_else(|| panic!("no '{first}'"));
    for step in steps {
        v = match v {
            Bson::Document(d) => d.get(*step).unwrap_or_else(|| panic!("no '{step}'")),
            Bson::Array(a) => a
                .get(step.parse::<usize>().expect("an index"))
                .unwrap_or_else(|| panic!("no element {step}")),
            other => panic!("'{step}' in a {:?}", other.element_type()),
        };
    }
    v
}

fn document<'d>(doc: &'d Document, path: &[&str]) -> &'d Document {
    walk(doc, path)
        .as_document()
        .unwrap_or_else(|| panic!("{path:?} is not a document"))
}

/// libmongocrypt's automatic-encryption vectors: each `encrypted-field-map`
/// entry, written back, is the `encryptionInformation.schema` entry
/// libmongocrypt sent, byte for byte.
#[test]
fn libmongocrypt_encryption_information_byte_for_byte() {
    const CASES: [&str; 13] = [
        "fle2-insert-v2",
        "fle2-find-range/date-v2",
        "fle2-find-range/decimal128-v2",
        "fle2-find-range/double-precision-v2",
        "fle2-find-range/double-v2",
        "fle2-find-range/int32-v2",
        "fle2-find-range/int64-v2",
        "fle2-insert-range/date-v2",
        "fle2-insert-range/decimal128-v2",
        "fle2-insert-range/double-precision-v2",
        "fle2-insert-range/double-v2",
        "fle2-insert-range/int32-v2",
        "fle2-insert-range/int64-v2",
    ];
    for dir in CASES {
        let map = ejson(&format!("{dir}/encrypted-field-map.json"));
        let f = EncryptedFields::from_document(document(&map, &["db.test"]), ParseMode::Map)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(f.check_supported(), Ok(()), "{dir}");
        let payload = ejson(&format!("{dir}/encrypted-payload.json"));
        let want = raw(document(
            &payload,
            &["encryptionInformation", "schema", "db.test"],
        ));
        let got = f.to_document("test").unwrap();
        assert_eq!(got.as_bytes(), want.as_bytes(), "{dir}");
        assert_eq!(f.esc_collection_name("test"), "fle2.test.esc", "{dir}");
    }

    // Decimal128 with a precision: parsed, marked, refused for use.
    for dir in [
        "fle2-find-range/decimal128-precision-v2",
        "fle2-insert-range/decimal128-precision-v2",
    ] {
        let map = ejson(&format!("{dir}/encrypted-field-map.json"));
        let f = EncryptedFields::from_document(document(&map, &["db.test"]), ParseMode::Map)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(
            f.check_supported(),
            Err(E::Unsupported {
                field: "encrypted".into(),
                query_type: UnsupportedQuery::Decimal128RangePrecision
            }),
            "{dir}"
        );
    }

    let map = ejson("fle2-insert-unindexed-v2/encrypted-field-map.json");
    let f = EncryptedFields::from_document(document(&map, &["db.test"]), ParseMode::Map).unwrap();
    assert_eq!(f.fields()[0].queries(), &FieldQueries::Unindexed);

    // libmongocrypt does not read bsonType; "int32" is no type alias.
    let map = ejson("fle2-find-equality-v2/encrypted-field-map.json");
    assert_eq!(
        EncryptedFields::from_document(document(&map, &["db.test"]), ParseMode::Map),
        Err(E::UnknownBsonType {
            field: "value".into(),
            bson_type: "int32".into()
        })
    );
}

/// libmongocrypt's `efc/` documents (its `mc_EncryptedFieldConfig_parse`
/// inputs): the same verdicts, except the two it accepts (an extra key,
/// two fields on one key id).
#[test]
fn libmongocrypt_efc_documents() {
    let parse = |name: &str| {
        let doc = ejson(&format!("efc/{name}.json"));
        (EncryptedFields::from_document(&doc, ParseMode::Map), doc)
    };
    for name in [
        "efc-oneField",
        "efc-oneField-goodVersionSet",
        "efc-twoFields",
    ] {
        let (f, doc) = parse(name);
        let f = f.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            f.field("firstName").unwrap().queries(),
            &FieldQueries::Equality { contention: 0 }
        );
        assert_eq!(
            f.field("firstName").unwrap().key_id(),
            Some(*b"\x12\x34\x56\x78\x12\x34\x98\x76\x12\x34\x12\x34\x56\x78\x90\x12")
        );
        // Both state collections given: written back unchanged.
        assert_eq!(
            f.to_document("basic").unwrap().as_bytes(),
            raw(&doc).as_bytes(),
            "{name}"
        );
    }
    assert_eq!(parse("efc-twoFields").0.unwrap().fields().len(), 2);

    assert_eq!(
        parse("efc-extraField").0,
        Err(E::UnknownKey {
            at: "field 'firstName'".into(),
            key: "extraField".into()
        })
    );
    assert_eq!(
        parse("efc-missingKeyId").0,
        Err(E::NoKey {
            field: "missingKeyId".into()
        })
    );
    assert_eq!(
        parse("efc-duplicateKeyAltName").0,
        Err(E::DuplicateKeyAltName {
            field: "lastName".into(),
            other: "firstName".into(),
            name: "myKeyAltName".into()
        })
    );
    for name in [
        "efc-oneField-badVersionSet",
        "efc-textSearchFields-badVersionSet",
    ] {
        assert_eq!(
            parse(name).0,
            Err(E::UnsupportedStrEncodeVersion { version: 99 }),
            "{name}"
        );
    }
    let text = parse("efc-textSearchFields-goodVersionSet").0.unwrap();
    assert_eq!(
        text.unsupported_field(),
        Some(&Unsupported {
            field: "firstName".into(),
            query_type: UnsupportedQuery::SubstringPreview
        })
    );
    assert_eq!(
        text.field("lastName").unwrap().queries(),
        &FieldQueries::Unsupported(UnsupportedQuery::Suffix)
    );
    // lastName and preferredName share a key id.
    assert_eq!(
        parse("efc-textSearchFields").0,
        Err(E::DuplicateKeyId {
            field: "preferredName".into(),
            other: "lastName".into()
        })
    );
}

/// libmongocrypt's `qe_keyAltName/` (`test-mongocrypt-ctx-encrypt.c`,
/// `_test_qe_keyAltName` and `_test_qe_keyAltName_create`): the
/// `keyAltName` resolved through the key document, and the documents
/// libmongocrypt sends, byte for byte.
#[test]
fn libmongocrypt_key_alt_name_vectors() {
    let key_doc = ejson("qe_keyAltName/key-document.json");
    let Some(Bson::Binary(key_id)) = key_doc.get("_id") else {
        panic!("no _id");
    };
    let key_id = uuid_bytes(key_id);
    let resolve = |f: &EncryptedField| match f.key() {
        KeyIdOrAltName::AltName(name) if name == "keyDocumentName" => Some(key_id),
        _ => None,
    };

    // The encryptedFieldsMap of _test_qe_keyAltName.
    let mut f = parsed(&rawdoc! {
        "fields": [{ "path": "secret", "bsonType": "string", "keyAltName": "keyDocumentName" }],
    });
    assert_eq!(f.key_alt_names(), vec!["keyDocumentName"]);
    f.resolve_keys(resolve).unwrap();
    let cmd = ejson("qe_keyAltName/cmd-to-mongocryptd.json");
    let want = raw(document(
        &cmd,
        &["encryptionInformation", "schema", "db.coll"],
    ));
    assert_eq!(f.to_document("coll").unwrap().as_bytes(), want.as_bytes());

    // A create command's encryptedFields.
    let create = ejson("qe_keyAltName/create/cmd.json");
    let input = document(&create, &["encryptedFields"]);
    assert!(matches!(
        EncryptedFields::from_document(input, ParseMode::Remote),
        Err(E::KeyAltNameNotAllowed { .. })
    ));
    let mut f = EncryptedFields::from_document(input, ParseMode::Create).unwrap();
    f.resolve_keys(resolve).unwrap();
    let to_mongod = ejson("qe_keyAltName/create/cmd-to-mongod.json");
    assert_eq!(
        f.to_create_document().unwrap().as_bytes(),
        raw(document(&to_mongod, &["encryptedFields"])).as_bytes()
    );
    let to_mongocryptd = ejson("qe_keyAltName/create/cmd-to-mongocryptd.json");
    assert_eq!(
        f.to_create_document().unwrap().as_bytes(),
        raw(document(&to_mongocryptd, &["encryptedFields"])).as_bytes()
    );
    assert_eq!(
        f.to_document("coll").unwrap().as_bytes(),
        raw(document(
            &to_mongocryptd,
            &["encryptionInformation", "schema", "db.coll"]
        ))
        .as_bytes()
    );
}

/// MongoDB's specifications (CC BY-NC-SA: read from `CSFLE_SPEC_DIR`,
/// default `../shared/spec-tests`, never copied here).
fn spec_dir() -> PathBuf {
    let dir = std::env::var_os("CSFLE_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec-tests"));
    assert!(
        dir.join("mongodb-specifications").is_dir(),
        "spec data not found at {}: set CSFLE_SPEC_DIR to the directory holding mongodb-specifications/",
        dir.display()
    );
    dir
}

const CSE: &str = "mongodb-specifications/source/client-side-encryption";

fn spec_json(rel: &str) -> Document {
    let path = spec_dir().join(CSE).join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    qe_vectors::ejson_document(&text)
}

/// `fle2v2-EncryptedFieldsMap-defaults`: `{fields: []}` is sent with the
/// default state collections (the unified format compares documents
/// without regard to key order; libmongocrypt appends them after
/// `fields`).
#[test]
#[ignore = "needs spec data: the specification's unified tests (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn spec_encrypted_fields_map_defaults() {
    let t = spec_json("tests/unified/fle2v2-EncryptedFieldsMap-defaults.json");
    let map = document(
        &t,
        &[
            "createEntities",
            "0",
            "client",
            "autoEncryptOpts",
            "encryptedFieldsMap",
            "default.default",
        ],
    );
    let f = EncryptedFields::from_document(map, ParseMode::Map).unwrap();
    let want = document(
        &t,
        &[
            "tests",
            "0",
            "expectEvents",
            "0",
            "events",
            "0",
            "commandStartedEvent",
            "command",
            "encryptionInformation",
            "schema",
            "default.default",
        ],
    );
    let got = f.to_document("default").unwrap().to_document().unwrap();
    // Document equality ignores key order.
    assert_eq!(&got, want);
    assert_eq!(
        f.to_document("default").unwrap(),
        rawdoc! { "fields": [], "escCollection": "enxcol_.default.esc", "ecocCollection": "enxcol_.default.ecoc" }
    );
}

/// `fle2v2-InsertFind-keyAltName`: the map's `keyAltName` resolved, the
/// insert's `encryptionInformation` and the create command's
/// `encryptedFields` as the test expects them.
#[test]
#[ignore = "needs spec data: the specification's unified tests (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn spec_key_alt_name() {
    let t = spec_json("tests/unified/fle2v2-InsertFind-keyAltName.json");
    let map = document(
        &t,
        &[
            "createEntities",
            "0",
            "client",
            "autoEncryptOpts",
            "encryptedFieldsMap",
            "default.default",
        ],
    );
    let create = document(
        &t,
        &[
            "tests",
            "1",
            "expectEvents",
            "0",
            "events",
            "6",
            "commandStartedEvent",
            "command",
            "encryptedFields",
        ],
    );
    let Bson::Binary(key_id) = walk(create, &["fields", "0", "keyId"]) else {
        panic!("no keyId");
    };
    let key_id = uuid_bytes(key_id);
    let mut f = EncryptedFields::from_document(map, ParseMode::Map).unwrap();
    assert_eq!(f.key_alt_names(), vec!["altname"]);
    f.resolve_keys(|_| Some(key_id)).unwrap();
    assert_eq!(
        &f.to_create_document().unwrap().to_document().unwrap(),
        create
    );
    let insert = document(
        &t,
        &[
            "tests",
            "0",
            "expectEvents",
            "0",
            "events",
            "1",
            "commandStartedEvent",
            "command",
            "encryptionInformation",
            "schema",
            "default.default",
        ],
    );
    assert_eq!(
        &f.to_document("default").unwrap().to_document().unwrap(),
        insert
    );
}

/// The specification's `etc/data` encryptedFields: the supported ones
/// parse; text search and Decimal128 with a precision are marked.
#[test]
#[ignore = "needs spec data: the specification's etc/data (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn spec_encrypted_fields_files() {
    let cases: [(&str, Option<UnsupportedQuery>); 15] = [
        ("encryptedFields.json", None),
        ("encryptedFields-c10.json", None),
        ("range-encryptedFields-Date.json", None),
        ("range-encryptedFields-DecimalNoPrecision.json", None),
        ("range-encryptedFields-DoubleNoPrecision.json", None),
        ("range-encryptedFields-DoublePrecision.json", None),
        ("range-encryptedFields-Int.json", None),
        ("range-encryptedFields-Long.json", None),
        (
            "range-encryptedFields-DecimalPrecision.json",
            Some(UnsupportedQuery::Decimal128RangePrecision),
        ),
        (
            "encryptedFields-prefix-suffix.json",
            Some(UnsupportedQuery::Prefix),
        ),
        (
            "encryptedFields-prefix-suffix-ci-di.json",
            Some(UnsupportedQuery::Prefix),
        ),
        (
            "encryptedFields-prefix-suffix-preview.json",
            Some(UnsupportedQuery::PrefixPreview),
        ),
        (
            "encryptedFields-substring.json",
            Some(UnsupportedQuery::Substring),
        ),
        (
            "encryptedFields-substring-ci-di.json",
            Some(UnsupportedQuery::Substring),
        ),
        (
            "encryptedFields-substring-preview.json",
            Some(UnsupportedQuery::SubstringPreview),
        ),
    ];
    for (name, unsupported) in cases {
        let doc = spec_json(&format!("etc/data/{name}"));
        let f = EncryptedFields::from_document(&doc, ParseMode::Create)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            f.unsupported_field().map(|u| u.query_type),
            unsupported,
            "{name}"
        );
    }
}

/// Every encryptedFields of the specification's QE tests (maps, create
/// options, the `encryptionInformation` drivers send) parses. Only those
/// documents are read as Extended JSON, the rest of each file as JSON.
#[test]
#[ignore = "needs spec data: the specification's legacy and unified tests (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn spec_tests_encrypted_fields_parse() {
    use serde_json::Value;
    fn collect(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("encryptedFields", Value::Object(_)) => out.push(v.clone()),
                        ("encryptedFieldsMap", Value::Object(m)) => {
                            out.extend(m.values().filter(|e| e.is_object()).cloned());
                        }
                        ("encryptionInformation", Value::Object(i)) => {
                            if let Some(Value::Object(schema)) = i.get("schema") {
                                out.extend(schema.values().filter(|e| e.is_object()).cloned());
                            }
                        }
                        _ => {}
                    }
                    collect(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
    let mut parsed_count = 0;
    for dir in ["tests/legacy", "tests/unified"] {
        let path = spec_dir().join(CSE).join(dir);
        for entry in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        {
            let file = entry.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if !(name.starts_with("fle2v2-") || name.starts_with("QE-")) || !name.ends_with(".json")
            {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut found = Vec::new();
            collect(&json, &mut found);
            for value in found {
                let doc = qe_vectors::ejson_document(&value.to_string());
                EncryptedFields::from_document(&doc, ParseMode::Map)
                    .unwrap_or_else(|e| panic!("{name}: {e}: {doc}"));
                parsed_count += 1;
            }
        }
    }
    assert!(parsed_count > 100, "only {parsed_count} documents found");
}

#[test]
fn a_server_cannot_list_fields_without_end() {
    let fields_doc = |n: usize| {
        let mut fields = RawArrayBuf::new();
        for i in 0..n {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            fields.push(rawdoc! {
                "path": format!("f{i}"),
                "bsonType": "string",
                "keyId": Binary { subtype: BinarySubtype::Uuid, bytes: key.to_vec() },
            });
        }
        rawdoc! { "fields": fields }
    };
    let at_most = EncryptedFields::parse(&fields_doc(MAX_FIELDS), ParseMode::Remote).unwrap();
    assert_eq!(at_most.fields().len(), MAX_FIELDS);
    assert_eq!(
        EncryptedFields::parse(&fields_doc(MAX_FIELDS + 1), ParseMode::Remote).unwrap_err(),
        EncryptedFieldsError::TooManyFields {
            count: MAX_FIELDS + 1,
            max: MAX_FIELDS
        }
    );
}

/// Branches the tables above do not reach: a `bsonType` of another BSON
/// type, range options written as other types, a precision beyond int32,
/// the default and bounded domains' bits, and the order of the checks
/// (within a field: keys, path, key, type, queries; within a range index:
/// type, sparsity, precision, bounds' types, Decimal128 precision, bounds,
/// trim factor), so that the first refusal is the one reported.
#[test]
fn every_check_is_reached_and_in_its_order() {
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": 1 }] },
        E::WrongType { ref at, key: "bsonType", .. } if at == "field 'f'"
    );
    refuse!(
        rawdoc! { "fields": [{ "path": 1, "extra": 1, "keyId": uuid(1), "bsonType": "string" }] },
        E::UnknownKey { ref at, ref key } if at == "fields.0" && key == "extra"
    );
    refuse!(
        range("int", rawdoc! { "trimFactor": "1" }),
        E::WrongType {
            key: "trimFactor",
            ..
        }
    );
    refuse!(
        range(
            "double",
            rawdoc! { "min": 0.0, "max": 1.0, "precision": 2.0 }
        ),
        E::WrongType {
            key: "precision",
            ..
        }
    );
    let above_int32 = i64::from(i32::MAX) + 1;
    refuse!(
        range(
            "double",
            rawdoc! { "min": 0.0, "max": 1.0, "precision": above_int32 }
        ),
        E::PrecisionOutOfRange { precision, .. } if precision == above_int32
    );
    refuse!(
        one(
            "string",
            rawdoc! { "queryType": "prefix", "strMaxQueryLength": true }
        ),
        E::WrongType {
            key: "strMaxQueryLength",
            ..
        }
    );
    refuse!(
        one(
            "string",
            rawdoc! { "queryType": "prefix", "diacriticSensitive": 1 }
        ),
        E::WrongType {
            key: "diacriticSensitive",
            ..
        }
    );
    // The largest contention factor taken.
    let f = parsed(&one(
        "string",
        rawdoc! { "queryType": "equality", "contention": i64::MAX - 1 },
    ));
    assert_eq!(f.fields()[0].contention(), Some(i64::MAX - 1));

    // Domains' bits: double and date without bounds 64; a date from 0 to
    // 200 ms 8; a double from 0 to 200 at precision 2 15 (20,100 values).
    for ty in ["double", "date"] {
        refuse!(
            range(ty, rawdoc! { "trimFactor": 64 }),
            E::TrimFactorOutOfRange { bits: 64, .. }
        );
        parsed(&range(ty, rawdoc! { "trimFactor": 63 }));
    }
    refuse!(
        range(
            "date",
            rawdoc! { "min": bson::DateTime::from_millis(0), "max": bson::DateTime::from_millis(200), "trimFactor": 8 }
        ),
        E::TrimFactorOutOfRange { bits: 8, .. }
    );
    refuse!(
        range(
            "double",
            rawdoc! { "min": 0.0, "max": 200.0, "precision": 2, "trimFactor": 15 }
        ),
        E::TrimFactorOutOfRange { bits: 15, .. }
    );

    // A field: path, then key, then type, then queries.
    refuse!(
        rawdoc! { "fields": [{ "path": "a..b", "bsonType": "int32" }] },
        E::InvalidPath { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "bsonType": "int32" }] },
        E::NoKey { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyAltName": "", "bsonType": "int32" }] },
        E::EmptyKeyAltName { .. }
    );
    refuse!(
        rawdoc! { "fields": [{ "path": "f", "keyId": uuid(1), "bsonType": "int32", "queries": "x" }] },
        E::UnknownBsonType { .. }
    );
    // A query's options before its type against the field's.
    refuse!(
        one("double", rawdoc! { "queryType": "equality", "sparsity": 1 }),
        E::QueryKeyNotAllowed {
            key: "sparsity",
            ..
        }
    );

    // A range index, in its order.
    refuse!(
        range("string", rawdoc! { "sparsity": 9 }),
        E::BsonTypeNotAllowed {
            index: "a range index",
            ..
        }
    );
    refuse!(
        range("int", rawdoc! { "sparsity": 9, "precision": -1 }),
        E::SparsityOutOfRange { sparsity: 9, .. }
    );
    refuse!(
        range("int", rawdoc! { "precision": -1 }),
        E::PrecisionOutOfRange { precision: -1, .. }
    );
    refuse!(
        range("int", rawdoc! { "precision": 2, "min": 0i64, "max": 9 }),
        E::PrecisionNotAllowed { .. }
    );
    refuse!(
        range(
            "decimal",
            rawdoc! { "min": 0i64, "max": dec("200"), "precision": 2 }
        ),
        E::BoundTypeMismatch { bound: "min", .. }
    );
    refuse!(
        range(
            "decimal",
            rawdoc! { "min": dec("0"), "max": dec("200"), "precision": 2, "sparsity": 9 }
        ),
        E::SparsityOutOfRange { sparsity: 9, .. }
    );
    // Decimal128 with a precision is marked before its trim factor is read.
    let decimal = parsed(&range(
        "decimal",
        rawdoc! { "min": dec("0"), "max": dec("200"), "precision": 2, "trimFactor": 1000 },
    ));
    assert_eq!(
        decimal.fields()[0].queries(),
        &FieldQueries::Unsupported(UnsupportedQuery::Decimal128RangePrecision)
    );
    refuse!(
        range("int", rawdoc! { "min": 0, "trimFactor": -1 }),
        E::BoundsIncomplete { .. }
    );
    refuse!(
        range("int", rawdoc! { "min": 9, "max": 0, "trimFactor": -1 }),
        E::MinNotBelowMax { .. }
    );
}

/// A client's `encryptedFieldsMap`, as the client and the command line
/// read it: every key `db.collection`, every entry a document read as a map
/// entry, the first refusal in document order, naming its entry.
#[test]
fn an_encrypted_fields_map_is_read_entry_by_entry() {
    let entry = |key: u8| bson::doc! { "fields": [{ "path": "f", "keyId": uuid(key), "bsonType": "string" }] };
    let map = bson::doc! {
        "app.a": entry(1),
        "app.b.archive": { "fields": [{ "path": "g", "keyAltName": "k", "bsonType": "string",
                                        "queries": { "queryType": "prefix" } }] },
    };
    let entries = EncryptedFields::parse_map(&map).unwrap();
    let names: Vec<&str> = entries.iter().map(|(ns, _)| ns.as_str()).collect();
    assert_eq!(names, ["app.a", "app.b.archive"]);
    assert_eq!(
        entries[0].1,
        EncryptedFields::from_document(&entry(1), ParseMode::Map).unwrap()
    );
    // A map entry may name its key by keyAltName; a query type csfle does
    // not implement parses, and check_supported refuses it.
    assert_eq!(entries[1].1.mode(), ParseMode::Map);
    assert_eq!(entries[1].1.key_alt_names(), vec!["k"]);
    assert!(entries[1].1.check_supported().is_err());
    assert_eq!(EncryptedFields::parse_map(&Document::new()), Ok(Vec::new()));

    for bad in ["", "app", "app.", ".a", "."] {
        let mut map = Document::new();
        map.insert(bad, entry(1));
        let e = EncryptedFields::parse_map(&map).unwrap_err();
        assert_eq!(
            e,
            EncryptedFieldsMapError::InvalidNamespace {
                namespace: bad.to_owned()
            }
        );
        assert_eq!(e.namespace(), bad);
        assert!(e.to_string().contains("db.collection"), "{e}");
    }
    let not_document = EncryptedFields::parse_map(&bson::doc! { "app.a": 1 }).unwrap_err();
    assert_eq!(
        not_document,
        EncryptedFieldsMapError::NotADocument {
            namespace: "app.a".into()
        }
    );
    assert!(
        not_document.to_string().contains("'app.a'"),
        "{not_document}"
    );

    // An entry the parser refuses: its refusal whole, naming the entry.
    let mut extra = entry(1);
    extra.insert("extraField", 1);
    let refused = EncryptedFields::parse_map(&bson::doc! { "app.a": extra.clone() }).unwrap_err();
    assert_eq!(
        refused,
        EncryptedFieldsMapError::Entry {
            namespace: "app.a".into(),
            source: EncryptedFields::from_document(&extra, ParseMode::Map).unwrap_err(),
        }
    );
    assert!(matches!(
        &refused,
        EncryptedFieldsMapError::Entry { source: E::UnknownKey { key, .. }, .. } if key == "extraField"
    ));
    let message = refused.to_string();
    assert!(
        message.contains("'app.a'") && message.contains("extraField"),
        "{message}"
    );
    assert!(std::error::Error::source(&refused).is_some());
    // Read as a map entry: a key to create is not one.
    let to_create = bson::doc! { "app.a": { "fields": [{ "path": "f", "keyId": null, "bsonType": "string" }] } };
    assert!(matches!(
        EncryptedFields::parse_map(&to_create),
        Err(EncryptedFieldsMapError::Entry {
            source: E::KeyIdNullNotAllowed { .. },
            ..
        })
    ));

    // The first refusal in document order.
    let mut map = Document::new();
    map.insert("app.ok", entry(1));
    map.insert("bad", entry(2));
    map.insert("app.c", 1);
    assert_eq!(
        EncryptedFields::parse_map(&map).unwrap_err().namespace(),
        "bad"
    );
    let mut map = Document::new();
    map.insert("app.ok", entry(1));
    map.insert("app.c", 1);
    map.insert("bad", entry(2));
    assert_eq!(
        EncryptedFields::parse_map(&map).unwrap_err().namespace(),
        "app.c"
    );
}
