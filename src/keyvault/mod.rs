//! Data keys at rest: key documents, where they are stored, and the ring of
//! unwrapped keys an encrypter works from.

#[cfg(feature = "driver")]
mod cache;
mod clock;
mod file;
#[cfg(feature = "driver")]
mod mongo;
mod ring;
mod store;

pub use crate::key::KeyDocument;
#[cfg(feature = "driver")]
pub use cache::{CacheStats, KeyCache};
pub use clock::Clock;
pub use file::FileKeyVault;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use file::parse_key_documents;
#[cfg(feature = "driver")]
pub use mongo::MongoKeyVault;
pub use ring::KeyRing;
pub use store::{KeyMaterialUpdate, KeyVault, MemoryKeyVault};

use crate::key::KeyId;
use std::time::Duration;

/// The drivers' default key vault namespace.
pub const DEFAULT_KEY_VAULT_NAMESPACE: &str = "encryption.__keyVault";

/// How long unwrapped keys stay cached, and how many: [`Default`] (60 s,
/// 1024 keys) and the `with_*` setters.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct KeyCacheOptions {
    /// Time to live of a cached key (libmongocrypt's default: 60 s).
    /// `Duration::ZERO` keeps keys until evicted by size or explicitly.
    pub ttl: Duration,
    /// The most keys kept; the least recently used is evicted first.
    pub max_keys: usize,
}

impl Default for KeyCacheOptions {
    fn default() -> Self {
        KeyCacheOptions {
            ttl: Duration::from_secs(60),
            max_keys: 1024,
        }
    }
}

impl KeyCacheOptions {
    /// Sets [`ttl`](Self::ttl).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`max_keys`](Self::max_keys).
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }
}

/// What can go wrong finding, reading or storing key documents.
///
/// `Clone`, so that every request waiting on one key-vault fetch receives
/// the fetch's own error (sources are shared, not copied into text).
#[derive(Debug, Clone, thiserror::Error)]
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
    /// A key document or `masterKey` is malformed.
    #[error(transparent)]
    Key(#[from] crate::key::Error),
    /// Reading or writing the key vault file failed.
    #[error("key vault {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::sync::Arc<std::io::Error>,
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
    /// The key vault server failed or could not be reached; the driver's
    /// error is kept whole (codes, labels, retryability).
    #[cfg(feature = "driver")]
    #[error("key vault server error{}: {source}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    Driver {
        /// The server's error code (11000 is a duplicate key).
        code: Option<i32>,
        /// The driver's error.
        #[source]
        source: Box<mongodb::error::Error>,
    },
    /// The key vault server reported a write error in its reply.
    #[error("key vault server error{}: {message}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    Server {
        /// The server's error code (11000 is a duplicate key).
        code: Option<i32>,
        /// The server's message.
        message: String,
    },
    /// A key vault namespace that is not `db.coll`.
    #[error("invalid key vault namespace '{0}': expected db.coll")]
    InvalidNamespace(String),
    /// A filter a file or memory key vault cannot evaluate.
    #[error("unsupported key vault filter: {0}")]
    UnsupportedFilter(String),
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
    /// More key documents match than one key verification reads
    /// (`ClientEncryption::verify_keys`, the encrypted client builder's
    /// `verify_keys`); the check stopped at the first key past the limit.
    #[error(
        "key verification: more than {limit} key documents match; verify them in parts \
         (a filter on masterKey.provider or _id)"
    )]
    TooManyKeysToVerify {
        /// The most key documents one verification reads.
        limit: usize,
    },
}

impl Error {
    /// The error for a key that does not exist, by how it was named.
    #[cfg(feature = "driver")]
    pub(crate) fn not_found(key: &crate::key::KeyRef) -> Self {
        match key {
            crate::key::KeyRef::Id(id) => Error::KeyNotFound(*id),
            crate::key::KeyRef::AltName(n) => Error::AltNameNotFound(n.clone()),
        }
    }

    /// This error as a [`LookupError`](crate::key::LookupError) for `key`:
    /// a missing key stays a missing key, anything else is kept whole as
    /// the source of [`LookupError::Unavailable`](crate::key::LookupError::Unavailable).
    pub fn into_lookup_error(self, key: &crate::key::KeyRef) -> crate::key::LookupError {
        use crate::key::LookupError;
        match self {
            Error::KeyNotFound(id) => LookupError::KeyNotFound(id),
            Error::AltNameNotFound(n) => LookupError::AltNameNotFound(n),
            Error::AmbiguousAltName(n) => LookupError::AmbiguousAltName(n),
            Error::Unwrap { id, source } => LookupError::Unavailable {
                key: id.into(),
                source: Box::new(source),
            },
            Error::BadKeyMaterial { id, source } => LookupError::Unavailable {
                key: id.into(),
                source: Box::new(source),
            },
            other => LookupError::Unavailable {
                key: key.clone(),
                source: Box::new(other),
            },
        }
    }

    /// The server error code behind this error, if any: 11000 for a
    /// duplicate key alternate name (also when a file or memory store
    /// detected it), as the drivers report it.
    pub fn server_code(&self) -> Option<i32> {
        match self {
            #[cfg(feature = "driver")]
            Error::Driver { code, .. } => *code,
            Error::Server { code, .. } => *code,
            Error::DuplicateAltName(_)
            | Error::DuplicateKeyId(_)
            | Error::Key(crate::key::Error::DuplicateAltName(_)) => Some(11000),
            _ => None,
        }
    }
}
