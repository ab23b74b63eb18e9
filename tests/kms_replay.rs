//! The KMS provider layer with a provider that is not local: libmongocrypt's
//! recorded AWS KMS replies (vendored), replayed (see `common::RecordedKms`).
//! Makes the AWS-keyed spec data usable offline through the real
//! ClientEncryption path; the tests over the specification's data are
//! `#[ignore = "needs spec data: …"]`.

mod common;

use bson::{Bson, doc};
use common::*;
use csfle::keyvault::{KeyDocument, KeyVault, MemoryKeyVault};
use csfle::kms::{KmsProviders, ProviderName};
use csfle::{Algorithm, ClientEncryption, DataKeyOptions, KeyRef};

fn providers() -> KmsProviders {
    spec_kms()
}

#[tokio::test]
#[ignore = "needs spec data: the specification's corpus (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
async fn aws_corpus_through_client_encryption() {
    let spec = spec_dir();
    let dir = spec.join(CSE).join("corpus");
    let vault = MemoryKeyVault::new();
    for k in ["local", "aws"] {
        let kd = KeyDocument::from_document(&read_doc(&dir.join(format!("corpus-key-{k}.json"))))
            .unwrap();
        vault.insert_key(&kd).await.unwrap();
    }
    let ce = ClientEncryption::new(vault, providers());
    let plain = read_doc(&dir.join("corpus.json"));
    let expected = read_doc(&dir.join("corpus-encrypted.json"));
    let aws_id = csfle::KeyId::from_bytes(b64("AWSAAAAAAAAAAAAAAAAAAA==").try_into().unwrap());
    let (mut det, mut rand) = (0, 0);
    for (name, entry) in &plain {
        let Bson::Document(entry) = entry else {
            continue;
        };
        if entry.get_str("kms").unwrap() != "aws" || !entry.get_bool("allowed").unwrap() {
            continue;
        }
        let key = match entry.get_str("identifier").unwrap() {
            "id" => KeyRef::Id(aws_id),
            _ => KeyRef::AltName("aws".into()),
        };
        let value = entry.get("value").unwrap();
        let Some(Bson::Binary(want)) = expected.get_document(name).unwrap().get("value").cloned()
        else {
            panic!()
        };
        assert_eq!(&ce.decrypt(&want).await.unwrap(), value, "{name}");
        if entry.get_str("algo").unwrap() == "det" {
            let ours = ce
                .encrypt(value, &key, Algorithm::Deterministic)
                .await
                .unwrap();
            assert_eq!(ours.bytes, want.bytes, "{name}");
            det += 1;
        } else {
            rand += 1;
        }
    }
    assert_eq!((det, rand), (36, 72));
    // The AWS key was unwrapped once, through the provider layer.
    assert_eq!(ce.cache_stats().unwraps, 1);
    println!(
        "AWS corpus via replayed KMS: {det} deterministic byte-exact, {rand} random decrypted"
    );
}

#[tokio::test]
#[ignore = "needs spec data: the specification's legacy tests (CSFLE_SPEC_DIR, default ../shared/spec-tests)"]
async fn legacy_aws_key_documents_unwrap_through_the_replay() {
    let spec = spec_dir();
    let kms = providers();
    let mut n = 0;
    for entry in std::fs::read_dir(spec.join(CSE).join("tests/legacy")).unwrap() {
        let test = read_doc(&entry.unwrap().path());
        for k in test.get_array("key_vault_data").into_iter().flatten() {
            let kd = KeyDocument::from_document(k.as_document().unwrap()).unwrap();
            if kd.master_key.provider().to_string() == "aws" {
                let dek = kms
                    .unwrap_key(&kd.master_key, &kd.key_material)
                    .await
                    .unwrap();
                assert_eq!(dek.len(), 96);
                n += 1;
            }
        }
    }
    println!("{n} legacy AWS key documents unwrapped");
    assert!(n >= 20, "{n}");
}

#[tokio::test]
async fn replay_refuses_other_requests_and_errors_carry_no_secrets() {
    let kms = providers();
    let mut kd =
        KeyDocument::from_document(&read_doc(&lmc_dir().join("example/key-document.json")))
            .unwrap();
    kd.key_material[40] ^= 1;
    let err = kms
        .unwrap_key(&kd.master_key, &kd.key_material)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no recorded reply"), "{msg}");
    let dek = aws_example_dek();
    assert!(!msg.contains(&b64e(&dek)) && !msg.contains(LOCAL_MASTERKEY_B64));

    // masterKey options are validated per provider before any KMS call.
    let ce = ClientEncryption::new(MemoryKeyVault::new(), kms);
    let bad = ce
        .create_data_key(
            &ProviderName::parse("local").unwrap(),
            DataKeyOptions::default().with_master_key(doc! {"region": "us-east-1"}),
        )
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("unrecognized field 'region'"),
        "{bad}"
    );
    let missing = ce
        .create_data_key(
            &ProviderName::parse("aws").unwrap(),
            DataKeyOptions::default().with_master_key(doc! {"region": "us-east-1"}),
        )
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("missing 'key'"), "{missing}");
    let unconfigured = ce
        .create_data_key(
            &ProviderName::parse("local:other").unwrap(),
            DataKeyOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        unconfigured.to_string().contains("not configured"),
        "{unconfigured}"
    );
    // A remote provider's wrap failure surfaces as a typed KMS error.
    let wrap = ce
        .create_data_key(
            &ProviderName::parse("aws").unwrap(),
            DataKeyOptions::default().with_master_key(doc! {"region": "us-east-1", "key": "arn:x"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(wrap, csfle::Error::Kms(csfle::kms::Error::Remote { .. })),
        "{wrap:?}"
    );
}
