//! The KMIP connection: TCP, TLS 1.2 or 1.3 with the server verified (and a
//! client certificate when one is configured), one request written, one
//! reply read back, bounded in size and time, retried as the other
//! providers retry.
//!
//! Each request gets its own connection, as libmongocrypt's KMS contexts
//! do. The reply is read header first: the 8-byte TTLV header announces the
//! length of the rest, which must not exceed [`MAX_REPLY_LEN`], and exactly
//! that many bytes are read, never more; the bytes go straight into a
//! [`ResponseFramer`] whose buffer is zeroized.

use super::response::short_text;
use super::ttlv::HEADER_LEN;
use super::{CallError, Operation, Request, ResponseFramer};
use crate::kms::Endpoint;
use crate::kms::http::{RetryPolicy, TlsOptions};
use pkcs8::der::pem;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    ServerName,
};
use zeroize::Zeroizing;

/// The port a KMIP endpoint without one uses (IANA's `kmip` port, as in
/// libmongocrypt).
pub const DEFAULT_PORT: u16 = crate::kms::KMIP_DEFAULT_PORT;

/// The largest reply read from a KMIP server, header included: the
/// framer's cap ([`MAX_RESPONSE_LEN`](super::MAX_RESPONSE_LEN)).
pub const MAX_REPLY_LEN: usize = super::MAX_RESPONSE_LEN;

/// How long the TLS close after a complete reply may take; it is a
/// courtesy to the server, the reply is already in.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// What a provider calls a KMIP server with: its TLS configuration and its
/// retry policy.
pub(crate) struct Connector {
    tls: TlsConnector,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A failed call: why, and after how many attempts.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: CallError,
    pub(crate) attempts: u32,
}

impl Connector {
    /// The connector for a provider's TLS options: TLS 1.2 or 1.3 through ring;
    /// the server verified against `tlsCAFile` alone when one is given (an
    /// on-premises KMIP server's private CA), else against the public web
    /// roots; the client certificate and key of `tlsCertificateKeyFile`
    /// presented when the server asks. The reason in the error names the
    /// option, never its content.
    pub(crate) fn new(tls: &TlsOptions, retry: RetryPolicy) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        match tls.ca_pem() {
            Some(pem) => {
                for cert in certificates(pem, "tlsCAFile")? {
                    roots.add(cert).map_err(|_| {
                        "tlsCAFile: a certificate cannot be used as a trust anchor".to_owned()
                    })?;
                }
                if roots.is_empty() {
                    return Err("tlsCAFile: no certificate in the file".to_owned());
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_root_certificates(roots);
        let config = match tls.identity_pem() {
            None => builder.with_no_client_auth(),
            Some(pem) => builder.with_client_cert_resolver(client_identity(pem)?),
        };
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(config)),
            retry,
        })
    }

    /// Sends `request` to `endpoint` and returns the complete reply.
    ///
    /// An attempt that fails before the request was written (the
    /// connection or the TLS handshake, other than a certificate refusal)
    /// is retried for every operation; one that fails after it was written
    /// (the connection dropped, the reply cut short or late) only for Get,
    /// Encrypt and Decrypt, which can be repeated: a repeated Register or
    /// Create would make a second object, a repeated Activate fails on an
    /// object already active. A reply that arrived is never retried, nor
    /// is a refused certificate. At most `max_attempts` attempts, each
    /// within `request_timeout`, with the providers' backoff between them.
    /// Returns the reply and the number of attempts it took.
    pub(crate) async fn call(
        &self,
        endpoint: &Endpoint,
        request: &Request,
    ) -> Result<(Zeroizing<Vec<u8>>, u32), Failure> {
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                tokio::time::sleep(self.retry.backoff(attempt - 1)).await;
            }
            let mut sent = false;
            let outcome = tokio::time::timeout(
                self.retry.request_timeout,
                self.attempt(endpoint, request, &mut sent),
            )
            .await;
            let error = match outcome {
                Ok(Ok(reply)) => return Ok((reply, attempt)),
                Ok(Err(e)) => e,
                Err(_) => CallError::TimedOut {
                    after: self.retry.request_timeout,
                },
            };
            let repeatable = !sent || repeatable_after_sending(request.operation());
            if attempt < max_attempts && error.is_transient() && repeatable {
                tracing::debug!(
                    endpoint = %endpoint,
                    operation = ?request.operation(),
                    attempt,
                    error = %error,
                    "KMIP request failed; retrying"
                );
                continue;
            }
            return Err(Failure {
                error,
                attempts: attempt,
            });
        }
    }

    /// One attempt: connect, handshake, write, read the reply. `sent` is
    /// set once any byte of the request may have reached the server.
    async fn attempt(
        &self,
        endpoint: &Endpoint,
        request: &Request,
        sent: &mut bool,
    ) -> Result<Zeroizing<Vec<u8>>, CallError> {
        let host = endpoint.host();
        // An IPv6 literal is kept bracketed in an Endpoint; sockets and
        // certificate names take the bare address.
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let server_name =
            ServerName::try_from(bare.to_owned()).map_err(|_| CallError::InvalidServerName)?;
        let port = endpoint.port().unwrap_or(DEFAULT_PORT);
        let tcp = tokio::net::TcpStream::connect((bare, port))
            .await
            .map_err(|e| CallError::Connect {
                kind: e.kind(),
                message: describe(&e),
            })?;
        // Requests are small and written at once; Nagle would only delay them.
        let _ = tcp.set_nodelay(true);
        let mut stream = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(|e| match e.kind() {
                // rustls reports what it refused (the certificate, an alert
                // the server sent) as invalid data: retrying changes nothing.
                std::io::ErrorKind::InvalidData => CallError::Tls(describe(&e)),
                kind => CallError::Connect {
                    kind,
                    message: describe(&e),
                },
            })?;
        *sent = true;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(io_failure)?;
        stream.flush().await.map_err(io_failure)?;
        let reply = read_reply(&mut stream).await?;
        // The reply is complete; a slow close must not lose it.
        let _ = tokio::time::timeout(CLOSE_GRACE, stream.shutdown()).await;
        Ok(reply)
    }
}

/// Whether an operation may be sent again after a first copy may have
/// reached the server.
fn repeatable_after_sending(operation: Operation) -> bool {
    match operation {
        Operation::Get | Operation::Encrypt | Operation::Decrypt => true,
        Operation::Register | Operation::Create | Operation::Activate => false,
    }
}

/// An I/O error after the handshake: a TLS alert (the server refusing the
/// client certificate after a TLS 1.3 handshake) is a TLS refusal, anything
/// else a broken connection.
fn io_failure(e: std::io::Error) -> CallError {
    match e.kind() {
        std::io::ErrorKind::InvalidData => CallError::Tls(describe(&e)),
        kind => CallError::Connection {
            kind,
            message: describe(&e),
        },
    }
}

/// An I/O or TLS error as an error message keeps it: its wording may carry
/// what the peer sent (a certificate's names, an alert), so it is cut to
/// [`MAX_MESSAGE_CHARS`](super::response::MAX_MESSAGE_CHARS) characters
/// with control characters replaced, as a server's Result Message is.
fn describe(e: &std::io::Error) -> String {
    short_text(&e.to_string())
}

/// Reads one reply: the 8-byte header, then exactly the length it
/// announces; the framer refuses a header announcing more than
/// [`MAX_REPLY_LEN`] before anything past the header is read.
async fn read_reply<S>(stream: &mut S) -> Result<Zeroizing<Vec<u8>>, CallError>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut framer = ResponseFramer::new();
    let mut chunk = Zeroizing::new([0u8; 4096]);
    let mut received = 0usize;
    while !framer.is_complete() {
        let want = framer.wants_bytes().min(chunk.len());
        let n = match stream.read(&mut chunk[..want]).await {
            Ok(0) => 0,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(io_failure(e)),
        };
        if n == 0 {
            // The announced total, once the header is in.
            let expected = (received >= HEADER_LEN).then(|| received + framer.wants_bytes());
            return Err(CallError::ReplyCut { received, expected });
        }
        framer
            .feed(chunk.get(..n).unwrap_or_default())
            .map_err(CallError::Reply)?;
        received += n;
    }
    framer.take_message().map_err(CallError::Reply)
}

/// The client certificate chain and key of `tlsCertificateKeyFile`, for
/// rustls. The certificates and the key are decoded from their own PEM
/// blocks (see [`certificates`], [`private_key`]), the key into a buffer
/// wiped on drop, from which ring builds its signing key; a key that does
/// not match the certificate is refused here rather than by the server.
fn client_identity(pem: &[u8]) -> Result<Arc<rustls::sign::SingleCertAndKey>, String> {
    let certs = certificates(pem, "tlsCertificateKeyFile")?;
    let (format, der) = private_key(pem)?;
    let key = match format {
        KeyFormat::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.as_slice())),
        KeyFormat::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der.as_slice())),
        KeyFormat::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der.as_slice())),
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
        "tlsCertificateKeyFile: the private key is not an RSA, ECDSA or Ed25519 key ring can use"
            .to_owned()
    })?;
    let certified = rustls::sign::CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(
                "tlsCertificateKeyFile: the private key does not match the certificate".to_owned(),
            );
        }
    }
    Ok(Arc::new(rustls::sign::SingleCertAndKey::from(certified)))
}

/// Where `needle` starts in `haystack` (`needle` is never empty here).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The PEM blocks labelled `label` in `pem`, in order, each from its
/// `-----BEGIN <label>-----` to its `-----END <label>-----`. `None` when a
/// block has no end, or holds another boundary (a block cut short, whose
/// text would run into the next one). Only the boundaries are looked at;
/// the text between them is not read.
fn pem_blocks<'p>(pem: &'p [u8], label: &str) -> Option<Vec<&'p [u8]>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut offset = 0;
    while let Some(found) = pem
        .get(offset..)
        .and_then(|rest| find(rest, begin.as_bytes()))
    {
        let start = offset + found;
        let body = start + begin.len();
        let body_len = pem
            .get(body..)
            .and_then(|rest| find(rest, end.as_bytes()))?;
        if find(pem.get(body..body + body_len)?, b"-----").is_some() {
            return None;
        }
        let stop = body + body_len + end.len();
        blocks.push(pem.get(start..stop)?);
        offset = stop;
    }
    Some(blocks)
}

/// Only the `CERTIFICATE` blocks of `pem`, one after the other. The
/// certificate parser (rustls-pki-types) base64-decodes every block it
/// meets into buffers it does not wipe, so it is never shown the file's
/// private key.
fn certificate_pem(pem: &[u8], option: &str) -> Result<Vec<u8>, String> {
    let blocks = pem_blocks(pem, "CERTIFICATE")
        .ok_or_else(|| format!("{option}: a CERTIFICATE block is not a valid PEM block"))?;
    let mut out = Vec::with_capacity(pem.len());
    for block in blocks {
        out.extend_from_slice(block);
        out.push(b'\n');
    }
    Ok(out)
}

/// The certificates of `pem` (the file of `option`), in order.
fn certificates(pem: &[u8], option: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&certificate_pem(pem, option)?)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{option}: not a PEM certificate file"))?;
    if certs.is_empty() {
        return Err(format!("{option}: no certificate in the file"));
    }
    Ok(certs)
}

/// How a private key's DER is laid out, by its PEM label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyFormat {
    /// `PRIVATE KEY`
    Pkcs8,
    /// `RSA PRIVATE KEY`
    Pkcs1,
    /// `EC PRIVATE KEY`
    Sec1,
}

/// The private-key PEM labels rustls takes. An `ENCRYPTED PRIVATE KEY` was
/// decrypted when the TLS options were read (see `kms::client_key`).
const KEY_LABELS: [(&str, KeyFormat); 3] = [
    ("PRIVATE KEY", KeyFormat::Pkcs8),
    ("RSA PRIVATE KEY", KeyFormat::Pkcs1),
    ("EC PRIVATE KEY", KeyFormat::Sec1),
];

/// The one private key of `pem`, base64-decoded (RustCrypto's
/// `pem-rfc7468`, through `pkcs8::der::pem`) straight into a buffer wiped
/// on drop. No key, a second key, or a key block that does not decode is
/// refused; the reason never quotes the file.
fn private_key(pem: &[u8]) -> Result<(KeyFormat, Zeroizing<Vec<u8>>), String> {
    const NO_KEY: &str =
        "tlsCertificateKeyFile: no private key (PKCS#8, PKCS#1 or SEC1 PEM) in the file";
    let mut found = None;
    for (label, format) in KEY_LABELS {
        for block in pem_blocks(pem, label).ok_or_else(|| NO_KEY.to_owned())? {
            if found.is_some() {
                return Err("tlsCertificateKeyFile: more than one private key in the file".into());
            }
            found = Some((format, block));
        }
    }
    let (format, block) = found.ok_or_else(|| NO_KEY.to_owned())?;
    let mut decoder = pem::Decoder::new_detect_wrap(block).map_err(|_| NO_KEY.to_owned())?;
    let mut der = Zeroizing::new(vec![0u8; decoder.remaining_len()]);
    let len = decoder
        .decode(der.as_mut_slice())
        .map_err(|_| NO_KEY.to_owned())?
        .len();
    if !decoder.is_finished() {
        return Err(NO_KEY.to_owned());
    }
    // Zeroizing wipes the whole capacity, the truncated tail included.
    der.truncate(len);
    Ok((format, der))
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
