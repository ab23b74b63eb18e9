//! Entry points for the fuzz targets in `fuzz/` and the corpus replay test.
//! Not part of the API. Each function must return normally for any input.

use crate::ciphertext::Fle1Blob;
use crate::crypto::KeyId;
use crate::keyvault::{KeyDocument, KeyRing};
use crate::kms::{KmsProviders, LocalMasterKey, ProviderKind, ProviderName};
use crate::{ExplicitEncrypter, KeyRef};

/// A fixed key ring: one local key, id 16 × 0x11, key material 96 × 0x22,
/// master key 96 × 0x33, so fuzzers can reach the MAC and padding checks.
pub fn fixed_encrypter() -> ExplicitEncrypter<KeyRing> {
    let local = ProviderName::of_kind(ProviderKind::Local);
    let kms = KmsProviders::new().with_local(
        local.clone(),
        LocalMasterKey::new(&[0x33; 96]).expect("96 bytes"),
    );
    let mut key = crate::create_data_key(&kms, &local, vec!["fuzz".into()], Some(&[0x22; 96]))
        .expect("local wrap cannot fail");
    key.id = KeyId::from_bytes([0x11; 16]);
    ExplicitEncrypter::new(KeyRing::new([key], kms).expect("one key"))
}

/// Parses `data` as a blob and decrypts it, then decrypts `data` as a BSON
/// document both ways; a successful decryption must re-encrypt (det) to the
/// same bytes.
pub fn blob_parse_and_decrypt(enc: &ExplicitEncrypter<KeyRing>, data: &[u8]) {
    if let Ok(blob) = Fle1Blob::parse(data) {
        let _ = blob.to_bytes();
        let binary = bson::Binary {
            subtype: bson::spec::BinarySubtype::Encrypted,
            bytes: data.to_vec(),
        };
        if let Ok(value) = enc.decrypt(&binary)
            && blob.subtype == crate::ciphertext::BlobSubtype::Deterministic
        {
            let again = enc
                .encrypt(
                    &value,
                    &KeyRef::Id(blob.key_id),
                    crate::Algorithm::Deterministic,
                )
                .expect("a decrypted deterministic value re-encrypts");
            assert_eq!(again.bytes, data, "deterministic re-encryption differs");
        }
    }
    if let Ok(doc) = bson::RawDocument::from_bytes(data) {
        let _ = enc.decrypt_raw_document(doc);
        if let Ok(d) = bson::Document::from_reader(data) {
            let _ = enc.decrypt_document(&d);
        }
    }
}

/// Parses key-vault text and every key document in it.
pub fn key_documents(text: &str) {
    if let Ok((docs, _)) = crate::keyvault::parse_key_documents(text) {
        for d in docs {
            if let Ok(k) = KeyDocument::from_document(&d) {
                let again = KeyDocument::from_document(&k.to_document()).expect("round trip");
                assert_eq!(again, k);
            }
        }
    }
}

/// Parses BSON bytes as a key document.
pub fn key_document_bson(data: &[u8]) {
    if let Ok(d) = bson::Document::from_reader(data) {
        let _ = KeyDocument::from_document(&d);
    }
}

/// The raw AEAD with a caller-chosen IV, for known-answer vectors
/// (draft-mcgrew §5.4). Reusing an IV with random encryption is unsafe; this
/// exists only so tests can reproduce published ciphertexts.
pub fn aead_seal_with_iv(
    key: &crate::DataKey,
    iv: [u8; 16],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, crate::crypto::Error> {
    let mut out = Vec::new();
    crate::crypto::seal(
        key,
        crate::crypto::IvMode::Given(iv),
        aad,
        plaintext,
        &mut out,
    )?;
    Ok(out)
}

/// The raw AEAD decryption, for known-answer vectors.
pub fn aead_open(
    key: &crate::DataKey,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, crate::crypto::Error> {
    let mut out = Vec::new();
    crate::crypto::open(key, aad, ciphertext, &mut out)?;
    Ok(out)
}

/// Parses one CLI input line; a parsed line must print and re-parse to the
/// same document.
pub fn ejson_line(line: &str) {
    if let Ok(doc) = crate::ejson::parse_document(line) {
        let printed = crate::ejson::to_canonical_line(&doc);
        let again = crate::ejson::parse_document(&printed).expect("canonical output re-parses");
        assert_eq!(
            crate::ejson::to_canonical_line(&again),
            printed,
            "canonical form is stable"
        );
    }
}

/// The schema the rewrite fuzz target analyzes against: a deterministic
/// `ssn`, a random `notes`, and a nested random `med.record`.
pub fn rewrite_schema() -> crate::schema::EncryptionSchema {
    let key = bson::Bson::Array(vec![bson::Bson::Binary(
        KeyId::from_bytes([0x11; 16]).to_binary(),
    )]);
    crate::schema::EncryptionSchema::parse(
        &bson::doc! {
            "bsonType": "object",
            "properties": {
                "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
                "notes": {"encrypt": {"keyId": key.clone(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
                "med": {"bsonType": "object", "properties": {"record": {"encrypt": {"keyId": key, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}}}},
            },
        },
        crate::schema::SchemaSource::Local,
    )
    .expect("valid schema")
}

fn is_ciphertext(v: &bson::Bson) -> bool {
    matches!(v, bson::Bson::Binary(b) if b.subtype == bson::spec::BinarySubtype::Encrypted && matches!(b.bytes.first(), Some(1 | 2)))
}

/// Checks that no encrypted path of `doc` holds plaintext.
fn assert_no_plaintext(doc: &bson::Document) {
    for path in ["ssn", "notes"] {
        if let Some(v) = doc.get(path) {
            assert!(
                is_ciphertext(v),
                "plaintext left in encrypted field {path}: {v:?}"
            );
        }
    }
    if let Some(bson::Bson::Document(med)) = doc.get("med")
        && let Some(v) = med.get("record")
    {
        assert!(
            is_ciphertext(v),
            "plaintext left in encrypted field med.record"
        );
    }
}

/// Checks that a filter compares the deterministic field only to ciphertexts.
fn assert_filter_encrypted(filter: &bson::Document) {
    for (k, v) in filter {
        match (k.as_str(), v) {
            ("$and" | "$or" | "$nor", bson::Bson::Array(items)) => {
                for i in items {
                    if let bson::Bson::Document(d) = i {
                        assert_filter_encrypted(d);
                    }
                }
            }
            ("ssn", bson::Bson::Document(ops)) => {
                for (op, arg) in ops {
                    match (op.as_str(), arg) {
                        ("$exists", _) => {}
                        ("$in" | "$nin", bson::Bson::Array(a)) => {
                            assert!(a.iter().all(is_ciphertext), "plaintext in {op}")
                        }
                        ("$not", bson::Bson::Document(d)) => {
                            assert_filter_encrypted(&bson::doc! {"ssn": d.clone()})
                        }
                        (_, v) => assert!(is_ciphertext(v), "plaintext compared to ssn with {op}"),
                    }
                }
            }
            ("ssn", v) => assert!(is_ciphertext(v), "plaintext compared to ssn"),
            _ => {}
        }
    }
}

/// Analyzes arbitrary BSON as a command and, when analysis accepts it,
/// checks that no encrypted field is left in plaintext in what would be sent.
pub fn rewrite_command(
    enc: &ExplicitEncrypter<KeyRing>,
    schema: &crate::schema::EncryptionSchema,
    data: &[u8],
) {
    let Ok(cmd) = bson::Document::from_reader(data) else {
        return;
    };
    let Ok(analysis) = crate::analysis::analyze_with_schema(&cmd, "db", Some(schema)) else {
        return;
    };
    let sent = match analysis {
        crate::analysis::Analysis::Unchanged => cmd,
        crate::analysis::Analysis::Marked(m) => {
            match crate::analysis::encrypt_markings(&m, enc.keys()) {
                Ok(c) => c,
                Err(_) => return,
            }
        }
    };
    let name = sent.keys().next().cloned().unwrap_or_default();
    match name.as_str() {
        "insert" => {
            if let Ok(docs) = sent.get_array("documents") {
                for d in docs.iter().filter_map(bson::Bson::as_document) {
                    assert_no_plaintext(d);
                }
            }
        }
        "find" => {
            if let Ok(f) = sent.get_document("filter") {
                assert_filter_encrypted(f);
            }
        }
        "count" => {
            if let Ok(f) = sent.get_document("query") {
                assert_filter_encrypted(f);
            }
        }
        _ => {}
    }
}

/// The plan the migration fuzz target applies: `rewrite_schema`'s fields,
/// plus `plain` listed as plaintext.
pub fn migration_plan(decrypt_unlisted: bool) -> crate::migrate::Plan {
    let key = bson::Bson::Array(vec![bson::Bson::Binary(
        KeyId::from_bytes([0x11; 16]).to_binary(),
    )]);
    crate::migrate::Plan::from_schema(
        &bson::doc! {
            "bsonType": "object",
            "properties": {
                "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
                "notes": {"encrypt": {"keyId": key.clone(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
                "med": {"bsonType": "object", "properties": {"record": {"encrypt": {"keyId": key, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}}}},
                "plain": {"bsonType": "string"},
            },
        },
        decrypt_unlisted,
    )
    .expect("valid plan")
}

/// Applies a migration plan to arbitrary BSON: never panics; a changed
/// document has every planned field encrypted, keeps its plaintext, and
/// is left unchanged by a second application (the idempotence resumed
/// migrations rely on).
pub fn migrate_document(
    enc: &ExplicitEncrypter<KeyRing>,
    plan: &crate::migrate::Plan,
    data: &[u8],
) {
    let Ok(doc) = bson::Document::from_reader(data) else {
        return;
    };
    let Ok(crate::migrate::Change::Changed {
        document, fields, ..
    }) = plan.apply(&doc, enc.keys())
    else {
        return;
    };
    assert!(!fields.is_empty());
    assert_no_plaintext(&document);
    assert_eq!(
        plan.apply(&document, enc.keys()).ok(),
        Some(crate::migrate::Change::Unchanged),
        "a migrated document must already match the plan"
    );
    if let Ok(before) = enc.decrypt_document(&doc) {
        assert_eq!(
            enc.decrypt_document(&document).ok(),
            Some(before),
            "migration changed a plaintext value"
        );
    }
}
