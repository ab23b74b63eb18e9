//! AWS KMS through `aws-sdk-kms`: `Encrypt` with the master key's key id
//! and `Decrypt` of the stored blob, with no encryption context, exactly the
//! requests libmongocrypt sends. Credentials are given (`accessKeyId`,
//! `secretAccessKey`, `sessionToken?`) or, with `"aws": {}`, taken on demand
//! from the standard chain (`aws-config`: environment, profile, web
//! identity, ECS, IMDS). HTTPS is rustls with ring, trusting the platform
//! roots plus any `tlsCAFile`.

use super::http::{RetryPolicy, TlsOptions, https_base};
use super::{EndpointOrigin, Error, KmsProvider};
use crate::key::MasterKey;
use aws_sdk_kms::config::{BehaviorVersion, Region, SharedCredentialsProvider};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use bson::Document;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroizing;

enum Credentials {
    Given(aws_sdk_kms::config::Credentials),
    /// The application's own provider (the drivers' custom AWS credentials).
    Custom(SharedCredentialsProvider),
    /// Resolved on first use from the default chain.
    OnDemand(tokio::sync::OnceCell<SharedCredentialsProvider>),
}

/// An AWS KMS provider.
pub struct AwsKms {
    name: String,
    credentials: Credentials,
    http: aws_sdk_kms::config::SharedHttpClient,
    retry: RetryPolicy,
    /// One SDK client per (region, endpoint).
    clients: Mutex<HashMap<(String, Option<String>), aws_sdk_kms::Client>>,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.credentials {
            Credentials::Given(_) => "given credentials",
            Credentials::Custom(_) => "custom credential provider",
            Credentials::OnDemand(_) => "default credential chain",
        };
        f.debug_struct("AwsKms")
            .field("name", &self.name)
            .field("credentials", &how)
            .finish_non_exhaustive()
    }
}

impl AwsKms {
    /// A provider from its `kmsProviders` entry: `{accessKeyId,
    /// secretAccessKey, sessionToken?}`, or `{}` for on-demand credentials
    /// (from `custom` when given, else the default chain).
    pub fn from_options(
        name: &str,
        options: &Document,
        tls: &TlsOptions,
        retry: RetryPolicy,
        custom: Option<SharedCredentialsProvider>,
    ) -> Result<Self, Error> {
        super::http::only_fields(
            name,
            options,
            &["accessKeyId", "secretAccessKey", "sessionToken"],
        )?;
        let get = |k| super::http::string_option(name, options, k);
        let invalid = |reason: &str| Error::InvalidOptions {
            provider: name.to_owned(),
            reason: reason.into(),
        };
        if custom.is_some() && !options.is_empty() {
            return Err(invalid(
                "a custom credential provider cannot be combined with credentials in kmsProviders",
            ));
        }
        let credentials = match (
            get("accessKeyId")?,
            get("secretAccessKey")?,
            get("sessionToken")?,
        ) {
            (Some(id), Some(secret), token) => {
                Credentials::Given(aws_sdk_kms::config::Credentials::new(
                    id,
                    secret,
                    token,
                    None,
                    "csfle kmsProviders",
                ))
            }
            (None, None, None) => match custom {
                Some(p) => Credentials::Custom(p),
                None => Credentials::OnDemand(tokio::sync::OnceCell::new()),
            },
            _ => {
                return Err(invalid(
                    "expected accessKeyId and secretAccessKey (and optionally sessionToken), or {} for on-demand credentials",
                ));
            }
        };
        if tls.has_client_identity() {
            return Err(invalid(
                "tlsCertificateKeyFile is not supported for AWS KMS",
            ));
        }
        let mut trust = TrustStore::default();
        if let Some(pem) = tls.ca_pem() {
            trust = trust.with_pem_certificate(pem.to_vec());
        }
        let context = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| invalid(&format!("TLS: {e}")))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .tls_context(context)
            .build_https();
        Ok(AwsKms {
            name: name.to_owned(),
            credentials,
            http,
            retry,
            clients: Mutex::new(HashMap::new()),
        })
    }

    async fn credentials(&self) -> Result<SharedCredentialsProvider, Error> {
        match &self.credentials {
            Credentials::Given(c) => Ok(SharedCredentialsProvider::new(c.clone())),
            Credentials::Custom(p) => Ok(p.clone()),
            Credentials::OnDemand(cell) => cell
                .get_or_try_init(|| async {
                    let config = aws_config::defaults(BehaviorVersion::latest())
                        .http_client(self.http.clone())
                        .load()
                        .await;
                    config
                        .credentials_provider()
                        .ok_or_else(|| Error::InvalidOptions {
                            provider: self.name.clone(),
                            reason:
                                "no AWS credential provider available for on-demand credentials"
                                    .into(),
                        })
                })
                .await
                .cloned(),
        }
    }

    async fn client(
        &self,
        region: &str,
        endpoint: Option<&str>,
    ) -> Result<aws_sdk_kms::Client, Error> {
        let key = (region.to_owned(), endpoint.map(str::to_owned));
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let retry = aws_sdk_kms::config::retry::RetryConfig::standard()
            .with_max_attempts(self.retry.max_attempts.max(1))
            .with_initial_backoff(self.retry.initial_backoff);
        let timeouts = aws_sdk_kms::config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.retry.request_timeout)
            .operation_attempt_timeout(self.retry.request_timeout)
            .build();
        let mut config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .http_client(self.http.clone())
            .retry_config(retry)
            .timeout_config(timeouts)
            .credentials_provider(self.credentials().await?);
        if let Some(ep) = endpoint {
            config = config.endpoint_url(https_base(&self.name, ep, EndpointOrigin::KeyDocument)?);
        }
        let client = aws_sdk_kms::Client::from_conf(config.build());
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, client.clone());
        Ok(client)
    }

    fn error<E, R>(&self, endpoint: &str, e: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HasStatusAndBody,
    {
        let message = match &e {
            SdkError::ServiceError(s) => {
                let raw = s.raw();
                let code = s.err().code().unwrap_or("unknown error");
                let text = s
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| super::http::error_text(raw.body_bytes()));
                format!("HTTP {}: {code}: {text}", raw.status_code())
            }
            SdkError::TimeoutError(_) => format!(
                "request timed out (after {} attempts of at most {:.1} s)",
                self.retry.max_attempts,
                self.retry.request_timeout.as_secs_f64()
            ),
            SdkError::DispatchFailure(_) => format!(
                "connection failed (gave up after {} attempts): {}",
                self.retry.max_attempts,
                DisplayErrorContext(&e)
            ),
            SdkError::ResponseError(r) => format!(
                "HTTP {}: unreadable reply: {}",
                r.raw().status_code(),
                super::http::error_text(r.raw().body_bytes())
            ),
            other => DisplayErrorContext(other).to_string(),
        };
        Error::Remote {
            provider: self.name.clone(),
            endpoint: endpoint.to_owned(),
            message,
        }
    }

    fn parts<'m>(
        &self,
        master_key: &'m MasterKey,
    ) -> Result<(&'m str, &'m str, Option<&'m str>), Error> {
        match master_key {
            MasterKey::Aws {
                region,
                key,
                endpoint,
                ..
            } => {
                // The region becomes part of a host name and a signature.
                if !super::valid_region(region) {
                    return Err(Error::InvalidMasterKey(crate::key::INVALID_REGION.into()));
                }
                Ok((region, key, endpoint.as_deref()))
            }
            _ => Err(Error::InvalidMasterKey(format!(
                "provider '{}' needs an AWS masterKey",
                self.name
            ))),
        }
    }

    fn endpoint_name(region: &str, endpoint: Option<&str>) -> String {
        endpoint
            .map(|e| format!("https://{}", super::sanitize_host(e)))
            .unwrap_or_else(|| format!("https://{}", super::aws_kms_host(region)))
    }
}

/// The status and body of a raw reply, for error messages.
trait HasStatusAndBody {
    fn status_code(&self) -> u16;
    fn body_bytes(&self) -> &[u8];
}

impl HasStatusAndBody for aws_sdk_kms::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
    fn body_bytes(&self) -> &[u8] {
        self.body().bytes().unwrap_or_default()
    }
}

impl KmsProvider for AwsKms {
    fn wrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        data_key: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let (region, key, endpoint) = self.parts(master_key)?;
            let client = self.client(region, endpoint).await?;
            let out = client
                .encrypt()
                .key_id(key)
                .plaintext(Blob::new(data_key.to_vec()))
                .send()
                .await
                .map_err(|e| self.error(&Self::endpoint_name(region, endpoint), e))?;
            out.ciphertext_blob
                .map(Blob::into_inner)
                .ok_or_else(|| Error::Remote {
                    provider: self.name.clone(),
                    endpoint: Self::endpoint_name(region, endpoint),
                    message: "Encrypt reply without CiphertextBlob".into(),
                })
        })
    }

    fn unwrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        key_material: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, Error>> {
        Box::pin(async move {
            let (region, _, endpoint) = self.parts(master_key)?;
            let client = self.client(region, endpoint).await?;
            let out = client
                .decrypt()
                .ciphertext_blob(Blob::new(key_material.to_vec()))
                .send()
                .await
                .map_err(|e| self.error(&Self::endpoint_name(region, endpoint), e))?;
            out.plaintext
                .map(|b| Zeroizing::new(b.into_inner()))
                .ok_or_else(|| Error::Remote {
                    provider: self.name.clone(),
                    endpoint: Self::endpoint_name(region, endpoint),
                    message: "Decrypt reply without Plaintext".into(),
                })
        })
    }
}
