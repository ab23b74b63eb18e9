//! `#[derive(Encrypted)]` without a server: the schemas it generates equal
//! the specification's (legacy `basic.json`, `external-schema.json`,
//! `limits-schema.json`), serde's renames and skips are followed, every
//! supported Rust type's declared `bsonType` is the BSON type `bson`
//! actually serializes it to, and the refusals a schema cannot express
//! fail when the schema is made.

mod common;

use bson::spec::ElementType;
use bson::{Bson, Document, doc};
use common::typed::*;
use common::*;
use csfle::schema::typed::{FieldShape, SchemaTemplate};
use csfle::schema::{EncryptionSchema, SchemaSource};
use csfle::{Encrypted, KeyId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Canonical Extended JSON with every document's keys sorted: equality
/// that ignores key order.
fn sorted(v: &Bson) -> serde_json::Value {
    use serde_json::Value;
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(String, Value)> = m.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    sort(v.clone().into_canonical_extjson())
}

fn no_alt_names(_: &str) -> Option<KeyId> {
    None
}

fn schema_of<T: Encrypted>() -> Document {
    T::schema_template().to_json_schema(&no_alt_names).unwrap()
}

fn spec_schema(rel: &str) -> Document {
    read_doc(&spec_path(&format!("{CSE}/{rel}")))
}

/// Mirrors the `json_schema` of the legacy `basic.json` test.
#[derive(Serialize, Deserialize, Encrypted)]
struct LegacyBasic {
    #[encrypted(random, key_pointer = "/altname")]
    encrypted_w_altname: String,
    #[encrypted(deterministic, key = "00000000-0000-0000-0000-000000000000")]
    encrypted_string: String,
    #[encrypted(random, key = "00000000-0000-0000-0000-000000000000")]
    random: String,
    #[encrypted(deterministic, key = "00000000-0000-0000-0000-000000000000")]
    encrypted_string_equivalent: String,
    altname: String,
    plain: String,
}

/// Mirrors `external/external-schema.json`.
#[derive(Serialize, Deserialize, Encrypted)]
#[encrypted(key = "2ce0802c-0000-0000-0000-000000000000")]
struct External {
    #[encrypted(deterministic)]
    encrypted: String,
}

/// Mirrors `limits/limits-schema.json`: 100 deterministic strings named
/// "00" … "99".
#[derive(Serialize, Deserialize, Encrypted)]
struct Limits {
    #[serde(rename = "00")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f00: String,
    #[serde(rename = "01")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f01: String,
    #[serde(rename = "02")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f02: String,
    #[serde(rename = "03")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f03: String,
    #[serde(rename = "04")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f04: String,
    #[serde(rename = "05")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f05: String,
    #[serde(rename = "06")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f06: String,
    #[serde(rename = "07")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f07: String,
    #[serde(rename = "08")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f08: String,
    #[serde(rename = "09")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f09: String,
    #[serde(rename = "10")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f10: String,
    #[serde(rename = "11")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f11: String,
    #[serde(rename = "12")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f12: String,
    #[serde(rename = "13")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f13: String,
    #[serde(rename = "14")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f14: String,
    #[serde(rename = "15")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f15: String,
    #[serde(rename = "16")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f16: String,
    #[serde(rename = "17")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f17: String,
    #[serde(rename = "18")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f18: String,
    #[serde(rename = "19")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f19: String,
    #[serde(rename = "20")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f20: String,
    #[serde(rename = "21")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f21: String,
    #[serde(rename = "22")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f22: String,
    #[serde(rename = "23")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f23: String,
    #[serde(rename = "24")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f24: String,
    #[serde(rename = "25")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f25: String,
    #[serde(rename = "26")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f26: String,
    #[serde(rename = "27")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f27: String,
    #[serde(rename = "28")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f28: String,
    #[serde(rename = "29")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f29: String,
    #[serde(rename = "30")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f30: String,
    #[serde(rename = "31")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f31: String,
    #[serde(rename = "32")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f32: String,
    #[serde(rename = "33")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f33: String,
    #[serde(rename = "34")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f34: String,
    #[serde(rename = "35")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f35: String,
    #[serde(rename = "36")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f36: String,
    #[serde(rename = "37")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f37: String,
    #[serde(rename = "38")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f38: String,
    #[serde(rename = "39")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f39: String,
    #[serde(rename = "40")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f40: String,
    #[serde(rename = "41")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f41: String,
    #[serde(rename = "42")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f42: String,
    #[serde(rename = "43")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f43: String,
    #[serde(rename = "44")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f44: String,
    #[serde(rename = "45")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f45: String,
    #[serde(rename = "46")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f46: String,
    #[serde(rename = "47")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f47: String,
    #[serde(rename = "48")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f48: String,
    #[serde(rename = "49")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f49: String,
    #[serde(rename = "50")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f50: String,
    #[serde(rename = "51")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f51: String,
    #[serde(rename = "52")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f52: String,
    #[serde(rename = "53")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f53: String,
    #[serde(rename = "54")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f54: String,
    #[serde(rename = "55")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f55: String,
    #[serde(rename = "56")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f56: String,
    #[serde(rename = "57")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f57: String,
    #[serde(rename = "58")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f58: String,
    #[serde(rename = "59")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f59: String,
    #[serde(rename = "60")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f60: String,
    #[serde(rename = "61")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f61: String,
    #[serde(rename = "62")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f62: String,
    #[serde(rename = "63")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f63: String,
    #[serde(rename = "64")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f64: String,
    #[serde(rename = "65")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f65: String,
    #[serde(rename = "66")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f66: String,
    #[serde(rename = "67")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f67: String,
    #[serde(rename = "68")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f68: String,
    #[serde(rename = "69")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f69: String,
    #[serde(rename = "70")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f70: String,
    #[serde(rename = "71")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f71: String,
    #[serde(rename = "72")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f72: String,
    #[serde(rename = "73")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f73: String,
    #[serde(rename = "74")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f74: String,
    #[serde(rename = "75")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f75: String,
    #[serde(rename = "76")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f76: String,
    #[serde(rename = "77")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f77: String,
    #[serde(rename = "78")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f78: String,
    #[serde(rename = "79")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f79: String,
    #[serde(rename = "80")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f80: String,
    #[serde(rename = "81")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f81: String,
    #[serde(rename = "82")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f82: String,
    #[serde(rename = "83")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f83: String,
    #[serde(rename = "84")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f84: String,
    #[serde(rename = "85")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f85: String,
    #[serde(rename = "86")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f86: String,
    #[serde(rename = "87")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f87: String,
    #[serde(rename = "88")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f88: String,
    #[serde(rename = "89")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f89: String,
    #[serde(rename = "90")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f90: String,
    #[serde(rename = "91")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f91: String,
    #[serde(rename = "92")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f92: String,
    #[serde(rename = "93")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f93: String,
    #[serde(rename = "94")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f94: String,
    #[serde(rename = "95")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f95: String,
    #[serde(rename = "96")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f96: String,
    #[serde(rename = "97")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f97: String,
    #[serde(rename = "98")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f98: String,
    #[serde(rename = "99")]
    #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
    f99: String,
}

#[test]
#[ignore = "needs spec data: the specification's legacy basic.json (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn legacy_basic_schema_is_the_specs() {
    let path = spec_path(&format!("{CSE}/tests/legacy/basic.json"));
    let expected = read_doc(&path).get_document("json_schema").unwrap().clone();
    let generated = schema_of::<LegacyBasic>();
    assert_eq!(
        sorted(&Bson::Document(generated)),
        sorted(&Bson::Document(expected))
    );
}

#[test]
#[ignore = "needs spec data: the specification's external-schema.json (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn external_schema_is_the_specs() {
    let expected = spec_schema("external/external-schema.json");
    // The type names its key once, as the schema's encryptMetadata; the
    // specification's file names it on the field. Both say the same to
    // the schema model, and the field-level spelling is equal outright.
    let generated = schema_of::<External>();
    let parse = |d: &Document| EncryptionSchema::parse(d, SchemaSource::Local).unwrap();
    assert!(
        parse(&generated)
            .encryption_differences(&parse(&expected), "type", "file")
            .is_empty()
    );

    #[derive(Serialize, Encrypted)]
    struct ExternalFieldKey {
        #[encrypted(deterministic, key = "2ce0802c-0000-0000-0000-000000000000")]
        encrypted: String,
    }
    assert_eq!(
        sorted(&Bson::Document(schema_of::<ExternalFieldKey>())),
        sorted(&Bson::Document(expected))
    );
}

#[test]
#[ignore = "needs spec data: the specification's limits-schema.json (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
fn limits_schema_is_the_specs() {
    let expected = spec_schema("limits/limits-schema.json");
    assert_eq!(
        sorted(&Bson::Document(schema_of::<Limits>())),
        sorted(&Bson::Document(expected))
    );
}

fn key_id(n: u8) -> KeyId {
    KeyId::from_bytes([n; 16])
}

fn resolve(name: &str) -> Option<KeyId> {
    match name {
        "patients" => Some(key_id(1)),
        "records" => Some(key_id(2)),
        _ => None,
    }
}

fn key_array(n: u8) -> Bson {
    Bson::Array(vec![Bson::Binary(key_id(n).to_binary())])
}

#[test]
fn patient_schema_follows_serde_and_resolves_names() {
    let det = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
    let rnd = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";
    let expected = doc! {
        "bsonType": "object",
        "encryptMetadata": {"keyId": key_array(1)},
        "properties": {
            "ssn": {"encrypt": {"bsonType": "string", "algorithm": det}},
            "medicalRecord": {"encrypt": {"keyId": key_array(2), "bsonType": "object", "algorithm": rnd}},
            "notes": {"encrypt": {"keyId": "/tenantKey", "bsonType": "string", "algorithm": rnd}},
            "homeAddress": {"bsonType": "object", "properties": {
                "zip": {"encrypt": {"bsonType": "string", "algorithm": det}},
            }},
            "ins": {"encrypt": {"bsonType": "long", "algorithm": det}},
            "nickname": {"encrypt": {"bsonType": "string", "algorithm": rnd}},
        },
    };
    let template = Patient::schema_template();
    assert_eq!(template.key_alt_names(), ["patients", "records"]);
    let generated = template.to_json_schema(&resolve).unwrap();
    assert_eq!(
        sorted(&Bson::Document(generated.clone())),
        sorted(&Bson::Document(expected))
    );
    // The schema model reads it: the nested field inherits the type's key.
    let schema = EncryptionSchema::parse(&generated, SchemaSource::Local).unwrap();
    match schema.field("homeAddress.zip") {
        csfle::schema::FieldInfo::Encrypted(spec) => {
            assert_eq!(spec.key, csfle::schema::EncryptKey::Id(key_id(1)));
        }
        other => panic!("{other:?}"),
    }
    // An unknown alternate name is refused, naming the type and field.
    let err = template.to_json_schema(&|_| None).unwrap_err().to_string();
    assert!(
        err.contains("Patient") && err.contains("no data key has the alternate name"),
        "{err}"
    );
}

/// Every path the schema encrypts is present in what serde writes, with
/// the declared BSON type; every path serde writes that the schema does not
/// name is plaintext by declaration.
fn assert_schema_matches_serialization<T: Encrypted + Serialize>(
    value: &T,
    resolve: &dyn Fn(&str) -> Option<KeyId>,
) {
    let schema = T::schema_template().to_json_schema(resolve).unwrap();
    let written = bson::to_document(value).unwrap();
    fn walk(schema: &Document, written: &Document, path: &str, checked: &mut usize) {
        for (name, sub) in schema.get_document("properties").unwrap() {
            let sub = sub.as_document().unwrap();
            let here = format!("{path}{name}");
            let value = written.get(name).unwrap_or_else(|| {
                panic!("'{here}' is in the schema but serde did not write it: {written:?}")
            });
            match sub.get_document("encrypt") {
                Ok(encrypt) => {
                    let declared = encrypt.get_str("bsonType").unwrap();
                    assert_eq!(
                        common::bson_type_name(value.element_type()),
                        declared,
                        "'{here}' serializes as {value:?}"
                    );
                    *checked += 1;
                }
                Err(_) => walk(
                    sub,
                    value.as_document().unwrap(),
                    &format!("{here}."),
                    checked,
                ),
            }
        }
    }
    let mut checked = 0;
    walk(&schema, &written, "", &mut checked);
    assert!(checked > 0);
}

#[test]
fn patient_schema_names_what_serde_writes() {
    assert_schema_matches_serialization(&patient(), &resolve);
    let written = bson::to_document(&patient()).unwrap();
    assert!(!written.contains_key("sessionOnly") && !written.contains_key("session_only"));
}

#[test]
fn every_supported_type_declares_the_bson_type_serde_writes() {
    assert_schema_matches_serialization(&every_type(), &resolve);
    let template = EveryType::schema_template();
    let encrypted = template
        .fields
        .iter()
        .filter(|f| matches!(f.shape, FieldShape::Encrypted { .. }))
        .count();
    assert_eq!(encrypted, 31);
    // The schema model accepts it (deterministic only where allowed).
    let schema = template.to_json_schema(&resolve).unwrap();
    EncryptionSchema::parse(&schema, SchemaSource::Local).unwrap();
    let t = |name: &str| match &template
        .fields
        .iter()
        .find(|f| f.rust_field == name)
        .unwrap()
        .shape
    {
        FieldShape::Encrypted { bson_type, .. } => *bson_type,
        _ => unreachable!(),
    };
    assert_eq!(t("uint32"), ElementType::Int64);
    assert_eq!(t("bytes_as_array"), ElementType::Array);
    assert_eq!(t("bytes_with"), ElementType::Binary);
    assert_eq!(t("optional"), ElementType::Int64);
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "patients")]
struct AddressBook {
    owner: String,
    entries: Vec<Address>,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "patients")]
struct AddressMap {
    by_name: HashMap<String, Address>,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "patients")]
struct Flattened {
    #[serde(flatten)]
    address: Address,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "patients")]
struct Tree {
    #[encrypted(deterministic)]
    label: String,
    children: Vec<Tree>,
    parent: Option<Box<Tree>>,
}

/// Plain nested types, sequences and flattened fields without encrypted
/// fields are fine.
#[derive(Serialize, Encrypted)]
#[encrypted(key = "patients")]
struct Harmless {
    #[encrypted(deterministic)]
    ssn: String,
    tags: Vec<MedicalNote>,
    #[serde(flatten)]
    extra: HashMap<String, Bson>,
    note: Option<MedicalNote>,
}

#[derive(Serialize, Encrypted)]
struct MedicalNote {
    text: String,
}

#[test]
fn shapes_a_schema_cannot_express_are_refused() {
    let err = |t: SchemaTemplate| t.to_json_schema(&resolve).unwrap_err().to_string();
    let e = err(AddressBook::schema_template());
    assert!(e.contains("entries") && e.contains("inside arrays"), "{e}");
    let e = err(AddressMap::schema_template());
    assert!(
        e.contains("by_name") && e.contains("sequence or map"),
        "{e}"
    );
    let e = err(Flattened::schema_template());
    assert!(e.contains("flatten") && e.contains("Address"), "{e}");
    let e = err(Tree::schema_template());
    assert!(e.contains("unbounded depth"), "{e}");
    // A type that takes its key from its container has none on its own.
    let e = err(Address::schema_template());
    assert!(e.contains("no key"), "{e}");
    let harmless = Harmless::schema_template()
        .to_json_schema(&resolve)
        .unwrap();
    assert_eq!(
        harmless
            .get_document("properties")
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["ssn"]
    );
}

/// For every serde `rename_all` rule, the schema names the fields as serde
/// writes them.
#[test]
fn rename_all_rules_name_what_serde_writes() {
    macro_rules! rule {
        ($($name:ident: $rule:literal),* $(,)?) => {$({
            #[derive(Serialize, Encrypted)]
            #[encrypted(key = "patients")]
            #[serde(rename_all = $rule)]
            struct $name {
                #[encrypted(deterministic)]
                first_name: String,
                #[encrypted(random)]
                x: i32,
                #[encrypted(deterministic)]
                a_b_c2: String,
                #[encrypted(deterministic)]
                r#type: String,
                #[serde(rename = "kept")]
                #[encrypted(random)]
                renamed_field: String,
            }
            let value = $name {
                first_name: "a".into(),
                x: 1,
                a_b_c2: "b".into(),
                r#type: "c".into(),
                renamed_field: "d".into(),
            };
            assert_schema_matches_serialization(&value, &resolve);
            let schema = $name::schema_template().to_json_schema(&resolve).unwrap();
            let written = bson::to_document(&value).unwrap();
            assert_eq!(
                schema.get_document("properties").unwrap().keys().collect::<Vec<_>>(),
                written.keys().collect::<Vec<_>>(),
                $rule
            );
        })*};
    }
    rule!(
        Lower: "lowercase",
        Upper: "UPPERCASE",
        Pascal: "PascalCase",
        Camel: "camelCase",
        Snake: "snake_case",
        ScreamingSnake: "SCREAMING_SNAKE_CASE",
        Kebab: "kebab-case",
        ScreamingKebab: "SCREAMING-KEBAB-CASE",
    );
}

/// serde's serialize-side names win where the two sides differ.
#[test]
fn serialize_side_renames_are_the_schemas() {
    #[derive(Serialize, Deserialize, Encrypted)]
    #[encrypted(key = "patients")]
    #[serde(rename_all(serialize = "camelCase", deserialize = "snake_case"))]
    struct TwoSided {
        #[serde(rename(serialize = "out", deserialize = "in"), default, alias = "inn")]
        #[encrypted(deterministic)]
        renamed: String,
        #[encrypted(deterministic)]
        home_zip: String,
    }
    let value = TwoSided {
        renamed: "a".into(),
        home_zip: "b".into(),
    };
    assert_schema_matches_serialization(&value, &resolve);
    let schema = TwoSided::schema_template()
        .to_json_schema(&resolve)
        .unwrap();
    assert_eq!(
        schema
            .get_document("properties")
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["out", "homeZip"]
    );
}
