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

mod provider;
pub mod request;
pub(crate) mod response;
mod transport;
pub mod ttlv;

pub use provider::KmipKms;
// One public path each: the request types are `kmip::request::…`.
pub(crate) use request::{Operation, Request, SECRET_DATA_LEN};
pub use response::{
    Encrypted, IV_LEN, MAX_RESPONSE_LEN, ResponseFramer, ResultReason, ResultStatus, parse_decrypt,
    parse_encrypt, parse_secret_data, parse_unique_identifier,
};
pub use transport::{DEFAULT_PORT, MAX_REPLY_LEN};

use std::fmt;
use ttlv::{ItemType, Tag};
use zeroize::Zeroizing;

/// What went wrong building a KMIP request or reading a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Register needs a SecretData of exactly 96 bytes.
    #[error("expected SecretData length of {expected}, got {actual}")]
    SecretDataLength {
        /// The length KMIP SecretData has here (96).
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// Delegated `keyMaterial` must start with the 16-byte IV.
    #[error("KMIP keyMaterial must hold a 16-byte IV and the ciphertext, got {actual} bytes")]
    KeyMaterialTooShort {
        /// The length of the `keyMaterial`.
        actual: usize,
    },
    /// A string or structure longer than a TTLV length can say (4 GiB).
    #[error("a KMIP item is longer than 4 GiB")]
    TooLong,
    /// The input ends inside an item header.
    #[error("truncated KMIP message: {available} bytes at offset {offset}, an item header needs 8")]
    Truncated {
        /// Where the header starts.
        offset: usize,
        /// The bytes left there.
        available: usize,
    },
    /// An item's length runs past the end of the message or of the
    /// enclosing Structure.
    #[error("KMIP item {tag} declares {length} bytes but only {available} remain")]
    LengthPastEnd {
        /// The item's tag.
        tag: Tag,
        /// Its declared length.
        length: u32,
        /// The bytes left after its header.
        available: usize,
    },
    /// A tag outside `0x42xxxx` (KMIP) and `0x54xxxx` (extensions).
    #[error("invalid KMIP tag {tag} at offset {offset}")]
    InvalidTag {
        /// The three tag bytes.
        tag: Tag,
        /// Where the item starts.
        offset: usize,
    },
    /// A type byte KMIP 1.x does not define.
    #[error("KMIP item {tag} has unknown type 0x{byte:02X}")]
    UnknownType {
        /// The item's tag.
        tag: Tag,
        /// The type byte.
        byte: u8,
    },
    /// A fixed-size type with another length.
    #[error("KMIP item {tag} of type {item_type:?} cannot have length {length}")]
    BadLength {
        /// The item's tag.
        tag: Tag,
        /// Its type.
        item_type: ItemType,
        /// Its declared length.
        length: u32,
    },
    /// A Boolean other than 0 or 1.
    #[error("KMIP Boolean {tag} is neither 0 nor 1")]
    BadBoolean {
        /// The item's tag.
        tag: Tag,
    },
    /// Structures nested deeper than [`ttlv::MAX_DEPTH`].
    #[error("KMIP structures nested deeper than {max}")]
    TooDeep {
        /// The cap.
        max: usize,
    },
    /// A reply without an item csfle needs (kms-message: "unable to find
    /// tag").
    #[error("unable to find KMIP tag: {0}")]
    Missing(Tag),
    /// A Unique Identifier csfle cannot store in a key document.
    #[error("invalid KMIP UniqueIdentifier: {0}")]
    InvalidUniqueIdentifier(&'static str),
    /// An Encrypt reply whose IV is not 16 bytes.
    #[error("KMIP IV response has unexpected length: {actual}")]
    IvLength {
        /// The IV's length.
        actual: usize,
    },
    /// A reply whose batch item answers another operation than the one
    /// requested.
    #[error("the KMIP reply answers operation 0x{actual:02X}, not {expected:?}")]
    WrongOperation {
        /// The operation requested.
        expected: Operation,
        /// The Operation code the reply names.
        actual: u32,
    },
    /// A reply naming another Object Type than the one requested (Get of a
    /// SecretData, Create of a symmetric key).
    #[error("the KMIP reply is about an object of type 0x{actual:02X}, not 0x{expected:02X}")]
    WrongObjectType {
        /// The Object Type requested.
        expected: u32,
        /// The Object Type the reply names.
        actual: u32,
    },
    /// A reply naming another object than the one the request named.
    #[error("the KMIP reply names another object than the one requested")]
    WrongUniqueIdentifier,
    /// The server refused the operation.
    #[error(
        "KMIP response error. Result Status: {status}. Result Reason: {}. Result Message: {message:?}",
        describe_reason(.reason)
    )]
    Failed {
        /// The Result Status (not Success).
        status: ResultStatus,
        /// The Result Reason, when the server gave one.
        reason: Option<ResultReason>,
        /// The Result Message, at most 256
        /// characters, control characters replaced.
        message: String,
    },
    /// A reply header announcing more than [`MAX_RESPONSE_LEN`] bytes.
    #[error("KMS KMIP response too large: {length} bytes announced, at most {max}")]
    ResponseTooLarge {
        /// The announced total length, header included.
        length: u64,
        /// The cap.
        max: usize,
    },
    /// More bytes fed than the reply header announced.
    #[error("KMIP parser was fed too much data")]
    ResponseOverrun,
    /// The reply is not complete yet.
    #[error("KMIP parser does not have a complete message: {missing} more bytes expected")]
    IncompleteResponse {
        /// How many bytes are still missing (of the header first).
        missing: usize,
    },
}

/// Why a call to a KMIP server failed. Carries no key material, no
/// request or reply bytes and no TLS secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request could not be built (e.g. a delegated `keyMaterial`
    /// shorter than its IV). Nothing was sent.
    #[error("cannot build the request: {0}")]
    Request(Error),
    /// The endpoint's host is not a name or address TLS can verify.
    #[error("the endpoint's host cannot be used as a TLS server name")]
    InvalidServerName,
    /// No connection: the server is down or unreachable, the name does not
    /// resolve, or the connection broke during the TLS handshake. Nothing
    /// was sent.
    #[error("cannot connect: {message}")]
    Connect {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error, as the system words it (at most
        /// 256 characters, control characters
        /// replaced).
        message: String,
    },
    /// TLS refused: the server's certificate does not verify, or the server
    /// refused the client certificate (or sent another alert). The text is
    /// rustls's, at most 256 characters,
    /// control characters replaced: it may name what the server sent.
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection broke after the request was written.
    #[error("connection failed: {message}")]
    Connection {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error, as the system words it (at most
        /// 256 characters, control characters
        /// replaced).
        message: String,
    },
    /// The server closed the connection before the whole reply came.
    #[error(
        "the server closed the connection after {received} bytes of the reply{}",
        describe_expected(.expected)
    )]
    ReplyCut {
        /// The reply bytes that came.
        received: usize,
        /// The reply's announced length, when its header came.
        expected: Option<usize>,
    },
    /// The attempt did not complete within the request timeout.
    #[error("no complete reply within {after:?}")]
    TimedOut {
        /// The request timeout.
        after: std::time::Duration,
    },
    /// The reply is too large, malformed, or reports a failure (its Result
    /// Status, Reason and Message).
    #[error(transparent)]
    Reply(Error),
    /// A Get returned a SecretData that is not a 96-byte master key.
    #[error("the SecretData is {actual} bytes, a KMIP master key is 96")]
    SecretDataLength {
        /// Its length.
        actual: usize,
    },
    /// A reply (Activate, Get, Encrypt, Decrypt) names another object than
    /// the one the request named.
    #[error("the reply names another object than the one the request named")]
    UnexpectedIdentifier,
    /// The SecretData just registered came back different from Get.
    #[error("the SecretData read back differs from the one registered")]
    SecretDataMismatch,
    /// An Encrypt reply whose ciphertext is not the AES-CBC (PKCS#5) length
    /// of the data key (112 bytes for a 96-byte key).
    #[error("the Encrypt reply's ciphertext is {actual} bytes, expected {expected}")]
    CiphertextLength {
        /// The length AES-CBC with PKCS#5 padding gives.
        expected: usize,
        /// The length the server returned.
        actual: usize,
    },
    /// The `keyMaterial` the server just made by Encrypt does not Decrypt
    /// back to the data key: it is not stored.
    #[error("the keyMaterial the server encrypted does not decrypt back to the data key")]
    WrapMismatch,
}

impl CallError {
    /// Whether another attempt may succeed: no connection, a broken
    /// connection, a reply cut short or late. A reply that arrived, a TLS
    /// refusal and a bad request are final.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CallError::Connect { .. }
                | CallError::Connection { .. }
                | CallError::ReplyCut { .. }
                | CallError::TimedOut { .. }
        )
    }
}

fn describe_expected(expected: &Option<usize>) -> String {
    match expected {
        Some(total) => format!(" of {total} announced"),
        None => ", before its 8-byte header was complete".to_owned(),
    }
}

fn describe_reason(reason: &Option<ResultReason>) -> String {
    match reason {
        Some(reason) => reason.to_string(),
        None => "none given".to_owned(),
    }
}

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
