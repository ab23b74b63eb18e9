//! The KMIP provider end to end.
//!
//! Offline, against an in-process KMIP server on 127.0.0.1
//! (`tests/common/kmip_server.rs`: TLS 1.2, client certificates required,
//! certificates from a CA made per test binary): it answers Register,
//! Activate, Get, Create, Encrypt and Decrypt as a KMIP server does
//! (delegated keys are real AES-256-CBC), or follows a script for the next
//! requests: drop the connection, cut the reply short, send an oversized or
//! malformed reply, never answer. It records every connection and every
//! operation, so the tests check what went on the wire: both modes'
//! exchanges, the retry policy, and that a key document naming another
//! endpoint gets no connection at all.
//!
//! Against PyKMIP (`#[ignore = "needs CSFLE_KMIP_ENDPOINT"]`; `.ci/run`
//! starts it and sets `CSFLE_KMIP_ENDPOINT`, `CSFLE_KMIP_CA_FILE`,
//! `CSFLE_KMIP_CLIENT_CERT`): both modes, named providers, rewrap
//! local → kmip → local, a foreign client certificate, and the
//! specification's KMIP data (the corpus's KMIP entries and `kmipKMS.json`,
//! with the drivers' SecretData registered as UID "1").

mod common;
#[path = "common/kmip_server.rs"]
mod kmip_server;

use bson::{Bson, Document, doc};
use common::*;
use csfle::keyvault::{KeyDocument, KeyVault, MemoryKeyVault};
use csfle::kms::MasterKey;
use csfle::kms::kmip::ttlv::Tag;
use csfle::kms::kmip::{CallError, request::Operation};
use csfle::kms::{Error, KmsProviders, ProviderOptions, RetryPolicy};
use csfle::{
    AutoEncrypter, AutoEncryptionOptions, ClientEncryption, DataKeyOptions, RewrapOptions,
};
use kmip_server::*;
use std::time::Duration;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

// ---------------------------------------------------------------------------
// Offline tests

#[tokio::test]
async fn default_mode_registers_activates_and_gets_a_secret_data() {
    let server = KmipServer::start().await;
    let ce = ClientEncryption::new(MemoryKeyVault::new(), providers(&server));
    let id = ce
        .create_data_key(&kmip_name("kmip"), DataKeyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        server.take_operations(),
        [Operation::Register, Operation::Activate, Operation::Get]
    );
    let key = ce.get_key(id).await.unwrap().unwrap();
    assert_eq!(
        key.master_key.to_document(),
        doc! {"provider": "kmip", "keyId": "1"}
    );
    // Wrapped as a local master key does: IV, AES-CBC of 96 bytes, tag.
    assert_eq!(key.key_material.len(), 160);
    let blob = encrypt_and_decrypt(&ce, id, "default mode").await;
    assert_eq!(server.take_operations(), [Operation::Get]);

    // A fresh client (empty cache) unwraps through Get alone.
    let vault = MemoryKeyVault::new();
    vault.insert_key(&key).await.unwrap();
    let fresh = ClientEncryption::new(vault, providers(&server));
    assert_eq!(
        fresh.decrypt(&blob).await.unwrap(),
        Bson::from("default mode")
    );
    assert_eq!(server.take_operations(), [Operation::Get]);

    // The secret is the server's: another key id does not unwrap it.
    let other = server.seed(Object::Secret(vec![7; 96]));
    let kms = providers(&server);
    let err = kms
        .unwrap_key(&kmip_master_key(&other, false), &key.key_material)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unwrap { .. }), "{err}");
}

#[tokio::test]
async fn delegated_mode_creates_activates_and_encrypts_on_the_server() {
    let server = KmipServer::start().await;
    let ce = ClientEncryption::new(MemoryKeyVault::new(), providers(&server));
    let id = ce
        .create_data_key(&kmip_name("kmip"), {
            let mut o = DataKeyOptions::default();
            o.master_key = Some(doc! {"delegated": true});
            o
        })
        .await
        .unwrap();
    // The wrap is read back before it is stored: Decrypt.
    assert_eq!(
        server.take_operations(),
        [
            Operation::Create,
            Operation::Activate,
            Operation::Encrypt,
            Operation::Decrypt
        ]
    );
    let key = ce.get_key(id).await.unwrap().unwrap();
    assert_eq!(
        key.master_key.to_document(),
        doc! {"provider": "kmip", "keyId": "1", "delegated": true}
    );
    // libmongocrypt's layout: the server's 16-byte IV, then AES-256-CBC of
    // the 96-byte data key with PKCS#5 padding (112 bytes).
    assert_eq!(key.key_material.len(), 16 + 112);
    encrypt_and_decrypt(&ce, id, "delegated mode").await;
    assert_eq!(server.take_operations(), [Operation::Decrypt]);

    // Rewrapped under its own master key: Decrypt, then Encrypt again (a
    // new IV) and its read-back, the same keyId.
    let r = ce.rewrap_many_data_key(doc! {}, None).await.unwrap();
    assert_eq!((r.matched, r.modified), (1, 1));
    assert_eq!(
        server.take_operations(),
        [Operation::Decrypt, Operation::Encrypt, Operation::Decrypt]
    );
    let rewrapped = ce.get_key(id).await.unwrap().unwrap();
    assert_eq!(rewrapped.master_key, key.master_key);
    assert_ne!(rewrapped.key_material, key.key_material);
    encrypt_and_decrypt(&ce, id, "delegated mode").await;
}

#[tokio::test]
async fn an_existing_key_id_is_used_as_given() {
    let server = KmipServer::start().await;
    let secret = server.seed(Object::Secret(vec![5; 96]));
    let aes = server.seed(Object::Aes([9; 32]));
    let kms = providers(&server);
    let (master_key, wrapped) = kms
        .wrap_key(
            &kmip_name("kmip"),
            Some(&doc! {"keyId": secret.as_str()}),
            &[1; 96],
        )
        .await
        .unwrap();
    assert_eq!(master_key, kmip_master_key(&secret, false));
    assert_eq!(server.take_operations(), [Operation::Get]);
    // The same wrapping as a local master key of those 96 bytes.
    let local = csfle::kms::LocalMasterKey::new(&[5; 96]).unwrap();
    assert_eq!(&local.unwrap_key(&wrapped).unwrap()[..], &[1; 96]);

    let (master_key, wrapped) = kms
        .wrap_key(
            &kmip_name("kmip"),
            Some(&doc! {"keyId": aes.as_str(), "delegated": true}),
            &[2; 96],
        )
        .await
        .unwrap();
    assert_eq!(master_key, kmip_master_key(&aes, true));
    assert_eq!(
        server.take_operations(),
        [Operation::Encrypt, Operation::Decrypt]
    );
    let (iv, ciphertext) = wrapped.split_at(16);
    assert_eq!(
        aes_cbc(&[9; 32], iv.try_into().unwrap(), ciphertext, false).unwrap(),
        [2; 96]
    );
    let unwrapped = kms.unwrap_key(&master_key, &wrapped).await.unwrap();
    assert_eq!(&unwrapped[..], &[2; 96]);
    assert_eq!(server.take_operations(), [Operation::Decrypt]);
}

#[tokio::test]
async fn rewrap_local_to_kmip_to_local() {
    let server = KmipServer::start().await;
    let ce = ClientEncryption::new(MemoryKeyVault::new(), providers(&server));
    let id = ce
        .create_data_key(&local_name(), DataKeyOptions::default())
        .await
        .unwrap();
    let blob = encrypt_and_decrypt(&ce, id, "travels").await;
    for (provider, master_key, expected) in [
        ("kmip", None, doc! {"provider": "kmip", "keyId": "1"}),
        (
            "kmip",
            Some(doc! {"delegated": true}),
            doc! {"provider": "kmip", "keyId": "2", "delegated": true},
        ),
        ("local", None, doc! {"provider": "local"}),
    ] {
        let r = ce
            .rewrap_many_data_key(
                doc! {},
                Some({
                    let mut o = RewrapOptions::new(kmip_name(provider));
                    o.master_key = master_key;
                    o
                }),
            )
            .await
            .unwrap();
        assert_eq!((r.matched, r.modified), (1, 1));
        let key = ce.get_key(id).await.unwrap().unwrap();
        assert_eq!(key.master_key.to_document(), expected);
        // The data key is unchanged: the old ciphertext still decrypts,
        // through the new wrapping (a fresh client has no cache).
        let vault = MemoryKeyVault::new();
        vault.insert_key(&key).await.unwrap();
        let fresh = ClientEncryption::new(vault, providers(&server));
        assert_eq!(fresh.decrypt(&blob).await.unwrap(), Bson::from("travels"));
    }
}

#[tokio::test]
async fn named_kmip_providers_each_call_their_own_server() {
    let a = KmipServer::start().await;
    let b = KmipServer::start().await;
    let kms = providers_with(
        &[("kmip:a", a.endpoint()), ("kmip:b", b.endpoint())],
        ProviderOptions::default().with_retry(quick_retry()),
    );
    let (master_key, wrapped) = kms
        .wrap_key(&kmip_name("kmip:b"), None, &[4; 96])
        .await
        .unwrap();
    assert_eq!(
        master_key.to_document(),
        doc! {"provider": "kmip:b", "keyId": "1"}
    );
    assert_eq!((a.accepted(), b.accepted()), (0, 3));
    let unwrapped = kms.unwrap_key(&master_key, &wrapped).await.unwrap();
    assert_eq!(&unwrapped[..], &[4; 96]);
    assert_eq!((a.accepted(), b.accepted()), (0, 4));
    // kmip:a has no object "1".
    let on_a = MasterKey::from_document(&doc! {"provider": "kmip:a", "keyId": "1"}).unwrap();
    let err = kms.unwrap_key(&on_a, &wrapped).await.unwrap_err();
    let (operation, attempts, source) = kmip_failure(&err);
    assert_eq!((operation, attempts), (Operation::Get, 1));
    assert!(
        matches!(source, CallError::Reply(e) if e.to_string().contains("Item Not Found")),
        "{err}"
    );
    // Unnamed `kmip` is not configured.
    let unnamed = kmip_master_key("1", false);
    assert!(matches!(
        kms.unwrap_key(&unnamed, &wrapped).await,
        Err(Error::ProviderNotConfigured(_))
    ));
}

#[tokio::test]
async fn a_key_document_naming_another_endpoint_is_refused_before_connecting() {
    let configured = KmipServer::start().await;
    let elsewhere = KmipServer::start().await;
    let secret = elsewhere.seed(Object::Secret(vec![6; 96]));
    let kms = providers(&configured);
    let hostile = MasterKey::from_document(&doc! {
        "provider": "kmip", "keyId": secret.as_str(), "endpoint": elsewhere.endpoint(),
    })
    .unwrap();
    let wrapped = csfle::kms::LocalMasterKey::new(&[6; 96])
        .unwrap()
        .wrap_key(&[8; 96])
        .unwrap();
    let err = kms.unwrap_key(&hostile, &wrapped).await.unwrap_err();
    assert!(matches!(err, Error::HostNotAllowed { .. }), "{err}");
    // Also spelled without its port, or by another name for the same host.
    for spelling in [
        "127.0.0.1".to_owned(),
        format!("localhost:{}", configured.port),
    ] {
        let other = MasterKey::from_document(&doc! {
            "provider": "kmip", "keyId": "1", "endpoint": spelling,
        })
        .unwrap();
        let err = kms.unwrap_key(&other, &wrapped).await.unwrap_err();
        assert!(matches!(err, Error::HostNotAllowed { .. }), "{err}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!((configured.accepted(), elsewhere.accepted()), (0, 0));

    // The configured endpoint, as the key document spells it, is used.
    let own_secret = configured.seed(Object::Secret(vec![6; 96]));
    let own = MasterKey::from_document(&doc! {
        "provider": "kmip", "keyId": own_secret.as_str(), "endpoint": configured.endpoint(),
    })
    .unwrap();
    assert_eq!(&kms.unwrap_key(&own, &wrapped).await.unwrap()[..], &[8; 96]);
    assert_eq!(configured.accepted(), 1);

    // Allowed explicitly for KMIP (host and port), the other server is used.
    let allowed = kms
        .allow_host_for(csfle::kms::ProviderKind::Kmip, &elsewhere.endpoint())
        .unwrap();
    assert_eq!(
        &allowed.unwrap_key(&hostile, &wrapped).await.unwrap()[..],
        &[8; 96]
    );
    assert_eq!(elsewhere.accepted(), 1);
}

#[tokio::test]
async fn server_down_is_a_connect_error_after_every_attempt() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let kms = providers_with(
        &[("kmip", format!("127.0.0.1:{port}"))],
        ProviderOptions::default().with_retry(quick_retry()),
    );
    // Even Register is retried: nothing was sent.
    for result in [
        kms.wrap_key(&kmip_name("kmip"), None, &[1; 96])
            .await
            .map(|_| ()),
        kms.unwrap_key(&kmip_master_key("1", false), &[0; 160])
            .await
            .map(|_| ()),
    ] {
        let err = result.unwrap_err();
        let (_, attempts, source) = kmip_failure(&err);
        assert_eq!(attempts, 3, "{err}");
        assert!(
            matches!(source, CallError::Connect { kind, .. } if *kind == std::io::ErrorKind::ConnectionRefused),
            "{err}"
        );
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_dropped_connection_is_retried_only_for_repeatable_operations() {
    let server = KmipServer::start().await;
    let secret = server.seed(Object::Secret(vec![3; 96]));
    let kms = providers(&server);
    // Get: three attempts, each cut off before the reply's header.
    server.script([
        Behavior::CloseAfterRequest,
        Behavior::CloseAfterRequest,
        Behavior::CloseAfterRequest,
    ]);
    let err = kms
        .unwrap_key(&kmip_master_key(&secret, false), &[0; 160])
        .await
        .unwrap_err();
    let (operation, attempts, source) = kmip_failure(&err);
    assert_eq!((operation, attempts), (Operation::Get, 3), "{err}");
    assert!(
        matches!(
            source,
            CallError::ReplyCut {
                received: 0,
                expected: None
            }
        ),
        "{err}"
    );
    assert_eq!(server.take_operations(), [Operation::Get; 3]);

    // A Get that fails twice and then succeeds.
    let wrapped = csfle::kms::LocalMasterKey::new(&[3; 96])
        .unwrap()
        .wrap_key(&[4; 96])
        .unwrap();
    server.script([Behavior::CloseAfterRequest, Behavior::CloseAfterRequest]);
    let unwrapped = kms
        .unwrap_key(&kmip_master_key(&secret, false), &wrapped)
        .await
        .unwrap();
    assert_eq!(&unwrapped[..], &[4; 96]);
    assert_eq!(server.take_operations(), [Operation::Get; 3]);

    // Register may have reached the server: never sent twice.
    server.script([Behavior::CloseAfterRequest]);
    let err = kms
        .wrap_key(&kmip_name("kmip"), None, &[1; 96])
        .await
        .unwrap_err();
    let (operation, attempts, _) = kmip_failure(&err);
    assert_eq!((operation, attempts), (Operation::Register, 1), "{err}");
    assert_eq!(server.take_operations(), [Operation::Register]);
}

#[tokio::test]
async fn truncated_oversized_and_malformed_replies_are_typed_errors() {
    let server = KmipServer::start().await;
    let secret = server.seed(Object::Secret(vec![3; 96]));
    let kms = providers(&server);
    let master_key = kmip_master_key(&secret, false);
    let get = |kms: &KmsProviders| {
        let kms = kms.clone();
        let master_key = master_key.clone();
        async move { kms.unwrap_key(&master_key, &[0; 160]).await.unwrap_err() }
    };

    // A reply cut after 20 bytes (of a Get reply's ~200), three times.
    let mut golden = Store::default();
    golden.insert(Object::Secret(vec![3; 96]), true);
    let (_, full) = golden.answer(csfle::kms::kmip::request::get("1").unwrap().as_bytes());
    server.script(vec![Behavior::CloseAfter(full[..20].to_vec()); 3]);
    let err = get(&kms).await;
    let (_, attempts, source) = kmip_failure(&err);
    assert_eq!(attempts, 3, "{err}");
    assert_eq!(
        source,
        &CallError::ReplyCut {
            received: 20,
            expected: Some(full.len())
        }
    );
    server.take_operations();

    // Replies that arrived are final: one attempt each.
    let mut oversized = vec![0x42, 0x00, 0x7B, 0x01];
    oversized.extend_from_slice(&(1u32 << 20).to_be_bytes());
    let mut past_cap = vec![0x42, 0x00, 0x7B, 0x01];
    past_cap.extend_from_slice(&u32::MAX.to_be_bytes());
    let mut bad_tag = vec![0x42, 0x00, 0x7B, 0x01, 0, 0, 0, 8];
    bad_tag.extend_from_slice(&[0x13, 0x37, 0x00, 0x01, 0, 0, 0, 0]);
    let mut bad_length = full.clone();
    // The ResponseMessage's first child claims more than the message holds.
    bad_length[12..16].copy_from_slice(&0x7FFF_FFF0u32.to_be_bytes());
    let wrong_reply = success(Operation::Get, |w| {
        w.text_string(Tag::UNIQUE_IDENTIFIER, "1");
    });
    let short_secret = {
        let mut store = Store::default();
        store.insert(Object::Secret(vec![3; 95]), true);
        store
            .answer(csfle::kms::kmip::request::get("1").unwrap().as_bytes())
            .1
    };
    for (reply, expect) in [
        (oversized, "too large"),
        (past_cap, "too large"),
        (bad_tag, "invalid KMIP tag"),
        (bad_length, "declares"),
        (wrong_reply, "unable to find KMIP tag: SecretData"),
        (short_secret, "95 bytes"),
        (
            failure(Operation::Get, ITEM_NOT_FOUND, "no such\nobject"),
            "Item Not Found",
        ),
    ] {
        server.script([Behavior::Reply(reply)]);
        let err = get(&kms).await;
        let (operation, attempts, source) = kmip_failure(&err);
        assert_eq!((operation, attempts), (Operation::Get, 1), "{err}");
        assert!(!source.is_transient());
        assert!(err.to_string().contains(expect), "{expect}: {err}");
        // Control characters from the server are not passed on.
        assert!(!err.to_string().contains('\n'), "{err}");
    }
    assert_eq!(server.take_operations().len(), 7);
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = KmipServer::start().await;
    let secret = server.seed(Object::Secret(vec![3; 96]));
    let kms = providers_with(
        &[("kmip", server.endpoint())],
        ProviderOptions::default().with_retry(
            RetryPolicy::default()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(5))
                .with_request_timeout(Duration::from_millis(300)),
        ),
    );
    server.script([Behavior::Silent, Behavior::Silent]);
    let started = std::time::Instant::now();
    let err = kms
        .unwrap_key(&kmip_master_key(&secret, false), &[0; 160])
        .await
        .unwrap_err();
    let (_, attempts, source) = kmip_failure(&err);
    assert_eq!(attempts, 2, "{err}");
    assert!(matches!(source, CallError::TimedOut { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Register answered, Activate silent: Activate is not repeated once sent.
    server.script([Behavior::Kmip, Behavior::Silent]);
    let err = kms
        .wrap_key(&kmip_name("kmip"), None, &[1; 96])
        .await
        .unwrap_err();
    let (operation, attempts, _) = kmip_failure(&err);
    assert_eq!((operation, attempts), (Operation::Activate, 1), "{err}");
}

#[tokio::test]
async fn client_certificates_the_server_does_not_trust_are_refused() {
    for version in [Tls::V12, Tls::V13] {
        let server = KmipServer::start_with(version).await;
        let secret = server.seed(Object::Secret(vec![3; 96]));
        for client in ["other-client.pem", "none"] {
            let mut tls = Document::new();
            let mut entry = doc! {"tlsCAFile": pki().file("ca.pem")};
            if client != "none" {
                entry.insert("tlsCertificateKeyFile", pki().file(client));
            }
            tls.insert("kmip", entry);
            let kms = KmsProviders::from_document_with(
                &doc! {"kmip": {"endpoint": server.endpoint()}},
                &ProviderOptions::default()
                    .with_tls(tls)
                    .with_retry(quick_retry()),
            )
            .unwrap();
            let err = kms
                .unwrap_key(&kmip_master_key(&secret, false), &[0; 160])
                .await
                .unwrap_err();
            let (_, attempts, source) = kmip_failure(&err);
            if version == Tls::V12 {
                // Refused in the handshake: final.
                assert!(matches!(source, CallError::Tls(_)), "{client}: {err}");
                assert_eq!(attempts, 1, "{client}: {err}");
            } else {
                // TLS 1.3 refuses after the client's Finished: the alert, or
                // the reset that follows it, comes on the first read.
                assert!(
                    matches!(
                        source,
                        CallError::Tls(_)
                            | CallError::Connection { .. }
                            | CallError::ReplyCut { .. }
                    ),
                    "{client}: {err}"
                );
            }
            // The server never read a request.
            assert!(server.take_operations().is_empty(), "{client}");
        }
    }
}

#[tokio::test]
async fn the_server_certificate_must_verify() {
    let server = KmipServer::start().await;
    let secret = server.seed(Object::Secret(vec![3; 96]));
    let mut tls = Document::new();
    tls.insert(
        "kmip",
        doc! {"tlsCAFile": pki().file("other-ca.pem"), "tlsCertificateKeyFile": pki().file("client.pem")},
    );
    let kms = KmsProviders::from_document_with(
        &doc! {"kmip": {"endpoint": server.endpoint()}},
        &ProviderOptions::default()
            .with_tls(tls)
            .with_retry(quick_retry()),
    )
    .unwrap();
    let err = kms
        .unwrap_key(&kmip_master_key(&secret, false), &[0; 160])
        .await
        .unwrap_err();
    let (_, attempts, source) = kmip_failure(&err);
    assert_eq!(attempts, 1, "{err}");
    assert!(
        matches!(source, CallError::Tls(m) if m.contains("certificate")),
        "{err}"
    );
    assert!(server.take_operations().is_empty());
}

#[tokio::test]
async fn an_encrypted_client_key_is_used_with_its_password() {
    let server = KmipServer::start().await;
    let secret = server.seed(Object::Secret(vec![3; 96]));
    let wrapped = csfle::kms::LocalMasterKey::new(&[3; 96])
        .unwrap()
        .wrap_key(&[4; 96])
        .unwrap();
    let build = |password: Option<&str>| {
        let mut entry = doc! {
            "tlsCAFile": pki().file("ca.pem"),
            "tlsCertificateKeyFile": pki().file("client-encrypted.pem"),
        };
        if let Some(p) = password {
            entry.insert("tlsCertificateKeyFilePassword", p);
        }
        let mut tls = doc! {"kmip": entry};
        let built = KmsProviders::from_document_with(
            &doc! {"kmip": {"endpoint": server.endpoint()}},
            &ProviderOptions::default()
                .with_tls(tls.clone())
                .with_retry(quick_retry()),
        );
        csfle::kms::wipe_document(&mut tls);
        assert!(tls.is_empty());
        built
    };
    let kms = build(Some(KEY_PASSWORD)).unwrap();
    let unwrapped = kms
        .unwrap_key(&kmip_master_key(&secret, false), &wrapped)
        .await
        .unwrap();
    assert_eq!(&unwrapped[..], &[4; 96]);
    for (password, why) in [
        (Some("not the password"), "does not decrypt"),
        (None, "give tlsCertificateKeyFilePassword"),
    ] {
        let err = build(password).unwrap_err();
        assert!(matches!(err, Error::InvalidOptions { .. }), "{err}");
        assert!(err.to_string().contains(why), "{err}");
        assert!(!err.to_string().contains("not the password"), "{err}");
    }
}

#[test]
fn kmip_options_are_parsed_strictly() {
    let refused = |providers: Document, tls: Document| {
        KmsProviders::from_document_with(&providers, &ProviderOptions::default().with_tls(tls))
            .unwrap_err()
            .to_string()
    };
    let none = Document::new;
    assert!(refused(doc! {"kmip": {}}, none()).contains("missing 'endpoint'"));
    assert!(
        refused(
            doc! {"kmip": {"endpoint": "k.example:5696", "port": 1}},
            none()
        )
        .contains("unexpected field 'port'")
    );
    for bad in ["https://k.example", "k.example/path", "", "k.example:0"] {
        let e = refused(doc! {"kmip": {"endpoint": bad}}, none());
        assert!(e.contains("kmip"), "{bad}: {e}");
    }
    for insecure in [
        "tlsInsecure",
        "tlsAllowInvalidCertificates",
        "tlsAllowInvalidHostnames",
        "tlsDisableCertificateRevocationCheck",
    ] {
        let e = refused(
            doc! {"kmip:x": {"endpoint": "k.example"}},
            doc! {"kmip:x": {insecure: true}},
        );
        assert!(
            e.contains("Insecure TLS options prohibited"),
            "{insecure}: {e}"
        );
    }
    let e = refused(
        doc! {"kmip": {"endpoint": "k.example"}},
        doc! {"kmip": {"tlsCertificateKeyFilePassword": "x"}},
    );
    assert!(e.contains("needs 'tlsCertificateKeyFile'"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let no_certificate = dir.path().join("empty.pem");
    std::fs::write(&no_certificate, "no PEM here\n").unwrap();
    let e = refused(
        doc! {"kmip": {"endpoint": "k.example"}},
        doc! {"kmip": {"tlsCAFile": no_certificate.display().to_string()}},
    );
    assert!(e.contains("tlsCAFile: no certificate"), "{e}");
    // A key that is not the certificate's.
    let mismatched = dir.path().join("mismatched.pem");
    let client = std::fs::read_to_string(pki().file("client.pem")).unwrap();
    let other = std::fs::read_to_string(pki().file("other-client.pem")).unwrap();
    let cert_end = client.find("-----END CERTIFICATE-----").unwrap() + 25;
    let other_key = other.find("-----BEGIN PRIVATE KEY-----").unwrap();
    std::fs::write(
        &mismatched,
        format!("{}\n{}", &client[..cert_end], &other[other_key..]),
    )
    .unwrap();
    let e = refused(
        doc! {"kmip": {"endpoint": "k.example"}},
        doc! {"kmip": {"tlsCertificateKeyFile": mismatched.display().to_string()}},
    );
    assert!(e.contains("does not match the certificate"), "{e}");

    // The masterKey: unknown fields refused, types checked.
    for bad in [
        doc! {"provider": "kmip", "keyid": "1"},
        doc! {"provider": "kmip", "keyId": 1},
        doc! {"provider": "kmip", "delegated": "true"},
        doc! {"provider": "kmip", "endpoint": "https://k.example"},
    ] {
        assert!(MasterKey::from_document(&bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_master_key_without_key_id_is_refused_for_unwrapping() {
    let server = KmipServer::start().await;
    let kms = providers(&server);
    let no_id = MasterKey::from_document(&doc! {"provider": "kmip"}).unwrap();
    let err = kms.unwrap_key(&no_id, &[0; 160]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidMasterKey(_)), "{err}");
    let delegated =
        MasterKey::from_document(&doc! {"provider": "kmip", "keyId": "1", "delegated": true})
            .unwrap();
    // A delegated keyMaterial shorter than its IV is never sent.
    let err = kms.unwrap_key(&delegated, &[0; 15]).await.unwrap_err();
    let (operation, attempts, source) = kmip_failure(&err);
    assert_eq!((operation, attempts), (Operation::Decrypt, 0));
    assert!(matches!(source, CallError::Request(_)), "{err}");
    assert_eq!(server.accepted(), 0);
}

// ---------------------------------------------------------------------------
// Against PyKMIP

#[tokio::test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT"]
async fn pykmip_both_modes_create_use_and_rewrap() {
    let ce = ClientEncryption::new(MemoryKeyVault::new(), pykmip_providers(&["kmip"]));
    for master_key in [None, Some(doc! {"delegated": true})] {
        let delegated = master_key.is_some();
        let id = ce
            .create_data_key(&kmip_name("kmip"), {
                let mut o = DataKeyOptions::default();
                o.master_key = master_key.clone();
                o
            })
            .await
            .unwrap();
        let key = ce.get_key(id).await.unwrap().unwrap();
        let MasterKey::Kmip {
            key_id: Some(key_id),
            ..
        } = &key.master_key
        else {
            panic!("{:?}", key.master_key)
        };
        assert_eq!(
            key.key_material.len(),
            if delegated { 128 } else { 160 },
            "delegated: {delegated}"
        );
        let blob = encrypt_and_decrypt(&ce, id, "pykmip").await;
        // The stored keyId names the object on the server: used as given.
        let again = ce
            .create_data_key(&kmip_name("kmip"), {
                let mut o = DataKeyOptions::default();
                o.master_key = Some(key.master_key.to_document());
                o
            })
            .await
            .unwrap();
        assert_eq!(
            ce.get_key(again).await.unwrap().unwrap().master_key,
            key.master_key
        );
        // Rewrapped under their own master keys, then read by a fresh client.
        ce.rewrap_many_data_key(doc! {}, None).await.unwrap();
        let rewrapped = ce.get_key(id).await.unwrap().unwrap();
        assert_eq!(rewrapped.master_key, key.master_key, "{key_id}");
        let vault = MemoryKeyVault::new();
        vault.insert_key(&rewrapped).await.unwrap();
        let fresh = ClientEncryption::new(vault, pykmip_providers(&["kmip"]));
        assert_eq!(fresh.decrypt(&blob).await.unwrap(), Bson::from("pykmip"));
    }
}

#[tokio::test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT"]
async fn pykmip_named_providers_and_rewrap_local_kmip_local() {
    let ce = ClientEncryption::new(
        MemoryKeyVault::new(),
        pykmip_providers(&["kmip:one", "kmip:two"]),
    );
    let id = ce
        .create_data_key(&local_name(), DataKeyOptions::default())
        .await
        .unwrap();
    let blob = encrypt_and_decrypt(&ce, id, "named").await;
    for (provider, master_key) in [
        ("kmip:one", None),
        ("kmip:two", Some(doc! {"delegated": true})),
        ("local", None),
    ] {
        ce.rewrap_many_data_key(
            doc! {},
            Some({
                let mut o = RewrapOptions::new(kmip_name(provider));
                o.master_key = master_key;
                o
            }),
        )
        .await
        .unwrap();
        let key = ce.get_key(id).await.unwrap().unwrap();
        assert_eq!(key.master_key.provider().to_string(), provider);
        let vault = MemoryKeyVault::new();
        vault.insert_key(&key).await.unwrap();
        let fresh = ClientEncryption::new(vault, pykmip_providers(&["kmip:one", "kmip:two"]));
        assert_eq!(fresh.decrypt(&blob).await.unwrap(), Bson::from("named"));
    }
}

#[tokio::test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT"]
async fn pykmip_encrypted_client_key_and_foreign_certificate() {
    // The CI client certificate with its key encrypted (PKCS#8, PBES2).
    let pem = std::fs::read(service_env("CSFLE_KMIP_CLIENT_CERT")).unwrap();
    let certs: String = CertificateDer::pem_slice_iter(&pem)
        .map(|c| {
            pkcs8::der::Document::try_from(c.unwrap().to_vec())
                .unwrap()
                .to_pem("CERTIFICATE", pkcs8::LineEnding::LF)
                .unwrap()
        })
        .collect();
    let key = PrivateKeyDer::from_pem_slice(&pem).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let encrypted = dir.path().join("client-encrypted.pem");
    std::fs::write(
        &encrypted,
        format!("{certs}{}", encrypted_pem(key.secret_der(), KEY_PASSWORD)),
    )
    .unwrap();
    let kms = pykmip_providers_with(
        &["kmip"],
        &encrypted.display().to_string(),
        doc! {"tlsCertificateKeyFilePassword": KEY_PASSWORD},
    );
    let (master_key, wrapped) = kms
        .wrap_key(&kmip_name("kmip"), None, &[7; 96])
        .await
        .unwrap();
    assert_eq!(
        &kms.unwrap_key(&master_key, &wrapped).await.unwrap()[..],
        &[7; 96]
    );

    // A certificate from another CA: PyKMIP refuses the handshake.
    let foreign = pykmip_providers_with(&["kmip"], &pki().file("other-client.pem"), doc! {});
    let err = foreign.unwrap_key(&master_key, &wrapped).await.unwrap_err();
    let (_, _, source) = kmip_failure(&err);
    assert!(
        matches!(
            source,
            CallError::Tls(_) | CallError::Connect { .. } | CallError::Connection { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT"]
async fn pykmip_spec_corpus_kmip_entries() {
    let spec = spec_dir();
    let dir = spec.join(CSE).join("corpus");
    let vault = MemoryKeyVault::new();
    vault
        .insert_key(
            &KeyDocument::from_document(&read_doc(&dir.join("corpus-key-kmip.json"))).unwrap(),
        )
        .await
        .unwrap();
    let schema = read_doc(&dir.join("corpus-schema.json"));
    let auto = AutoEncrypter::new(
        ClientEncryption::new(vault, pykmip_providers(&["kmip"])),
        &doc! {"db.coll": schema},
        AutoEncryptionOptions::default(),
    )
    .unwrap();
    let corpus = read_doc(&dir.join("corpus.json"));
    let expected = read_doc(&dir.join("corpus-encrypted.json"));
    let mut doc = Document::new();
    for (k, v) in &corpus {
        let keep = match v {
            Bson::Document(e) => e.get_str("kms") == Ok("kmip"),
            _ => true,
        };
        if keep {
            doc.insert(k.clone(), v.clone());
        }
    }
    let cmd = doc! {"insert": "coll", "documents": [doc.clone()], "ordered": true};
    let sent = auto.encrypt_command("db", &cmd).await.unwrap();
    let sent_doc = sent.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    let (mut det, mut rand) = (0, 0);
    for (name, entry) in &doc {
        let Bson::Document(entry) = entry else {
            continue;
        };
        if entry.get_str("method").unwrap() != "auto" {
            continue;
        }
        let got = sent_doc.get_document(name).unwrap().get("value").unwrap();
        if entry.get_str("algo").unwrap() == "det" {
            let want = expected.get_document(name).unwrap().get("value").unwrap();
            assert_eq!(got, want, "{name}: deterministic byte-exact");
            det += 1;
        } else {
            let Bson::Binary(b) = got else {
                panic!("{name}: not encrypted")
            };
            assert_eq!(b.bytes[0], 2, "{name}");
            rand += 1;
        }
    }
    assert_eq!(auto.decrypt_reply(&sent_doc).await.unwrap(), doc);
    println!("corpus KMIP entries: {det} deterministic byte-exact, {rand} random");
    assert_eq!((det, rand), (12, 36));
}

#[tokio::test]
#[ignore = "needs CSFLE_KMIP_ENDPOINT"]
async fn pykmip_spec_kmip_kms_json_default_mode() {
    let spec = spec_dir();
    let test = read_doc(&spec.join(CSE).join("tests/legacy/kmipKMS.json"));
    let vault = MemoryKeyVault::new();
    for k in test.get_array("key_vault_data").unwrap() {
        vault
            .insert_key(&KeyDocument::from_document(k.as_document().unwrap()).unwrap())
            .await
            .unwrap();
    }
    let db = test.get_str("database_name").unwrap();
    let coll = test.get_str("collection_name").unwrap();
    let auto = AutoEncrypter::new(
        ClientEncryption::new(vault, pykmip_providers(&["kmip"])),
        &doc! {format!("{db}.{coll}"): test.get_document("json_schema").unwrap().clone()},
        AutoEncryptionOptions::default(),
    )
    .unwrap();
    let mut ran = 0;
    for t in test.get_array("tests").unwrap() {
        let t = t.as_document().unwrap();
        let description = t.get_str("description").unwrap();
        if description.contains("delegated") {
            // Its AES key "11" is the drivers' unpublished one: delegated
            // mode is covered by the tests above and the libmongocrypt
            // interop.
            println!("skipped: {description} (needs the drivers' KMIP key \"11\")");
            continue;
        }
        let op = t.get_array("operations").unwrap()[0].as_document().unwrap();
        let document = op
            .get_document("arguments")
            .unwrap()
            .get_document("document")
            .unwrap();
        let cmd = doc! {"insert": coll, "documents": [document.clone()], "ordered": true};
        let sent = auto.encrypt_command(db, &cmd).await.unwrap();
        let want = t
            .get_document("outcome")
            .unwrap()
            .get_document("collection")
            .unwrap()
            .get_array("data")
            .unwrap();
        assert_eq!(
            sent.get_array("documents").unwrap(),
            want,
            "{description}: byte-exact"
        );
        let back = auto
            .decrypt_reply(
                sent.get_array("documents").unwrap()[0]
                    .as_document()
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(&back, document);
        ran += 1;
    }
    assert_eq!(ran, 1);
}

// ---------------------------------------------------------------------------
// Delegated mode's opt-in and pins, replies tied to their requests, hosts
// allowed by provider kind

/// A delegated `keyMaterial` (IV ‖ C1 … C7 of a 96-byte key) rewritten as
/// a key vault writer can: IV' ‖ C7 ‖ C7 ‖ C7 ‖ C7 ‖ C7 ‖ C6 ‖ C7 with
/// IV' = D(C7) ⊕ `chosen`. PKCS#5 pads a 96-byte key with a whole block of
/// 0x10, so D(C7) = C6 ⊕ 0x10¹⁶ is known without the key: the server
/// decrypts the result, with valid padding, into 96 bytes whose first 16
/// are `chosen` and the next 64 C6 ⊕ C7 ⊕ 0x10¹⁶.
fn audit_forge_delegated(key_material: &[u8], chosen: [u8; 16]) -> Vec<u8> {
    assert_eq!(key_material.len(), 128);
    let block = |i: usize| -> [u8; 16] { key_material[16 * i..16 * i + 16].try_into().unwrap() };
    let (c6, c7) = (block(6), block(7));
    let mut forged: Vec<u8> = (0..16).map(|i| c6[i] ^ 0x10 ^ chosen[i]).collect();
    for b in [c7, c7, c7, c7, c7, c6, c7] {
        forged.extend_from_slice(&b);
    }
    forged
}

/// A Get reply as a KMIP server writes it, with the Operation, Object Type
/// and Unique Identifier given.
fn audit_secret_data_reply(
    operation: Operation,
    object_type: u32,
    id: &str,
    material: &[u8],
) -> Vec<u8> {
    success(operation, |w| {
        w.enumeration(Tag::OBJECT_TYPE, object_type);
        w.text_string(Tag::UNIQUE_IDENTIFIER, id);
        w.structure(Tag::SECRET_DATA, |w| {
            w.enumeration(Tag::SECRET_DATA_TYPE, 2);
            w.structure(Tag::KEY_BLOCK, |w| {
                w.enumeration(Tag::KEY_FORMAT_TYPE, 2);
                w.structure(Tag::KEY_VALUE, |w| {
                    w.byte_string(Tag::KEY_MATERIAL, material);
                });
            });
        });
    })
}

#[tokio::test]
async fn delegated_mode_is_refused_unless_allowed() {
    let server = KmipServer::start().await;
    let aes = server.seed(Object::Aes([9; 32]));
    let kms = providers_with(
        &[("kmip", server.endpoint())],
        ProviderOptions::default().with_retry(quick_retry()),
    );
    let err = kms
        .wrap_key(
            &kmip_name("kmip"),
            Some(&doc! {"delegated": true}),
            &[2; 96],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::KmipDelegatedNotAllowed { provider } if provider == "kmip"),
        "{err}"
    );
    let text = err.to_string();
    for why in [
        "without authentication",
        "ProviderOptions::allow_kmip_delegated",
        "--kms-allow-kmip-delegated",
    ] {
        assert!(text.contains(why), "{why}: {text}");
    }
    let err = kms
        .unwrap_key(&kmip_master_key(&aes, true), &[0; 128])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::KmipDelegatedNotAllowed { .. }),
        "{err}"
    );
    let ce = ClientEncryption::new(MemoryKeyVault::new(), kms);
    let err = ce
        .create_data_key(
            &kmip_name("kmip"),
            DataKeyOptions::default().with_master_key(doc! {"delegated": true}),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("delegated mode is refused"),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.accepted(), 0);
    // The default mode needs no opt-in.
    ce.create_data_key(&kmip_name("kmip"), DataKeyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        server.take_operations(),
        [Operation::Register, Operation::Activate, Operation::Get]
    );
}

#[tokio::test]
async fn a_rewritten_delegated_key_material_is_refused_by_its_pin() {
    use sha2::Digest;
    let server = KmipServer::start().await;
    let kms = providers(&server);
    let (master_key, key_material) = kms
        .wrap_key(
            &kmip_name("kmip"),
            Some(&doc! {"delegated": true}),
            &[3; 96],
        )
        .await
        .unwrap();
    server.take_operations();

    // Opted in without pins, the attack works: the genuine server decrypts
    // the rewritten keyMaterial into a data key whose first 80 bytes (its
    // MAC key and most of its AES key) the writer chose or knows.
    let chosen = [0xA5; 16];
    let forged = audit_forge_delegated(&key_material, chosen);
    let unwrapped = kms.unwrap_key(&master_key, &forged).await.unwrap();
    assert_eq!(unwrapped.len(), 96);
    assert_eq!(unwrapped[..16], chosen);
    let known: Vec<u8> = (0..16)
        .map(|i| key_material[96 + i] ^ key_material[112 + i] ^ 0x10)
        .collect();
    for block in unwrapped[16..80].chunks(16) {
        assert_eq!(block, &known[..]);
    }
    assert_eq!(server.take_operations(), [Operation::Decrypt]);

    // Pinned by _id and SHA-256: the genuine document unwraps; the
    // rewritten one, or the genuine material under another _id, is refused
    // before any request.
    let genuine = KeyDocument::new(master_key.clone(), key_material.clone(), vec![]).unwrap();
    let digest: [u8; 32] = sha2::Sha256::digest(&key_material).into();
    let pinned = providers_with(
        &[("kmip", server.endpoint())],
        ProviderOptions::default()
            .with_retry(quick_retry())
            .allow_kmip_delegated(true)
            .pin_kmip_delegated_key(genuine.id, digest),
    );
    assert_eq!(
        &pinned.unwrap_key_document(&genuine).await.unwrap()[..],
        &[3; 96]
    );
    assert_eq!(server.take_operations(), [Operation::Decrypt]);
    let mut rewritten = genuine.clone();
    rewritten.key_material = forged.clone();
    let err = pinned.unwrap_key_document(&rewritten).await.unwrap_err();
    assert!(
        matches!(&err, Error::KmipDelegatedKeyNotPinned { id: Some(id), .. } if *id == genuine.id),
        "{err}"
    );
    let err = pinned.unwrap_key(&master_key, &forged).await.unwrap_err();
    assert!(
        matches!(err, Error::KmipDelegatedKeyNotPinned { id: None, .. }),
        "{err}"
    );
    let mut moved = genuine.clone();
    moved.id = csfle::KeyId::from_bytes([5; 16]);
    assert!(matches!(
        pinned.unwrap_key_document(&moved).await,
        Err(Error::KmipDelegatedKeyNotPinned { .. })
    ));
    assert!(server.take_operations().is_empty());

    // Through the key cache: a key vault holding the rewritten document
    // gives no key to encrypt with.
    let vault = MemoryKeyVault::new();
    vault.insert_key(&rewritten).await.unwrap();
    let ce = ClientEncryption::new(vault, pinned);
    let err = ce
        .encrypt(
            &Bson::from("secret"),
            &csfle::KeyRef::Id(genuine.id),
            csfle::Algorithm::Deterministic,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not pinned"), "{err}");
    assert!(server.take_operations().is_empty());
}

#[tokio::test]
async fn replies_that_answer_another_request_are_refused() {
    use csfle::kms::kmip::Error as KmipError;
    let server = KmipServer::start().await;
    let secret = server.seed(Object::Secret(vec![3; 96]));
    let _other = server.seed(Object::Secret(vec![4; 96]));
    let aes = server.seed(Object::Aes([9; 32]));
    let kms = providers(&server);
    let wrapped = csfle::kms::LocalMasterKey::new(&[3; 96])
        .unwrap()
        .wrap_key(&[8; 96])
        .unwrap();
    let master_key = kmip_master_key(&secret, false);
    let get = || {
        let (kms, master_key, wrapped) = (kms.clone(), master_key.clone(), wrapped.clone());
        async move { kms.unwrap_key(&master_key, &wrapped).await }
    };

    // The Get reply the server would give for the other SecretData.
    let mut golden = Store::default();
    golden.insert(Object::Secret(vec![3; 96]), true);
    golden.insert(Object::Secret(vec![4; 96]), true);
    let (_, other_get) = golden.answer(csfle::kms::kmip::request::get("2").unwrap().as_bytes());
    server.script([Behavior::Reply(other_get)]);
    let err = get().await.unwrap_err();
    assert_eq!(
        kmip_failure(&err),
        (Operation::Get, 1, &CallError::UnexpectedIdentifier)
    );
    for (reply, expected) in [
        (
            audit_secret_data_reply(Operation::Decrypt, 7, &secret, &[3; 96]),
            KmipError::WrongOperation {
                expected: Operation::Get,
                actual: Operation::Decrypt.code(),
            },
        ),
        (
            audit_secret_data_reply(Operation::Get, 2, &secret, &[3; 96]),
            KmipError::WrongObjectType {
                expected: 7,
                actual: 2,
            },
        ),
    ] {
        server.script([Behavior::Reply(reply)]);
        let err = get().await.unwrap_err();
        let (operation, attempts, source) = kmip_failure(&err);
        assert_eq!((operation, attempts), (Operation::Get, 1), "{err}");
        assert_eq!(source, &CallError::Reply(expected));
        assert!(!source.is_transient());
    }
    // The same reply, answering the Get it is read for, is accepted.
    server.script([Behavior::Reply(audit_secret_data_reply(
        Operation::Get,
        7,
        &secret,
        &[3; 96],
    ))]);
    assert_eq!(&get().await.unwrap()[..], &[8; 96]);
    server.take_operations();

    // Create: the object made must be a symmetric key.
    server.script([Behavior::Reply(success(Operation::Create, |w| {
        w.enumeration(Tag::OBJECT_TYPE, 7);
        w.text_string(Tag::UNIQUE_IDENTIFIER, "77");
    }))]);
    let err = kms
        .wrap_key(
            &kmip_name("kmip"),
            Some(&doc! {"delegated": true}),
            &[2; 96],
        )
        .await
        .unwrap_err();
    assert_eq!(
        kmip_failure(&err),
        (
            Operation::Create,
            1,
            &CallError::Reply(KmipError::WrongObjectType {
                expected: 2,
                actual: 7
            })
        )
    );

    // Encrypt: 112 bytes of ciphertext for a 96-byte key, nothing else.
    let delegated = doc! {"keyId": aes.as_str(), "delegated": true};
    server.script([Behavior::Reply(success(Operation::Encrypt, |w| {
        w.text_string(Tag::UNIQUE_IDENTIFIER, &aes);
        w.byte_string(Tag::DATA, &[1; 128]);
        w.byte_string(Tag::IV_COUNTER_NONCE, &[2; 16]);
    }))]);
    let err = kms
        .wrap_key(&kmip_name("kmip"), Some(&delegated), &[2; 96])
        .await
        .unwrap_err();
    assert_eq!(
        kmip_failure(&err),
        (
            Operation::Encrypt,
            1,
            &CallError::CiphertextLength {
                expected: 112,
                actual: 128
            }
        )
    );

    // The wrap is read back: a Decrypt that does not give the data key
    // back, or names another key, fails the wrap; nothing is returned.
    for (decrypt_reply, expected) in [
        (
            success(Operation::Decrypt, |w| {
                w.text_string(Tag::UNIQUE_IDENTIFIER, &aes);
                w.byte_string(Tag::DATA, &[7; 96]);
            }),
            CallError::WrapMismatch,
        ),
        (
            success(Operation::Decrypt, |w| {
                w.text_string(Tag::UNIQUE_IDENTIFIER, "999");
                w.byte_string(Tag::DATA, &[2; 96]);
            }),
            CallError::UnexpectedIdentifier,
        ),
    ] {
        server.take_operations();
        server.script([Behavior::Kmip, Behavior::Reply(decrypt_reply)]);
        let err = kms
            .wrap_key(&kmip_name("kmip"), Some(&delegated), &[2; 96])
            .await
            .unwrap_err();
        assert_eq!(
            kmip_failure(&err),
            (Operation::Decrypt, 1, &expected),
            "{err}"
        );
        assert_eq!(
            server.take_operations(),
            [Operation::Encrypt, Operation::Decrypt]
        );
    }
}

#[tokio::test]
async fn a_host_allowed_for_another_provider_kind_is_not_a_kmip_server() {
    use csfle::kms::ProviderKind;
    let configured = KmipServer::start().await;
    let elsewhere = KmipServer::start().await;
    let secret = elsewhere.seed(Object::Secret(vec![6; 96]));
    let hostile = MasterKey::from_document(&doc! {
        "provider": "kmip", "keyId": secret.as_str(), "endpoint": elsewhere.endpoint(),
    })
    .unwrap();
    let wrapped = csfle::kms::LocalMasterKey::new(&[6; 96])
        .unwrap()
        .wrap_key(&[8; 96])
        .unwrap();
    // Allowed without a kind (the cloud providers), or for AWS alone.
    for options in [
        ProviderOptions::default()
            .allow_host(&elsewhere.endpoint())
            .unwrap(),
        ProviderOptions::default()
            .allow_host_for(ProviderKind::Aws, &elsewhere.endpoint())
            .unwrap(),
    ] {
        let kms = providers_with(
            &[("kmip", configured.endpoint())],
            options.with_retry(quick_retry()),
        );
        let err = kms.unwrap_key(&hostile, &wrapped).await.unwrap_err();
        assert!(matches!(&err, Error::HostNotAllowed { .. }), "{err}");
        assert!(err.to_string().contains("KIND:HOST"), "{err}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!((configured.accepted(), elsewhere.accepted()), (0, 0));

    // Allowed for KMIP: used; and not thereby an AWS endpoint.
    let kms = providers_with(
        &[("kmip", configured.endpoint())],
        ProviderOptions::default()
            .allow_host_for(ProviderKind::Kmip, &elsewhere.endpoint())
            .unwrap()
            .with_retry(quick_retry()),
    );
    assert_eq!(
        &kms.unwrap_key(&hostile, &wrapped).await.unwrap()[..],
        &[8; 96]
    );
    assert_eq!(elsewhere.accepted(), 1);
    let aws = MasterKey::from_document(&doc! {
        "provider": "aws", "region": "us-east-1",
        "key": "arn:aws:kms:us-east-1:111122223333:key/x", "endpoint": elsewhere.endpoint(),
    })
    .unwrap();
    assert!(matches!(
        kms.check_key_document_endpoint(&aws),
        Err(Error::HostNotAllowed { .. })
    ));
}
