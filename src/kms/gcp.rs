//! GCP Cloud KMS: data keys wrapped with `:encrypt` / `:decrypt`, authorized
//! by an OAuth2 token obtained with a service-account JWT (RS256), a given
//! access token, or, on demand (`"gcp": {}`), the metadata server.

use super::http::{self, Http, RetryPolicy, TlsOptions, TokenCache, TokenReply, segment};
use super::{EndpointOrigin, Error, KmsProvider};
use crate::key::MasterKey;
use base64::Engine;
use bson::{Bson, Document};
use futures_util::future::BoxFuture;
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const DEFAULT_TOKEN_ENDPOINT: &str = "oauth2.googleapis.com";
const DEFAULT_METADATA: &str = "http://metadata.google.internal";
const SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";
/// Lifetime of the JWT assertion (the token endpoint accepts up to an hour).
const ASSERTION_SECONDS: u64 = 300;

enum Credentials {
    ServiceAccount {
        email: String,
        key: jsonwebtoken::EncodingKey,
        /// `https://<endpoint>/token`, also the JWT's audience.
        token_url: String,
    },
    AccessToken(Zeroizing<String>),
    /// On demand, from the metadata server, over its own plain-HTTP client.
    Metadata {
        token_url: String,
        http: Http,
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
                token_url: format!(
                    "{}/token",
                    http::https_base(
                        name,
                        &http::string_option(name, options, "endpoint")?
                            .unwrap_or_else(|| DEFAULT_TOKEN_ENDPOINT.into()),
                        EndpointOrigin::Application
                    )?
                ),
            },
            (None, Some(t)) if options.len() == 1 => Credentials::AccessToken(Zeroizing::new(t)),
            (None, None) if options.is_empty() => Credentials::Metadata {
                token_url: format!(
                    "{}/computeMetadata/v1/instance/service-accounts/default/token",
                    metadata_endpoint
                        .unwrap_or(DEFAULT_METADATA)
                        .trim_end_matches('/')
                ),
                http: Http::metadata(name, retry)?,
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

    /// A bearer token: the given one, or the cached one while fresh, else
    /// a new one.
    async fn bearer(&self) -> Result<Zeroizing<String>, Error> {
        match &self.credentials {
            Credentials::AccessToken(t) => Ok(t.clone()),
            Credentials::ServiceAccount {
                email,
                key,
                token_url,
            } => {
                self.token
                    .get(&self.name, || async {
                        let assertion = self.assertion(email, key, token_url)?;
                        let reply: TokenReply = self
                            .http
                            .json(token_url, |c| {
                                c.post(token_url).form(&[
                                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                                    ("assertion", assertion.as_str()),
                                ])
                            })
                            .await?;
                        Ok((token_url.clone(), reply))
                    })
                    .await
            }
            Credentials::Metadata { token_url, http } => {
                self.token
                    .get_from(&self.name, http, token_url, |c| {
                        c.get(token_url).header("Metadata-Flavor", "Google")
                    })
                    .await
            }
        }
    }

    /// The signed JWT (RS256) a service account exchanges for a token. Its
    /// audience is the token URL: Google's on the public host, a custom
    /// endpoint's own otherwise.
    fn assertion(
        &self,
        email: &str,
        key: &jsonwebtoken::EncodingKey,
        token_url: &str,
    ) -> Result<Zeroizing<String>, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = Claims {
            iss: email,
            aud: token_url,
            scope: SCOPE,
            iat: now,
            exp: now + ASSERTION_SECONDS,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            key,
        )
        .map(Zeroizing::new)
        .map_err(|e| Error::InvalidOptions {
            provider: self.name.clone(),
            reason: format!("cannot sign the token request: {e}"),
        })
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
        // Checked before the token is fetched: a bad endpoint gets nothing.
        let base = http::https_base(
            &self.name,
            endpoint.as_deref().unwrap_or(super::hosts::GCP_KMS_HOST),
            EndpointOrigin::KeyDocument,
        )?;
        let mut url = format!(
            "{base}/v1/projects/{}/locations/{}/keyRings/{}/cryptoKeys/{}",
            segment(project_id),
            segment(location),
            segment(key_ring),
            segment(key_name)
        );
        // Decryption finds the version in the ciphertext; encryption may pin one.
        if let (Some(v), "encrypt") = (key_version.as_deref().filter(|v| !v.is_empty()), operation)
        {
            url.push_str("/cryptoKeyVersions/");
            url.push_str(&segment(v));
        }
        url.push(':');
        url.push_str(operation);
        let token = self.bearer().await?;
        // `{field: base64(value)}`, serialized from borrowed strings so the
        // only copies of the key material are the two zeroized buffers.
        let encoded = Zeroizing::new(B64.encode(value));
        let request = std::collections::BTreeMap::from([(field, encoded.as_str())]);
        let body = Zeroizing::new(serde_json::to_vec(&request).map_err(|e| Error::Remote {
            provider: self.name.clone(),
            endpoint: url.clone(),
            message: format!("cannot encode the request: {e}"),
        })?);
        let mut reply: serde_json::Map<String, serde_json::Value> = self
            .http
            .json(&url, |c| {
                c.post(&url)
                    .bearer_auth(token.as_str())
                    .header("content-type", "application/json")
                    .body(body.to_vec())
            })
            .await?;
        let remote = |message: String| Error::Remote {
            provider: self.name.clone(),
            endpoint: url.clone(),
            message,
        };
        let value = match reply.get_mut(reply_field) {
            Some(serde_json::Value::String(s)) => Zeroizing::new(std::mem::take(s)),
            _ => return Err(remote(format!("{operation} reply without '{reply_field}'"))),
        };
        B64.decode(value.as_bytes())
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
