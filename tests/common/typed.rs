//! Types deriving `Encrypted`, shared by the schema tests and the typed
//! collection tests.

use bson::doc;
use csfle::Encrypted;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

#[derive(Serialize, Deserialize, Encrypted, Clone, Debug, PartialEq)]
#[encrypted(inherit_key)]
pub struct Address {
    pub street: String,
    #[encrypted(deterministic)]
    pub zip: String,
}

#[derive(Serialize, Deserialize, Encrypted, Clone, Debug, PartialEq)]
#[encrypted(key = "records")]
pub struct MedicalRecord {
    #[encrypted(random)]
    pub allergies: Vec<String>,
    pub doctor: String,
}

#[derive(Serialize, Deserialize, Encrypted, Clone, Debug, PartialEq)]
#[encrypted(key = "patients")]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub full_name: String,
    #[encrypted(deterministic)]
    pub ssn: String,
    #[encrypted(random, key = "records")]
    pub medical_record: MedicalRecord,
    #[encrypted(random, key_pointer = "/tenantKey")]
    pub notes: String,
    pub tenant_key: String,
    pub home_address: Address,
    #[serde(rename = "ins")]
    #[encrypted(deterministic)]
    pub insurance_number: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[encrypted(random)]
    pub nickname: Option<String>,
    #[serde(skip)]
    #[allow(dead_code)]
    pub session_only: String,
}

/// A type serde writes as a string, with no `EncryptedBsonType` of its
/// own: fields of it name their `bson_type`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct Email(pub String);

/// Every Rust type with an `EncryptedBsonType` impl, random, plus the
/// deterministic ones the specification allows.
#[derive(Serialize, Deserialize, Encrypted, Clone, Debug, PartialEq)]
#[encrypted(key = "patients")]
pub struct EveryType {
    #[encrypted(deterministic)]
    pub string: String,
    #[encrypted(deterministic)]
    pub character: char,
    #[encrypted(deterministic)]
    pub int8: i8,
    #[encrypted(deterministic)]
    pub int16: i16,
    #[encrypted(deterministic)]
    pub int32: i32,
    #[encrypted(deterministic)]
    pub uint8: u8,
    #[encrypted(deterministic)]
    pub uint16: u16,
    #[encrypted(deterministic)]
    pub uint32: u32,
    #[encrypted(deterministic)]
    pub int64: i64,
    #[encrypted(deterministic)]
    pub uint64: u64,
    #[encrypted(random)]
    pub float32: f32,
    #[encrypted(random)]
    pub float64: f64,
    #[encrypted(random)]
    pub boolean: bool,
    #[encrypted(deterministic)]
    pub date: bson::DateTime,
    #[encrypted(deterministic)]
    pub object_id: bson::oid::ObjectId,
    #[encrypted(deterministic)]
    pub uuid: bson::Uuid,
    #[encrypted(deterministic)]
    pub binary: bson::Binary,
    #[encrypted(random)]
    pub decimal: bson::Decimal128,
    #[encrypted(deterministic)]
    pub timestamp: bson::Timestamp,
    #[encrypted(deterministic)]
    pub regex: bson::Regex,
    #[encrypted(random)]
    pub document: bson::Document,
    #[encrypted(random)]
    pub strings: Vec<String>,
    #[encrypted(random)]
    pub bytes_as_array: Vec<u8>,
    #[encrypted(deterministic)]
    pub byte_buf: serde_bytes::ByteBuf,
    #[encrypted(deterministic)]
    #[serde(with = "serde_bytes")]
    pub bytes_with: Vec<u8>,
    #[encrypted(random)]
    pub map: BTreeMap<String, i32>,
    #[encrypted(random)]
    pub hash_map: HashMap<String, String>,
    #[encrypted(random)]
    pub nested: MedicalRecord,
    #[encrypted(deterministic)]
    pub boxed: Box<i32>,
    #[encrypted(deterministic)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<i64>,
    #[encrypted(deterministic, bson_type = "string")]
    pub rendered_as_string: Email,
}

pub fn every_type() -> EveryType {
    EveryType {
        string: "text".into(),
        character: 'ß',
        int8: -8,
        int16: -16,
        int32: -32,
        uint8: 8,
        uint16: 16,
        uint32: 4_000_000_000,
        int64: -64,
        uint64: 64,
        float32: 1.5,
        float64: 2.25,
        boolean: true,
        date: bson::DateTime::from_millis(1_700_000_000_123),
        object_id: bson::oid::ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap(),
        uuid: bson::Uuid::parse_str("0b7e3e9a-5d3c-4f1e-9c56-2a7f3b1d9e10").unwrap(),
        binary: bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![1, 2, 3],
        },
        decimal: "1.25".parse().unwrap(),
        timestamp: bson::Timestamp {
            time: 1_700_000_000,
            increment: 7,
        },
        regex: bson::Regex {
            pattern: "^a.*z$".into(),
            options: "i".into(),
        },
        document: doc! {"a": 1, "b": {"c": "d"}},
        strings: vec!["x".into(), "y".into()],
        bytes_as_array: vec![9, 8, 7],
        byte_buf: serde_bytes::ByteBuf::from(vec![0xde, 0xad]),
        bytes_with: vec![0xbe, 0xef],
        map: BTreeMap::from([("one".to_owned(), 1)]),
        hash_map: HashMap::from([("k".to_owned(), "v".to_owned())]),
        nested: MedicalRecord {
            allergies: vec!["dust".into()],
            doctor: "Who".into(),
        },
        boxed: Box::new(7),
        optional: Some(42),
        rendered_as_string: Email("jane@example.com".into()),
    }
}

/// A patient with every kind of field.
pub fn patient() -> Patient {
    Patient {
        full_name: "Jane Doe".into(),
        ssn: "123-45-6789".into(),
        medical_record: MedicalRecord {
            allergies: vec!["penicillin".into()],
            doctor: "House".into(),
        },
        notes: "prefers mornings".into(),
        tenant_key: "tenant-a".into(),
        home_address: Address {
            street: "1 Main St".into(),
            zip: "12345".into(),
        },
        insurance_number: 1_234_567_890_123,
        nickname: Some("JD".into()),
        session_only: "not stored".into(),
    }
}
