//! KMIP interoperability with libmongocrypt, both ways, through the same
//! PyKMIP server: libmongocrypt (PyPI `pymongocrypt`, run by
//! `tests/oracle/libmongocrypt_kmip_oracle.py` under `$CSFLE_ORACLE_PYTHON`)
//! does its own KMIP exchanges over TLS, as pymongo does.
//!
//! * Keys libmongocrypt creates (default mode: Register, Activate, Get;
//!   delegated: Create, Activate, Encrypt; an existing `keyId`: Get; a named
//!   provider) unwrap in csfle, which decrypts the values libmongocrypt
//!   encrypted and encrypts the deterministic ones to the same bytes.
//! * Keys csfle creates in both modes (and named) unwrap in libmongocrypt,
//!   which decrypts csfle's values and encrypts the deterministic ones to
//!   the same bytes.
//!
//! The KMIP operations libmongocrypt sent are checked, request by request.

mod common;
#[path = "common/kmip_server.rs"]
mod kmip_server;

use bson::{Binary, Bson, Document, doc};
use common::{b64, b64e, service_env};
use csfle::keyvault::{KeyDocument, KeyVault, MemoryKeyVault};
use csfle::kms::MasterKey;
use csfle::{Algorithm, ClientEncryption, DataKeyOptions, KeyId, KeyRef};
use kmip_server::{kmip_name, pykmip_providers};
use serde_json::{Value, json};

/// The values each key encrypts: deterministic ones (byte-exact both ways)
/// and random ones.
fn values() -> Vec<(Algorithm, Bson)> {
    vec![
        (Algorithm::Deterministic, Bson::from("kmip interop")),
        (Algorithm::Deterministic, Bson::Int64(1 << 40)),
        (Algorithm::Random, Bson::from("random")),
        (
            Algorithm::Random,
            Bson::Document(doc! {"a": [1, "two", {"three": 3.0}]}),
        ),
    ]
}

/// The oracle's name for `algorithm`.
fn algorithm_name(algorithm: Algorithm) -> &'static str {
    if algorithm == Algorithm::Deterministic {
        "det"
    } else {
        "rand"
    }
}

/// `{"v": value}` as base64 BSON, as the oracle takes values.
fn v_bytes(value: &Bson) -> String {
    b64e(&bson::to_vec(&doc! {"v": value.clone()}).unwrap())
}

/// libmongocrypt's reply to `ops` with `keys` in its key vault and the
/// KMIP providers `names`, all at PyKMIP: the results and the KMIP
/// operations it sent, in order.
async fn oracle(names: &[&str], keys: &[Document], ops: Vec<Value>) -> (Vec<Value>, Vec<String>) {
    let python = service_env("CSFLE_ORACLE_PYTHON");
    let endpoint = service_env("CSFLE_KMIP_ENDPOINT");
    let mut providers = serde_json::Map::new();
    for name in names {
        providers.insert(name.to_string(), json!({"endpoint": endpoint}));
    }
    let request = json!({
        "kms_providers": providers,
        "tls": {
            "ca_file": service_env("CSFLE_KMIP_CA_FILE"),
            "cert_file": service_env("CSFLE_KMIP_CLIENT_CERT"),
        },
        "keys": keys.iter().map(|k| b64e(&bson::to_vec(k).unwrap())).collect::<Vec<_>>(),
        "ops": ops,
    });
    let script = common::repo_root().join("tests/oracle/libmongocrypt_kmip_oracle.py");
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(&python)
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
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("libmongocrypt {}", reply["libmongocrypt"]);
    let operations = reply["kmip"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["endpoint"], json!(endpoint), "{e}");
            format!(
                "{} {}",
                e["provider"].as_str().unwrap(),
                e["operation"].as_str().unwrap()
            )
        })
        .collect();
    (reply["results"].as_array().unwrap().clone(), operations)
}

/// The document an oracle result holds; panics with libmongocrypt's error.
fn result_doc(r: &Value, what: &str) -> Document {
    let Some(b) = r["bson"].as_str() else {
        panic!("{what}: libmongocrypt error: {}", r["error"]);
    };
    Document::from_reader(&b64(b)[..]).unwrap()
}

/// The ciphertext `v` of a `{"v": …}` result.
fn ciphertext(d: &Document) -> Binary {
    match d.get("v") {
        Some(Bson::Binary(b)) => b.clone(),
        other => panic!("not a ciphertext: {other:?}"),
    }
}

/// `(provider, operation)` pairs as [`oracle`] lists them.
fn ops_list(entries: &[(&str, &str)]) -> Vec<String> {
    entries.iter().map(|(p, o)| format!("{p} {o}")).collect()
}

#[tokio::test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT and CSFLE_ORACLE_PYTHON"]
async fn libmongocrypt_kmip_keys_unwrap_in_csfle() {
    let names = ["kmip", "kmip:named"];
    // libmongocrypt creates the keys: default mode, delegated, the existing
    // SecretData "1", and default mode under a named provider.
    let creations = [
        ("kmip", json!({})),
        ("kmip", json!({"delegated": true})),
        ("kmip", json!({"keyId": "1"})),
        ("kmip:named", json!({})),
    ];
    let ops = creations
        .iter()
        .map(|(p, m)| json!({"op": "create_key", "provider": p, "master_key": m}))
        .collect();
    let (results, operations) = oracle(&names, &[], ops).await;
    assert_eq!(
        operations,
        ops_list(&[
            ("kmip", "Register"),
            ("kmip", "Activate"),
            ("kmip", "Get"),
            ("kmip", "Create"),
            ("kmip", "Activate"),
            ("kmip", "Encrypt"),
            ("kmip", "Get"),
            ("kmip:named", "Register"),
            ("kmip:named", "Activate"),
            ("kmip:named", "Get"),
        ])
    );
    let key_docs: Vec<Document> = results
        .iter()
        .map(|r| result_doc(r, "create_key"))
        .collect();
    let keys: Vec<KeyDocument> = key_docs
        .iter()
        .map(|d| KeyDocument::from_document(d).unwrap())
        .collect();
    for (key, (provider, _)) in keys.iter().zip(&creations) {
        let MasterKey::Kmip {
            key_id: Some(key_id),
            delegated,
            ..
        } = &key.master_key
        else {
            panic!("{:?}", key.master_key)
        };
        assert_eq!(key.master_key.provider().to_string(), *provider);
        // libmongocrypt's layouts: the local wrap (IV, 96 bytes, tag), or
        // the server's IV and its AES-CBC of the data key.
        let expected = if delegated == &Some(true) { 128 } else { 160 };
        assert_eq!(key.key_material.len(), expected, "{key_id}");
    }
    assert_eq!(
        &keys[2].master_key.to_document(),
        &doc! {"provider": "kmip", "keyId": "1"}
    );

    // libmongocrypt encrypts with each key; each is unwrapped once (Get,
    // or Decrypt for the delegated key).
    let mut ops = Vec::new();
    for key in &keys {
        for (algorithm, value) in values() {
            ops.push(json!({
                "op": "encrypt",
                "key_id": b64e(&key.id.bytes()),
                "algorithm": algorithm_name(algorithm),
                "bson": v_bytes(&value),
            }));
        }
    }
    let (results, operations) = oracle(&names, &key_docs, ops).await;
    assert_eq!(
        operations,
        ops_list(&[
            ("kmip", "Get"),
            ("kmip", "Decrypt"),
            ("kmip", "Get"),
            ("kmip:named", "Get"),
        ])
    );

    // csfle, with the key documents libmongocrypt wrote, decrypts every
    // value and encrypts the deterministic ones to the same bytes.
    let vault = MemoryKeyVault::new();
    for key in &keys {
        vault.insert_key(key).await.unwrap();
    }
    let ce = ClientEncryption::new(vault, pykmip_providers(&names));
    let mut checked = 0;
    for (i, key) in keys.iter().enumerate() {
        for (j, (algorithm, value)) in values().into_iter().enumerate() {
            let theirs = ciphertext(&result_doc(&results[i * values().len() + j], "encrypt"));
            assert_eq!(
                ce.decrypt(&theirs).await.unwrap(),
                value,
                "key {i} value {j}"
            );
            if algorithm == Algorithm::Deterministic {
                let ours = ce
                    .encrypt(&value, &KeyRef::Id(key.id), algorithm)
                    .await
                    .unwrap();
                assert_eq!(ours.bytes, theirs.bytes, "key {i} value {j}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}

#[tokio::test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT and CSFLE_ORACLE_PYTHON"]
async fn csfle_kmip_keys_unwrap_in_libmongocrypt() {
    let names = ["kmip", "kmip:named"];
    let ce = ClientEncryption::new(MemoryKeyVault::new(), pykmip_providers(&names));
    let creations = [
        ("kmip", None),
        ("kmip", Some(doc! {"delegated": true})),
        ("kmip", Some(doc! {"keyId": "1"})),
        ("kmip:named", None),
        ("kmip:named", Some(doc! {"delegated": true})),
    ];
    let mut ids: Vec<KeyId> = Vec::new();
    for (provider, master_key) in &creations {
        let mut options = DataKeyOptions::default();
        if let Some(m) = master_key {
            options = options.with_master_key(m.clone());
        }
        ids.push(
            ce.create_data_key(&kmip_name(provider), options)
                .await
                .unwrap(),
        );
    }
    let mut key_docs = Vec::new();
    let mut ops = Vec::new();
    let mut expected = Vec::new();
    for id in &ids {
        key_docs.push(ce.get_key(*id).await.unwrap().unwrap().to_document());
        for (algorithm, value) in values() {
            let ours = ce
                .encrypt(&value, &KeyRef::Id(*id), algorithm)
                .await
                .unwrap();
            ops.push(json!({"op": "decrypt", "bson": v_bytes(&Bson::Binary(ours.clone()))}));
            expected.push((value, algorithm, ours));
        }
    }
    // Then libmongocrypt encrypts the deterministic values itself.
    for id in &ids {
        for (algorithm, value) in values() {
            if algorithm == Algorithm::Deterministic {
                ops.push(json!({
                    "op": "encrypt",
                    "key_id": b64e(&id.bytes()),
                    "algorithm": algorithm_name(algorithm),
                    "bson": v_bytes(&value),
                }));
            }
        }
    }
    let (results, operations) = oracle(&names, &key_docs, ops).await;
    // One unwrap per key, in the order of first use.
    assert_eq!(
        operations,
        ops_list(&[
            ("kmip", "Get"),
            ("kmip", "Decrypt"),
            ("kmip", "Get"),
            ("kmip:named", "Get"),
            ("kmip:named", "Decrypt"),
        ])
    );
    let (decrypted, encrypted) = results.split_at(expected.len());
    for (r, (value, _, _)) in decrypted.iter().zip(&expected) {
        assert_eq!(
            result_doc(r, "decrypt"),
            doc! {"v": value.clone()},
            "libmongocrypt decrypts csfle's value"
        );
    }
    let ours_det: Vec<&Binary> = expected
        .iter()
        .filter(|(_, a, _)| *a == Algorithm::Deterministic)
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(encrypted.len(), ours_det.len());
    for (r, ours) in encrypted.iter().zip(ours_det) {
        assert_eq!(ciphertext(&result_doc(r, "encrypt")).bytes, ours.bytes);
    }
    assert_eq!((decrypted.len(), encrypted.len()), (20, 10));
}
