//! Data keys at rest: key documents, where they are stored, and the ring of
//! unwrapped keys an encrypter works from.

mod cache;
mod document;
mod file;
mod mongo;
mod ring;
mod store;

pub use cache::{CacheStats, KeyCache, KeyCacheOptions};
pub use document::{KeyDocument, MasterKey};
pub use file::FileKeyVault;
pub(crate) use file::parse_key_documents;
pub use mongo::{DEFAULT_KEY_VAULT_NAMESPACE, MongoKeyVault};
pub use ring::KeyRing;
pub use store::{KeyMaterialUpdate, KeyVault, MemoryKeyVault};

use crate::crypto::KeyId;

/// What can go wrong finding, reading or storing key documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No key document has this id.
    #[error("no data key with id {0}")]
    KeyNotFound(KeyId),
    /// No key document has this alternate name.
    #[error("no data key with keyAltName '{0}'")]
    AltNameNotFound(String),
    /// Two key documents share an id.
    #[error("duplicate data key id {0}")]
    DuplicateKeyId(KeyId),
    /// Two key documents share an alternate name.
    #[error("keyAltName '{0}' is already used by another data key")]
    DuplicateAltName(String),
    /// The key vault returned several key documents with one alternate
    /// name (libmongocrypt's wording).
    #[error("keys returned have duplicate keyAltNames: '{0}'")]
    AmbiguousAltName(String),
    /// A key document is malformed.
    #[error("invalid key document: {0}")]
    InvalidKeyDocument(String),
    /// A `masterKey` document is malformed.
    #[error("invalid masterKey: {0}")]
    InvalidMasterKey(String),
    /// Reading or writing the key vault failed.
    #[error("key vault {path}: {message}")]
    Io {
        /// The file or resource.
        path: String,
        /// What happened.
        message: String,
    },
    /// The key vault file is not valid Extended JSON.
    #[error("key vault {path}: line {line}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The key vault server failed or could not be reached.
    #[error("key vault server error{}: {message}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    Server {
        /// The server's error code (11000 is a duplicate key).
        code: Option<i32>,
        /// The error message.
        message: String,
    },
    /// A key vault namespace that is not `db.coll`.
    #[error("invalid key vault namespace '{0}': expected db.coll")]
    InvalidNamespace(String),
    /// A filter a file or memory key vault cannot evaluate.
    #[error("unsupported key vault filter: {0}")]
    UnsupportedFilter(String),
    /// A key fetch that this request waited on failed.
    #[error("fetching data keys failed: {0}")]
    FetchFailed(String),
    /// Unwrapping the key material failed.
    #[error("data key {id}: {source}")]
    Unwrap {
        /// The key.
        id: KeyId,
        /// The KMS error.
        source: crate::kms::Error,
    },
    /// The unwrapped material is not a valid data key.
    #[error("data key {id}: {source}")]
    BadKeyMaterial {
        /// The key.
        id: KeyId,
        /// Why.
        source: crate::crypto::Error,
    },
}

impl Error {
    /// The error for a key that does not exist, by how it was named.
    pub(crate) fn not_found(key: &crate::KeyRef) -> Self {
        match key {
            crate::KeyRef::Id(id) => Error::KeyNotFound(*id),
            crate::KeyRef::AltName(n) => Error::AltNameNotFound(n.clone()),
        }
    }

    /// The server error code behind this error, if any: 11000 for a
    /// duplicate key alternate name (also when a file or memory store
    /// detected it), as the drivers report it.
    pub fn server_code(&self) -> Option<i32> {
        match self {
            Error::Server { code, .. } => *code,
            Error::DuplicateAltName(_) | Error::DuplicateKeyId(_) => Some(11000),
            _ => None,
        }
    }
}
