//! Stored QE values against libmongocrypt's vectors, vendored under
//! `tests/data/libmongocrypt/` (Apache-2.0, snapshot `3a65b40d`): every
//! file of `test/data/iev-v2/` (indexed equality, range and text values,
//! v2) parsed and decrypted through both layers with its two keys.

#![cfg(feature = "qe")]

use csfle::qe::QeDataKey;
use csfle::qe::values::{INDEXED_EQUALITY_V2, INDEXED_RANGE_V2, INDEXED_TEXT, QeValue};
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex(v[name]
        .as_str()
        .unwrap_or_else(|| panic!("field {name} missing or not a string")))
}

#[test]
fn every_iev_v2_vector_decrypts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libmongocrypt/test/data/iev-v2");
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
