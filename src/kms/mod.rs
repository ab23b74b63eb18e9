//! KMS providers: who wraps and unwraps data-key material.
//!
//! Providers are configured with the drivers' `kmsProviders` document, e.g.
//! `{"local": {"key": <96 bytes>}, "local:backup": {"key": …}}`. A provider is
//! named by its kind and an optional name after a colon, as in the
//! specification's named KMS providers.

mod local;

pub use local::LocalMasterKey;

use bson::{Bson, Document};
use std::collections::BTreeMap;
use std::fmt;

/// The kinds of KMS the specification defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    /// A 96-byte master key held by the application.
    Local,
    /// AWS KMS.
    Aws,
    /// Azure Key Vault.
    Azure,
    /// GCP Cloud KMS.
    Gcp,
    /// A KMIP server.
    Kmip,
}

impl ProviderKind {
    /// The spelling used in `kmsProviders` and `masterKey.provider`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Aws => "aws",
            ProviderKind::Azure => "azure",
            ProviderKind::Gcp => "gcp",
            ProviderKind::Kmip => "kmip",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "local" => ProviderKind::Local,
            "aws" => ProviderKind::Aws,
            "azure" => ProviderKind::Azure,
            "gcp" => ProviderKind::Gcp,
            "kmip" => ProviderKind::Kmip,
            _ => return None,
        })
    }
}

/// A provider's full name: `local`, or a named provider such as `local:old`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderName {
    kind: ProviderKind,
    name: Option<String>,
}

impl ProviderName {
    /// The unnamed provider of a kind.
    pub fn of_kind(kind: ProviderKind) -> Self {
        ProviderName { kind, name: None }
    }

    /// Parses `kind` or `kind:name` (the name is letters, digits and `_`).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (kind, name) = match s.split_once(':') {
            Some((k, n)) => (k, Some(n)),
            None => (s, None),
        };
        let kind = ProviderKind::parse(kind).ok_or_else(|| Error::UnknownProviderKind(s.into()))?;
        if let Some(n) = name
            && (n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(Error::InvalidProviderName(s.into()));
        }
        Ok(ProviderName {
            kind,
            name: name.map(str::to_owned),
        })
    }

    /// The provider kind.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The name after the colon, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(n) = &self.name {
            write!(f, ":{n}")?;
        }
        Ok(())
    }
}

/// One configured provider's credentials.
#[non_exhaustive]
pub enum ProviderCredentials {
    /// A local master key.
    Local(LocalMasterKey),
}

impl fmt::Debug for ProviderCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderCredentials::Local(k) => fmt::Debug::fmt(k, f),
        }
    }
}

/// The configured KMS providers (the drivers' `kmsProviders` option).
#[derive(Debug, Default)]
pub struct KmsProviders {
    providers: BTreeMap<ProviderName, ProviderCredentials>,
}

impl KmsProviders {
    /// No providers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a local master key.
    pub fn with_local(mut self, name: ProviderName, key: LocalMasterKey) -> Self {
        self.providers.insert(name, ProviderCredentials::Local(key));
        self
    }

    /// Parses a `kmsProviders` document. Local keys may be a binary or a
    /// base64 string.
    pub fn from_document(doc: &Document) -> Result<Self, Error> {
        let mut providers = BTreeMap::new();
        for (key, value) in doc {
            let name = ProviderName::parse(key)?;
            let Bson::Document(options) = value else {
                return Err(Error::InvalidOptions {
                    provider: key.clone(),
                    reason: "expected a document".into(),
                });
            };
            let creds = match name.kind {
                ProviderKind::Local => {
                    ProviderCredentials::Local(LocalMasterKey::from_options(key, options)?)
                }
                other => return Err(Error::UnsupportedProvider(other.as_str().into())),
            };
            providers.insert(name, creds);
        }
        Ok(KmsProviders { providers })
    }

    /// Looks a provider up by name.
    pub fn get(&self, name: &ProviderName) -> Result<&ProviderCredentials, Error> {
        self.providers
            .get(name)
            .ok_or_else(|| Error::ProviderNotConfigured(name.to_string()))
    }

    /// Configured provider names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &ProviderName> {
        self.providers.keys()
    }

    /// Number of configured providers.
    pub fn len(&self) -> usize {
        self.providers.len()
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Unwraps key material with the provider that `master_key` names.
    pub fn unwrap_key(
        &self,
        master_key: &crate::keyvault::MasterKey,
        key_material: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        let provider = master_key.provider();
        match self.get(provider)? {
            ProviderCredentials::Local(kek) => {
                kek.unwrap_key(key_material)
                    .map_err(|source| Error::Unwrap {
                        provider: provider.to_string(),
                        source,
                    })
            }
        }
    }

    /// Wraps fresh key material with the named provider, returning the
    /// `masterKey` document to store beside it.
    pub fn wrap_key(
        &self,
        provider: &ProviderName,
        data_key: &[u8],
    ) -> Result<(crate::keyvault::MasterKey, Vec<u8>), Error> {
        match self.get(provider)? {
            ProviderCredentials::Local(kek) => Ok((
                crate::keyvault::MasterKey::Local {
                    provider: provider.clone(),
                },
                kek.wrap_key(data_key)?,
            )),
        }
    }
}

/// What can go wrong configuring or calling a KMS provider. Never contains
/// key material or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kind before the colon is not local, aws, azure, gcp or kmip.
    #[error("unknown KMS provider '{0}'")]
    UnknownProviderKind(String),
    /// The name after the colon is empty or has characters other than `[A-Za-z0-9_]`.
    #[error("invalid KMS provider name '{0}': a name is letters, digits and '_' after a colon")]
    InvalidProviderName(String),
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
    /// The AEAD layer failed while wrapping.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names() {
        assert_eq!(ProviderName::parse("local").unwrap().to_string(), "local");
        let n = ProviderName::parse("aws:prod_1").unwrap();
        assert_eq!((n.kind(), n.name()), (ProviderKind::Aws, Some("prod_1")));
        assert!(matches!(
            ProviderName::parse("foo"),
            Err(Error::UnknownProviderKind(_))
        ));
        assert!(matches!(
            ProviderName::parse("local:"),
            Err(Error::InvalidProviderName(_))
        ));
        assert!(matches!(
            ProviderName::parse("local:a-b"),
            Err(Error::InvalidProviderName(_))
        ));
    }
}
