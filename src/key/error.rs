//! [`Error`], what can go wrong reading key data.

use super::id::KeyId;

/// What can go wrong reading key data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kind before the colon is not local, aws, azure, gcp or kmip.
    #[error("unknown KMS provider '{0}'")]
    UnknownProviderKind(String),
    /// The name after the colon is empty or has characters other than `[A-Za-z0-9_]`.
    #[error("invalid KMS provider name '{0}': a name is letters, digits and '_' after a colon")]
    InvalidProviderName(String),
    /// A key document is malformed.
    #[error("invalid key document: {0}")]
    InvalidKeyDocument(String),
    /// A key document's `keyMaterial` is longer than any KMS wraps a data
    /// key into (see [`KeyDocument`](super::KeyDocument)); it is refused
    /// unread.
    #[error(
        "invalid key document: key {id}: 'keyMaterial' is {len} bytes, more than the {max} \
         any KMS provider wraps a data key into"
    )]
    KeyMaterialTooLong {
        /// The key document's `_id`.
        id: KeyId,
        /// The `keyMaterial`'s length.
        len: usize,
        /// The most a key document may hold.
        max: usize,
    },
    /// A `masterKey` document is malformed.
    #[error("invalid masterKey: {0}")]
    InvalidMasterKey(String),
    /// Two alternate names of one key are equal.
    #[error("keyAltName '{0}' is already used by another data key")]
    DuplicateAltName(String),
    /// The operating system's random generator failed.
    #[error("operating system random generator failed: {0}")]
    Rng(String),
}
