//! libmongocrypt's FLE1 values (`tests/data/oracle/`, written by
//! `tests/oracle/generate_vectors.py` with pinned libmongocrypt): every
//! blob decrypts to its value's exact bytes, and encrypting the value again
//! with the blob's own IV gives the blob byte for byte, which is the only
//! way to reproduce a random ciphertext. Here, not in `tests/`, because a
//! chosen IV ([`IvMode::Given`]) exists only in this crate's unit tests.
//!
//! The files are read at run time from the source tree (the packaged crate
//! does not carry them); a missing file fails the test.

use super::value::value_to_plaintext;
use super::{BlobSubtype, Fle1Blob, HEADER_LEN, decrypt_value, encrypt_value, header};
use crate::crypto::{self, Algorithm, DataKey, IV_LEN, IvMode};
use crate::key::KeyId;
use base64::Engine;
use bson::RawDocumentBuf;

fn read(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/oracle")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (written by tests/oracle/generate_vectors.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("expected a base64 string, got {v}"));
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The local data key every value was encrypted with, from its plaintext
/// material (the key documents' unwrapping is `tests/explicit_oracle_vectors.rs`'s).
fn local_key() -> DataKey {
    let keys = read("fle1-keys.json");
    let key = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == "local")
        .expect("the local key");
    let id: [u8; 16] = b64(&key["id"]).try_into().expect("a 16-byte id");
    DataKey::new(KeyId::from_bytes(id), &b64(&key["key_material"])).expect("96 bytes")
}

/// Checks one vector: decryption to the value's plaintext bytes, and
/// re-encryption with the blob's IV to the blob.
fn check(vector: &serde_json::Value, algorithm: Algorithm, key: &DataKey) {
    let name = vector["name"].as_str().expect("name");
    let doc = RawDocumentBuf::from_bytes(b64(&vector["value"]))
        .unwrap_or_else(|e| panic!("{name}: value: {e}"));
    let value = doc
        .get("v")
        .unwrap_or_else(|e| panic!("{name}: value: {e}"))
        .unwrap_or_else(|| panic!("{name}: no field v"));
    let bytes = b64(&vector["blob"]);
    let blob = Fle1Blob::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(blob.subtype, BlobSubtype::from(algorithm), "{name}");
    assert_eq!(blob.key_id, key.id(), "{name}");
    assert_eq!(blob.original_type, value.element_type(), "{name}");

    // The value as csfle serializes it: compared as bytes, so that -0.0
    // and NaN are checked exactly.
    let mut scratch = Vec::new();
    let range = value_to_plaintext(value, &mut scratch);
    let expected = scratch[range].to_vec();
    let (mut plaintext, mut out) = (Vec::new(), Vec::new());
    let got = decrypt_value(key, &blob, &mut plaintext, &mut out)
        .unwrap_or_else(|e| panic!("{name}: decrypt: {e}"));
    assert_eq!(got.element_type(), value.element_type(), "{name}");
    assert_eq!(plaintext, expected, "{name}: decrypted plaintext");

    let iv: [u8; IV_LEN] = blob.ciphertext[..IV_LEN]
        .try_into()
        .expect("a decrypted blob holds an IV");
    let aad = header(blob.subtype, key.id(), value.element_type());
    let mut again = aad.to_vec();
    crypto::seal(key, IvMode::Given(iv), &aad, &expected, &mut again)
        .unwrap_or_else(|e| panic!("{name}: seal: {e}"));
    assert_eq!(again.len(), HEADER_LEN + blob.ciphertext.len(), "{name}");
    assert_eq!(again, bytes, "{name}: re-encrypted with the blob's IV");

    if algorithm == Algorithm::Deterministic {
        // The public path derives the same IV.
        let mut s = Vec::new();
        let det = encrypt_value(key, algorithm, value, &mut s)
            .unwrap_or_else(|e| panic!("{name}: encrypt: {e}"));
        assert_eq!(det, bytes, "{name}: deterministic");
    }
}

fn vectors<'a>(file: &'a serde_json::Value, kind: &str) -> &'a Vec<serde_json::Value> {
    file[kind]
        .as_array()
        .unwrap_or_else(|| panic!("fle1-values.json: no array {kind}"))
}

#[test]
fn deterministic_values_reencrypt_to_libmongocrypts_blobs() {
    let file = read("fle1-values.json");
    let key = local_key();
    let det = vectors(&file, "deterministic");
    for v in det {
        check(v, Algorithm::Deterministic, &key);
    }
    assert!(det.len() >= 42, "{} deterministic vectors", det.len());
}

#[test]
fn random_values_reencrypt_with_their_iv_to_libmongocrypts_blobs() {
    let file = read("fle1-values.json");
    let key = local_key();
    let random = vectors(&file, "random");
    for v in random {
        check(v, Algorithm::Random, &key);
    }
    assert!(random.len() >= 60, "{} random vectors", random.len());
}

#[test]
fn corpus_local_blobs_reencrypt_with_their_iv() {
    // The corpus' local entries (the cloud keys' material is unwrapped
    // through recorded KMS replies in `tests/explicit_oracle_vectors.rs`).
    let corpus = read("fle1-corpus.json");
    let key = local_key();
    let mut n = 0;
    for e in corpus["entries"].as_array().expect("entries") {
        if e["kms"] != "local" || e["allowed"] != true {
            continue;
        }
        let algorithm = match e["algo"].as_str() {
            Some("det") => Algorithm::Deterministic,
            Some("rand") => Algorithm::Random,
            other => panic!("{}: algo {other:?}", e["name"]),
        };
        check(e, algorithm, &key);
        n += 1;
    }
    assert!(n >= 60, "{n} local corpus entries");
}
