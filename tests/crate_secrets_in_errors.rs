//! No error message carries a secret.
//!
//! For random secrets (master keys, data keys, client secrets, tokens,
//! private keys) put where configuration, key documents and Extended JSON
//! carry them, every failing operation's error display is searched for any
//! 8-byte piece of every secret in scope: raw, hex, base64 and base64url.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, doc};
use csfle::keyvault::{KeyDocument, MemoryKeyVault};
use csfle::kms::{KmsProviders, LocalMasterKey, ProviderName, ProviderOptions, TlsOptions};
use csfle::{Algorithm, ClientEncryption, DataKeyOptions, KeyRef};
use proptest::prelude::*;

/// Every encoding of `secret` a message could carry.
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_vec(),
        hex.as_bytes().to_vec(),
        hex.to_uppercase().into_bytes(),
        STANDARD.encode(secret).into_bytes(),
        URL_SAFE_NO_PAD.encode(secret).into_bytes(),
    ]
}

/// Fails if `message` holds 8 consecutive bytes of any encoding of any secret.
fn assert_clean(case: &str, message: &str, secrets: &[&[u8]]) {
    for secret in secrets {
        for enc in encodings(secret) {
            for window in enc.windows(8) {
                assert!(
                    !message.as_bytes().windows(8).any(|w| w == window),
                    "{case}: the error carries part of a secret: {message}"
                );
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    // A secret string as a user might write one: printable, long enough.
    URL_SAFE_NO_PAD.encode(bytes)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn configuration_errors(secret in proptest::collection::vec(any::<u8>(), 24..95)) {
        let s = text(&secret);
        let b64 = STANDARD.encode(&secret);
        let secrets: [&[u8]; 2] = [&secret, s.as_bytes()];
        let mut cases = vec![
            ("local key, short binary", doc! {"local": {"key": Binary { subtype: BinarySubtype::Generic, bytes: secret.clone() }}}),
            ("local key, short base64", doc! {"local": {"key": b64.clone()}}),
            ("local key, not base64", doc! {"local": {"key": format!("{b64}#")}}),
            ("local key, extra field", doc! {"local": {"key": b64.clone(), "other": s.clone()}}),
        ];
        if cfg!(feature = "azure") {
            cases.push(("azure, extra field", doc! {"azure": {"tenantId": "t", "clientId": "c", "clientSecret": s.clone(), "x": 1}}));
            cases.push(("azure, secret and token", doc! {"azure": {"accessToken": s.clone(), "clientSecret": s.clone()}}));
            cases.push(("azure, bad identity platform", doc! {"azure": {"tenantId": "t", "clientId": "c", "clientSecret": s.clone(), "identityPlatformEndpoint": "http://x"}}));
        }
        if cfg!(feature = "gcp") {
            cases.push(("gcp, bad private key", doc! {"gcp": {"email": "e@x", "privateKey": b64.clone()}}));
            cases.push(("gcp, private key not base64", doc! {"gcp": {"email": "e@x", "privateKey": format!("{s}!")}}));
            cases.push(("gcp, token and email", doc! {"gcp": {"email": "e@x", "accessToken": s.clone()}}));
        }
        if cfg!(feature = "aws") {
            cases.push(("aws, secret only", doc! {"aws": {"secretAccessKey": s.clone()}}));
            cases.push(("aws, bad session token", doc! {"aws": {"accessKeyId": "a", "secretAccessKey": s.clone(), "sessionToken": 5}}));
        }
        for (case, kms) in cases {
            let e = KmsProviders::from_document(&kms).unwrap_err().to_string();
            assert_clean(case, &e, &secrets);
        }
        // A client certificate file that is not one.
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("client.pem");
        std::fs::write(&pem, format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")).unwrap();
        if cfg!(feature = "azure") {
            let options = ProviderOptions::default().with_tls(doc! {"azure": {"tlsCertificateKeyFile": pem.to_str().unwrap()}});
            let e = KmsProviders::from_document_with(&doc! {"azure": {"accessToken": "t"}}, &options)
                .unwrap_err()
                .to_string();
            assert_clean("bad client certificate", &e, &secrets);
        }
        let e = TlsOptions::from_document("azure", &doc! {"tlsCAFile": dir.path().join("missing").to_str().unwrap()});
        if let Err(e) = e {
            assert_clean("missing CA file", &e.to_string(), &secrets);
        }
    }

    #[test]
    fn extended_json_and_key_document_errors(secret in proptest::collection::vec(any::<u8>(), 24..96)) {
        let b64 = STANDARD.encode(&secret);
        let secrets: [&[u8]; 1] = [&secret];
        for line in [
            format!(r#"{{"k": {{"$binary": {{"base64": "{b64}!", "subType": "00"}}}}}}"#),
            format!(r#"{{"k": {{"$binary": {{"base64": "{b64}", "subType": "0g"}}}}}}"#),
            format!(r#"{{"k": {{"$binary": {{"base64": "{b64}"}}}}}}"#),
            format!(r#"{{"k": {{"$binary": "{b64}", "$type": "zz"}}}}"#),
            format!(r#"{{"k": {{"$numberLong": "{b64}"}}}}"#),
            format!(r#"{{"k": {{"$numberDecimal": "{b64}"}}}}"#),
            format!(r#"{{"k": {{"$uuid": "{b64}"}}}}"#),
            format!(r#"{{"k": "{b64}""#),
        ] {
            let e = csfle::ejson::parse_document(&line).unwrap_err().to_string();
            assert_clean(&line, &e, &secrets);
        }
        // Key documents that are wrong around their key material.
        let material = Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: secret.clone() });
        for (case, d) in [
            ("no masterKey", doc! {"_id": Bson::Binary(csfle::KeyId::from_bytes([1; 16]).to_binary()), "keyMaterial": material.clone()}),
            ("bad id", doc! {"_id": material.clone(), "keyMaterial": material.clone(), "masterKey": {"provider": "local"}}),
            ("material as string", doc! {"_id": Bson::Binary(csfle::KeyId::from_bytes([1; 16]).to_binary()), "keyMaterial": b64.clone(), "masterKey": {"provider": "local"}, "creationDate": bson::DateTime::now(), "updateDate": bson::DateTime::now(), "status": 0}),
            ("bad master key", doc! {"_id": Bson::Binary(csfle::KeyId::from_bytes([1; 16]).to_binary()), "keyMaterial": material.clone(), "masterKey": {"provider": "azure", "keyVaultEndpoint": format!("{b64}/x"), "keyName": "k"}, "creationDate": bson::DateTime::now(), "updateDate": bson::DateTime::now(), "status": 0}),
        ] {
            let e = KeyDocument::from_document(&d).unwrap_err().to_string();
            assert_clean(case, &e, &secrets);
        }
    }

    /// An alternate name a document gives through a `keyId` JSON pointer
    /// is a value of the application's data: the error for a key the
    /// vault does not have never carries it, whether the markings are
    /// encrypted synchronously or through automatic encryption (which
    /// asks the key vault).
    #[test]
    fn pointer_resolved_alt_names(secret in proptest::collection::vec(any::<u8>(), 12..48)) {
        let owner = text(&secret);
        let secrets: [&[u8]; 1] = [owner.as_bytes()];
        let schema = doc! {
            "bsonType": "object",
            "properties": {"notes": {"encrypt": {"keyId": "/owner", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}}},
        };
        let cmd = doc! {"insert": "people", "documents": [{"owner": owner.clone(), "notes": "n"}]};
        let parsed = csfle::schema::EncryptionSchema::parse(&schema, csfle::schema::SchemaSource::Local).unwrap();
        let known = csfle::analysis::NamespaceSchema::Known(Some(&parsed));
        let marked = match csfle::analysis::analyze(&cmd, "app", &|_| known).unwrap() {
            csfle::analysis::Analysis::Marked(m) => m,
            other => panic!("not marked: {other:?}"),
        };
        let enc = common::fixed_encrypter();
        let e = csfle::analysis::encrypt_markings(&marked, enc.keys()).unwrap_err().to_string();
        assert!(e.contains("is not shown"), "{e}");
        assert_clean("pointer-resolved alt name, synchronous", &e, &secrets);
        runtime().block_on(async {
            let auto = csfle::AutoEncrypter::new(
                ClientEncryption::new(MemoryKeyVault::new(), KmsProviders::new()),
                &doc! {"app.people": schema.clone()},
                csfle::AutoEncryptionOptions::default(),
            )
            .unwrap();
            let e = auto.encrypt_command("app", &cmd).await.unwrap_err().to_string();
            assert!(e.contains("is not shown"), "{e}");
            assert_clean("pointer-resolved alt name, key vault", &e, &secrets);
        });
    }

    #[test]
    fn unwrap_and_decrypt_errors(
        master_a in proptest::collection::vec(any::<u8>(), 96),
        master_b in proptest::collection::vec(any::<u8>(), 96),
        data_key in proptest::collection::vec(any::<u8>(), 96),
        token in proptest::collection::vec(any::<u8>(), 24..48),
    ) {
        let token = text(&token);
        let secrets: [&[u8]; 4] = [&master_a, &master_b, &data_key, token.as_bytes()];
        let local = ProviderName::parse("local").unwrap();
        runtime().block_on(async {
            let with = |m: &[u8]| KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(m).unwrap());
            let vault = MemoryKeyVault::new();
            let a = ClientEncryption::new(vault.clone(), with(&master_a));
            let id = a
                .create_data_key(&local, DataKeyOptions::default().with_key_material(&data_key))
                .await
                .unwrap();
            let ct = a.encrypt(&"plain".into(), &KeyRef::Id(id), Algorithm::Deterministic).await.unwrap();
            // The wrong master key.
            let b = ClientEncryption::new(vault.snapshot(), with(&master_b));
            let e = b.decrypt(&ct).await.unwrap_err().to_string();
            assert_clean("wrong master key", &e, &secrets);
            // A ciphertext whose MAC fails, under the right key.
            let mut bad = ct.clone();
            let last = bad.bytes.len() - 1;
            bad.bytes[last] ^= 1;
            let e = a.decrypt(&bad).await.unwrap_err().to_string();
            assert_clean("bad MAC", &e, &secrets);
            // A truncated blob.
            bad.bytes.truncate(30);
            let e = a.decrypt(&bad).await.unwrap_err().to_string();
            assert_clean("truncated", &e, &secrets);
            // A type the algorithm refuses.
            let e = a.encrypt(&Bson::Double(1.5), &KeyRef::Id(id), Algorithm::Deterministic).await.unwrap_err().to_string();
            assert_clean("refused type", &e, &secrets);
            // A key document naming a host nobody allowed, with a token configured.
            if cfg!(feature = "azure") {
                let kms = KmsProviders::from_document(&doc! {"azure": {"accessToken": &token}}).unwrap();
                let mut d = a.get_key(id).await.unwrap().unwrap().to_document();
                d.insert("masterKey", doc! {"provider": "azure", "keyVaultEndpoint": "evil.example", "keyName": "k"});
                let vault = MemoryKeyVault::new();
                use csfle::keyvault::KeyVault;
                vault.insert_key(&KeyDocument::from_document(&d).unwrap()).await.unwrap();
                let e = ClientEncryption::new(vault, kms).decrypt(&ct).await.unwrap_err().to_string();
                assert!(e.contains("not allowed"), "{e}");
                assert_clean("hostile endpoint", &e, &secrets);
            }
        });
    }
}

/// Queryable Encryption: data keys, tokens and plaintexts never reach an
/// error message or a `Debug`.
#[cfg(feature = "qe")]
mod qe {
    use super::*;
    use csfle::EncryptionAlgorithm::{Indexed, Range, Unindexed};
    use csfle::qe::QeRandom;
    use csfle::qe::aead::{
        QeDataKey, fle2_aead_decrypt, fle2_decrypt, fle2v2_aead_decrypt, fle2v2_aead_encrypt,
    };
    use csfle::qe::explicit::RangeOptions;
    use csfle::qe::tokens::{
        CollectionsLevel1Token, EdcDerivedFromDataToken, EdcToken, EscToken,
        ServerDataEncryptionLevel1Token,
    };
    use csfle::qe::values::QeValue;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn qe_keys_tokens_and_values(
            material in proptest::collection::vec(any::<u8>(), 96),
            plaintext in proptest::collection::vec(any::<u8>(), 9..64),
            junk in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let key = QeDataKey::new(&material).unwrap();
            let root = key.token_key();
            let l1 = CollectionsLevel1Token::derive(root);
            let edc = EdcToken::derive(&l1);
            let esc = EscToken::derive(&l1);
            let server = ServerDataEncryptionLevel1Token::derive(root);
            let derived = EdcDerivedFromDataToken::derive(&edc, &plaintext);
            let secrets: [&[u8]; 7] = [
                &material,
                l1.as_bytes(),
                edc.as_bytes(),
                esc.as_bytes(),
                server.as_bytes(),
                derived.as_bytes(),
                &plaintext,
            ];
            let mut messages = vec![
                format!("{key:?}"),
                format!("{root:?}"),
                format!("{l1:?}"),
                format!("{edc:?}"),
                format!("{derived:?}"),
            ];
            let sealed =
                fle2v2_aead_encrypt(&key, b"aad", &plaintext, &mut QeRandom::system()).unwrap();
            let mut errors = vec![
                fle2v2_aead_decrypt(&key, b"other", &sealed).unwrap_err(),
                fle2v2_aead_decrypt(&key, b"aad", &sealed[..sealed.len() - 1]).unwrap_err(),
                QeDataKey::new(&material[..95]).unwrap_err(),
                fle2_decrypt(&material[..31], &sealed).unwrap_err(),
            ];
            errors.extend(fle2_aead_decrypt(&key, b"aad", &junk).err());
            errors.extend(fle2v2_aead_decrypt(&key, b"aad", &junk).err());
            errors.extend(QeValue::parse(&junk).err());
            for e in &errors {
                messages.push(e.to_string());
                messages.push(format!("{e:?}"));
            }
            for message in &messages {
                assert_clean("QE", message, &secrets);
            }
        }

        /// Through `ClientEncryption`: QE values that fail to decrypt
        /// (tampered, truncated, under a wrong master key), range values
        /// and query bounds the index refuses, and the encrypt action's
        /// `Debug` carry no data key, token, plaintext or query bound.
        #[test]
        fn qe_client_errors(
            master in proptest::collection::vec(any::<u8>(), 96),
            data_key in proptest::collection::vec(any::<u8>(), 96),
            plaintext in proptest::collection::vec(any::<u8>(), 12..40),
            bound in 1_000_000_000i64..i64::MAX / 2,
        ) {
            let secret = text(&plaintext);
            let qe_key = QeDataKey::new(&data_key).unwrap();
            let l1 = CollectionsLevel1Token::derive(qe_key.token_key());
            let server = ServerDataEncryptionLevel1Token::derive(qe_key.token_key());
            let bound_text = bound.to_string();
            let secrets: [&[u8]; 6] = [
                &master,
                &data_key,
                secret.as_bytes(),
                l1.as_bytes(),
                server.as_bytes(),
                bound_text.as_bytes(),
            ];
            let local = ProviderName::parse("local").unwrap();
            let messages = runtime().block_on(async {
                let kms = KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&master).unwrap());
                let vault = MemoryKeyVault::new();
                let ce = ClientEncryption::new(vault.clone(), kms);
                let id = ce
                    .create_data_key(&local, DataKeyOptions::default().with_key_material(&data_key))
                    .await
                    .unwrap();
                let key = KeyRef::Id(id);
                let value = Bson::from(secret.clone());
                let mut messages = vec![format!(
                    "{:?}",
                    ce.encrypt(&value, &key, Indexed).contention_factor(1)
                )];
                let unindexed = ce.encrypt(&value, &key, Unindexed).await.unwrap();
                let indexed = ce.encrypt(&value, &key, Indexed).contention_factor(1).await.unwrap();
                for ct in [&unindexed, &indexed] {
                    let mut tampered = ct.clone();
                    let at = tampered.bytes.len() / 2;
                    tampered.bytes[at] ^= 1;
                    let last = tampered.bytes.len() - 1;
                    tampered.bytes[last] ^= 1;
                    let e = ce.decrypt(&tampered).await.unwrap_err();
                    messages.push(e.to_string());
                    messages.push(format!("{e:?}"));
                    for cut in [1, 17, 18, 40, ct.bytes.len() - 1] {
                        let mut short = ct.clone();
                        short.bytes.truncate(cut);
                        if let Err(e) = ce.decrypt(&short).await {
                            messages.push(e.to_string());
                        }
                    }
                }
                let wrong = ClientEncryption::new(
                    vault.snapshot(),
                    KmsProviders::new().with_local(local.clone(), LocalMasterKey::new(&[0x5a; 96]).unwrap()),
                );
                messages.push(wrong.decrypt(&indexed).await.unwrap_err().to_string());
                // The range index: a value outside it, query bounds it refuses.
                let range = RangeOptions::default().with_min(0i64).with_max(1000i64);
                messages.push(
                    ce.encrypt(&Bson::Int64(bound), &key, Range)
                        .contention_factor(0)
                        .range_options(range.clone())
                        .await
                        .unwrap_err()
                        .to_string(),
                );
                for expression in [
                    doc! {"$and": [{"n": {"$gt": bound}}]},
                    doc! {"$and": [{"n": {"$lt": -bound}}]},
                    doc! {"$and": [{"n": {"$gt": secret.clone()}}]},
                    doc! {"$and": [{"n": {"$gt": 5i64}}, {"n": {"$lt": 2i64}}], "x": secret.clone()},
                ] {
                    let e = ce
                        .encrypt_expression(&expression, &key)
                        .contention_factor(0)
                        .range_options(range.clone())
                        .await
                        .unwrap_err();
                    messages.push(e.to_string());
                    messages.push(format!("{e:?}"));
                }
                messages
            });
            for message in &messages {
                assert_clean("QE through ClientEncryption", message, &secrets);
            }
        }
    }
}
