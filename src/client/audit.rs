//! The audit hook: who decrypted what, with which keys.
//!
//! A [`ClientEncryption`](super::ClientEncryption) (and so an encrypted
//! client) with an [`AuditSink`] asks it before every decryption, naming
//! the data keys about to be used and the KMS providers that unwrapped
//! them. The sink can refuse: then nothing is decrypted and the operation
//! fails with [`ClientError::Audit`](crate::ClientError::Audit). That is how an audit
//! trail fails closed: a sink that cannot record refuses.
//!
//! The hook never sees a plaintext, a ciphertext or key material: only
//! key ids, provider names and counts.

use crate::error::AuditError;
use crate::key::{KeyId, ProviderName};

/// One data key a decryption is about to use.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditedKey {
    /// The key's id.
    pub id: KeyId,
    /// The KMS provider that unwrapped it (`None` if the cache dropped the
    /// key between its unwrap and the audit call).
    pub provider: Option<ProviderName>,
}

/// What a decryption is about to do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DecryptionEvent<'a> {
    /// The data keys it uses (each once).
    pub keys: &'a [AuditedKey],
    /// How many documents (or single values) it decrypts.
    pub documents: usize,
}

/// Records decryptions: who decrypted what, with which keys.
///
/// A [`ClientEncryption`](super::ClientEncryption) (and so an encrypted
/// client) with an `AuditSink` asks it before every decryption, naming the
/// data keys about to be used and the KMS providers that unwrapped them.
/// The sink can refuse: then nothing is decrypted and the operation fails
/// with [`ClientError::Audit`](crate::ClientError::Audit). That is how an audit trail
/// fails closed: a sink that cannot record refuses.
///
/// The hook never sees a plaintext, a ciphertext or key material: only key
/// ids, provider names and counts.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Called before values are decrypted, after their keys were fetched
    /// and unwrapped. An error refuses the decryption.
    fn before_decrypt(&self, event: &DecryptionEvent<'_>) -> Result<(), AuditError>;
}
