//! Key data: what names a data key, where its material is wrapped, and the
//! key document that stores it. The bottom layer: pure data, no I/O, no
//! cryptography; every other module builds on it.
//!
//! * [`KeyId`], [`KeyRef`]: a data key's UUID, or a key named by id or
//!   alternate name.
//! * [`ProviderKind`], [`ProviderName`]: `local`, `aws:prod`, …
//! * [`MasterKey`], [`KeyDocument`]: the key vault's documents, validated
//!   field by field.
//! * [`Endpoint`], [`AllowedHosts`]: KMS endpoints as applications and key
//!   documents spell them, and which hosts a key document may name.
//! * [`LookupError`]: why a synchronous key lookup
//!   ([`crypto::KeyLookup`](crate::crypto::KeyLookup)) has no ready key.

mod document;
mod endpoint;
mod id;
mod lookup;
mod provider;

// Public through their one home each: `KeyId`, `KeyRef`, `LookupError`
// and `Error` (as `KeyError`) at the crate root, `KeyDocument` in
// `keyvault`, the provider names, `MasterKey` and the endpoint types in
// `kms`.
pub use document::{KeyDocument, MasterKey};
pub use endpoint::{AllowedHosts, Endpoint, EndpointError, EndpointOrigin};
pub(crate) use endpoint::{
    INVALID_REGION, KMIP_DEFAULT_PORT, normalize_application_endpoint, sanitize_host, valid_region,
};
pub use id::{KeyId, KeyRef};
pub use lookup::LookupError;
pub use provider::{ProviderKind, ProviderName};

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
    /// key into (see [`KeyDocument`]); it is refused unread.
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
