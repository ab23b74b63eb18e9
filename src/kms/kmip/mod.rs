//! KMIP, the fourth master-key home: the messages and the provider.
//!
//! KMIP (OASIS Key Management Interoperability Protocol) is how on-premises
//! HSMs and enterprise key managers (Thales, Fortanix, HashiCorp Vault
//! Enterprise, PyKMIP, …) serve keys. Every official driver reaches them
//! through libmongocrypt's kms-message; this module speaks the same
//! messages, byte for byte: the TTLV codec ([`ttlv`]), the six requests
//! libmongocrypt sends ([`request`]), the reply framing and the parsers of
//! the answers ([`parse_secret_data`], [`parse_encrypt`], …). Those do no I/O: a request is bytes to write
//! on a TLS connection, a reply is bytes fed to a [`ResponseFramer`] until
//! it is complete, then handed to a parser. [`KmipKms`], the provider,
//! opens the connections (TLS 1.2+ with a client certificate, port 5696 by
//! default) and runs the exchanges below.
//!
//! # The two modes
//!
//! **Default** (`masterKey: {"provider": "kmip", "keyId"?, "endpoint"?}`):
//! the KMIP server keeps a 96-byte *SecretData* that is used exactly as a
//! local master key.
//!
//! * creating a data key without `keyId`: [`request::register_secret_data`]
//!   with 96 fresh random bytes → [`parse_unique_identifier`] gives the
//!   new object's id; [`request::activate`] with it → its reply is checked
//!   with [`parse_unique_identifier`]; [`request::get`] →
//!   [`parse_secret_data`] gives the 96 bytes back, which wrap the data key
//!   as the local provider does (`keyMaterial` is the FLE1 AEAD of the data
//!   key under them). The id is stored as `masterKey.keyId`.
//! * with a `keyId` given, or to unwrap: only Get, then the local unwrap.
//!   libmongocrypt skips Activate when the application names the `keyId`.
//!
//! **Delegated** (`masterKey: {…, "delegated": true}`): the server holds an
//! AES-256 key and does the wrapping itself (AES-CBC, PKCS#5 padding, an
//! IV the server chooses).
//!
//! * creating without `keyId`: [`request::create_aes_256`] →
//!   [`parse_unique_identifier`]; [`request::activate`]; then
//!   [`request::encrypt`] of the 96-byte data key → [`parse_encrypt`];
//!   `keyMaterial` is [`Encrypted::key_material`], the 16-byte IV followed
//!   by the ciphertext, as libmongocrypt lays it out.
//! * with a `keyId`: Encrypt only. To unwrap: [`request::decrypt_key_material`]
//!   splits the stored `keyMaterial` back into IV and ciphertext →
//!   [`parse_decrypt`] gives the data key.
//!
//! # The key document's `masterKey`
//!
//! * `keyId` (string): the KMIP Unique Identifier of the SecretData
//!   (default) or of the AES key (delegated). Optional when creating a
//!   data key (a new object is made), required in every stored key
//!   document.
//! * `endpoint` (string, `host[:port]`, port 5696 by default): overrides
//!   `kmsProviders.kmip.endpoint`. An endpoint read from a key document is
//!   used only if it equals the configured one or is allowed
//!   (`ProviderOptions::allow_host`), as for the other providers:
//!   otherwise a hostile key vault would receive the TLS handshake and
//!   could serve a key-encryption key of its choice.
//! * `delegated` (bool, default false): the mode above.
//!
//! # The provider
//!
//! [`KmipKms`] is built from `kmsProviders: {"kmip": {"endpoint":
//! "host[:port]"}}` (or a named `kmip:<name>`) and the provider's TLS
//! options: `tlsCAFile` (the server is verified against it alone; without
//! it, against the public web roots), `tlsCertificateKeyFile` (the client
//! certificate and key KMIP servers authenticate clients by) and
//! `tlsCertificateKeyFilePassword` (an encrypted PKCS#8 key). TLS 1.2 or
//! 1.3 through rustls and ring, the server's certificate always verified;
//! the options that would weaken that are refused. A bare host means port
//! [`DEFAULT_PORT`] (5696).
//!
//! Each request gets its own connection: the request is written, the
//! reply's 8-byte header read, then exactly the length it announces (at
//! most [`MAX_REPLY_LEN`]). Failures are [`CallError`]s carried by
//! [`Error::Kmip`](crate::kms::Error::Kmip) with the operation and the
//! number of attempts. Attempts that fail before the request is written
//! are retried for every operation, as the other providers retry
//! connection errors; after it is written only Get, Encrypt and Decrypt
//! are sent again (a second Register or Create would make a second
//! object; libmongocrypt retries no KMIP request at all). A reply is
//! never retried: a refusal, a malformed or oversized reply is final.
//!
//! Beyond libmongocrypt, the provider checks that every reply answers the
//! operation requested, that Activate, Get, Encrypt and Decrypt replies
//! name the object requested and Get and Create replies the object type
//! requested, that a SecretData is 96 bytes before it is used as a master
//! key, that an Encrypt ciphertext has the AES-CBC length of the data key,
//! and that what it is about to store decrypts back: when it registered a
//! SecretData, Get must return the bytes registered; when it wrapped a
//! data key in delegated mode, Decrypt of the new `keyMaterial` must give
//! the data key (one more round trip per wrap).
//!
//! Delegated mode is refused unless the application allows it
//! ([`ProviderOptions::allow_kmip_delegated`](crate::kms::ProviderOptions::allow_kmip_delegated)):
//! its `keyMaterial` is AES-CBC without authentication, so whoever can
//! write the key vault can rearrange it into one the server decrypts to a
//! data key of their choosing (most of it). Prefer the default mode.
//!
//! # Limits
//!
//! Replies are capped at [`MAX_RESPONSE_LEN`], 64 KiB (kms-message allows
//! 16 MiB; a reply to these operations is under 1 KiB). Every length is checked
//! before it is used and nesting is capped at [`ttlv::MAX_DEPTH`]; hostile
//! bytes give an [`Error`], never a panic. The request and reply buffers
//! csfle owns that may hold key material are zeroized, and key material
//! comes back as [`SecretBytes`], whose `Debug` shows none of it. rustls's
//! own record buffers are not: the plaintext of a request (a SecretData
//! being registered, a data key sent to Encrypt) and of a reply (a Get's
//! SecretData, a Decrypt's data key) passes through buffers of the TLS
//! connection that are freed without being wiped. Likewise the client key
//! of `tlsCertificateKeyFile` is decoded into a wiped buffer, but ring
//! keeps its own copy inside the signing key for the provider's lifetime.
//! A failed operation carries the server's result status, reason and
//! (shortened) message, and never any bytes of the request or reply; TLS
//! and connection errors are shortened the same way.

mod codes;
mod error;
mod provider;
pub mod request;
pub(crate) mod response;
mod transport;
pub mod ttlv;

pub use codes::{IV_LEN, ResultReason, ResultStatus};
pub use error::{CallError, Error};
pub use provider::KmipKms;
// One public path each: the request types are `kmip::request::…`.
pub(crate) use request::{Operation, Request, SECRET_DATA_LEN};
pub use response::{
    Encrypted, MAX_RESPONSE_LEN, ResponseFramer, parse_decrypt, parse_encrypt, parse_secret_data,
    parse_unique_identifier,
};
pub use transport::{DEFAULT_PORT, MAX_REPLY_LEN};

use std::fmt;
use zeroize::Zeroizing;

/// Bytes that are or may be key material: zeroized when dropped, and
/// `Debug` shows none of them.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes, still zeroized on drop.
    pub fn into_zeroizing(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(..)")
    }
}

#[cfg(test)]
mod tests;
