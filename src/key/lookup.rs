use super::{KeyId, KeyRef};

/// Why a [`KeyLookup`](crate::crypto::KeyLookup) has no ready key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No key document has this id.
    #[error("no data key with id {0}")]
    KeyNotFound(KeyId),
    /// No key document has this alternate name.
    #[error("no data key with keyAltName '{0}'")]
    AltNameNotFound(String),
    /// Several key documents have this alternate name (libmongocrypt's
    /// wording).
    #[error("keys returned have duplicate keyAltNames: '{0}'")]
    AmbiguousAltName(String),
    /// The key document exists but the key could not be made ready: its
    /// material did not unwrap, or is not a data key. The source is the
    /// layer's own error (a `keyvault::Error`, say), kept whole.
    #[error("data key {key}: {source}")]
    Unavailable {
        /// The key asked for.
        key: KeyRef,
        /// Why it is unavailable.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl LookupError {
    /// The error for a key that does not exist, by how it was named.
    pub fn not_found(key: &KeyRef) -> Self {
        match key {
            KeyRef::Id(id) => LookupError::KeyNotFound(*id),
            KeyRef::AltName(n) => LookupError::AltNameNotFound(n.clone()),
        }
    }
}
