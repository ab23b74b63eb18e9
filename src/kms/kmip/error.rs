//! [`Error`], what went wrong building a request or reading a reply, and
//! [`CallError`], why a call to a KMIP server failed. They name KMIP's
//! numbers (`codes`) and nothing else of `kmip`, so the encoding, the
//! requests and the replies can all return them.

use super::codes::{ItemType, Operation, ResultReason, ResultStatus, Tag};

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
    /// Structures nested deeper than [`ttlv::MAX_DEPTH`](super::ttlv::MAX_DEPTH).
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
    /// A reply header announcing more than
    /// [`MAX_RESPONSE_LEN`](super::MAX_RESPONSE_LEN) bytes.
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
