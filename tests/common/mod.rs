//! Shared helpers for the integration tests.
#![allow(dead_code)]

pub mod legacy;
pub mod tables;
pub mod typed;

use base64::Engine;
use bson::{Bson, Document};
use csfle::keyvault::{self, KeyDocument};
use csfle::{DataKey, KeyId, KeyLookup, KeyRef};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The spec tests' local master key (LOCAL_MASTERKEY in the spec's prose tests).
pub const LOCAL_MASTERKEY_B64: &str = "Mng0NCt4ZHVUYUJCa1kxNkVyNUR1QURhZ2h2UzR2d2RrZzh0cFBwM3R6NmdWMDFBMUN3YkQ5aXRRMkhGRGdQV09wOGVNYUMxT2k3NjZKelhaQmRCZGJkTXVyZG9uSjFk";

pub fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

pub fn b64e(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A service a test needs, named by an environment variable (a server
/// URI, a tool's path). Tests that call this are `#[ignore = "needs NAME"]`,
/// so a plain `cargo test` reports them as ignored, never as passed;
/// `.ci/run` runs them with the services up (`-- --ignored`). Run by hand
/// without the variable, the test fails saying what to set.
pub fn service_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs a service (docs/testing.md: running the tests)"
        ),
    }
}

/// The spec data directory: `$CSFLE_SPEC_DIR`, else `../shared/spec-tests`.
/// Missing data fails under `CI=true` and skips (loudly) otherwise.
pub fn spec_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CSFLE_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec-tests"));
    if dir.join("mongodb-specifications").is_dir() {
        return Some(dir);
    }
    if in_ci() {
        panic!(
            "spec data not found at {} (CI=true: missing prerequisites fail)",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: spec data not found at {}; set CSFLE_SPEC_DIR to run the interop tests",
        dir.display()
    );
    None
}

pub fn spec_path(rel: &str) -> Option<PathBuf> {
    spec_dir().map(|d| d.join(rel))
}

pub const CSE: &str = "mongodb-specifications/source/client-side-encryption";
pub const LMC: &str = "mongodb-libmongocrypt/test";

/// Reads an Extended JSON file into BSON.
pub fn read_ejson(path: &Path) -> Bson {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Bson::try_from(v).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn read_doc(path: &Path) -> Document {
    match read_ejson(path) {
        Bson::Document(d) => d,
        other => panic!("{}: expected a document, got {other:?}", path.display()),
    }
}

/// The plaintext data key of libmongocrypt's AWS example key document, from
/// the recorded KMS Decrypt reply. Checks that the reply's KeyId is the key
/// document's master key.
pub fn aws_example_dek(spec: &Path) -> Vec<u8> {
    let reply =
        std::fs::read_to_string(spec.join(LMC).join("example/kms-decrypt-reply.txt")).unwrap();
    let body = &reply[reply.find('{').expect("JSON body")..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let key_doc = read_doc(&spec.join(LMC).join("example/key-document.json"));
    let kd = KeyDocument::from_document(&key_doc).unwrap();
    match &kd.master_key {
        keyvault::MasterKey::Aws { key, .. } => assert_eq!(key, v["KeyId"].as_str().unwrap()),
        other => panic!("unexpected master key {other:?}"),
    }
    let dek = b64(v["Plaintext"].as_str().unwrap());
    assert_eq!(dek.len(), 96);
    dek
}

/// The keyMaterial of libmongocrypt's AWS example key document.
pub fn aws_example_key_material(spec: &Path) -> Vec<u8> {
    let kd =
        KeyDocument::from_document(&read_doc(&spec.join(LMC).join("example/key-document.json")))
            .unwrap();
    kd.key_material
}

/// An in-memory key source of ready data keys, for keys whose material is
/// known without a KMS (recorded AWS replies, fixtures).
#[derive(Default)]
pub struct StaticKeys {
    by_id: HashMap<KeyId, Arc<DataKey>>,
    by_name: HashMap<String, KeyId>,
}

impl StaticKeys {
    pub fn add(&mut self, id: KeyId, material: &[u8], alt_names: &[&str]) {
        self.by_id
            .insert(id, Arc::new(DataKey::new(id, material).unwrap()));
        for n in alt_names {
            self.by_name.insert((*n).to_owned(), id);
        }
    }
}

impl KeyLookup for StaticKeys {
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, csfle::key::LookupError> {
        let id = match key {
            KeyRef::Id(id) => *id,
            KeyRef::AltName(n) => *self
                .by_name
                .get(n)
                .ok_or_else(|| csfle::key::LookupError::AltNameNotFound(n.clone()))?,
        };
        self.by_id
            .get(&id)
            .cloned()
            .ok_or(csfle::key::LookupError::KeyNotFound(id))
    }
}

pub fn key_id_of(doc: &Document) -> KeyId {
    KeyDocument::from_document(doc).unwrap().id
}

/// A test KMS for the `aws` provider that replays libmongocrypt's recorded
/// KMS Decrypt reply (`test/example/kms-decrypt-reply.txt`), and only for the
/// exact request it was recorded for: the key document's KeyId (ARN) and
/// CiphertextBlob (its keyMaterial). Anything else is refused, as a real KMS
/// would refuse a blob it did not produce.
pub struct RecordedAwsKms {
    key_arn: String,
    ciphertext_blob: Vec<u8>,
    plaintext: zeroize::Zeroizing<Vec<u8>>,
}

/// Like every `KmsProvider`, never prints key material.
impl std::fmt::Debug for RecordedAwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedAwsKms")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

impl RecordedAwsKms {
    pub fn from_spec(spec: &Path) -> Self {
        let kd = KeyDocument::from_document(&read_doc(
            &spec.join(LMC).join("example/key-document.json"),
        ))
        .unwrap();
        let keyvault::MasterKey::Aws { key, .. } = &kd.master_key else {
            panic!("AWS key expected")
        };
        RecordedAwsKms {
            key_arn: key.clone(),
            ciphertext_blob: kd.key_material.clone(),
            plaintext: zeroize::Zeroizing::new(aws_example_dek(spec)),
        }
    }
}

impl csfle::kms::KmsProvider for RecordedAwsKms {
    fn wrap<'a>(
        &'a self,
        _master_key: &'a keyvault::MasterKey,
        _data_key: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u8>, csfle::kms::Error>> {
        Box::pin(std::future::ready(Err(csfle::kms::Error::Remote {
            provider: "aws".into(),
            endpoint: "replay".into(),
            message: "the replay KMS has no recorded Encrypt reply".into(),
        })))
    }

    fn unwrap<'a>(
        &'a self,
        master_key: &'a keyvault::MasterKey,
        key_material: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, Result<zeroize::Zeroizing<Vec<u8>>, csfle::kms::Error>>
    {
        let result = match master_key {
            keyvault::MasterKey::Aws { key, .. }
                if *key == self.key_arn && key_material == self.ciphertext_blob =>
            {
                Ok(self.plaintext.clone())
            }
            _ => Err(csfle::kms::Error::Remote {
                provider: master_key.provider().to_string(),
                endpoint: "replay".into(),
                message: "no recorded reply for this KeyId and CiphertextBlob".into(),
            }),
        };
        Box::pin(std::future::ready(result))
    }
}

/// The spec tests' KMS providers usable offline: `local` with
/// LOCAL_MASTERKEY, and `aws` through the recorded KMS reply.
pub fn spec_kms(spec: &Path) -> csfle::kms::KmsProviders {
    csfle::kms::KmsProviders::new()
        .with_local(
            csfle::kms::ProviderName::parse("local").unwrap(),
            csfle::kms::LocalMasterKey::new(&b64(LOCAL_MASTERKEY_B64)).unwrap(),
        )
        .with_provider(
            csfle::kms::ProviderName::parse("aws").unwrap(),
            std::sync::Arc::new(RecordedAwsKms::from_spec(spec)),
        )
}

/// A name no other test uses (`prefix_` + 12 random hex digits), for the
/// databases server tests create and drop.
pub fn unique_name(prefix: &str) -> String {
    let mut b = [0u8; 6];
    csfle::crypto::fill_random(&mut b).unwrap();
    format!(
        "{prefix}_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Runs `cmd` with `stdin` written to its standard input; its output.
pub fn output_with_stdin(cmd: &mut std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every document of `coll` as the server holds it, in `_id` order.
pub async fn stored_by_id(coll: mongodb::Collection<Document>) -> Vec<Document> {
    use futures_util::TryStreamExt;
    coll.find(bson::doc! {})
        .sort(bson::doc! {"_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// A client over a fresh in-memory key vault, with the providers of a
/// `kmsProviders` document built with `options`.
pub fn memory_client(
    kms: Document,
    options: &csfle::kms::ProviderOptions,
) -> csfle::ClientEncryption {
    csfle::ClientEncryption::new(
        keyvault::MemoryKeyVault::new(),
        csfle::kms::KmsProviders::from_document_with(&kms, options).unwrap(),
    )
}

/// Creates a data key with `provider` and `master_key` in `enc`, encrypts
/// `value` with it, and decrypts with a second client over the same key
/// vault (with its own cache, so the key is unwrapped again, from its
/// stored document).
pub async fn kms_round_trip(
    enc: &csfle::ClientEncryption,
    provider: &str,
    master_key: bson::Document,
    value: bson::Bson,
    algorithm: csfle::Algorithm,
) -> Result<(), csfle::Error> {
    let id = enc
        .create_data_key(
            &csfle::kms::ProviderName::parse(provider).unwrap(),
            csfle::DataKeyOptions {
                master_key: Some(master_key),
                ..Default::default()
            },
        )
        .await?;
    let ct = enc
        .encrypt(&value, &csfle::KeyRef::Id(id), algorithm)
        .await?;
    let fresh = csfle::ClientEncryption::from_shared_vault(
        enc.key_vault().clone(),
        enc.kms_providers().clone(),
        csfle::keyvault::KeyCacheOptions::default(),
    );
    assert_eq!(fresh.decrypt(&ct).await?, value);
    Ok(())
}

/// A fixed key ring, as the fuzz targets use: one local key, id 16 × 0x11,
/// alternate name "fuzz", key material 96 × 0x22, master key 96 × 0x33.
pub fn fixed_encrypter() -> csfle::ExplicitEncrypter<csfle::keyvault::KeyRing> {
    use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
    let local = ProviderName::of_kind(ProviderKind::Local);
    let kms =
        KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&[0x33; 96]).unwrap());
    let mut key =
        csfle::create_data_key(&kms, &local, vec!["fuzz".into()], Some(&[0x22; 96])).unwrap();
    key.id = KeyId::from_bytes([0x11; 16]);
    csfle::ExplicitEncrypter::new(csfle::keyvault::KeyRing::new([key], kms).unwrap())
}

/// The drivers' `kmsProviders` document with the spec's local master key.
pub fn local_kms_document() -> Document {
    bson::doc! {"local": {"key": bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: b64(LOCAL_MASTERKEY_B64),
    }}}
}

/// Fields a driver adds to a command itself (session, cluster time,
/// concerns, read preference), which an analysed command does not hold.
pub const DRIVER_FIELDS: [&str; 8] = [
    "$db",
    "lsid",
    "$clusterTime",
    "txnNumber",
    "$readPreference",
    "readConcern",
    "writeConcern",
    "apiVersion",
];

pub fn without_driver_fields(mut c: Document) -> Document {
    for f in DRIVER_FIELDS {
        c.remove(f);
    }
    c
}

/// A command as compared with another: top-level fields and the fields of
/// write statements in any order (a driver writes its own order); values
/// exactly, numbers by value (a driver spells some as int32).
pub fn command_fields(d: &Document) -> std::collections::BTreeMap<String, String> {
    d.iter()
        .map(|(k, v)| {
            let v = match (k.as_str(), v) {
                ("updates" | "deletes", Bson::Array(stmts)) => format!(
                    "{:?}",
                    stmts
                        .iter()
                        .map(|s| command_fields(s.as_document().unwrap()))
                        .collect::<Vec<_>>()
                ),
                _ => csfle::ejson::to_canonical(v).to_string(),
            };
            (k.clone(), v.replace("\"$numberLong\"", "\"$numberInt\""))
        })
        .collect()
}

/// The local KMS with the spec's master key, named `local`.
pub fn local_kms() -> csfle::kms::KmsProviders {
    csfle::kms::KmsProviders::new().with_local(
        csfle::kms::ProviderName::parse("local").unwrap(),
        csfle::kms::LocalMasterKey::new(&b64(LOCAL_MASTERKEY_B64)).unwrap(),
    )
}

/// A `--kms-providers` file in `dir` for the local KMS of [`local_kms`].
pub fn write_local_kms_file(dir: &Path) -> PathBuf {
    let path = dir.join("kms.json");
    std::fs::write(
        &path,
        format!(r#"{{"local": {{"key": "{LOCAL_MASTERKEY_B64}"}}}}"#),
    )
    .unwrap();
    path
}

/// Runs libmongocrypt (`tests/oracle/libmongocrypt_oracle.py` under
/// `python`, a Python with `pymongocrypt`) on `request`; returns its reply
/// (`{"libmongocrypt": version, "results": [...]}`).
pub fn run_libmongocrypt_oracle(python: &str, request: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oracle/libmongocrypt_oracle.py"
    );
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A new data key wrapped by the `local` KMS provider, with default
/// options; its id.
pub async fn create_local_key(enc: &csfle::ClientEncryption) -> KeyId {
    enc.create_data_key(
        &csfle::kms::ProviderName::parse("local").unwrap(),
        csfle::DataKeyOptions::default(),
    )
    .await
    .unwrap()
}

/// The key documents of a `FileKeyVault` file (a JSON array, or one
/// document a line), as [`assert_libmongocrypt_decrypts`] takes them.
pub fn file_vault_key_documents(path: &Path) -> Vec<Document> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(
            |l| match serde_json::from_str::<serde_json::Value>(l).unwrap() {
                serde_json::Value::Array(items) => items,
                one => vec![one],
            },
        )
        .map(|v| match Bson::try_from(v).unwrap() {
            Bson::Document(d) => d,
            other => panic!("not a key document: {other}"),
        })
        .collect()
}

/// libmongocrypt (the local KMS of [`LOCAL_MASTERKEY_B64`], the key
/// documents `keys`) decrypts each `(ciphertext, plaintext)` value to its
/// plaintext; returns libmongocrypt's version.
pub fn assert_libmongocrypt_decrypts(
    python: &str,
    keys: &[Document],
    values: &[(Bson, Bson)],
) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| b64e(&bson::to_vec(k).unwrap()))
        .collect();
    let ops: Vec<serde_json::Value> = values
        .iter()
        .map(|(c, _)| {
            let wrapped = bson::doc! {"v": c.clone()};
            serde_json::json!({"op": "decrypt", "bson": b64e(&bson::to_vec(&wrapped).unwrap())})
        })
        .collect();
    let request =
        serde_json::json!({"local_master_key": LOCAL_MASTERKEY_B64, "keys": keys, "ops": ops});
    let reply = run_libmongocrypt_oracle(python, &request);
    let results = reply["results"].as_array().unwrap();
    assert_eq!(results.len(), values.len());
    for (r, (_, plain)) in results.iter().zip(values) {
        let b = r["bson"]
            .as_str()
            .unwrap_or_else(|| panic!("libmongocrypt: {}", r["error"]));
        assert_eq!(
            Document::from_reader(&b64(b)[..]).unwrap(),
            bson::doc! {"v": plain.clone()}
        );
    }
    reply["libmongocrypt"].to_string()
}

/// Runs a command to its end off the async runtime (servers and proxies
/// the test runs keep serving meanwhile).
pub async fn output_of(mut c: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}
