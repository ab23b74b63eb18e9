use super::*;
use bson::doc;

/// A field name with a `.` that puts it below an encrypted field is
/// refused, whatever the plan says about unlisted fields.
#[test]
fn a_field_below_an_encrypted_one_is_refused() {
    let enc = crate::fuzzing::fixed_encrypter();
    for decrypt_unlisted in [false, true] {
        let plan = crate::fuzzing::migration_plan(decrypt_unlisted);
        for (doc, field, encrypted) in [
            (doc! {"_id": 1, "ssn.x": "457-55-5462"}, "ssn.x", "ssn"),
            (
                doc! {"_id": 1, "med": {"record.x": "a"}},
                "med.record.x",
                "med.record",
            ),
        ] {
            match plan.apply(&doc, enc.keys()) {
                Err(DocumentError::BelowEncrypted {
                    field: f,
                    encrypted: e,
                }) => assert_eq!((f.as_str(), e.as_str()), (field, encrypted)),
                other => panic!("{doc}: {other:?}"),
            }
        }
    }
}

/// A value holding ciphertexts (here an array) at a field the plan
/// encrypts is encrypted with them decrypted, never around them; found
/// by the `migrate_document` fuzz target.
#[test]
fn ciphertexts_inside_an_encrypted_value_are_decrypted_first() {
    let enc = crate::fuzzing::fixed_encrypter();
    let plan = crate::fuzzing::migration_plan(false);
    let key = KeyRef::Id(crate::KeyId::from_bytes([0x11; 16]));
    let inner = enc
        .encrypt(&"z".into(), &key, crate::Algorithm::Deterministic)
        .unwrap();
    let doc = doc! {"_id": 1, "notes": ["x", {"y": Bson::Binary(inner)}]};
    let Change::Changed {
        document, fields, ..
    } = plan.apply(&doc, enc.keys()).unwrap()
    else {
        panic!("notes must be encrypted");
    };
    assert_eq!(fields, ["notes"]);
    let notes = enc
        .decrypt(match document.get("notes") {
            Some(Bson::Binary(b)) => b,
            other => panic!("{other:?}"),
        })
        .unwrap();
    assert_eq!(notes, bson::bson!(["x", {"y": "z"}]));
    assert_eq!(
        plan.apply(&document, enc.keys()).unwrap(),
        Change::Unchanged
    );
}

/// A plan refusing decryption refuses every document it would store a
/// ciphertext of decrypted, naming the field and never the value; the
/// same plan without the mode decrypts it (the refusal is the mode's).
#[test]
fn a_plan_refusing_decryption_refuses_every_decrypting_path() {
    let enc = crate::fuzzing::fixed_encrypter();
    let key = KeyRef::Id(crate::KeyId::from_bytes([0x11; 16]));
    let ssn = Bson::Binary(
        enc.encrypt(&"457-55-5462".into(), &key, crate::Algorithm::Deterministic)
            .unwrap(),
    );
    let whole_med = Bson::Binary(
        enc.encrypt(
            &Bson::Document(doc! {"record": "r", "doctor": "457-55-5462"}),
            &key,
            crate::Algorithm::Random,
        )
        .unwrap(),
    );
    for (decrypt_unlisted, doc, field) in [
        // A field the schema names without `encrypt`.
        (false, doc! {"_id": 1, "plain": ssn.clone()}, "plain"),
        // ... holding the ciphertext deeper down.
        (
            false,
            doc! {"_id": 1, "plain": {"a": [ssn.clone()]}},
            "plain",
        ),
        // A ciphertext where the schema describes a sub-document.
        (false, doc! {"_id": 1, "med": whole_med.clone()}, "med"),
        // An unlisted field, with decrypt_unlisted.
        (true, doc! {"_id": 1, "other": ssn.clone()}, "other"),
        (true, doc! {"_id": 1, "med": {"x": ssn.clone()}}, "med.x"),
    ] {
        let plan = crate::fuzzing::migration_plan(decrypt_unlisted);
        assert!(
            matches!(plan.apply(&doc, enc.keys()), Ok(Change::Changed { .. })),
            "{doc}: the plan alone decrypts"
        );
        let refusing = plan.refusing_decryption();
        assert!(refusing.refuses_decryption());
        let e = refusing.apply(&doc, enc.keys()).unwrap_err();
        assert!(
            matches!(&e, DocumentError::WouldDecrypt { field: f } if f == field),
            "{doc}: {e:?}"
        );
        let message = e.to_string();
        assert!(message.contains(field), "{message}");
        assert!(!message.contains("457-55-5462"), "{message}");
    }
}

/// What stays encrypted is still allowed when refusing decryption: an
/// unlisted ciphertext without decrypt_unlisted is kept, a ciphertext
/// under another algorithm is re-encrypted as the plan says, plaintext
/// is encrypted.
#[test]
fn a_plan_refusing_decryption_still_encrypts_and_re_encrypts() {
    let enc = crate::fuzzing::fixed_encrypter();
    let key = KeyRef::Id(crate::KeyId::from_bytes([0x11; 16]));
    let random_ssn = Bson::Binary(
        enc.encrypt(&"457-55-5462".into(), &key, crate::Algorithm::Random)
            .unwrap(),
    );
    let plan = crate::fuzzing::migration_plan(false).refusing_decryption();
    assert_eq!(
        plan.apply(&doc! {"_id": 1, "other": random_ssn.clone()}, enc.keys())
            .unwrap(),
        Change::Unchanged
    );
    for doc in [
        doc! {"_id": 1, "ssn": random_ssn.clone(), "plain": "p"},
        doc! {"_id": 1, "ssn": "457-55-5462", "med": {"record": "r"}},
    ] {
        let Change::Changed { document, .. } = plan.apply(&doc, enc.keys()).unwrap() else {
            panic!("{doc}: ssn must be encrypted");
        };
        let Some(Bson::Binary(b)) = document.get("ssn") else {
            panic!("{document}");
        };
        let blob = Fle1Blob::parse(&b.bytes).unwrap();
        assert_eq!(
            blob.subtype.algorithm(),
            crate::Algorithm::Deterministic,
            "{document}"
        );
        assert_eq!(enc.decrypt(b).unwrap(), Bson::String("457-55-5462".into()));
    }
}

/// `apply_owned` changes a document as `apply` does: the same fields in
/// the same order, the same plaintexts once decrypted (random ciphertexts
/// differ in their IVs), an
/// unchanged document returned as it came, and the same refusals.
#[test]
fn apply_owned_is_apply_in_place() {
    let enc = crate::fuzzing::fixed_encrypter();
    let key = KeyRef::Id(crate::KeyId::from_bytes([0x11; 16]));
    let det_ssn = Bson::Binary(
        enc.encrypt(&"457-55-5462".into(), &key, crate::Algorithm::Deterministic)
            .unwrap(),
    );
    for decrypt_unlisted in [false, true] {
        let plan = crate::fuzzing::migration_plan(decrypt_unlisted);
        for doc in [
            doc! {"_id": 1, "ssn": "457-55-5462", "notes": "n", "plain": "p", "x": 2},
            doc! {"x": 1, "med": {"record": {"a": [1, 2]}, "other": 3}, "ssn": "1"},
            doc! {"_id": 2, "ssn": det_ssn.clone(), "plain": "p"},
            doc! {"_id": 3, "plain": "p"},
            doc! {"_id": 4, "ssn": 5},
            doc! {"_id": 5, "ssn.x": "below"},
        ] {
            let owned = plan.apply_owned(doc.clone(), enc.keys());
            match (plan.apply(&doc, enc.keys()), owned) {
                (Ok(Change::Unchanged), Ok(owned)) => assert_eq!(owned, doc),
                (Ok(Change::Changed { document, .. }), Ok(owned)) => {
                    assert!(document.keys().eq(owned.keys()), "{doc}");
                    assert_eq!(
                        enc.decrypt_document(&document).unwrap(),
                        enc.decrypt_document(&owned).unwrap(),
                        "{doc}"
                    );
                    assert_ne!(owned, doc);
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("{doc}: {a:?} / {b:?}"),
            }
        }
    }
}
