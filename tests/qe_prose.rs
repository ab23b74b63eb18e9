//! The specification's Queryable Encryption prose tests that run without a
//! server (`client-side-encryption/tests/README.md`): their encryption
//! side, through csfle's pure QE core (`csfle::qe::explicit`), with the
//! values, options and expected errors the README states.
//!
//! * Section 12, Explicit Encryption, cases 4 and 5 (round trips);
//! * Section 22, Range Explicit Encryption, for every type: the setup's
//!   encryptions, case 1 (decrypting a payload), the encryption side of
//!   cases 2 to 5 (the queries' payload shapes; finding is the server's),
//!   and cases 6, 7 and 8 (the errors);
//! * Section 23, Range Explicit Encryption applies defaults, cases 1 and 2.
//!
//! No QE-capable server is available where csfle is tested, so each
//! case's server setup (collections with `encryptedFields`, the key vault,
//! the encrypted client's inserts and finds) is skipped, as each case
//! says. `key1Document` (a specification data file, not vendored) is
//! replaced by libmongocrypt's vendored key with the same `_id`
//! (`12345678-1234-9876-1234-123456789012`, Apache-2.0, with its key
//! material): the cases depend on a key, not on its bytes.
//!
//! `DecimalPrecision` (Decimal128 range indexes with a precision) is
//! refused by csfle with a typed error (it needs libmongocrypt's decimal
//! arithmetic): each case asserts that refusal for it, instead of the
//! case's outcome.

#![cfg(feature = "qe")]

#[path = "common/qe_vectors.rs"]
mod qe_vectors;

use bson::{Bson, Decimal128, Document, RawBson, RawDocument, RawDocumentBuf};
use csfle::qe::aead::QeDataKey;
use csfle::qe::explicit::{
    QeAlgorithm, QeEncryptOptions, QeKeys, QueryType, RangeOptions, encrypt_range_expression,
    encrypt_value,
};
use csfle::qe::payload::{FIND_RANGE_V2, INSERT_UPDATE_V2, InsertUpdatePayload, QeKey};
use csfle::qe::range::RangeError;
use csfle::qe::values::{UNINDEXED_V2, UnindexedValue};
use csfle::qe::{Error, QeRandom};
use qe_vectors::{data_dir, hex};

/// A data key by id and material.
struct Key {
    id: [u8; 16],
    key: QeDataKey,
}

impl Key {
    /// libmongocrypt's `test/data/keys/12345678123498761234123456789012`:
    /// the `_id` of the specification's `key1Document`.
    fn key1() -> Key {
        let name = "12345678123498761234123456789012";
        let path = data_dir().join(format!("keys/{name}-key-material.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let id: [u8; 16] = hex(name).try_into().expect("16 bytes");
        Key {
            id,
            key: QeDataKey::new(&hex(text.trim())).expect("96 bytes of key material"),
        }
    }

    /// A new random key, as `clientEncryption.createDataKey` makes.
    fn random() -> Key {
        let mut material = [0u8; 96];
        csfle::fill_random(&mut material).expect("the system generator");
        let mut id = [0u8; 16];
        csfle::fill_random(&mut id).expect("the system generator");
        Key {
            id,
            key: QeDataKey::new(&material).expect("96 bytes"),
        }
    }

    fn keys(&self) -> QeKeys<'_> {
        QeKeys {
            user: QeKey {
                id: self.id,
                key: &self.key,
            },
            index: None,
        }
    }
}

/// `clientEncryption.encrypt(value, EncryptOpts)` with `keyId` `key`.
fn encrypt(
    key: &Key,
    value: Bson,
    algorithm: QeAlgorithm,
    contention_factor: Option<i64>,
    range_options: Option<&RangeOptions>,
) -> Result<Vec<u8>, Error> {
    let raw = RawBson::try_from(value).expect("a BSON value");
    let options = QeEncryptOptions {
        algorithm,
        contention_factor,
        query_type: None,
        range_options,
    };
    encrypt_value(
        raw.as_raw_bson_ref(),
        key.keys(),
        &options,
        &mut QeRandom::system(),
    )
}

/// `clientEncryption.encryptExpression(expression, EncryptOpts)` with
/// `algorithm: "Range"`, `queryType: "range"`, `contentionFactor: 0`.
fn encrypt_expression(
    key: &Key,
    expression: Document,
    range_options: &RangeOptions,
) -> Result<RawDocumentBuf, Error> {
    let raw = RawDocumentBuf::from_document(&expression).expect("a BSON document");
    let options = QeEncryptOptions {
        algorithm: QeAlgorithm::Range,
        contention_factor: Some(0),
        query_type: Some(QueryType::Range),
        range_options: Some(range_options),
    };
    encrypt_range_expression(&raw, key.keys(), &options, 0)
}

/// `clientEncryption.decrypt(payload)` for what explicit encryption
/// returns: an insert payload (11) or an unindexed value (16).
fn decrypt(key: &Key, payload: &[u8]) -> Bson {
    let (bson_type, bytes) = match payload.first() {
        Some(&INSERT_UPDATE_V2) => {
            let p = InsertUpdatePayload::parse(payload).expect("an insert payload");
            assert_eq!(p.user_key_id(), key.id);
            (p.bson_type(), p.decrypt(&key.key).expect("decrypts"))
        }
        Some(&UNINDEXED_V2) => {
            let v = UnindexedValue::parse(payload).expect("an unindexed value");
            assert_eq!(v.key_id(), key.id);
            (v.bson_type(), v.decrypt(&key.key).expect("decrypts"))
        }
        other => panic!("not a payload explicit encryption returns: first byte {other:?}"),
    };
    // {"v": value}: length ‖ type ‖ "v\0" ‖ value ‖ 0.
    let len = 4 + 1 + 2 + bytes.len() + 1;
    let mut doc = Vec::with_capacity(len);
    doc.extend_from_slice(&i32::try_from(len).expect("small").to_le_bytes());
    doc.push(bson_type);
    doc.extend_from_slice(b"v\0");
    doc.extend_from_slice(&bytes);
    doc.push(0);
    let doc = RawDocumentBuf::from_bytes(doc)
        .and_then(|d| d.to_document())
        .expect("the plaintext is a BSON value of its type");
    doc.get("v").expect("v").clone()
}

/// The body (after the first byte) of an insert payload.
fn payload_document(payload: &[u8]) -> &RawDocument {
    RawDocument::from_bytes(&payload[1..]).expect("a payload's document")
}

// --- 12. Explicit Encryption -------------------------------------------

/// 12, case 4: can roundtrip encrypted indexed. (Test Setup skipped: the
/// collections `db.explicit_encryption` and `…_c10`, the key vault and
/// the encrypted client need a QE-capable server.)
#[test]
fn explicit_encryption_case_4_roundtrip_indexed() {
    let key1 = Key::key1();
    let payload = encrypt(
        &key1,
        Bson::String("encrypted indexed value".into()),
        QeAlgorithm::Indexed,
        Some(0),
        None,
    )
    .expect("Indexed encrypts");
    assert_eq!(payload[0], INSERT_UPDATE_V2);
    assert_eq!(
        decrypt(&key1, &payload),
        Bson::String("encrypted indexed value".into())
    );
}

/// 12, case 5: can roundtrip encrypted unindexed. (Test Setup skipped, as
/// for case 4.)
#[test]
fn explicit_encryption_case_5_roundtrip_unindexed() {
    let key1 = Key::key1();
    let payload = encrypt(
        &key1,
        Bson::String("encrypted unindexed value".into()),
        QeAlgorithm::Unindexed,
        None,
        None,
    )
    .expect("Unindexed encrypts");
    assert_eq!(payload[0], UNINDEXED_V2);
    assert_eq!(
        decrypt(&key1, &payload),
        Bson::String("encrypted unindexed value".into())
    );
}

// --- 22. Range Explicit Encryption ---------------------------------------

/// The types section 22 runs each case for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeType {
    DecimalNoPrecision,
    DecimalPrecision,
    DoublePrecision,
    DoubleNoPrecision,
    Date,
    Int,
    Long,
}

const RANGE_TYPES: [RangeType; 7] = [
    RangeType::DecimalNoPrecision,
    RangeType::DecimalPrecision,
    RangeType::DoublePrecision,
    RangeType::DoubleNoPrecision,
    RangeType::Date,
    RangeType::Int,
    RangeType::Long,
];

fn decimal(s: &str) -> Bson {
    Bson::Decimal128(s.parse::<Decimal128>().expect("a decimal literal"))
}

impl RangeType {
    /// `encrypted<Type>`.
    fn field(self) -> String {
        format!("encrypted{self:?}")
    }

    /// `n` as the field's type.
    fn value(self, n: i32) -> Bson {
        match self {
            RangeType::DecimalNoPrecision | RangeType::DecimalPrecision => decimal(&n.to_string()),
            RangeType::DoublePrecision | RangeType::DoubleNoPrecision => Bson::Double(n.into()),
            RangeType::Date => Bson::DateTime(bson::DateTime::from_millis(n.into())),
            RangeType::Int => Bson::Int32(n),
            RangeType::Long => Bson::Int64(n.into()),
        }
    }

    /// "Test Setup: RangeOpts".
    fn range_options(self) -> RangeOptions {
        let (min, max, precision) = match self {
            RangeType::DecimalNoPrecision | RangeType::DoubleNoPrecision => (None, None, None),
            RangeType::DecimalPrecision | RangeType::DoublePrecision => {
                (Some(self.value(0)), Some(self.value(200)), Some(2))
            }
            RangeType::Date | RangeType::Int | RangeType::Long => {
                (Some(self.value(0)), Some(self.value(200)), None)
            }
        };
        let mut options = RangeOptions::default();
        options.min = min;
        options.max = max;
        options.sparsity = Some(1);
        options.trim_factor = Some(1);
        options.precision = precision;
        options
    }

    /// Decimal128 with a precision: refused by csfle.
    fn refused(self) -> bool {
        self == RangeType::DecimalPrecision
    }

    fn encrypt(self, key: &Key, value: Bson, range: &RangeOptions) -> Result<Vec<u8>, Error> {
        encrypt(key, value, QeAlgorithm::Range, Some(0), Some(range))
    }
}

/// csfle's refusal of Decimal128 range indexes with a precision.
fn assert_decimal_precision_refused(result: Result<impl std::fmt::Debug, Error>, case: &str) {
    let err = result.expect_err(case);
    assert_eq!(
        err,
        Error::Range(RangeError::Decimal128PrecisionUnsupported),
        "{case}"
    );
}

/// 22, Test Setup: the encryptions of 0, 6, 30 and 200 (inserting them
/// into `db.explicit_encryption` is skipped: it needs a QE-capable
/// server). Each is a range insert payload carrying the options.
#[test]
fn range_explicit_setup_encryptions() {
    let key1 = Key::key1();
    for ty in RANGE_TYPES {
        let range = ty.range_options();
        for n in [0, 6, 30, 200] {
            let result = ty.encrypt(&key1, ty.value(n), &range);
            if ty.refused() {
                assert_decimal_precision_refused(result, "setup, DecimalPrecision");
                continue;
            }
            let payload = result.unwrap_or_else(|e| panic!("{ty:?} {n}: {e}"));
            assert_eq!(payload[0], INSERT_UPDATE_V2, "{ty:?} {n}");
            let doc = payload_document(&payload);
            assert_eq!(doc.get_i64("sp").expect("sp"), 1, "{ty:?}");
            assert_eq!(doc.get_i32("tf").expect("tf"), 1, "{ty:?}");
            assert_eq!(
                doc.get_i32("pn").ok(),
                range.precision,
                "{ty:?}: pn only with a precision"
            );
            assert!(!doc.get_array("g").expect("g").is_empty(), "{ty:?}");
            assert_eq!(decrypt(&key1, &payload), ty.value(n), "{ty:?} {n}");
        }
    }
}

/// 22, case 1: can decrypt a payload (every type; the server setup
/// skipped).
#[test]
fn range_explicit_case_1_decrypt_payload() {
    let key1 = Key::key1();
    for ty in RANGE_TYPES {
        let range = ty.range_options();
        let result = ty.encrypt(&key1, ty.value(6), &range);
        if ty.refused() {
            assert_decimal_precision_refused(result, "case 1, DecimalPrecision");
            continue;
        }
        let insert_payload = result.unwrap_or_else(|e| panic!("{ty:?}: {e}"));
        // The value 6, of the field's type.
        assert_eq!(decrypt(&key1, &insert_payload), ty.value(6), "{ty:?}");
    }
}

/// The operators and the payload of each bound of an encrypted range
/// expression (match or aggregate form): `(operator, payload bytes)`.
fn bounds(expression: &RawDocument, field: &str, aggregate: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for element in expression.get_array("$and").expect("$and") {
        let element = element.expect("valid BSON");
        let element = element.as_document().expect("a bound is a document");
        let (key, operand) = element
            .into_iter()
            .next()
            .expect("one key")
            .expect("valid BSON");
        let (operator, payload) = if aggregate {
            let operand = operand.as_array().expect("an aggregate operand");
            assert_eq!(
                operand.get_str(0).expect("a field path"),
                format!("${field}")
            );
            (key.to_owned(), operand.get_binary(1).expect("a payload"))
        } else {
            assert_eq!(key, field);
            let operand = operand.as_document().expect("a match operand");
            let (operator, payload) = operand
                .into_iter()
                .next()
                .expect("one operator")
                .expect("valid BSON");
            (operator.to_owned(), payload.as_binary().expect("a payload"))
        };
        assert_eq!(payload.subtype, bson::spec::BinarySubtype::Encrypted);
        out.push((operator, payload.bytes.to_vec()));
    }
    out
}

/// libmongocrypt's operator numbers (`mc_FLE2RangeOperator_t`).
fn operator_number(name: &str) -> i32 {
    match name {
        "$gt" => 1,
        "$gte" => 2,
        "$lt" => 3,
        "$lte" => 4,
        other => panic!("not a range operator: {other}"),
    }
}

/// The shape of an encrypted range query: the first bound carries the
/// find payload (13) with the cover and the options, a second bound only
/// the payload id and the operators; contention factor 0.
fn assert_find_shape(
    ty: RangeType,
    encrypted: &RawDocumentBuf,
    operators: &[&str],
    aggregate: bool,
) {
    let field = ty.field();
    let found = bounds(encrypted, &field, aggregate);
    let names: Vec<&str> = found.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(names, operators, "{ty:?}");
    let first = payload_document(&found[0].1);
    assert_eq!(found[0].1[0], FIND_RANGE_V2, "{ty:?}");
    let payload = first.get_document("payload").expect("the cover");
    assert_eq!(payload.get_i64("cm").expect("cm"), 0, "{ty:?}");
    assert!(!payload.get_array("g").expect("g").is_empty(), "{ty:?}");
    assert_eq!(
        first.get_i32("firstOperator").expect("firstOperator"),
        operator_number(operators[0]),
        "{ty:?}"
    );
    assert_eq!(first.get_i64("sp").expect("sp"), 1, "{ty:?}");
    assert_eq!(first.get_i32("tf").expect("tf"), 1, "{ty:?}");
    let id = first.get_i32("payloadId").expect("payloadId");
    if let [_, second_operator] = operators {
        assert_eq!(
            first.get_i32("secondOperator").expect("secondOperator"),
            operator_number(second_operator),
            "{ty:?}"
        );
        let stub = payload_document(&found[1].1);
        assert_eq!(found[1].1[0], FIND_RANGE_V2, "{ty:?}");
        assert_eq!(stub.get_i32("payloadId").expect("payloadId"), id);
        assert!(stub.get("payload").expect("valid BSON").is_none(), "{ty:?}");
    } else {
        assert!(
            first.get("secondOperator").expect("valid BSON").is_none(),
            "{ty:?}"
        );
    }
}

/// A match expression `{$and: [{field: {op: n}}, …]}`.
fn match_expression(ty: RangeType, bounds: &[(&str, i32)]) -> Document {
    let and: Vec<Bson> = bounds
        .iter()
        .map(|(op, n)| {
            let mut operand = Document::new();
            operand.insert(*op, ty.value(*n));
            let mut element = Document::new();
            element.insert(ty.field(), operand);
            Bson::Document(element)
        })
        .collect();
    let mut e = Document::new();
    e.insert("$and", and);
    e
}

/// 22, cases 2 to 5: the queries' encryption (`encryptExpression`) for
/// every type. Running the finds and checking the documents returned is
/// the server's part, skipped.
#[test]
fn range_explicit_cases_2_to_5_query_encryption() {
    let key1 = Key::key1();
    for ty in RANGE_TYPES {
        let range = ty.range_options();
        // Case 2: $gte 6, $lte 200. Case 3: $gte 0, $lte 6. Case 4: $gt 30.
        let cases: [&[(&str, i32)]; 3] = [
            &[("$gte", 6), ("$lte", 200)],
            &[("$gte", 0), ("$lte", 6)],
            &[("$gt", 30)],
        ];
        for bounds in cases {
            let result = encrypt_expression(&key1, match_expression(ty, bounds), &range);
            if ty.refused() {
                assert_decimal_precision_refused(result, "cases 2-4, DecimalPrecision");
                continue;
            }
            let encrypted = result.unwrap_or_else(|e| panic!("{ty:?} {bounds:?}: {e}"));
            let operators: Vec<&str> = bounds.iter().map(|(op, _)| *op).collect();
            assert_find_shape(ty, &encrypted, &operators, false);
        }
        // Case 5: {$and: [{$lt: ["$encrypted<Type>", 30]}]}, for $expr.
        let mut lt = Document::new();
        lt.insert(
            "$lt",
            Bson::Array(vec![Bson::String(format!("${}", ty.field())), ty.value(30)]),
        );
        let mut expression = Document::new();
        expression.insert("$and", vec![Bson::Document(lt)]);
        let result = encrypt_expression(&key1, expression, &range);
        if ty.refused() {
            assert_decimal_precision_refused(result, "case 5, DecimalPrecision");
            continue;
        }
        let encrypted = result.unwrap_or_else(|e| panic!("{ty:?} case 5: {e}"));
        assert_find_shape(ty, &encrypted, &["$lt"], true);
    }
}

/// 22, case 6: encrypting a document greater than the maximum errors
/// (skipped for DoubleNoPrecision and DecimalNoPrecision, as the case
/// says; the server setup skipped).
#[test]
fn range_explicit_case_6_value_above_max() {
    let key1 = Key::key1();
    let mut ran = 0;
    for ty in RANGE_TYPES {
        if matches!(
            ty,
            RangeType::DoubleNoPrecision | RangeType::DecimalNoPrecision
        ) {
            continue;
        }
        let result = ty.encrypt(&key1, ty.value(201), &ty.range_options());
        if ty.refused() {
            assert_decimal_precision_refused(result, "case 6, DecimalPrecision");
            continue;
        }
        let err = result.expect_err("201 is above max").to_string();
        // libmongocrypt's words; the value itself is never printed.
        assert!(
            err.contains(
                "Value must be greater than or equal to the minimum value and less than or equal to the maximum value"
            ),
            "{ty:?}: {err}"
        );
        assert!(!err.contains("201"), "{ty:?}: {err}");
        ran += 1;
    }
    assert_eq!(ran, 4, "DoublePrecision, Date, Int, Long");
}

/// 22, case 7: encrypting a value of a different type errors: a double
/// for `encryptedInt`, an int32 for the others (skipped for
/// DoubleNoPrecision and DecimalNoPrecision; the server setup skipped).
/// The range options stay the field's.
#[test]
fn range_explicit_case_7_value_of_another_type() {
    let key1 = Key::key1();
    let mut ran = 0;
    for ty in RANGE_TYPES {
        if matches!(
            ty,
            RangeType::DoubleNoPrecision | RangeType::DecimalNoPrecision
        ) {
            continue;
        }
        let value = if ty == RangeType::Int {
            Bson::Double(6.0)
        } else {
            Bson::Int32(6)
        };
        // DecimalPrecision too: the type mismatch is found before the
        // precision would be refused.
        let err = ty
            .encrypt(&key1, value, &ty.range_options())
            .expect_err("a value of another type")
            .to_string();
        assert!(
            err.contains("expected matching 'min' and value type"),
            "{ty:?}: {err}"
        );
        ran += 1;
    }
    assert_eq!(ran, 5);
}

/// 22, case 8: setting precision errors if the type is not double or
/// Decimal128 (skipped for the double and Decimal128 types; the server
/// setup skipped).
#[test]
fn range_explicit_case_8_precision_on_other_types() {
    let key1 = Key::key1();
    let mut ran = 0;
    for ty in [RangeType::Date, RangeType::Int, RangeType::Long] {
        let range = ty.range_options().with_precision(2);
        let err = ty
            .encrypt(&key1, ty.value(6), &range)
            .expect_err("precision on an integer type")
            .to_string();
        assert!(
            err.contains(
                "expected 'precision' to be set with double or decimal128 index, but got:"
            ),
            "{ty:?}: {err}"
        );
        ran += 1;
    }
    assert_eq!(ran, 3);
}

// --- 23. Range Explicit Encryption applies defaults ----------------------

fn int_range(sparsity: Option<i64>, trim_factor: Option<i32>) -> RangeOptions {
    let mut options = RangeOptions::default()
        .with_min(Bson::Int32(0))
        .with_max(Bson::Int32(1000));
    options.sparsity = sparsity;
    options.trim_factor = trim_factor;
    options
}

/// 23, Test Setup: a new key (`createDataKey`, in memory here: no key
/// vault) and `payload_defaults`, the int32 123 with only min 0 and max
/// 1000. libmongocrypt sends the defaults it applied: sparsity 2, trim
/// factor 6.
fn payload_defaults(key: &Key) -> Vec<u8> {
    let payload = encrypt(
        key,
        Bson::Int32(123),
        QeAlgorithm::Range,
        Some(0),
        Some(&int_range(None, None)),
    )
    .expect("range encrypts");
    let doc = payload_document(&payload);
    assert_eq!(doc.get_i64("sp").expect("sp"), 2);
    assert_eq!(doc.get_i32("tf").expect("tf"), 6);
    payload
}

/// 23, case 1: uses libmongocrypt's defaults: explicit sparsity 2 and
/// trim factor 6 give a payload of the default's size.
#[test]
fn range_defaults_case_1_uses_libmongocrypt_defaults() {
    let key = Key::random();
    let defaults = payload_defaults(&key);
    let explicit = encrypt(
        &key,
        Bson::Int32(123),
        QeAlgorithm::Range,
        Some(0),
        Some(&int_range(Some(2), Some(6))),
    )
    .expect("range encrypts");
    assert_eq!(explicit.len(), defaults.len());
}

/// 23, case 2: accepts trim factor 0, which stores more edges than the
/// default.
#[test]
fn range_defaults_case_2_accepts_trim_factor_0() {
    let key = Key::random();
    let defaults = payload_defaults(&key);
    let trim0 = encrypt(
        &key,
        Bson::Int32(123),
        QeAlgorithm::Range,
        Some(0),
        Some(&int_range(None, Some(0))),
    )
    .expect("range encrypts");
    assert!(trim0.len() > defaults.len());
}
