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

/// The repository's root directory. This file is shared by the library's
/// tests (package `csfle`, at the root) and the command line's
/// (`csfle-cli/tests` includes it by `#[path]`), so the manifest directory
/// of the test being built is not always the root.
pub fn repo_root() -> &'static Path {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match env!("CARGO_PKG_NAME") {
        "csfle" => manifest,
        "csfle-cli" => manifest
            .parent()
            .expect("csfle-cli is a directory of the repository"),
        other => panic!("tests/common is not meant for package {other}"),
    }
}

/// The spec data directory: `$CSFLE_SPEC_DIR`, else `../shared/spec-tests`
/// beside the repository (MongoDB's specifications, CC BY-NC-SA, which the
/// repository may not carry). Tests that call this are
/// `#[ignore = "needs spec data: …"]`, so a plain `cargo test` reports them
/// as ignored, never as passed; `.ci/run` runs them (`-- --ignored`). Run
/// without the data, they fail saying where they looked.
pub fn spec_dir() -> PathBuf {
    let dir = std::env::var_os("CSFLE_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/spec-tests"));
    assert!(
        dir.join("mongodb-specifications").is_dir(),
        "spec data not found at {}: this test needs MongoDB's specifications \
         (set CSFLE_SPEC_DIR to the directory holding mongodb-specifications/)",
        dir.display()
    );
    dir
}

/// `rel` under [`spec_dir`].
pub fn spec_path(rel: &str) -> PathBuf {
    spec_dir().join(rel)
}

pub const CSE: &str = "mongodb-specifications/source/client-side-encryption";
/// libmongocrypt's `test/` directory under [`spec_dir`].
pub const LMC: &str = "mongodb-libmongocrypt/test";

/// libmongocrypt's test data vendored in the repository (Apache-2.0,
/// `tests/data/libmongocrypt/README.md`): its `test/` directory, with the
/// files the tests use at their original paths.
pub fn lmc_dir() -> PathBuf {
    repo_root().join("tests/data/libmongocrypt/test")
}

/// The vectors `tests/oracle/generate_vectors.py` wrote with libmongocrypt
/// (`tests/data/oracle/<name>`), parsed.
pub fn oracle_file(name: &str) -> serde_json::Value {
    let path = repo_root().join("tests/data/oracle").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (written by tests/oracle/generate_vectors.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A base64 string of an oracle file, decoded.
pub fn b64_field(v: &serde_json::Value) -> Vec<u8> {
    b64(v
        .as_str()
        .unwrap_or_else(|| panic!("expected a base64 string, got {v}")))
}

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

/// The JSON body of a recorded HTTP reply (libmongocrypt's `*.txt`).
fn recorded_reply_body(path: &Path) -> serde_json::Value {
    let reply = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = &reply[reply.find('{').expect("JSON body")..];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The plaintext data key of libmongocrypt's AWS example key document, from
/// the recorded KMS Decrypt reply. Checks that the reply's KeyId is the key
/// document's master key.
pub fn aws_example_dek() -> Vec<u8> {
    let (_, dek) = aws_recorded_pair(
        &lmc_dir().join("example/key-document.json"),
        &lmc_dir().join("example/kms-decrypt-reply.txt"),
    );
    dek.to_vec()
}

/// The keyMaterial of libmongocrypt's AWS example key document.
pub fn aws_example_key_material() -> Vec<u8> {
    KeyDocument::from_document(&read_doc(&lmc_dir().join("example/key-document.json")))
        .unwrap()
        .key_material
}

/// An AWS key document of libmongocrypt's and the plaintext its recorded
/// KMS Decrypt reply carries, checked to name the document's master key.
pub fn aws_recorded_pair(
    key_document: &Path,
    reply: &Path,
) -> (KeyDocument, zeroize::Zeroizing<Vec<u8>>) {
    let kd = KeyDocument::from_document(&read_doc(key_document)).unwrap();
    let v = recorded_reply_body(reply);
    match &kd.master_key {
        csfle::kms::MasterKey::Aws { key, .. } => assert_eq!(
            key,
            v["KeyId"].as_str().unwrap(),
            "{}: the reply is for another key",
            reply.display()
        ),
        other => panic!(
            "{}: AWS key expected, got {other:?}",
            key_document.display()
        ),
    }
    let dek = zeroize::Zeroizing::new(b64(v["Plaintext"].as_str().unwrap()));
    assert_eq!(dek.len(), 96, "{}", reply.display());
    (kd, dek)
}

/// libmongocrypt's AWS key documents with a recorded KMS Decrypt reply:
/// the example key and the three of `test/data/keys/`.
pub fn libmongocrypt_aws_pairs() -> Vec<(KeyDocument, zeroize::Zeroizing<Vec<u8>>)> {
    let lmc = lmc_dir();
    let mut pairs = vec![aws_recorded_pair(
        &lmc.join("example/key-document.json"),
        &lmc.join("example/kms-decrypt-reply.txt"),
    )];
    for id in [
        "12345678123498761234123456789012",
        "12345678123498761234123456789013",
        "ABCDEFAB123498761234123456789012",
    ] {
        pairs.push(aws_recorded_pair(
            &lmc.join(format!("data/keys/{id}-aws-document.json")),
            &lmc.join(format!("data/keys/{id}-aws-decrypt-reply.txt")),
        ));
    }
    pairs
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
    fn data_key(&self, key: &KeyRef) -> Result<Arc<DataKey>, csfle::LookupError> {
        let id = match key {
            KeyRef::Id(id) => *id,
            KeyRef::AltName(n) => *self
                .by_name
                .get(n)
                .ok_or_else(|| csfle::LookupError::AltNameNotFound(n.clone()))?,
        };
        self.by_id
            .get(&id)
            .cloned()
            .ok_or(csfle::LookupError::KeyNotFound(id))
    }
}

/// The name MongoDB's `$type` uses for a BSON type (what schemas'
/// `bsonType` and the specification tests' `$$type` say).
pub fn bson_type_name(ty: bson::spec::ElementType) -> &'static str {
    use bson::spec::ElementType::*;
    match ty {
        Double => "double",
        String => "string",
        EmbeddedDocument => "object",
        Array => "array",
        Binary => "binData",
        Undefined => "undefined",
        ObjectId => "objectId",
        Boolean => "bool",
        DateTime => "date",
        Null => "null",
        RegularExpression => "regex",
        DbPointer => "dbPointer",
        JavaScriptCode => "javascript",
        Symbol => "symbol",
        JavaScriptCodeWithScope => "javascriptWithScope",
        Int32 => "int",
        Timestamp => "timestamp",
        Int64 => "long",
        Decimal128 => "decimal",
        MaxKey => "maxKey",
        MinKey => "minKey",
    }
}

pub fn key_id_of(doc: &Document) -> KeyId {
    KeyDocument::from_document(doc).unwrap().id
}

/// One recorded KMS exchange, both ways: `master_key` wraps `plaintext`
/// into `wrapped` (when `wrap_recorded`) and unwraps `wrapped` into
/// `plaintext`.
struct Recorded {
    master_key: csfle::kms::MasterKey,
    wrapped: Vec<u8>,
    plaintext: zeroize::Zeroizing<Vec<u8>>,
    wrap_recorded: bool,
}

/// A test KMS that replays recorded KMS exchanges: libmongocrypt's
/// recorded AWS Decrypt replies (`test/example/kms-decrypt-reply.txt`,
/// `test/data/keys/*-aws-decrypt-reply.txt`), or the AWS, Azure and GCP
/// exchanges `tests/oracle/generate_vectors.py` recorded between
/// libmongocrypt and its fake KMS. It answers only the exact requests
/// recorded (the same master key, and the same wrapped key to unwrap or
/// plaintext key to wrap); anything else is refused, as a real KMS refuses
/// a blob it did not produce.
pub struct RecordedKms {
    provider: String,
    replies: Vec<Recorded>,
}

/// Like every `KmsProvider`, never prints key material.
impl std::fmt::Debug for RecordedKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedKms")
            .field("provider", &self.provider)
            .field("replies", &self.replies.len())
            .finish_non_exhaustive()
    }
}

/// Azure sends base64url, padded or not.
const B64URL: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

impl RecordedKms {
    /// libmongocrypt's four AWS key documents with recorded replies
    /// ([`libmongocrypt_aws_pairs`]), unwrap only (no Encrypt was recorded).
    pub fn libmongocrypt_aws() -> Self {
        RecordedKms {
            provider: "aws".into(),
            replies: libmongocrypt_aws_pairs()
                .into_iter()
                .map(|(kd, plaintext)| Recorded {
                    master_key: kd.master_key,
                    wrapped: kd.key_material,
                    plaintext,
                    wrap_recorded: false,
                })
                .collect(),
        }
    }

    /// The exchanges `tests/data/oracle/fle1-keys.json` recorded for
    /// `provider` (`aws`, `azure` or `gcp`): for each key, the wrap
    /// (Encrypt, wrapkey, :encrypt) and the unwrap (Decrypt, unwrapkey,
    /// :decrypt), checked to carry the key document's keyMaterial and to
    /// agree with each other.
    pub fn oracle(provider: &str) -> Self {
        let file = oracle_file("fle1-keys.json");
        let keys = file["keys"].as_array().expect("keys");
        let mut replies = Vec::new();
        for x in file["kms_exchanges"].as_array().expect("kms_exchanges") {
            if x["provider"] != provider {
                continue;
            }
            let key = keys
                .iter()
                .find(|k| k["name"] == x["key"])
                .unwrap_or_else(|| panic!("no key {}", x["key"]));
            let doc = Document::from_reader(&b64_field(&key["document"])[..]).unwrap();
            let kd = KeyDocument::from_document(&doc).unwrap();
            let body = |exchange: &str, side: &str| -> serde_json::Value {
                let text = x[exchange][side]["body"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{provider}: no {exchange} {side} body"));
                serde_json::from_str(text).unwrap()
            };
            let field = |v: &serde_json::Value, name: &str| -> Vec<u8> {
                let s = v[name]
                    .as_str()
                    .unwrap_or_else(|| panic!("{provider}: no field {name} in {v}"));
                if provider == "azure" {
                    B64URL.decode(s).unwrap()
                } else {
                    b64(s)
                }
            };
            let (wrap_in, wrap_out, unwrap_in, unwrap_out) = match provider {
                "aws" => ("Plaintext", "CiphertextBlob", "CiphertextBlob", "Plaintext"),
                "azure" => ("value", "value", "value", "value"),
                "gcp" => ("plaintext", "ciphertext", "ciphertext", "plaintext"),
                other => panic!("no recorded exchanges for provider {other}"),
            };
            let plaintext = field(&body("decrypt", "reply"), unwrap_out);
            let wrapped = field(&body("decrypt", "request"), unwrap_in);
            assert_eq!(
                wrapped, kd.key_material,
                "{provider}: the recorded unwrap is for the key document's keyMaterial"
            );
            assert_eq!(field(&body("encrypt", "request"), wrap_in), plaintext);
            assert_eq!(field(&body("encrypt", "reply"), wrap_out), wrapped);
            if provider == "aws" {
                let csfle::kms::MasterKey::Aws { key, .. } = &kd.master_key else {
                    panic!("AWS key expected")
                };
                assert_eq!(body("decrypt", "reply")["KeyId"], key.as_str());
            }
            replies.push(Recorded {
                master_key: kd.master_key,
                wrapped,
                plaintext: zeroize::Zeroizing::new(plaintext),
                wrap_recorded: true,
            });
        }
        assert!(!replies.is_empty(), "no recorded exchanges for {provider}");
        RecordedKms {
            provider: provider.to_owned(),
            replies,
        }
    }

    fn refused(&self, master_key: &csfle::kms::MasterKey, message: &str) -> csfle::kms::Error {
        csfle::kms::Error::Remote {
            provider: master_key.provider().to_string(),
            endpoint: "replay".into(),
            message: message.into(),
        }
    }
}

impl csfle::kms::KmsProvider for RecordedKms {
    fn wrap<'a>(
        &'a self,
        master_key: &'a csfle::kms::MasterKey,
        data_key: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<u8>, csfle::kms::Error>> {
        let result = self
            .replies
            .iter()
            .find(|r| {
                r.wrap_recorded && r.master_key == *master_key && r.plaintext[..] == *data_key
            })
            .map(|r| r.wrapped.clone())
            .ok_or_else(|| self.refused(master_key, "no recorded reply wraps this key"));
        Box::pin(std::future::ready(result))
    }

    fn unwrap<'a>(
        &'a self,
        master_key: &'a csfle::kms::MasterKey,
        key_material: &'a [u8],
    ) -> futures_util::future::BoxFuture<'a, Result<zeroize::Zeroizing<Vec<u8>>, csfle::kms::Error>>
    {
        let result = self
            .replies
            .iter()
            .find(|r| r.master_key == *master_key && r.wrapped == key_material)
            .map(|r| r.plaintext.clone())
            .ok_or_else(|| {
                self.refused(
                    master_key,
                    "no recorded reply for this master key and wrapped key",
                )
            });
        Box::pin(std::future::ready(result))
    }
}

/// The spec tests' KMS providers usable offline: `local` with
/// LOCAL_MASTERKEY, and `aws` through libmongocrypt's recorded KMS replies.
pub fn spec_kms() -> csfle::kms::KmsProviders {
    csfle::kms::KmsProviders::new()
        .with_local(
            csfle::kms::ProviderName::parse("local").unwrap(),
            csfle::kms::LocalMasterKey::new(&b64(LOCAL_MASTERKEY_B64)).unwrap(),
        )
        .with_provider(
            csfle::kms::ProviderName::parse("aws").unwrap(),
            std::sync::Arc::new(RecordedKms::libmongocrypt_aws()),
        )
}

/// The KMS providers of the committed oracle vectors: `local` with the
/// vectors' master key, and `aws`, `azure`, `gcp` replaying the exchanges
/// recorded with libmongocrypt.
pub fn oracle_kms() -> csfle::kms::KmsProviders {
    use csfle::kms::{LocalMasterKey, ProviderName};
    let master_key = b64_field(&oracle_file("fle1-keys.json")["local_master_key"]);
    let mut kms = csfle::kms::KmsProviders::new().with_local(
        ProviderName::parse("local").unwrap(),
        LocalMasterKey::new(&master_key).unwrap(),
    );
    for p in ["aws", "azure", "gcp"] {
        kms = kms.with_provider(
            ProviderName::parse(p).unwrap(),
            Arc::new(RecordedKms::oracle(p)),
        );
    }
    kms
}

/// A name no other test uses (`prefix_` + 12 random hex digits), for the
/// databases server tests create and drop.
pub fn unique_name(prefix: &str) -> String {
    let mut b = [0u8; 6];
    csfle::fill_random(&mut b).unwrap();
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
    // A command that refuses its options exits without reading its input:
    // the write then meets a closed pipe, which is not the test's failure.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing the child's standard input: {e}"),
    }
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
            csfle::DataKeyOptions::default().with_master_key(master_key),
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
    let script = repo_root().join("tests/oracle/libmongocrypt_oracle.py");
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
