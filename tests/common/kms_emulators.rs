//! Loopback emulators of the cloud KMS HTTP APIs, for the provider tests:
//!
//! * **Azure**: the identity platform's client-credentials token endpoint,
//!   the Instance Metadata Service token endpoint, and Key Vault's
//!   `wrapkey`/`unwrapkey` (api-version 7.1) with real RSA-OAEP-256 keys;
//!   only tokens it issued are accepted.
//! * **GCP**: the OAuth token endpoint taking a service-account JWT (RS256
//!   signature, `iss`, `aud`, `scope` and `exp` verified), the metadata
//!   server's token endpoint, and Cloud KMS `:encrypt`/`:decrypt` with a
//!   real AEAD key per crypto key.
//! * **AWS** (a test double, not an emulator): `Encrypt`/`Decrypt` over the
//!   JSON protocol, recording each request's target and body and answering
//!   `Decrypt` with a chosen `KeyId` (or a chosen error), for checks moto
//!   does not make; signatures are not checked (moto checks them).
//!
//! Served over HTTPS with certificates from a CA generated per test binary
//! (also an expired certificate, one for the wrong host, and a client
//! certificate), or plain HTTP (IMDS and the metadata server are HTTP).
//! Failpoints make the next matching requests drop the connection, answer
//! 429 / 500, send malformed JSON or answer late. Bound to 127.0.0.1 only.
#![allow(dead_code)]

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_rustls::rustls;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Certificates for the emulators and the clients, in files the providers'
/// `tlsOptions` can name.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The test CA (PEM); `ca.pem` in `dir`.
    pub ca_pem: String,
    /// Client certificate + key (PEM), signed by the CA; `client.pem` in `dir`.
    pub client_pem: String,
    /// Server certificate for 127.0.0.1 / localhost.
    good: (String, String),
    /// Server certificate that expired yesterday.
    expired: (String, String),
    /// Server certificate for another host name.
    wrong_host: (String, String),
}

impl Pki {
    pub fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }
    pub fn client_file(&self) -> String {
        self.dir.path().join("client.pem").display().to_string()
    }
}

fn issue(
    names: Vec<String>,
    ca: &rcgen::Issuer<'_, rcgen::KeyPair>,
    expired: bool,
    client: bool,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The test PKI, generated once per test binary.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "csfle test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca_pem = ca_cert.pem();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let local = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let good = issue(local.clone(), &issuer, false, false);
        let expired = issue(local, &issuer, true, false);
        let wrong_host = issue(vec!["wrong.host.example".to_owned()], &issuer, false, false);
        let (client_cert, client_key) =
            issue(vec!["csfle-client".to_owned()], &issuer, false, true);
        let client_pem = format!("{client_cert}{client_key}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(dir.path().join("client.pem"), &client_pem).unwrap();
        Pki {
            dir,
            ca_pem,
            client_pem,
            good,
            expired,
            wrong_host,
        }
    })
}

/// How an emulator listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP (IMDS, the metadata server).
    Http,
    /// HTTPS with a valid certificate for 127.0.0.1.
    Https,
    /// HTTPS that also requires a client certificate from the test CA.
    HttpsClientAuth,
    /// HTTPS with an expired certificate.
    HttpsExpired,
    /// HTTPS with a certificate for another host.
    HttpsWrongHost,
}

/// What the next matching requests get instead of a normal answer.
#[derive(Clone, Debug)]
pub enum Failpoint {
    /// Close the connection without answering.
    Drop,
    /// Answer with this HTTP status and a JSON error.
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    MalformedJson,
    /// Answer normally, after this delay.
    Slow(Duration),
    /// Answer 200 with this JSON instead.
    Json(serde_json::Value),
    /// Answer 307 with this `Location` (a client must not follow it).
    Redirect(String),
}

/// A request as the handlers see it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// `https://127.0.0.1:<port>` (or `http://…`).
    pub base_url: String,
}

impl Request {
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn bearer(&self) -> Option<&str> {
        self.headers.get("authorization")?.strip_prefix("Bearer ")
    }
}

pub struct Response {
    pub status: u16,
    pub body: serde_json::Value,
}

pub fn reply(status: u16, body: serde_json::Value) -> Response {
    Response { status, body }
}

pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request) -> Response;
}

#[derive(Default)]
pub struct Shared {
    failpoints: Mutex<Vec<(String, Failpoint, usize)>>,
    requests: Mutex<Vec<String>>,
}

/// A running emulator; stops when dropped.
pub struct Server {
    pub url: String,
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// The next `times` requests whose path contains `path` get `failpoint`.
    pub fn fail(&self, path: &str, failpoint: Failpoint, times: usize) {
        self.shared
            .failpoints
            .lock()
            .unwrap()
            .push((path.to_owned(), failpoint, times));
    }

    /// How many requests had a path containing `path`.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(path))
            .count()
    }

    /// `host:port` (for options that take a host).
    pub fn host(&self) -> String {
        self.url.split("://").nth(1).unwrap().to_owned()
    }
}

/// Options for `provider` against the emulator `server`: the test CA
/// trusted, the server's host allowed in key documents, and one quick
/// attempt per request (a test of a refusal must not wait for retries).
pub fn one_attempt_options(provider: &str, server: &Server) -> csfle::kms::ProviderOptions {
    let mut tls = bson::Document::new();
    tls.insert(provider, bson::doc! {"tlsCAFile": pki().ca_file()});
    csfle::kms::ProviderOptions::default()
        .with_tls(tls)
        .with_retry(
            csfle::kms::RetryPolicy::default()
                .with_max_attempts(1)
                .with_initial_backoff(Duration::from_millis(10))
                .with_request_timeout(Duration::from_secs(5)),
        )
        .allow_host(&server.host())
        .unwrap()
}

fn server_config(transport: Transport) -> Option<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pki = pki();
    let (cert, key) = match transport {
        Transport::Http => return None,
        Transport::Https | Transport::HttpsClientAuth => &pki.good,
        Transport::HttpsExpired => &pki.expired,
        Transport::HttpsWrongHost => &pki.wrong_host,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if transport == Transport::HttpsClientAuth {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Some(Arc::new(builder.with_single_cert(certs, key).unwrap()))
}

/// Starts `handler` on a fresh 127.0.0.1 port.
pub async fn serve(handler: Arc<dyn Handler>, transport: Transport) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let scheme = if transport == Transport::Http {
        "http"
    } else {
        "https"
    };
    let url = format!("{scheme}://127.0.0.1:{port}");
    let shared = Arc::new(Shared::default());
    let tls = server_config(transport).map(tokio_rustls::TlsAcceptor::from);
    let (base, state) = (url.clone(), shared.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (handler, state, base, tls) =
                (handler.clone(), state.clone(), base.clone(), tls.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (handler, state, base) = (handler.clone(), state.clone(), base.clone());
                    async move { respond(req, handler, state, base).await }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            let _ = builder
                                .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    Server { url, shared, task }
}

async fn respond(
    req: hyper::Request<hyper::body::Incoming>,
    handler: Arc<dyn Handler>,
    state: Arc<Shared>,
    base_url: String,
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes()
        .to_vec();
    state
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {path}"));
    let failpoint = {
        let mut fps = state.failpoints.lock().unwrap();
        let hit = fps
            .iter_mut()
            .find(|(p, _, n)| *n > 0 && path.contains(p.as_str()));
        hit.map(|(_, fp, n)| {
            *n -= 1;
            fp.clone()
        })
    };
    let request = Request {
        method,
        path,
        query,
        headers,
        body,
        base_url,
    };
    let response = match failpoint {
        Some(Failpoint::Drop) => return Err(std::io::Error::other("failpoint: drop connection")),
        Some(Failpoint::Status(status)) => reply(
            status,
            serde_json::json!({"error": {"code": status, "message": "failpoint", "status": "UNAVAILABLE"}}),
        ),
        Some(Failpoint::MalformedJson) => {
            return Ok(hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"value\": ")))
                .unwrap());
        }
        Some(Failpoint::Json(v)) => reply(200, v),
        Some(Failpoint::Redirect(location)) => {
            return Ok(hyper::Response::builder()
                .status(307)
                .header("location", location)
                .body(Full::new(Bytes::new()))
                .unwrap());
        }
        Some(Failpoint::Slow(d)) => {
            tokio::time::sleep(d).await;
            handler.handle(&request)
        }
        None => handler.handle(&request),
    };
    Ok(hyper::Response::builder()
        .status(response.status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(response.body.to_string())))
        .unwrap())
}

fn new_token() -> String {
    let mut b = [0u8; 24];
    csfle::fill_random(&mut b).unwrap();
    B64URL.encode(b)
}

fn unauthorized() -> Response {
    reply(
        401,
        serde_json::json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}),
    )
}

/// An RSA key pair for tests: generated once per binary (key generation is
/// slow), the same for every emulator that needs one.
pub fn rsa_key() -> &'static rsa::PrivateKey {
    static KEY: OnceLock<rsa::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::PrivateKey::new(&mut rand::rngs::SysRng, 2048).unwrap())
}

/// Azure: identity platform, IMDS and Key Vault in one.
pub struct Azure {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    tokens: Mutex<HashSet<String>>,
    /// Key names that exist (all share the test RSA key).
    pub keys: Mutex<HashSet<String>>,
}

impl Azure {
    pub fn new() -> Arc<Self> {
        Arc::new(Azure {
            tenant_id: "test-tenant".into(),
            client_id: "test-client".into(),
            client_secret: "test-secret".into(),
            tokens: Mutex::new(HashSet::new()),
            keys: Mutex::new(HashSet::from(["key-name-csfle".to_owned()])),
        })
    }

    fn token(&self, expires_in: serde_json::Value) -> Response {
        let t = new_token();
        self.tokens.lock().unwrap().insert(t.clone());
        reply(
            200,
            serde_json::json!({"token_type": "Bearer", "expires_in": expires_in, "access_token": t}),
        )
    }

    /// A token this emulator issued (for tests giving `accessToken`).
    pub fn issue_token(&self) -> String {
        let t = new_token();
        self.tokens.lock().unwrap().insert(t.clone());
        t
    }
}

impl Handler for Azure {
    fn handle(&self, req: &Request) -> Response {
        let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
                let f = req.form();
                let ok = *tenant == self.tenant_id
                    && f.get("grant_type").map(String::as_str) == Some("client_credentials")
                    && f.get("scope").map(String::as_str)
                        == Some("https://vault.azure.net/.default")
                    && f.get("client_id") == Some(&self.client_id)
                    && f.get("client_secret") == Some(&self.client_secret);
                if ok {
                    self.token(serde_json::json!(3599))
                } else {
                    reply(
                        401,
                        serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
                    )
                }
            }
            ("GET", ["metadata", "identity", "oauth2", "token"]) => {
                if req.headers.get("metadata").map(String::as_str) != Some("true")
                    || req.query.get("resource").map(String::as_str)
                        != Some("https://vault.azure.net")
                {
                    return reply(
                        400,
                        serde_json::json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
                    );
                }
                // IMDS sends expires_in as a string.
                self.token(serde_json::json!("3599"))
            }
            ("POST", ["keys", name, rest @ ..]) => {
                let operation = rest.last().copied().unwrap_or_default();
                if req.query.get("api-version").map(String::as_str) != Some("7.1") {
                    return reply(
                        400,
                        serde_json::json!({"error": {"code": "BadParameter", "message": "api-version"}}),
                    );
                }
                match req.bearer() {
                    Some(t) if self.tokens.lock().unwrap().contains(t) => {}
                    _ => return unauthorized(),
                }
                if !self.keys.lock().unwrap().contains(*name) {
                    return reply(
                        404,
                        serde_json::json!({"error": {"code": "KeyNotFound", "message": format!("A key with (name/id) {name} was not found in this key vault.")}}),
                    );
                }
                let Some(body) = req.json() else {
                    return reply(
                        400,
                        serde_json::json!({"error": {"code": "BadParameter", "message": "body"}}),
                    );
                };
                if body["alg"] != "RSA-OAEP-256" {
                    return reply(
                        400,
                        serde_json::json!({"error": {"code": "BadParameter", "message": "alg"}}),
                    );
                }
                let Some(value) = body["value"]
                    .as_str()
                    .and_then(|v| B64URL.decode(v.trim_end_matches('=')).ok())
                else {
                    return reply(
                        400,
                        serde_json::json!({"error": {"code": "BadParameter", "message": "value"}}),
                    );
                };
                let key = rsa_key();
                let padding = rsa::Oaep::<sha2::Sha256>::new();
                let out = match operation {
                    "wrapkey" => key
                        .to_public_key()
                        .encrypt(&mut rand::rngs::SysRng, padding, &value)
                        .map_err(|e| e.to_string()),
                    "unwrapkey" => key.decrypt(padding, &value).map_err(|e| e.to_string()),
                    _ => {
                        return reply(
                            404,
                            serde_json::json!({"error": {"code": "NotFound", "message": "operation"}}),
                        );
                    }
                };
                match out {
                    Ok(v) => reply(
                        200,
                        serde_json::json!({"kid": format!("{}/keys/{name}/1", req.base_url), "value": B64URL.encode(v)}),
                    ),
                    Err(e) => reply(
                        400,
                        serde_json::json!({"error": {"code": "BadParameter", "message": e}}),
                    ),
                }
            }
            _ => reply(
                404,
                serde_json::json!({"error": {"code": "NotFound", "message": req.path}}),
            ),
        }
    }
}

/// The GCP service account the tests use: its email and its private key
/// as the drivers pass it (base64 of PKCS#8 DER).
pub fn gcp_service_account() -> (String, String) {
    let der = rsa_key().to_pkcs8_der().unwrap();
    (
        "csfle-test@csfle-test.iam.gserviceaccount.com".into(),
        B64.encode(der.as_bytes()),
    )
}

/// GCP: OAuth token endpoint, metadata server and Cloud KMS in one.
pub struct Gcp {
    email: String,
    decoding_key: jsonwebtoken::DecodingKey,
    tokens: Mutex<HashSet<String>>,
    /// Crypto keys by resource name (`projects/…/cryptoKeys/…`).
    keys: Mutex<HashMap<String, csfle::kms::LocalMasterKey>>,
}

#[derive(serde::Deserialize)]
struct Claims {
    scope: String,
}

impl Gcp {
    pub fn new() -> Arc<Self> {
        let public = rsa_key()
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        Arc::new(Gcp {
            email: gcp_service_account().0,
            decoding_key: jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
            tokens: Mutex::new(HashSet::new()),
            keys: Mutex::new(HashMap::new()),
        })
    }

    fn token(&self) -> Response {
        let t = new_token();
        self.tokens.lock().unwrap().insert(t.clone());
        reply(
            200,
            serde_json::json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"}),
        )
    }

    /// A token this emulator issued (for tests giving `accessToken`).
    pub fn issue_token(&self) -> String {
        let t = new_token();
        self.tokens.lock().unwrap().insert(t.clone());
        t
    }

    fn error(status: u16, code: &str, message: &str) -> Response {
        reply(
            status,
            serde_json::json!({"error": {"code": status, "message": message, "status": code}}),
        )
    }
}

impl Handler for Gcp {
    fn handle(&self, req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/token") => {
                let f = req.form();
                if f.get("grant_type").map(String::as_str)
                    != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
                {
                    return reply(400, serde_json::json!({"error": "unsupported_grant_type"}));
                }
                let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
                validation.set_audience(&[format!("{}/token", req.base_url)]);
                validation.set_issuer(&[self.email.as_str()]);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.leeway = 0;
                let assertion = f.get("assertion").cloned().unwrap_or_default();
                match jsonwebtoken::decode::<Claims>(&assertion, &self.decoding_key, &validation) {
                    Ok(t) if t.claims.scope == "https://www.googleapis.com/auth/cloudkms" => {
                        self.token()
                    }
                    Ok(_) => reply(
                        400,
                        serde_json::json!({"error": "invalid_scope", "error_description": "Invalid OAuth scope."}),
                    ),
                    Err(e) => reply(
                        400,
                        serde_json::json!({"error": "invalid_grant", "error_description": format!("Invalid JWT: {e}")}),
                    ),
                }
            }
            ("GET", "/computeMetadata/v1/instance/service-accounts/default/token") => {
                if req.headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
                    return Self::error(
                        403,
                        "PERMISSION_DENIED",
                        "Missing Metadata-Flavor:Google header.",
                    );
                }
                self.token()
            }
            ("POST", path) if path.starts_with("/v1/projects/") => {
                match req.bearer() {
                    Some(t) if self.tokens.lock().unwrap().contains(t) => {}
                    _ => {
                        return Self::error(
                            401,
                            "UNAUTHENTICATED",
                            "Request had invalid authentication credentials.",
                        );
                    }
                }
                let Some((resource, operation)) = path.trim_start_matches("/v1/").rsplit_once(':')
                else {
                    return Self::error(404, "NOT_FOUND", "no operation");
                };
                // The crypto key, without a pinned version.
                let key_name = resource
                    .split("/cryptoKeyVersions/")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let mut keys = self.keys.lock().unwrap();
                let key = keys.entry(key_name).or_insert_with(|| {
                    let mut m = [0u8; 96];
                    csfle::fill_random(&mut m).unwrap();
                    csfle::kms::LocalMasterKey::new(&m).unwrap()
                });
                let body = req.json().unwrap_or_default();
                let field = if operation == "encrypt" {
                    "plaintext"
                } else {
                    "ciphertext"
                };
                let Some(input) = body[field].as_str().and_then(|v| B64.decode(v).ok()) else {
                    return Self::error(400, "INVALID_ARGUMENT", &format!("missing {field}"));
                };
                match operation {
                    "encrypt" => match key.wrap_key(&input) {
                        Ok(c) => reply(
                            200,
                            serde_json::json!({"name": resource, "ciphertext": B64.encode(c)}),
                        ),
                        Err(e) => Self::error(400, "INVALID_ARGUMENT", &e.to_string()),
                    },
                    "decrypt" => match key.unwrap_key(&input) {
                        Ok(p) => reply(200, serde_json::json!({"plaintext": B64.encode(&*p)})),
                        Err(_) => Self::error(
                            400,
                            "INVALID_ARGUMENT",
                            "Decryption failed: the ciphertext is invalid.",
                        ),
                    },
                    _ => Self::error(404, "NOT_FOUND", "operation"),
                }
            }
            _ => Self::error(404, "NOT_FOUND", &req.path),
        }
    }
}

/// A recorded AWS KMS request: its `X-Amz-Target` and JSON body.
#[derive(Clone, Debug)]
pub struct AwsRequest {
    pub target: String,
    pub body: serde_json::Value,
}

/// AWS KMS as a test double. `Decrypt` answers `plaintext` with the
/// `KeyId` set by [`reply_key_id`](Self::reply_key_id) (none: the reply
/// has no `KeyId`), or the error `__type` set by
/// [`fail_with`](Self::fail_with); `Encrypt` answers a fixed blob with the
/// request's `KeyId`.
pub struct AwsDouble {
    pub plaintext: Vec<u8>,
    reply_key_id: Mutex<Option<String>>,
    error: Mutex<Option<String>>,
    requests: Mutex<Vec<AwsRequest>>,
}

impl AwsDouble {
    pub fn new(plaintext: Vec<u8>) -> Arc<Self> {
        Arc::new(AwsDouble {
            plaintext,
            reply_key_id: Mutex::new(None),
            error: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
        })
    }

    /// The `KeyId` the next `Decrypt` replies carry.
    pub fn reply_key_id(&self, key_id: Option<&str>) {
        *self.reply_key_id.lock().unwrap() = key_id.map(str::to_owned);
    }

    /// Every later request gets a 400 with this error `__type` (`None`:
    /// normal answers again).
    pub fn fail_with(&self, error_type: Option<&str>) {
        *self.error.lock().unwrap() = error_type.map(str::to_owned);
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<AwsRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Handler for AwsDouble {
    fn handle(&self, req: &Request) -> Response {
        let target = req.headers.get("x-amz-target").cloned().unwrap_or_default();
        let body = req.json().unwrap_or(serde_json::Value::Null);
        self.requests.lock().unwrap().push(AwsRequest {
            target: target.clone(),
            body: body.clone(),
        });
        if let Some(error_type) = self.error.lock().unwrap().clone() {
            return reply(
                400,
                serde_json::json!({"__type": error_type, "message": "test double"}),
            );
        }
        match target.as_str() {
            "TrentService.Decrypt" => {
                let mut out = serde_json::json!({
                    "Plaintext": B64.encode(&self.plaintext),
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                });
                if let Some(k) = self.reply_key_id.lock().unwrap().clone() {
                    out["KeyId"] = serde_json::Value::String(k);
                }
                reply(200, out)
            }
            "TrentService.Encrypt" => reply(
                200,
                serde_json::json!({
                    "CiphertextBlob": B64.encode(b"wrapped by the test double"),
                    "KeyId": body["KeyId"].clone(),
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                }),
            ),
            _ => reply(
                400,
                serde_json::json!({"__type": "UnknownOperationException", "message": target}),
            ),
        }
    }
}
