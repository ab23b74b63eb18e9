//! Automatic Queryable Encryption's finalization (`csfle::qe::finalize`)
//! on the two libmongocrypt vectors its `test/test-mongocrypt-ctx-encrypt.c`
//! encrypts with a random generator and checks against a pattern
//! (`_test_bulkWrite`'s "one namespace" case and `_test_qe_keyAltName`),
//! vendored under `tests/data/libmongocrypt/` (Apache-2.0, snapshot
//! `3a65b40d`). Their key (`aaaa…`) exists only wrapped by libmongocrypt's
//! all-zero local master key, which only the KMS layer unwraps, so these
//! run here rather than beside the fixed-RNG vectors (unit tests in
//! `src/qe/finalize/tests.rs`). Checked as libmongocrypt checks them, and
//! more: the command byte for byte with the payload in the pattern's
//! place, and the payload decrypted back to the value.

#![cfg(feature = "qe")]

#[path = "common/qe_vectors.rs"]
mod qe_vectors;

use bson::spec::BinarySubtype;
use bson::{Bson, Document, doc};
use csfle::keyvault::KeyDocument;
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
use csfle::qe::QeRandom;
use csfle::qe::aead::QeDataKey;
use csfle::qe::encrypted_fields::{EncryptedFields, ParseMode};
use csfle::qe::finalize::{add_encryption_information, encrypt_placeholders, placeholder_key_ids};
use csfle::qe::payload::{INSERT_UPDATE_V2, InsertUpdatePayload};
use csfle::qe::values::{UNINDEXED_V2, UnindexedValue};
use qe_vectors::data_dir;

fn ejson(rel: &str) -> Document {
    let path = data_dir().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    qe_vectors::ejson_document(&text)
}

/// The id of libmongocrypt's key `aaaa…`.
const AAAA: [u8; 16] = [b'a'; 16];

/// The data key of a key document wrapped by libmongocrypt's all-zero
/// local master key.
fn local_key(rel: &str) -> QeDataKey {
    let document = KeyDocument::from_document(&ejson(rel)).expect("a key document");
    assert_eq!(document.id.bytes(), AAAA, "{rel}");
    let kms = KmsProviders::new().with_local(
        ProviderName::of_kind(ProviderKind::Local),
        LocalMasterKey::new(&[0; 96]).expect("a 96-byte master key"),
    );
    let material = kms
        .unwrap_key_local(&document.master_key, &document.key_material)
        .expect("unwraps under the all-zero master key");
    QeDataKey::new(&material).expect("96 bytes")
}

fn bytes(doc: &Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.to_writer(&mut out).expect("a BSON document");
    out
}

/// The subtype-6 binary at `doc[key]`, in place of which `pattern` has
/// libmongocrypt's `{$$type: "binData"}`: its bytes.
fn payload_in_place(doc: &Document, key: &str) -> Vec<u8> {
    match doc.get(key) {
        Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Encrypted => b.bytes.clone(),
        other => panic!("'{key}' is {other:?}"),
    }
}

/// `_test_bulkWrite`, "Test a bulkWrite with one namespace": a range
/// insert through `nsInfo`.
#[test]
fn bulk_write_simple() {
    let key = local_key("key-document-local.json");
    let keys = |id: &[u8; 16]| (*id == AAAA).then_some(&key);
    let reply = ejson("bulkWrite/simple/mongocryptd-reply.json");
    let command = reply.get_document("result").expect("result");
    assert_eq!(placeholder_key_ids(command).unwrap(), vec![AAAA]);
    let encrypted = encrypt_placeholders(command, &keys, &mut QeRandom::system()).unwrap();
    let fields = EncryptedFields::from_document(
        ejson("bulkWrite/simple/encrypted-field-map.json")
            .get_document("db.test")
            .unwrap(),
        ParseMode::Map,
    )
    .unwrap();
    // bulkWrite runs on `admin`; its namespace's database is `db`.
    let mut out = add_encryption_information(encrypted, "db", &[("test", Some(&fields))]).unwrap();
    // libmongocrypt's `_fle2_finalize` gives back the input's `$db`, which
    // query analysis's reply lost: the caller's part here.
    let original = ejson("bulkWrite/simple/cmd.json");
    let db = original.get("$db").expect("the input has $db").clone();
    assert!(!out.contains_key("$db"));
    out.insert("$db", db);

    let document = |d: &Document| -> Document {
        d.get_array("ops").unwrap()[0]
            .as_document()
            .unwrap()
            .get_document("document")
            .unwrap()
            .clone()
    };
    let payload = payload_in_place(&document(&out), "encrypted");
    assert_eq!(payload[0], INSERT_UPDATE_V2);
    let parsed = InsertUpdatePayload::parse(&payload).unwrap();
    assert_eq!(parsed.user_key_id(), AAAA);
    assert_eq!(parsed.bson_type(), 0x10, "an int32");
    assert_eq!(
        &parsed.decrypt(&key).unwrap()[..],
        &123i32.to_le_bytes()[..]
    );

    // The rest byte for byte: the pattern with this payload in place.
    let mut pattern = ejson("bulkWrite/simple/encrypted-payload-pattern.json");
    let slot = pattern.get_array_mut("ops").unwrap()[0]
        .as_document_mut()
        .unwrap()
        .get_document_mut("document")
        .unwrap();
    assert_eq!(
        slot.get("encrypted"),
        Some(&Bson::Document(doc! { "$$type": "binData" }))
    );
    slot.insert(
        "encrypted",
        Bson::Binary(csfle::qe::payload::to_binary(payload)),
    );
    assert_eq!(bytes(&out), bytes(&pattern));
    eprintln!("bulkWrite: checked 1 (simple), skipped 0");
}

/// `_test_qe_keyAltName`: an unindexed insert whose `encryptedFieldsMap`
/// names its key by `keyAltName`.
#[test]
fn qe_key_alt_name_insert() {
    let key = local_key("qe_keyAltName/key-document.json");
    let keys = |id: &[u8; 16]| (*id == AAAA).then_some(&key);
    let reply = ejson("qe_keyAltName/reply-from-mongocryptd.json");
    let command = reply.get_document("result").expect("result");
    assert_eq!(placeholder_key_ids(command).unwrap(), vec![AAAA]);
    let encrypted = encrypt_placeholders(command, &keys, &mut QeRandom::system()).unwrap();
    let mut fields = EncryptedFields::from_document(
        &doc! { "fields": [{ "path": "secret", "bsonType": "string", "keyAltName": "keyDocumentName" }] },
        ParseMode::Map,
    )
    .unwrap();
    fields.resolve_keys(|_| Some(AAAA)).unwrap();
    let out = add_encryption_information(encrypted, "db", &[("coll", Some(&fields))]).unwrap();

    // libmongocrypt's pattern, exactly: an unindexed value alone needs no
    // encryptionInformation, and the reply's is removed.
    let secret = payload_in_place(
        out.get_array("documents").unwrap()[0]
            .as_document()
            .unwrap(),
        "secret",
    );
    let want = doc! {
        "insert": "coll",
        "documents": [{ "secret": Bson::Binary(csfle::qe::payload::to_binary(secret.clone())) }],
    };
    assert_eq!(bytes(&out), bytes(&want));
    let value = UnindexedValue::parse(&secret).unwrap();
    assert_eq!(value.subtype(), UNINDEXED_V2);
    assert_eq!(value.key_id(), AAAA);
    assert_eq!(value.bson_type(), 0x02, "a string");
    assert_eq!(&value.decrypt(&key).unwrap()[..], b"\x04\0\0\0bar\0");
    eprintln!("qe_keyAltName: checked 1 (reply-from-mongocryptd.json), skipped 0");
}
