//! Collection migration against the server (`MONGODB_URI`): every plan kind,
//! failures reported by `_id`, dry runs, copies, concurrent writers, and
//! `csfle migrate` killed with SIGKILL at random points then resumed.
//!
//! Every test needs a server (`#[ignore = "needs MONGODB_URI"]`). The
//! service run uses a few thousand documents; the `soak_*` variants do the
//! same with 100,000 (`.ci/run` runs them in a step of their own).

// The integration tests' shared helpers live with the library's tests.
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/wire_proxy.rs"]
mod wire_proxy;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc, oid::ObjectId};
use common::*;
use csfle::analysis::Namespace;
use csfle::keyvault::{FileKeyVault, MemoryKeyVault};
use csfle::kms::{KmsProviders, ProviderName};
use csfle::migrate::{Migration, MigrationOptions, MigrationSummary, Plan};
use csfle::{Algorithm, BlobSubtype, ClientEncryption, DataKeyOptions, Fle1Blob, KeyId};
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wire_proxy::WireProxy;

const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
const RANDOM: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";

fn kms() -> KmsProviders {
    local_kms()
}

/// A canonical-JSON key for maps by `_id`.
fn key_of(id: &Bson) -> String {
    csfle::ejson::to_canonical(id).to_string()
}

/// Document `i` of the test collection: `_id`s of three types (so worker
/// ranges cross type classes), an `ssn` string (a double every 997th
/// document: deterministic encryption with `bsonType: string` refuses it),
/// a `dob` date, `notes` of many types, plain `name` and `counter`.
fn number(d: &Document) -> usize {
    d.get_str("name")
        .unwrap()
        .trim_start_matches("person ")
        .parse()
        .unwrap()
}

fn document(i: usize) -> Document {
    let id = match i % 3 {
        0 => Bson::Int64(i as i64),
        1 => Bson::String(format!("id-{i:07}")),
        _ => {
            let mut b = [0u8; 12];
            b[4..12].copy_from_slice(&(i as u64).to_be_bytes());
            Bson::ObjectId(ObjectId::from_bytes(b))
        }
    };
    let ssn = if i % 997 == 5 {
        Bson::Double(i as f64 + 0.5)
    } else {
        Bson::String(format!("{:03}-{:02}-{:04}", i % 1000, i % 100, i))
    };
    let notes = match i % 7 {
        0 => Bson::String("x".repeat(i % 300)),
        1 => Bson::Int32(i as i32),
        2 => Bson::Double(i as f64 / 3.0),
        3 => Bson::Document(doc! {"k": i as i64, "tags": ["a", "b"]}),
        4 => Bson::Array(vec![Bson::Int32(1), Bson::String("two".into())]),
        5 => Bson::Boolean(i.is_multiple_of(2)),
        _ => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![i as u8; 20],
        }),
    };
    doc! {
        "_id": id,
        "name": format!("person {i}"),
        "ssn": ssn,
        "dob": bson::DateTime::from_millis(86_400_000 * (i as i64 % 20_000)),
        "notes": notes,
        "counter": 0i32,
    }
}

fn ssn_fails(i: usize) -> bool {
    i % 997 == 5
}

fn encrypt_spec(key: KeyId, algorithm: &str, bson_type: Option<&str>) -> Document {
    let mut e = doc! {"keyId": [Bson::Binary(key.to_binary())], "algorithm": algorithm};
    if let Some(t) = bson_type {
        e.insert("bsonType", t);
    }
    doc! {"encrypt": e}
}

struct Fixture {
    client: mongodb::Client,
    db: String,
    originals: HashMap<String, Document>,
    key_a: KeyId,
    key_b: KeyId,
}

impl Fixture {
    async fn new(uri: &str, n: usize) -> (Fixture, ClientEncryption) {
        let client = mongodb::Client::with_uri_str(uri).await.unwrap();
        let db = unique_name("csfle_migrate");
        let coll = client.database(&db).collection::<Document>("people");
        let docs: Vec<Document> = (0..n).map(document).collect();
        for chunk in docs.chunks(10_000) {
            coll.insert_many(chunk.to_vec()).await.unwrap();
        }
        let originals = docs
            .into_iter()
            .map(|d| (key_of(d.get("_id").unwrap()), d))
            .collect();
        let enc = ClientEncryption::new(MemoryKeyVault::new(), kms());
        let local = ProviderName::parse("local").unwrap();
        let key_a = enc
            .create_data_key(&local, DataKeyOptions::default())
            .await
            .unwrap();
        let key_b = enc
            .create_data_key(&local, DataKeyOptions::default())
            .await
            .unwrap();
        (
            Fixture {
                client,
                db,
                originals,
                key_a,
                key_b,
            },
            enc,
        )
    }

    fn ns(&self, coll: &str) -> Namespace {
        Namespace::parse(&format!("{}.{coll}", self.db)).unwrap()
    }

    async fn migrate(
        &self,
        enc: Arc<ClientEncryption>,
        schema: Document,
        decrypt_unlisted: bool,
        options: MigrationOptions,
    ) -> MigrationSummary {
        let plan = Plan::from_schema(&schema, decrypt_unlisted).unwrap();
        Migration::new(self.client.clone(), self.ns("people"), plan, enc, options)
            .run()
            .await
            .unwrap()
    }

    async fn stored(&self, coll: &str) -> Vec<Document> {
        self.client
            .database(&self.db)
            .collection::<Document>(coll)
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    async fn drop(&self) {
        self.client.database(&self.db).drop().await.unwrap();
    }
}

/// The key and algorithm of an encrypted value (None: plaintext).
fn blob_of(v: Option<&Bson>) -> Option<(KeyId, Algorithm)> {
    match v {
        Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Encrypted => {
            let blob = Fle1Blob::parse(&b.bytes).unwrap();
            Some((
                blob.key_id,
                match blob.subtype {
                    BlobSubtype::Deterministic => Algorithm::Deterministic,
                    BlobSubtype::Random => Algorithm::Random,
                },
            ))
        }
        _ => None,
    }
}

fn plan_a(f: &Fixture) -> Document {
    doc! {
        "bsonType": "object",
        "properties": {
            "ssn": encrypt_spec(f.key_a, DET, Some("string")),
            "dob": encrypt_spec(f.key_a, RANDOM, None),
            "notes": encrypt_spec(f.key_a, RANDOM, None),
        }
    }
}

/// What state a field should be in: `(document number, field)` -> its key
/// and algorithm, `None` for plaintext.
type Expectation<'a> = &'a dyn Fn(usize, &str) -> Option<(KeyId, Algorithm)>;

/// Checks every stored document: each field in the state `expect` gives,
/// and the whole document decrypting to the original.
async fn check_all(f: &Fixture, enc: &ClientEncryption, coll: &str, expect: Expectation<'_>) {
    let stored = f.stored(coll).await;
    assert_eq!(stored.len(), f.originals.len(), "document count");
    for d in stored {
        let original = &f.originals[&key_of(d.get("_id").unwrap())];
        let i = number(original);
        for field in ["ssn", "dob", "notes"] {
            assert_eq!(
                blob_of(d.get(field)),
                expect(i, field),
                "document {i} field {field}"
            );
        }
        assert_eq!(
            &enc.decrypt_document(&d).await.unwrap(),
            original,
            "document {i}"
        );
    }
}

async fn all_plan_kinds(n: usize) {
    let uri = service_env("MONGODB_URI");
    let (f, enc) = Fixture::new(&uri, n).await;
    let (a, b) = (f.key_a, f.key_b);
    let failing: Vec<usize> = (0..n).filter(|i| ssn_fails(*i)).collect();
    let options = |verify| {
        MigrationOptions::default()
            .with_workers(4)
            .with_batch_size(500)
            .with_verify(verify)
    };
    let enc = Arc::new(enc);

    // 0. Dry run: reports, writes nothing.
    let s = f
        .migrate(
            enc.clone(),
            plan_a(&f),
            false,
            options(false).with_dry_run(true),
        )
        .await;
    assert_eq!((s.read, s.changed), (n as u64, (n - failing.len()) as u64));
    assert_eq!(s.failed_count, failing.len() as u64);
    assert!(
        f.stored("people")
            .await
            .iter()
            .all(|d| blob_of(d.get("notes")).is_none())
    );
    println!("dry run: {}", s.to_json());

    // 1. Plaintext -> encrypted under key A; the doubles in ssn fail by _id.
    let s = f
        .migrate(enc.clone(), plan_a(&f), false, options(true))
        .await;
    println!("plaintext -> encrypted: {}", s.to_json());
    assert_eq!(s.read, n as u64);
    assert_eq!(s.changed, (n - failing.len()) as u64);
    assert_eq!(s.failed_count, failing.len() as u64);
    let mut failed: Vec<String> = s.failed.iter().map(|x| key_of(&x.id)).collect();
    failed.sort();
    let mut want: Vec<String> = failing
        .iter()
        .map(|i| key_of(document(*i).get("_id").unwrap()))
        .collect();
    want.sort();
    assert_eq!(failed, want);
    assert!(s.failed[0].reason.contains("ssn"), "{}", s.failed[0].reason);
    // Verification flags exactly the failed documents.
    let v = s.verify.as_ref().unwrap();
    assert_eq!(v.checked, n as u64);
    assert_eq!(v.mismatched.len(), failing.len());
    check_all(
        &f,
        &enc,
        "people",
        &|i, field| match (ssn_fails(i), field) {
            // A document that cannot be migrated is left entirely as it was.
            (true, _) => None,
            (false, "ssn") => Some((a, Algorithm::Deterministic)),
            (false, _) => Some((a, Algorithm::Random)),
        },
    )
    .await;
    // Rerun: nothing left to change (idempotent), failures again reported.
    let s = f
        .migrate(enc.clone(), plan_a(&f), false, options(false))
        .await;
    assert_eq!((s.changed, s.skipped), (0, (n - failing.len()) as u64));

    // 2. Key A -> key B, and deterministic <-> random: ssn random under B,
    //    dob deterministic under B (bsonType date), notes random under B.
    let plan_b = doc! {"bsonType": "object", "properties": {
        "ssn": encrypt_spec(b, RANDOM, None),
        "dob": encrypt_spec(b, DET, Some("date")),
        "notes": encrypt_spec(b, RANDOM, None),
    }};
    let s = f.migrate(enc.clone(), plan_b, false, options(true)).await;
    println!("key A -> key B: {}", s.to_json());
    assert_eq!(s.changed, n as u64);
    assert_eq!(s.failed_count, 0);
    assert!(s.verify.unwrap().mismatched.is_empty());
    check_all(&f, &enc, "people", &|_, field| {
        Some((
            b,
            if field == "dob" {
                Algorithm::Deterministic
            } else {
                Algorithm::Random
            },
        ))
    })
    .await;

    // 3. Fail closed: a plan that names only ssn (as plaintext) decrypts
    //    ssn and leaves the unlisted encrypted fields alone...
    let plan_c = doc! {"properties": {"ssn": {"bsonType": ["string", "double"]}}};
    let s = f
        .migrate(enc.clone(), plan_c.clone(), false, options(false))
        .await;
    assert_eq!((s.changed, s.failed_count), (n as u64, 0));
    check_all(&f, &enc, "people", &|_, field| match field {
        "ssn" => None,
        "dob" => Some((b, Algorithm::Deterministic)),
        _ => Some((b, Algorithm::Random)),
    })
    .await;
    // ...and with decrypt_unlisted everything ends up plaintext.
    let s = f.migrate(enc.clone(), plan_c, true, options(true)).await;
    assert_eq!((s.changed, s.failed_count), (n as u64, 0));
    assert!(s.verify.unwrap().mismatched.is_empty());
    check_all(&f, &enc, "people", &|_, _| None).await;
    assert_eq!(f.stored("people").await.len(), n);
    f.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn every_plan_kind() {
    all_plan_kinds(3_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: 100,000 documents; needs MONGODB_URI"]
async fn soak_every_plan_kind_100k() {
    all_plan_kinds(100_000).await;
}

/// A plan every test document satisfies (no type restriction on ssn).
fn plan_random(key: KeyId) -> Document {
    doc! {"bsonType": "object", "properties": {
        "ssn": encrypt_spec(key, RANDOM, None),
        "dob": encrypt_spec(key, DET, Some("date")),
        "notes": encrypt_spec(key, RANDOM, None),
    }}
}

fn expect_random(key: KeyId) -> impl Fn(usize, &str) -> Option<(KeyId, Algorithm)> {
    move |_, field| {
        Some((
            key,
            if field == "dob" {
                Algorithm::Deterministic
            } else {
                Algorithm::Random
            },
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn copy_to_another_collection() {
    let uri = service_env("MONGODB_URI");
    let (f, enc) = Fixture::new(&uri, 2_000).await;
    let enc = Arc::new(enc);
    let plan = Plan::from_schema(&plan_random(f.key_a), false).unwrap();
    let options = MigrationOptions::default()
        .with_target(f.ns("people_encrypted"))
        .with_checkpoint_namespace(f.ns("checkpoints"))
        .with_verify(true)
        .with_workers(3)
        .with_batch_size(300);
    let s = Migration::new(f.client.clone(), f.ns("people"), plan, enc.clone(), options)
        .run()
        .await
        .unwrap();
    println!("copy: {}", s.to_json());
    // A range split while its owner reads may have a batch read twice
    // (the second time it is found done): at least every document once.
    assert!(s.read >= 2_000 && s.changed >= 2_000, "{}", s.to_json());
    assert_eq!(s.failed_count, 0);
    assert!(s.finished_run && !s.resumed);
    assert_eq!((s.job.processes, s.transient_retries), (1, 0));
    let v = s.verify.unwrap();
    assert_eq!(
        (v.checked, v.source_count, v.target_count),
        (2_000, 2_000, 2_000)
    );
    assert!(v.mismatched.is_empty());
    // The source is untouched; the copy is encrypted and decrypts to it.
    for d in f.stored("people").await {
        assert_eq!(&d, &f.originals[&key_of(d.get("_id").unwrap())]);
    }
    check_all(&f, &enc, "people_encrypted", &expect_random(f.key_a)).await;
    // The job is recorded as done, its ranges (one per worker, or more
    // after splits) all done.
    let ck = f.stored("checkpoints").await;
    let ranges: Vec<_> = ck
        .iter()
        .filter(|c| c.get_str("kind") == Ok("range"))
        .collect();
    assert!(ranges.len() >= 3 && ranges.len() == s.job.ranges);
    assert!(ranges.iter().all(|r| r.get_bool("done") == Ok(true)));
    assert!(ck.iter().any(|c| c.get_str("state") == Ok("done")));
    f.drop().await;
}

/// A tiny deterministic generator for the writers (xorshift64).
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MONGODB_URI"]
async fn concurrent_writers_lose_nothing() {
    let uri = service_env("MONGODB_URI");
    let n = 3_000;
    let (f, enc) = Fixture::new(&uri, n).await;
    let enc = Arc::new(enc);
    let coll = f.client.database(&f.db).collection::<Document>("people");
    let ids: Arc<Vec<Bson>> = Arc::new(
        (0..n)
            .map(|i| document(i).get("_id").unwrap().clone())
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Two application writers: increments of `counter` (a field the plan
    // does not touch) and new plaintext `notes` (one it encrypts).
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let (coll, ids, stop) = (coll.clone(), ids.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ (w + 1));
            let mut increments = vec![0u32; ids.len()];
            let mut notes: HashMap<usize, String> = HashMap::new();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let i = rng.below(ids.len());
                k += 1;
                if k % 4 == 0 {
                    let v = format!("writer {w} op {k}");
                    coll.update_one(doc! {"_id": ids[i].clone()}, doc! {"$set": {"notes": &v}})
                        .await
                        .unwrap();
                    notes.insert(i, v);
                } else {
                    let r = coll
                        .update_one(doc! {"_id": ids[i].clone()}, doc! {"$inc": {"counter": 1}})
                        .await
                        .unwrap();
                    assert_eq!(r.matched_count, 1);
                    increments[i] += 1;
                }
            }
            (increments, notes, k)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let options = || {
        MigrationOptions::default()
            .with_workers(4)
            .with_batch_size(100)
    };
    let first = f
        .migrate(enc.clone(), plan_random(f.key_a), false, options())
        .await;
    stop.store(true, Ordering::Relaxed);
    let mut increments = vec![0u32; n];
    let mut last_notes: HashMap<usize, (u64, String)> = HashMap::new();
    let mut ops = 0;
    for (w, h) in writers.into_iter().enumerate() {
        let (inc, notes, k) = h.await.unwrap();
        ops += k;
        for (i, c) in inc.into_iter().enumerate() {
            increments[i] += c;
        }
        for (i, v) in notes {
            // The writers' `notes` on the same document: the one written
            // last wins; both writers' values are checked against the store.
            last_notes.entry(i).or_insert((w as u64, v));
        }
    }
    println!("with {ops} concurrent writes: {}", first.to_json());
    assert_eq!(first.failed_count, 0);
    // Plaintext notes written after a document was migrated are encrypted
    // by a second run; it must find everything else already done.
    let second = f
        .migrate(
            enc.clone(),
            plan_random(f.key_a),
            false,
            options().with_verify(true),
        )
        .await;
    println!("second run: {}", second.to_json());
    assert!(second.verify.unwrap().mismatched.is_empty());
    assert_eq!(second.read, n as u64);
    for d in f.stored("people").await {
        let i = number(&d);
        let plain = enc.decrypt_document(&d).await.unwrap();
        assert_eq!(
            plain.get_i32("counter").unwrap() as u32,
            increments[i],
            "document {i}: an increment was lost"
        );
        assert_eq!(
            plain.get("ssn"),
            f.originals[&key_of(d.get("_id").unwrap())].get("ssn")
        );
        for field in ["ssn", "dob", "notes"] {
            assert!(
                blob_of(d.get(field)).is_some(),
                "document {i}: {field} left plaintext"
            );
        }
        if let Some((_, v)) = last_notes.get(&i) {
            // Some writer's value, never the pre-migration original.
            let notes = plain.get_str("notes").unwrap_or_default();
            assert!(
                notes.starts_with("writer "),
                "document {i}: notes {notes} (expected {v} or the other writer's)"
            );
        }
    }
    f.drop().await;
}

/// `csfle migrate` over a fixture's `people` collection: a file key vault
/// with one local key, the plan `plan_random(key)` in a schema-map file,
/// checkpoints in `<db>.ckpt`.
struct CliJob {
    dir: tempfile::TempDir,
    kms_file: std::path::PathBuf,
    vault_file: std::path::PathBuf,
    map_file: std::path::PathBuf,
    key: KeyId,
    db: String,
}

impl CliJob {
    async fn new(f: &Fixture) -> CliJob {
        let dir = tempfile::tempdir().unwrap();
        let kms_file = write_local_kms_file(dir.path());
        let vault_file = dir.path().join("keys.json");
        let enc = ClientEncryption::new(FileKeyVault::new(&vault_file), kms());
        let key = create_local_key(&enc).await;
        let job = CliJob {
            map_file: dir.path().join("schema-map.json"),
            dir,
            kms_file,
            vault_file,
            key,
            db: f.db.clone(),
        };
        job.write_plan(plan_random(key));
        job
    }

    fn write_plan(&self, schema: Document) {
        let map = doc! {
            format!("{}.people", self.db): schema.clone(),
            format!("{}.nobody", self.db): schema,
        };
        std::fs::write(&self.map_file, csfle::ejson::to_canonical_line(&map)).unwrap();
    }

    fn command(&self, uri: &str, extra: &[&str]) -> Command {
        self.command_with(uri, &[], extra)
    }

    /// With some of the usual flags given other values.
    fn command_with(&self, uri: &str, instead: &[(&str, &str)], extra: &[&str]) -> Command {
        let usual = [
            ("--source", format!("{}.people", self.db)),
            ("--schema-map", self.map_file.display().to_string()),
            ("--kms-providers", self.kms_file.display().to_string()),
            ("--key-vault", self.vault_file.display().to_string()),
            ("--checkpoint-namespace", format!("{}.ckpt", self.db)),
            ("--workers", "4".into()),
            ("--batch-size", "250".into()),
        ];
        let mut c = Command::new(env!("CARGO_BIN_EXE_csfle"));
        c.args(["migrate", "--uri", uri]);
        for (flag, value) in usual {
            let value = instead
                .iter()
                .find(|(f, _)| *f == flag)
                .map_or(value, |(_, v)| (*v).to_owned());
            c.args([flag, &value]);
        }
        c.args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    }

    fn encryption(&self) -> ClientEncryption {
        ClientEncryption::new(FileKeyVault::new(&self.vault_file), kms())
    }
}

fn summary_of(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `csfle migrate` killed with SIGKILL at random moments, then run to the
/// end: every document decrypts to its original exactly once.
async fn killed_and_resumed(n: usize, kills: usize) {
    let uri = service_env("MONGODB_URI");
    let (f, _) = Fixture::new(&uri, n).await;
    let job = CliJob::new(&f).await;
    let key = job.key;
    let run = |extra: &[&str]| job.command(&uri, extra);

    // --dry-run first: reports everything, changes nothing.
    let out = run(&["--dry-run"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["changed"], n as u64);
    assert!(
        f.stored("people")
            .await
            .iter()
            .all(|d| blob_of(d.get("ssn")).is_none())
    );

    let mut rng = Xorshift(0xC0FF_EE00_D15E_A5E5 ^ n as u64);
    // Kill points spread over the run: early ones land before the job is
    // recorded, later ones mid-way through the workers' ranges.
    let ckpt = f.client.database(&f.db).collection::<Document>("ckpt");
    let (mut killed, mut resumable) = (0, false);
    for _ in 0..kills {
        let mut child = run(&[]).spawn().unwrap();
        let wait = 300 + rng.below(n / 15) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        // What the next run must do: resume a job recorded as running.
        resumable = ckpt
            .find_one(doc! {"kind": "job", "state": "running"})
            .await
            .unwrap()
            .is_some();
    }
    assert!(killed > 0, "no run was killed mid-way");
    let out = run(&["--verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("after {killed} kills: {summary}");
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["verify"]["checked"], n as u64);
    assert_eq!(summary["verify"]["mismatched"], 0);
    assert_eq!(summary["verify"]["target_count"], n as u64);
    assert_eq!(summary["resumed"], resumable);
    // Independently of the tool's own check: exactly the original
    // documents, each decrypting (once) to its original value.
    check_all(&f, &job.encryption(), "people", &expect_random(key)).await;
    f.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn killed_with_sigkill_and_resumed() {
    killed_and_resumed(10_000, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: 100,000 documents; needs MONGODB_URI"]
async fn soak_killed_with_sigkill_and_resumed_100k() {
    killed_and_resumed(100_000, 5).await;
}

/// A flaky network: through a proxy that cuts the connection of every 12th
/// reply to a data command (after the server executed it) and holds every
/// 7th back for 300 ms, one invocation finishes the job, riding the cuts
/// out from its checkpoints, and every document decrypts to its original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn proxy_faults_are_ridden_out_in_one_invocation() {
    let uri = service_env("MONGODB_URI");
    let n = 10_000;
    let (f, _) = Fixture::new(&uri, n).await;
    let job = CliJob::new(&f).await;
    let proxy = WireProxy::start(&uri).await;
    proxy.chaos(12, 7, 300);
    let out = output_of(job.command(&proxy.uri, &["--verify"])).await;
    let (cuts, delays) = proxy.chaos_done();
    proxy.chaos(0, 0, 0);
    let summary = summary_of(&out);
    println!("{cuts} replies lost, {delays} delayed: {summary}");
    assert!(cuts >= 8, "only {cuts} cuts");
    assert!(summary["transient_retries"].as_u64().unwrap() > 0);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["verify"]["checked"], n as u64);
    assert_eq!(summary["verify"]["mismatched"], 0);
    check_all(&f, &job.encryption(), "people", &expect_random(job.key)).await;
    f.drop().await;
}

/// A server of the test's own, on a port of its own, that can be killed
/// (SIGKILL) and started again on the same data.
struct OwnServer {
    bin: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnServer {
    fn start() -> OwnServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = OwnServer {
            bin: service_env("SECANTUSD_BIN"),
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        s.restart();
        s
    }

    fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--cache-size", "256M", "--storage-path"])
            .arg(self.dir.path())
            // Every acknowledged write survives SIGKILL, as with MongoDB's
            // journaled majority writes: without it this server acknowledges
            // before the journal is synced, and a kill loses the tail.
            .arg("--sync-on-commit")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server killed with SIGKILL mid-run: with a 3-second budget and the
/// server down longer, the run stops with exit 1, says it is resumable and
/// how; with the server restarted, that very command resumes, and a second
/// SIGKILL + restart in the middle of it is ridden out within the budget:
/// one invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SECANTUSD_BIN"]
async fn server_killed_mid_run_is_ridden_out_or_resumable() {
    let mut server = OwnServer::start();
    let uri = server.uri();
    let n = 20_000;
    let (f, _) = Fixture::new(&uri, n).await;
    let job = CliJob::new(&f).await;

    // Down for longer than the budget: a resumable stop.
    let first = job
        .command_with(
            &uri,
            &[("--batch-size", "100")],
            &["--max-retry-seconds", "3"],
        )
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the job is resumable"), "{stderr}");
    let rerun = stderr
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .unwrap_or_else(|| panic!("no rerun command in: {stderr}"));
    assert!(
        rerun.contains("--max-retry-seconds 3") && rerun.contains("migrate"),
        "{rerun}"
    );

    // Back, and killed again in the middle of the resumed run.
    server.restart();
    let second = job
        .command_with(&uri, &[("--batch-size", "100")], &["--verify"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart();
    let out = tokio::task::spawn_blocking(move || second.wait_with_output().unwrap())
        .await
        .unwrap();
    let summary = summary_of(&out);
    println!("resumed through a restart: {summary}");
    assert_eq!(summary["resumed"], true);
    assert!(summary["transient_retries"].as_u64().unwrap() > 0);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["verify"]["checked"], n as u64);
    assert_eq!(summary["verify"]["mismatched"], 0);
    let f = Fixture {
        client: mongodb::Client::with_uri_str(&uri).await.unwrap(),
        ..f
    };
    check_all(&f, &job.encryption(), "people", &expect_random(job.key)).await;
}

/// Global causes are found before any document is read for migration:
/// exit 2 within a second, the reason named, nothing written (the
/// checkpoint collection is never created, the documents untouched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn preflight_refuses_global_causes_before_writing() {
    let uri = service_env("MONGODB_URI");
    let (f, _) = Fixture::new(&uri, 2_000).await;
    let job = CliJob::new(&f).await;
    let check = |out: std::process::Output, expect: &str, took: Duration| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("preflight") && stderr.contains(expect),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
        assert!(took < Duration::from_secs(1), "took {took:?}");
    };
    let timed = |c: Command| async {
        let start = std::time::Instant::now();
        let out = output_of(c).await;
        (out, start.elapsed())
    };

    // A wrong master key: the plan's key does not unwrap.
    let wrong = job.dir.path().join("wrong-kms.json");
    std::fs::write(
        &wrong,
        format!(r#"{{"local": {{"key": "{}"}}}}"#, b64e(&[7u8; 96])),
    )
    .unwrap();
    let wrong = wrong.display().to_string();
    let c = job.command_with(&uri, &[("--kms-providers", &wrong)], &[]);
    let (out, took) = timed(c).await;
    check(out, "the plan's keys", took);

    // A garbage key vault: refused when it is read, before the preflight
    // (an unusable input: exit 2, the file and line named).
    let garbage = job.dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"_id\": 1}\nnot json at all\n").unwrap();
    let garbage = garbage.display().to_string();
    let c = job.command_with(&uri, &[("--key-vault", &garbage)], &[]);
    let (out, took) = timed(c).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--key-vault") && stderr.contains("line 2"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // A keyId no key document has.
    job.write_plan(plan_random(KeyId::random().unwrap()));
    let (out, took) = timed(job.command(&uri, &[])).await;
    check(out, "no data key with id", took);

    // Every document fails the plan the same way: a deterministic field
    // declared an int while every ssn is a string.
    let mut plan = plan_random(job.key);
    plan.get_document_mut("properties")
        .unwrap()
        .insert("ssn", encrypt_spec(job.key, DET, Some("int")));
    job.write_plan(plan);
    let (out, took) = timed(job.command(&uri, &[])).await;
    check(out, "each of the first 100 documents fails the plan", took);

    // A source that does not exist, a checkpoint namespace on the source.
    job.write_plan(plan_random(job.key));
    let nobody = format!("{}.nobody", f.db);
    let c = job.command_with(&uri, &[("--source", &nobody)], &[]);
    let (out, took) = timed(c).await;
    check(out, "does not exist", took);
    let people = format!("{}.people", f.db);
    let c = job.command_with(&uri, &[("--checkpoint-namespace", &people)], &[]);
    let (out, took) = timed(c).await;
    check(out, "is a collection being migrated", took);

    let names = f
        .client
        .database(&f.db)
        .list_collection_names()
        .await
        .unwrap();
    assert_eq!(names, vec!["people".to_owned()], "something was written");
    for d in f.stored("people").await {
        assert_eq!(&d, &f.originals[&key_of(d.get("_id").unwrap())]);
    }
    f.drop().await;
}

/// Three `csfle migrate` processes with the same arguments, 2 workers
/// each, share one job; the first is killed with SIGKILL mid-run, its
/// ranges are taken over when its lease (3 s) runs out, the other two
/// finish, exactly one of them verifies every document once.
async fn three_processes_share_a_job(n: usize, min_before_kill: Duration) {
    let uri = service_env("MONGODB_URI");
    let (f, _) = Fixture::new(&uri, n).await;
    let job = CliJob::new(&f).await;
    let args = ["--lease-seconds", "3", "--verify"];
    let mut children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            job.command_with(&uri, &[("--workers", "2")], &args)
                .spawn()
                .unwrap()
        })
        .collect();
    // Killed once it has checkpointed work of its own (its owner id
    // carries its pid), at least `min_before_kill` in.
    let mut victim = children.remove(0);
    let owner = format!("/{}/", victim.id());
    let ckpt = f.client.database(&f.db).collection::<Document>("ckpt");
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = victim.try_wait().unwrap() {
            let out = victim.wait_with_output().unwrap();
            panic!(
                "finished before the kill ({status}): {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let working = ckpt
            .find_one(doc! {"kind": "range", "owner": {"$regex": owner.as_str()}, "after": {"$exists": true}, "done": false})
            .await
            .unwrap()
            .is_some();
        if working && start.elapsed() >= min_before_kill {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let mut summaries = Vec::new();
    for child in children {
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        summaries.push(summary_of(&out));
    }
    for s in &summaries {
        println!("{s}");
        assert_eq!(s["job"]["processes"], 3);
        assert_eq!(s["failed"], 0);
        assert!(s["job"]["read"].as_u64().unwrap() >= n as u64);
    }
    let verifiers: Vec<_> = summaries
        .iter()
        .filter(|s| s["finished_run"] == true)
        .collect();
    assert_eq!(verifiers.len(), 1, "one process finishes and verifies");
    let v = &verifiers[0]["verify"];
    assert_eq!(v["checked"], n as u64);
    assert_eq!(v["mismatched"], 0);
    assert!(
        summaries
            .iter()
            .filter(|s| s["finished_run"] == false)
            .all(|s| s["verify"].is_null())
    );
    // Both survivors did work, and the victim's unfinished ranges were
    // taken over.
    assert!(summaries.iter().all(|s| s["read"].as_u64().unwrap() > 0));
    let taken: u64 = summaries
        .iter()
        .map(|s| s["ranges_taken_over"].as_u64().unwrap())
        .sum();
    assert!(taken >= 1, "no range taken over");
    check_all(&f, &job.encryption(), "people", &expect_random(job.key)).await;
    f.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MONGODB_URI"]
async fn three_processes_share_a_job_one_killed() {
    three_processes_share_a_job(20_000, Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: 100,000 documents; needs MONGODB_URI"]
async fn soak_three_processes_share_a_job_one_killed_100k() {
    three_processes_share_a_job(100_000, Duration::from_secs(6)).await;
}
