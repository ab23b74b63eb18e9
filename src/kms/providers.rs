//! [`KmsProviders`], the configured providers (the drivers'
//! `kmsProviders`), built from a document with [`ProviderOptions`];
//! [`create_data_key`] with a local one.

use super::allowed::{self, AllowedMasterKeys};
#[cfg(feature = "aws")]
use super::aws::AwsKms;
#[cfg(feature = "azure")]
use super::azure::AzureKms;
#[cfg(feature = "gcp")]
use super::gcp::GcpKms;
use super::hosts::{KMIP_DEFAULT_PORT, key_operation_host};
use super::http::{RetryPolicy, TlsOptions};
#[cfg(feature = "kmip")]
use super::kmip::KmipKms;
use super::local::LocalMasterKey;
use super::{Error, KmsProvider};
use crate::key::{
    AllowedHosts, Endpoint, EndpointOrigin, KeyDocument, KeyId, MasterKey, ProviderKind,
    ProviderName, sanitize_host,
};
use bson::{Bson, Document};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// How cloud providers are built from a `kmsProviders` document, beyond
/// the document itself: [`Default`] and the `with_*` and `allow_*`
/// setters.
///
/// ```
/// # use csfle::kms::{ProviderOptions, RetryPolicy};
/// let options = ProviderOptions::default()
///     .with_retry(RetryPolicy::default().with_max_attempts(5))
///     .allow_host("kms.internal.example:8443")?;
/// assert_eq!(options.retry.max_attempts, 5);
/// # Ok::<(), csfle::kms::Error>(())
/// ```
///
/// `Debug` shows the providers `tls` configures, not their options (which
/// may hold a key password).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ProviderOptions {
    /// The drivers' `tlsOptions`: `{"<provider name>": {tlsCAFile,
    /// tlsCertificateKeyFile, tlsCertificateKeyFilePassword}}`. It may hold
    /// a key password: wipe it with [`wipe_document`] once the providers
    /// are built (the encrypted client's builder does).
    pub tls: Document,
    /// Retries and timeouts of every cloud provider.
    pub retry: RetryPolicy,
    /// The Azure Instance Metadata Service for on-demand Azure credentials
    /// (default `http://169.254.169.254`).
    pub azure_imds_endpoint: Option<String>,
    /// The GCP metadata server for on-demand GCP credentials (default
    /// `http://$GCE_METADATA_HOST`, else `http://metadata.google.internal`).
    pub gcp_metadata_endpoint: Option<String>,
    /// Where `"aws": {}` gets its credentials instead of the default chain
    /// (the drivers' custom AWS credential provider).
    #[cfg(feature = "aws")]
    pub aws_credentials: Option<aws_sdk_kms::config::SharedCredentialsProvider>,
    /// Hosts beyond the providers' public lists that an endpoint read from
    /// a key document may name (see [`allow_host`](Self::allow_host)).
    pub allowed_hosts: AllowedHosts,
    /// The master keys key documents may name, when listed (see
    /// [`allow_master_key`](Self::allow_master_key)).
    pub allowed_master_keys: AllowedMasterKeys,
    /// Whether KMIP providers may use delegated mode; off by default (see
    /// [`allow_kmip_delegated`](Self::allow_kmip_delegated)).
    pub kmip_delegated: bool,
    /// Delegated KMIP key documents, pinned by `_id` and the SHA-256 of
    /// their `keyMaterial` (see
    /// [`pin_kmip_delegated_key`](Self::pin_kmip_delegated_key)).
    pub kmip_delegated_pins: Vec<(KeyId, [u8; 32])>,
}

impl fmt::Debug for ProviderOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ProviderOptions");
        // The provider names only: an entry may hold
        // tlsCertificateKeyFilePassword.
        d.field("tls", &self.tls.keys().collect::<Vec<_>>())
            .field("retry", &self.retry)
            .field("azure_imds_endpoint", &self.azure_imds_endpoint)
            .field("gcp_metadata_endpoint", &self.gcp_metadata_endpoint);
        #[cfg(feature = "aws")]
        d.field("aws_credentials", &self.aws_credentials.is_some());
        d.field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_master_keys", &self.allowed_master_keys)
            .field("kmip_delegated", &self.kmip_delegated)
            .field("kmip_delegated_pins", &self.kmip_delegated_pins.len())
            .finish()
    }
}

impl ProviderOptions {
    /// Sets [`tls`](Self::tls): the drivers' `tlsOptions` document.
    pub fn with_tls(mut self, tls: Document) -> Self {
        self.tls = tls;
        self
    }

    /// Sets [`retry`](Self::retry).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`azure_imds_endpoint`](Self::azure_imds_endpoint).
    pub fn with_azure_imds_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.azure_imds_endpoint = Some(endpoint.into());
        self
    }

    /// Sets [`gcp_metadata_endpoint`](Self::gcp_metadata_endpoint).
    pub fn with_gcp_metadata_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.gcp_metadata_endpoint = Some(endpoint.into());
        self
    }

    /// Sets [`aws_credentials`](Self::aws_credentials) (feature `aws`).
    #[cfg(feature = "aws")]
    pub fn with_aws_credentials(
        mut self,
        credentials: aws_sdk_kms::config::SharedCredentialsProvider,
    ) -> Self {
        self.aws_credentials = Some(credentials);
        self
    }

    /// Allows key documents of the cloud providers (AWS, Azure, GCP) to
    /// name `host[:port]` (no port: 443) as their KMS endpoint. Without
    /// this, an endpoint read from a key document must be one of the
    /// provider's public hosts (AWS `kms.<region>.amazonaws.com`, Azure
    /// `*.vault.azure.net`, GCP `cloudkms.googleapis.com`, …): whoever
    /// writes the key vault must not be able to send the application's
    /// credentials to a host of their choice.
    ///
    /// Not for KMIP: a host allowed for the cloud providers is not thereby
    /// a KMIP server (which would receive the TLS client certificate and
    /// could serve a key-encryption key of its choice). Allow a KMIP
    /// server with [`allow_host_for`](Self::allow_host_for), and prefer it
    /// for the others too: a host allowed for one kind only is refused for
    /// the rest.
    pub fn allow_host(mut self, host: &str) -> Result<Self, Error> {
        self.allowed_hosts
            .allow(host)
            .map_err(Error::InvalidEndpoint)?;
        Ok(self)
    }

    /// Allows key documents of providers of `kind` (and of no other kind)
    /// to name `host[:port]` as their endpoint; without a port, 443, or
    /// 5696 for KMIP. A KMIP key document may always name the endpoint its
    /// provider is configured with.
    pub fn allow_host_for(mut self, kind: ProviderKind, host: &str) -> Result<Self, Error> {
        self.allowed_hosts
            .allow_for(kind, host)
            .map_err(Error::InvalidEndpoint)?;
        Ok(self)
    }

    /// Allows (with `true`) KMIP delegated mode (`masterKey: {"delegated":
    /// true}`): creating such keys and unwrapping them. Off by default, and
    /// not recommended: use the default mode.
    ///
    /// A delegated `keyMaterial` is the KMIP server's AES-CBC of the data
    /// key, without authentication. Whoever can write the key vault can
    /// rearrange its blocks (and choose the IV) so that the genuine server
    /// decrypts it, with valid padding, into 96 bytes of which the first 80
    /// are the attacker's choice: the MAC and encryption keys of the data
    /// key. The document keeps its `keyId`, `endpoint` and `delegated`, so
    /// [`allow_master_key`](Self::allow_master_key) does not notice; the
    /// application then encrypts new values under a key the attacker
    /// knows. Pin the delegated key documents the application uses with
    /// [`pin_kmip_delegated_key`](Self::pin_kmip_delegated_key) to close
    /// that; without pins, only an application that trusts every writer of
    /// its key vault should allow this. The default mode wraps with the
    /// FLE1 AEAD, whose tag refuses any rearranged `keyMaterial`.
    pub fn allow_kmip_delegated(mut self, allow: bool) -> Self {
        self.kmip_delegated = allow;
        self
    }

    /// Pins a delegated KMIP key document: its `_id` and the SHA-256 of its
    /// `keyMaterial` (the bytes of the stored binary). Once one is pinned,
    /// a delegated key document that does not match a pin is refused with
    /// [`Error::KmipDelegatedKeyNotPinned`] before any KMIP call, so a
    /// rewritten `keyMaterial` is never sent to the server. Keys created or
    /// rewrapped in delegated mode afterwards need a pin of their own.
    /// [`KmsProviders::unwrap_key`], which has no key `_id`, matches the
    /// digest alone.
    pub fn pin_kmip_delegated_key(mut self, id: KeyId, key_material_sha256: [u8; 32]) -> Self {
        self.kmip_delegated_pins.push((id, key_material_sha256));
        self
    }

    /// Lists a master key that key documents may name, as a `masterKey`
    /// document with its `provider`: `{"provider": "aws", "region":
    /// "us-east-1", "key": "arn:aws:kms:…"}`, `{"provider": "azure",
    /// "keyVaultEndpoint": …, "keyName": …}`, `{"provider": "local"}`.
    ///
    /// Without a list, any master key on an allowed host is used. Whoever
    /// writes the key vault can then wrap a data key they know under a KMS
    /// key they control whose policy admits the application's identity, and
    /// the application, unwrapping it through the genuine KMS, encrypts
    /// under the attacker's data key. Once one master key is listed, a key
    /// document naming any other (local providers included, by name) is
    /// refused with [`Error::MasterKeyNotAllowed`] before any KMS call. How
    /// entries match: [`same_master_key`](super::same_master_key).
    pub fn allow_master_key(mut self, master_key: &Document) -> Result<Self, Error> {
        self.allowed_master_keys.allow(master_key)?;
        Ok(self)
    }

    /// The TLS options for provider `name` (none configured: the defaults).
    fn tls_for(&self, name: &str) -> Result<TlsOptions, Error> {
        match self.tls.get(name) {
            None => Ok(TlsOptions::default()),
            Some(Bson::Document(d)) => TlsOptions::from_document(name, d),
            Some(_) => Err(Error::InvalidOptions {
                provider: name.to_owned(),
                reason: "tlsOptions entry must be a document".into(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    provider: Arc<dyn KmsProvider>,
    /// Set for local master keys, which also work synchronously.
    local: Option<Arc<LocalMasterKey>>,
}

/// The configured KMS providers (the drivers' `kmsProviders` option).
#[derive(Debug, Default, Clone)]
pub struct KmsProviders {
    providers: BTreeMap<ProviderName, Entry>,
    allowed_hosts: AllowedHosts,
    allowed_master_keys: AllowedMasterKeys,
    /// `(_id, SHA-256 of keyMaterial)` of the delegated KMIP key documents
    /// the application pinned; empty: no pins.
    kmip_delegated_pins: Vec<(KeyId, [u8; 32])>,
}

impl KmsProviders {
    /// No providers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a local master key.
    pub fn with_local(mut self, name: ProviderName, key: LocalMasterKey) -> Self {
        let key = Arc::new(key);
        self.providers.insert(
            name,
            Entry {
                provider: key.clone(),
                local: Some(key),
            },
        );
        self
    }

    /// Adds (or replaces) any provider under `name`.
    pub fn with_provider(mut self, name: ProviderName, provider: Arc<dyn KmsProvider>) -> Self {
        self.providers.insert(
            name,
            Entry {
                provider,
                local: None,
            },
        );
        self
    }

    /// Allows key documents of the cloud providers to name `host[:port]` as
    /// their KMS endpoint (see [`ProviderOptions::allow_host`]).
    pub fn allow_host(mut self, host: &str) -> Result<Self, Error> {
        self.allowed_hosts
            .allow(host)
            .map_err(Error::InvalidEndpoint)?;
        Ok(self)
    }

    /// Allows key documents of providers of `kind` to name `host[:port]`
    /// as their endpoint (see [`ProviderOptions::allow_host_for`]).
    pub fn allow_host_for(mut self, kind: ProviderKind, host: &str) -> Result<Self, Error> {
        self.allowed_hosts
            .allow_for(kind, host)
            .map_err(Error::InvalidEndpoint)?;
        Ok(self)
    }

    /// Lists a master key that key documents may name (see
    /// [`ProviderOptions::allow_master_key`]).
    pub fn allow_master_key(mut self, master_key: &Document) -> Result<Self, Error> {
        self.allowed_master_keys.allow(master_key)?;
        Ok(self)
    }

    /// Parses a `kmsProviders` document with default options. Local keys
    /// may be a binary or a base64 string.
    pub fn from_document(doc: &Document) -> Result<Self, Error> {
        Self::from_document_with(doc, &ProviderOptions::default())
    }

    /// Parses a `kmsProviders` document: `local`, and `aws`, `azure`, `gcp`,
    /// `kmip` when their cargo features are enabled (named ones too, e.g.
    /// `"azure:prod"`, `"kmip:hsm"`). An empty document for a cloud
    /// provider asks for on-demand credentials; KMIP needs its `endpoint`.
    pub fn from_document_with(doc: &Document, options: &ProviderOptions) -> Result<Self, Error> {
        for name in options.tls.keys() {
            if !doc.contains_key(name) {
                return Err(Error::InvalidOptions {
                    provider: name.clone(),
                    reason: "tlsOptions given for a provider that is not configured".into(),
                });
            }
        }
        let mut providers = KmsProviders {
            allowed_hosts: options.allowed_hosts.clone(),
            allowed_master_keys: options.allowed_master_keys.clone(),
            kmip_delegated_pins: options.kmip_delegated_pins.clone(),
            ..KmsProviders::new()
        };
        for (key, value) in doc {
            let name = ProviderName::parse(key)?;
            let Bson::Document(provider_options) = value else {
                return Err(Error::InvalidOptions {
                    provider: key.clone(),
                    reason: "expected a document".into(),
                });
            };
            let tls = options.tls_for(key)?;
            providers = match name.kind() {
                ProviderKind::Local => {
                    let k = LocalMasterKey::from_options(key, provider_options)?;
                    providers.with_local(name, k)
                }
                #[cfg(feature = "aws")]
                ProviderKind::Aws => {
                    let p = AwsKms::from_options(
                        key,
                        provider_options,
                        &tls,
                        options.retry,
                        options.aws_credentials.clone(),
                    )?;
                    providers.with_provider(name, Arc::new(p))
                }
                #[cfg(feature = "azure")]
                ProviderKind::Azure => {
                    let p = AzureKms::from_options(
                        key,
                        provider_options,
                        &tls,
                        options.retry,
                        options.azure_imds_endpoint.as_deref(),
                    )?;
                    providers.with_provider(name, Arc::new(p))
                }
                #[cfg(feature = "gcp")]
                ProviderKind::Gcp => {
                    let metadata = options.gcp_metadata_endpoint.clone().or_else(|| {
                        std::env::var("GCE_METADATA_HOST")
                            .ok()
                            .map(|h| format!("http://{h}"))
                    });
                    let p = GcpKms::from_options(
                        key,
                        provider_options,
                        &tls,
                        options.retry,
                        metadata.as_deref(),
                    )?;
                    providers.with_provider(name, Arc::new(p))
                }
                #[cfg(feature = "kmip")]
                ProviderKind::Kmip => {
                    let p = KmipKms::from_options(key, provider_options, &tls, options.retry)?
                        .allow_delegated(options.kmip_delegated);
                    providers.with_provider(name, Arc::new(p))
                }
                // Reached only by kinds whose feature is off: with every
                // feature on, each kind has its arm above.
                #[allow(unreachable_patterns)]
                other => {
                    let _ = tls;
                    return Err(Error::UnsupportedProvider(other.as_str().into()));
                }
            };
        }
        Ok(providers)
    }

    fn entry(&self, name: &ProviderName) -> Result<&Entry, Error> {
        self.providers
            .get(name)
            .ok_or_else(|| Error::ProviderNotConfigured(name.to_string()))
    }

    /// Whether a provider is configured under `name`.
    pub fn contains(&self, name: &ProviderName) -> bool {
        self.providers.contains_key(name)
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
    /// `master_key` comes from a key document, so it must be on the
    /// master-key allow-list when there is one, and its endpoint must be a
    /// public host of the provider or an allowed one; both are checked
    /// before anything is resolved or sent.
    ///
    /// A delegated KMIP key's `keyMaterial` must match a pin, when the
    /// application pinned any
    /// ([`ProviderOptions::pin_kmip_delegated_key`]); without the key's
    /// `_id` here, its digest alone is matched:
    /// [`unwrap_key_document`](Self::unwrap_key_document) matches both.
    pub async fn unwrap_key(
        &self,
        master_key: &MasterKey,
        key_material: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.unwrap_checked(None, master_key, key_material).await
    }

    /// [`unwrap_key`](Self::unwrap_key) of a key document's `keyMaterial`
    /// under its `masterKey`; a pinned delegated KMIP key must match its
    /// pin by `_id` and digest.
    pub async fn unwrap_key_document(
        &self,
        key: &KeyDocument,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.unwrap_checked(Some(key.id), &key.master_key, &key.key_material)
            .await
    }

    /// The allow-lists, then the pins, then the provider.
    async fn unwrap_checked(
        &self,
        id: Option<KeyId>,
        master_key: &MasterKey,
        key_material: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.check_key_document_master_key(master_key)?;
        self.check_key_document_endpoint(master_key)?;
        self.check_kmip_delegated_pin(id, master_key, key_material)?;
        let entry = self.entry(master_key.provider())?;
        entry.provider.unwrap(master_key, key_material).await
    }

    /// Refuses a delegated KMIP key whose `keyMaterial` (and `_id`, when
    /// known) matches no pin, when the application pinned any. Other keys,
    /// and every key when there are no pins, pass.
    fn check_kmip_delegated_pin(
        &self,
        id: Option<KeyId>,
        master_key: &MasterKey,
        key_material: &[u8],
    ) -> Result<(), Error> {
        let MasterKey::Kmip {
            delegated: Some(true),
            ..
        } = master_key
        else {
            return Ok(());
        };
        if self.kmip_delegated_pins.is_empty() {
            return Ok(());
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key_material);
        let pinned = self.kmip_delegated_pins.iter().any(|(pin_id, pin_digest)| {
            id.is_none_or(|id| id == *pin_id) && pin_digest.as_slice() == digest.as_slice()
        });
        if pinned {
            Ok(())
        } else {
            Err(Error::KmipDelegatedKeyNotPinned {
                provider: master_key.provider().to_string(),
                id,
            })
        }
    }

    /// Wraps data-key material with `provider` and the `masterKey` options
    /// for it (`None` for a local provider), returning the validated master
    /// key to store beside the material.
    pub async fn wrap_key(
        &self,
        provider: &ProviderName,
        master_key: Option<&Document>,
        data_key: &[u8],
    ) -> Result<(MasterKey, Vec<u8>), Error> {
        let entry = self.entry(provider)?;
        let master_key = MasterKey::for_provider(provider, master_key)?;
        entry.provider.wrap_new_key(&master_key, data_key).await
    }

    /// [`unwrap_key`](Self::unwrap_key) without I/O, for local master keys
    /// only; any other provider is an error saying so.
    pub fn unwrap_key_local(
        &self,
        master_key: &MasterKey,
        key_material: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.check_key_document_master_key(master_key)?;
        self.local(master_key.provider())?
            .unwrap_for(master_key, key_material)
    }

    /// [`wrap_key`](Self::wrap_key) without I/O, for local master keys only.
    pub fn wrap_key_local(
        &self,
        provider: &ProviderName,
        data_key: &[u8],
    ) -> Result<(MasterKey, Vec<u8>), Error> {
        let kek = self.local(provider)?;
        Ok((
            MasterKey::Local {
                provider: provider.clone(),
            },
            kek.wrap_key(data_key)?,
        ))
    }

    /// Refuses a key document's master key whose endpoint (given, or the
    /// provider's default) is neither on the provider's public list, nor
    /// the endpoint configured for the provider it names (a KMIP server's),
    /// nor allowed by the application. A KMIP endpoint without a port
    /// means port 5696.
    pub fn check_key_document_endpoint(&self, master_key: &MasterKey) -> Result<(), Error> {
        let kind = master_key.provider().kind();
        let Some(host) = key_operation_host(master_key) else {
            return Ok(());
        };
        let mut endpoint =
            Endpoint::parse(&host, EndpointOrigin::KeyDocument).map_err(Error::InvalidEndpoint)?;
        if kind == ProviderKind::Kmip {
            endpoint = endpoint.with_default_port(KMIP_DEFAULT_PORT);
        }
        let configured = self
            .providers
            .get(master_key.provider())
            .and_then(|e| e.provider.configured_endpoint());
        if configured == Some(&endpoint) || self.allowed_hosts.permits(kind, &endpoint) {
            Ok(())
        } else {
            Err(Error::HostNotAllowed {
                provider: master_key.provider().to_string(),
                host: sanitize_host(&endpoint.to_string()),
            })
        }
    }

    /// Refuses a key document's master key that is not on the master-key
    /// allow-list, when the application gave one.
    pub fn check_key_document_master_key(&self, master_key: &MasterKey) -> Result<(), Error> {
        if self.allowed_master_keys.permits(master_key) {
            Ok(())
        } else {
            Err(Error::MasterKeyNotAllowed {
                provider: master_key.provider().to_string(),
                master_key: allowed::describe(master_key),
            })
        }
    }

    fn local(&self, name: &ProviderName) -> Result<&LocalMasterKey, Error> {
        self.entry(name)?
            .local
            .as_deref()
            .ok_or_else(|| Error::NotLocal(name.to_string()))
    }
}

/// Creates a new data key wrapped by the local master key `provider`, as the
/// drivers' `createDataKey` does: 96 bytes from the operating system's
/// generator, or the given `key_material` (which must be 96 bytes), a random
/// UUID `_id`, and the current time as creation and update date. The caller
/// stores it. Keys wrapped by a remote KMS are created with
/// `ClientEncryption::create_data_key`.
pub fn create_data_key(
    providers: &KmsProviders,
    provider: &ProviderName,
    key_alt_names: Vec<String>,
    key_material: Option<&[u8]>,
) -> Result<KeyDocument, Error> {
    let material = crate::crypto::new_key_material(key_material)?;
    let (master_key, wrapped) = providers.wrap_key_local(provider, &material[..])?;
    Ok(KeyDocument::new(master_key, wrapped, key_alt_names)?)
}

/// Overwrites every string and binary in `doc` with zeros and empties it:
/// for a parsed `kmsProviders` document (master keys, secrets, tokens) once
/// the providers are built. The document's own buffers are wiped; copies
/// made elsewhere are the holder's to wipe.
pub fn wipe_document(doc: &mut Document) {
    fn wipe(value: &mut Bson) {
        use zeroize::Zeroize;
        match value {
            Bson::String(s) => s.zeroize(),
            Bson::Binary(b) => b.bytes.zeroize(),
            Bson::Document(d) => d.iter_mut().for_each(|(_, v)| wipe(v)),
            Bson::Array(a) => a.iter_mut().for_each(wipe),
            _ => {}
        }
    }
    doc.iter_mut().for_each(|(_, v)| wipe(v));
    doc.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn provider_options_debug_shows_no_tls_option() {
        let options = ProviderOptions::default()
            .with_tls(doc! {"kmip:hsm": {
                "tlsCertificateKeyFile": "/etc/csfle/client-key.pem",
                "tlsCertificateKeyFilePassword": "hunter2-correct-horse",
            }})
            .pin_kmip_delegated_key(KeyId::from_bytes([1; 16]), [0xAB; 32]);
        let shown = format!("{options:?}");
        assert!(shown.contains("kmip:hsm"), "{shown}");
        assert!(!shown.contains("hunter2-correct-horse"), "{shown}");
        assert!(!shown.contains("client-key.pem"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    fn delegated(key_id: &str) -> MasterKey {
        MasterKey::from_document(&doc! {"provider": "kmip", "keyId": key_id, "delegated": true})
            .unwrap()
    }

    #[test]
    fn pinned_delegated_key_documents_must_match_their_pin() {
        use sha2::Digest;
        let material = [7u8; 128];
        let id = KeyId::from_bytes([1; 16]);
        let digest: [u8; 32] = sha2::Sha256::digest(material).into();
        let mut kms = KmsProviders::new();
        // No pins: nothing to match.
        kms.check_kmip_delegated_pin(Some(id), &delegated("1"), &[0; 128])
            .unwrap();
        kms.kmip_delegated_pins = ProviderOptions::default()
            .pin_kmip_delegated_key(id, digest)
            .kmip_delegated_pins;
        kms.check_kmip_delegated_pin(Some(id), &delegated("1"), &material)
            .unwrap();
        kms.check_kmip_delegated_pin(None, &delegated("1"), &material)
            .unwrap();
        // A rewritten keyMaterial, or the pinned one under another _id.
        let mut forged = material;
        forged[16..32].copy_from_slice(&[9; 16]);
        for (key, bytes) in [
            (Some(id), &forged[..]),
            (None, &forged[..]),
            (Some(KeyId::from_bytes([2; 16])), &material[..]),
        ] {
            let e = kms
                .check_kmip_delegated_pin(key, &delegated("1"), bytes)
                .unwrap_err();
            assert!(
                matches!(&e, Error::KmipDelegatedKeyNotPinned { id, .. } if *id == key),
                "{e}"
            );
        }
        // Default-mode and other keys are not delegated: not pinned.
        let default_mode =
            MasterKey::from_document(&doc! {"provider": "kmip", "keyId": "1"}).unwrap();
        kms.check_kmip_delegated_pin(Some(id), &default_mode, &forged)
            .unwrap();
    }
}
