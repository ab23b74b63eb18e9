//! The Azure Key Vault provider against the loopback emulator
//! (`tests/common/kms_emulators.rs`): client credentials, a given access
//! token, IMDS on demand, named providers, wrong credentials, every
//! failpoint, and TLS (custom CA, client certificate, expired and
//! wrong-host certificates). The command line with Azure:
//! `csfle-cli/tests/cli_kms_azure.rs`.

mod common;
#[path = "common/kms_emulators.rs"]
mod kms_emulators;

use bson::{Document, doc};
use csfle::kms::{KmsProviders, ProviderOptions, RetryPolicy};
use csfle::{Algorithm, ClientEncryption};
use kms_emulators::{Azure, Failpoint, Server, Transport, pki, serve};
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    azure: Arc<Azure>,
    server: Server,
}

async fn setup(transport: Transport) -> Setup {
    let azure = Azure::new();
    let server = serve(azure.clone(), transport).await;
    Setup { azure, server }
}

impl Setup {
    fn credentials(&self) -> Document {
        doc! {
            "tenantId": &self.azure.tenant_id,
            "clientId": &self.azure.client_id,
            "clientSecret": &self.azure.client_secret,
            "identityPlatformEndpoint": self.server.host(),
        }
    }

    fn master_key(&self) -> Document {
        doc! {"keyVaultEndpoint": self.server.host(), "keyName": "key-name-csfle"}
    }
}

/// Options for a test against the emulator of `s`: its host is allowed in
/// key documents (it is not a public Azure host), with quick retries.
fn options(s: &Setup, provider: &str, tls: Document) -> ProviderOptions {
    let options = ProviderOptions::default()
        .with_tls(doc! {provider: tls})
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(20))
                .with_request_timeout(Duration::from_millis(1500)),
        );
    options.allow_host(&s.server.host()).unwrap()
}

fn ca() -> Document {
    doc! {"tlsCAFile": pki().ca_file()}
}

async fn round_trip(
    enc: &ClientEncryption,
    provider: &str,
    master_key: Document,
) -> Result<(), csfle::Error> {
    common::kms_round_trip(
        enc,
        provider,
        master_key,
        "457-55-5462".into(),
        Algorithm::Deterministic,
    )
    .await
}

#[tokio::test]
async fn client_credentials_wrap_unwrap_and_token_cache() {
    let s = setup(Transport::Https).await;
    let enc = common::memory_client(doc! {"azure": s.credentials()}, &options(&s, "azure", ca()));
    round_trip(&enc, "azure", s.master_key()).await.unwrap();
    round_trip(&enc, "azure", s.master_key()).await.unwrap();
    // Two keys wrapped, each unwrapped twice (to encrypt, then by a second
    // client); the provider (shared by both clients) asked for one token.
    assert_eq!(s.server.count("/wrapkey"), 2);
    assert_eq!(s.server.count("/unwrapkey"), 4);
    assert_eq!(s.server.count("/oauth2/v2.0/token"), 1);
}

#[tokio::test]
async fn named_providers_and_access_token() {
    let s = setup(Transport::Https).await;
    let token = s.azure.issue_token();
    let kms = doc! {
        "azure:prod": s.credentials(),
        "azure:ci": {"accessToken": token},
    };
    let opts =
        options(&s, "azure:prod", ca()).with_tls(doc! {"azure:prod": ca(), "azure:ci": ca()});
    let enc = common::memory_client(kms, &opts);
    round_trip(&enc, "azure:prod", s.master_key())
        .await
        .unwrap();
    let before = s.server.count("/oauth2/");
    round_trip(&enc, "azure:ci", s.master_key()).await.unwrap();
    // A given access token needs no token request.
    assert_eq!(s.server.count("/oauth2/"), before);
}

#[tokio::test]
async fn wrong_credentials_fail_without_leaking_secrets() {
    let s = setup(Transport::Https).await;
    let mut creds = s.credentials();
    creds.insert("clientSecret", "not-the-secret-s3cr3t");
    let enc = common::memory_client(doc! {"azure": creds}, &options(&s, "azure", ca()));
    let e = round_trip(&enc, "azure", s.master_key())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'azure'") && e.contains("HTTP 401") && e.contains("invalid_client"),
        "{e}"
    );
    assert!(e.contains(&s.server.host()), "names the endpoint: {e}");
    assert!(!e.contains("s3cr3t"), "{e}");
    // A token it did not issue.
    let enc = common::memory_client(
        doc! {"azure": {"accessToken": "forged"}},
        &options(&s, "azure", ca()),
    );
    let e = round_trip(&enc, "azure", s.master_key())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTP 401") && e.contains("Unauthorized"), "{e}");
    assert!(!e.contains("forged"), "{e}");
    // An unknown key.
    let enc = common::memory_client(doc! {"azure": s.credentials()}, &options(&s, "azure", ca()));
    let e = round_trip(
        &enc,
        "azure",
        doc! {"keyVaultEndpoint": s.server.host(), "keyName": "nope"},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("HTTP 404") && e.contains("KeyNotFound"), "{e}");
}

/// Prose test 18 (Azure IMDS credentials), against the IMDS emulator.
#[tokio::test]
async fn imds_on_demand_credentials() {
    let s = setup(Transport::Https).await;
    let imds = serve(s.azure.clone(), Transport::Http).await;
    let opts = options(&s, "azure", ca()).with_azure_imds_endpoint(imds.url.clone());
    let enc = common::memory_client(doc! {"azure": {}}, &opts);
    round_trip(&enc, "azure", s.master_key()).await.unwrap();
    assert_eq!(imds.count("/metadata/identity/oauth2/token"), 1);
    // Prose test 18's failure cases: each is an error naming IMDS, with
    // what went wrong (a fresh client each time: no cached token).
    let cases: [(Failpoint, usize, &str); 5] = [
        (
            Failpoint::Json(serde_json::json!({})),
            1,
            "without access_token",
        ),
        (Failpoint::MalformedJson, 1, "malformed JSON"),
        (Failpoint::Status(404), 1, "HTTP 404"),
        (Failpoint::Status(500), 3, "HTTP 500"),
        (Failpoint::Slow(Duration::from_secs(3)), 3, "timed out"),
    ];
    for (fp, times, want) in cases {
        imds.fail("/metadata/", fp.clone(), times);
        let enc = common::memory_client(doc! {"azure": {}}, &opts);
        let e = round_trip(&enc, "azure", s.master_key())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/metadata/identity/oauth2/token") && e.contains(want),
            "{fp:?}: {e}"
        );
    }
}

/// Prose test 24 (KMS retry): network and HTTP failures are retried; and
/// beyond the bound, each fault is reported as what it was.
#[tokio::test]
async fn failpoints_are_retried_within_bounds() {
    let s = setup(Transport::Https).await;
    let opts = options(&s, "azure", ca());
    let enc = common::memory_client(doc! {"azure": s.credentials()}, &opts);
    let mk = || s.master_key();

    // Dropped connection, 429 and 500 are retried: each succeeds on a later attempt.
    for (fp, times) in [
        (Failpoint::Drop, 1),
        (Failpoint::Status(429), 2),
        (Failpoint::Status(503), 1),
    ] {
        let before = s.server.count("/wrapkey");
        s.server.fail("/wrapkey", fp.clone(), times);
        round_trip(&enc, "azure", mk())
            .await
            .unwrap_or_else(|e| panic!("{fp:?}: {e}"));
        assert_eq!(s.server.count("/wrapkey"), before + times + 1, "{fp:?}");
    }
    // A slow reply times out and is retried.
    s.server
        .fail("/unwrapkey", Failpoint::Slow(Duration::from_secs(3)), 1);
    round_trip(&enc, "azure", mk()).await.unwrap();

    // Beyond the bound, the error says what happened.
    s.server.fail("/wrapkey", Failpoint::Status(500), 3);
    let e = round_trip(&enc, "azure", mk())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HTTP 500") && e.contains("gave up after 3 attempts"),
        "{e}"
    );
    s.server.fail("/wrapkey", Failpoint::Drop, 3);
    let e = round_trip(&enc, "azure", mk())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("connection failed") && e.contains("3 attempts"),
        "{e}"
    );
    s.server
        .fail("/wrapkey", Failpoint::Slow(Duration::from_secs(3)), 3);
    let e = round_trip(&enc, "azure", mk())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("timed out"), "{e}");
    // Malformed JSON is not retried.
    let before = s.server.count("/wrapkey");
    s.server.fail("/wrapkey", Failpoint::MalformedJson, 1);
    let e = round_trip(&enc, "azure", mk())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("malformed JSON"), "{e}");
    assert_eq!(s.server.count("/wrapkey"), before + 1);
    // The token endpoint failing too.
    let enc = common::memory_client(doc! {"azure": s.credentials()}, &opts);
    s.server.fail("/oauth2/", Failpoint::Status(429), 1);
    round_trip(&enc, "azure", mk()).await.unwrap();
}

/// Prose tests 10 (KMS TLS) and 11 (KMS TLS options), against emulators
/// with an untrusted, an expired, a wrong-host certificate and one that
/// requires a client certificate.
#[tokio::test]
async fn tls_options() {
    let good = setup(Transport::Https).await;
    let kms = |s: &Setup| doc! {"azure": s.credentials()};
    // The test CA is not a public root: without tlsCAFile the handshake fails.
    let enc = common::memory_client(kms(&good), &options(&good, "azure", doc! {}));
    let e = round_trip(&enc, "azure", good.master_key())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("connection failed") && e.to_lowercase().contains("certificate"),
        "{e}"
    );
    // Expired and wrong-host certificates fail even with the CA.
    for (transport, why) in [
        (Transport::HttpsExpired, "expired"),
        (Transport::HttpsWrongHost, "not valid for name"),
    ] {
        let bad = setup(transport).await;
        let enc = common::memory_client(kms(&bad), &options(&bad, "azure", ca()));
        let e = round_trip(&enc, "azure", bad.master_key())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.to_lowercase().contains(why)
                || e.contains("NotValidForName")
                || e.contains("Expired"),
            "{transport:?}: {e}"
        );
    }
    // A server that requires a client certificate: refused without one,
    // accepted with tlsCertificateKeyFile.
    let mtls = setup(Transport::HttpsClientAuth).await;
    let enc = common::memory_client(kms(&mtls), &options(&mtls, "azure", ca()));
    assert!(round_trip(&enc, "azure", mtls.master_key()).await.is_err());
    let with_cert =
        doc! {"tlsCAFile": pki().ca_file(), "tlsCertificateKeyFile": pki().client_file()};
    let enc = common::memory_client(kms(&mtls), &options(&mtls, "azure", with_cert));
    round_trip(&enc, "azure", mtls.master_key()).await.unwrap();
    // Options that weaken TLS are refused.
    let e = KmsProviders::from_document_with(
        &kms(&good),
        &options(&good, "azure", doc! {"tlsInsecure": true}),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("Insecure TLS options prohibited"),
        "{e}"
    );
    // tlsDisableOCSPEndpointCheck must not raise (rustls fetches no OCSP).
    let enc = common::memory_client(
        kms(&good),
        &options(
            &good,
            "azure",
            doc! {"tlsCAFile": pki().ca_file(), "tlsDisableOCSPEndpointCheck": true},
        ),
    );
    round_trip(&enc, "azure", good.master_key()).await.unwrap();
}

#[test]
fn option_shapes() {
    let bad = [
        doc! {"azure": {"tenantId": "t"}},
        doc! {"azure": {"tenantId": "t", "clientId": "c", "clientSecret": "s", "accessToken": "a"}},
        doc! {"azure": {"tenantId": "t", "clientId": "c", "clientSecret": "s", "extra": 1}},
        doc! {"azure": {"accessToken": 5}},
    ];
    for kms in bad {
        let e = KmsProviders::from_document(&kms).unwrap_err().to_string();
        assert!(
            e.contains("invalid options for KMS provider 'azure'"),
            "{e}"
        );
        assert!(!e.contains("\"s\""), "{e}");
    }
    let ok =
        KmsProviders::from_document(&doc! {"azure": {}, "azure:x": {"accessToken": "a"}}).unwrap();
    assert_eq!(ok.len(), 2);
    let debug = format!("{ok:?}");
    assert!(!debug.contains("\"a\""), "{debug}");
}
