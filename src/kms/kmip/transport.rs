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

use super::ttlv::HEADER_LEN;
use super::{CallError, Operation, Request, ResponseFramer};
use crate::kms::Endpoint;
use crate::kms::http::{RetryPolicy, TlsOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use zeroize::{Zeroize, Zeroizing};

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
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert =
                        cert.map_err(|_| "tlsCAFile: not a PEM certificate bundle".to_owned())?;
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
                message: e.to_string(),
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
                std::io::ErrorKind::InvalidData => CallError::Tls(e.to_string()),
                kind => CallError::Connect {
                    kind,
                    message: e.to_string(),
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
        std::io::ErrorKind::InvalidData => CallError::Tls(e.to_string()),
        kind => CallError::Connection {
            kind,
            message: e.to_string(),
        },
    }
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
/// rustls. The key is turned into a signing key from a borrowed copy that
/// is zeroized at once; a key that does not match the certificate is
/// refused here rather than by the server.
fn client_identity(pem: &[u8]) -> Result<Arc<rustls::sign::SingleCertAndKey>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| "tlsCertificateKeyFile: not a PEM file".to_owned())?;
    if certs.is_empty() {
        return Err("tlsCertificateKeyFile: no certificate in the file".to_owned());
    }
    let mut key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        "tlsCertificateKeyFile: no private key (PKCS#8, PKCS#1 or SEC1 PEM) in the file".to_owned()
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key);
    key.zeroize();
    let signing = signing.map_err(|_| {
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

#[cfg(test)]
mod tests {
    use super::super::Error;
    use super::*;

    #[test]
    fn only_reads_can_be_sent_twice() {
        assert!(repeatable_after_sending(Operation::Get));
        assert!(repeatable_after_sending(Operation::Encrypt));
        assert!(repeatable_after_sending(Operation::Decrypt));
        assert!(!repeatable_after_sending(Operation::Register));
        assert!(!repeatable_after_sending(Operation::Create));
        assert!(!repeatable_after_sending(Operation::Activate));
    }

    #[tokio::test]
    async fn a_reply_is_read_to_its_announced_length_and_no_further() {
        // A header announcing 8 bytes, the 8 bytes, then bytes of a next
        // message that must stay unread.
        let mut wire = vec![0x42, 0x00, 0x7B, 0x01, 0, 0, 0, 8];
        wire.extend_from_slice(&[0x42, 0x00, 0x7F, 0x05, 0, 0, 0, 0]);
        wire.extend_from_slice(b"trailing");
        let mut input = &wire[..];
        let reply = read_reply(&mut input).await.unwrap();
        assert_eq!(&reply[..], &wire[..16]);
        assert_eq!(input, b"trailing");
    }

    #[tokio::test]
    async fn short_and_oversized_replies_are_errors() {
        let mut input: &[u8] = &[0x42, 0x00, 0x7B, 0x01, 0, 0];
        assert!(matches!(
            read_reply(&mut input).await,
            Err(CallError::ReplyCut {
                received: 6,
                expected: None
            })
        ));
        let mut input: &[u8] = &[0x42, 0x00, 0x7B, 0x01, 0, 0, 0, 16, 1, 2, 3];
        assert!(matches!(
            read_reply(&mut input).await,
            Err(CallError::ReplyCut {
                received: 11,
                expected: Some(24)
            })
        ));
        // One byte over the cap: refused from the header, nothing more read.
        let len = u32::try_from(MAX_REPLY_LEN - 8 + 1).unwrap().to_be_bytes();
        let wire = [0x42, 0x00, 0x7B, 0x01, len[0], len[1], len[2], len[3], 9, 9];
        let mut input = &wire[..];
        assert!(matches!(
            read_reply(&mut input).await,
            Err(CallError::Reply(Error::ResponseTooLarge { .. }))
        ));
        assert_eq!(input, &[9, 9]);
        // A length field past what any reply may be: the framer's own cap.
        let mut input: &[u8] = &[0x42, 0x00, 0x7B, 0x01, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(
            read_reply(&mut input).await,
            Err(CallError::Reply(Error::ResponseTooLarge { .. }))
        ));
    }
}
