//! HTTPS for the cloud KMS providers: a client per provider (with its TLS
//! options), a request timeout, bounded retries with exponential backoff on
//! connection errors, timeouts, 429 and 5xx, and errors that name the
//! provider, the endpoint, the HTTP status and the KMS's own error, never a
//! secret or key bytes (request bodies are never quoted).

use super::Error;
use bson::{Bson, Document};
use std::time::Duration;
#[cfg(any(feature = "azure", feature = "gcp"))]
use std::time::Instant;
use zeroize::Zeroizing;

/// TLS options for one provider (the drivers' `tlsOptions` entry):
/// `tlsCAFile` (extra trusted CAs, PEM) and `tlsCertificateKeyFile` (a PEM
/// holding the client certificate and its private key).
#[derive(Clone, Default)]
pub struct TlsOptions {
    ca_pem: Option<Vec<u8>>,
    identity_pem: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity_pem.is_some())
            .finish()
    }
}

impl TlsOptions {
    /// Options from a provider's `tlsOptions` document; the files are read
    /// now. Options that weaken TLS are refused, as the specification asks.
    pub fn from_document(provider: &str, doc: &Document) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidOptions {
            provider: provider.to_owned(),
            reason,
        };
        let mut out = TlsOptions::default();
        for (k, v) in doc {
            let path = || match v {
                Bson::String(p) => Ok(p.clone()),
                _ => Err(invalid(format!("tlsOptions '{k}' must be a file path"))),
            };
            match k.as_str() {
                "tlsCAFile" => {
                    let p = path()?;
                    out.ca_pem = Some(
                        std::fs::read(&p).map_err(|e| invalid(format!("tlsCAFile {p}: {e}")))?,
                    );
                }
                "tlsCertificateKeyFile" => {
                    let p = path()?;
                    out.identity_pem =
                        Some(Zeroizing::new(std::fs::read(&p).map_err(|e| {
                            invalid(format!("tlsCertificateKeyFile {p}: {e}"))
                        })?));
                }
                "tlsInsecure"
                | "tlsAllowInvalidCertificates"
                | "tlsAllowInvalidHostnames"
                | "tlsDisableOCSPEndpointCheck"
                | "tlsDisableCertificateRevocationCheck" => {
                    return Err(invalid(format!(
                        "tlsOptions '{k}' is not allowed for a KMS"
                    )));
                }
                _ => return Err(invalid(format!("unknown tlsOptions field '{k}'"))),
            }
        }
        Ok(out)
    }

    /// The extra trusted CAs (PEM), if any.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }

    /// Whether a client certificate is configured.
    pub fn has_client_identity(&self) -> bool {
        self.identity_pem.is_some()
    }

    /// Trusts the CA certificates in `pem` in addition to the public roots.
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Self {
        self.ca_pem = Some(pem.to_vec());
        self
    }

    /// Presents the client certificate and key in `pem`.
    pub fn with_client_identity_pem(mut self, pem: &[u8]) -> Self {
        self.identity_pem = Some(Zeroizing::new(pem.to_vec()));
        self
    }
}

/// How a provider retries and times out.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (default 3).
    pub max_attempts: u32,
    /// Backoff before the second attempt, doubled each time (default 100 ms),
    /// with up to 50% random jitter added.
    pub initial_backoff: Duration,
    /// Time allowed for one attempt, connection included (default 10 s).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(any(feature = "azure", feature = "gcp"))]
/// An HTTP client for one provider.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    provider: String,
    retry: RetryPolicy,
}

#[cfg(any(feature = "azure", feature = "gcp"))]
/// A failure worth another attempt, or not.
enum Attempt {
    Retry(String),
    Fail(String),
}

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
/// The KMS's own words from an error body: the JSON `error` object (Azure,
/// GCP), an OAuth `error`/`error_description` pair, or the start of a
/// non-JSON body (moto answers auth failures in XML).
pub(crate) fn error_text(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let e = &v["error"];
        let mut parts = Vec::new();
        for key in ["status", "code"] {
            if let Some(s) = e[key]
                .as_str()
                .map(str::to_owned)
                .or_else(|| e[key].as_i64().map(|n| n.to_string()))
            {
                parts.push(s);
            }
        }
        if let Some(s) = e.as_str() {
            parts.push(s.to_owned());
        }
        for key in ["message", "error_description", "Message", "__type"] {
            if let Some(s) = e[key].as_str().or_else(|| v[key].as_str()) {
                parts.push(s.to_owned());
            }
        }
        if !parts.is_empty() {
            return parts.join(": ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if text.is_empty() {
        "empty body".into()
    } else {
        text
    }
}

#[cfg(any(feature = "azure", feature = "gcp"))]
impl Http {
    pub(crate) fn new(provider: &str, tls: &TlsOptions, retry: RetryPolicy) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidOptions {
            provider: provider.to_owned(),
            reason,
        };
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(false)
            .connect_timeout(retry.request_timeout)
            .timeout(retry.request_timeout);
        if let Some(pem) = &tls.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("tlsCAFile: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &tls.identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| invalid(format!("tlsCertificateKeyFile: {e}")))?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| invalid(format!("HTTP client: {e}")))?;
        Ok(Http {
            client,
            provider: provider.to_owned(),
            retry,
        })
    }

    fn remote(&self, endpoint: &str, message: String) -> Error {
        Error::Remote {
            provider: self.provider.clone(),
            endpoint: endpoint.to_owned(),
            message,
        }
    }

    /// Sends the request `build` makes (again for each attempt) and returns
    /// the JSON reply of a 2xx answer.
    pub(crate) async fn json(
        &self,
        endpoint: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, Error> {
        let started = Instant::now();
        let mut last = String::new();
        for attempt in 0..self.retry.max_attempts.max(1) {
            if attempt > 0 {
                let base = self.retry.initial_backoff * 2u32.saturating_pow(attempt - 1);
                let mut jitter = [0u8; 2];
                let _ = crate::crypto::fill_random(&mut jitter);
                let extra =
                    base.mul_f64(f64::from(u16::from_le_bytes(jitter)) / f64::from(u16::MAX) / 2.0);
                tokio::time::sleep(base + extra).await;
            }
            match self.attempt(&build).await {
                Ok(v) => return Ok(v),
                Err(Attempt::Fail(message)) => return Err(self.remote(endpoint, message)),
                Err(Attempt::Retry(message)) => {
                    tracing::debug!(provider = %self.provider, endpoint, attempt, %message, "KMS request failed; retrying");
                    last = message;
                }
            }
        }
        Err(self.remote(
            endpoint,
            format!(
                "{last} (gave up after {} attempts in {:.1} s)",
                self.retry.max_attempts.max(1),
                started.elapsed().as_secs_f64()
            ),
        ))
    }

    async fn attempt(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, Attempt> {
        let response = match build(&self.client).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(Attempt::Retry("request timed out".into())),
            Err(e) if e.is_connect() || e.is_request() => {
                // The error chain names the cause (refused, reset, TLS).
                let mut cause = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    cause = format!("{cause}: {s}");
                    source = s.source();
                }
                return Err(Attempt::Retry(format!("connection failed: {cause}")));
            }
            Err(e) => return Err(Attempt::Fail(format!("request failed: {e}"))),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Err(Attempt::Retry("reply timed out".into())),
            Err(e) => return Err(Attempt::Retry(format!("reply cut off: {e}"))),
        };
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                Attempt::Fail(format!(
                    "HTTP {}: malformed JSON reply: {e}",
                    status.as_u16()
                ))
            });
        }
        let message = format!("HTTP {}: {}", status.as_u16(), error_text(&body));
        if status.as_u16() == 429 || status.is_server_error() {
            Err(Attempt::Retry(message))
        } else {
            Err(Attempt::Fail(message))
        }
    }
}

#[cfg(any(feature = "azure", feature = "gcp"))]
/// A bearer token and when to stop using it (a minute before it expires).
struct CachedToken {
    token: Zeroizing<String>,
    refresh_at: Instant,
}

#[cfg(any(feature = "azure", feature = "gcp"))]
impl CachedToken {
    /// A token valid for `expires_in` seconds from now.
    fn new(token: String, expires_in: u64) -> Self {
        let margin = expires_in.saturating_sub(60).max(expires_in / 2);
        CachedToken {
            token: Zeroizing::new(token),
            refresh_at: Instant::now() + Duration::from_secs(margin),
        }
    }

    fn fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }
}

#[cfg(any(feature = "azure", feature = "gcp"))]
/// The bearer token of a provider, fetched when missing or about to
/// expire; one fetch at a time (concurrent callers wait for it).
#[derive(Default)]
pub(crate) struct TokenCache(tokio::sync::Mutex<Option<CachedToken>>);

#[cfg(any(feature = "azure", feature = "gcp"))]
impl TokenCache {
    /// The cached token, or the one `fetch` returns (its URL and JSON reply
    /// with `access_token` and `expires_in`).
    pub(crate) async fn get<F, Fut>(
        &self,
        provider: &str,
        fetch: F,
    ) -> Result<Zeroizing<String>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, serde_json::Value), Error>>,
    {
        let mut cached = self.0.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| t.fresh()) {
            return Ok(t.token.clone());
        }
        let (url, reply) = fetch().await?;
        let token = reply["access_token"]
            .as_str()
            .ok_or_else(|| Error::Remote {
                provider: provider.to_owned(),
                endpoint: url,
                message: "token reply without access_token".into(),
            })?;
        let t = CachedToken::new(token.to_owned(), expires_in(&reply));
        let out = t.token.clone();
        *cached = Some(t);
        Ok(out)
    }
}

#[cfg(any(feature = "azure", feature = "gcp"))]
/// `expires_in` as a number of seconds: a JSON number, or a string (Azure
/// IMDS sends `"3599"`).
fn expires_in(v: &serde_json::Value) -> u64 {
    v["expires_in"]
        .as_u64()
        .or_else(|| v["expires_in"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(300)
}

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
/// A string option of a provider's `kmsProviders` entry.
pub(crate) fn string_option(
    provider: &str,
    doc: &Document,
    key: &str,
) -> Result<Option<String>, Error> {
    match doc.get(key) {
        None => Ok(None),
        Some(Bson::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(Error::InvalidOptions {
            provider: provider.to_owned(),
            reason: format!("'{key}' must be a non-empty string"),
        }),
    }
}

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
/// Refuses fields of a `kmsProviders` entry that the provider does not take.
pub(crate) fn only_fields(provider: &str, doc: &Document, allowed: &[&str]) -> Result<(), Error> {
    match doc.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Error::InvalidOptions {
            provider: provider.to_owned(),
            reason: format!("unexpected field '{k}'"),
        }),
        None => Ok(()),
    }
}

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
/// `https://host[:port]` for a host option, or the URL itself when it
/// already has a scheme (tests point providers at loopback emulators).
pub(crate) fn base_url(host: &str) -> String {
    let host = host.trim_end_matches('/');
    if host.starts_with("https://") || host.starts_with("http://") {
        host.to_owned()
    } else {
        format!("https://{host}")
    }
}

#[cfg(any(feature = "azure", feature = "gcp"))]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_text(
                br#"{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}"#
            ),
            "PERMISSION_DENIED: 403: denied"
        );
        assert_eq!(
            error_text(br#"{"error":"invalid_client","error_description":"bad secret id"}"#),
            "invalid_client: bad secret id"
        );
        assert_eq!(
            error_text(
                b"<ErrorResponse><Error><Code>InvalidClientTokenId</Code></Error></ErrorResponse>"
            ),
            "<ErrorResponse><Error><Code>InvalidClientTokenId</Code></Error></ErrorResponse>"
        );
        assert_eq!(error_text(b""), "empty body");
        assert_eq!(
            base_url("vault.example:8443/"),
            "https://vault.example:8443"
        );
        assert_eq!(base_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }
}
