//! KMIP, the fourth master-key home: the messages, without the transport.
//!
//! KMIP (OASIS Key Management Interoperability Protocol) is how on-premises
//! HSMs and enterprise key managers (Thales, Fortanix, HashiCorp Vault
//! Enterprise, PyKMIP, …) serve keys. Every official driver reaches them
//! through libmongocrypt's kms-message; this module speaks the same
//! messages, byte for byte: the TTLV codec ([`ttlv`]), the six requests
//! libmongocrypt sends ([`request`]), the reply framing and the parsers of
//! the answers ([`response`]). It does no I/O: a request is bytes to write
//! on a TLS connection, a reply is bytes fed to a [`ResponseFramer`] until
//! it is complete, then handed to a parser. The provider that opens the
//! connection (TLS 1.2+ with a client certificate, port 5696 by default) is
//! built on this.
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
//! # What the provider adds (not built yet)
//!
//! * `kmsProviders: {"kmip": {"endpoint": "host[:port]"}}` and named
//!   `kmip:<name>`; the client certificate and CA come from the TLS
//!   options (`tlsCertificateKeyFile`, `tlsCAFile`), TLS 1.2 or later with
//!   verification, port 5696 when none is given (as libmongocrypt).
//! * One request per connection turn: write [`Request::as_bytes`], then
//!   read [`ResponseFramer::wants_bytes`] bytes at a time into
//!   [`ResponseFramer::feed`] until it is complete.
//! * The SecretData a Get returns must be 96 bytes before it is used as a
//!   local master key; an Activate reply should name the identifier that
//!   was activated.
//! * libmongocrypt retries none of these requests (Register and Create are
//!   not idempotent); a retry policy must at least not repeat those two.
//!
//! # Limits
//!
//! Replies are capped at [`MAX_RESPONSE_LEN`] (kms-message allows 16 MiB;
//! a reply to these operations is under 1 KiB). Every length is checked
//! before it is used and nesting is capped at [`ttlv::MAX_DEPTH`]; hostile
//! bytes give an [`Error`], never a panic. Request and reply buffers that
//! may hold key material are zeroized, and key material comes back as
//! [`SecretBytes`], whose `Debug` shows none of it. A failed operation
//! carries the server's result status, reason and (shortened) message, and
//! never any bytes of the request or reply.

pub mod request;
pub mod response;
pub mod ttlv;

pub use request::{Operation, Request, SECRET_DATA_LEN};
pub use response::{
    Encrypted, IV_LEN, MAX_RESPONSE_LEN, ResponseFramer, ResultReason, ResultStatus, parse_decrypt,
    parse_encrypt, parse_secret_data, parse_unique_identifier,
};

use std::fmt;
use ttlv::{ItemType, Tag};
use zeroize::Zeroizing;

/// What went wrong building a KMIP request or reading a reply.
#[derive(Debug, thiserror::Error)]
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
        /// The Result Message, at most [`response::MAX_MESSAGE_CHARS`]
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
