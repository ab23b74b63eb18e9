//! Queryable Encryption against libmongocrypt itself (PyPI `pymongocrypt`,
//! run by `tests/oracle/libmongocrypt_qe_oracle.py` with
//! `$CSFLE_ORACLE_PYTHON`), through csfle's pure QE core
//! (`csfle::qe::explicit`, `payload`, `values`).
//!
//! For at least 300 random values, keys and contention factors per
//! algorithm and type:
//! * **Indexed** (strings, int32, int64, dates, ObjectIds, binaries,
//!   doubles, Decimal128, booleans, and the other types mixed):
//!   libmongocrypt decrypts csfle's insert payloads (first byte 11; its
//!   explicit decrypt reads them as it reads them in documents); csfle
//!   decrypts libmongocrypt's; the two insert payloads are equal byte for
//!   byte once their random parts are opened (`p` decrypted with the ECOC
//!   token, `v` with the key) whenever both drew the same contention
//!   factor (always with contention factor 0); equality find payloads (12)
//!   are byte-equal for every contention factor.
//! * **Unindexed** (the same types): each side decrypts the other's
//!   values (16), whose prefix (subtype, key id, BSON type) and length
//!   agree.
//! * **Range** (int32, int64, date, double without and with precision,
//!   Decimal128 without precision; random bounds, sparsity and trim
//!   factor): insert payloads (11) as for Indexed, the edge token sets
//!   included; range find payloads (13) of random one- and two-sided,
//!   match and aggregate expressions are byte-equal once csfle is given
//!   libmongocrypt's `payloadId` (its per-process counter).
//! * Both refuse the same invalid inputs (a handful per algorithm).
//!
//! The keys are random (96 bytes each, wrapped by csfle's local KMS under
//! a random master key; libmongocrypt unwraps them). The seed is printed;
//! `CSFLE_QE_DIFF_SEED=<n>` reproduces a run. One oracle process per
//! algorithm answers the whole batch.

#![cfg(feature = "qe")]

use base64::Engine;
use bson::spec::BinarySubtype;
use bson::{
    Binary, Bson, Decimal128, Document, RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf,
};
use csfle::keyvault::KeyDocument;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
use csfle::qe::QeRandom;
use csfle::qe::aead::{QeDataKey, fle2_decrypt};
use csfle::qe::explicit::{
    QeAlgorithm, QeEncryptOptions, QeKeys, QueryType, RangeOptions, encrypt_range_expression,
    encrypt_value,
};
use csfle::qe::payload::{
    FIND_EQUALITY_V2, FIND_RANGE_V2, INSERT_UPDATE_V2, InsertUpdatePayload, QeKey,
};
use csfle::qe::tokens::{CollectionsLevel1Token, EcocToken};
use csfle::qe::values::{UNINDEXED_V2, UnindexedValue};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Samples per algorithm and type.
const PER_TYPE: usize = 300;
/// Keys per run; each sample picks one.
const N_KEYS: usize = 8;

/// A range query bound: the value and whether it is inclusive.
type Bound = (Bson, bool);

fn b64e(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("the oracle answers base64")
}

/// The oracle's interpreter: a service this test needs (`#[ignore]`d
/// without it; run by hand without the variable, it says what to set).
fn oracle_python() -> String {
    match std::env::var("CSFLE_ORACLE_PYTHON") {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "CSFLE_ORACLE_PYTHON is not set: this test needs a Python with pymongocrypt 1.21.2 (tests/oracle/README.md)"
        ),
    }
}

/// One batch through the QE oracle: its libmongocrypt version and one
/// result per op.
fn run_oracle(python: &str, request: &Value) -> (String, Vec<Value>) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oracle/libmongocrypt_qe_oracle.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    // The script reads all of stdin before it writes: no deadlock.
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.to_string().as_bytes())
        .expect("writing the oracle's request");
    let out = child.wait_with_output().expect("the oracle's output");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("the oracle answers JSON");
    (
        v["libmongocrypt"].as_str().expect("version").to_owned(),
        v["results"].as_array().expect("results").clone(),
    )
}

/// A result's BSON document, or a panic with libmongocrypt's error.
fn result_doc(r: &Value, what: &str) -> RawDocumentBuf {
    let Some(b) = r["bson"].as_str() else {
        panic!("{what}: libmongocrypt error: {}", r["error"]);
    };
    RawDocumentBuf::from_bytes(b64(b)).expect("the oracle answers BSON")
}

/// A result's `v`, a subtype-6 binary: its bytes.
fn result_payload(r: &Value, what: &str) -> Vec<u8> {
    let doc = result_doc(r, what);
    let v = doc
        .get_binary("v")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(v.subtype, BinarySubtype::Encrypted, "{what}");
    v.bytes.to_vec()
}

/// A data key both sides hold: csfle its material, libmongocrypt its
/// document (wrapped by the local KMS).
struct TestKey {
    id: [u8; 16],
    key: QeDataKey,
}

impl TestKey {
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

/// `{"v": value}` as raw BSON: the one encoding both sides are given.
fn v_doc(value: Bson) -> RawDocumentBuf {
    let mut d = Document::new();
    d.insert("v", value);
    RawDocumentBuf::from_document(&d).expect("test values serialize")
}

/// The value of a `{"v": value}` document.
fn v_of(doc: &RawDocumentBuf) -> RawBsonRef<'_> {
    doc.get("v").expect("valid BSON").expect("a v field")
}

/// The value's BSON type and its bytes after the element name (what QE
/// encrypts): `{"v": value}` is length(4) ‖ type ‖ "v\0" ‖ value ‖ 0.
fn value_bytes(doc: &RawDocumentBuf) -> (u8, &[u8]) {
    let b = doc.as_bytes();
    (b[4], &b[7..b.len() - 1])
}

fn options(
    algorithm: QeAlgorithm,
    contention_factor: Option<i64>,
    query_type: Option<QueryType>,
    range_options: Option<&RangeOptions>,
) -> QeEncryptOptions<'_> {
    QeEncryptOptions {
        algorithm,
        contention_factor,
        query_type,
        range_options,
    }
}

/// Range options as libmongocrypt takes them (`mongocrypt_ctx_setopt_algorithm_range`).
fn range_opts_bson(r: &RangeOptions) -> Vec<u8> {
    let mut d = Document::new();
    if let Some(min) = &r.min {
        d.insert("min", min.clone());
    }
    if let Some(max) = &r.max {
        d.insert("max", max.clone());
    }
    if let Some(sp) = r.sparsity {
        d.insert("sparsity", Bson::Int64(sp));
    }
    if let Some(tf) = r.trim_factor {
        d.insert("trimFactor", Bson::Int32(tf));
    }
    if let Some(pn) = r.precision {
        d.insert("precision", Bson::Int32(pn));
    }
    RawDocumentBuf::from_document(&d)
        .expect("range options serialize")
        .into_bytes()
}

/// An oracle encrypt op.
fn encrypt_op(
    key: &TestKey,
    algorithm: &str,
    value: &RawDocumentBuf,
    contention_factor: Option<i64>,
    query_type: Option<&str>,
    range: Option<&RangeOptions>,
    is_expression: bool,
) -> Value {
    let mut op = json!({
        "op": "encrypt",
        "key_id": b64e(&key.id),
        "algorithm": algorithm,
        "bson": b64e(value.as_bytes()),
        "is_expression": is_expression,
    });
    if let Some(cf) = contention_factor {
        op["contention_factor"] = json!(cf);
    }
    if let Some(qt) = query_type {
        op["query_type"] = json!(qt);
    }
    if let Some(r) = range {
        op["range_opts"] = json!(b64e(&range_opts_bson(r)));
    }
    op
}

/// An oracle decrypt op of a payload csfle made.
fn decrypt_op(payload: &[u8]) -> Value {
    let doc = v_doc(Bson::Binary(Binary {
        subtype: BinarySubtype::Encrypted,
        bytes: payload.to_vec(),
    }));
    json!({"op": "decrypt", "bson": b64e(doc.as_bytes())})
}

fn random_contention(rng: &mut StdRng) -> i64 {
    if rng.random_bool(0.4) {
        0
    } else {
        rng.random_range(1..=8)
    }
}

fn random_string(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..=300);
    const EXTRA: &[char] = &['é', 'ß', '中', '文', '🔐', 'Ω', '\u{7f}', '"', '\\'];
    (0..len)
        .map(|_| {
            if rng.random_bool(0.8) {
                rng.random_range(0x20u8..0x7f) as char
            } else {
                EXTRA[rng.random_range(0..EXTRA.len())]
            }
        })
        .collect()
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max);
    let mut b = vec![0u8; len];
    rng.fill_bytes(&mut b);
    b
}

fn random_oid(rng: &mut StdRng) -> bson::oid::ObjectId {
    let mut b = [0u8; 12];
    rng.fill_bytes(&mut b);
    bson::oid::ObjectId::from_bytes(b)
}

/// A finite double: any bit pattern, or a number of everyday size.
fn random_double(rng: &mut StdRng) -> f64 {
    if rng.random_bool(0.5) {
        loop {
            let d = f64::from_bits(rng.random());
            if d.is_finite() {
                return d;
            }
        }
    } else {
        (rng.random_range(-1e9f64..1e9) * 100.0).round() / 100.0
    }
}

const TEN_TO_34: u128 = 10_000_000_000_000_000_000_000_000_000_000_000;

/// A finite, canonical Decimal128: coefficient below 10^34 (of random
/// length), any exponent or one near 0, either sign.
fn random_decimal(rng: &mut StdRng) -> Decimal128 {
    let digits = rng.random_range(0..=34u32);
    let coefficient = rng.random::<u128>() % 10u128.pow(digits).max(1) % TEN_TO_34;
    let biased_exponent: u128 = if rng.random_bool(0.5) {
        rng.random_range(0..=12287)
    } else {
        rng.random_range(6156..=6196)
    };
    decimal(rng.random_bool(0.5), biased_exponent, coefficient)
}

/// A Decimal128 from sign, biased exponent and coefficient (< 2^113).
fn decimal(negative: bool, biased_exponent: u128, coefficient: u128) -> Decimal128 {
    let bits = (u128::from(negative) << 127) | (biased_exponent << 113) | coefficient;
    Decimal128::from_bytes(bits.to_le_bytes())
}

/// The value types of the Indexed and Unindexed samples.
#[derive(Clone, Copy, Debug)]
enum Kind {
    String,
    Int32,
    Int64,
    Date,
    ObjectId,
    Binary,
    Double,
    Decimal128,
    Bool,
    /// Timestamps, regular expressions, code, symbols, documents, arrays,
    /// code with scope and DBPointers, mixed.
    Other,
}

const KINDS: [Kind; 10] = [
    Kind::String,
    Kind::Int32,
    Kind::Int64,
    Kind::Date,
    Kind::ObjectId,
    Kind::Binary,
    Kind::Double,
    Kind::Decimal128,
    Kind::Bool,
    Kind::Other,
];

fn random_scalar(rng: &mut StdRng) -> Bson {
    match rng.random_range(0..5) {
        0 => Bson::String(random_string(rng).chars().take(20).collect()),
        1 => Bson::Int32(rng.random()),
        2 => Bson::Int64(rng.random()),
        3 => Bson::Boolean(rng.random()),
        _ => Bson::Null,
    }
}

fn random_document(rng: &mut StdRng) -> Document {
    let mut d = Document::new();
    for i in 0..rng.random_range(0..5) {
        d.insert(format!("f{i}"), random_scalar(rng));
    }
    d
}

fn random_value(rng: &mut StdRng, kind: Kind) -> Bson {
    match kind {
        Kind::String => Bson::String(random_string(rng)),
        Kind::Int32 => Bson::Int32(rng.random()),
        Kind::Int64 => Bson::Int64(rng.random()),
        Kind::Date => Bson::DateTime(bson::DateTime::from_millis(rng.random())),
        Kind::ObjectId => Bson::ObjectId(random_oid(rng)),
        Kind::Binary => {
            let subtypes = [
                BinarySubtype::Generic,
                BinarySubtype::Function,
                BinarySubtype::Uuid,
                BinarySubtype::Md5,
                BinarySubtype::UserDefined(0x80),
            ];
            let subtype = subtypes[rng.random_range(0..subtypes.len())];
            let bytes = if subtype == BinarySubtype::Uuid {
                (0..16).map(|_| rng.random()).collect()
            } else {
                random_bytes(rng, 64)
            };
            Bson::Binary(Binary { subtype, bytes })
        }
        Kind::Double => Bson::Double(random_double(rng)),
        Kind::Decimal128 => Bson::Decimal128(random_decimal(rng)),
        Kind::Bool => Bson::Boolean(rng.random()),
        Kind::Other => match rng.random_range(0..8) {
            0 => Bson::Timestamp(bson::Timestamp {
                time: rng.random(),
                increment: rng.random(),
            }),
            1 => {
                let pattern: String = random_string(rng).chars().take(40).collect();
                let options: String = "imsux".chars().filter(|_| rng.random_bool(0.4)).collect();
                Bson::RegularExpression(bson::Regex { pattern, options })
            }
            2 => Bson::JavaScriptCode(random_string(rng)),
            3 => Bson::Symbol(random_string(rng)),
            4 => Bson::Document(random_document(rng)),
            5 => Bson::Array((0..rng.random_range(0..6)).map(|_| random_scalar(rng)).collect()),
            6 => Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope {
                code: random_string(rng),
                scope: random_document(rng),
            }),
            _ => Bson::try_from(
                json!({"$dbPointer": {"$ref": "db.coll", "$id": {"$oid": random_oid(rng).to_hex()}}}),
            )
            .expect("a DBPointer"),
        },
    }
}

/// Per type: what was checked.
#[derive(Default)]
struct Tally {
    samples: usize,
    they_decrypt_ours: usize,
    we_decrypt_theirs: usize,
    /// Insert payloads byte-equal once opened (same contention factor).
    inserts_equal: usize,
    /// Of those, with contention factor 0.
    inserts_equal_cf0: usize,
    finds_equal: usize,
    finds_equal_cf0: usize,
    refusals: usize,
}

fn print_tallies(algorithm: &str, version: &str, tallies: &BTreeMap<String, Tally>) {
    for (kind, t) in tallies {
        println!(
            "libmongocrypt {version} {algorithm} {kind}: {} samples; libmongocrypt decrypted {} of csfle's, csfle {} of libmongocrypt's; {} insert payloads byte-equal once opened ({} with contention 0); {} find payloads byte-equal ({} with contention 0); {} refusals agreed",
            t.samples,
            t.they_decrypt_ours,
            t.we_decrypt_theirs,
            t.inserts_equal,
            t.inserts_equal_cf0,
            t.finds_equal,
            t.finds_equal_cf0,
            t.refusals,
        );
    }
}

fn assert_every_type_ran(tallies: &BTreeMap<String, Tally>, kinds: usize) {
    assert_eq!(tallies.len(), kinds);
    for (kind, t) in tallies {
        assert!(t.samples >= PER_TYPE, "{kind}: only {} samples", t.samples);
        assert_eq!(t.they_decrypt_ours, t.samples, "{kind}");
        assert_eq!(t.we_decrypt_theirs, t.samples, "{kind}");
    }
}

/// Which `p` of an insert payload is opened: what its plaintext must be.
#[derive(Clone, Copy)]
enum Opens {
    /// An equality insert's: `s`.
    Equality,
    /// A range insert's own: `s` ‖ 0.
    RangeValue,
    /// A range edge's: `s` ‖ isLeaf (0 or 1).
    RangeEdge,
}

/// An insert payload (11) with its random parts opened: `p` (and each
/// range edge's `p`) decrypted with the ECOC token, `v` as the user key id
/// ‖ the plaintext. What remains depends only on the value, the key, the
/// options and the contention factor drawn, so csfle's and
/// libmongocrypt's are equal byte for byte when both drew the same factor.
/// Also checks, as the server reads them, that each `p` opens to its `s`
/// (‖ the leaf byte for range), and that `v` decrypts to `expected`.
/// Returns the contention factor and the opened payload.
fn opened_insert(
    payload: &[u8],
    key: &TestKey,
    expected: &RawDocumentBuf,
    who: &str,
) -> (i64, Vec<u8>) {
    assert_eq!(payload[0], INSERT_UPDATE_V2, "{who}: first byte");
    let iup = InsertUpdatePayload::parse(payload).unwrap_or_else(|e| panic!("{who}: {e}"));
    let (bson_type, bytes) = value_bytes(expected);
    assert_eq!(iup.bson_type(), bson_type, "{who}: t");
    assert_eq!(iup.user_key_id(), key.id, "{who}: user key id");
    let plaintext = iup
        .decrypt(&key.key)
        .unwrap_or_else(|e| panic!("{who}: decrypting v: {e}"));
    assert_eq!(&plaintext[..], bytes, "{who}: v decrypts to the value");

    let ecoc = EcocToken::derive(&CollectionsLevel1Token::derive(key.key.token_key()));
    let open_p = |p: &[u8], s: &[u8], which: Opens| -> Binary {
        let plain = fle2_decrypt(ecoc.as_bytes(), p).unwrap_or_else(|e| panic!("{who}: p: {e}"));
        assert_eq!(&plain[..32], s, "{who}: p opens to s");
        match which {
            Opens::Equality => assert_eq!(plain.len(), 32, "{who}: p of an equality insert"),
            Opens::RangeValue => {
                assert_eq!(plain.len(), 33, "{who}: p of a range insert");
                assert_eq!(plain[32], 0, "{who}: the value's own p is not a leaf");
            }
            Opens::RangeEdge => {
                assert_eq!(plain.len(), 33, "{who}: p of a range edge");
                assert!(plain[32] <= 1, "{who}: the leaf byte");
            }
        }
        Binary {
            subtype: BinarySubtype::Generic,
            bytes: plain.to_vec(),
        }
    };
    let doc = RawDocument::from_bytes(&payload[1..]).expect("parsed above");
    let is_range = doc.get("g").expect("valid BSON").is_some();
    let s = doc.get_binary("s").expect("s").bytes;
    let mut opened = RawDocumentBuf::new();
    for item in doc {
        let (name, value) = item.expect("valid BSON");
        match (name, value) {
            ("p", RawBsonRef::Binary(p)) => {
                // The value's own p: s, and for range a leaf byte 0.
                let which = if is_range {
                    Opens::RangeValue
                } else {
                    Opens::Equality
                };
                opened.append("p", open_p(p.bytes, s, which));
            }
            ("v", RawBsonRef::Binary(_)) => {
                let mut v = key.id.to_vec();
                v.extend_from_slice(&plaintext);
                opened.append(
                    "v",
                    Binary {
                        subtype: BinarySubtype::Generic,
                        bytes: v,
                    },
                );
            }
            ("g", RawBsonRef::Array(edges)) => {
                let mut g = RawArrayBuf::new();
                for edge in edges {
                    let RawBsonRef::Document(set) = edge.expect("valid BSON") else {
                        panic!("{who}: an edge token set that is not a document");
                    };
                    let edge_s = set.get_binary("s").expect("an edge's s").bytes;
                    let mut opened_set = RawDocumentBuf::new();
                    for field in set {
                        let (n, v) = field.expect("valid BSON");
                        match v {
                            RawBsonRef::Binary(p) if n == "p" => {
                                opened_set.append("p", open_p(p.bytes, edge_s, Opens::RangeEdge));
                            }
                            _ => opened_set.append_ref(n, v),
                        }
                    }
                    g.push(opened_set);
                }
                opened.append("g", g);
            }
            _ => opened.append_ref(name, value),
        }
    }
    (iup.contention_factor(), opened.into_bytes())
}

/// The `payloadId` of the first find payload of an encrypted range
/// expression (match or aggregate form).
fn first_payload_id(expression: &RawDocument) -> i32 {
    let first = expression
        .get_array("$and")
        .expect("$and")
        .get_document(0)
        .expect("a first bound");
    let (_, operand) = first
        .into_iter()
        .next()
        .expect("an operator")
        .expect("valid BSON");
    let binary = match operand {
        RawBsonRef::Document(d) => {
            d.into_iter()
                .next()
                .expect("a bound")
                .expect("valid BSON")
                .1
        }
        RawBsonRef::Array(a) => a.get(1).expect("valid BSON").expect("a bound"),
        other => panic!("unexpected operand {other:?}"),
    };
    let RawBsonRef::Binary(b) = binary else {
        panic!("the bound is not a payload");
    };
    assert_eq!(b.bytes[0], FIND_RANGE_V2);
    RawDocument::from_bytes(&b.bytes[1..])
        .expect("a find payload's document")
        .get_i32("payloadId")
        .expect("payloadId")
}

/// What one oracle result must show.
enum Check {
    /// libmongocrypt decrypts csfle's payload (11 or 16) to the sample's
    /// value, byte for byte.
    TheyDecryptOurs { sample: usize },
    /// csfle reads libmongocrypt's insert payload (11) and, when both drew
    /// the same contention factor, it equals csfle's once opened.
    TheirInsert { sample: usize, ours: Vec<u8> },
    /// csfle decrypts libmongocrypt's unindexed value (16); its prefix and
    /// length are csfle's.
    TheirUnindexed { sample: usize, ours: Vec<u8> },
    /// csfle's equality find payload (12) is libmongocrypt's.
    FindEquality { sample: usize, ours: Vec<u8> },
    /// csfle's encrypted range expression is libmongocrypt's, given its
    /// payloadId.
    FindRange { sample: usize },
    /// libmongocrypt refuses what csfle refused (`label`, csfle's error).
    BothRefuse { label: &'static str, ours: String },
}

/// One random input, and what csfle needs to redo it.
struct Sample {
    kind: String,
    key: usize,
    value: RawDocumentBuf,
    contention: i64,
    range: Option<RangeOptions>,
    /// `{"v": expression}` of a range query.
    expression: Option<RawDocumentBuf>,
}

/// Everything a run shares.
struct Setup {
    python: String,
    rng: StdRng,
    master: [u8; 96],
    keys: Vec<TestKey>,
    key_docs: Vec<String>,
}

fn setup() -> Setup {
    let python = oracle_python();
    let seed: u64 = std::env::var("CSFLE_QE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            csfle::fill_random(&mut b).expect("the system generator");
            u64::from_le_bytes(b)
        });
    println!("CSFLE_QE_DIFF_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut master = [0u8; 96];
    rng.fill_bytes(&mut master);
    let local = ProviderName::of_kind(ProviderKind::Local);
    let kms = KmsProviders::new().with_local(
        local.clone(),
        LocalMasterKey::new(&master).expect("96 bytes"),
    );
    let mut keys = Vec::new();
    let mut key_docs = Vec::new();
    for _ in 0..N_KEYS {
        let mut material = [0u8; 96];
        rng.fill_bytes(&mut material);
        let doc: KeyDocument =
            csfle::create_data_key(&kms, &local, vec![], Some(&material)).expect("a local key");
        let mut bytes = Vec::new();
        doc.to_document()
            .to_writer(&mut bytes)
            .expect("a key document serializes");
        key_docs.push(b64e(&bytes));
        keys.push(TestKey {
            id: doc.id.bytes(),
            key: QeDataKey::new(&material).expect("96 bytes"),
        });
    }
    Setup {
        python,
        rng,
        master,
        keys,
        key_docs,
    }
}

impl Setup {
    /// One batch through the oracle, with this run's master key and keys.
    fn run(&self, ops: Vec<Value>) -> (String, Vec<Value>) {
        run_oracle(
            &self.python,
            &json!({"local_master_key": b64e(&self.master), "keys": self.key_docs, "ops": ops}),
        )
    }
}

/// Runs the checks against the oracle's results.
fn evaluate(
    s: &Setup,
    samples: &[Sample],
    checks: &[Check],
    results: &[Value],
    tallies: &mut BTreeMap<String, Tally>,
) {
    assert_eq!(results.len(), checks.len(), "one result per op");
    for (i, (check, r)) in checks.iter().zip(results).enumerate() {
        match check {
            Check::TheyDecryptOurs { sample } => {
                let sm = &samples[*sample];
                let theirs = result_doc(r, "decrypt");
                assert_eq!(
                    b64e(theirs.as_bytes()),
                    b64e(sm.value.as_bytes()),
                    "op {i} ({}): libmongocrypt decrypted csfle's payload differently",
                    sm.kind
                );
                tallies
                    .entry(sm.kind.clone())
                    .or_default()
                    .they_decrypt_ours += 1;
            }
            Check::TheirInsert { sample, ours } => {
                let sm = &samples[*sample];
                let key = &s.keys[sm.key];
                let theirs = result_payload(r, "insert");
                let what = format!("op {i} ({})", sm.kind);
                let (k_theirs, opened_theirs) =
                    opened_insert(&theirs, key, &sm.value, &format!("{what}: libmongocrypt's"));
                let (k_ours, opened_ours) =
                    opened_insert(ours, key, &sm.value, &format!("{what}: csfle's"));
                assert!((0..=sm.contention).contains(&k_theirs), "{what}");
                assert!((0..=sm.contention).contains(&k_ours), "{what}");
                let t = tallies.entry(sm.kind.clone()).or_default();
                t.we_decrypt_theirs += 1;
                if k_theirs == k_ours {
                    assert_eq!(
                        b64e(&opened_ours),
                        b64e(&opened_theirs),
                        "{what}: insert payloads differ (contention factor {k_ours})"
                    );
                    t.inserts_equal += 1;
                    if sm.contention == 0 {
                        t.inserts_equal_cf0 += 1;
                    }
                }
            }
            Check::TheirUnindexed { sample, ours } => {
                let sm = &samples[*sample];
                let key = &s.keys[sm.key];
                let theirs = result_payload(r, "unindexed");
                let what = format!("op {i} ({})", sm.kind);
                assert_eq!(theirs[0], UNINDEXED_V2, "{what}");
                let value =
                    UnindexedValue::parse(&theirs).unwrap_or_else(|e| panic!("{what}: {e}"));
                let (bson_type, bytes) = value_bytes(&sm.value);
                assert_eq!(value.key_id(), key.id, "{what}");
                assert_eq!(value.bson_type(), bson_type, "{what}");
                let plain = value
                    .decrypt(&key.key)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(
                    &plain[..],
                    bytes,
                    "{what}: csfle decrypted libmongocrypt's value differently"
                );
                assert_eq!(theirs[..18], ours[..18], "{what}: prefix");
                assert_eq!(theirs.len(), ours.len(), "{what}: length");
                tallies
                    .entry(sm.kind.clone())
                    .or_default()
                    .we_decrypt_theirs += 1;
            }
            Check::FindEquality { sample, ours } => {
                let sm = &samples[*sample];
                let theirs = result_payload(r, "find");
                assert_eq!(theirs[0], FIND_EQUALITY_V2);
                assert_eq!(
                    b64e(&theirs),
                    b64e(ours),
                    "op {i} ({}): equality find payloads differ (contention factor {})",
                    sm.kind,
                    sm.contention
                );
                let t = tallies.entry(sm.kind.clone()).or_default();
                t.finds_equal += 1;
                if sm.contention == 0 {
                    t.finds_equal_cf0 += 1;
                }
            }
            Check::FindRange { sample } => {
                let sm = &samples[*sample];
                let key = &s.keys[sm.key];
                let what = format!("op {i} ({})", sm.kind);
                let theirs = result_doc(r, "range find");
                let theirs = theirs
                    .get_document("v")
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let payload_id = first_payload_id(theirs);
                let expression = sm.expression.as_ref().expect("a range query sample");
                let expression = expression.get_document("v").expect("{v: expression}");
                let range = sm.range.as_ref().expect("range options");
                let o = options(
                    QeAlgorithm::Range,
                    Some(sm.contention),
                    Some(QueryType::Range),
                    Some(range),
                );
                let ours = encrypt_range_expression(expression, key.keys(), &o, payload_id)
                    .unwrap_or_else(|e| panic!("{what}: csfle refused the query: {e}"));
                assert_eq!(
                    b64e(ours.as_bytes()),
                    b64e(theirs.as_bytes()),
                    "{what}: range find payloads differ (payloadId {payload_id})"
                );
                let t = tallies.entry(sm.kind.clone()).or_default();
                t.finds_equal += 1;
                if sm.contention == 0 {
                    t.finds_equal_cf0 += 1;
                }
            }
            Check::BothRefuse { label, ours } => {
                assert!(
                    r["error"].is_string(),
                    "op {i}: libmongocrypt accepted {label}, which csfle refused ({ours})"
                );
                println!(
                    "refused alike: {label}: csfle: {ours}; libmongocrypt: {}",
                    r["error"]
                );
                tallies.entry((*label).to_owned()).or_default().refusals += 1;
            }
        }
    }
}

/// Indexed or Unindexed over every kind.
fn run_value_algorithm(s: &mut Setup, algorithm: QeAlgorithm) {
    let name = match algorithm {
        QeAlgorithm::Indexed => "Indexed",
        QeAlgorithm::Unindexed => "Unindexed",
        _ => unreachable!("range has its own samples"),
    };
    let mut samples = Vec::new();
    let mut ops = Vec::new();
    let mut checks = Vec::new();
    let mut rng = QeRandom::system();
    for kind in KINDS {
        for _ in 0..PER_TYPE {
            let key_index = s.rng.random_range(0..N_KEYS);
            let key = &s.keys[key_index];
            let value = v_doc(random_value(&mut s.rng, kind));
            let sample = samples.len();
            let contention = if algorithm == QeAlgorithm::Indexed {
                random_contention(&mut s.rng)
            } else {
                0
            };
            let cf = (algorithm == QeAlgorithm::Indexed).then_some(contention);
            let ours = encrypt_value(
                v_of(&value),
                key.keys(),
                &options(algorithm, cf, None, None),
                &mut rng,
            )
            .unwrap_or_else(|e| panic!("{name} {kind:?}: csfle refused: {e}"));
            ops.push(decrypt_op(&ours));
            checks.push(Check::TheyDecryptOurs { sample });
            ops.push(encrypt_op(key, name, &value, cf, None, None, false));
            if algorithm == QeAlgorithm::Indexed {
                assert_eq!(ours[0], INSERT_UPDATE_V2);
                checks.push(Check::TheirInsert { sample, ours });
                let find = encrypt_value(
                    v_of(&value),
                    key.keys(),
                    &options(algorithm, cf, Some(QueryType::Equality), None),
                    &mut rng,
                )
                .unwrap_or_else(|e| panic!("{name} {kind:?} find: csfle refused: {e}"));
                ops.push(encrypt_op(
                    key,
                    name,
                    &value,
                    cf,
                    Some("equality"),
                    None,
                    false,
                ));
                checks.push(Check::FindEquality { sample, ours: find });
            } else {
                assert_eq!(ours[0], UNINDEXED_V2);
                checks.push(Check::TheirUnindexed { sample, ours });
            }
            samples.push(Sample {
                kind: format!("{kind:?}"),
                key: key_index,
                value,
                contention,
                range: None,
                expression: None,
            });
        }
    }
    // Refusals: values no QE algorithm encrypts, and the options each
    // algorithm refuses.
    let cf = (algorithm == QeAlgorithm::Indexed).then_some(0);
    let encrypted = Bson::Binary(Binary {
        subtype: BinarySubtype::Encrypted,
        bytes: vec![16; 40],
    });
    let mut refusals: Vec<(&'static str, Bson, Option<i64>, Option<QueryType>)> = vec![
        ("null", Bson::Null, cf, None),
        ("minKey", Bson::MinKey, cf, None),
        ("maxKey", Bson::MaxKey, cf, None),
        ("binary subtype 6", encrypted, cf, None),
    ];
    if algorithm == QeAlgorithm::Unindexed {
        refusals.push((
            "Unindexed with a contention factor",
            Bson::Int32(1),
            Some(0),
            None,
        ));
        refusals.push((
            "Unindexed with a query type",
            Bson::Int32(1),
            None,
            Some(QueryType::Equality),
        ));
    } else {
        refusals.push((
            "Indexed without a contention factor",
            Bson::Int32(1),
            None,
            None,
        ));
        refusals.push((
            "Indexed with a negative contention factor",
            Bson::Int32(1),
            Some(-1),
            None,
        ));
    }
    let n_refusals = refusals.len();
    let key = &s.keys[0];
    for (label, value, cf, query_type) in refusals {
        let value = v_doc(value);
        let err = encrypt_value(
            v_of(&value),
            key.keys(),
            &options(algorithm, cf, query_type, None),
            &mut rng,
        )
        .err()
        .unwrap_or_else(|| panic!("csfle accepted {label}"));
        let qt = query_type.map(|_| "equality");
        ops.push(encrypt_op(key, name, &value, cf, qt, None, false));
        checks.push(Check::BothRefuse {
            label,
            ours: err.to_string(),
        });
    }

    let (version, results) = s.run(ops);
    let mut tallies = BTreeMap::new();
    evaluate(s, &samples, &checks, &results, &mut tallies);
    for sm in &samples {
        tallies.entry(sm.kind.clone()).or_default().samples += 1;
    }
    print_tallies(name, &version, &tallies);
    let (refused, sampled): (BTreeMap<String, Tally>, BTreeMap<String, Tally>) =
        tallies.into_iter().partition(|(_, t)| t.samples == 0);
    assert_eq!(refused.len(), n_refusals, "every refusal agreed");
    assert_every_type_ran(&sampled, KINDS.len());
    if algorithm == QeAlgorithm::Indexed {
        for (kind, t) in &sampled {
            assert_eq!(t.finds_equal, t.samples, "{kind}");
            assert!(
                t.inserts_equal_cf0 > 0,
                "{kind}: no contention-0 insert compared"
            );
        }
    }
}

#[test]
#[ignore = "needs CSFLE_ORACLE_PYTHON"]
fn indexed_against_libmongocrypt() {
    let mut s = setup();
    run_value_algorithm(&mut s, QeAlgorithm::Indexed);
}

#[test]
#[ignore = "needs CSFLE_ORACLE_PYTHON"]
fn unindexed_against_libmongocrypt() {
    let mut s = setup();
    run_value_algorithm(&mut s, QeAlgorithm::Unindexed);
}

/// The range index types.
#[derive(Clone, Copy, Debug)]
enum RangeKind {
    Int32,
    Int64,
    Date,
    DoubleNoPrecision,
    DoublePrecision,
    Decimal128NoPrecision,
}

const RANGE_KINDS: [RangeKind; 6] = [
    RangeKind::Int32,
    RangeKind::Int64,
    RangeKind::Date,
    RangeKind::DoubleNoPrecision,
    RangeKind::DoublePrecision,
    RangeKind::Decimal128NoPrecision,
];

/// One range sample: the value, the index options and a query.
struct RangeCase {
    value: Bson,
    options: RangeOptions,
    lower: Option<(Bson, bool)>,
    upper: Option<(Bson, bool)>,
}

fn bit_length(x: u64) -> u32 {
    64 - x.leading_zeros()
}

fn random_sparsity(rng: &mut StdRng) -> Option<i64> {
    rng.random_bool(0.6).then(|| rng.random_range(1..=4))
}

/// A trim factor below the domain's `bits` (libmongocrypt refuses any
/// other) and at most 8, or none (its default, 6, clamped to the domain).
/// The cap keeps queries small: a range query's cover holds up to
/// 2^trimFactor edges (libmongocrypt, unbounded, takes seconds and
/// gigabytes at 20).
fn random_trim_factor(rng: &mut StdRng, bits: u32) -> Option<i32> {
    let below = i32::try_from(bits.clamp(1, 9)).expect("at most 9");
    rng.random_bool(0.6).then(|| rng.random_range(0..below))
}

/// A query over integer positions `lo..=hi` (int32, int64, dates, and
/// doubles with precision scaled to integers): two-sided, lower-only or
/// upper-only, each bound included or not. An excluded bound keeps 4
/// positions from the other bound and from the domain's edge, so that
/// every query is valid (libmongocrypt's own checks are not what this
/// test compares).
fn position_query(
    rng: &mut StdRng,
    lo: i64,
    hi: i64,
    to_bson: &dyn Fn(i64) -> Bson,
) -> (Option<Bound>, Option<Bound>) {
    let mut a = rng.random_range(lo..=hi);
    let mut b = rng.random_range(lo..=hi);
    if a > b {
        std::mem::swap(&mut a, &mut b);
    }
    let far = |x: i64, y: i64| (i128::from(y) - i128::from(x)) >= 4;
    let mut a_in = rng.random_bool(0.5);
    let mut b_in = rng.random_bool(0.5);
    match rng.random_range(0..4) {
        0 => {
            a_in |= !far(a, hi);
            (Some((to_bson(a), a_in)), None)
        }
        1 => {
            b_in |= !far(lo, b);
            (None, Some((to_bson(b), b_in)))
        }
        _ => {
            if !far(a, b) {
                a_in = true;
                b_in = true;
            }
            (Some((to_bson(a), a_in)), Some((to_bson(b), b_in)))
        }
    }
}

/// Two ordered bounds of a type without precision (doubles, Decimal128):
/// random; equal bounds are both included.
fn ordered_query(
    rng: &mut StdRng,
    a: Bson,
    b: Bson,
    a_le_b: bool,
    equal: bool,
) -> (Option<Bound>, Option<Bound>) {
    let (a, b) = if a_le_b { (a, b) } else { (b, a) };
    let (mut a_in, mut b_in) = (rng.random_bool(0.5), rng.random_bool(0.5));
    if equal {
        a_in = true;
        b_in = true;
    }
    match rng.random_range(0..4) {
        0 => (Some((a, a_in)), None),
        1 => (None, Some((b, b_in))),
        _ => (Some((a, a_in)), Some((b, b_in))),
    }
}

/// Two integers in `limit_lo..=limit_hi` (limits symmetric about 0 but
/// for the one of two's complement), of random magnitude, distinct and
/// ordered.
fn int_bounds(rng: &mut StdRng, limit_lo: i64, limit_hi: i64) -> (i64, i64) {
    // A random i64 shifted right by at least this keeps within the limits
    // (or just past them, clamped).
    let min_shift = 63 - bit_length(limit_hi.unsigned_abs());
    let mut draw = || {
        let shift = rng.random_range(min_shift..64);
        (rng.random::<i64>() >> shift).clamp(limit_lo, limit_hi)
    };
    loop {
        let (a, b) = (draw(), draw());
        if a != b {
            return (a.min(b), a.max(b));
        }
    }
}

fn integer_case(
    rng: &mut StdRng,
    limit_lo: i64,
    limit_hi: i64,
    to_bson: &dyn Fn(i64) -> Bson,
) -> RangeCase {
    let (lo, hi) = int_bounds(rng, limit_lo, limit_hi);
    // hi > lo: the span fits in u64.
    let span = (i128::from(hi) - i128::from(lo)) as u64;
    let value = to_bson(rng.random_range(lo..=hi));
    let options = {
        let mut o = RangeOptions::default();
        o.min = Some(to_bson(lo));
        o.max = Some(to_bson(hi));
        o.sparsity = random_sparsity(rng);
        o.trim_factor = random_trim_factor(rng, bit_length(span));
        o.precision = None;
        o
    };
    let (lower, upper) = position_query(rng, lo, hi, to_bson);
    RangeCase {
        value,
        options,
        lower,
        upper,
    }
}

fn range_case(rng: &mut StdRng, kind: RangeKind) -> RangeCase {
    match kind {
        RangeKind::Int32 => integer_case(rng, i64::from(i32::MIN), i64::from(i32::MAX), &|x| {
            Bson::Int32(i32::try_from(x).expect("within int32"))
        }),
        RangeKind::Int64 => integer_case(rng, i64::MIN, i64::MAX, &Bson::Int64),
        RangeKind::Date => integer_case(rng, i64::MIN, i64::MAX, &|x| {
            Bson::DateTime(bson::DateTime::from_millis(x))
        }),
        RangeKind::DoublePrecision => {
            // Integer bounds within ±10^6 and up to 4 digits: the scaled
            // domain stays far below libmongocrypt's 2^53.
            let precision: i32 = rng.random_range(0..=4);
            let scale = 10i64.pow(precision as u32);
            let (lo, hi) = int_bounds(rng, -1_000_000, 1_000_000);
            let (slo, shi) = (lo * scale, hi * scale);
            let to_bson = move |m: i64| Bson::Double(m as f64 / scale as f64);
            let value = to_bson(rng.random_range(slo..=shi));
            let options = {
                let mut o = RangeOptions::default();
                o.min = Some(Bson::Double(lo as f64));
                o.max = Some(Bson::Double(hi as f64));
                o.sparsity = random_sparsity(rng);
                o.trim_factor = random_trim_factor(rng, bit_length((shi - slo) as u64));
                o.precision = Some(precision);
                o
            };
            let (lower, upper) = position_query(rng, slo, shi, &to_bson);
            RangeCase {
                value,
                options,
                lower,
                upper,
            }
        }
        RangeKind::DoubleNoPrecision => {
            let value = Bson::Double(random_double(rng));
            let options = {
                let mut o = RangeOptions::default();
                o.min = None;
                o.max = None;
                o.sparsity = random_sparsity(rng);
                o.trim_factor = random_trim_factor(rng, 64);
                o.precision = None;
                o
            };
            let (a, b) = (random_double(rng), random_double(rng));
            let (lower, upper) =
                ordered_query(rng, Bson::Double(a), Bson::Double(b), a <= b, a == b);
            RangeCase {
                value,
                options,
                lower,
                upper,
            }
        }
        RangeKind::Decimal128NoPrecision => {
            let value = Bson::Decimal128(random_decimal(rng));
            let options = {
                let mut o = RangeOptions::default();
                o.min = None;
                o.max = None;
                o.sparsity = random_sparsity(rng);
                o.trim_factor = random_trim_factor(rng, 128);
                o.precision = None;
                o
            };
            // Bounds of one exponent, so that their order is their signed
            // coefficients'.
            let exponent: u128 = if rng.random_bool(0.5) {
                rng.random_range(0..=12287)
            } else {
                rng.random_range(6156..=6196)
            };
            let mut signed = || {
                let digits = rng.random_range(0..=34u32);
                let c = rng.random::<u128>() % 10u128.pow(digits).max(1) % TEN_TO_34;
                let negative = rng.random_bool(0.5);
                let v = if negative { -(c as i128) } else { c as i128 };
                (decimal(negative, exponent, c), v)
            };
            let (a, va) = signed();
            let (b, vb) = signed();
            let (lower, upper) = ordered_query(
                rng,
                Bson::Decimal128(a),
                Bson::Decimal128(b),
                va <= vb,
                va == vb,
            );
            RangeCase {
                value,
                options,
                lower,
                upper,
            }
        }
    }
}

/// `{"v": {"$and": [...]}}`: the query as a match expression (bounds in
/// either order) or an aggregate one.
fn expression(
    rng: &mut StdRng,
    lower: Option<(Bson, bool)>,
    upper: Option<(Bson, bool)>,
) -> RawDocumentBuf {
    let aggregate = rng.random_bool(0.3);
    let mut bounds = vec![
        lower.map(|(v, incl)| (if incl { "$gte" } else { "$gt" }, v)),
        upper.map(|(v, incl)| (if incl { "$lte" } else { "$lt" }, v)),
    ];
    if rng.random_bool(0.3) {
        bounds.reverse();
    }
    let mut and = Vec::new();
    for (op, value) in bounds.into_iter().flatten() {
        let mut element = Document::new();
        if aggregate {
            element.insert(op, Bson::Array(vec![Bson::String("$f".into()), value]));
        } else {
            let mut operand = Document::new();
            operand.insert(op, value);
            element.insert("f", operand);
        }
        and.push(Bson::Document(element));
    }
    let mut e = Document::new();
    e.insert("$and", and);
    v_doc(Bson::Document(e))
}

#[test]
#[ignore = "needs CSFLE_ORACLE_PYTHON"]
fn range_against_libmongocrypt() {
    let mut s = setup();
    let mut samples = Vec::new();
    let mut ops = Vec::new();
    let mut checks = Vec::new();
    let mut rng = QeRandom::system();
    for kind in RANGE_KINDS {
        for _ in 0..PER_TYPE {
            let key_index = s.rng.random_range(0..N_KEYS);
            let key = &s.keys[key_index];
            let case = range_case(&mut s.rng, kind);
            let contention = random_contention(&mut s.rng);
            let value = v_doc(case.value);
            let sample = samples.len();
            let ours = encrypt_value(
                v_of(&value),
                key.keys(),
                &options(
                    QeAlgorithm::Range,
                    Some(contention),
                    None,
                    Some(&case.options),
                ),
                &mut rng,
            )
            .unwrap_or_else(|e| panic!("Range {kind:?}: csfle refused: {e}"));
            assert_eq!(ours[0], INSERT_UPDATE_V2);
            ops.push(decrypt_op(&ours));
            checks.push(Check::TheyDecryptOurs { sample });
            ops.push(encrypt_op(
                key,
                "Range",
                &value,
                Some(contention),
                None,
                Some(&case.options),
                false,
            ));
            checks.push(Check::TheirInsert { sample, ours });
            let query = expression(&mut s.rng, case.lower, case.upper);
            ops.push(encrypt_op(
                key,
                "Range",
                &query,
                Some(contention),
                Some("range"),
                Some(&case.options),
                true,
            ));
            checks.push(Check::FindRange { sample });
            samples.push(Sample {
                kind: format!("{kind:?}"),
                key: key_index,
                value,
                contention,
                range: Some(case.options),
                expression: Some(query),
            });
        }
    }
    // Refusals: the prose's cases 6 to 8 and a trim factor too large.
    let key = &s.keys[0];
    let int_opts = {
        let mut o = RangeOptions::default();
        o.min = Some(Bson::Int32(0));
        o.max = Some(Bson::Int32(200));
        o.sparsity = Some(1);
        o.trim_factor = Some(1);
        o.precision = None;
        o
    };
    let with_precision = {
        let mut o = int_opts.clone();
        o.precision = Some(2);
        o
    };
    let big_trim = {
        let mut o = int_opts.clone();
        o.trim_factor = Some(8);
        o
    };
    let double_without_precision = {
        let mut o = int_opts.clone();
        o.min = Some(Bson::Double(0.0));
        o.max = Some(Bson::Double(200.0));
        o
    };
    let refusals: [(&'static str, Bson, &RangeOptions); 5] = [
        ("Range: a value above max", Bson::Int32(201), &int_opts),
        ("Range: a value of another type", Bson::Int64(6), &int_opts),
        (
            "Range: precision with int32",
            Bson::Int32(6),
            &with_precision,
        ),
        (
            "Range: trim factor of the domain's bits",
            Bson::Int32(6),
            &big_trim,
        ),
        (
            "Range: double bounds without precision",
            Bson::Double(6.0),
            &double_without_precision,
        ),
    ];
    for (label, value, range) in refusals {
        let value = v_doc(value);
        let err = encrypt_value(
            v_of(&value),
            key.keys(),
            &options(QeAlgorithm::Range, Some(0), None, Some(range)),
            &mut rng,
        )
        .err()
        .unwrap_or_else(|| panic!("csfle accepted {label}"));
        ops.push(encrypt_op(
            key,
            "Range",
            &value,
            Some(0),
            None,
            Some(range),
            false,
        ));
        checks.push(Check::BothRefuse {
            label,
            ours: err.to_string(),
        });
    }

    let (version, results) = s.run(ops);
    let mut tallies = BTreeMap::new();
    evaluate(&s, &samples, &checks, &results, &mut tallies);
    for sm in &samples {
        tallies.entry(sm.kind.clone()).or_default().samples += 1;
    }
    print_tallies("Range", &version, &tallies);
    let (refused, sampled): (BTreeMap<String, Tally>, BTreeMap<String, Tally>) =
        tallies.into_iter().partition(|(_, t)| t.samples == 0);
    assert_eq!(refused.len(), 5, "every refusal agreed");
    assert_every_type_ran(&sampled, RANGE_KINDS.len());
    for (kind, t) in &sampled {
        assert_eq!(t.finds_equal, t.samples, "{kind}");
        assert!(
            t.inserts_equal_cf0 > 0,
            "{kind}: no contention-0 insert compared"
        );
    }
}
