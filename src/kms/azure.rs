//! Azure Key Vault: data keys wrapped with `wrapkey` / `unwrapkey`
//! (RSA-OAEP-256, api-version 7.1), authorized by an OAuth2 token from the
//! Microsoft identity platform (client credentials), a given access token,
//! or, on demand (`"azure": {}`), the Azure Instance Metadata Service.

use super::http::{self, Http, RetryPolicy, TlsOptions, TokenCache, segment};
use super::{EndpointOrigin, Error, KmsProvider};
use crate::key::MasterKey;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bson::Document;
use futures_util::future::BoxFuture;
use zeroize::Zeroizing;

/// Azure sends and takes base64url; padding is accepted either way.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const DEFAULT_IDENTITY_PLATFORM: &str = "login.microsoftonline.com";
const DEFAULT_IMDS: &str = "http://169.254.169.254";
const SCOPE: &str = "https://vault.azure.net/.default";
const RESOURCE: &str = "https://vault.azure.net";

/// How the provider gets its bearer token.
enum Credentials {
    ClientSecret {
        client_id: String,
        client_secret: Zeroizing<String>,
        /// `https://<identity platform>/<tenant>/oauth2/v2.0/token`.
        token_url: String,
    },
    AccessToken(Zeroizing<String>),
    /// On demand, from the Instance Metadata Service, over its own
    /// plain-HTTP client.
    Imds {
        token_url: String,
        http: Http,
    },
}

/// The body of `wrapkey` / `unwrapkey`; `value` is key material.
#[derive(serde::Serialize)]
struct KeyOperationRequest {
    alg: &'static str,
    value: Zeroizing<String>,
}

/// Their reply; `value` is key material (wrapped or not).
#[derive(serde::Deserialize)]
struct KeyOperationReply {
    value: Option<Zeroizing<String>>,
}

/// An Azure Key Vault provider.
pub struct AzureKms {
    name: String,
    credentials: Credentials,
    http: Http,
    token: TokenCache,
}

impl std::fmt::Debug for AzureKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.credentials {
            Credentials::ClientSecret { .. } => "client credentials",
            Credentials::AccessToken(_) => "access token",
            Credentials::Imds { .. } => "instance metadata service",
        };
        f.debug_struct("AzureKms")
            .field("name", &self.name)
            .field("credentials", &how)
            .finish_non_exhaustive()
    }
}

impl AzureKms {
    /// A provider from its `kmsProviders` entry: `{tenantId, clientId,
    /// clientSecret, identityPlatformEndpoint?}`, `{accessToken}`, or `{}`
    /// for on-demand credentials from IMDS (at `imds_endpoint`, default
    /// `http://169.254.169.254`; tests point it at an emulator).
    pub fn from_options(
        name: &str,
        options: &Document,
        tls: &TlsOptions,
        retry: RetryPolicy,
        imds_endpoint: Option<&str>,
    ) -> Result<Self, Error> {
        http::only_fields(
            name,
            options,
            &[
                "tenantId",
                "clientId",
                "clientSecret",
                "identityPlatformEndpoint",
                "accessToken",
            ],
        )?;
        let get = |k| http::string_option(name, options, k);
        let credentials = match (
            get("tenantId")?,
            get("clientId")?,
            get("clientSecret")?,
            get("accessToken")?,
        ) {
            (Some(tenant_id), Some(client_id), Some(secret), None) => {
                let platform = get("identityPlatformEndpoint")?
                    .unwrap_or_else(|| DEFAULT_IDENTITY_PLATFORM.into());
                Credentials::ClientSecret {
                    client_id,
                    client_secret: Zeroizing::new(secret),
                    token_url: format!(
                        "{}/{}/oauth2/v2.0/token",
                        http::https_base(name, &platform, EndpointOrigin::Application)?,
                        segment(&tenant_id)
                    ),
                }
            }
            (None, None, None, Some(token)) => Credentials::AccessToken(Zeroizing::new(token)),
            (None, None, None, None) if options.is_empty() => Credentials::Imds {
                token_url: format!(
                    "{}/metadata/identity/oauth2/token",
                    imds_endpoint.unwrap_or(DEFAULT_IMDS).trim_end_matches('/')
                ),
                http: Http::metadata(name, retry)?,
            },
            _ => {
                return Err(Error::InvalidOptions {
                    provider: name.to_owned(),
                    reason: "expected tenantId, clientId and clientSecret; or accessToken; or {} for on-demand credentials".into(),
                });
            }
        };
        Ok(AzureKms {
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
            Credentials::ClientSecret {
                client_id,
                client_secret,
                token_url,
            } => {
                self.token
                    .get_from(&self.name, &self.http, token_url, |c| {
                        c.post(token_url).form(&[
                            ("client_id", client_id.as_str()),
                            ("client_secret", client_secret.as_str()),
                            ("scope", SCOPE),
                            ("grant_type", "client_credentials"),
                        ])
                    })
                    .await
            }
            Credentials::Imds { token_url, http } => {
                self.token
                    .get_from(&self.name, http, token_url, |c| {
                        c.get(token_url)
                            .query(&[("api-version", "2018-02-01"), ("resource", RESOURCE)])
                            .header("Metadata", "true")
                    })
                    .await
            }
        }
    }

    /// `wrapkey` or `unwrapkey` on the master key.
    async fn key_operation(
        &self,
        master_key: &MasterKey,
        operation: &str,
        value: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let MasterKey::Azure {
            key_vault_endpoint,
            key_name,
            key_version,
            ..
        } = master_key
        else {
            return Err(Error::InvalidMasterKey(format!(
                "provider '{}' needs an Azure masterKey",
                self.name
            )));
        };
        // Checked before the token is fetched: a bad endpoint gets nothing.
        let base = http::https_base(&self.name, key_vault_endpoint, EndpointOrigin::KeyDocument)?;
        let mut url = format!("{base}/keys/{}", segment(key_name));
        if let Some(v) = key_version.as_deref().filter(|v| !v.is_empty()) {
            url.push('/');
            url.push_str(&segment(v));
        }
        url.push('/');
        url.push_str(operation);
        let token = self.bearer().await?;
        let request = KeyOperationRequest {
            alg: "RSA-OAEP-256",
            value: Zeroizing::new(BASE64URL.encode(value)),
        };
        let body = Zeroizing::new(serde_json::to_vec(&request).map_err(|e| Error::Remote {
            provider: self.name.clone(),
            endpoint: url.clone(),
            message: format!("cannot encode the request: {e}"),
        })?);
        let reply: KeyOperationReply = self
            .http
            .json(&url, |c| {
                c.post(&url)
                    .query(&[("api-version", "7.1")])
                    .bearer_auth(token.as_str())
                    .header("content-type", "application/json")
                    .body(body.to_vec())
            })
            .await?;
        let value = reply.value.ok_or_else(|| Error::Remote {
            provider: self.name.clone(),
            endpoint: url.clone(),
            message: format!("{operation} reply without 'value'"),
        })?;
        BASE64URL
            .decode(value.as_bytes())
            .map_err(|_| Error::Remote {
                provider: self.name.clone(),
                endpoint: url,
                message: format!("{operation} reply 'value' is not base64url"),
            })
    }
}

impl KmsProvider for AzureKms {
    fn wrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        data_key: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(self.key_operation(master_key, "wrapkey", data_key))
    }

    fn unwrap<'a>(
        &'a self,
        master_key: &'a MasterKey,
        key_material: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, Error>> {
        Box::pin(async move {
            Ok(Zeroizing::new(
                self.key_operation(master_key, "unwrapkey", key_material)
                    .await?,
            ))
        })
    }
}
