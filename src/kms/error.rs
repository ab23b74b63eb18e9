//! [`Error`], what can go wrong configuring or calling a KMS provider.
//! It wraps KMIP's call error whole (`kmip::CallError`, which names
//! nothing of `kms`).

use crate::key::{EndpointError, KeyId};

/// What can go wrong configuring or calling a KMS provider. Never contains
/// key material or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A provider name, `masterKey` or key document that is not valid.
    #[error(transparent)]
    Key(#[from] crate::key::Error),
    /// The provider is not in `kmsProviders`.
    #[error("KMS provider '{0}' is not configured")]
    ProviderNotConfigured(String),
    /// The provider kind is not compiled into this build.
    #[error("KMS provider '{0}' is not supported by this build")]
    UnsupportedProvider(String),
    /// The provider's options are malformed.
    #[error("invalid options for KMS provider '{provider}': {reason}")]
    InvalidOptions {
        /// Provider name as given.
        provider: String,
        /// What is wrong (never the secret itself).
        reason: String,
    },
    /// Unwrapping failed: the master key does not match this key material.
    #[error("failed to unwrap key material with KMS provider '{provider}': {source}")]
    Unwrap {
        /// Provider name.
        provider: String,
        /// Underlying cause.
        source: crate::crypto::Error,
    },
    /// The provider needs I/O: use the async API (`ClientEncryption`).
    #[error("KMS provider '{0}' is not a local master key; use the async API")]
    NotLocal(String),
    /// A `masterKey` document that does not fit the provider.
    #[error("invalid masterKey: {0}")]
    InvalidMasterKey(String),
    /// An endpoint string that is not `host[:port]` (or, from the
    /// application, `https://host[:port]`).
    #[error(transparent)]
    InvalidEndpoint(EndpointError),
    /// A key document names a KMS host that is neither on the provider's
    /// public list nor allowed by the application. Nothing was sent.
    #[error(
        "KMS host '{host}' named by a key document for provider '{provider}' is not allowed: \
         it is not a public host of the provider nor allowed for its kind; allow it with \
         ProviderOptions::allow_host_for, --kms-allow-host KIND:HOST[:PORT] or \
         CSFLE_KMS_ALLOWED_HOSTS (a host without KIND: is allowed for aws, azure and gcp, \
         never kmip)"
    )]
    HostNotAllowed {
        /// Provider name.
        provider: String,
        /// The host as the key document names it (printable ASCII, at most
        /// 255 characters).
        host: String,
    },
    /// A key document names a master key that is not on the application's
    /// master-key allow-list. Nothing was sent.
    #[error(
        "masterKey {master_key} of a key document for provider '{provider}' is not allowed: \
         it is not on the master-key allow-list; list it with \
         ProviderOptions::allow_master_key or --kms-allow-master-key"
    )]
    MasterKeyNotAllowed {
        /// Provider name.
        provider: String,
        /// The master key as the key document names it (canonical JSON,
        /// printable ASCII, at most 512 characters).
        master_key: String,
    },
    /// A KMIP `masterKey` asks for delegated mode, which the application
    /// did not allow
    /// ([`ProviderOptions::allow_kmip_delegated`](super::ProviderOptions::allow_kmip_delegated)).
    /// Nothing
    /// was sent.
    #[error(
        "KMIP delegated mode is refused for provider '{provider}': a delegated keyMaterial is \
         AES-CBC without authentication, so whoever can write the key vault can choose the data \
         key the KMIP server decrypts it into; use the default mode (no \"delegated\"), or opt in \
         with ProviderOptions::allow_kmip_delegated or --kms-allow-kmip-delegated (and pin the \
         key documents with ProviderOptions::pin_kmip_delegated_key)"
    )]
    KmipDelegatedNotAllowed {
        /// Provider name.
        provider: String,
    },
    /// A delegated KMIP key document whose `keyMaterial` (with its `_id`,
    /// when known) matches none of the application's pins
    /// ([`ProviderOptions::pin_kmip_delegated_key`](super::ProviderOptions::pin_kmip_delegated_key)).
    /// Nothing was sent.
    #[error(
        "the keyMaterial of delegated KMIP key {} for provider '{provider}' is not pinned: \
         its _id and SHA-256 match no ProviderOptions::pin_kmip_delegated_key entry; it may \
         have been rewritten in the key vault, and is not sent to the KMIP server",
        describe_key(.id)
    )]
    KmipDelegatedKeyNotPinned {
        /// Provider name.
        provider: String,
        /// The key document's `_id`, when the caller gave it.
        id: Option<KeyId>,
    },
    /// A remote KMS refused or failed the request.
    #[error("KMS provider '{provider}' at {endpoint}: {message}")]
    Remote {
        /// Provider name.
        provider: String,
        /// Endpoint called.
        endpoint: String,
        /// The KMS's error (status, code, message; never secrets).
        message: String,
    },
    /// The AEAD layer failed while wrapping.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::Error),
    /// A KMIP operation failed: no connection, TLS refused, the reply cut
    /// short, malformed, oversized or reporting a failure.
    #[cfg(feature = "kmip")]
    #[error(
        "KMS provider '{provider}' at {endpoint}: KMIP {operation:?} failed after {attempts} attempt(s): {source}"
    )]
    Kmip {
        /// Provider name.
        provider: String,
        /// The endpoint called (`host:port`).
        endpoint: String,
        /// The operation that failed.
        operation: super::kmip::request::Operation,
        /// Attempts made (0 when the request could not be built).
        attempts: u32,
        /// Why.
        source: super::kmip::CallError,
    },
}

/// A key id for an error, or what stands for a missing one.
fn describe_key(id: &Option<KeyId>) -> String {
    match id {
        Some(id) => id.to_string(),
        None => "(no _id given)".to_owned(),
    }
}
