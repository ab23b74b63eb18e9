//! The GCP Cloud KMS provider against the loopback emulator
//! (`tests/common/kms_emulators.rs`): service-account JWTs (the emulator
//! verifies signature, issuer, audience, scope and expiry), a given access
//! token, the metadata server on demand, custom endpoints, wrong
//! credentials and failpoints.

mod common;
#[path = "common/kms_emulators.rs"]
mod kms_emulators;

use bson::{Document, doc};
use csfle::kms::{KmsProviders, ProviderOptions, RetryPolicy};
use csfle::{Algorithm, ClientEncryption};
use kms_emulators::{Failpoint, Gcp, Server, Transport, gcp_service_account, pki, serve};
use std::sync::Arc;
use std::time::Duration;

async fn setup() -> (Arc<Gcp>, Server) {
    let gcp = Gcp::new();
    let server = serve(gcp.clone(), Transport::Https).await;
    (gcp, server)
}

fn service_account(server: &Server) -> Document {
    let (email, key) = gcp_service_account();
    doc! {"email": email, "privateKey": key, "endpoint": server.host()}
}

fn master_key(server: &Server, key_version: Option<&str>) -> Document {
    let mut mk = doc! {
        "projectId": "csfle-test", "location": "global", "keyRing": "ring", "keyName": "key",
        "endpoint": server.host(),
    };
    if let Some(v) = key_version {
        mk.insert("keyVersion", v);
    }
    mk
}

/// Options for a test against the emulator `server`: its host is allowed in
/// key documents (it is not Google's), with quick retries.
fn options(server: &Server, metadata: Option<&Server>) -> ProviderOptions {
    let mut options = ProviderOptions::default()
        .with_tls(doc! {"gcp": {"tlsCAFile": pki().ca_file()}})
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(20))
                .with_request_timeout(Duration::from_millis(1500)),
        );
    if let Some(m) = metadata {
        options = options.with_gcp_metadata_endpoint(m.url.clone());
    }
    options.allow_host(&server.host()).unwrap()
}

async fn round_trip(enc: &ClientEncryption, master_key: Document) -> Result<(), csfle::Error> {
    common::kms_round_trip(
        enc,
        "gcp",
        master_key,
        bson::Bson::Int64(42),
        Algorithm::Random,
    )
    .await
}

#[tokio::test]
async fn service_account_jwt_and_token_cache() {
    let (_, server) = setup().await;
    let enc = common::memory_client(
        doc! {"gcp": service_account(&server)},
        &options(&server, None),
    );
    round_trip(&enc, master_key(&server, None)).await.unwrap();
    round_trip(&enc, master_key(&server, Some("1")))
        .await
        .unwrap();
    assert_eq!(server.count(":encrypt"), 2);
    assert_eq!(server.count("/cryptoKeyVersions/1:encrypt"), 1);
    assert_eq!(server.count(":decrypt"), 4);
    // The provider (shared by both clients) signed one JWT for one token.
    assert_eq!(server.count("/token"), 1);
}

/// Prose test 17 (on-demand GCP credentials) against the metadata-server
/// emulator, and a given access token.
#[tokio::test]
async fn access_token_and_metadata_server() {
    let (gcp, server) = setup().await;
    let enc = common::memory_client(
        doc! {"gcp": {"accessToken": gcp.issue_token()}},
        &options(&server, None),
    );
    round_trip(&enc, master_key(&server, None)).await.unwrap();
    assert_eq!(server.count("/token"), 0);

    let metadata = serve(gcp.clone(), Transport::Http).await;
    let enc = common::memory_client(doc! {"gcp": {}}, &options(&server, Some(&metadata)));
    round_trip(&enc, master_key(&server, None)).await.unwrap();
    assert_eq!(
        metadata.count("/computeMetadata/v1/instance/service-accounts/default/token"),
        1
    );
}

#[tokio::test]
async fn bad_credentials_are_refused_by_the_token_endpoint() {
    let (_, server) = setup().await;
    // Another issuer: the JWT's `iss` does not match the service account.
    let mut sa = service_account(&server);
    sa.insert("email", "someone-else@example.iam.gserviceaccount.com");
    let enc = common::memory_client(doc! {"gcp": sa}, &options(&server, None));
    let e = round_trip(&enc, master_key(&server, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'gcp'") && e.contains("HTTP 400") && e.contains("invalid_grant"),
        "{e}"
    );
    assert!(e.contains("/token"), "{e}");
    // A private key that is not one.
    let mut sa = service_account(&server);
    sa.insert("privateKey", "bm90IGEga2V5");
    let e = KmsProviders::from_document_with(&doc! {"gcp": sa}, &options(&server, None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'privateKey' is not an RSA PKCS#8 private key"),
        "{e}"
    );
    // A forged access token.
    let enc = common::memory_client(
        doc! {"gcp": {"accessToken": "forged"}},
        &options(&server, None),
    );
    let e = round_trip(&enc, master_key(&server, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HTTP 401") && e.contains("UNAUTHENTICATED"),
        "{e}"
    );
    assert!(!e.contains("forged"), "{e}");
}

#[tokio::test]
async fn failpoints() {
    let (_, server) = setup().await;
    let enc = common::memory_client(
        doc! {"gcp": service_account(&server)},
        &options(&server, None),
    );
    for (path, fp, times) in [
        (":encrypt", Failpoint::Drop, 2),
        (":decrypt", Failpoint::Status(500), 1),
        ("/token", Failpoint::Status(429), 1),
        (":encrypt", Failpoint::Slow(Duration::from_secs(3)), 1),
    ] {
        let enc = common::memory_client(
            doc! {"gcp": service_account(&server)},
            &options(&server, None),
        );
        server.fail(path, fp.clone(), times);
        round_trip(&enc, master_key(&server, None))
            .await
            .unwrap_or_else(|e| panic!("{fp:?} on {path}: {e}"));
    }
    server.fail(":encrypt", Failpoint::Status(503), 3);
    let e = round_trip(&enc, master_key(&server, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HTTP 503") && e.contains("gave up after 3 attempts"),
        "{e}"
    );
    server.fail(":encrypt", Failpoint::MalformedJson, 1);
    let e = round_trip(&enc, master_key(&server, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("malformed JSON"), "{e}");
}
