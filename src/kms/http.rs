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
/// `tlsCAFile` (trusted CAs, PEM: extra ones for the cloud providers, the
/// only ones for KMIP), `tlsCertificateKeyFile` (a PEM holding the client
/// certificate and its private key) and `tlsCertificateKeyFilePassword`
/// (the password of an encrypted PKCS#8 key in it; see below).
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
    ///
    /// An encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY`, PBES2, as
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it) is decrypted now
    /// with `tlsCertificateKeyFilePassword` (builds with the `kmip`
    /// feature); the password is then dropped, zeroized. OpenSSL's legacy
    /// encrypted PEM (`Proc-Type: 4,ENCRYPTED`) is refused. The password in
    /// `doc` is the caller's to wipe ([`wipe_document`](super::wipe_document)).
    pub fn from_document(provider: &str, doc: &Document) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidOptions {
            provider: provider.to_owned(),
            reason,
        };
        let mut out = TlsOptions::default();
        let mut password: Option<Zeroizing<String>> = None;
        for (k, v) in doc {
            let path = || match v {
                Bson::String(p) => Ok(p.clone()),
                _ => Err(invalid(format!("tlsOptions '{k}' must be a file path"))),
            };
            // The path is not quoted back: errors say which option and what
            // kind of failure, never a value from the options.
            let read = |p: String| {
                std::fs::read(p).map_err(|e| {
                    invalid(format!(
                        "tlsOptions '{k}': cannot read the file ({})",
                        e.kind()
                    ))
                })
            };
            match k.as_str() {
                "tlsCAFile" => out.ca_pem = Some(read(path()?)?),
                "tlsCertificateKeyFile" => {
                    out.identity_pem = Some(Zeroizing::new(read(path()?)?));
                }
                "tlsCertificateKeyFilePassword" => match v {
                    Bson::String(p) => password = Some(Zeroizing::new(p.clone())),
                    _ => return Err(invalid(format!("tlsOptions '{k}' must be a string"))),
                },
                // rustls fetches no OCSP responses, so there is no endpoint
                // check to disable: accepted as the specification requires.
                "tlsDisableOCSPEndpointCheck" => match v {
                    Bson::Boolean(_) => {}
                    _ => return Err(invalid(format!("tlsOptions '{k}' must be a boolean"))),
                },
                "tlsInsecure"
                | "tlsAllowInvalidCertificates"
                | "tlsAllowInvalidHostnames"
                | "tlsDisableCertificateRevocationCheck" => {
                    return Err(invalid(format!("Insecure TLS options prohibited: '{k}'")));
                }
                _ => return Err(invalid(format!("unknown tlsOptions field '{k}'"))),
            }
        }
        out.identity_pem = match (out.identity_pem.take(), password) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(invalid(
                    "tlsOptions 'tlsCertificateKeyFilePassword' needs 'tlsCertificateKeyFile'"
                        .into(),
                ));
            }
            (Some(pem), password) => Some(
                super::client_key::unlock(pem, password.as_ref().map(|p| p.as_str())).map_err(
                    |reason| invalid(format!("tlsOptions 'tlsCertificateKeyFile': {reason}")),
                )?,
            ),
        };
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

    /// The client certificate and its (decrypted) key, PEM.
    #[cfg(feature = "kmip")]
    pub(crate) fn identity_pem(&self) -> Option<&[u8]> {
        self.identity_pem.as_deref().map(Vec::as_slice)
    }

    /// Trusts the CA certificates in `pem`: in addition to the public roots
    /// for the cloud providers, instead of them for KMIP.
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

/// How a provider retries and times out: [`Default`] and the `with_*`
/// setters.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts per request, the first included (default 3).
    pub max_attempts: u32,
    /// Backoff before the second attempt, doubled each time (default 100 ms),
    /// with up to 50% random jitter added.
    pub initial_backoff: Duration,
    /// Time allowed for one attempt, connection included (default 10 s).
    pub request_timeout: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the second attempt):
    /// `initial_backoff` doubled each time, plus up to 50% random jitter.
    #[cfg(any(feature = "azure", feature = "gcp", feature = "kmip"))]
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        let base = self
            .initial_backoff
            .checked_mul(factor)
            .unwrap_or(Duration::MAX);
        let mut jitter = [0u8; 2];
        let _ = crate::crypto::fill_random(&mut jitter);
        base.mul_f64(f64::from(u16::from_le_bytes(jitter)) / f64::from(u16::MAX) / 2.0)
            .saturating_add(base)
    }
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

impl RetryPolicy {
    /// Sets [`max_attempts`](Self::max_attempts) (the first included).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets [`initial_backoff`](Self::initial_backoff).
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
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

/// The largest reply body read from a KMS, token endpoint or metadata
/// service; anything longer is an error, not an allocation.
#[cfg(any(feature = "azure", feature = "gcp"))]
const MAX_REPLY_BYTES: usize = 1 << 20;

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
    /// The client for requests that carry a credential or key material:
    /// HTTPS only, certificates verified (platform roots plus `tlsCAFile`),
    /// redirects never followed.
    pub(crate) fn new(provider: &str, tls: &TlsOptions, retry: RetryPolicy) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidOptions {
            provider: provider.to_owned(),
            reason,
        };
        let mut builder = Self::builder(retry).https_only(true);
        if let Some(pem) = &tls.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| invalid("tlsCAFile: not a PEM certificate bundle".into()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &tls.identity_pem {
            let identity = reqwest::Identity::from_pem(pem).map_err(|_| {
                invalid("tlsCertificateKeyFile: not a PEM certificate and private key".into())
            })?;
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

    /// The client for an instance metadata service (Azure IMDS, the GCP
    /// metadata server): plain HTTP to the one configured link-local host,
    /// which is how those services are reached; no redirects, no TLS
    /// options, used for nothing else.
    pub(crate) fn metadata(provider: &str, retry: RetryPolicy) -> Result<Self, Error> {
        let client = Self::builder(retry)
            .build()
            .map_err(|e| Error::InvalidOptions {
                provider: provider.to_owned(),
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(Http {
            client,
            provider: provider.to_owned(),
            retry,
        })
    }

    fn builder(retry: RetryPolicy) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(retry.request_timeout)
            .timeout(retry.request_timeout)
    }

    fn remote(&self, endpoint: &str, message: String) -> Error {
        Error::Remote {
            provider: self.provider.clone(),
            endpoint: endpoint.to_owned(),
            message,
        }
    }

    /// Sends the request `build` makes (again for each attempt) and parses
    /// the JSON reply of a 2xx answer into `T`. The reply body is read into
    /// a buffer that is zeroized afterwards (it may hold key material or a
    /// token); a parse error names the position, never the content.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let mut last = String::new();
        for attempt in 0..self.retry.max_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.retry.backoff(attempt)).await;
            }
            match self.attempt(&build).await {
                Ok((status, body)) => {
                    return serde_json::from_slice(&body).map_err(|e| {
                        self.remote(
                            endpoint,
                            format!(
                                "HTTP {status}: malformed JSON reply ({} at line {} column {})",
                                match e.classify() {
                                    serde_json::error::Category::Data => "unexpected content",
                                    serde_json::error::Category::Eof => "truncated",
                                    _ => "not JSON",
                                },
                                e.line(),
                                e.column()
                            ),
                        )
                    });
                }
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

    /// One attempt: the status and body of a 2xx reply.
    async fn attempt(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), Attempt> {
        let mut response = match build(&self.client).send().await {
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
        let mut body = Zeroizing::new(Vec::new());
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_REPLY_BYTES {
                        return Err(Attempt::Fail(format!(
                            "HTTP {}: reply longer than {MAX_REPLY_BYTES} bytes",
                            status.as_u16()
                        )));
                    }
                    body.extend_from_slice(&chunk);
                    // Wipe the transport's copy too when it is ours alone.
                    if let Ok(mut owned) = chunk.try_into_mut() {
                        zeroize::Zeroize::zeroize(&mut owned[..]);
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(Attempt::Retry("reply timed out".into())),
                Err(e) => return Err(Attempt::Retry(format!("reply cut off: {e}"))),
            }
        }
        if status.is_success() {
            return Ok((status.as_u16(), body));
        }
        if status.is_redirection() {
            return Err(Attempt::Fail(format!(
                "HTTP {}: redirect refused (KMS redirects are never followed)",
                status.as_u16()
            )));
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
/// A token endpoint's reply: `access_token` and `expires_in` (a number, or
/// a string as Azure IMDS sends it).
#[derive(serde::Deserialize)]
pub(crate) struct TokenReply {
    access_token: Option<Zeroizing<String>>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
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
    fn new(token: Zeroizing<String>, expires_in: u64) -> Self {
        let margin = expires_in.saturating_sub(60).max(expires_in / 2);
        CachedToken {
            token,
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
    /// The cached token, or the one `fetch` returns (its URL and reply).
    pub(crate) async fn get<F, Fut>(
        &self,
        provider: &str,
        fetch: F,
    ) -> Result<Zeroizing<String>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, TokenReply), Error>>,
    {
        let mut cached = self.0.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| t.fresh()) {
            return Ok(t.token.clone());
        }
        let (url, reply) = fetch().await?;
        let expires = expires_in(reply.expires_in.as_ref());
        let token = reply.access_token.ok_or_else(|| Error::Remote {
            provider: provider.to_owned(),
            endpoint: url,
            message: "token reply without access_token".into(),
        })?;
        let t = CachedToken::new(token, expires);
        let out = t.token.clone();
        *cached = Some(t);
        Ok(out)
    }

    /// The cached token, or a new one: the reply of the request `build`
    /// makes to `url` through `http` (the provider's client, or its
    /// metadata-service client).
    pub(crate) async fn get_from(
        &self,
        provider: &str,
        http: &Http,
        url: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Zeroizing<String>, Error> {
        self.get(provider, || async {
            let reply: TokenReply = http.json(url, build).await?;
            Ok((url.to_owned(), reply))
        })
        .await
    }
}

#[cfg(any(feature = "azure", feature = "gcp"))]
/// `expires_in` as a number of seconds: a JSON number, or a string (Azure
/// IMDS sends `"3599"`).
fn expires_in(v: Option<&serde_json::Value>) -> u64 {
    v.and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
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
/// `https://host[:port]` for an endpoint option: `host[:port]`, or
/// `https://host[:port]` where `origin` allows it. Nothing else: requests
/// carrying credentials or key material never go over plain HTTP.
pub(crate) fn https_base(
    provider: &str,
    endpoint: &str,
    origin: super::EndpointOrigin,
) -> Result<String, Error> {
    super::Endpoint::parse(endpoint, origin)
        .map(|e| e.https_base())
        .map_err(|e| Error::InvalidOptions {
            provider: provider.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(any(feature = "azure", feature = "gcp"))]
/// One URL path segment, percent-encoded: everything but RFC 3986's
/// unreserved characters, so a key name cannot add segments, a query or
/// an operation of its own.
pub(crate) fn segment(s: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(s, RESERVED).to_string();
    // `.` and `..` are path navigation, not names.
    match encoded.as_str() {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => encoded,
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
        use crate::kms::EndpointOrigin::*;
        assert_eq!(
            https_base("p", "https://vault.example:8443/", Application).unwrap(),
            "https://vault.example:8443"
        );
        assert!(https_base("p", "http://127.0.0.1:9", Application).is_err());
        assert!(https_base("p", "https://127.0.0.1:9", KeyDocument).is_err());
        assert_eq!(segment("k/../x?y#z"), "k%2F..%2Fx%3Fy%23z");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("key-name_1.v~2"), "key-name_1.v~2");
        assert_eq!(segment("a:decrypt"), "a%3Adecrypt");
    }
}
