//! GCP Cloud KMS: data keys wrapped with `:encrypt` / `:decrypt`, authorized
//! by an OAuth2 token obtained with a service-account JWT (RS256), a given
//! access token, or, on demand (`"gcp": {}`), the metadata server.

use super::http::{self, Http, RetryPolicy, TlsOptions, TokenCache};
use super::{Error, KmsProvider};
use crate::keyvault::MasterKey;
use base64::Engine;
use bson::{Bson, Document};
use futures_util::future::BoxFuture;
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const DEFAULT_TOKEN_ENDPOINT: &str = "oauth2.googleapis.com";
const DEFAULT_KMS_ENDPOINT: &str = "cloudkms.googleapis.com";
const DEFAULT_METADATA: &str = "http://metadata.google.internal";
const SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";
/// Lifetime of the JWT assertion (the token endpoint accepts up to an hour).
const ASSERTION_SECONDS: u64 = 300;

enum Credentials {
    ServiceAccount {
        email: String,
        key: jsonwebtoken::EncodingKey,
        token_endpoint: String,
    },
    AccessToken(Zeroizing<String>),
    /// On demand, from the metadata server.
    Metadata {
        endpoint: String,
    },
}

/// A GCP Cloud KMS provider.
pub struct GcpKms {
    name: String,
    credentials: Credentials,
    http: Http,
    token: TokenCache,
}

impl std::fmt::Debug for GcpKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.credentials {
            Credentials::ServiceAccount { .. } => "service account",
            Credentials::AccessToken(_) => "access token",
            Credentials::Metadata { .. } => "metadata server",
        };
        f.debug_struct("GcpKms")
            .field("name", &self.name)
            .field("credentials", &how)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    scope: &'a str,
    iat: u64,
    exp: u64,
}

/// The service account's private key: base64 of PKCS#8 DER (the drivers'
/// form) or a binary of it.
fn private_key(name: &str, value: Option<&Bson>) -> Result<jsonwebtoken::EncodingKey, Error> {
    let invalid = |reason: &str| Error::InvalidOptions {
        provider: name.to_owned(),
        reason: reason.into(),
    };
    let der: Zeroizing<Vec<u8>> = match value {
        Some(Bson::String(s)) => Zeroizing::new(
            B64.decode(s.trim())
                .map_err(|_| invalid("'privateKey' is not valid base64"))?,
        ),
        Some(Bson::Binary(b)) => Zeroizing::new(b.bytes.clone()),
        _ => return Err(invalid("'privateKey' must be a base64 string or a binary")),
    };
    // PKCS#8 DER as PEM, the form the JWT library reads either encoding from.
    let pem = Zeroizing::new(format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        B64.encode(&*der)
    ));
    jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|_| invalid("'privateKey' is not an RSA PKCS#8 private key"))
}

impl GcpKms {
    /// A provider from its `kmsProviders` entry: `{email, privateKey,
    /// endpoint?}` (endpoint: the token host, default
    /// `oauth2.googleapis.com`), `{accessToken}`, or `{}` for on-demand
    /// credentials from the metadata server (at `metadata_endpoint`,
    /// default `http://metadata.google.internal`).
    pub fn from_options(
        name: &str,
        options: &Document,
        tls: &TlsOptions,
        retry: RetryPolicy,
        metadata_endpoint: Option<&str>,
    ) -> Result<Self, Error> {
        http::only_fields(
            name,
            options,
            &["email", "privateKey", "endpoint", "accessToken"],
        )?;
        let email = http::string_option(name, options, "email")?;
        let token = http::string_option(name, options, "accessToken")?;
        let credentials = match (email, token) {
            (Some(email), None) => Credentials::ServiceAccount {
                email,
                key: private_key(name, options.get("privateKey"))?,
                token_endpoint: http::string_option(name, options, "endpoint")?
                    .unwrap_or_else(|| DEFAULT_TOKEN_ENDPOINT.into()),
            },
            (None, Some(t)) if options.len() == 1 => Credentials::AccessToken(Zeroizing::new(t)),
            (None, None) if options.is_empty() => Credentials::Metadata {
                endpoint: metadata_endpoint.unwrap_or(DEFAULT_METADATA).to_owned(),
            },
            _ => {
                return Err(Error::InvalidOptions {
                    provider: name.to_owned(),
                    reason: "expected email and privateKey; or accessToken; or {} for on-demand credentials".into(),
                });
            }
        };
        Ok(GcpKms {
            name: name.to_owned(),
            credentials,
            http: Http::new(name, tls, retry)?,
            token: TokenCache::default(),
        })
    }

    async fn bearer(&self) -> Result<Zeroizing<String>, Error> {
        if let Credentials::AccessToken(t) = &self.credentials {
            return Ok(t.clone());
        }
        self.token.get(&self.name, || self.fetch_token()).await
    }

    async fn fetch_token(&self) -> Result<(String, serde_json::Value), Error> {
        match &self.credentials {
            Credentials::ServiceAccount {
                email,
                key,
                token_endpoint,
            } => {
                let url = format!("{}/token", http::base_url(token_endpoint));
                // The audience is the token URL on the public host, as
                // Google signs it; a custom endpoint gets its own URL.
                let aud = url.clone();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let claims = Claims {
                    iss: email,
                    aud: &aud,
                    scope: SCOPE,
                    iat: now,
                    exp: now + ASSERTION_SECONDS,
                };
                let assertion = Zeroizing::new(
                    jsonwebtoken::encode(
                        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
                        &claims,
                        key,
                    )
                    .map_err(|e| Error::InvalidOptions {
                        provider: self.name.clone(),
                        reason: format!("cannot sign the token request: {e}"),
                    })?,
                );
                let reply = self
                    .http
                    .json(&url, |c| {
                        c.post(&url).form(&[
                            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                            ("assertion", assertion.as_str()),
                        ])
                    })
                    .await?;
                Ok((url, reply))
            }
            Credentials::Metadata { endpoint } => {
                let url = format!(
                    "{}/computeMetadata/v1/instance/service-accounts/default/token",
                    endpoint.trim_end_matches('/')
                );
                let reply = self
                    .http
                    .json(&url, |c| c.get(&url).header("Metadata-Flavor", "Google"))
                    .await?;
                Ok((url, reply))
            }
            Credentials::AccessToken(_) => Err(Error::InvalidOptions {
                provider: self.name.clone(),
                reason: "no token endpoint with a given access token".into(),
            }),
        }
    }

    /// `:encrypt` or `:decrypt` with the master key.
    async fn key_operation(
        &self,
        master_key: &MasterKey,
        operation: &str,
        field: &str,
        reply_field: &str,
        value: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let MasterKey::Gcp {
            project_id,
            location,
            key_ring,
            key_name,
            key_version,
            endpoint,
            ..
        } = master_key
        else {
            return Err(Error::InvalidMasterKey(format!(
                "provider '{}' needs a GCP masterKey",
                self.name
            )));
        };
        let token = self.bearer().await?;
        let mut url = format!(
            "{}/v1/projects/{project_id}/locations/{location}/keyRings/{key_ring}/cryptoKeys/{key_name}",
            http::base_url(endpoint.as_deref().unwrap_or(DEFAULT_KMS_ENDPOINT))
        );
        // Decryption finds the version in the ciphertext; encryption may pin one.
        if let (Some(v), "encrypt") = (key_version, operation) {
            url.push_str(&format!("/cryptoKeyVersions/{v}"));
        }
        url.push(':');
        url.push_str(operation);
        let body = serde_json::json!({ field: B64.encode(value) });
        let reply = self
            .http
            .json(&url, |c| {
                c.post(&url).bearer_auth(token.as_str()).json(&body)
            })
            .await?;
        let remote = |message: String| Error::Remote {
            provider: self.name.clone(),
            endpoint: url.clone(),
            message,
        };
        let value = reply[reply_field]
            .as_str()
            .ok_or_else(|| remote(format!("{operation} reply without '{reply_field}'")))?;
        B64.decode(value)
            .map_err(|_| remote(format!("{operation} reply '{reply_field}' is not base64")))
    }
}

impl KmsProvider for GcpKms {
    fn wrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        data_key: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(self.key_operation(master_key, "encrypt", "plaintext", "ciphertext", data_key))
    }

    fn unwrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        key_material: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, Error>> {
        Box::pin(async move {
            Ok(Zeroizing::new(
                self.key_operation(
                    master_key,
                    "decrypt",
                    "ciphertext",
                    "plaintext",
                    key_material,
                )
                .await?,
            ))
        })
    }
}
