//! A KMIP server in the test process, its certificates, and the client
//! helpers the KMIP tests share (`tests/kms_kmip.rs`, `tests/kms_kmip_prose_server.rs`,
//! `tests/kms_kmip_libmongocrypt_server.rs`; each declares `mod common;` beside it).
//!
//! The server listens on a fresh 127.0.0.1 port (TLS 1.2 or 1.3, client
//! certificates from the test CA required) and answers Register, Activate,
//! Get, Create, Encrypt and Decrypt as a KMIP server does (delegated keys
//! are real AES-256-CBC), or follows a script for the next requests: drop
//! the connection, cut the reply short, send an oversized or malformed
//! reply, never answer. It records every connection and every operation.
//! Its certificate is valid for 127.0.0.1 and localhost, or (for the
//! specification's KMS TLS tests) expired, or issued for another host.
#![allow(dead_code)]

use crate::common::{LOCAL_MASTERKEY_B64, service_env};
use bson::{Binary, Bson, Document, doc};
use csfle::kms::MasterKey;
use csfle::kms::kmip::ttlv::{self, Item, ItemType, Tag, Writer};
use csfle::kms::kmip::{CallError, request::Operation};
use csfle::kms::{Error, KmsProviders, ProviderName, ProviderOptions, RetryPolicy};
use csfle::{Algorithm, ClientEncryption, KeyRef};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

// ---------------------------------------------------------------------------
// Certificates

/// The password of `client-encrypted.pem`.
pub const KEY_PASSWORD: &str = "kmip test key password";

/// The test CA, the server's certificates and the client files.
pub struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    server_cert: String,
    server_key: String,
    expired_cert: String,
    expired_key: String,
    wrong_host_cert: String,
    wrong_host_key: String,
}

impl Pki {
    /// `ca.pem`, `other-ca.pem`, `client.pem`, `client-encrypted.pem`
    /// (the same key, encrypted PKCS#8), `other-client.pem` (from
    /// another CA).
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A self-signed CA: its PEM and the issuer that signs with it.
pub fn new_ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, rcgen::Issuer::new(params, key))
}

/// A certificate for `names` (subjectAltNames) signed by `issuer`, valid
/// from 1975 to 4096 (rcgen's defaults).
pub fn issue(
    names: &[&str],
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    purpose: rcgen::ExtendedKeyUsagePurpose,
) -> (String, rcgen::KeyPair) {
    issue_with(names, issuer, purpose, false)
}

/// [`issue`], or, when `expired`, valid only during the year 2000.
pub fn issue_with(
    names: &[&str],
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    purpose: rcgen::ExtendedKeyUsagePurpose,
    expired: bool,
) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.extended_key_usages = vec![purpose];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    (params.signed_by(&key, issuer).unwrap().pem(), key)
}

/// `key` as encrypted PKCS#8 PEM (PBKDF2-SHA256, AES-256-CBC), as `openssl
/// pkcs8 -topk8 -v2 aes-256-cbc` writes it.
pub fn encrypted_pem(pkcs8_der: &[u8], password: &str) -> String {
    use pkcs8::der::Decode;
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8_der).unwrap();
    let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
        2048,
        b"kmip-test-salt!!",
        [3; 16],
    )
    .unwrap();
    info.encrypt_with_params(params, password)
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

/// The certificates, made once per test binary.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let (ca_pem, ca) = new_ca("csfle KMIP test CA");
        let (other_ca_pem, other_ca) = new_ca("another CA");
        let (server_cert, server_key) = issue(&["127.0.0.1", "localhost"], &ca, ServerAuth);
        // The specification's expired.pem and wrong-host.pem, made here.
        let (expired_cert, expired_key) =
            issue_with(&["127.0.0.1", "localhost"], &ca, ServerAuth, true);
        let (wrong_host_cert, wrong_host_key) = issue(&["wrong-host.invalid"], &ca, ServerAuth);
        let (client_cert, client_key) = issue(&["csfle-client"], &ca, ClientAuth);
        let (other_cert, other_key) = issue(&["csfle-client"], &other_ca, ClientAuth);
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_pem.clone());
        write("other-ca.pem", other_ca_pem);
        write(
            "client.pem",
            format!("{client_cert}{}", client_key.serialize_pem()),
        );
        write(
            "client-encrypted.pem",
            format!(
                "{client_cert}{}",
                encrypted_pem(&client_key.serialize_der(), KEY_PASSWORD)
            ),
        );
        write(
            "other-client.pem",
            format!("{other_cert}{}", other_key.serialize_pem()),
        );
        Pki {
            dir,
            ca_pem,
            server_cert,
            server_key: server_key.serialize_pem(),
            expired_cert,
            expired_key: expired_key.serialize_pem(),
            wrong_host_cert,
            wrong_host_key: wrong_host_key.serialize_pem(),
        }
    })
}

// ---------------------------------------------------------------------------
// The in-process KMIP server

/// What the server does with the next request.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Answer as a KMIP server.
    Kmip,
    /// Answer these bytes.
    Reply(Vec<u8>),
    /// Close the connection without answering.
    CloseAfterRequest,
    /// Send these bytes (the start of a reply), then close.
    CloseAfter(Vec<u8>),
    /// Never answer.
    Silent,
}

/// A managed object the server keeps.
#[derive(Debug)]
pub enum Object {
    Secret(Vec<u8>),
    Aes([u8; 32]),
}

/// The server's objects: Unique Identifier → (object, active).
#[derive(Default)]
pub struct Store {
    objects: HashMap<String, (Object, bool)>,
    next: u64,
}

/// What the server's tasks share.
#[derive(Default)]
pub struct Shared {
    accepted: AtomicUsize,
    operations: Mutex<Vec<Operation>>,
    script: Mutex<VecDeque<Behavior>>,
    store: Mutex<Store>,
}

/// A running server; stopped when dropped.
pub struct KmipServer {
    /// The 127.0.0.1 port it listens on.
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KmipServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The TLS version the server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    V12,
    V13,
}

/// The certificate the server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerCert {
    /// From the test CA, for 127.0.0.1 and localhost.
    Valid,
    /// The same names, expired in 2001.
    Expired,
    /// From the test CA, for `wrong-host.invalid` only.
    WrongHost,
}

/// The server's TLS configuration: `version`, `cert`, client certificates
/// from the test CA required.
pub fn server_config(version: Tls, cert: ServerCert) -> Arc<rustls::ServerConfig> {
    let pki = pki();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let (cert_pem, key_pem) = match cert {
        ServerCert::Valid => (&pki.server_cert, &pki.server_key),
        ServerCert::Expired => (&pki.expired_cert, &pki.expired_key),
        ServerCert::WrongHost => (&pki.wrong_host_cert, &pki.wrong_host_key),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let versions: &[&'static rustls::SupportedProtocolVersion] = match version {
        Tls::V12 => &[&rustls::version::TLS12],
        Tls::V13 => &[&rustls::version::TLS13],
    };
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

impl KmipServer {
    /// A server on a fresh 127.0.0.1 port, TLS 1.2 only (as PyKMIP).
    pub async fn start() -> KmipServer {
        KmipServer::start_with(Tls::V12).await
    }

    /// A server speaking only `version`, with the valid certificate.
    pub async fn start_with(version: Tls) -> KmipServer {
        KmipServer::start_with_cert(version, ServerCert::Valid).await
    }

    /// A server speaking only `version`, presenting `cert`.
    pub async fn start_with_cert(version: Tls, cert: ServerCert) -> KmipServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(version, cert));
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                state.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(stream, acceptor.clone(), state.clone()));
            }
        });
        KmipServer { port, shared, task }
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The next requests get these behaviors, in order; then `Kmip` again.
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.shared.script.lock().unwrap().extend(behaviors);
    }

    /// How many TCP connections it accepted.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// The operations received so far, and forgets them.
    pub fn take_operations(&self) -> Vec<Operation> {
        std::mem::take(&mut *self.shared.operations.lock().unwrap())
    }

    /// Stores an active object; its Unique Identifier.
    pub fn seed(&self, object: Object) -> String {
        self.shared.store.lock().unwrap().insert(object, true)
    }
}

pub async fn serve_connection(
    stream: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    let Ok(mut tls) = acceptor.accept(stream).await else {
        return;
    };
    loop {
        let Some(request) = read_message(&mut tls).await else {
            return;
        };
        let behavior = shared
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Behavior::Kmip);
        let (operation, reply) = shared.store.lock().unwrap().answer(&request);
        shared.operations.lock().unwrap().push(operation);
        let bytes = match behavior {
            Behavior::Kmip => reply,
            Behavior::Reply(bytes) => bytes,
            Behavior::CloseAfterRequest => return,
            Behavior::CloseAfter(bytes) => {
                let _ = tls.write_all(&bytes).await;
                let _ = tls.flush().await;
                return;
            }
            Behavior::Silent => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        };
        if tls.write_all(&bytes).await.is_err() || tls.flush().await.is_err() {
            return;
        }
    }
}

/// One TTLV message: the 8-byte header and the length it announces.
pub async fn read_message<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.ok()?;
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > 1 << 20 {
        return None;
    }
    let mut message = header.to_vec();
    message.resize(8 + len, 0);
    stream.read_exact(&mut message[8..]).await.ok()?;
    Some(message)
}

pub fn structure<'i, 'a>(items: &'i [Item<'a>], tag: Tag) -> &'i [Item<'a>] {
    ttlv::find(items, tag, ItemType::Structure)
        .and_then(Item::children)
        .unwrap_or_else(|| panic!("request without {tag}"))
}

pub fn text(items: &[Item<'_>], tag: Tag) -> String {
    let bytes = ttlv::find(items, tag, ItemType::TextString)
        .and_then(Item::text_string)
        .unwrap_or_else(|| panic!("request without {tag}"));
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub fn bytes(items: &[Item<'_>], tag: Tag) -> Vec<u8> {
    ttlv::find(items, tag, ItemType::ByteString)
        .and_then(Item::byte_string)
        .unwrap_or_else(|| panic!("request without {tag}"))
        .to_vec()
}

/// `ResponseMessage { ResponseHeader, BatchItem { Operation, … } }`.
pub fn response(operation: Operation, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::default();
    w.structure(Tag::RESPONSE_MESSAGE, |w| {
        w.structure(Tag::RESPONSE_HEADER, |w| {
            w.structure(Tag::PROTOCOL_VERSION, |w| {
                w.integer(Tag::PROTOCOL_VERSION_MAJOR, 1);
                w.integer(Tag::PROTOCOL_VERSION_MINOR, 2);
            });
            w.date_time(Tag::TIME_STAMP, 1_700_000_000);
            w.integer(Tag::BATCH_COUNT, 1);
        });
        w.structure(Tag::BATCH_ITEM, |w| {
            w.enumeration(Tag::OPERATION, operation.code());
            body(w);
        });
    });
    w.finish().unwrap().to_vec()
}

pub fn success(operation: Operation, payload: impl FnOnce(&mut Writer)) -> Vec<u8> {
    response(operation, |w| {
        w.enumeration(Tag::RESULT_STATUS, 0);
        w.structure(Tag::RESPONSE_PAYLOAD, payload);
    })
}

/// Result Status Operation Failed with `reason`.
pub fn failure(operation: Operation, reason: u32, message: &str) -> Vec<u8> {
    response(operation, |w| {
        w.enumeration(Tag::RESULT_STATUS, 1);
        w.enumeration(Tag::RESULT_REASON, reason);
        w.text_string(Tag::RESULT_MESSAGE, message);
    })
}

pub const ITEM_NOT_FOUND: u32 = 0x01;
pub const ILLEGAL_OPERATION: u32 = 0x0B;

pub fn aes_cbc(key: &[u8; 32], iv: &[u8; 16], data: &[u8], encrypt: bool) -> Option<Vec<u8>> {
    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
    if encrypt {
        let mut buf = data.to_vec();
        buf.resize((data.len() / 16 + 1) * 16, 0);
        let out = cbc::Encryptor::<aes::Aes256>::new(&(*key).into(), &(*iv).into())
            .encrypt_padded::<Pkcs7>(&mut buf, data.len())
            .ok()?
            .to_vec();
        Some(out)
    } else {
        let mut buf = data.to_vec();
        let out = cbc::Decryptor::<aes::Aes256>::new(&(*key).into(), &(*iv).into())
            .decrypt_padded::<Pkcs7>(&mut buf)
            .ok()?
            .to_vec();
        Some(out)
    }
}

impl Store {
    pub fn insert(&mut self, object: Object, active: bool) -> String {
        self.next += 1;
        let id = self.next.to_string();
        self.objects.insert(id.clone(), (object, active));
        id
    }

    /// The request's operation and the reply a KMIP server gives.
    pub fn answer(&mut self, request: &[u8]) -> (Operation, Vec<u8>) {
        let items = ttlv::decode(request).expect("csfle sends well-formed TTLV");
        let message = structure(&items, Tag::REQUEST_MESSAGE);
        let batch = structure(message, Tag::BATCH_ITEM);
        let code = ttlv::find(batch, Tag::OPERATION, ItemType::Enumeration)
            .and_then(Item::enumeration)
            .expect("an Operation");
        let operation = [
            Operation::Create,
            Operation::Register,
            Operation::Get,
            Operation::Activate,
            Operation::Encrypt,
            Operation::Decrypt,
        ]
        .into_iter()
        .find(|o| o.code() == code)
        .expect("one of csfle's six operations");
        let payload = structure(batch, Tag::REQUEST_PAYLOAD);
        let reply = match operation {
            Operation::Register => {
                let secret = structure(payload, Tag::SECRET_DATA);
                let key_value = structure(structure(secret, Tag::KEY_BLOCK), Tag::KEY_VALUE);
                let id = self.insert(Object::Secret(bytes(key_value, Tag::KEY_MATERIAL)), false);
                success(operation, |w| w.text_string(Tag::UNIQUE_IDENTIFIER, &id))
            }
            Operation::Create => {
                let mut key = [0u8; 32];
                csfle::fill_random(&mut key).unwrap();
                let id = self.insert(Object::Aes(key), false);
                success(operation, |w| {
                    w.enumeration(Tag::OBJECT_TYPE, 2);
                    w.text_string(Tag::UNIQUE_IDENTIFIER, &id);
                })
            }
            Operation::Activate => {
                let id = text(payload, Tag::UNIQUE_IDENTIFIER);
                match self.objects.get_mut(&id) {
                    Some((_, active)) if !*active => {
                        *active = true;
                        success(operation, |w| w.text_string(Tag::UNIQUE_IDENTIFIER, &id))
                    }
                    Some(_) => failure(operation, ILLEGAL_OPERATION, "object is already active"),
                    None => failure(operation, ITEM_NOT_FOUND, "no such object"),
                }
            }
            Operation::Get => {
                let id = text(payload, Tag::UNIQUE_IDENTIFIER);
                match self.objects.get(&id) {
                    Some((Object::Secret(material), _)) => success(operation, |w| {
                        w.enumeration(Tag::OBJECT_TYPE, 7);
                        w.text_string(Tag::UNIQUE_IDENTIFIER, &id);
                        w.structure(Tag::SECRET_DATA, |w| {
                            w.enumeration(Tag::SECRET_DATA_TYPE, 2);
                            w.structure(Tag::KEY_BLOCK, |w| {
                                w.enumeration(Tag::KEY_FORMAT_TYPE, 2);
                                w.structure(Tag::KEY_VALUE, |w| {
                                    w.byte_string(Tag::KEY_MATERIAL, material);
                                });
                            });
                        });
                    }),
                    _ => failure(operation, ITEM_NOT_FOUND, "no such SecretData"),
                }
            }
            Operation::Encrypt | Operation::Decrypt => {
                let id = text(payload, Tag::UNIQUE_IDENTIFIER);
                let data = bytes(payload, Tag::DATA);
                match self.objects.get(&id) {
                    Some((Object::Aes(key), true)) => {
                        if operation == Operation::Encrypt {
                            let mut iv = [0u8; 16];
                            csfle::fill_random(&mut iv).unwrap();
                            let ciphertext = aes_cbc(key, &iv, &data, true).unwrap();
                            success(operation, |w| {
                                w.text_string(Tag::UNIQUE_IDENTIFIER, &id);
                                w.byte_string(Tag::DATA, &ciphertext);
                                w.byte_string(Tag::IV_COUNTER_NONCE, &iv);
                            })
                        } else {
                            let iv: [u8; 16] = bytes(payload, Tag::IV_COUNTER_NONCE)
                                .try_into()
                                .expect("a 16-byte IV");
                            match aes_cbc(key, &iv, &data, false) {
                                Some(plaintext) => success(operation, |w| {
                                    w.text_string(Tag::UNIQUE_IDENTIFIER, &id);
                                    w.byte_string(Tag::DATA, &plaintext);
                                }),
                                None => failure(operation, 0x0A, "bad padding"),
                            }
                        }
                    }
                    Some(_) => failure(operation, ILLEGAL_OPERATION, "not an active AES key"),
                    None => failure(operation, ITEM_NOT_FOUND, "no such key"),
                }
            }
            _ => failure(operation, 0x05, "Operation Not Supported"),
        };
        (operation, reply)
    }
}

// ---------------------------------------------------------------------------
// Client side

pub fn local_name() -> ProviderName {
    ProviderName::parse("local").unwrap()
}

pub fn kmip_name(name: &str) -> ProviderName {
    ProviderName::parse(name).unwrap()
}

pub fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(5))
        .with_request_timeout(Duration::from_secs(5))
}

/// `tlsOptions` for one KMIP provider: the test CA and `client`.
pub fn tls_options(provider: &str, client: &str) -> Document {
    let mut tls = Document::new();
    tls.insert(
        provider,
        doc! {"tlsCAFile": pki().file("ca.pem"), "tlsCertificateKeyFile": pki().file(client)},
    );
    tls
}

/// `local` and the KMIP providers `(name, endpoint)`, with the test CA and
/// client certificate.
pub fn providers_with(kmip: &[(&str, String)], options: ProviderOptions) -> KmsProviders {
    let mut doc = doc! {"local": {"key": LOCAL_MASTERKEY_B64}};
    let mut tls = Document::new();
    for (name, endpoint) in kmip {
        doc.insert(*name, doc! {"endpoint": endpoint.as_str()});
        for (k, v) in tls_options(name, "client.pem") {
            tls.insert(k, v);
        }
    }
    KmsProviders::from_document_with(&doc, &options.with_tls(tls)).unwrap()
}

/// `providers_with` the server, delegated mode allowed (the tests of
/// its refusal build their providers without it).
pub fn providers(server: &KmipServer) -> KmsProviders {
    providers_with(
        &[("kmip", server.endpoint())],
        ProviderOptions::default()
            .with_retry(quick_retry())
            .allow_kmip_delegated(true),
    )
}

/// The KMIP failure in `e` (directly, or under a key vault unwrap error).
pub fn kmip_failure(e: &Error) -> (Operation, u32, &CallError) {
    match e {
        Error::Kmip {
            operation,
            attempts,
            source,
            ..
        } => (*operation, *attempts, source),
        other => panic!("expected a KMIP failure, got {other:?}: {other}"),
    }
}

pub fn kmip_master_key(key_id: &str, delegated: bool) -> MasterKey {
    let mut d = doc! {"provider": "kmip", "keyId": key_id};
    if delegated {
        d.insert("delegated", true);
    }
    MasterKey::from_document(&d).unwrap()
}

pub async fn encrypt_and_decrypt(ce: &ClientEncryption, id: csfle::KeyId, value: &str) -> Binary {
    let blob = ce
        .encrypt(
            &Bson::from(value),
            &KeyRef::Id(id),
            Algorithm::Deterministic,
        )
        .await
        .unwrap();
    assert_eq!(ce.decrypt(&blob).await.unwrap(), Bson::from(value));
    blob
}

// ---------------------------------------------------------------------------
// Against PyKMIP

/// `kmsProviders` and `tlsOptions` for PyKMIP under each name in `names`,
/// with `client` (a PEM file) as the client certificate and optional
/// options for its key.
pub fn pykmip_providers_with(names: &[&str], client: &str, extra_tls: Document) -> KmsProviders {
    let endpoint = service_env("CSFLE_KMIP_ENDPOINT");
    let ca = service_env("CSFLE_KMIP_CA_FILE");
    let mut providers = doc! {"local": {"key": LOCAL_MASTERKEY_B64}};
    let mut tls = Document::new();
    for name in names {
        providers.insert(*name, doc! {"endpoint": endpoint.as_str()});
        let mut entry = doc! {"tlsCAFile": ca.as_str(), "tlsCertificateKeyFile": client};
        for (k, v) in &extra_tls {
            entry.insert(k.clone(), v.clone());
        }
        tls.insert(*name, entry);
    }
    KmsProviders::from_document_with(
        &providers,
        &ProviderOptions::default()
            .with_tls(tls)
            .allow_kmip_delegated(true),
    )
    .unwrap()
}

pub fn pykmip_providers(names: &[&str]) -> KmsProviders {
    pykmip_providers_with(
        names,
        &service_env("CSFLE_KMIP_CLIENT_CERT"),
        Document::new(),
    )
}
