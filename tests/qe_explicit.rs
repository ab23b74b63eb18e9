//! Queryable Encryption's explicit API, end to end without a server:
//! `ClientEncryption` over a memory key vault with the local KMS, and the
//! synchronous `ExplicitEncrypter` over a key ring.
//!
//! * every algorithm (Unindexed, Indexed, Range) and every range type
//!   (int32, int64, date, double with and without precision) encrypts and
//!   decrypts back, through both APIs; queries (equality find payloads,
//!   range expressions) have the spec's shapes;
//! * the options are refused with libmongocrypt's words before the key
//!   vault is asked; text search is refused by name; FLE1 schemas refuse
//!   QE's algorithm names;
//! * documents mixing FLE1 and QE values decrypt whole, in every path;
//!   find payloads and placeholders are refused;
//! * libmongocrypt's fourteen `test/data/explicit-decrypt/FLE2*.json`
//!   (vendored) through the key vault: eleven decrypt, the v1 indexed
//!   values fetching their second key in a second round, the others are
//!   refused;
//! * the audit sink is asked before QE values are decrypted, and can
//!   refuse.

#![cfg(all(feature = "qe", feature = "driver"))]

#[path = "common/qe_vectors.rs"]
mod qe_vectors;
#[path = "common/recording_vault.rs"]
mod recording_vault;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, RawDocument, RawDocumentBuf, doc};
use csfle::EncryptionAlgorithm::{Indexed, Range, Unindexed};
use csfle::keyvault::{KeyRing, KeyVault, MemoryKeyVault};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName};
use csfle::qe::explicit::{QeAlgorithm, QeEncryptOptions, QueryType, RangeOptions};
use csfle::qe::payload::InsertUpdatePayload;
use csfle::{
    Algorithm, ClientEncryption, DataKeyOptions, EncryptionAlgorithm, ExplicitEncrypter, KeyId,
    KeyRef,
};
use qe_vectors::{data_dir, hex};
use recording_vault::RecordingKeyVault;
use std::sync::{Arc, Mutex};

fn local() -> ProviderName {
    ProviderName::parse("local").unwrap()
}

fn kms() -> KmsProviders {
    KmsProviders::new().with_local(local(), LocalMasterKey::new(&[9; 96]).unwrap())
}

/// A client over a fresh memory key vault holding one local key.
async fn client() -> (ClientEncryption, KeyId) {
    let ce = ClientEncryption::new(MemoryKeyVault::new(), kms());
    let id = ce
        .create_data_key(
            &local(),
            DataKeyOptions::default().with_key_alt_names(["qe"]),
        )
        .await
        .unwrap();
    (ce, id)
}

/// The first byte of a subtype-6 binary.
fn first_byte(b: &Binary) -> u8 {
    assert_eq!(b.subtype, BinarySubtype::Encrypted);
    b.bytes[0]
}

/// The subtype-6 binary at `doc[field][op]` (a match expression's bound).
fn bound<'a>(doc: &'a Document, field: &str, op: &str) -> &'a Binary {
    match doc.get_document(field).unwrap().get(op) {
        Some(Bson::Binary(b)) => b,
        other => panic!("{field}.{op}: {other:?}"),
    }
}

/// The `payloadId` of a range find payload (first byte 13).
fn payload_id(b: &Binary) -> i32 {
    assert_eq!(first_byte(b), 13);
    RawDocument::from_bytes(&b.bytes[1..])
        .unwrap()
        .get_i32("payloadId")
        .unwrap()
}

fn err<T: std::fmt::Debug>(r: Result<T, csfle::Error>) -> String {
    r.unwrap_err().to_string()
}

#[tokio::test]
async fn unindexed_and_indexed_round_trip() {
    let (ce, id) = client().await;
    let key = KeyRef::Id(id);
    let values = [
        Bson::from("457-55-5462"),
        Bson::Int32(-7),
        Bson::Int64(1 << 40),
        Bson::Double(2.5),
        Bson::Boolean(true),
        Bson::DateTime(DateTime::from_millis(1_700_000_000_000)),
        Bson::Document(doc! {"a": [1, "x"]}),
        Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![1, 2, 3],
        }),
        Bson::ObjectId(bson::oid::ObjectId::from_bytes([7; 12])),
        Bson::Decimal128("1.5".parse().unwrap()),
    ];
    for v in &values {
        let ct = ce.encrypt(v, &key, Unindexed).await.unwrap();
        assert_eq!(first_byte(&ct), 16, "{v}");
        assert_eq!(&ce.decrypt(&ct).await.unwrap(), v);
        // Randomized: never the same bytes twice.
        assert_ne!(ce.encrypt(v, &key, Unindexed).await.unwrap(), ct);
    }
    for v in &values[..3] {
        for cf in [0, 3] {
            let ct = ce
                .encrypt(v, &key, Indexed)
                .contention_factor(cf)
                .await
                .unwrap();
            assert_eq!(first_byte(&ct), 11, "{v}");
            let payload = InsertUpdatePayload::parse(&ct.bytes).unwrap();
            assert!((0..=cf).contains(&payload.contention_factor()));
            assert_eq!(payload.user_key_id(), id.bytes());
            assert_eq!(&ce.decrypt(&ct).await.unwrap(), v);
        }
        // An equality query: deterministic, and no value to decrypt.
        let find = || {
            ce.encrypt(v, &key, Indexed)
                .contention_factor(3)
                .query_type(QueryType::Equality)
        };
        let a = find().await.unwrap();
        assert_eq!(first_byte(&a), 12);
        assert_eq!(find().await.unwrap(), a);
        let e = err(ce.decrypt(&a).await);
        assert!(
            e.contains("blob subtype 12 is an equality find payload"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn range_round_trips_for_every_type() {
    let (ce, id) = client().await;
    let key = KeyRef::Id(id);
    let cases: Vec<(RangeOptions, Vec<Bson>)> = vec![
        (
            RangeOptions::default()
                .with_min(0)
                .with_max(200)
                .with_sparsity(1),
            vec![Bson::Int32(0), Bson::Int32(42), Bson::Int32(200)],
        ),
        (
            RangeOptions::default()
                .with_min(-1_000_000i64)
                .with_max(1_000_000i64),
            vec![Bson::Int64(-5), Bson::Int64(999_999)],
        ),
        (
            RangeOptions::default()
                .with_min(DateTime::from_millis(0))
                .with_max(DateTime::from_millis(4_102_444_800_000))
                .with_trim_factor(1),
            vec![Bson::DateTime(DateTime::from_millis(1_700_000_000_000))],
        ),
        (
            RangeOptions::default()
                .with_min(0.0)
                .with_max(100.0)
                .with_precision(2),
            vec![Bson::Double(3.25), Bson::Double(99.99)],
        ),
        // A double index without bounds or precision.
        (
            RangeOptions::default().with_sparsity(3),
            vec![Bson::Double(-1.5e300), Bson::Double(0.0)],
        ),
    ];
    for (options, values) in cases {
        for v in values {
            let ct = ce
                .encrypt(&v, &key, Range)
                .contention_factor(2)
                .range_options(options.clone())
                .await
                .unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(first_byte(&ct), 11, "{v}");
            let edges = RawDocument::from_bytes(&ct.bytes[1..])
                .unwrap()
                .get_array("g")
                .unwrap()
                .into_iter()
                .count();
            assert!(edges > 0, "{v}: a range insert carries its edges");
            assert_eq!(ce.decrypt(&ct).await.unwrap(), v);
        }
    }
}

#[tokio::test]
async fn range_queries_are_encrypted_expressions() {
    let (ce, id) = client().await;
    let key = KeyRef::Id(id);
    let range = RangeOptions::default()
        .with_min(0)
        .with_max(200)
        .with_sparsity(1);
    let run = |expr: Document| {
        let (ce, key, range) = (&ce, &key, range.clone());
        async move {
            ce.encrypt_expression(&expr, key)
                .contention_factor(0)
                .range_options(range)
                .await
        }
    };
    // A match expression with two bounds: the cover in the first payload,
    // a stub with the same payload id in the second.
    let out = run(doc! {"$and": [{"age": {"$gte": 23}}, {"age": {"$lte": 35}}]})
        .await
        .unwrap();
    let and = out.get_array("$and").unwrap();
    assert_eq!(and.len(), 2);
    let first = bound(and[0].as_document().unwrap(), "age", "$gte");
    let second = bound(and[1].as_document().unwrap(), "age", "$lte");
    let id_1 = payload_id(first);
    assert_eq!(payload_id(second), id_1);
    let stub = RawDocument::from_bytes(&second.bytes[1..]).unwrap();
    assert!(stub.get("payload").unwrap().is_none());
    // The next expression takes the process's next payload id.
    let out = run(doc! {"$and": [{"$gt": ["$age", 5]}, {"$lt": ["$age", 50]}]})
        .await
        .unwrap();
    let and = out.get_array("$and").unwrap();
    let agg = and[0].as_document().unwrap().get_array("$gt").unwrap();
    assert_eq!(agg[0], Bson::from("$age"));
    let Bson::Binary(p) = &agg[1] else {
        panic!("not a payload: {agg:?}");
    };
    assert!(payload_id(p) > id_1);
    // One bound.
    let out = run(doc! {"$and": [{"age": {"$lt": 50}}]}).await.unwrap();
    assert_eq!(out.get_array("$and").unwrap().len(), 1);
    // A query holds no value.
    let e = err(ce.decrypt(first).await);
    assert!(e.contains("blob subtype 13 is a range find payload"), "{e}");
    // The expression's own errors (after the key is fetched).
    for (expr, expected) in [
        (doc! {"$or": []}, "error unable to find '$and'"),
        (doc! {"$and": 1}, "expected '$and' to be array"),
        (
            doc! {"$and": [{"age": {"$eq": 1}}]},
            "unsupported operator: $eq",
        ),
        (
            doc! {"$and": [{"age": {"$gt": 1i64}}]},
            "expected matching 'min' and value type",
        ),
    ] {
        let e = err(run(expr).await);
        assert!(e.contains(expected), "{e}");
    }
}

#[tokio::test]
async fn the_synchronous_encrypter_encrypts_and_decrypts_qe() {
    let (ce, id) = client().await;
    let key = KeyRef::Id(id);
    let ring = KeyRing::new([ce.get_key(id).await.unwrap().unwrap()], kms()).unwrap();
    let enc = ExplicitEncrypter::new(ring);
    let range = RangeOptions::default().with_min(0).with_max(200);
    let v = Bson::Int32(77);
    for options in [
        QeEncryptOptions::new(QeAlgorithm::Unindexed),
        QeEncryptOptions::new(QeAlgorithm::Indexed).with_contention_factor(4),
        QeEncryptOptions::new(QeAlgorithm::Range)
            .with_contention_factor(1)
            .with_range_options(&range),
    ] {
        let ct = enc.encrypt_qe(&v, &key, &options).unwrap();
        // Each API reads what the other wrote.
        assert_eq!(enc.decrypt(&ct).unwrap(), v);
        assert_eq!(ce.decrypt(&ct).await.unwrap(), v);
    }
    let from_client = ce
        .encrypt(&v, &key, Indexed)
        .contention_factor(0)
        .await
        .unwrap();
    assert_eq!(enc.decrypt(&from_client).unwrap(), v);
    // The equality query is the same bytes from both.
    let query = QeEncryptOptions::new(QeAlgorithm::Indexed)
        .with_contention_factor(2)
        .with_query_type(QueryType::Equality);
    assert_eq!(
        enc.encrypt_qe(&v, &key, &query).unwrap(),
        ce.encrypt(&v, &key, Indexed)
            .contention_factor(2)
            .query_type(QueryType::Equality)
            .await
            .unwrap()
    );
    let expr = RawDocumentBuf::from_document(&doc! {"$and": [{"n": {"$gt": 1}}]}).unwrap();
    let options = QeEncryptOptions::new(QeAlgorithm::Range)
        .with_contention_factor(0)
        .with_query_type(QueryType::Range)
        .with_range_options(&range);
    let out = enc.encrypt_qe_expression(&expr, &key, &options).unwrap();
    let and = out.get_array("$and").unwrap();
    let p = and
        .get_document(0)
        .unwrap()
        .get_document("n")
        .unwrap()
        .get_binary("$gt")
        .unwrap();
    assert_eq!(p.bytes[0], 13);
    // A range query of a value, not an expression: refused before the key.
    let e = enc
        .encrypt_qe(&v, &KeyRef::AltName("none".into()), &options)
        .unwrap_err()
        .to_string();
    assert!(e.contains("a range query encrypts an expression"), "{e}");
}

#[tokio::test]
async fn option_errors_are_libmongocrypts_and_come_before_the_key_vault() {
    let vault = RecordingKeyVault::new();
    let ce = ClientEncryption::new(vault.clone(), kms());
    let key = KeyRef::AltName("none".into());
    let v = Bson::Int32(1);
    let range = || RangeOptions::default().with_min(0).with_max(200);
    let expr = doc! {"$and": [{"age": {"$gt": 1}}]};
    let cases = [
        (
            err(ce.encrypt(&v, &key, Unindexed).contention_factor(1).await),
            "cannot set contention factor with no index type",
        ),
        (
            err(ce
                .encrypt(&v, &key, Unindexed)
                .query_type(QueryType::Equality)
                .await),
            "cannot set query type with no index type",
        ),
        (
            err(ce.encrypt(&v, &key, Unindexed).range_options(range()).await),
            "cannot set range opts with no index type",
        ),
        (
            err(ce
                .encrypt(&v, &key, Indexed)
                .contention_factor(0)
                .range_options(range())
                .await),
            "cannot set range opts with equality index type",
        ),
        (
            err(ce.encrypt(&v, &key, Indexed).await),
            "contention factor is required for indexed algorithm",
        ),
        (
            err(ce.encrypt(&v, &key, Range).range_options(range()).await),
            "contention factor is required for range indexed algorithm",
        ),
        (
            err(ce.encrypt(&v, &key, Range).contention_factor(0).await),
            "range opts are required for range indexed algorithm",
        ),
        (
            err(ce.encrypt(&v, &key, Indexed).contention_factor(-1).await),
            "Error validating contention: contention must be non-negative, got: -1",
        ),
        (
            err(ce
                .encrypt(&v, &key, Indexed)
                .contention_factor(0)
                .query_type(QueryType::Range)
                .await),
            "query_type (Range) must match index_type (Equality)",
        ),
        (
            err(ce
                .encrypt(&v, &key, Range)
                .contention_factor(0)
                .range_options(range())
                .query_type(QueryType::Range)
                .await),
            "a range query encrypts an expression",
        ),
        (
            err(ce
                .encrypt(&v, &key, Range)
                .contention_factor(0)
                .range_options(range().with_sparsity(-1))
                .await),
            "sparsity must be non-negative, got: -1",
        ),
        // FLE1 takes none of QE's options.
        (
            err(ce
                .encrypt(&v, &key, Algorithm::Deterministic)
                .contention_factor(0)
                .await),
            "cannot set contention factor with no index type",
        ),
        (
            err(ce
                .encrypt(&v, &key, Algorithm::Random)
                .range_options(range())
                .await),
            "cannot set range opts with no index type",
        ),
        // Expressions.
        (
            err(ce
                .encrypt_expression(&expr, &key)
                .contention_factor(0)
                .await),
            "range opts are required for range indexed algorithm",
        ),
        (
            err(ce
                .encrypt_expression(&expr, &key)
                .range_options(range())
                .await),
            "contention factor is required for range indexed algorithm",
        ),
        (
            err(ce
                .encrypt_expression(&expr, &key)
                .contention_factor(0)
                .range_options(range())
                .query_type(QueryType::Equality)
                .await),
            "query_type (Equality) must match index_type (Range)",
        ),
        // A type QE refuses, before the key too.
        (
            err(ce.encrypt(&Bson::Null, &key, Algorithm::Random).await),
            "BSON type invalid for encryption",
        ),
    ];
    for (e, expected) in &cases {
        assert!(e.contains(expected), "expected '{expected}' in: {e}");
    }
    assert!(
        vault.queries().is_empty(),
        "no option error asks the key vault: {:?}",
        vault.queries()
    );
    // With valid options the key vault is asked (and has no such key).
    let e = err(ce.encrypt(&v, &key, Indexed).contention_factor(0).await);
    assert!(e.contains("no data key with keyAltName 'none'"), "{e}");
    assert_eq!(vault.queries().len(), 1);
}

#[test]
fn algorithm_names() {
    for (name, algorithm) in [
        (
            "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic",
            EncryptionAlgorithm::Deterministic,
        ),
        (
            "AEAD_AES_256_CBC_HMAC_SHA_512-Random",
            EncryptionAlgorithm::Random,
        ),
        ("Indexed", Indexed),
        ("Unindexed", Unindexed),
        ("Range", Range),
    ] {
        assert_eq!(EncryptionAlgorithm::from_name(name).unwrap(), algorithm);
        assert_eq!(algorithm.name(), name);
    }
    assert_eq!(
        EncryptionAlgorithm::from(Algorithm::Deterministic).fle1(),
        Some(Algorithm::Deterministic)
    );
    assert_eq!(Indexed.fle1(), None);
    assert_eq!(Range.qe(), Some(QeAlgorithm::Range));
    for text in ["String", "TextPreview"] {
        let e = EncryptionAlgorithm::from_name(text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the String (text search) algorithm is not supported by csfle"),
            "{e}"
        );
    }
    for unknown in ["indexed", "RangePreview", ""] {
        let e = EncryptionAlgorithm::from_name(unknown)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown encryption algorithm"), "{e}");
    }
}

#[test]
fn fle1_schemas_refuse_qe_algorithms() {
    use csfle::schema::{EncryptionSchema, SchemaSource};
    let key = Bson::Binary(KeyId::from_bytes([1; 16]).to_binary());
    for name in ["Indexed", "Unindexed", "Range", "String"] {
        assert_eq!(Algorithm::from_name(name), None);
        for schema in [
            doc! {"bsonType": "object", "properties": {"ssn": {"encrypt": {"keyId": [key.clone()], "bsonType": "string", "algorithm": name}}}},
            doc! {"bsonType": "object", "encryptMetadata": {"keyId": [key.clone()], "algorithm": name}, "properties": {"ssn": {"encrypt": {"bsonType": "string"}}}},
        ] {
            let e = EncryptionSchema::parse(&schema, SchemaSource::Local)
                .unwrap_err()
                .to_string();
            assert!(e.contains("it is Queryable Encryption's"), "{name}: {e}");
        }
    }
}

#[tokio::test]
async fn mixed_fle1_and_qe_documents_decrypt_whole() {
    let (ce, id) = client().await;
    let key = KeyRef::Id(id);
    let range = RangeOptions::default()
        .with_min(0)
        .with_max(200)
        .with_sparsity(1);
    let mut encrypted = doc! {"_id": 1};
    let mut plain = doc! {"_id": 1};
    // Enough FLE1 values for the lanes, before and after the QE ones.
    for i in 0..20 {
        let ct = ce
            .encrypt(&Bson::Int32(i), &key, Algorithm::Deterministic)
            .await
            .unwrap();
        encrypted.insert(format!("a{i}"), ct);
        plain.insert(format!("a{i}"), i);
    }
    let unindexed = ce.encrypt(&"u".into(), &key, Unindexed).await.unwrap();
    let indexed = ce
        .encrypt(&Bson::Int64(5), &key, Indexed)
        .contention_factor(2)
        .await
        .unwrap();
    let ranged = ce
        .encrypt(&Bson::Int32(42), &key, Range)
        .contention_factor(0)
        .range_options(range)
        .await
        .unwrap();
    let random = ce
        .encrypt(&"r".into(), &key, Algorithm::Random)
        .await
        .unwrap();
    encrypted.insert("u", unindexed);
    encrypted.insert(
        "nested",
        doc! {"i": indexed, "list": [ranged, 7, random], "plain": "p"},
    );
    plain.insert("u", "u");
    plain.insert(
        "nested",
        doc! {"i": 5i64, "list": [42, 7, "r"], "plain": "p"},
    );
    for i in 0..20 {
        let ct = ce
            .encrypt(&Bson::Int32(i), &key, Algorithm::Random)
            .await
            .unwrap();
        encrypted.insert(format!("b{i}"), ct);
        plain.insert(format!("b{i}"), i);
    }
    assert_eq!(ce.decrypt_document(&encrypted).await.unwrap(), plain);
    let raw = RawDocumentBuf::from_document(&encrypted).unwrap();
    let raw_ref: &RawDocument = &raw;
    for out in ce.decrypt_raw_documents(&[raw_ref, raw_ref]).await.unwrap() {
        assert_eq!(out.to_document().unwrap(), plain);
    }
    let ring = KeyRing::new([ce.get_key(id).await.unwrap().unwrap()], kms()).unwrap();
    let enc = ExplicitEncrypter::new(ring);
    assert_eq!(enc.decrypt_document(&encrypted).unwrap(), plain);
    assert_eq!(
        enc.decrypt_raw_document(&raw)
            .unwrap()
            .to_document()
            .unwrap(),
        plain
    );

    // A query in a document fails the whole document, in every path.
    let find = ce
        .encrypt(&Bson::Int64(5), &key, Indexed)
        .contention_factor(2)
        .query_type(QueryType::Equality)
        .await
        .unwrap();
    let mut with_find = encrypted.clone();
    with_find.insert("q", find);
    let raw = RawDocumentBuf::from_document(&with_find).unwrap();
    let raw_ref: &RawDocument = &raw;
    for e in [
        err(ce.decrypt_document(&with_find).await),
        err(ce.decrypt_raw_documents(&[raw_ref]).await),
        enc.decrypt_document(&with_find).unwrap_err().to_string(),
        enc.decrypt_raw_document(&raw).unwrap_err().to_string(),
    ] {
        assert!(
            e.contains("blob subtype 12 is an equality find payload"),
            "{e}"
        );
    }
}

/// libmongocrypt's test keys (`test/data/keys/`, ids from their file
/// names), wrapped under the local master key into `vault`.
async fn add_test_keys(vault: &impl KeyVault) {
    for name in [
        "12345678123498761234123456789012",
        "ABCDEFAB123498761234123456789012",
    ] {
        let path = data_dir().join(format!("keys/{name}-key-material.txt"));
        let material = hex(std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim());
        let mut key =
            csfle::create_data_key(&kms(), &local(), vec![], Some(material.as_slice())).unwrap();
        key.id = KeyId::from_bytes(hex(name).try_into().unwrap());
        vault.insert_key(&key).await.unwrap();
    }
}

/// `test/data/explicit-decrypt/<name>.json`'s value.
fn explicit_decrypt_value(name: &str) -> Binary {
    let path = data_dir().join(format!("explicit-decrypt/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match qe_vectors::ejson_document(&text).get("v") {
        Some(Bson::Binary(b)) => b.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

/// One decryption as the audit sink saw it: key ids, documents.
type Seen = (Vec<KeyId>, usize);

#[derive(Debug, Default)]
struct Recorder {
    refuse: bool,
    seen: Mutex<Vec<Seen>>,
}

impl csfle::AuditSink for Recorder {
    fn before_decrypt(&self, event: &csfle::DecryptionEvent<'_>) -> Result<(), csfle::AuditError> {
        self.seen
            .lock()
            .unwrap()
            .push((event.keys.iter().map(|k| k.id).collect(), event.documents));
        if self.refuse {
            Err(csfle::AuditError::new("the audit store is down"))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn libmongocrypt_explicit_decrypt_values_through_the_key_vault() {
    let key_123 = KeyId::from_bytes(hex("12345678123498761234123456789012").try_into().unwrap());
    let key_abc = KeyId::from_bytes(hex("ABCDEFAB123498761234123456789012").try_into().unwrap());
    // The plaintexts of libmongocrypt's test/test-mongocrypt-ctx-decrypt.c
    // (`_test_explicit_decrypt`).
    let decryptable: [(&str, Bson); 11] = [
        ("FLE2InsertUpdatePayload", "value123".into()),
        ("FLE2InsertUpdatePayload-RangeV1", Bson::Int32(123456)),
        ("FLE2UnindexedEncryptedValue", "value123".into()),
        ("FLE2IndexedEqualityEncryptedValue", "value123".into()),
        ("FLE2IndexedRangeEncryptedValue", Bson::Int32(123456)),
        ("FLE2InsertUpdatePayloadV2", "value123".into()),
        ("FLE2InsertUpdatePayloadV2-RangeV1", Bson::Int32(123456)),
        ("FLE2InsertUpdatePayloadV2-RangeV2", Bson::Int32(123456)),
        ("FLE2UnindexedEncryptedValueV2", "foo".into()),
        ("FLE2IndexedEqualityEncryptedValueV2", "foo".into()),
        ("FLE2IndexedRangeEncryptedValueV2", Bson::Int32(123)),
    ];
    let mut whole = Document::new();
    let mut whole_plain = Document::new();
    for (name, expected) in &decryptable {
        // A fresh client each: its key-vault queries and audit events are
        // this value's.
        let vault = RecordingKeyVault::new();
        add_test_keys(&vault).await;
        let audit = Arc::new(Recorder::default());
        let ce = ClientEncryption::new(vault.clone(), kms()).with_audit_sink(audit.clone());
        let value = explicit_decrypt_value(name);
        assert_eq!(&ce.decrypt(&value).await.unwrap(), expected, "{name}");
        let queries = vault.queries();
        let seen = audit.seen.lock().unwrap().clone();
        if name.starts_with("FLE2Indexed") && !name.ends_with("V2") {
            // v1 indexed values: the server layer under 123…, the client
            // layer under ABC…, named only inside the server layer: a
            // second round, asked of the sink too.
            assert_eq!(queries.len(), 2, "{name}: {queries:?}");
            assert_eq!(queries[0].0, [key_123], "{name}");
            assert_eq!(queries[1].0, [key_abc], "{name}");
            assert_eq!(seen, [(vec![key_123], 1), (vec![key_abc], 1)], "{name}");
        } else {
            assert_eq!(queries.len(), 1, "{name}: {queries:?}");
            assert_eq!(seen, [(vec![key_abc], 1)], "{name}");
        }
        whole.insert(*name, value);
        whole_plain.insert(*name, expected.clone());
    }
    // All of them in one document, beside an FLE1 value of libmongocrypt's.
    let vault = MemoryKeyVault::new();
    add_test_keys(&vault).await;
    let ce = ClientEncryption::new(vault.clone(), kms());
    let fle1 = explicit_decrypt_value("FLE1DeterministicEncryptedValue");
    whole.insert("fle1", fle1);
    whole_plain.insert("fle1", "foo");
    assert_eq!(ce.decrypt_document(&whole).await.unwrap(), whole_plain);
    let raw = RawDocumentBuf::from_document(&whole).unwrap();
    let raw_ref: &RawDocument = &raw;
    assert_eq!(
        ce.decrypt_raw_documents(&[raw_ref]).await.unwrap()[0]
            .to_document()
            .unwrap(),
        whole_plain
    );

    // The queries and the placeholder hold no value: refused (libmongocrypt
    // leaves them as they are; csfle fails closed, as for FLE1 markings).
    for (name, expected) in [
        (
            "FLE2FindEqualityPayload",
            "blob subtype 5 is an equality find payload",
        ),
        (
            "FLE2FindEqualityPayloadV2",
            "blob subtype 12 is an equality find payload",
        ),
        (
            "FLE2EncryptionPlaceholder",
            "blob subtype 3 is a Queryable Encryption placeholder",
        ),
    ] {
        let e = err(ce.decrypt(&explicit_decrypt_value(name)).await);
        assert!(e.contains(expected), "{name}: {e}");
    }
}

#[tokio::test]
async fn the_audit_sink_is_asked_before_qe_values_are_decrypted() {
    let vault = MemoryKeyVault::new();
    let setup = ClientEncryption::new(vault.clone(), kms());
    let id = setup
        .create_data_key(&local(), DataKeyOptions::default())
        .await
        .unwrap();
    let key = KeyRef::Id(id);
    let unindexed = setup.encrypt(&"s".into(), &key, Unindexed).await.unwrap();
    let indexed = setup
        .encrypt(&"s".into(), &key, Indexed)
        .contention_factor(1)
        .await
        .unwrap();
    let doc = doc! {"u": unindexed.clone(), "i": indexed.clone()};

    let accepting = Arc::new(Recorder::default());
    let ce = ClientEncryption::new(vault.clone(), kms()).with_audit_sink(accepting.clone());
    assert_eq!(
        ce.decrypt_document(&doc).await.unwrap(),
        doc! {"u": "s", "i": "s"}
    );
    assert_eq!(ce.decrypt(&indexed).await.unwrap(), Bson::from("s"));
    assert_eq!(
        *accepting.seen.lock().unwrap(),
        [(vec![id], 1), (vec![id], 1)]
    );

    let refusing = Arc::new(Recorder {
        refuse: true,
        ..Recorder::default()
    });
    let ce = ClientEncryption::new(vault.clone(), kms()).with_audit_sink(refusing.clone());
    for r in [
        ce.decrypt(&unindexed).await.map(|_| ()),
        ce.decrypt_document(&doc).await.map(|_| ()),
    ] {
        let e = r.unwrap_err();
        assert!(
            matches!(e, csfle::Error::Client(csfle::ClientError::Audit(_))),
            "{e}"
        );
    }
    assert_eq!(refusing.seen.lock().unwrap().len(), 2);

    // Without the key, a QE value fails like an FLE1 one.
    let empty = ClientEncryption::new(MemoryKeyVault::new(), kms());
    let e = err(empty.decrypt(&unindexed).await);
    assert!(e.contains("no data key with id"), "{e}");
}
