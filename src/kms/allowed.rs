//! The master-key allow-list: which `masterKey`s a key document may name.
//!
//! The host list stops a hostile key vault from sending credentials to a
//! host of its choice, but not from naming a genuine KMS key it controls.
//! Whoever can write the key vault can wrap a data key of their own under
//! their own AWS KMS key (or GCP key, or Azure vault key) whose policy lets
//! the application's identity decrypt, and store it as a key document under
//! an alternate name the application uses. The application then unwraps,
//! through the genuine KMS, a data key the attacker knows, and encrypts new
//! values under it. When the application lists the master keys it uses,
//! every key document naming another one is refused before any KMS call.

use super::{
    EndpointOrigin, Error, KMIP_DEFAULT_PORT, ProviderKind, ProviderName, key_operation_host,
};
use crate::key::{Endpoint, MasterKey};
use bson::{Bson, Document};

/// The master keys key documents may name, when the application lists
/// them (see [`ProviderOptions::allow_master_key`](super::ProviderOptions::allow_master_key)).
/// Empty: no list, every master key may be named (the host list still
/// applies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedMasterKeys {
    keys: Vec<MasterKey>,
}

impl AllowedMasterKeys {
    /// Adds a master key, given as a `masterKey` document with its
    /// `provider` (`{"provider": "aws", "region": …, "key": …}`,
    /// `{"provider": "local"}`). Endpoints may be spelled as the application
    /// spells them (`https://host[:port]/`); the document is validated as
    /// a key document's `masterKey` is.
    pub fn allow(&mut self, master_key: &Document) -> Result<(), Error> {
        let provider = match master_key.get("provider") {
            Some(Bson::String(p)) => ProviderName::parse(p)?,
            Some(_) => {
                return Err(Error::InvalidMasterKey(
                    "'provider' must be a string".into(),
                ));
            }
            None => {
                return Err(Error::InvalidMasterKey(
                    "an allowed master key needs its 'provider'".into(),
                ));
            }
        };
        self.keys
            .push(MasterKey::for_provider(&provider, Some(master_key))?);
        Ok(())
    }

    /// Whether a list was given.
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The listed master keys.
    pub fn keys(&self) -> &[MasterKey] {
        &self.keys
    }

    /// Whether a key document may name `master_key`: no list was given, or
    /// it is on the list (see [`same_master_key`]).
    pub fn permits(&self, master_key: &MasterKey) -> bool {
        !self.is_enabled() || self.keys.iter().any(|a| same_master_key(a, master_key))
    }
}

/// Whether `stored` (from a key document) is the master key `allowed`
/// names: the same provider name (`aws:prod` is not `aws`), and the fields
/// that identify a KMS key equal as strings —
///
/// * local: nothing more (the provider name is the key);
/// * AWS: `region`, `key` (an ARN and an alias naming the same key are
///   different entries: list the spelling the key documents hold),
///   and the host called;
/// * Azure: `keyVaultEndpoint` (as a host), `keyName`;
/// * GCP: `projectId`, `location`, `keyRing`, `keyName`, and the host;
/// * KMIP: `keyId`, `delegated` (absent is false), and the endpoint.
///
/// The host called is the endpoint, or the provider's default host when
/// there is none, compared as [`Endpoint`]s (case, a trailing dot and an
/// explicit `:443`, for KMIP `:5696`, do not matter; a KMIP key without an
/// endpoint is served by the configured server). A `keyVersion` on the allowed key must
/// equal the stored one; without one, any version of that key matches:
/// versions of one key belong to whoever owns the key, so they are not a
/// substitution.
pub fn same_master_key(allowed: &MasterKey, stored: &MasterKey) -> bool {
    if allowed.provider() != stored.provider() || !same_host(allowed, stored) {
        return false;
    }
    match (allowed, stored) {
        (MasterKey::Local { .. }, MasterKey::Local { .. }) => true,
        (
            MasterKey::Aws {
                region: r1,
                key: k1,
                ..
            },
            MasterKey::Aws {
                region: r2,
                key: k2,
                ..
            },
        ) => r1 == r2 && k1 == k2,
        (
            MasterKey::Azure {
                key_name: n1,
                key_version: v1,
                ..
            },
            MasterKey::Azure {
                key_name: n2,
                key_version: v2,
                ..
            },
        ) => n1 == n2 && version_matches(v1, v2),
        (
            MasterKey::Gcp {
                project_id: p1,
                location: l1,
                key_ring: r1,
                key_name: n1,
                key_version: v1,
                ..
            },
            MasterKey::Gcp {
                project_id: p2,
                location: l2,
                key_ring: r2,
                key_name: n2,
                key_version: v2,
                ..
            },
        ) => p1 == p2 && l1 == l2 && r1 == r2 && n1 == n2 && version_matches(v1, v2),
        (
            MasterKey::Kmip {
                key_id: i1,
                delegated: d1,
                ..
            },
            MasterKey::Kmip {
                key_id: i2,
                delegated: d2,
                ..
            },
        ) => i1 == i2 && d1.unwrap_or(false) == d2.unwrap_or(false),
        _ => false,
    }
}

/// An empty `keyVersion` is no version (the Azure provider sends none).
fn version_matches(allowed: &Option<String>, stored: &Option<String>) -> bool {
    match allowed.as_deref().filter(|v| !v.is_empty()) {
        None => true,
        Some(v) => stored.as_deref() == Some(v),
    }
}

/// Whether both keys are served by the same `host:port` (neither needing a
/// host counts as the same).
fn same_host(a: &MasterKey, b: &MasterKey) -> bool {
    let endpoint = |m: &MasterKey| {
        key_operation_host(m).map(|h| {
            Endpoint::parse(&h, EndpointOrigin::KeyDocument)
                .ok()
                .map(|e| {
                    // A bare KMIP host is port 5696, not 443.
                    let port = match m.provider().kind() {
                        ProviderKind::Kmip => e.port().unwrap_or(KMIP_DEFAULT_PORT),
                        _ => e.effective_port(),
                    };
                    (e.host().to_owned(), port)
                })
        })
    };
    match (endpoint(a), endpoint(b)) {
        (None, None) => true,
        (Some(Some(x)), Some(Some(y))) => x == y,
        // An endpoint that does not parse matches nothing.
        _ => false,
    }
}

/// A master key as one line for an error: its canonical JSON, printable
/// ASCII only (anything else as `?`), at most 512 characters. Master keys
/// name keys and hosts, never key material or credentials.
pub(crate) fn describe(master_key: &MasterKey) -> String {
    crate::ejson::to_canonical_line(&master_key.to_document())
        .chars()
        .take(512)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "allowed_tests.rs"]
mod tests;
