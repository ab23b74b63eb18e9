//! AWS KMS through `aws-sdk-kms`: `Encrypt` with the master key's key id
//! and `Decrypt` of the stored blob, with no encryption context, as
//! libmongocrypt does; `Decrypt` also names the key document's key as its
//! `KeyId` (libmongocrypt sends none), so KMS refuses a blob wrapped under
//! any other KMS key, and the reply's `KeyId` must name that key (see
//! `reply_names_key`). Credentials are given (`accessKeyId`,
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
                // Decrypt names the key document's key; KMS refuses a blob
                // another KMS key wrapped, e.g. under an alias moved since.
                let hint = if code == "IncorrectKeyException" {
                    " (the key document's masterKey.key does not name the KMS key that \
                     wrapped its keyMaterial; if it is an alias that now points to another \
                     KMS key, store the ARN of the key that wrapped it instead)"
                } else {
                    ""
                };
                format!("HTTP {}: {code}: {text}{hint}", raw.status_code())
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
                if !crate::key::valid_region(region) {
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
            .map(|e| format!("https://{}", crate::key::sanitize_host(e)))
            .unwrap_or_else(|| format!("https://{}", super::hosts::aws_kms_host(region)))
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
            let (region, key, endpoint) = self.parts(master_key)?;
            let client = self.client(region, endpoint).await?;
            let out = client
                .decrypt()
                .key_id(key)
                .ciphertext_blob(Blob::new(key_material.to_vec()))
                .send()
                .await
                .map_err(|e| self.error(&Self::endpoint_name(region, endpoint), e))?;
            let remote = |message: String| Error::Remote {
                provider: self.name.clone(),
                endpoint: Self::endpoint_name(region, endpoint),
                message,
            };
            // Taken first, so it is wiped whatever the key check says.
            let plaintext = out
                .plaintext
                .map(|b| Zeroizing::new(b.into_inner()))
                .ok_or_else(|| remote("Decrypt reply without Plaintext".into()))?;
            match out.key_id.as_deref() {
                Some(reply) if reply_names_key(key, region, reply) => Ok(plaintext),
                Some(reply) => Err(remote(format!(
                    "Decrypt reply names KMS key '{}', not the key document's '{}'",
                    crate::key::sanitize_host(reply),
                    crate::key::sanitize_host(key)
                ))),
                None => Err(remote("Decrypt reply without KeyId".into())),
            }
        })
    }
}

/// The parts of a KMS ARN, `arn:<partition>:kms:<region>:<account>:<resource>`.
struct KmsArn<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn kms_arn(s: &str) -> Option<KmsArn<'_>> {
    let mut parts = s.splitn(6, ':');
    let (arn, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let ok = arn == "arn"
        && service == "kms"
        && !partition.is_empty()
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !resource.is_empty();
    ok.then_some(KmsArn {
        partition,
        region,
        account,
        resource,
    })
}

/// Whether `reply`, the `KeyId` of a `Decrypt` reply (always a key ARN),
/// names the KMS key that `stored`, the key document's `masterKey.key` in
/// `region`, names. `stored` is what the user gave when the key was made
/// (libmongocrypt keeps it as given), in one of KMS's four spellings:
///
/// * a key ARN: the reply must be that ARN, byte for byte;
/// * an alias ARN `arn:P:kms:R:A:alias/N`: a key ARN in partition `P`,
///   region `R`, account `A` (an alias only names a key of its own account
///   and region);
/// * a key id (`1234abcd-…`, `mrk-…`): a key ARN in `region` with that id;
/// * an alias name `alias/N`: a key ARN in `region` (the account is the
///   caller's, which csfle does not know).
///
/// Anything else (a reply that is not a key ARN, a malformed stored ARN) is
/// refused. The request names `stored` as its `KeyId` too, so AWS itself
/// refuses a blob wrapped under another key, aliases included; this check
/// holds a reply to the same rule.
fn reply_names_key(stored: &str, region: &str, reply: &str) -> bool {
    let Some(got) = kms_arn(reply) else {
        return false;
    };
    let Some(got_id) = got
        .resource
        .strip_prefix("key/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    else {
        return false;
    };
    if let Some(want) = kms_arn(stored) {
        return if want.resource.starts_with("key/") {
            reply == stored
        } else if want.resource.starts_with("alias/") {
            got.partition == want.partition
                && got.region == want.region
                && got.account == want.account
        } else {
            false
        };
    }
    if stored.starts_with("arn:") {
        return false;
    }
    if stored.starts_with("alias/") {
        return got.region == region;
    }
    got.region == region && got_id == stored
}

#[cfg(test)]
mod tests {
    use super::reply_names_key;

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn reply_key_ids() {
        let other_key =
            "arn:aws:kms:us-east-1:111122223333:key/0000abcd-12ab-34cd-56ef-1234567890ab";
        let other_account =
            "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let other_region =
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let other_partition =
            "arn:aws-cn:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let alias_arn = "arn:aws:kms:us-east-1:111122223333:alias/app";
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let cases: &[(&str, &str, bool)] = &[
            (KEY, KEY, true),
            (KEY, other_key, false),
            (KEY, other_account, false),
            (KEY, other_region, false),
            (KEY, other_partition, false),
            (KEY, "1234abcd-12ab-34cd-56ef-1234567890ab", false),
            (KEY, alias_arn, false),
            (KEY, "", false),
            (alias_arn, KEY, true),
            (alias_arn, other_key, true),
            (alias_arn, other_account, false),
            (alias_arn, other_region, false),
            (alias_arn, other_partition, false),
            (alias_arn, alias_arn, false),
            ("alias/app", KEY, true),
            ("alias/app", other_account, true),
            ("alias/app", other_region, false),
            ("alias/app", "alias/app", false),
            (id, KEY, true),
            (id, other_account, true),
            (id, other_key, false),
            (id, other_region, false),
            ("arn:aws:kms:us-east-1:111122223333", KEY, false),
            ("arn:aws:s3:::bucket", KEY, false),
            (KEY, "arn:aws:kms:us-east-1:11112222333:key/x", false),
            (KEY, "arn:aws:kms:us-east-1:111122223333:key/", false),
            (
                id,
                "arn:aws:kms:us-east-1:111122223333:key/a/1234abcd-12ab-34cd-56ef-1234567890ab",
                false,
            ),
            (
                "mrk-1234abcd12ab34cd56ef1234567890ab",
                "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
                true,
            ),
        ];
        for (stored, reply, ok) in cases {
            assert_eq!(
                reply_names_key(stored, "us-east-1", reply),
                *ok,
                "stored {stored}, reply {reply}"
            );
        }
    }
}
