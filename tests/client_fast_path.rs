//! The fast paths of the encrypted collection equal the analysed paths
//! they stand in for, without a server.
//!
//! Reads: a cursor's batch through `AutoEncrypter::decrypt_batch` (the
//! scan that skips documents without encrypted values and walks the
//! batch once for its keys) and through
//! `ClientEncryption::decrypt_raw_documents` (the full walk): generated
//! batches of valid, tampered, foreign-key, marking, truncated, Queryable
//! Encryption-looking and byte-flipped values give byte-identical
//! documents or the same refusal, after the same audit events.
//!
//! Writes: the documents of an insert through
//! `AutoEncrypter::encrypt_insert_documents` (planned and encrypted in one
//! pass over the serialized documents when the schema allows) and through
//! `encrypt_command` of the `insert` command (analysis, markings,
//! `encrypt_markings`): generated documents and the hostile and
//! legitimate tables' inserts give the same bytes (random ciphertexts:
//! the same header and length, decrypting to the same plaintext) or the
//! same refusal.

mod common;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf, doc};
use common::tables::{SECRET, SECRET2, hostile, legitimate, marking, people_schema};
use csfle::keyvault::{KeyCacheOptions, KeyVault, MemoryKeyVault};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
use csfle::{
    Algorithm, AuditError, AuditSink, AutoEncrypter, AutoEncryptionOptions, ClientEncryption,
    DecryptionEvent, KeyId, KeyRef,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::{Arc, Mutex};

const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
const RND: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";

/// The tables' key (alternate name "fuzz"), and a second one.
const K1: [u8; 16] = [0x11; 16];
const K2: [u8; 16] = [0x44; 16];

fn id_array(id: [u8; 16]) -> Bson {
    Bson::Array(vec![Bson::Binary(KeyId::from_bytes(id).to_binary())])
}

/// `app.fast`: deterministic `ssn` (a string), `n` (an int), `d` (a
/// date), `l` (a long), `o` (an object id), `t` (a timestamp) and `b` (a
/// binary), random `r`, random `p` keyed by the document's `owner`, and
/// `obj.s` below a plain-looking document.
fn fast_schema() -> Document {
    doc! {
        "bsonType": "object",
        "properties": {
            "ssn": {"encrypt": {"keyId": id_array(K1), "bsonType": "string", "algorithm": DET}},
            "n": {"encrypt": {"keyId": id_array(K2), "bsonType": "int", "algorithm": DET}},
            "r": {"encrypt": {"keyId": id_array(K1), "algorithm": RND}},
            "p": {"encrypt": {"keyId": "/owner", "algorithm": RND}},
            "obj": {"bsonType": "object", "properties": {
                "s": {"encrypt": {"keyId": id_array(K2), "bsonType": "string", "algorithm": DET}},
            }},
            "name": {"bsonType": "string"},
            "d": {"encrypt": {"keyId": id_array(K2), "bsonType": "date", "algorithm": DET}},
            "l": {"encrypt": {"keyId": id_array(K2), "bsonType": "long", "algorithm": DET}},
            "o": {"encrypt": {"keyId": id_array(K1), "bsonType": "objectId", "algorithm": DET}},
            "t": {"encrypt": {"keyId": id_array(K1), "bsonType": "timestamp", "algorithm": DET}},
            "b": {"encrypt": {"keyId": id_array(K2), "bsonType": "binData", "algorithm": DET}},
        },
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn kms() -> KmsProviders {
    KmsProviders::new().with_local(
        ProviderName::of_kind(ProviderKind::Local),
        LocalMasterKey::new(&[0x33; 96]).unwrap(),
    )
}

/// A key vault with both keys.
async fn vault() -> Arc<dyn KeyVault> {
    let vault = MemoryKeyVault::new();
    let local = ProviderName::of_kind(ProviderKind::Local);
    for (id, name, material) in [(K1, "fuzz", 0x22u8), (K2, "other", 0x55u8)] {
        let mut key =
            csfle::create_data_key(&kms(), &local, vec![name.into()], Some(&[material; 96]))
                .unwrap();
        key.id = KeyId::from_bytes(id);
        vault.insert_key(&key).await.unwrap();
    }
    Arc::new(vault)
}

/// Every decryption's keys and document count, in order.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(Vec<KeyId>, usize)>>);

impl AuditSink for Recorder {
    fn before_decrypt(&self, event: &DecryptionEvent<'_>) -> Result<(), AuditError> {
        let keys = event.keys.iter().map(|k| k.id).collect();
        self.0.lock().unwrap().push((keys, event.documents));
        Ok(())
    }
}

/// An encrypter for `app.people` (the tables' schema) and `app.fast`, over
/// `vault`, recording its decryptions in `audit`.
fn auto(vault: &Arc<dyn KeyVault>, audit: Arc<Recorder>) -> AutoEncrypter {
    let encryption =
        ClientEncryption::from_shared_vault(Arc::clone(vault), kms(), KeyCacheOptions::default())
            .with_audit_sink(audit);
    AutoEncrypter::new(
        encryption,
        &doc! {"app.people": people_schema(), "app.fast": fast_schema()},
        AutoEncryptionOptions::default().with_schema_map_only(true),
    )
    .unwrap()
}

// ---------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------

/// The values batches are made of: plain ones, ciphertexts under both
/// keys, and every kind of subtype-6 value the full path refuses.
async fn read_pool(auto: &AutoEncrypter) -> Vec<Bson> {
    let ce = auto.client_encryption();
    let mut pool = vec![
        Bson::from("plain"),
        Bson::Int32(7),
        Bson::Boolean(true),
        Bson::Null,
        Bson::Double(1.5),
        Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![1, 2, 3],
        }),
    ];
    let mut valid = Vec::new();
    for (value, key, algorithm) in [
        (Bson::from(SECRET), K1, Algorithm::Deterministic),
        (Bson::from(SECRET2), K1, Algorithm::Random),
        (Bson::Int64(5), K2, Algorithm::Deterministic),
        (Bson::Document(doc! {"x": SECRET}), K2, Algorithm::Random),
    ] {
        let ct = ce
            .encrypt(&value, &KeyRef::Id(KeyId::from_bytes(key)), algorithm)
            .await
            .unwrap();
        valid.push(ct);
    }
    // Valid ciphertexts are most of the pool: most batches are clean.
    for ct in &valid {
        pool.push(Bson::Binary(ct.clone()));
        pool.push(Bson::Binary(ct.clone()));
    }
    let mut tampered = valid[0].clone();
    *tampered.bytes.last_mut().unwrap() ^= 1;
    let mut foreign = valid[1].clone();
    foreign.bytes[1..17].copy_from_slice(&[0x99; 16]);
    let six = |bytes: Vec<u8>| {
        Bson::Binary(Binary {
            subtype: BinarySubtype::Encrypted,
            bytes,
        })
    };
    pool.extend([
        Bson::Binary(tampered),
        Bson::Binary(foreign),
        marking(),
        six(vec![1, 2, 3]),
        six(vec![]),
        six([vec![16u8], vec![0x42; 60]].concat()),
        six([vec![9u8], vec![0x42; 60]].concat()),
    ]);
    pool
}

const NAMES: [&str; 6] = ["_id", "a", "ssn", "b", "deep", "c"];

/// A batch from generated indices: each field a pool value, at the top,
/// in a sub-document, in an array, or deeper.
fn batch(pool: &[Bson], docs: &[Vec<(u8, u8, u8)>], flips: &[(u16, u8)]) -> Vec<RawDocumentBuf> {
    let mut out: Vec<Vec<u8>> = docs
        .iter()
        .map(|fields| {
            let mut d = Document::new();
            for &(name, value, wrap) in fields {
                let v = pool[usize::from(value) % pool.len()].clone();
                let v = match wrap % 4 {
                    0 => v,
                    1 => Bson::Document(doc! {"in": v}),
                    2 => Bson::Array(vec![v, Bson::Int32(1)]),
                    _ => Bson::Document(doc! {"x": [{"y": v}]}),
                };
                d.insert(NAMES[usize::from(name) % NAMES.len()], v);
            }
            bson::to_vec(&d).unwrap()
        })
        .collect();
    // Byte flips inside a document (its length and terminator kept, so it
    // is still handed over as a document): malformed elements.
    for &(at, x) in flips {
        let n = out.len();
        let d = &mut out[usize::from(at) % n];
        if d.len() > 5 {
            let i = 4 + usize::from(at) % (d.len() - 5);
            d[i] ^= x | 1;
        }
    }
    out.into_iter()
        .map(|d| RawDocumentBuf::from_bytes(d).unwrap())
        .collect()
}

/// Both read paths on one batch: the same documents or the same refusal.
async fn same_reads(
    fast: &AutoEncrypter,
    full: &AutoEncrypter,
    batch: &[RawDocumentBuf],
) -> Result<(), String> {
    let docs: Vec<&RawDocument> = batch.iter().map(|d| &**d).collect();
    let got = fast.decrypt_batch(&docs).await;
    let want = full.client_encryption().decrypt_raw_documents(&docs).await;
    match (got, want) {
        (Ok(got), Ok(want)) => {
            let got: Vec<&[u8]> = got.iter().map(|d| d.as_bytes()).collect();
            let want: Vec<&[u8]> = want.iter().map(|d| d.as_bytes()).collect();
            if got == want {
                Ok(())
            } else {
                Err(format!("different documents: {got:?} vs {want:?}"))
            }
        }
        (Err(got), Err(want)) if got.to_string() == want.to_string() => Ok(()),
        (got, want) => Err(format!("fast path {got:?}, full path {want:?}")),
    }
}

#[test]
fn decrypted_batches_equal_the_full_path() {
    let rt = runtime();
    let vault = rt.block_on(vault());
    let (fast_audit, full_audit) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let fast = auto(&vault, Arc::clone(&fast_audit));
    let full = auto(&vault, Arc::clone(&full_audit));
    // Made through a third encrypter: both caches start cold.
    let pool = rt.block_on(read_pool(&auto(&vault, Arc::new(Recorder::default()))));

    // A clean batch, one document without encrypted values, and a batch
    // past the nesting bound.
    let clean = batch(
        &pool,
        &[
            vec![(1, 6, 0), (2, 8, 1)],
            vec![(1, 0, 0)],
            vec![(3, 12, 3)],
        ],
        &[],
    );
    rt.block_on(same_reads(&fast, &full, &clean)).unwrap();
    let mut deep = doc! {"x": pool[6].clone()};
    for _ in 0..csfle::MAX_NESTING + 2 {
        deep = doc! {"a": deep};
    }
    let deep = [RawDocumentBuf::from_document(&deep).unwrap()];
    rt.block_on(same_reads(&fast, &full, &deep)).unwrap();

    let strategy = (
        prop::collection::vec(prop::collection::vec(any::<(u8, u8, u8)>(), 0..8), 1..6),
        prop::collection::vec(any::<(u16, u8)>(), 0..3),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    runner
        .run(&strategy, |(docs, flips, flip)| {
            let flips = if flip { flips } else { Vec::new() };
            let b = batch(&pool, &docs, &flips);
            rt.block_on(same_reads(&fast, &full, &b))
                .map_err(TestCaseError::fail)
        })
        .unwrap();
    let fast_events = fast_audit.0.lock().unwrap();
    let full_events = full_audit.0.lock().unwrap();
    assert!(!fast_events.is_empty());
    assert_eq!(*fast_events, *full_events, "the same audit events");
}

// ---------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------

/// `a` and `b` are the same documents but for the bodies of random
/// ciphertexts (first byte 2), whose headers and lengths must agree.
fn same_but_random(a: &RawDocument, b: &RawDocument) -> Result<(), String> {
    let (mut x, mut y) = (a.iter(), b.iter());
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ok(()),
            (Some(Ok((ka, va))), Some(Ok((kb, vb)))) if ka == kb => match (va, vb) {
                (RawBsonRef::Binary(p), RawBsonRef::Binary(q))
                    if p.subtype == BinarySubtype::Encrypted
                        && q.subtype == BinarySubtype::Encrypted
                        && p.bytes.first() == Some(&2) =>
                {
                    if p.bytes.len() != q.bytes.len() || p.bytes.get(..18) != q.bytes.get(..18) {
                        return Err(format!("random ciphertexts of '{ka}' differ in shape"));
                    }
                }
                (RawBsonRef::Document(p), RawBsonRef::Document(q)) => same_but_random(p, q)?,
                (RawBsonRef::Array(p), RawBsonRef::Array(q)) => same_but_random(
                    RawDocument::from_bytes(p.as_bytes()).unwrap(),
                    RawDocument::from_bytes(q.as_bytes()).unwrap(),
                )?,
                (p, q) if p == q => {}
                (p, q) => return Err(format!("'{ka}': {p:?} vs {q:?}")),
            },
            (p, q) => return Err(format!("{p:?} vs {q:?}")),
        }
    }
}

/// The documents an analysed `insert` sends, serialized as the driver
/// serializes them.
fn documents_of(sent: &Document) -> Vec<RawDocumentBuf> {
    sent.get_array("documents")
        .unwrap()
        .iter()
        .map(|d| bson::to_raw_document_buf(d.as_document().unwrap()).unwrap())
        .collect()
}

/// Both write paths on the documents of one insert: the same documents
/// (random ciphertexts aside; all of them decrypting to the same bytes)
/// or the same refusal. Returns the refusal, if any.
async fn same_insert(
    auto: &AutoEncrypter,
    coll: &str,
    docs: Vec<Document>,
) -> Result<Option<String>, String> {
    let command = doc! {"insert": coll, "documents": docs.clone(), "ordered": true};
    let want = auto
        .encrypt_command("app", &command)
        .await
        .map(|sent| documents_of(&sent));
    let got = auto.encrypt_insert_documents("app", coll, docs).await;
    match (got, want) {
        (Err(got), Err(want)) if got.to_string() == want.to_string() => Ok(Some(got.to_string())),
        (Ok(got), Ok(want)) if got.len() == want.len() => {
            for (g, w) in got.iter().zip(&want) {
                same_but_random(g, w)?;
            }
            let ce = auto.client_encryption();
            let got: Vec<&RawDocument> = got.iter().map(|d| &**d).collect();
            let want: Vec<&RawDocument> = want.iter().map(|d| &**d).collect();
            let (got, want) = (
                ce.decrypt_raw_documents(&got).await,
                ce.decrypt_raw_documents(&want).await,
            );
            // Sent values that do not decrypt (a subtype-6 value a plain
            // field carries) fail both the same way.
            match (got, want) {
                (Ok(g), Ok(w)) if g == w => Ok(None),
                (Err(g), Err(w)) if g.to_string() == w.to_string() => Ok(None),
                (g, w) => Err(format!("decrypted: {g:?} vs {w:?}")),
            }
        }
        (got, want) => Err(format!("fast path {got:?}, analysed path {want:?}")),
    }
}

/// Values for the generated documents: scalars of every type, values
/// analysis refuses for encrypted fields, markings and other subtype-6
/// values, documents and arrays.
fn value() -> impl Strategy<Value = Bson> {
    let fixed = vec![
        Bson::from(SECRET),
        Bson::from(""),
        Bson::Int32(-3),
        Bson::Int64(1 << 40),
        Bson::Double(2.5),
        Bson::Boolean(false),
        Bson::Null,
        Bson::Undefined,
        Bson::MinKey,
        Bson::MaxKey,
        Bson::DateTime(bson::DateTime::from_millis(1_700_000_000_000)),
        Bson::ObjectId(bson::oid::ObjectId::from_bytes([7; 12])),
        Bson::Timestamp(bson::Timestamp {
            time: 0,
            increment: 0,
        }),
        Bson::Timestamp(bson::Timestamp {
            time: 1,
            increment: 2,
        }),
        Bson::Decimal128(bson::Decimal128::from_bytes([3; 16])),
        Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![9; 5],
        }),
        Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![8; 16],
        }),
        Bson::Binary(Binary {
            subtype: BinarySubtype::BinaryOld,
            bytes: vec![6; 4],
        }),
        Bson::Binary(Binary {
            subtype: BinarySubtype::UserDefined(0x80),
            bytes: Vec::new(),
        }),
        Bson::Binary(Binary {
            subtype: BinarySubtype::Encrypted,
            bytes: [vec![1u8], vec![0x11; 16], vec![2u8], vec![0; 40]].concat(),
        }),
        marking(),
        Bson::RegularExpression(bson::Regex {
            pattern: "^a".into(),
            options: "i".into(),
        }),
        Bson::JavaScriptCode("f()".into()),
        Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope {
            code: "g()".into(),
            scope: doc! {"m": marking()},
        }),
        Bson::Symbol("s".into()),
        Bson::Document(doc! {"s": SECRET}),
        Bson::Document(doc! {"s": 5}),
        Bson::Document(doc! {"t": [1, {"u": SECRET2}]}),
        Bson::Array(vec![Bson::from(SECRET), Bson::Int32(1)]),
        Bson::Array(vec![marking()]),
        Bson::from("fuzz"),
        Bson::from("nobody"),
    ];
    prop::sample::select(fixed)
}

const FIELDS: [&str; 17] = [
    "_id", "ssn", "n", "r", "p", "owner", "obj", "name", "plain", "a.b", "$x", "", "d", "l", "o",
    "t", "b",
];

fn documents() -> impl Strategy<Value = Vec<Document>> {
    let field = (prop::sample::select(FIELDS.to_vec()), value());
    let document = prop::collection::vec(field, 0..7).prop_map(|fields| {
        let mut d = Document::new();
        for (k, v) in fields {
            d.insert(k, v);
        }
        d
    });
    prop::collection::vec(document, 1..4)
}

#[test]
fn inserted_documents_equal_the_analysed_path() {
    let rt = runtime();
    let vault = rt.block_on(vault());
    let auto = auto(&vault, Arc::new(Recorder::default()));
    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    let encrypted = Mutex::new(0usize);
    runner
        .run(&documents(), |docs| {
            let refused = rt
                .block_on(same_insert(&auto, "fast", docs))
                .map_err(TestCaseError::fail)?;
            if refused.is_none() {
                *encrypted.lock().unwrap() += 1;
            }
            Ok(())
        })
        .unwrap();
    // Not everything was refused: sent documents were compared too.
    assert!(*encrypted.lock().unwrap() > 0);

    // Documents the fast path takes whole, deterministic only: the very
    // same bytes.
    let docs = vec![
        doc! {"_id": 1, "ssn": SECRET, "n": 42, "name": "a", "plain": {"deep": [1, 2]}},
        doc! {"_id": 2, "n": 7, "name": "b"},
        doc! {"_id": 3, "plain": true},
    ];
    let command = doc! {"insert": "fast", "documents": docs.clone(), "ordered": true};
    let want = documents_of(&rt.block_on(auto.encrypt_command("app", &command)).unwrap());
    let got = rt
        .block_on(auto.encrypt_insert_documents("app", "fast", docs))
        .unwrap();
    assert_eq!(got, want);
}

/// The `insert`s of the tables (only documents, or `ordered: true`
/// besides): the hostile ones refused with the same error, naming the
/// same reason; the legitimate ones sent the same.
#[test]
fn table_inserts_equal_the_analysed_path() {
    let rt = runtime();
    let vault = rt.block_on(vault());
    let auto = auto(&vault, Arc::new(Recorder::default()));
    let inserts = |cmd: &Document| -> Option<(String, Vec<Document>)> {
        let coll = cmd.get_str("insert").ok()?;
        let only_documents = cmd
            .iter()
            .skip(1)
            .all(|(k, v)| k == "documents" || (k == "ordered" && *v == Bson::Boolean(true)));
        if !only_documents {
            return None;
        }
        let docs = cmd
            .get_array("documents")
            .ok()?
            .iter()
            .map(|d| d.as_document().cloned())
            .collect::<Option<Vec<_>>>()?;
        Some((coll.to_owned(), docs))
    };
    let mut hostile_inserts = 0;
    for (name, cmd, reason) in hostile() {
        let Some((coll, docs)) = inserts(&cmd) else {
            continue;
        };
        let refused = rt
            .block_on(same_insert(&auto, &coll, docs))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let refused = refused.unwrap_or_else(|| panic!("{name}: not refused"));
        assert!(refused.contains(reason), "{name}: {refused}");
        hostile_inserts += 1;
    }
    assert!(hostile_inserts >= 8, "{hostile_inserts} hostile inserts");
    let mut legitimate_inserts = 0;
    for (name, cmd, _) in legitimate() {
        let Some((coll, docs)) = inserts(&cmd) else {
            continue;
        };
        let refused = rt
            .block_on(same_insert(&auto, &coll, docs))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(refused, None, "{name}");
        legitimate_inserts += 1;
    }
    assert!(
        legitimate_inserts >= 2,
        "{legitimate_inserts} legitimate inserts"
    );
}

// ---------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------

/// Both query paths on one command: `encrypt_command` (a `find` by
/// equality encrypted without analysis when the fast path takes it) and
/// `encrypt_command_analysed` (analysis always). The same command, byte
/// for byte (only deterministic encryption is queryable), or the same
/// refusal. Returns the refusal, or how many ciphertexts were sent.
async fn same_query(
    auto: &AutoEncrypter,
    command: &Document,
) -> Result<Result<usize, String>, String> {
    let got = auto.encrypt_command("app", command).await;
    let want = auto.encrypt_command_analysed("app", command).await;
    match (got, want) {
        (Ok(got), Ok(want)) => {
            let (g, w) = (
                bson::to_raw_document_buf(&got).unwrap(),
                bson::to_raw_document_buf(&want).unwrap(),
            );
            if g != w {
                return Err(format!("sent {got:?}, analysis sends {want:?}"));
            }
            let mut ciphertexts = 0;
            count_ciphertexts(&Bson::Document(got), &mut ciphertexts);
            Ok(Ok(ciphertexts))
        }
        (Err(got), Err(want)) if got.to_string() == want.to_string() => Ok(Err(got.to_string())),
        (got, want) => Err(format!("fast path {got:?}, analysed path {want:?}")),
    }
}

fn count_ciphertexts(v: &Bson, n: &mut usize) {
    match v {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => *n += 1,
        Bson::Document(d) => d.values().for_each(|v| count_ciphertexts(v, n)),
        Bson::Array(a) => a.iter().for_each(|v| count_ciphertexts(v, n)),
        _ => {}
    }
}

/// The fields a generated `find` may carry besides its filter: the ones
/// the fast path takes, the same with other types, and fields it leaves
/// to analysis (some of which analysis refuses).
fn find_option() -> impl Strategy<Value = (&'static str, Bson)> {
    let fixed: Vec<(&'static str, Bson)> = vec![
        ("limit", Bson::Int64(1)),
        ("limit", Bson::Int32(-1)),
        ("limit", Bson::from("1")),
        ("skip", Bson::Int64(2)),
        ("batchSize", Bson::Int32(10)),
        ("batchSize", Bson::Double(10.0)),
        ("singleBatch", Bson::Boolean(true)),
        ("singleBatch", Bson::Int32(1)),
        ("sort", Bson::Document(doc! {"ssn": 1})),
        ("sort", Bson::Document(doc! {"name": -1})),
        ("projection", Bson::Document(doc! {"r": 0})),
        ("comment", Bson::from(SECRET)),
        ("$db", Bson::from("app")),
        ("$db", Bson::from("other")),
        ("hint", Bson::from("ssn_1")),
        ("filter", Bson::from("not a document")),
        ("noSuchField", Bson::Int32(1)),
    ];
    prop::sample::select(fixed)
}

/// Filter values: the insert values above, and operator documents.
fn filter_value() -> impl Strategy<Value = Bson> {
    let operators = prop::sample::select(vec![
        Bson::Document(doc! {"$eq": SECRET}),
        Bson::Document(doc! {"$ne": SECRET}),
        Bson::Document(doc! {"$in": [SECRET, SECRET2]}),
        Bson::Document(doc! {"$exists": true}),
        Bson::Document(doc! {"$gt": 3}),
    ]);
    prop_oneof![4 => value(), 1 => operators]
}

fn find_commands() -> impl Strategy<Value = Document> {
    let coll = prop::sample::select(vec!["fast", "people", "plain"]);
    let filter = prop::collection::vec(
        (prop::sample::select(FIELDS.to_vec()), filter_value()),
        0..5,
    );
    let options = prop::collection::vec(find_option(), 0..3);
    (coll, prop::option::of(filter), options).prop_map(|(coll, filter, options)| {
        let mut cmd = doc! {"find": coll};
        if let Some(fields) = filter {
            let mut f = Document::new();
            for (k, v) in fields {
                f.insert(k, v);
            }
            cmd.insert("filter", f);
        }
        for (k, v) in options {
            cmd.insert(k, v);
        }
        cmd
    })
}

#[test]
fn queries_equal_the_analysed_path() {
    let rt = runtime();
    let vault = rt.block_on(vault());
    let auto = auto(&vault, Arc::new(Recorder::default()));
    let mut runner = TestRunner::new(Config {
        cases: 1024,
        ..Config::default()
    });
    let outcomes = Mutex::new((0usize, 0usize));
    runner
        .run(&find_commands(), |cmd| {
            let outcome = rt
                .block_on(same_query(&auto, &cmd))
                .map_err(TestCaseError::fail)?;
            let mut o = outcomes.lock().unwrap();
            match outcome {
                Ok(n) if n > 0 => o.0 += 1,
                Ok(_) => {}
                Err(_) => o.1 += 1,
            }
            Ok(())
        })
        .unwrap();
    // Both outcomes were compared: commands sent with ciphertexts, and
    // refusals.
    let (encrypted, refused) = *outcomes.lock().unwrap();
    assert!(
        encrypted > 0 && refused > 0,
        "{encrypted} encrypted, {refused} refused"
    );

    // Commands the fast path takes whole: the very same bytes, the
    // filter rewritten as analysis rewrites it.
    for cmd in [
        doc! {"find": "fast", "filter": {"ssn": SECRET}, "limit": 1i64, "singleBatch": true},
        doc! {"find": "fast", "filter": {"name": "a", "ssn": SECRET, "n": 42, "_id": 7}},
        doc! {"find": "people", "filter": {"ssn": SECRET}, "batchSize": 5},
        doc! {"find": "fast", "filter": {"name": "a"}},
        doc! {"find": "plain", "filter": {"ssn": SECRET}},
    ] {
        rt.block_on(same_query(&auto, &cmd))
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
            .unwrap_or_else(|e| panic!("{cmd}: refused: {e}"));
    }
    let sent = rt
        .block_on(auto.encrypt_command(
            "app",
            &doc! {"find": "fast", "filter": {"name": "a", "ssn": SECRET}, "limit": 1i64},
        ))
        .unwrap();
    let and = sent
        .get_document("filter")
        .unwrap()
        .get_array("$and")
        .unwrap();
    assert_eq!(and.len(), 2);
    assert_eq!(and[0].as_document().unwrap(), &doc! {"name": {"$eq": "a"}});
    let ssn = and[1]
        .as_document()
        .unwrap()
        .get_document("ssn")
        .unwrap()
        .get_binary_generic("$eq");
    assert!(ssn.is_err(), "the ciphertext is subtype 6, not generic");
}

/// The `find`s of the tables: the hostile ones refused with the same
/// error, naming the same reason; the legitimate ones sent the same.
#[test]
fn table_queries_equal_the_analysed_path() {
    let rt = runtime();
    let vault = rt.block_on(vault());
    let auto = auto(&vault, Arc::new(Recorder::default()));
    let mut hostile_finds = 0;
    // A `find` on a collection of this encrypter's map (the others need
    // a server's schema).
    let applicable = |cmd: &Document| {
        cmd.keys().next().map(String::as_str) == Some("find")
            && matches!(cmd.get_str("find"), Ok("people" | "fast"))
    };
    for (name, cmd, reason) in hostile() {
        if !applicable(&cmd) {
            continue;
        }
        let refused = rt
            .block_on(same_query(&auto, &cmd))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let refused = refused.expect_err(name);
        assert!(refused.contains(reason), "{name}: {refused}");
        hostile_finds += 1;
    }
    assert!(hostile_finds >= 8, "{hostile_finds} hostile finds");
    let mut legitimate_finds = 0;
    for (name, cmd, _) in legitimate() {
        if !applicable(&cmd) {
            continue;
        }
        rt.block_on(same_query(&auto, &cmd))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        legitimate_finds += 1;
    }
    assert!(legitimate_finds >= 3, "{legitimate_finds} legitimate finds");
}
