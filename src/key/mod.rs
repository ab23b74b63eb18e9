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
mod error;
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
pub use error::Error;
pub use id::{KeyId, KeyRef};
pub use lookup::LookupError;
pub use provider::{ProviderKind, ProviderName};
