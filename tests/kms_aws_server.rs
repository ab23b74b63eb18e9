//! The AWS KMS provider (aws-sdk-kms) against moto on loopback, with
//! signature checking on (`.ci/run` starts it with
//! `INITIAL_NO_AUTH_ACTION_COUNT` and creates an IAM user first):
//! `CSFLE_MOTO_URL` (https://127.0.0.1:PORT), `CSFLE_MOTO_CA_FILE` (the
//! per-run CA that signed moto's certificate), `CSFLE_MOTO_ACCESS_KEY_ID`,
//! `CSFLE_MOTO_SECRET_ACCESS_KEY`.
//! Given credentials, wrong credentials (moto answers in XML), custom
//! endpoints, an unreachable endpoint, and the masterKey checks (on-demand
//! credentials from the environment, through the `csfle` command line:
//! `csfle-cli/tests/cli_kms_aws_server.rs`).
//! What moto does not enforce — `Decrypt` naming the key document's key,
//! and the reply's `KeyId` naming it too — against a loopback test double
//! (`tests/common/kms_emulators.rs`), which runs without moto.

mod common;
#[path = "common/kms_emulators.rs"]
mod kms_emulators;
#[path = "common/moto.rs"]
mod moto;

use base64::Engine;
use bson::{Document, doc};
use common::*;
use csfle::keyvault::MemoryKeyVault;
use csfle::kms::{KmsProviders, MasterKey, ProviderName, ProviderOptions};
use csfle::{Algorithm, ClientEncryption, DataKeyOptions};
use kms_emulators::{AwsDouble, Server, Transport, one_attempt_options, serve};
use moto::{Moto, moto};
use std::sync::Arc;

async fn round_trip(
    m: &Moto,
    kms: Document,
    provider: &str,
    master_key: Document,
) -> Result<(), csfle::Error> {
    let enc = ClientEncryption::new(
        MemoryKeyVault::new(),
        KmsProviders::from_document_with(&kms, &m.options_for(&kms)).map_err(csfle::Error::from)?,
    );
    kms_round_trip(
        &enc,
        provider,
        master_key,
        "457-55-5462".into(),
        Algorithm::Deterministic,
    )
    .await
}

#[tokio::test]
#[ignore = "needs CSFLE_MOTO_URL"]
async fn given_credentials_and_named_providers() {
    let m = moto();
    let arn = m.create_key().await;
    round_trip(&m, doc! {"aws": m.credentials()}, "aws", m.master_key(&arn))
        .await
        .unwrap();
    // A named provider, and the key named by its alias-free key id.
    let key_id = arn.rsplit('/').next().unwrap().to_owned();
    round_trip(
        &m,
        doc! {"aws:prod": m.credentials()},
        "aws:prod",
        m.master_key(&key_id),
    )
    .await
    .unwrap();
}

#[tokio::test]
#[ignore = "needs CSFLE_MOTO_URL"]
async fn wrong_credentials_are_refused_by_moto() {
    let m = moto();
    let arn = m.create_key().await;
    let bad = doc! {"aws": {"accessKeyId": &m.key_id, "secretAccessKey": "wrong-s3cr3t"}};
    let e = round_trip(&m, bad, "aws", m.master_key(&arn))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("'aws'") && e.contains("HTTP 403"), "{e}");
    assert!(
        e.contains("SignatureDoesNotMatch"),
        "moto's XML error body is reported: {e}"
    );
    assert!(e.contains(&m.url), "names the endpoint: {e}");
    assert!(!e.contains("wrong-s3cr3t"), "{e}");
    let unknown = doc! {"aws": {"accessKeyId": "AKIANOTAUSER", "secretAccessKey": "x"}};
    let e = round_trip(&m, unknown, "aws", m.master_key(&arn))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 403"), "{e}");
    // A key that does not exist.
    let e = round_trip(
        &m,
        doc! {"aws": m.credentials()},
        "aws",
        m.master_key("arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("NotFoundException"), "{e}");
}

/// Prose test 7 (custom endpoint), the failing half: a custom endpoint
/// nobody listens on (the working half is every test here: moto is one).
#[tokio::test]
#[ignore = "needs CSFLE_MOTO_URL"]
async fn unreachable_endpoint_is_retried_then_reported() {
    let m = moto();
    let mk = doc! {"region": "us-east-1", "key": "arn:aws:kms:us-east-1:123456789012:key/x", "endpoint": "127.0.0.1:1"};
    let e = round_trip(&m, doc! {"aws": m.credentials()}, "aws", mk)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("connection failed") && e.contains("2 attempts") && e.contains("127.0.0.1:1"),
        "{e}"
    );
}

#[test]
fn option_and_master_key_shapes() {
    for bad in [
        doc! {"aws": {"accessKeyId": "a"}},
        doc! {"aws": {"accessKeyId": "a", "secretAccessKey": "b", "region": "x"}},
        doc! {"aws": {"sessionToken": "t"}},
    ] {
        let e = KmsProviders::from_document(&bad).unwrap_err().to_string();
        assert!(e.contains("invalid options for KMS provider 'aws'"), "{e}");
    }
    let tls_client_cert =
        ProviderOptions::default().with_tls(doc! {"aws": {"tlsCertificateKeyFile": file!()}});
    let e = KmsProviders::from_document_with(&doc! {"aws": {}}, &tls_client_cert).unwrap_err();
    assert!(e.to_string().contains("not supported for AWS"), "{e}");
}

/// Prose test 26 (custom AWS credentials): `"aws": {}` with the
/// application's credential provider uses it; combining one with
/// credentials in kmsProviders is refused.
#[tokio::test]
#[ignore = "needs CSFLE_MOTO_URL"]
async fn custom_credential_provider() {
    let m = moto();
    let arn = m.create_key().await;
    let with = |key_id: &str, secret: &str| {
        m.options()
            .with_aws_credentials(aws_sdk_kms::config::SharedCredentialsProvider::new(
                aws_sdk_kms::config::Credentials::new(key_id, secret, None, None, "application"),
            ))
    };
    let enc = ClientEncryption::new(
        MemoryKeyVault::new(),
        KmsProviders::from_document_with(&doc! {"aws": {}}, &with(&m.key_id, &m.secret)).unwrap(),
    );
    enc.create_data_key(
        &ProviderName::parse("aws").unwrap(),
        DataKeyOptions::default().with_master_key(m.master_key(&arn)),
    )
    .await
    .unwrap();
    let enc = ClientEncryption::new(
        MemoryKeyVault::new(),
        KmsProviders::from_document_with(&doc! {"aws": {}}, &with(&m.key_id, "wrong")).unwrap(),
    );
    let e = enc
        .create_data_key(
            &ProviderName::parse("aws").unwrap(),
            DataKeyOptions::default().with_master_key(m.master_key(&arn)),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HTTP 403"),
        "the custom provider's credentials were used: {e}"
    );
    let e = KmsProviders::from_document_with(&doc! {"aws": m.credentials()}, &with("a", "b"))
        .unwrap_err();
    assert!(e.to_string().contains("cannot be combined"), "{e}");
}

const DOUBLE_SECRET: &str = "double-secret-access-key-must-stay-home";

/// The AWS test double on loopback HTTPS, and providers that trust it.
async fn aws_double() -> (Arc<AwsDouble>, Server, KmsProviders) {
    let aws = AwsDouble::new(vec![5; 96]);
    let server = serve(aws.clone(), Transport::Https).await;
    let options = one_attempt_options("aws", &server);
    let kms = KmsProviders::from_document_with(
        &doc! {"aws": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": DOUBLE_SECRET}},
        &options,
    )
    .unwrap();
    (aws, server, kms)
}

const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn double_master_key(server: &Server, key: &str) -> MasterKey {
    MasterKey::from_document(&doc! {
        "provider": "aws", "region": "us-east-1", "key": key, "endpoint": server.host(),
    })
    .unwrap()
}

/// `Decrypt` carries the key document's `masterKey.key` as its `KeyId`
/// (checked in the request body), and a reply whose `KeyId` does not name
/// that key — another key, another account (a key a hostile vault wrapped
/// under its own KMS key), another region, no `KeyId` — is refused; an
/// alias or key id accepts the key ARN it resolves to.
#[tokio::test]
async fn decrypt_names_the_key_and_the_reply_must_name_it_too() {
    let (aws, server, kms) = aws_double().await;
    let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
    let alias_arn = "arn:aws:kms:us-east-1:111122223333:alias/app";
    let attackers = "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let other_key = "arn:aws:kms:us-east-1:111122223333:key/0000abcd-12ab-34cd-56ef-1234567890ab";
    let other_region =
        "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let cases: &[(&str, Option<&str>, bool)] = &[
        (KEY_ARN, Some(KEY_ARN), true),
        (KEY_ARN, Some(attackers), false),
        (KEY_ARN, Some(other_key), false),
        (KEY_ARN, Some(other_region), false),
        (KEY_ARN, Some("1234abcd-12ab-34cd-56ef-1234567890ab"), false),
        (KEY_ARN, Some("alias/app"), false),
        (KEY_ARN, None, false),
        (alias_arn, Some(KEY_ARN), true),
        (alias_arn, Some(attackers), false),
        (alias_arn, Some(other_region), false),
        ("alias/app", Some(KEY_ARN), true),
        ("alias/app", Some(other_region), false),
        (id, Some(KEY_ARN), true),
        (id, Some(other_key), false),
        (id, None, false),
    ];
    let blob = b"the key document's keyMaterial".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD;
    for (i, (stored, reply, accepted)) in cases.iter().enumerate() {
        aws.reply_key_id(*reply);
        let result = kms
            .unwrap_key(&double_master_key(&server, stored), &blob)
            .await;
        let requests = aws.requests();
        assert_eq!(requests.len(), i + 1, "one request per case");
        let sent = &requests[i];
        assert_eq!(sent.target, "TrentService.Decrypt");
        assert_eq!(sent.body["KeyId"].as_str(), Some(*stored), "{stored}");
        assert_eq!(
            sent.body["CiphertextBlob"].as_str(),
            Some(b64.encode(&blob).as_str())
        );
        assert!(
            sent.body.get("EncryptionContext").is_none(),
            "{}",
            sent.body
        );
        match result {
            Ok(plaintext) => {
                assert!(*accepted, "stored {stored}, reply {reply:?} was accepted");
                assert_eq!(&plaintext[..], &aws.plaintext[..]);
            }
            Err(e) => {
                assert!(!*accepted, "stored {stored}, reply {reply:?}: {e}");
                let e = e.to_string();
                assert!(e.contains("Decrypt reply"), "{e}");
                assert!(!e.contains(DOUBLE_SECRET), "{e}");
            }
        }
    }
}

/// KMS refuses a `KeyId` that did not wrap the blob (an alias moved to
/// another key, or a substituted blob): the error says what to store.
#[tokio::test]
async fn incorrect_key_is_explained() {
    let (aws, server, kms) = aws_double().await;
    aws.fail_with(Some("IncorrectKeyException"));
    let e = kms
        .unwrap_key(&double_master_key(&server, "alias/app"), b"blob")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HTTP 400")
            && e.contains("IncorrectKeyException")
            && e.contains("store the ARN"),
        "{e}"
    );
    assert_eq!(aws.requests()[0].body["KeyId"].as_str(), Some("alias/app"));
}
