//! `csfle find`, `export`, `import` and the audit log.
//!
//! Against the server (`MONGODB_URI`, with libmongocrypt as the judge of
//! what is stored, `CSFLE_ORACLE_PYTHON`): a 10,000-document import whose
//! every encrypted field is stored encrypted and decrypts (in csfle and in
//! libmongocrypt) to its source; the export of it byte for byte the import
//! file; a `--keep-encrypted` export that re-imports unchanged; CSV both
//! ways; filters on deterministic fields and refused ones; bad lines;
//! `kill -9` mid-import then an upsert rerun. Without a server: the audit
//! log of `decrypt` and its failing closed, and the library's audit hook.

// The integration tests' shared helpers live with the library's tests.
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/common/wire_proxy.rs"]
mod wire_proxy;

use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::{FileKeyVault, MemoryKeyVault};
use csfle::kms::ProviderName;
use csfle::{Algorithm, ClientEncryption, DataKeyOptions, KeyId, KeyRef};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
const RANDOM: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";

/// Document `i`: `_id` first, three encrypted fields (`ssn` deterministic
/// string, `dob` random date, `medical` random document), plain others.
fn document(i: i64) -> Document {
    let blood = ["A", "B", "O", "AB"][(i % 4) as usize];
    let city = ["Paris", "Lagos", "Lima"][(i % 3) as usize];
    doc! {
        "_id": i,
        "name": format!("person {i}"),
        "ssn": format!("{:09}", 100_000_000 + i * 7919 % 900_000_000),
        "dob": bson::DateTime::from_millis(86_400_000 * (i % 20_000) - 1_000_000_000_000),
        "medical": {"blood": blood, "allergies": ["pollen", format!("drug-{i}")], "weight": 50.5 + (i % 40) as f64},
        "age": (i % 90) as i32,
        "address": {"city": city, "zip": format!("{:05}", i % 100_000)},
        "balance": format!("{i}.{:02}", i % 100).parse::<bson::Decimal128>().unwrap(),
        "big": 3_000_000_000_i64 + i,
    }
}

fn schema(ssn_key: KeyId, other_key: KeyId) -> Document {
    let key = |k: KeyId| Bson::Array(vec![Bson::Binary(k.to_binary())]);
    doc! {
        "bsonType": "object",
        "properties": {
            "ssn": {"encrypt": {"keyId": key(ssn_key), "algorithm": DET, "bsonType": "string"}},
            "dob": {"encrypt": {"keyId": key(other_key), "algorithm": RANDOM, "bsonType": "date"}},
            "medical": {"encrypt": {"keyId": key(other_key), "algorithm": RANDOM}},
        }
    }
}

const ENCRYPTED: [&str; 3] = ["ssn", "dob", "medical"];

/// A database, a file key vault with two keys, a schema map for the
/// collections `people`, `copy` and `csv`, and the files the commands read.
struct Env {
    dir: tempfile::TempDir,
    uri: String,
    client: mongodb::Client,
    db: String,
    kms_file: PathBuf,
    vault_file: PathBuf,
    map_file: PathBuf,
    ssn_key: KeyId,
    other_key: KeyId,
}

impl Env {
    async fn new() -> Env {
        let uri = service_env("MONGODB_URI");
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let db = unique_name("csfle_tools");
        let dir = tempfile::tempdir().unwrap();
        let kms_file = write_local_kms_file(dir.path());
        let vault_file = dir.path().join("keys.json");
        let enc = ClientEncryption::new(FileKeyVault::new(&vault_file), local_kms());
        let local = ProviderName::parse("local").unwrap();
        let ssn_key = enc
            .create_data_key(&local, DataKeyOptions::default())
            .await
            .unwrap();
        let other_key = enc
            .create_data_key(&local, DataKeyOptions::default())
            .await
            .unwrap();
        let map_file = dir.path().join("schema-map.json");
        let s = schema(ssn_key, other_key);
        let map = doc! {
            format!("{db}.people"): s.clone(),
            format!("{db}.copy"): s.clone(),
            format!("{db}.csv"): s,
        };
        std::fs::write(&map_file, csfle::ejson::to_canonical_line(&map)).unwrap();
        Env {
            dir,
            uri,
            client,
            db,
            kms_file,
            vault_file,
            map_file,
            ssn_key,
            other_key,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `csfle <command> --uri … --ns <db>.<coll> --schema-map … --kms-providers … --key-vault …`.
    fn csfle(&self, command: &str, coll: &str) -> Command {
        self.csfle_via(&self.uri, command, coll)
    }

    /// The same, on the server at `uri` (a proxy in front of it).
    fn csfle_via(&self, uri: &str, command: &str, coll: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_csfle"));
        c.args([
            command,
            "--uri",
            uri,
            "--ns",
            &format!("{}.{coll}", self.db),
        ])
        .arg("--schema-map")
        .arg(&self.map_file)
        .arg("--kms-providers")
        .arg(&self.kms_file)
        .arg("--key-vault")
        .arg(&self.vault_file)
        .env_remove("CSFLE_AUDIT_LOG")
        .env_remove("CSFLE_AUDIT_REQUIRED")
        .env_remove("CSFLE_URI")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c
    }

    fn encryption(&self) -> ClientEncryption {
        ClientEncryption::new(FileKeyVault::new(&self.vault_file), local_kms())
    }

    async fn stored(&self, coll: &str) -> Vec<Document> {
        stored_by_id(self.client.database(&self.db).collection(coll)).await
    }

    async fn drop(&self) {
        self.client.database(&self.db).drop().await.unwrap();
    }

    /// Documents `0..n` written to `people.jsonl` and imported into
    /// `people` with `csfle import --file`; the documents as written.
    async fn import_people(&self, n: i64) -> Vec<Document> {
        let source: Vec<Document> = (0..n).map(document).collect();
        let file = self.path("people.jsonl");
        import_file(&file, &source);
        let mut c = self.csfle("import", "people");
        c.arg("--file").arg(&file);
        ok(&output_of(c).await);
        source
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        stderr_of(out)
    );
}

/// The JSON summary: the last line of stderr.
fn summary(out: &Output) -> serde_json::Value {
    let err = stderr_of(out);
    let last = err.lines().rfind(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|_| panic!("no summary line in: {err}"))
}

fn import_file(path: &Path, docs: &[Document]) -> Vec<u8> {
    let mut text = String::new();
    for d in docs {
        text.push_str(&csfle::ejson::to_canonical_line(d));
        text.push('\n');
    }
    std::fs::write(path, &text).unwrap();
    text.into_bytes()
}

fn blob_of(v: Option<&Bson>) -> (KeyId, Algorithm) {
    match v {
        Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Encrypted => {
            let blob = csfle::Fle1Blob::parse(&b.bytes).unwrap();
            let alg = match blob.subtype {
                csfle::BlobSubtype::Deterministic => Algorithm::Deterministic,
                _ => Algorithm::Random,
            };
            (blob.key_id, alg)
        }
        other => panic!("not encrypted: {other:?}"),
    }
}

/// Every encrypted field of `stored` is a ciphertext under the schema's
/// key and algorithm, and the documents decrypt to `source`.
async fn check_stored(env: &Env, stored: &[Document], source: &[Document]) {
    assert_eq!(stored.len(), source.len());
    let enc = env.encryption();
    for (s, want) in stored.iter().zip(source) {
        assert_eq!(
            blob_of(s.get("ssn")),
            (env.ssn_key, Algorithm::Deterministic)
        );
        assert_eq!(blob_of(s.get("dob")), (env.other_key, Algorithm::Random));
        assert_eq!(
            blob_of(s.get("medical")),
            (env.other_key, Algorithm::Random)
        );
        assert_eq!(&enc.decrypt_document(s).await.unwrap(), want);
    }
}

/// libmongocrypt decrypts the stored ciphertexts of a sample to their
/// sources.
fn oracle_decrypts(env: &Env, stored: &[Document], source: &[Document], sample: usize) {
    let python = service_env("CSFLE_ORACLE_PYTHON");
    let keys = file_vault_key_documents(&env.vault_file);
    let step = (stored.len() / sample).max(1);
    let mut values = Vec::new();
    for (s, src) in stored.iter().zip(source).step_by(step) {
        for f in ENCRYPTED {
            values.push((s.get(f).unwrap().clone(), src.get(f).unwrap().clone()));
        }
    }
    let version = assert_libmongocrypt_decrypts(&python, &keys, &values);
    eprintln!(
        "libmongocrypt {version} decrypted {} stored values",
        values.len()
    );
}

#[tokio::test]
#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]
async fn import_10k_then_export_byte_for_byte() {
    let env = Env::new().await;
    let n = 10_000;
    let source: Vec<Document> = (0..n).map(document).collect();
    let file = env.path("people.jsonl");
    let bytes = import_file(&file, &source);

    let mut c = env.csfle("import", "people");
    c.arg("--file").arg(&file);
    let out = output_of(c).await;
    ok(&out);
    let s = summary(&out);
    assert_eq!(s["imported"], 10_000, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    let stored = env.stored("people").await;
    check_stored(&env, &stored, &source).await;
    oracle_decrypts(&env, &stored, &source, stored.len());

    // Export: byte for byte the import file.
    let mut c = env.csfle("export", "people");
    c.args(["--sort", r#"{"_id": 1}"#]);
    let out = output_of(c).await;
    ok(&out);
    assert!(
        out.stdout == bytes,
        "the export differs from the import file"
    );
    let s = summary(&out);
    assert_eq!(s["exported"], 10_000, "{s}");
    assert!(s["docs_per_sec"].as_f64().unwrap() > 0.0);

    // The same into a file (mode 0600), as a JSON array.
    let out_file = env.path("people.json");
    let mut c = env.csfle("export", "people");
    c.args(["--sort", r#"{"_id": 1}"#, "--json-array", "--out"])
        .arg(&out_file);
    let out = output_of(c).await;
    ok(&out);
    assert!(out.stdout.is_empty(), "stdout carries only documents");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let array: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(array.as_array().unwrap().len(), 10_000);
    let first = Bson::try_from(array[0].clone()).unwrap();
    assert_eq!(first, Bson::Document(source[0].clone()));

    // --keep-encrypted: the stored ciphertexts, which re-import unchanged.
    let kept = env.path("kept.jsonl");
    let mut c = env.csfle("export", "people");
    c.args(["--sort", r#"{"_id": 1}"#, "--keep-encrypted", "--out"])
        .arg(&kept);
    ok(&output_of(c).await);
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(!text.contains(source[0].get_str("ssn").unwrap()));
    let mut c = env.csfle("import", "copy");
    c.arg("--file").arg(&kept);
    let out = output_of(c).await;
    ok(&out);
    assert_eq!(summary(&out)["imported"], 10_000);
    assert!(
        env.stored("copy").await == stored,
        "re-imported ciphertexts differ"
    );
    env.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn csv_round_trip_keeps_schema_types() {
    let env = Env::new().await;
    let n = 500;
    let source: Vec<Document> = (0..n).map(document).collect();
    env.client
        .database(&env.db)
        .collection::<Document>("plain")
        .insert_many(source.clone())
        .await
        .unwrap();
    let mut c = env.csfle("import", "people");
    let file = env.path("people.jsonl");
    import_file(&file, &source);
    c.arg("--file").arg(&file);
    ok(&output_of(c).await);

    let fields = "_id,name,ssn,age,address.city,address.zip,big,medical.blood,dob";
    let csv_file = env.path("people.csv");
    let mut c = env.csfle("export", "people");
    c.args([
        "--type",
        "csv",
        "--fields",
        fields,
        "--sort",
        r#"{"_id": 1}"#,
        "--out",
    ])
    .arg(&csv_file);
    ok(&output_of(c).await);
    let text = std::fs::read_to_string(&csv_file).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), fields);
    // mongoexport's CSV cells: ISO dates with milliseconds, nested fields
    // by dotted path.
    let d0 = source[0].get_datetime("dob").unwrap();
    let iso = d0.try_to_rfc3339_string().unwrap();
    let want = format!(
        "0,person 0,{},0,Paris,00000,3000000000,A,{}.000Z",
        source[0].get_str("ssn").unwrap(),
        &iso[..19]
    );
    assert_eq!(lines.next().unwrap(), want);

    // Back in with --headerline, no types: the schema says ssn is a string
    // (nine digits stay a string) and dob a date; the rest is guessed.
    let mut c = env.csfle("import", "csv");
    c.args(["--type", "csv", "--headerline", "--file"])
        .arg(&csv_file);
    let out = output_of(c).await;
    ok(&out);
    assert_eq!(summary(&out)["imported"], 500);
    let enc = env.encryption();
    let stored = env.stored("csv").await;
    assert_eq!(stored.len(), 500);
    for (s, src) in stored.iter().zip(&source) {
        assert_eq!(
            blob_of(s.get("ssn")),
            (env.ssn_key, Algorithm::Deterministic)
        );
        let d = enc.decrypt_document(s).await.unwrap();
        assert_eq!(d.get("ssn"), src.get("ssn"), "a string, not a number");
        assert_eq!(d.get("dob"), src.get("dob"));
        assert_eq!(d.get("age"), src.get("age"));
        assert_eq!(d.get("big"), src.get("big"));
        assert_eq!(
            d.get_document("address").unwrap().clone(),
            src.get_document("address")
                .unwrap()
                .iter()
                .map(|(k, v)| (
                    k.clone(),
                    match (k.as_str(), v) {
                        // A zip of digits is guessed a number, as mongoimport does.
                        ("zip", Bson::String(z)) => Bson::Int32(z.parse().unwrap()),
                        (_, v) => v.clone(),
                    }
                ))
                .collect::<Document>()
        );
    }
    // With --columns-have-types the zip stays a string.
    let typed = env.path("typed.csv");
    std::fs::write(&typed, "7,Ann,123456789,00042\n8,Bob,987654321,00043\n").unwrap();
    let mut c = env.csfle("import", "csv");
    c.args([
        "--type",
        "csv",
        "--columns-have-types",
        "--fields",
        "_id.int64(),name.string(),ssn.string(),address.zip.string()",
        "--mode",
        "upsert",
        "--file",
    ])
    .arg(&typed);
    ok(&output_of(c).await);
    let coll = env.client.database(&env.db).collection::<Document>("csv");
    let ann = coll.find_one(doc! {"_id": 7_i64}).await.unwrap().unwrap();
    let ann = enc.decrypt_document(&ann).await.unwrap();
    assert_eq!(
        ann,
        doc! {"_id": 7_i64, "name": "Ann", "ssn": "123456789", "address": {"zip": "00042"}}
    );
    env.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn find_encrypts_filters_and_refuses_what_it_cannot() {
    let env = Env::new().await;
    let source = env.import_people(100).await;

    // Equality on the deterministic field: the filter goes encrypted.
    let ssn = source[42].get_str("ssn").unwrap();
    let mut c = env.csfle("find", "people");
    c.args([
        "--filter",
        &format!(r#"{{"ssn": "{ssn}"}}"#),
        "--json-format",
        "canonical",
    ]);
    let out = output_of(c).await;
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!("{}\n", csfle::ejson::to_canonical_line(&source[42]))
    );
    let mut c = env.csfle("find", "people");
    c.args([
        "--filter",
        &format!(r#"{{"ssn": {{"$in": ["{ssn}", "nobody"]}}}}"#),
    ]);
    let out = output_of(c).await;
    ok(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);

    // Default limit 20, relaxed; --limit 0 is all; --pretty indents.
    let out = output_of(env.csfle("find", "people")).await;
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 20);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(first["age"].is_number(), "relaxed: {first}");
    let mut c = env.csfle("find", "people");
    c.args(["--limit", "0", "--filter", r#"{"age": {"$lt": 10}}"#]);
    let out = output_of(c).await;
    ok(&out);
    let want = source
        .iter()
        .filter(|d| d.get_i32("age").unwrap() < 10)
        .count();
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), want);
    let mut c = env.csfle("find", "people");
    c.args(["--limit", "1", "--pretty", "--projection", r#"{"ssn": 1}"#]);
    let out = output_of(c).await;
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\n  \"ssn\""), "{text}");

    // What cannot be made safe is refused, naming the field, not the value.
    for (filter, says) in [
        (
            r#"{"dob": {"$gt": {"$date": "2001-01-01T00:00:00Z"}}}"#,
            "dob",
        ),
        (r#"{"medical": {"blood": "O-secret"}}"#, "medical"),
        (r#"{"ssn": {"$gt": "100-secret"}}"#, "ssn"),
    ] {
        let mut c = env.csfle("find", "people");
        c.args(["--filter", filter]);
        let out = output_of(c).await;
        assert_eq!(out.status.code(), Some(1), "{filter}: {}", stderr_of(&out));
        assert!(out.stdout.is_empty());
        let err = stderr_of(&out);
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
    env.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn import_reports_bad_lines_and_stores_the_rest_once() {
    let env = Env::new().await;
    let n = 1000;
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for i in 0..n {
        let line = match i % 100 {
            // 1%: not JSON, a number where the schema wants a string, a
            // bad Extended JSON value, alternately.
            37 => match (i / 100) % 3 {
                0 => "{\"_id\": 1, \"ssn\": ".to_owned(),
                1 => format!(r#"{{"_id": {i}, "ssn": 123456789}}"#),
                _ => format!(r#"{{"_id": {i}, "dob": {{"$date": "secret-not-a-date"}}}}"#),
            },
            _ => csfle::ejson::to_canonical_line(&document(i)),
        };
        if i % 100 == 37 {
            bad.push(i + 1);
        }
        lines.push(line);
    }
    let file = env.path("bad.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut c = env.csfle("import", "people");
    c.arg("--file").arg(&file);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let s = summary(&out);
    assert_eq!(s["imported"], 990, "{s}");
    assert_eq!(s["failed"], 10, "{s}");
    let err = stderr_of(&out);
    for line in &bad {
        assert!(err.contains(&format!("line {line}: ")), "{err}");
    }
    assert!(!err.contains("secret"), "{err}");
    assert!(!err.contains("123456789"), "{err}");
    assert_eq!(env.stored("people").await.len(), 990);

    // A rerun in insert mode: every line is a duplicate or bad, none stored twice.
    let mut c = env.csfle("import", "people");
    c.arg("--file").arg(&file);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(summary(&out)["imported"], 0);
    assert!(stderr_of(&out).contains("duplicate key"));
    assert_eq!(env.stored("people").await.len(), 990);

    // --stop-on-error: the lines before the first bad one are stored.
    let mut c = env.csfle("import", "copy");
    c.args(["--stop-on-error", "--file"]).arg(&file);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1));
    let s = summary(&out);
    assert_eq!(s["imported"], 37, "{s}");
    assert_eq!(s["stopped"], true, "{s}");
    assert_eq!(env.stored("copy").await.len(), 37);
    env.drop().await;
}

/// Runs `c` to its end, killing it and failing the test if it takes
/// longer than `limit` (a command that must end promptly).
async fn output_within(mut c: Command, limit: std::time::Duration) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = c.spawn().unwrap();
        let deadline = std::time::Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "still running after {limit:?}; stderr began: {}",
                    String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(2000)])
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// A 20 MB line among good ones (over the server's 16 MiB once
/// encrypted): reported with its line number, every good line of its batch
/// and after it stored once, exit 1; an upsert rerun stores nothing twice.
/// libmongocrypt decrypts every stored value to its source.
#[tokio::test]
#[ignore = "needs MONGODB_URI and CSFLE_ORACLE_PYTHON"]
async fn fault_import_a_20_mb_line_among_good_ones() {
    let env = Env::new().await;
    let n = 300;
    let source: Vec<Document> = (0..n).map(document).collect();
    let big_index = 150;
    let mut text = String::new();
    for (i, d) in source.iter().enumerate() {
        let mut d = d.clone();
        if i == big_index {
            d.insert("medical", doc! {"notes": "x".repeat(20 * 1024 * 1024)});
        }
        text.push_str(&csfle::ejson::to_canonical_line(&d));
        text.push('\n');
    }
    let file = env.path("big.jsonl");
    std::fs::write(&file, &text).unwrap();
    drop(text);
    let good: Vec<Document> = source
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != big_index)
        .map(|(_, d)| d.clone())
        .collect();
    let big_line = big_index + 1;
    for mode in ["insert", "upsert"] {
        let mut c = env.csfle("import", "people");
        c.args(["--mode", mode, "--batch-size", "100", "--file"])
            .arg(&file);
        let out = output_within(c, std::time::Duration::from_secs(300)).await;
        assert_eq!(out.status.code(), Some(1), "{mode}: {}", stderr_of(&out));
        let s = summary(&out);
        assert_eq!(s["imported"], n - 1, "{mode}: {s}");
        assert_eq!(s["failed"], 1, "{mode}: {s}");
        assert_eq!(s["failures"][0]["line"], big_line, "{mode}: {s}");
        let err = stderr_of(&out);
        assert!(err.contains(&format!("line {big_line}: ")), "{err}");
        assert!(!err.contains("xxxxxxxx"), "a value was echoed");
        let stored = env.stored("people").await;
        check_stored(&env, &stored, &good).await;
        oracle_decrypts(&env, &stored, &good, stored.len());
    }
    env.drop().await;
}

/// A directory as --file ends the run at once with one message (it used
/// to print `line N: cannot read: is a directory` for ever); a UTF-8 BOM
/// before the first line is skipped; lines without _id going into a
/// collection that already holds documents are warned about first.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn fault_import_a_directory_a_bom_and_lines_without_id() {
    let env = Env::new().await;
    let mut c = env.csfle("import", "copy");
    c.arg("--file").arg(env.dir.path());
    let out = output_within(c, std::time::Duration::from_secs(60)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert_eq!(err.matches("cannot read").count(), 1, "{err}");
    assert!(err.len() < 4096, "{err}");

    let source: Vec<Document> = (0..3).map(document).collect();
    let bom = env.path("bom.jsonl");
    let lines: Vec<String> = source.iter().map(csfle::ejson::to_canonical_line).collect();
    std::fs::write(&bom, format!("\u{feff}{}\n", lines.join("\n"))).unwrap();
    let mut c = env.csfle("import", "copy");
    c.arg("--file").arg(&bom);
    let out = output_of(c).await;
    ok(&out);
    assert_eq!(summary(&out)["imported"], 3);
    assert!(!stderr_of(&out).contains("warning"), "{}", stderr_of(&out));
    check_stored(&env, &env.stored("copy").await, &source).await;

    // Without _id: into the empty collection silently, into the non-empty
    // one with a warning naming reruns, in every mode that inserts them.
    let no_id = env.path("no-id.jsonl");
    let mut text = String::new();
    for i in 10..13 {
        let mut d = document(i);
        d.remove("_id");
        text.push_str(&csfle::ejson::to_canonical_line(&d));
        text.push('\n');
    }
    std::fs::write(&no_id, text).unwrap();
    let mut c = env.csfle("import", "csv");
    c.arg("--file").arg(&no_id);
    let out = output_of(c).await;
    ok(&out);
    assert!(!stderr_of(&out).contains("warning"), "{}", stderr_of(&out));
    for mode in ["insert", "upsert"] {
        let mut c = env.csfle("import", "copy");
        c.args(["--mode", mode, "--file"]).arg(&no_id);
        let out = output_of(c).await;
        ok(&out);
        let err = stderr_of(&out);
        assert!(err.contains("warning:"), "{mode}: {err}");
        assert!(err.contains("line 1 has no _id"), "{mode}: {err}");
        assert!(err.contains("--mode insert"), "{mode}: {err}");
    }
    env.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn killed_import_then_upsert_rerun_loses_and_duplicates_nothing() {
    let env = Env::new().await;
    let n = 10_000;
    let source: Vec<Document> = (0..n).map(document).collect();
    let file = env.path("people.jsonl");
    import_file(&file, &source);
    let coll = env
        .client
        .database(&env.db)
        .collection::<Document>("people");
    let mut c = env.csfle("import", "people");
    c.args(["--batch-size", "200", "--file"]).arg(&file);
    let mut child = c.spawn().unwrap();
    let mut seen = 0;
    for _ in 0..600 {
        seen = coll.count_documents(doc! {}).await.unwrap();
        if seen >= 2000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let after_kill = coll.count_documents(doc! {}).await.unwrap();
    eprintln!("killed with {after_kill} of {n} stored (seen {seen})");
    assert!(after_kill < n as u64, "killed too late to test anything");

    let mut c = env.csfle("import", "people");
    c.args(["--mode", "upsert", "--file"]).arg(&file);
    let out = output_of(c).await;
    ok(&out);
    assert_eq!(summary(&out)["imported"], 10_000);
    let stored = env.stored("people").await;
    check_stored(&env, &stored, &source).await;

    // merge: fields set on the matched document, the others kept.
    let patch = env.path("patch.jsonl");
    std::fs::write(
        &patch,
        r#"{"_id": 5, "ssn": "555555555", "note": "merged"}"#,
    )
    .unwrap();
    let mut c = env.csfle("import", "people");
    c.args(["--mode", "merge", "--file"]).arg(&patch);
    ok(&output_of(c).await);
    let five = coll.find_one(doc! {"_id": 5_i64}).await.unwrap().unwrap();
    let five = env.encryption().decrypt_document(&five).await.unwrap();
    assert_eq!(five.get_str("ssn").unwrap(), "555555555");
    assert_eq!(five.get_str("note").unwrap(), "merged");
    assert_eq!(five.get("medical"), source[5].get("medical"));
    // A random-encrypted upsert field cannot match anything: refused.
    let mut c = env.csfle("import", "people");
    c.args(["--mode", "upsert", "--upsert-fields", "dob", "--file"])
        .arg(&patch);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    env.drop().await;
}

#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn export_audit_log_records_shapes_and_keys_never_values() {
    let env = Env::new().await;
    let source = env.import_people(50).await;
    let stored = env.stored("people").await;

    let log = env.path("audit.log");
    let ssn = source[3].get_str("ssn").unwrap();
    let mut c = env.csfle("export", "people");
    c.args([
        "--filter",
        &format!(r#"{{"ssn": "{ssn}", "age": {{"$gte": 1}}}}"#),
    ])
    .env("CSFLE_AUDIT_LOG", &log);
    let out = output_of(c).await;
    ok(&out);
    let mut c = env.csfle("find", "people");
    c.args(["--limit", "0", "--audit-log"]).arg(&log);
    ok(&output_of(c).await);

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{text}");
    let (start, end) = (&records[0], &records[1]);
    assert_eq!(start["event"], "start");
    assert_eq!(start["command"], "export");
    assert_eq!(start["namespace"], format!("{}.people", env.db));
    assert_eq!(
        start["filter_shape"],
        serde_json::json!({"ssn": "?", "age": {"$gte": "?"}})
    );
    assert!(start["user"].is_string() && start["host"].is_string());
    assert_eq!(end["event"], "end");
    assert_eq!(end["run"], start["run"]);
    assert_eq!(end["outcome"], "ok");
    assert_eq!(end["documents"], 1);
    let mut keys = vec![env.ssn_key.to_string(), env.other_key.to_string()];
    keys.sort();
    assert_eq!(end["data_keys"], serde_json::json!(keys));
    assert_eq!(end["kms_providers"], serde_json::json!(["local"]));
    assert_eq!(records[2]["command"], "find");
    assert_eq!(records[3]["documents"], 50);

    // Nothing secret: no plaintext, no ciphertext, no key material.
    let mut secrets: Vec<String> = vec![LOCAL_MASTERKEY_B64[..24].to_owned()];
    for (s, d) in stored.iter().zip(&source) {
        secrets.push(d.get_str("ssn").unwrap().to_owned());
        secrets.push(
            d.get_document("medical")
                .unwrap()
                .get_array("allergies")
                .unwrap()[1]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        for f in ENCRYPTED {
            let Some(Bson::Binary(b)) = s.get(f) else {
                panic!()
            };
            secrets.push(b64e(&b.bytes)[..24].to_owned());
        }
    }
    let vault = std::fs::read_to_string(&env.vault_file).unwrap();
    for km in vault.split("\"base64\":\"").skip(1) {
        secrets.push(km[..24.min(km.len())].to_owned());
    }
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "the audit log holds {s}");
    }

    // Fails closed: a log that cannot be written means nothing decrypted.
    let mut c = env.csfle("find", "people");
    c.args(["--audit-log", "/nonexistent-dir/audit.log"]);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        stderr_of(&out).contains("nothing was decrypted"),
        "{}",
        stderr_of(&out)
    );
    env.drop().await;
}

/// `csfle decrypt --audit-log`: no server needed.
#[test]
fn decrypt_audit_log_and_failing_closed() {
    let dir = tempfile::tempdir().unwrap();
    let kms_file = write_local_kms_file(dir.path());
    let vault_file = dir.path().join("keys.json");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let enc = ClientEncryption::new(FileKeyVault::new(&vault_file), local_kms());
    let (key, line) = rt.block_on(async {
        let key = create_local_key(&enc).await;
        let ct = enc
            .encrypt(
                &Bson::String("top-secret-value".into()),
                &KeyRef::Id(key),
                Algorithm::Random,
            )
            .await
            .unwrap();
        (key, csfle::ejson::to_canonical_line(&doc! {"v": ct}))
    });
    let decrypt = |log: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_csfle"));
        c.arg("decrypt")
            .arg("--kms-providers")
            .arg(&kms_file)
            .arg("--key-vault")
            .arg(&vault_file)
            .arg("--audit-log")
            .arg(log)
            .env_remove("CSFLE_AUDIT_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            format!("{line}\n{line}\n").as_bytes(),
        )
        .unwrap();
        child.wait_with_output().unwrap()
    };
    let log = dir.path().join("audit.log");
    let out = decrypt(&log);
    ok(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["command"], "decrypt");
    assert_eq!(records[1]["documents"], 2);
    assert_eq!(
        records[1]["data_keys"],
        serde_json::json!([key.to_string()])
    );
    assert!(!text.contains("top-secret"));
    let ciphertext = line
        .split("\"base64\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(!text.contains(&ciphertext[..24]));

    // Writable by others: refused, nothing decrypted.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = decrypt(&log);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(stderr_of(&out).contains("nothing was decrypted"));
    // A directory: refused the same way.
    let out = decrypt(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

/// A local KMS file, a file key vault with one key, and a file of two
/// `{"v": <ciphertext>}` lines under it: what `csfle decrypt` needs.
fn decrypt_fixture(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let kms_file = write_local_kms_file(dir);
    let vault_file = dir.join("keys.json");
    let input = dir.join("input.jsonl");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let enc = ClientEncryption::new(FileKeyVault::new(&vault_file), local_kms());
    let line = rt.block_on(async {
        let key = create_local_key(&enc).await;
        let ct = enc
            .encrypt(
                &Bson::String("top-secret-value".into()),
                &KeyRef::Id(key),
                Algorithm::Random,
            )
            .await
            .unwrap();
        csfle::ejson::to_canonical_line(&doc! {"v": ct})
    });
    std::fs::write(&input, format!("{line}\n{line}\n")).unwrap();
    (kms_file, vault_file, input)
}

/// `csfle decrypt --audit-log LOG < input`, under a file size limit of
/// `blocks` 512-byte blocks (`ulimit -f` of a POSIX sh) when given. No
/// `trap "" XFSZ`: the command ignores SIGXFSZ itself, so a write past the
/// limit is an error it reports, not a silent death.
fn decrypt_with_log(
    fixture: &(PathBuf, PathBuf, PathBuf),
    log: &Path,
    blocks: Option<u32>,
) -> Output {
    let (kms_file, vault_file, input) = fixture;
    let mut c = match blocks {
        Some(b) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -f {b} && exec \"$@\""))
                .arg("sh")
                .arg(env!("CARGO_BIN_EXE_csfle"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_csfle")),
    };
    c.arg("decrypt")
        .arg("--kms-providers")
        .arg(kms_file)
        .arg("--key-vault")
        .arg(vault_file)
        .arg("--audit-log")
        .arg(log)
        .env_remove("CSFLE_AUDIT_LOG")
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.output().unwrap()
}

/// An audit log as a reader that tolerates cut records sees it: the
/// records, and the numbers (from 1) of the lines that are not records.
fn audit_records(text: &str) -> (Vec<serde_json::Value>, Vec<usize>) {
    let mut records = Vec::new();
    let mut cut = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => records.push(v),
            _ => cut.push(i + 1),
        }
    }
    (records, cut)
}

/// A whole JSON line of exactly `len` bytes (newline included).
fn filler_line(len: usize) -> String {
    let frame = "{\"event\":\"filler\",\"pad\":\"\"}\n".len();
    assert!(len > frame, "no room for a filler line");
    format!(
        "{{\"event\":\"filler\",\"pad\":\"{}\"}}\n",
        "x".repeat(len - frame)
    )
}

/// The audit log on a full disk (a file size limit, SIGXFSZ not ignored by
/// the shell): no room for the start record means nothing is decrypted;
/// room for the start record but not the end record means exit 1 with a
/// message and a cut line, which the next run leaves on its own line.
#[test]
fn fault_audit_log_on_a_full_disk_never_lies() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = decrypt_fixture(dir.path());
    // This machine's record sizes (user, host and pid vary).
    let probe = dir.path().join("probe.log");
    let out = decrypt_with_log(&fixture, &probe, None);
    ok(&out);
    let text = std::fs::read_to_string(&probe).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (start_len, end_len) = (lines[0].len() + 1, lines[1].len() + 1);

    // No room at all: nothing decrypted, the log untouched.
    let full = dir.path().join("full.log");
    std::fs::write(&full, filler_line(1024)).unwrap();
    let out = decrypt_with_log(&fixture, &full, Some(1));
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty(), "decrypted without a start record");
    let err = stderr_of(&out);
    assert!(err.contains("cannot write the start record"), "{err}");
    assert!(err.contains("nothing was decrypted"), "{err}");
    assert_eq!(std::fs::metadata(&full).unwrap().len(), 1024);

    // Room for the start record, and for half the end record.
    let limit = 4 * 512;
    let log = dir.path().join("audit.log");
    std::fs::write(&log, filler_line(limit - start_len - end_len / 2)).unwrap();
    let out = decrypt_with_log(&fixture, &log, Some(4));
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(
        String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .count(),
        2,
        "the output was written"
    );
    let err = stderr_of(&out);
    assert!(err.contains("cannot write the end record"), "{err}");
    assert!(err.contains("start record"), "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.ends_with('\n'), "no cut record: {text}");
    let (records, cut) = audit_records(&text);
    assert_eq!(cut, vec![3], "{text}");
    assert_eq!(records[1]["event"], "start");

    // The next run: a fresh line, a warning, whole records.
    let out = decrypt_with_log(&fixture, &log, None);
    ok(&out);
    assert!(stderr_of(&out).contains("cut short"), "{}", stderr_of(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'));
    let (records, cut) = audit_records(&text);
    assert_eq!(cut, vec![3], "{text}");
    assert_eq!(records.len(), 4, "{text}");
    assert_eq!(records[2]["event"], "start");
    assert_eq!(records[2]["after_cut_record"], true);
    assert_eq!(records[3]["event"], "end");
    assert_eq!(records[3]["documents"], 2);
    assert_eq!(records[3]["run"], records[2]["run"]);
}

/// A FIFO as the audit log is refused at once: opening one for writing
/// would otherwise wait for a reader for ever.
#[test]
fn fault_a_fifo_as_audit_log_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (kms_file, vault_file, _) = decrypt_fixture(dir.path());
    let fifo = dir.path().join("audit.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_csfle"))
        .arg("decrypt")
        .arg("--kms-providers")
        .arg(&kms_file)
        .arg("--key-vault")
        .arg(&vault_file)
        .arg("--audit-log")
        .arg(&fifo)
        .env_remove("CSFLE_AUDIT_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("csfle decrypt hung on a FIFO audit log");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr_of(&out).contains("not a regular file"),
        "{}",
        stderr_of(&out)
    );
}

/// The library's hook: a sink that refuses means nothing is decrypted; one
/// that accepts sees key ids and providers only.
#[derive(Debug, Default)]
struct Recorder {
    refuse: bool,
    seen: Mutex<Vec<Seen>>,
}

/// One decryption as the sink saw it: (key id, provider) pairs, documents.
type Seen = (Vec<(KeyId, Option<String>)>, usize);

impl csfle::AuditSink for Recorder {
    fn before_decrypt(&self, event: &csfle::DecryptionEvent<'_>) -> Result<(), csfle::AuditError> {
        self.seen.lock().unwrap().push((
            event
                .keys
                .iter()
                .map(|k| (k.id, k.provider.as_ref().map(|p| p.to_string())))
                .collect(),
            event.documents,
        ));
        if self.refuse {
            Err(csfle::AuditError::new("the audit store is down"))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn audit_sink_sees_keys_and_can_refuse() {
    let vault = MemoryKeyVault::new();
    let setup = ClientEncryption::new(vault.clone(), local_kms());
    let key = create_local_key(&setup).await;
    let ct = setup
        .encrypt(&Bson::Int32(7), &KeyRef::Id(key), Algorithm::Deterministic)
        .await
        .unwrap();
    let doc = doc! {"a": ct.clone(), "b": {"c": ct.clone()}, "plain": 1};

    let accepting = Arc::new(Recorder::default());
    let enc = ClientEncryption::new(vault.clone(), local_kms()).with_audit_sink(accepting.clone());
    assert_eq!(
        enc.decrypt_document(&doc).await.unwrap(),
        doc! {"a": 7, "b": {"c": 7}, "plain": 1}
    );
    assert_eq!(enc.decrypt(&ct).await.unwrap(), Bson::Int32(7));
    // Nothing encrypted: nothing to ask.
    enc.decrypt_document(&doc! {"plain": 1}).await.unwrap();
    let seen = accepting.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (vec![(key, Some("local".to_owned()))], 1),
            (vec![(key, Some("local".to_owned()))], 1),
        ]
    );

    let refusing = Arc::new(Recorder {
        refuse: true,
        ..Default::default()
    });
    let enc = ClientEncryption::new(vault, local_kms()).with_audit_sink(refusing.clone());
    let e = enc.decrypt_document(&doc).await.unwrap_err();
    assert!(
        matches!(e, csfle::Error::Client(csfle::ClientError::Audit(_))),
        "{e}"
    );
    assert!(e.to_string().contains("the audit store is down"), "{e}");
    assert!(enc.decrypt(&ct).await.is_err());
    let raw = bson::to_raw_document_buf(&doc).unwrap();
    assert!(enc.decrypt_raw_documents(&[raw.as_ref()]).await.is_err());
    assert_eq!(refusing.seen.lock().unwrap().len(), 3);
}

/// A collection with no schema anywhere (no map entry, no validator):
/// `find` and `export` refuse it (exit 2) before the query reaches the
/// server, `import` before writing; `--allow-plaintext` lets each through.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn schemaless_collection_is_refused_unless_allow_plaintext() {
    let env = Env::new().await;
    let coll = env.client.database(&env.db).collection::<Document>("plain");
    coll.insert_one(doc! {"_id": 1, "ssn": "457-55-5462"})
        .await
        .unwrap();
    let proxy = wire_proxy::WireProxy::start(&env.uri).await;
    let filter = r#"{"ssn": "457-55-5462"}"#;
    for command in ["find", "export"] {
        let mut c = env.csfle_via(&proxy.uri, command, "plain");
        c.args(["--filter", filter]);
        let out = output_of(c).await;
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("--allow-plaintext"),
            "{}",
            stderr_of(&out)
        );
        assert!(out.stdout.is_empty());
    }
    let seen = proxy.commands_seen();
    assert!(seen.iter().any(|c| c == "listCollections"), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|c| ["find", "aggregate", "count"].contains(&c.as_str())),
        "the query was sent: {seen:?}"
    );
    for command in ["find", "export"] {
        let mut c = env.csfle_via(&proxy.uri, command, "plain");
        c.args(["--filter", filter, "--allow-plaintext"]);
        let out = output_of(c).await;
        ok(&out);
        assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
    }

    let file = env.path("plain.jsonl");
    std::fs::write(&file, "{\"_id\": 2, \"ssn\": \"x\"}\n").unwrap();
    let mut c = env.csfle("import", "plain");
    c.arg("--file").arg(&file);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 1);
    let mut c = env.csfle("import", "plain");
    c.args(["--allow-plaintext", "--file"]).arg(&file);
    ok(&output_of(c).await);
    assert_eq!(coll.count_documents(doc! {}).await.unwrap(), 2);
    env.drop().await;
}

/// `import --mode merge|upsert` refuses a top-level name with a `.` or a
/// leading `$` (a failed line each, the other lines stored); a name below
/// an encrypted field (`medical.blood`, `medical` encrypted) is refused in
/// insert mode too, by the plan.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn import_refuses_paths_and_operators_as_field_names() {
    let env = Env::new().await;
    let file = env.path("lines.jsonl");
    let lines = [
        r#"{"_id": 1, "name": "ok"}"#,
        r#"{"_id": 2, "medical.blood": "O-secret"}"#,
        r#"{"_id": 3, "$set": {"ssn": "123-secret"}}"#,
        r#"{"_id": 4, "address.city": "Paris-secret"}"#,
        r#"{"_id": 5, "name": "fine"}"#,
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    for mode in ["merge", "upsert"] {
        let mut c = env.csfle("import", "people");
        c.args(["--mode", mode, "--file"]).arg(&file);
        let out = output_of(c).await;
        assert_eq!(out.status.code(), Some(1), "{mode}: {}", stderr_of(&out));
        let s = summary(&out);
        assert_eq!(s["imported"], 2, "{mode}: {s}");
        assert_eq!(s["failed"], 3, "{mode}: {s}");
        let err = stderr_of(&out);
        for line in [2, 3, 4] {
            assert!(
                err.contains(&format!("line {line}: top-level field")),
                "{err}"
            );
        }
        assert!(!err.contains("secret"), "{err}");
    }
    let stored = env.stored("people").await;
    assert_eq!(stored.len(), 2);
    for d in &stored {
        assert!(
            d.keys().all(|k| !k.contains('.') && !k.starts_with('$')),
            "{d}"
        );
        assert!(
            d.get("medical").is_none() && d.get("address").is_none(),
            "{d}"
        );
    }

    // Insert mode: the plan refuses a name below an encrypted field.
    let below = env.path("below.jsonl");
    std::fs::write(
        &below,
        "{\"_id\": 1, \"name\": \"ok\"}\n{\"_id\": 2, \"medical.blood\": \"O-secret\"}\n",
    )
    .unwrap();
    let mut c = env.csfle("import", "copy");
    c.arg("--file").arg(&below);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("line 2: field 'medical.blood': below the encrypted field 'medical'"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    assert_eq!(env.stored("copy").await.len(), 1);
    env.drop().await;
}

/// `export --out`: cut off mid-stream (the reply to a `getMore` lost with
/// its connection) it exits 1 and leaves nothing at `--out` and no
/// temporary file; complete, the file is mode 0600; an existing file is
/// refused unless `--force`.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn export_cut_off_leaves_no_partial_file() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new().await;
    env.import_people(2500).await;
    let file = env.path("people.jsonl");

    let proxy = wire_proxy::WireProxy::start(&env.uri).await;
    proxy.lose_next_reply_to("getMore");
    let out_file = env.path("export.jsonl");
    let mut c = env.csfle_via(&proxy.uri, "export", "people");
    c.arg("--out").arg(&out_file);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(proxy.replies_lost(), 1);
    assert!(!out_file.exists(), "a partial export was left at --out");
    let temps: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".csfle-tmp."))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");

    let export = |force: bool| {
        let mut c = env.csfle("export", "people");
        c.args(["--sort", r#"{"_id": 1}"#, "--out"]).arg(&out_file);
        if force {
            c.arg("--force");
        }
        c
    };
    ok(&output_of(export(false)).await);
    assert_eq!(
        std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let out = output_of(export(false)).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("--force"), "{}", stderr_of(&out));
    std::fs::write(&out_file, "old").unwrap();
    ok(&output_of(export(true)).await);
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        std::fs::read(&file).unwrap()
    );
    env.drop().await;
}

/// CSV cells a spreadsheet would run as formulas get a leading `'` (not
/// numbers), `--no-formula-escape` writes mongoexport's bytes, and
/// `import --formula-escaped` takes the escaped file back unchanged.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn csv_formula_cells_are_escaped_and_round_trip() {
    let env = Env::new().await;
    let names = [
        "=HYPERLINK(\"http://x\")",
        "+1+2",
        "-Inf",
        "@SUM(A1)",
        "'=quoted",
        "-5",
        "plain",
    ];
    let source: Vec<Document> = names
        .iter()
        .enumerate()
        .map(|(i, n)| doc! {"_id": i as i32, "name": *n, "ssn": format!("={i}")})
        .collect();
    let file = env.path("people.jsonl");
    import_file(&file, &source);
    let mut c = env.csfle("import", "people");
    c.arg("--file").arg(&file);
    ok(&output_of(c).await);

    let export = |escape: bool, out: &Path| {
        let mut c = env.csfle("export", "people");
        c.args([
            "--type",
            "csv",
            "--fields",
            "_id,name,ssn",
            "--no-header-line",
            "--sort",
            r#"{"_id": 1}"#,
            "--out",
        ])
        .arg(out);
        if !escape {
            c.arg("--no-formula-escape");
        }
        c
    };
    let escaped = env.path("escaped.csv");
    ok(&output_of(export(true, &escaped)).await);
    let text = std::fs::read_to_string(&escaped).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1..],
        [
            "1,'+1+2,'=1",
            "2,'-Inf,'=2",
            "3,'@SUM(A1),'=3",
            "4,''=quoted,'=4",
            "5,-5,'=5",
            "6,plain,'=6"
        ],
        "{text}"
    );
    let raw = env.path("raw.csv");
    ok(&output_of(export(false, &raw)).await);
    let text = std::fs::read_to_string(&raw).unwrap();
    assert_eq!(text.lines().nth(1), Some("1,+1+2,=1"), "{text}");

    let mut c = env.csfle("import", "csv");
    c.args([
        "--type",
        "csv",
        "--formula-escaped",
        "--columns-have-types",
        "--fields",
        "_id.int32(),name.string(),ssn.string()",
        "--file",
    ])
    .arg(&escaped);
    ok(&output_of(c).await);
    let enc = env.encryption();
    let stored = env.stored("csv").await;
    assert_eq!(stored.len(), source.len());
    for (s, want) in stored.iter().zip(&source) {
        assert_eq!(&enc.decrypt_document(s).await.unwrap(), want);
    }
    env.drop().await;
}

/// `migrate --audit-log`: a decrypting plan's run is recorded (start with
/// the plan's nature, end with the outcome and the documents changed).
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn migrate_audit_log_records_a_decrypting_run() {
    let env = Env::new().await;
    let source = env.import_people(20).await;

    let log = env.path("audit.log");
    let out = output_of({
        let mut c = Command::new(env!("CARGO_BIN_EXE_csfle"));
        c.args(["migrate", "--uri", &env.uri, "--source"])
            .arg(format!("{}.people", env.db))
            .arg("--target")
            .arg(format!("{}.copy", env.db))
            .arg("--schema-map")
            .arg(&env.map_file)
            .arg("--kms-providers")
            .arg(&env.kms_file)
            .arg("--key-vault")
            .arg(&env.vault_file)
            .arg("--decrypt-unlisted")
            .arg("--audit-log")
            .arg(&log)
            .env("CSFLE_AUDIT_REQUIRED", "1")
            .env_remove("CSFLE_AUDIT_LOG")
            .env_remove("CSFLE_URI")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    })
    .await;
    ok(&out);
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{text}");
    assert_eq!(records[0]["command"], "migrate");
    assert_eq!(records[0]["namespace"], format!("{}.people", env.db));
    assert_eq!(records[0]["plan_decrypts"], true);
    assert_eq!(records[1]["outcome"], "ok");
    assert_eq!(records[1]["documents"], 20);
    assert!(!text.contains(source[0].get_str("ssn").unwrap()), "{text}");
    env.drop().await;
}

/// An import never stores a ciphertext decrypted: where the schema wants
/// plaintext (a field named without `encrypt`, a sub-document it
/// describes holding a ciphertext of the whole sub-document) the line is
/// refused, naming the field and never the value; a ciphertext under
/// another algorithm at an encrypted field is re-encrypted, still allowed.
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn import_never_stores_a_ciphertext_decrypted() {
    let env = Env::new().await;
    let enc = env.encryption();
    let key = Bson::Array(vec![Bson::Binary(env.ssn_key.to_binary())]);
    let ns = format!("{}.scratch", env.db);
    let map = env.path("scratch-map.json");
    let mut map_doc = Document::new();
    map_doc.insert(
        ns.clone(),
        doc! {
            "bsonType": "object",
            "properties": {
                "x": {"bsonType": "string"},
                "ssn": {"encrypt": {"keyId": key.clone(), "algorithm": DET, "bsonType": "string"}},
                "addr": {"bsonType": "object", "properties": {
                    "zip": {"encrypt": {"keyId": key, "algorithm": DET, "bsonType": "string"}},
                }},
            },
        },
    );
    std::fs::write(&map, csfle::ejson::to_canonical_line(&map_doc)).unwrap();
    let ssn_key = KeyRef::Id(env.ssn_key);
    let det_ssn = enc
        .encrypt(
            &Bson::from("457-55-5462"),
            &ssn_key,
            Algorithm::Deterministic,
        )
        .await
        .unwrap();
    let random_ssn = enc
        .encrypt(&Bson::from("457-55-5462"), &ssn_key, Algorithm::Random)
        .await
        .unwrap();
    let whole_addr = enc
        .encrypt(
            &Bson::Document(doc! {"street": "1 Secret Street", "zip": "12345"}),
            &ssn_key,
            Algorithm::Random,
        )
        .await
        .unwrap();
    let lines = [
        doc! {"_id": 1, "x": Bson::Binary(det_ssn)},
        doc! {"_id": 2, "addr": Bson::Binary(whole_addr)},
        doc! {"_id": 3, "ssn": Bson::Binary(random_ssn)},
        doc! {"_id": 4, "x": "plain"},
    ];
    let file = env.path("scratch.jsonl");
    import_file(&file, &lines);
    let mut c = Command::new(env!("CARGO_BIN_EXE_csfle"));
    c.args(["import", "--uri", &env.uri, "--ns", &ns])
        .arg("--schema-map")
        .arg(&map)
        .arg("--kms-providers")
        .arg(&env.kms_file)
        .arg("--key-vault")
        .arg(&env.vault_file)
        .arg("--file")
        .arg(&file)
        .env_remove("CSFLE_AUDIT_LOG")
        .env_remove("CSFLE_AUDIT_REQUIRED")
        .env_remove("CSFLE_URI")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let s = summary(&out);
    assert_eq!(s["imported"], 2, "{s}");
    assert_eq!(s["failed"], 2, "{s}");
    let err = stderr_of(&out);
    assert!(err.contains("line 1: field 'x'"), "{err}");
    assert!(err.contains("line 2: field 'addr'"), "{err}");
    assert!(!err.contains("457-55-5462"), "{err}");
    assert!(!err.contains("Secret Street"), "{err}");
    let stored = env.stored("scratch").await;
    let ids: Vec<&Bson> = stored.iter().filter_map(|d| d.get("_id")).collect();
    assert_eq!(ids, [&Bson::Int32(3), &Bson::Int32(4)]);
    assert_eq!(
        blob_of(stored[0].get("ssn")),
        (env.ssn_key, Algorithm::Deterministic)
    );
    env.drop().await;
}

/// --stop-on-error in upsert mode: the line whose upsert the server
/// refuses (it would change the matched document's _id) ends the import;
/// only the lines before it are counted and stored, not a later line
/// without the upsert field (which is inserted, not upserted).
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn import_stop_on_error_upsert_stores_nothing_after_the_failed_line() {
    let env = Env::new().await;
    env.client
        .database(&env.db)
        .collection::<Document>("copy")
        .insert_one(doc! {"_id": 100, "name": "a"})
        .await
        .unwrap();
    let file = env.path("upsert.jsonl");
    import_file(
        &file,
        &[
            doc! {"_id": 1, "name": "b"},
            // Matches _id 100 and would replace its _id: refused.
            doc! {"_id": 2, "name": "a"},
            doc! {"_id": 3, "name": "c"},
            doc! {"_id": 4},
        ],
    );
    let mut c = env.csfle("import", "copy");
    c.args([
        "--mode",
        "upsert",
        "--upsert-fields",
        "name",
        "--stop-on-error",
        "--file",
    ])
    .arg(&file);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let s = summary(&out);
    assert_eq!(s["imported"], 1, "{s}");
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["stopped"], true, "{s}");
    assert_eq!(s["failures"][0]["line"], 2, "{s}");
    let stored = env.stored("copy").await;
    let ids: Vec<&Bson> = stored.iter().filter_map(|d| d.get("_id")).collect();
    assert_eq!(ids, [&Bson::Int32(1), &Bson::Int32(100)]);
    env.drop().await;
}

/// The first byte of every subtype-6 binary in `v`, in document order.
#[cfg(feature = "qe")]
fn encrypted_first_bytes(v: &Bson, out: &mut Vec<u8>) {
    match v {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            out.push(b.bytes.first().copied().unwrap_or(0));
        }
        Bson::Document(d) => d.values().for_each(|v| encrypted_first_bytes(v, out)),
        Bson::Array(a) => a.iter().for_each(|v| encrypted_first_bytes(v, out)),
        _ => {}
    }
}

/// Whether `needle` appears in any of `commands`, serialized.
#[cfg(feature = "qe")]
fn any_contains(commands: &[Document], needle: &str) -> bool {
    commands.iter().any(|c| {
        let bytes = bson::to_vec(c).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

/// Queryable Encryption through `import`, `export` and `find`, against
/// the server through the loopback wire proxy: the test server has no
/// Queryable Encryption, so the proxy plays its part for the QE commands
/// (it records them and answers them itself), everything else reaches the
/// server. `import` into a QE collection (configured by
/// `--encrypted-fields-map`, or by the server's `encryptedFields` in
/// `listCollections`) sends `insert` commands whose encrypted fields are
/// insert payloads, each closed by libmongocrypt's
/// `encryptionInformation`, no plaintext of an encrypted field anywhere;
/// a line automatic encryption refuses is that line's failure and every
/// other line is sent once; `--mode upsert` is refused. What was sent,
/// returned as the server's documents (with a `__safeContent__`), comes
/// back from `export` decrypted, equal to the imported lines, without
/// `__safeContent__`; `find` by SSN sends an equality find payload with
/// the `encryptionInformation`.
#[cfg(feature = "qe")]
#[tokio::test]
#[ignore = "needs MONGODB_URI"]
async fn queryable_encryption_import_then_export_round_trip() {
    let env = Env::new().await;
    let proxy = wire_proxy::WireProxy::start(&env.uri).await;
    let fields = doc! {"fields": [
        {"path": "ssn", "keyId": Bson::Binary(env.ssn_key.to_binary()), "bsonType": "string",
         "queries": {"queryType": "equality", "contention": 0_i64}},
        {"path": "age", "keyId": Bson::Binary(env.other_key.to_binary()), "bsonType": "int",
         "queries": {"queryType": "range", "contention": 0_i64, "min": 0, "max": 200,
                     "sparsity": 1_i64, "trimFactor": 1}},
    ]};
    // What the server is sent as the collection's encryptionInformation:
    // the encryptedFields as given, the state collections' names added.
    let information = |coll: &str| {
        let mut schema = fields.clone();
        schema.insert("escCollection", format!("enxcol_.{coll}.esc"));
        schema.insert("ecocCollection", format!("enxcol_.{coll}.ecoc"));
        doc! {"type": 1_i32, "schema": {format!("{}.{coll}", env.db): schema}}
    };
    let qe_map = env.path("qe-map.json");
    std::fs::write(
        &qe_map,
        csfle::ejson::to_canonical_line(&doc! {format!("{}.patients", env.db): fields.clone()}),
    )
    .unwrap();
    let with_map = |command: &str| {
        let mut c = env.csfle_via(&proxy.uri, command, "patients");
        c.arg("--encrypted-fields-map").arg(&qe_map);
        c
    };
    let source: Vec<Document> = (0..5)
        .map(|i| {
            doc! {
                "_id": i,
                "name": format!("patient {i}"),
                "ssn": format!("{:09}", 123_450_000 + i),
                "age": 20 + 10 * i,
            }
        })
        .collect();
    // Line 4: an age that is no int (the field's bsonType): refused by
    // automatic encryption, the other five sent.
    let mut lines = source.clone();
    lines.insert(3, doc! {"_id": 99, "ssn": "000000000", "age": "old-secret"});
    let file = env.path("patients.jsonl");
    import_file(&file, &lines);
    proxy.answer("insert", Some("patients"), doc! {"n": 1, "ok": 1.0});

    let mut c = with_map("import");
    c.args(["--mode", "upsert", "--file"]).arg(&file);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("--mode insert"),
        "{}",
        stderr_of(&out)
    );
    assert!(proxy.recorded_on("insert", "patients").is_empty());

    let mut c = with_map("import");
    c.arg("--file").arg(&file);
    let out = output_of(c).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let s = summary(&out);
    assert_eq!(
        (s["imported"].as_u64(), s["failed"].as_u64()),
        (Some(5), Some(1)),
        "{s}"
    );
    assert_eq!(s["failures"][0]["line"], 4, "{s}");
    let reason = s["failures"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("age") && !reason.contains("old-secret"),
        "{reason}"
    );

    let inserts = proxy.recorded_on("insert", "patients");
    assert!(!inserts.is_empty());
    let mut stored = Vec::new();
    for insert in &inserts {
        assert_eq!(
            bson::to_vec(insert.get_document("encryptionInformation").unwrap()).unwrap(),
            bson::to_vec(&information("patients")).unwrap(),
            "{insert}"
        );
        for d in insert.get_array("documents").unwrap() {
            stored.push(d.as_document().unwrap().clone());
        }
    }
    // Each good line once, in input order; both fields insert payloads
    // (FLE2InsertUpdatePayloadV2), the others as they were.
    assert_eq!(stored.len(), source.len());
    for (s, want) in stored.iter().zip(&source) {
        assert_eq!(s.get("_id"), want.get("_id"));
        assert_eq!(s.get("name"), want.get("name"));
        let mut bytes = Vec::new();
        encrypted_first_bytes(&Bson::Document(s.clone()), &mut bytes);
        assert_eq!(bytes, [11, 11], "{s}");
    }
    for d in &source {
        assert!(!any_contains(&proxy.recorded(), d.get_str("ssn").unwrap()));
    }

    // The "server" holds what was sent, with its tags.
    let tags = Bson::Array(vec![Bson::Binary(bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes: vec![7; 32],
    })]);
    let held: Vec<Bson> = stored
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.insert("__safeContent__", tags.clone());
            Bson::Document(d)
        })
        .collect();
    proxy.answer(
        "find",
        Some("patients"),
        doc! {"cursor": {"id": 0_i64, "ns": format!("{}.patients", env.db), "firstBatch": held}, "ok": 1.0},
    );
    let out = output_of(with_map("export")).await;
    ok(&out);
    let exported: Vec<Document> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| csfle::ejson::parse_document(l).unwrap())
        .collect();
    assert_eq!(exported, source);

    // find by SSN: an equality find payload beside the
    // encryptionInformation, the value nowhere.
    proxy.clear_recorded();
    let ssn = source[2].get_str("ssn").unwrap();
    let mut c = with_map("find");
    c.args([
        "--filter",
        &format!(r#"{{"ssn": "{ssn}"}}"#),
        "--json-format",
        "canonical",
    ]);
    let out = output_of(c).await;
    ok(&out);
    let found: Vec<Document> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| csfle::ejson::parse_document(l).unwrap())
        .collect();
    // The proxy answers every find with every document.
    assert_eq!(found, source);
    let finds = proxy.recorded_on("find", "patients");
    assert_eq!(finds.len(), 1, "{finds:?}");
    let mut bytes = Vec::new();
    encrypted_first_bytes(
        &Bson::Document(finds[0].get_document("filter").unwrap().clone()),
        &mut bytes,
    );
    assert_eq!(bytes, [12]);
    assert_eq!(
        bson::to_vec(finds[0].get_document("encryptionInformation").unwrap()).unwrap(),
        bson::to_vec(&information("patients")).unwrap()
    );
    assert!(!any_contains(&proxy.recorded(), ssn));

    // A collection the server configures (encryptedFields in
    // listCollections), no map entry: the same inserts, its own
    // encryptionInformation.
    env.client
        .database(&env.db)
        .create_collection("remote")
        .await
        .unwrap();
    proxy.list(
        "remote",
        wire_proxy::Listed::EncryptedFields(fields.clone()),
    );
    proxy.answer("insert", Some("remote"), doc! {"n": 1, "ok": 1.0});
    let remote_file = env.path("remote.jsonl");
    import_file(&remote_file, &source);
    let mut c = env.csfle_via(&proxy.uri, "import", "remote");
    c.arg("--file").arg(&remote_file);
    ok(&output_of(c).await);
    // One document per insert: mongod refuses a QE insert of more
    // (error 6371202).
    let inserts = proxy.recorded_on("insert", "remote");
    assert_eq!(inserts.len(), source.len(), "one insert per document");
    for insert in &inserts {
        assert_eq!(insert.get_array("documents").unwrap().len(), 1);
        assert_eq!(
            bson::to_vec(insert.get_document("encryptionInformation").unwrap()).unwrap(),
            bson::to_vec(&information("remote")).unwrap()
        );
    }
    assert!(!any_contains(
        &proxy.recorded(),
        source[0].get_str("ssn").unwrap()
    ));
    // Nothing reached the server's collections.
    assert_eq!(env.stored("remote").await.len(), 0);
    env.drop().await;
}
