//! The Queryable Encryption fixtures the client tests share: the
//! `patients` collection's `encryptedFields` (`ssn` equality, `age` range,
//! `note` unindexed), the FLE1 `staff` schema, their keys, the payload
//! kinds, and the `encryptionInformation` libmongocrypt sends.

#![allow(dead_code)]

use bson::{Bson, Document, doc};
use csfle::KeyId;

pub const SSN: &str = "457-55-5462";
pub const NOTE: &str = "allergic to penicillin";
pub const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";

/// FLE2InsertUpdatePayloadV2.
pub const INSERT_V2: u8 = 11;
/// FLE2FindEqualityPayloadV2.
pub const FIND_EQUALITY_V2: u8 = 12;
/// FLE2FindRangePayloadV2.
pub const FIND_RANGE_V2: u8 = 13;
/// FLE2UnindexedEncryptedValueV2.
pub const UNINDEXED_V2: u8 = 16;

pub fn uuid(id: KeyId) -> Bson {
    Bson::Binary(id.to_binary())
}

/// The data keys of the tests.
pub struct Keys {
    pub ssn: KeyId,
    pub age: KeyId,
    pub note: KeyId,
    pub staff: KeyId,
}

/// `patients`: `ssn` equality, `age` range, `note` unindexed.
pub fn patients_fields(k: &Keys) -> Document {
    doc! {"fields": [
        {"path": "ssn", "keyId": uuid(k.ssn), "bsonType": "string",
         "queries": {"queryType": "equality", "contention": 0_i64}},
        {"path": "age", "keyId": uuid(k.age), "bsonType": "int",
         "queries": {"queryType": "range", "contention": 0_i64, "min": 0, "max": 200,
                     "sparsity": 1_i64, "trimFactor": 1}},
        {"path": "note", "keyId": uuid(k.note), "bsonType": "string"},
    ]}
}

/// An FLE1 schema encrypting `ssn` deterministically (`staff`).
pub fn staff_schema(k: &Keys) -> Document {
    doc! {"bsonType": "object", "properties": {"ssn": {"encrypt": {
        "keyId": [uuid(k.staff)], "bsonType": "string", "algorithm": DET,
    }}}}
}

/// What libmongocrypt sends as the `encryptionInformation` of a command on
/// `db.coll` with `fields` (no state collection names given): the
/// document as given, the names appended.
pub fn encryption_information(db: &str, coll: &str, fields: &Document) -> Document {
    let mut schema = fields.clone();
    schema.insert("escCollection", format!("enxcol_.{coll}.esc"));
    schema.insert("ecocCollection", format!("enxcol_.{coll}.ecoc"));
    doc! {"type": 1_i32, "schema": {format!("{db}.{coll}"): schema}}
}
