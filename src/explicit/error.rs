//! [`Error`], what explicit encryption and decryption refuse. It names
//! the layers below `explicit` and nothing of `explicit`, so the QE side
//! path (`queryable`) returns it too.

/// What can go wrong encrypting or decrypting with an
/// [`ExplicitEncrypter`](super::ExplicitEncrypter).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The value's type, the FLE1 blob or the AEAD refused.
    #[error(transparent)]
    Ciphertext(#[from] crate::ciphertext::Error),
    /// The key is not there or not ready.
    #[error(transparent)]
    Key(#[from] crate::key::LookupError),
    /// A value or document that is not valid BSON.
    #[error("invalid BSON: {0}")]
    InvalidBson(#[from] bson::raw::Error),
    /// A value that cannot be serialized as BSON.
    #[error("invalid BSON: {0}")]
    Unserializable(#[source] bson::raw::Error),
    /// A document key or regular expression holding a NUL byte, which
    /// BSON cannot encode.
    #[error("a document key or regular expression holds a NUL byte, which BSON cannot encode")]
    NulInCString,
    /// Documents nested deeper than [`MAX_NESTING`](super::MAX_NESTING).
    #[error("document nesting exceeds {0} levels")]
    TooDeep(usize),
    /// A decrypted document past BSON's 2 GiB limit.
    #[error("decrypted document of {0} bytes exceeds BSON's size limit")]
    TooLarge(usize),
    /// A subtype-6 value that holds no value to decrypt: a Queryable
    /// Encryption query (a find payload) or placeholder.
    #[error("blob subtype {subtype} is {what}: it holds no value to decrypt")]
    NotDecryptable {
        /// The value's first byte.
        subtype: u8,
        /// What it is.
        what: &'static str,
    },
    /// A Queryable Encryption value or algorithm, in a build without
    /// feature `qe`.
    #[error("{0} is Queryable Encryption's, and csfle was built without its feature `qe`")]
    QeWithoutFeature(String),
    /// An algorithm name csfle does not know.
    #[error(
        "unknown encryption algorithm '{0}': expected AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic, AEAD_AES_256_CBC_HMAC_SHA_512-Random, Indexed, Unindexed or Range"
    )]
    UnknownAlgorithm(String),
    /// The text-search ("String") algorithm of Queryable Encryption.
    #[error(
        "the String (text search) algorithm is not supported by csfle: use Indexed, Unindexed or Range"
    )]
    TextSearchUnsupported,
    /// Queryable Encryption: its options (libmongocrypt's words), payloads
    /// and values.
    #[cfg(feature = "qe")]
    #[error(transparent)]
    Qe(Box<crate::qe::Error>),
}

impl From<crate::nesting::TooDeep> for Error {
    fn from(e: crate::nesting::TooDeep) -> Self {
        Error::TooDeep(e.limit)
    }
}

#[cfg(feature = "qe")]
impl From<crate::qe::Error> for Error {
    fn from(e: crate::qe::Error) -> Self {
        Error::Qe(Box::new(e))
    }
}
