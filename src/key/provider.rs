use super::Error;
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

    pub(crate) fn parse(s: &str) -> Option<Self> {
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
