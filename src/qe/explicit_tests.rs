//! Unit tests of `explicit.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

use super::*;
use crate::qe::aead::QeDataKey;
use bson::rawdoc;

fn key() -> QeDataKey {
    QeDataKey::new(&[7u8; 96]).unwrap()
}

fn options<'a>(algorithm: QeAlgorithm) -> QeEncryptOptions<'a> {
    QeEncryptOptions {
        algorithm,
        contention_factor: None,
        query_type: None,
        range_options: None,
    }
}

#[test]
fn option_errors_in_libmongocrypt_order() {
    let range = RangeOptions::default();
    let mut o = options(QeAlgorithm::Unindexed);
    o.contention_factor = Some(0);
    assert_eq!(
        o.validate(),
        Err(Error::from(ExplicitError::ContentionWithoutIndex))
    );
    let mut o = options(QeAlgorithm::Unindexed);
    o.query_type = Some(QueryType::Equality);
    assert_eq!(
        o.validate(),
        Err(Error::from(ExplicitError::QueryTypeWithoutIndex))
    );
    let mut o = options(QeAlgorithm::Indexed);
    o.range_options = Some(&range);
    assert_eq!(
        o.validate(),
        Err(Error::from(ExplicitError::RangeOptsWithEquality))
    );
    let o = options(QeAlgorithm::Indexed);
    assert_eq!(
        o.validate(),
        Err(Error::from(ExplicitError::ContentionRequired))
    );
    let mut o = options(QeAlgorithm::Indexed);
    o.contention_factor = Some(-1);
    assert_eq!(
        o.validate().unwrap_err().to_string(),
        "Error validating contention: contention must be non-negative, got: -1"
    );
    let mut o = options(QeAlgorithm::Range);
    o.contention_factor = Some(0);
    assert_eq!(
        o.validate(),
        Err(Error::from(ExplicitError::RangeOptsRequired))
    );
    let mut o = options(QeAlgorithm::Indexed);
    o.contention_factor = Some(0);
    o.query_type = Some(QueryType::Range);
    assert_eq!(
        o.validate().unwrap_err().to_string(),
        "query_type (Range) must match index_type (Equality)"
    );
}

#[test]
fn range_option_errors() {
    let k = key();
    let keys = QeKeys {
        user: QeKey {
            id: [1; 16],
            key: &k,
        },
        index: None,
    };
    let run = |range: RangeOptions, value: Bson| {
        let o = QeEncryptOptions {
            algorithm: QeAlgorithm::Range,
            contention_factor: Some(0),
            query_type: None,
            range_options: Some(&range),
        };
        let raw = RawBson::try_from(value).unwrap();
        let mut rng = QeRandom::fixed(vec![0; 4096]);
        encrypt_value(raw.as_raw_bson_ref(), keys, &o, &mut rng)
            .unwrap_err()
            .to_string()
    };
    let opts = |min: Option<Bson>, max: Option<Bson>, precision| RangeOptions {
        min,
        max,
        sparsity: Some(1),
        trim_factor: None,
        precision,
    };
    // libmongocrypt's test/test-mongocrypt-ctx-encrypt.c cases.
    assert!(
        run(
            opts(Some(0.into()), Some(1.into()), None),
            Bson::String("abc".into())
        )
        .contains("expected matching 'min' and value type")
    );
    assert!(
        run(
            opts(Some(1.into()), Some(0.into()), None),
            Bson::Int32(123456)
        )
        .contains("minimum value must be less than the maximum value")
    );
    assert!(
        run(opts(None, Some(200.into()), None), Bson::Int32(1))
            .contains("Range option 'min' is required")
    );
    assert!(
        run(opts(Some(0.into()), None, None), Bson::Int32(1))
            .contains("Range option 'max' is required")
    );
    assert_eq!(
        run(
            opts(Some(0.0.into()), Some(1.0.into()), None),
            Bson::Double(0.5)
        ),
        "Error parsing RangeOpts: expected 'precision' to be set with 'min' for DOUBLE"
    );
    assert_eq!(
        run(
            opts(Some(0.into()), Some(10.into()), Some(1)),
            Bson::Int32(1)
        ),
        "Error parsing RangeOpts: expected 'precision' to be set with double or decimal128 index, but got: INT32 min"
    );
    let mut tf = opts(Some(0.into()), Some(7.into()), None);
    tf.trim_factor = Some(3);
    assert_eq!(
        run(tf, Bson::Int32(1)),
        "Error appending trim factor to FLE2RangeInsertSpec: Trim factor (3) must be less than the total number of bits (3) used to represent any element in the domain."
    );
    // Decimal128 with precision: refused, typed.
    let dec = |s: &str| Bson::Decimal128(s.parse().unwrap());
    assert_eq!(
        run(opts(Some(dec("0")), Some(dec("10")), Some(1)), dec("1")),
        RangeError::Decimal128PrecisionUnsupported.to_string()
    );
}

#[test]
fn expression_errors() {
    let k = key();
    let keys = QeKeys {
        user: QeKey {
            id: [1; 16],
            key: &k,
        },
        index: None,
    };
    let range = RangeOptions {
        min: Some(0.into()),
        max: Some(200.into()),
        ..RangeOptions::default()
    };
    let o = QeEncryptOptions {
        algorithm: QeAlgorithm::Range,
        contention_factor: Some(0),
        query_type: Some(QueryType::Range),
        range_options: Some(&range),
    };
    let run = |d: RawDocumentBuf| {
        encrypt_range_expression(&d, keys, &o, 0)
            .map(|_| ())
            .unwrap_err()
    };
    assert_eq!(
        run(rawdoc! { "$or": [] }),
        Error::from(ExplicitError::NoAnd)
    );
    assert_eq!(
        run(rawdoc! { "$and": 1 }),
        Error::from(ExplicitError::AndNotArray)
    );
    assert_eq!(
        run(rawdoc! { "$and": [], "x": 1 }),
        Error::from(ExplicitError::ExtraKey("x".into()))
    );
    assert_eq!(
        run(rawdoc! { "$and": [] }),
        Error::from(ExplicitError::NoBound)
    );
    assert_eq!(
        run(rawdoc! { "$and": [{ "age": { "$gt": 1 } }, { "age": { "$gte": 2 } }] }),
        Error::from(ExplicitError::DuplicateBound("$gte"))
    );
    assert_eq!(
        run(rawdoc! { "$and": [{ "age": { "$gt": 1 } }, { "b": { "$lt": 2 } }] }),
        Error::from(ExplicitError::FieldMismatch {
            expected: "age".into(),
            got: "b".into()
        })
    );
    assert_eq!(
        run(rawdoc! { "$and": [{ "age": { "$eq": 1 } }] }),
        Error::from(ExplicitError::UnsupportedOperator("$eq".into()))
    );
    assert_eq!(
        run(rawdoc! { "$and": [{ "$gt": ["$age"] }] }),
        Error::from(ExplicitError::OperandLength {
            operator: "$gt".into(),
            got: "1"
        })
    );
    assert_eq!(
        run(
            rawdoc! { "$and": [{ "age": { "$gt": 1 } }, { "age": { "$lt": 2 } }, { "age": { "$lt": 3 } }] }
        ),
        Error::from(ExplicitError::DuplicateBound("$lt"))
    );
    // A bound of another type than the range options'.
    assert!(
        run(rawdoc! { "$and": [{ "age": { "$gt": 1i64 } }] })
            .to_string()
            .contains("expected matching 'min' and value type")
    );
    // The query bounds never appear in errors.
    let e = run(rawdoc! { "$and": [{ "age": { "$gt": 4242 } }, { "age": { "$lt": 4141 } }] });
    assert!(
        !e.to_string().contains("4242") && !e.to_string().contains("4141"),
        "{e}"
    );
}

#[test]
fn one_sided_and_aggregate_shapes() {
    let k = key();
    let keys = QeKeys {
        user: QeKey {
            id: [1; 16],
            key: &k,
        },
        index: None,
    };
    let range = RangeOptions {
        min: Some(0.into()),
        max: Some(200.into()),
        ..RangeOptions::default()
    };
    let o = QeEncryptOptions {
        algorithm: QeAlgorithm::Range,
        contention_factor: Some(0),
        query_type: Some(QueryType::Range),
        range_options: Some(&range),
    };
    let one =
        encrypt_range_expression(&rawdoc! { "$and": [{ "age": { "$lt": 50 } }] }, keys, &o, 9)
            .unwrap();
    let and = one.get_array("$and").unwrap();
    assert_eq!(and.into_iter().count(), 1);
    let agg = encrypt_range_expression(
        &rawdoc! { "$and": [{ "$gt": ["$age", 5] }, { "$lte": ["$age", 50] }] },
        keys,
        &o,
        9,
    )
    .unwrap();
    let and = agg.get_array("$and").unwrap();
    let first = and.get_document(0).unwrap().get_array("$gt").unwrap();
    assert_eq!(first.get_str(0).unwrap(), "$age");
    let p = first.get_binary(1).unwrap();
    assert_eq!(p.subtype, bson::spec::BinarySubtype::Encrypted);
    assert_eq!(p.bytes[0], payload::FIND_RANGE_V2);
    let stub = and
        .get_document(1)
        .unwrap()
        .get_array("$lte")
        .unwrap()
        .get_binary(1)
        .unwrap();
    let stub_doc = RawDocument::from_bytes(&stub.bytes[1..]).unwrap();
    assert_eq!(stub_doc.get_i32("payloadId").unwrap(), 9);
    assert_eq!(stub_doc.get_i32("firstOperator").unwrap(), 1);
    assert_eq!(stub_doc.get_i32("secondOperator").unwrap(), 4);
    assert!(stub_doc.get("payload").unwrap().is_none());
}
