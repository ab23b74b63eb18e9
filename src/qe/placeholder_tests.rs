//! Unit tests of `placeholder.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

use super::*;
use bson::{RawDocumentBuf, rawdoc};

fn blob(doc: RawDocumentBuf) -> Vec<u8> {
    let mut out = vec![ENCRYPTION_PLACEHOLDER];
    out.extend_from_slice(doc.as_bytes());
    out
}

fn uuid_of(b: u8) -> bson::Binary {
    bson::Binary {
        subtype: BinarySubtype::Uuid,
        bytes: vec![b; 16],
    }
}

#[test]
fn parses_and_refuses() {
    let ok = blob(rawdoc! {
        "t": 1, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": "plaintext-canary", "cm": 3i64,
    });
    let p = Placeholder::parse(&ok).unwrap();
    assert_eq!(p.kind, PlaceholderType::Insert);
    assert_eq!(p.algorithm, Fle2Algorithm::Equality);
    assert_eq!((p.index_key_id, p.user_key_id), ([1; 16], [2; 16]));
    assert_eq!((p.max_contention, p.sparsity), (3, 0));
    assert!(!format!("{p:?}").contains("plaintext-canary"));

    let missing = blob(rawdoc! { "t": 1, "a": 2, "ku": uuid_of(2), "v": "x", "cm": 0i64 });
    assert_eq!(
        Placeholder::parse(&missing).unwrap_err().to_string(),
        "Error parsing FLE2EncryptionPlaceholder: Missing field 'ki'"
    );
    let bad_t =
        blob(rawdoc! { "t": 5, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": 1, "cm": 0i64 });
    assert_eq!(
        Placeholder::parse(&bad_t).unwrap_err(),
        Error::Payload(PayloadError::InvalidPlaceholderType(5))
    );
    let negative =
        blob(rawdoc! { "t": 1, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": 1, "cm": -1i64 });
    assert_eq!(
        Placeholder::parse(&negative).unwrap_err(),
        Error::Payload(PayloadError::ContentionNegative(-1))
    );
    let extra = blob(
        rawdoc! { "t": 1, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": 1, "cm": 0i64, "zz": 1 },
    );
    assert!(matches!(
        Placeholder::parse(&extra).unwrap_err(),
        Error::Payload(PayloadError::UnknownField { .. })
    ));
    let twice = blob(
        rawdoc! { "t": 1, "t": 1, "a": 2, "ki": uuid_of(1), "ku": uuid_of(2), "v": 1, "cm": 0i64 },
    );
    assert!(matches!(
        Placeholder::parse(&twice).unwrap_err(),
        Error::Payload(PayloadError::DuplicateField { field: "t", .. })
    ));
    let short_key = blob(rawdoc! {
        "t": 1, "a": 2,
        "ki": bson::Binary { subtype: BinarySubtype::Uuid, bytes: vec![1; 15] },
        "ku": uuid_of(2), "v": 1, "cm": 0i64,
    });
    assert!(Placeholder::parse(&short_key).is_err());
    for len in 0..ok.len() {
        let _ = Placeholder::parse(&ok[..len]);
    }
    assert!(Placeholder::parse(&[]).is_err());
}

#[test]
fn text_search_and_missing_keys_are_refused() {
    let text =
        blob(rawdoc! { "t": 1, "a": 4, "ki": uuid_of(1), "ku": uuid_of(1), "v": "x", "cm": 0i64 });
    let p = Placeholder::parse(&text).unwrap();
    let mut rng = QeRandom::fixed(Vec::new());
    assert_eq!(
        p.encrypt(|_| None, &mut rng).unwrap_err(),
        Error::Payload(PayloadError::TextSearchUnsupported)
    );
    let eq =
        blob(rawdoc! { "t": 2, "a": 2, "ki": uuid_of(1), "ku": uuid_of(1), "v": "x", "cm": 0i64 });
    let p = Placeholder::parse(&eq).unwrap();
    assert!(matches!(
        p.encrypt(|_| None, &mut rng).unwrap_err(),
        Error::Payload(PayloadError::KeyNotFound { role: "index", .. })
    ));
}

/// Hex digits as bytes (test vectors copied from libmongocrypt's
/// mongocryptd replies).
fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn id(s: &str) -> [u8; 16] {
    unhex(s).try_into().unwrap()
}

const K123: &str = "12345678123498761234123456789012";
const KABC: &str = "abcdefab123498761234123456789012";

fn params(ki: &str, ku: &str, max_contention: i64, sparsity: i64) -> PlaceholderParams {
    PlaceholderParams {
        index_key_id: id(ki),
        user_key_id: id(ku),
        max_contention,
        sparsity,
    }
}

/// Byte for byte the placeholders of libmongocrypt's mongocryptd
/// replies (test/data, snapshot 3a65b40d), and each one parses back.
#[test]
fn writes_what_mongocryptd_writes() {
    let (min32, max32) = (Bson::Int32(i32::MIN), Bson::Int32(i32::MAX));
    let v = Bson::Int32(123456);
    let int32_index = |trim_factor| RangeIndexSpec {
        min: &min32,
        max: &max32,
        precision: None,
        trim_factor,
    };
    let (zero, two_hundred) = (Bson::Double(0.0), Bson::Double(200.0));
    let precision_index = RangeIndexSpec {
        min: &zero,
        max: &two_hundred,
        precision: Some(2),
        trim_factor: None,
    };
    let double = Bson::Double(123.456);
    let (bar, value123) = (Bson::from("bar"), Bson::from("value123"));
    let cases: Vec<(&str, PlaceholderRequest<'_>, PlaceholderParams, &str)> = vec![
        (
            "range-sends-cryptoParams/auto-find-int32 $gte",
            PlaceholderRequest::RangeFind {
                lower: Some(RangeBound {
                    value: &v,
                    included: true,
                }),
                upper: Some(RangeBound {
                    value: &v,
                    included: true,
                }),
                index: int32_index(Some(6)),
                payload_id: 0,
                first: RangeOperator::Gte,
                second: RangeOperator::Lte,
            },
            params(K123, K123, 8, 2),
            "03100100001074000200000010610003000000056b6900100000000412345678123498761234123456789012056b7500100000000412345678123498761234123456789012037600b1000000036564676573496e666f006b000000106c6f776572426f756e640040e20100086c62496e636c756465640001107570706572426f756e640040e20100087562496e636c756465640001107472696d466163746f72000600000010696e6465784d696e000000008010696e6465784d617800ffffff7f00107061796c6f6164496400000000001066697273744f70657261746f720002000000107365636f6e644f70657261746f7200040000000012636d000800000000000000127300020000000000000000",
        ),
        (
            "range-sends-cryptoParams/auto-find-int32 $lte (stub)",
            PlaceholderRequest::RangeStub {
                payload_id: 0,
                first: RangeOperator::Gte,
                second: RangeOperator::Lte,
            },
            params(K123, K123, 8, 2),
            "039a0000001074000200000010610003000000056b6900100000000412345678123498761234123456789012056b75001000000004123456781234987612341234567890120376003b000000107061796c6f6164496400000000001066697273744f70657261746f720002000000107365636f6e644f70657261746f7200040000000012636d000800000000000000127300020000000000000000",
        ),
        (
            "range-sends-cryptoParams/auto-insert-int32",
            PlaceholderRequest::RangeInsert {
                value: &v,
                index: int32_index(None),
            },
            params(K123, K123, 8, 2),
            "037d0000001074000100000010610003000000056b6900100000000412345678123498761234123456789012056b75001000000004123456781234987612341234567890120376001e00000010760040e20100106d696e0000000080106d617800ffffff7f0012636d000800000000000000127300020000000000000000",
        ),
        (
            "fle2-find-range/double-precision-v2",
            PlaceholderRequest::RangeFind {
                lower: Some(RangeBound {
                    value: &zero,
                    included: true,
                }),
                upper: Some(RangeBound {
                    value: &two_hundred,
                    included: true,
                }),
                index: precision_index,
                payload_id: 1234,
                first: RangeOperator::Gt,
                second: RangeOperator::None,
            },
            params(K123, KABC, 0, 1),
            "030b0100001074000200000010610003000000056b6900100000000412345678123498761234123456789012056b75001000000004abcdefab123498761234123456789012037600ac000000036564676573496e666f007a000000016c6f776572426f756e64000000000000000000086c62496e636c756465640001017570706572426f756e64000000000000006940087562496e636c75646564000110707265636973696f6e000200000001696e6465784d696e00000000000000000001696e6465784d617800000000000000694000107061796c6f6164496400d20400001066697273744f70657261746f7200010000000012636d000000000000000000127300010000000000000000",
        ),
        (
            "fle2-insert-range/double-precision-v2",
            PlaceholderRequest::RangeInsert {
                value: &double,
                index: precision_index,
            },
            params(K123, KABC, 0, 1),
            "03980000001074000100000010610003000000056b6900100000000412345678123498761234123456789012056b75001000000004abcdefab1234987612341234567890120376003900000001760077be9f1a2fdd5e40016d696e000000000000000000016d617800000000000000694010707265636973696f6e00020000000012636d000000000000000000127300010000000000000000",
        ),
        (
            "qe_keyAltName (unindexed)",
            PlaceholderRequest::UnindexedInsert(&bar),
            params(
                "61616161616161616161616161616161",
                "61616161616161616161616161616161",
                0,
                0,
            ),
            "035c0000001074000100000010610001000000056b6900100000000461616161616161616161616161616161056b7500100000000461616161616161616161616161616161027600040000006261720012636d00000000000000000000",
        ),
        (
            "fle2-insert-v2 (equality)",
            PlaceholderRequest::EqualityInsert(&value123),
            params(K123, KABC, 0, 0),
            "03610000001074000100000010610002000000056b6900100000000412345678123498761234123456789012056b75001000000004abcdefab1234987612341234567890120276000900000076616c75653132330012636d00000000000000000000",
        ),
    ];
    for (name, request, params, expected) in cases {
        let written = write_placeholder(&request, &params).unwrap();
        assert_eq!(written, unhex(expected), "{name}");
        let parsed = Placeholder::parse(&written).unwrap();
        assert_eq!(parsed.index_key_id, params.index_key_id, "{name}");
        assert_eq!(parsed.max_contention, params.max_contention, "{name}");
    }
}

#[test]
fn writer_refuses_what_cannot_be_encrypted() {
    let p = params(K123, K123, 0, 2);
    for value in [
        Bson::Null,
        Bson::MinKey,
        Bson::MaxKey,
        Bson::Undefined,
        Bson::Binary(bson::Binary {
            subtype: BinarySubtype::Encrypted,
            bytes: vec![3, 0],
        }),
        Bson::RegularExpression(bson::Regex {
            pattern: "a\0b".into(),
            options: String::new(),
        }),
    ] {
        assert!(write_placeholder(&PlaceholderRequest::EqualityFind(&value), &p).is_err());
    }
    let v = Bson::Int32(1);
    let bad_contention = params(K123, K123, -1, 2);
    assert_eq!(
        write_placeholder(&PlaceholderRequest::EqualityInsert(&v), &bad_contention).unwrap_err(),
        Error::Payload(PayloadError::ContentionNegative(-1))
    );
    let (lo, hi) = (Bson::Int32(0), Bson::Int32(10));
    let index = RangeIndexSpec {
        min: &lo,
        max: &hi,
        precision: None,
        trim_factor: None,
    };
    let range = PlaceholderRequest::RangeInsert { value: &v, index };
    assert!(write_placeholder(&range, &params(K123, K123, 0, 0)).is_err());
    assert!(write_placeholder(&range, &params(K123, K123, 0, 5)).is_err());
    assert!(write_placeholder(&range, &params(K123, K123, 0, 4)).is_ok());
    let secret = Bson::from("plaintext-canary");
    assert!(!format!("{:?}", PlaceholderRequest::EqualityFind(&secret)).contains("canary"));
}

/// An open end is a double infinity, included; the defaults of a
/// double or decimal index are their types' extremes.
#[test]
fn open_ranges_and_default_bounds() {
    let (lo, hi) = (
        default_range_bound(ElementType::Double, true).unwrap(),
        default_range_bound(ElementType::Double, false).unwrap(),
    );
    assert_eq!(
        (lo.clone(), hi.clone()),
        (Bson::Double(-f64::MAX), Bson::Double(f64::MAX))
    );
    assert!(default_range_bound(ElementType::Int32, true).is_none());
    let Some(Bson::Decimal128(d)) = default_range_bound(ElementType::Decimal128, true) else {
        panic!("no decimal bound");
    };
    assert_eq!(
        d.bytes().to_vec(),
        unhex("ffffffff638e8d37c087adbe09edffdf")
    );
    let v = Bson::Double(1.5);
    let request = PlaceholderRequest::RangeFind {
        lower: Some(RangeBound {
            value: &v,
            included: false,
        }),
        upper: None,
        index: RangeIndexSpec {
            min: &lo,
            max: &hi,
            precision: None,
            trim_factor: None,
        },
        payload_id: 7,
        first: RangeOperator::Gt,
        second: RangeOperator::None,
    };
    let written = write_placeholder(&request, &params(K123, K123, 0, 2)).unwrap();
    let parsed = Placeholder::parse(&written).unwrap();
    let spec = range_find_spec(parsed.value).unwrap();
    let edges = spec.edges.unwrap();
    assert_eq!(edges.upper_bound, RawBsonRef::Double(f64::INFINITY));
    assert!(edges.upper_included && !edges.lower_included);
    assert_eq!(
        (spec.payload_id, spec.second_operator),
        (7, RangeOperator::None)
    );
}
