//! Stored QE values against libmongocrypt's vectors, vendored under
//! `tests/data/libmongocrypt/` (Apache-2.0, snapshot `3a65b40d`): every
//! file of `test/data/iev-v2/` (indexed equality, range and text values,
//! v2) parsed and decrypted through both layers with its two keys, and the
//! six stored values of `test/data/explicit-decrypt/` (v1 and v2) with the
//! keys of `test/data/keys/`.

#![cfg(feature = "qe")]

#[path = "common/qe_vectors.rs"]
mod qe_vectors;

use base64::Engine;
use csfle::qe::aead::QeDataKey;
use csfle::qe::values::{INDEXED_EQUALITY_V2, INDEXED_RANGE_V2, INDEXED_TEXT, QeValue};
use qe_vectors::{data_dir, hex, hex_field};
use serde_json::Value;

#[test]
fn every_iev_v2_vector_decrypts() {
    let dir = data_dir().join("iev-v2");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut by_kind = [0usize; 3];
    for path in &names {
        let file = path.display().to_string();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("readable"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let payload = hex_field(&v, "payload");
        let (subtype, kind) = match v["type"].as_str() {
            Some("equality") => (INDEXED_EQUALITY_V2, 0),
            Some("range") => (INDEXED_RANGE_V2, 1),
            Some("text") => (INDEXED_TEXT, 2),
            other => panic!("{file}: unknown type {other:?}"),
        };
        let QeValue::Indexed(value) =
            QeValue::parse(&payload).unwrap_or_else(|e| panic!("{file}: {e}"))
        else {
            panic!("{file}: not an indexed value");
        };
        assert_eq!(value.subtype(), subtype, "{file}");
        assert_eq!(
            value.server_key_id().to_vec(),
            hex_field(&v, "S_KeyId"),
            "{file}"
        );
        assert_eq!(
            Some(u64::from(value.bson_type())),
            v["bson_value_type"].as_u64(),
            "{file}"
        );
        let server_key = QeDataKey::new(&hex_field(&v, "S_Key")).expect("96-byte S_Key");
        let client_key = QeDataKey::new(&hex_field(&v, "K_Key")).expect("96-byte K_Key");
        let layer = value
            .decrypt_server_layer(&server_key)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            layer.client_key_id().to_vec(),
            hex_field(&v, "K_KeyId"),
            "{file}"
        );
        let plaintext = layer
            .decrypt(&client_key)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(plaintext.to_vec(), hex_field(&v, "bson_value"), "{file}");
        // The client layer's tag covers its key: the server key (another
        // key here) does not open it.
        assert!(layer.decrypt(&server_key).is_err(), "{file}");
        // The metadata blocks are the value's last bytes, as many as the
        // file lists: what the parser skipped.
        let metadata: Vec<u8> = v["metadata"]
            .as_array()
            .expect("metadata list")
            .iter()
            .flat_map(|m| hex(m.as_str().expect("hex block")))
            .collect();
        assert!(payload.ends_with(&metadata), "{file}");
        // Truncated anywhere in its metadata, the value is refused or
        // fails to decrypt; never a panic.
        for cut in [1, 95, 96, 97] {
            if let Ok(QeValue::Indexed(short)) = QeValue::parse(&payload[..payload.len() - cut]) {
                let opened = short
                    .decrypt_server_layer(&server_key)
                    .and_then(|l| l.decrypt(&client_key));
                assert!(opened.is_err(), "{file}: cut {cut}");
            }
        }
        by_kind[kind] += 1;
    }
    // insertOneV2; insertOneRangeV2; insertOneText, insertOneTextLarge.
    assert_eq!(by_kind, [1, 1, 2], "{names:?}");
}

/// The BSON value bytes of a string: int32 length (with the NUL), bytes, NUL.
fn bson_string(s: &str) -> Vec<u8> {
    let len = i32::try_from(s.len() + 1).expect("short string");
    let mut v = len.to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

/// The six stored QE values of `test/data/explicit-decrypt/`, with the
/// plaintexts libmongocrypt's `test/test-mongocrypt-ctx-decrypt.c` expects
/// (`_test_explicit_decrypt`) and the keys it feeds (`test/data/keys/`).
/// The v1 indexed values have two keys: the server layer's is `12345678…`,
/// the client layer's `ABCDEFAB…`.
#[test]
fn explicit_decrypt_stored_values() {
    let dir = data_dir();
    let key_of = |id: [u8; 16]| -> QeDataKey {
        let name: String = id.iter().map(|b| format!("{b:02X}")).collect();
        let path = dir.join(format!("keys/{name}-key-material.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        QeDataKey::new(&hex(text.trim())).expect("96-byte key")
    };
    let cases: [(&str, u8, u8, Vec<u8>); 6] = [
        ("FLE2UnindexedEncryptedValue", 6, 2, bson_string("value123")),
        (
            "FLE2IndexedEqualityEncryptedValue",
            7,
            2,
            bson_string("value123"),
        ),
        (
            "FLE2IndexedRangeEncryptedValue",
            9,
            0x10,
            123456i32.to_le_bytes().to_vec(),
        ),
        ("FLE2UnindexedEncryptedValueV2", 16, 2, bson_string("foo")),
        (
            "FLE2IndexedEqualityEncryptedValueV2",
            14,
            2,
            bson_string("foo"),
        ),
        (
            "FLE2IndexedRangeEncryptedValueV2",
            15,
            0x10,
            123i32.to_le_bytes().to_vec(),
        ),
    ];
    let mut two_keys = 0;
    for (name, subtype, bson_type, expected) in cases {
        let path = dir.join(format!("explicit-decrypt/{name}.json"));
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let b64 = v["v"]["$binary"]["base64"]
            .as_str()
            .expect("v.$binary.base64");
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let plaintext = match QeValue::parse(&blob).unwrap_or_else(|e| panic!("{name}: {e}")) {
            QeValue::Unindexed(value) => {
                assert_eq!(
                    (value.subtype(), value.bson_type()),
                    (subtype, bson_type),
                    "{name}"
                );
                value.decrypt(&key_of(value.key_id()))
            }
            QeValue::Indexed(value) => {
                assert_eq!(
                    (value.subtype(), value.bson_type()),
                    (subtype, bson_type),
                    "{name}"
                );
                let layer = value
                    .decrypt_server_layer(&key_of(value.server_key_id()))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                if layer.client_key_id() != value.server_key_id() {
                    two_keys += 1;
                }
                layer.decrypt(&key_of(layer.client_key_id()))
            }
            other => panic!("{name}: unknown kind {other:?}"),
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(plaintext.to_vec(), expected, "{name}");
    }
    assert_eq!(two_keys, 2, "the v1 indexed values use two keys");
}
