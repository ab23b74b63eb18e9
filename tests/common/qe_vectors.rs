//! Reading libmongocrypt's vendored QE vectors, for `tests/qe_tokens.rs`
//! and `tests/qe_values.rs`. Its own file, not part of `tests/common/mod.rs`:
//! those tests are also built with `--no-default-features --features qe`,
//! where `common` (the driver helpers) does not compile.

#![allow(dead_code)] // each test binary uses a part

use serde_json::Value;
use std::path::PathBuf;

/// The vendored `test/data/` of libmongocrypt.
pub fn data_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/libmongocrypt/test/data")
}

/// Lower- or upper-case hex digits as bytes.
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// The hex string field `name` of a vector, as bytes.
pub fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex(v[name]
        .as_str()
        .unwrap_or_else(|| panic!("field {name} missing or not a string")))
}

/// An Extended JSON document of libmongocrypt's test data. Its files write
/// one-digit binary subtypes (`"subType": "6"`); the `bson` crate's reader
/// takes two hex digits, so they are padded first.
pub fn ejson_document(text: &str) -> bson::Document {
    fn pad(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    match v.as_str() {
                        Some(s) if (key == "subType" || key == "$type") && s.len() == 1 => {
                            *v = Value::String(format!("0{s}"));
                        }
                        _ => pad(v),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(pad),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_str(text).expect("JSON");
    pad(&mut value);
    match bson::Bson::try_from(value).expect("Extended JSON") {
        bson::Bson::Document(d) => d,
        other => panic!("not a document: {other:?}"),
    }
}
