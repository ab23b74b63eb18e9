//! moto (AWS KMS over TLS, signature checking on) as `.ci/run` starts it:
//! `CSFLE_MOTO_URL` (https://127.0.0.1:PORT), `CSFLE_MOTO_CA_FILE` (the
//! per-run CA that signed moto's certificate), `CSFLE_MOTO_ACCESS_KEY_ID`,
//! `CSFLE_MOTO_SECRET_ACCESS_KEY`. Shared by the AWS provider's tests and
//! the command line's (`csfle-cli/tests/cli_kms_aws_server.rs`).
#![allow(dead_code)]

use crate::common::service_env;
use bson::{Document, doc};
use csfle::kms::{ProviderOptions, RetryPolicy};
use std::time::Duration;

/// moto's endpoint and the IAM user `.ci/run` created in it.
pub struct Moto {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`, as a masterKey names it.
    pub host: String,
    /// The per-run CA that signed moto's certificate.
    pub ca_file: String,
    /// The IAM user's access key id.
    pub key_id: String,
    /// The IAM user's secret access key.
    pub secret: String,
}

/// moto, from the environment `.ci/run` sets (the test fails naming the
/// variable when one is missing).
pub fn moto() -> Moto {
    let url = service_env("CSFLE_MOTO_URL");
    let host = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("CSFLE_MOTO_URL must be https://HOST:PORT, got {url}"))
        .trim_end_matches('/')
        .to_owned();
    Moto {
        url,
        host,
        ca_file: service_env("CSFLE_MOTO_CA_FILE"),
        key_id: service_env("CSFLE_MOTO_ACCESS_KEY_ID"),
        secret: service_env("CSFLE_MOTO_SECRET_ACCESS_KEY"),
    }
}

impl Moto {
    /// Provider options trusting moto's CA and allowing its host in key
    /// documents (it is not a public AWS host), with quick retries.
    pub fn options(&self) -> ProviderOptions {
        self.options_for(&doc! {"aws": {}})
    }

    /// [`options`](Self::options) with moto's CA for every provider of `kms`.
    pub fn options_for(&self, kms: &Document) -> ProviderOptions {
        let mut tls = Document::new();
        for name in kms.keys() {
            tls.insert(name, doc! {"tlsCAFile": &self.ca_file});
        }
        let options = ProviderOptions::default().with_tls(tls).with_retry(
            RetryPolicy::default()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(20))
                .with_request_timeout(Duration::from_secs(3)),
        );
        options.allow_host(&self.host).unwrap()
    }

    pub fn credentials(&self) -> Document {
        doc! {"accessKeyId": &self.key_id, "secretAccessKey": &self.secret}
    }

    /// A new customer master key in moto, created with the SDK directly.
    pub async fn create_key(&self) -> String {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                &self.key_id,
                &self.secret,
                None,
                None,
                "test",
            ))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .tls_context(
                        aws_smithy_http_client::tls::TlsContext::builder()
                            .with_trust_store(
                                aws_smithy_http_client::tls::TrustStore::empty()
                                    .with_pem_certificate(std::fs::read(&self.ca_file).unwrap()),
                            )
                            .build()
                            .unwrap(),
                    )
                    .build_https(),
            )
            .build();
        let out = aws_sdk_kms::Client::from_conf(config)
            .create_key()
            .send()
            .await
            .unwrap();
        out.key_metadata.unwrap().arn.unwrap()
    }

    pub fn master_key(&self, arn: &str) -> Document {
        doc! {"region": "us-east-1", "key": arn, "endpoint": &self.host}
    }
}
