//! `EncryptedClient::builder`: automatic encryption configured the way the
//! drivers' `AutoEncryptionOpts` are, in the `mongodb` crate's builder
//! style.

use super::audit::AuditSink;
use super::auto::{AutoEncrypter, AutoEncryptionOptions};
use super::collection::EncryptedClient;
use super::encryption::ClientEncryption;
use crate::keyvault::{DEFAULT_KEY_VAULT_NAMESPACE, KeyCacheOptions, KeyVault, MongoKeyVault};
use crate::kms::{KmsProviders, ProviderOptions};
use crate::{ClientError, Error};
use bson::Document;
use std::sync::Arc;
use std::time::Duration;

/// Where the builder's client comes from: a client the application already
/// has, or options to make one with.
#[derive(Debug)]
pub enum ClientSource {
    /// An existing client (shared: clones share its connection pools).
    Client(mongodb::Client),
    /// Options for a new client.
    Options(Box<mongodb::options::ClientOptions>),
}

impl From<mongodb::Client> for ClientSource {
    fn from(c: mongodb::Client) -> Self {
        ClientSource::Client(c)
    }
}

impl From<mongodb::options::ClientOptions> for ClientSource {
    fn from(o: mongodb::options::ClientOptions) -> Self {
        ClientSource::Options(Box::new(o))
    }
}

#[derive(Debug)]
enum VaultChoice {
    /// A collection, on the key vault client or the application's client.
    Namespace(String),
    /// A store the application built.
    Custom(Arc<dyn KeyVault>),
}

enum KmsChoice {
    Unset,
    Built(KmsProviders),
    /// The drivers' `kmsProviders` document: it holds master keys and
    /// credentials, so it never shows in `Debug` and is wiped when the
    /// builder is built or dropped.
    Document(Document, Box<ProviderOptions>),
}

impl std::fmt::Debug for KmsChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KmsChoice::Unset => f.write_str("Unset"),
            KmsChoice::Built(k) => f.debug_tuple("Built").field(k).finish(),
            KmsChoice::Document(d, _) => f
                .debug_struct("Document")
                .field("providers", &d.keys().collect::<Vec<_>>())
                .finish_non_exhaustive(),
        }
    }
}

impl KmsChoice {
    /// Wipes the `kmsProviders` document and the provider options' TLS
    /// options (which may hold `tlsCertificateKeyFilePassword`).
    fn wipe(&mut self) {
        if let KmsChoice::Document(d, options) = self {
            crate::kms::wipe_document(d);
            crate::kms::wipe_document(&mut options.tls);
        }
    }
}

impl Drop for KmsChoice {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// Builds an [`EncryptedClient`]; from [`EncryptedClient::builder`].
///
/// ```no_run
/// # async fn run(kms_providers: bson::Document, schema_map: bson::Document) -> Result<(), csfle::Error> {
/// let client = mongodb::Client::with_uri_str("mongodb://localhost:27017").await?;
/// let encrypted = csfle::EncryptedClient::builder(client)
///     .key_vault_namespace("encryption.__keyVault")
///     .kms_providers(kms_providers)
///     .schema_map(schema_map)
///     .build()
///     .await?;
/// let people = encrypted.database("hr").collection::<bson::Document>("people");
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct EncryptedClientBuilder {
    source: ClientSource,
    key_vault: VaultChoice,
    key_vault_client: Option<mongodb::Client>,
    kms: KmsChoice,
    schema_map: Document,
    options: AutoEncryptionOptions,
    cache: KeyCacheOptions,
    audit: Option<Arc<dyn AuditSink>>,
    verify_keys: bool,
}

impl EncryptedClient {
    /// A builder over `client` (a `mongodb::Client` or its
    /// `ClientOptions`): key vault `encryption.__keyVault` on the same
    /// deployment, no schema map (schemas from the server's validators),
    /// the default key cache (60 s).
    pub fn builder(client: impl Into<ClientSource>) -> EncryptedClientBuilder {
        EncryptedClientBuilder {
            source: client.into(),
            key_vault: VaultChoice::Namespace(DEFAULT_KEY_VAULT_NAMESPACE.into()),
            key_vault_client: None,
            kms: KmsChoice::Unset,
            schema_map: Document::new(),
            options: AutoEncryptionOptions::default(),
            cache: KeyCacheOptions::default(),
            audit: None,
            verify_keys: false,
        }
    }
}

impl EncryptedClientBuilder {
    /// The key vault collection, `db.coll` (default
    /// `encryption.__keyVault`).
    pub fn key_vault_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.key_vault = VaultChoice::Namespace(namespace.into());
        self
    }

    /// The deployment holding the key vault collection, when it is not the
    /// application's (the drivers' `keyVaultClient`).
    pub fn key_vault_client(mut self, client: mongodb::Client) -> Self {
        self.key_vault_client = Some(client);
        self
    }

    /// A key vault the application built (a file, memory, its own store)
    /// instead of a collection.
    pub fn key_vault(mut self, vault: impl KeyVault + 'static) -> Self {
        self.key_vault = VaultChoice::Custom(Arc::new(vault));
        self
    }

    /// A key vault shared with other clients, or chosen at run time.
    pub fn key_vault_shared(mut self, vault: Arc<dyn KeyVault>) -> Self {
        self.key_vault = VaultChoice::Custom(vault);
        self
    }

    /// The KMS providers, from the drivers' `kmsProviders` document (with
    /// default provider options).
    pub fn kms_providers(self, kms_providers: Document) -> Self {
        self.kms_providers_with(kms_providers, ProviderOptions::default())
    }

    /// The KMS providers from a `kmsProviders` document and provider
    /// options (TLS per provider, retries, hosts key documents may name).
    pub fn kms_providers_with(mut self, kms_providers: Document, options: ProviderOptions) -> Self {
        self.kms = KmsChoice::Document(kms_providers, Box::new(options));
        self
    }

    /// KMS providers built by the application.
    pub fn kms(mut self, providers: KmsProviders) -> Self {
        self.kms = KmsChoice::Built(providers);
        self
    }

    /// The schema map `{"db.coll": <$jsonSchema>}`; a local map is the
    /// safer source (a schema read from the server can be weakened by
    /// whoever controls it). Read strictly when the client is built (see
    /// [`parse_schema_map`](crate::schema::parse_schema_map)): a key that is
    /// not `db.coll`, an entry still wrapped in `{"$jsonSchema": …}` or a
    /// keyword MongoDB's `$jsonSchema` does not have is an error.
    pub fn schema_map(mut self, schema_map: Document) -> Self {
        self.schema_map = schema_map;
        self
    }

    /// Queryable Encryption's `encryptedFieldsMap` (feature `qe`):
    /// `{"db.coll": <encryptedFields>}`, read strictly when the client is
    /// built (see
    /// [`AutoEncryptionOptions::encrypted_fields_map`]). A field names its
    /// key by `keyId` or `keyAltName` (resolved through the key vault). A
    /// namespace in both this map and the [`schema_map`](Self::schema_map)
    /// fails the build. An entry wins over the server's `encryptedFields`,
    /// which is read otherwise (`listCollections`, cached as schemas are).
    ///
    /// ```no_run
    /// # async fn run(client: mongodb::Client, kms: bson::Document, key: bson::Binary) -> Result<(), csfle::Error> {
    /// let encrypted = csfle::EncryptedClient::builder(client)
    ///     .kms_providers(kms)
    ///     .encrypted_fields_map(bson::doc! {"hr.people": {"fields": [
    ///         {"path": "ssn", "keyId": key, "bsonType": "string",
    ///          "queries": {"queryType": "equality"}},
    ///     ]}})
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn encrypted_fields_map(mut self, map: Document) -> Self {
        self.options.encrypted_fields_map = map;
        self
    }

    /// The schema map (and the `encryptedFieldsMap`) is complete: never
    /// ask the server for schemas.
    pub fn schema_map_only(mut self, only: bool) -> Self {
        self.options.schema_map_only = only;
        self
    }

    /// Refuse commands on namespaces without a schema (except those
    /// declared with [`plain_namespaces`](Self::plain_namespaces)).
    pub fn require_schema(mut self, require: bool) -> Self {
        self.options.require_schema = require;
        self
    }

    /// Declares the namespaces (`db.coll`) that hold no encrypted fields,
    /// so that `require_schema` can be on in production: commands on them
    /// go out unchanged, commands on any other namespace without a schema
    /// are refused. A declared namespace that has a schema (in the schema
    /// map, a typed collection's, the server's) is refused with
    /// [`ClientError::PlainNamespace`], as is one that is not `db.coll` (when
    /// built). Replaces any earlier list.
    ///
    /// ```no_run
    /// # async fn run(client: mongodb::Client, kms: bson::Document, map: bson::Document) -> Result<(), csfle::Error> {
    /// let encrypted = csfle::EncryptedClient::builder(client)
    ///     .kms_providers(kms)
    ///     .schema_map(map)
    ///     .require_schema(true)
    ///     .plain_namespaces(["app.sessions", "app.audit"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn plain_namespaces<I, S>(mut self, namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.plain_namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// Send commands unchanged and only decrypt replies (the drivers'
    /// `bypassAutoEncryption`).
    pub fn bypass_auto_encryption(mut self, bypass: bool) -> Self {
        self.options.bypass_auto_encryption = bypass;
        self
    }

    /// Skip query analysis but still validate schemas and decrypt replies
    /// (the drivers' `bypassQueryAnalysis`): the application encrypts
    /// values explicitly, and a command with a value the schemas encrypt
    /// that is not already encrypted is refused before it is sent (see
    /// [`AutoEncryptionOptions::bypass_query_analysis`](crate::AutoEncryptionOptions::bypass_query_analysis)).
    pub fn bypass_query_analysis(mut self, bypass: bool) -> Self {
        self.options.bypass_query_analysis = bypass;
        self
    }

    /// How long a schema read from the server is reused (default 60 s).
    pub fn remote_schema_ttl(mut self, ttl: Duration) -> Self {
        self.options.remote_schema_ttl = Some(ttl);
        self
    }

    /// The most time one operation may take, everything included (the
    /// drivers' `timeoutMS`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Asks `sink` before every decryption (replies, cursors, change
    /// events); a refusal fails the operation with nothing decrypted. See
    /// [`AuditSink`].
    pub fn audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The unwrapped-key cache: time to live and size.
    pub fn key_cache(mut self, cache: KeyCacheOptions) -> Self {
        self.cache = cache;
        self
    }

    /// Checks, when the client is built, that every key document in the
    /// key vault unwraps through the KMS providers (default: off). A wrong
    /// master key, a provider missing from the KMS providers, a key
    /// document the allow-lists refuse or an unreachable KMS then fails
    /// [`build`](Self::build), with an error naming the key's id
    /// ([`keyvault::Error::Unwrap`](crate::keyvault::Error::Unwrap)),
    /// instead of the first operation that needs the key.
    ///
    /// All key documents, not only those the schema map names: replies are
    /// decrypted with whatever key their ciphertexts name, typed
    /// collections and `keyId` pointers name keys the map does not, and
    /// without a map the schemas come from the server later. It costs one
    /// key-vault query and one unwrap per key (a KMS round trip for a cloud
    /// provider, 8 at a time), at most 10,000 keys: a larger vault fails
    /// the build with
    /// [`keyvault::Error::TooManyKeysToVerify`](crate::keyvault::Error::TooManyKeysToVerify).
    /// A vault shared with applications under other master keys fails it
    /// too; build without this option and verify this application's keys
    /// by filter with
    /// [`ClientEncryption::verify_keys`](super::ClientEncryption::verify_keys)
    /// (through [`EncryptedClient::client_encryption`]).
    ///
    /// ```no_run
    /// # async fn run(client: mongodb::Client, kms: bson::Document) -> Result<(), csfle::Error> {
    /// let encrypted = csfle::EncryptedClient::builder(client)
    ///     .kms_providers(kms)
    ///     .verify_keys(true)
    ///     .build()
    ///     .await?; // a data key the master key does not unwrap fails here
    /// # Ok(()) }
    /// ```
    pub fn verify_keys(mut self, verify: bool) -> Self {
        self.verify_keys = verify;
        self
    }

    /// The client: every schema of the map and every `encryptedFields` of
    /// the `encryptedFieldsMap` validated, the KMS providers built, the key
    /// vault opened (and, with
    /// [`verify_keys`](Self::verify_keys), every key unwrapped once).
    pub async fn build(self) -> Result<EncryptedClient, Error> {
        let client = match self.source {
            ClientSource::Client(c) => c,
            ClientSource::Options(o) => mongodb::Client::with_options(*o)?,
        };
        let mut kms = self.kms;
        let kms = match &mut kms {
            KmsChoice::Unset => {
                return Err(Error::Client(ClientError::InvalidArgument {
                    argument: "KMS providers",
                    reason: "none given (kms_providers or kms)",
                }));
            }
            KmsChoice::Built(k) => std::mem::take(k),
            // The document is wiped when `kms` is dropped, here.
            KmsChoice::Document(d, options) => KmsProviders::from_document_with(d, options)?,
        };
        let vault: Arc<dyn KeyVault> = match self.key_vault {
            VaultChoice::Custom(v) => v,
            VaultChoice::Namespace(ns) => {
                let on = self.key_vault_client.as_ref().unwrap_or(&client);
                Arc::new(MongoKeyVault::new(on, &ns)?)
            }
        };
        let mut encryption = ClientEncryption::from_shared_vault(vault, kms, self.cache);
        if let Some(sink) = self.audit {
            encryption = encryption.with_audit_sink(sink);
        }
        let auto = AutoEncrypter::new(encryption, &self.schema_map, self.options)?;
        // After the schema map is checked: a malformed map fails without I/O.
        if self.verify_keys {
            auto.client_encryption()
                .verify_keys(Document::new())
                .await?;
        }
        Ok(EncryptedClient::new(client, auto))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kmsProviders document holds the master key: not in `Debug`.
    #[test]
    fn debug_shows_no_key_material() {
        let key = vec![0x5a; 96];
        let builder = EncryptedClient::builder(mongodb::options::ClientOptions::builder().build())
            .kms_providers(bson::doc! {"local": {"key": bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: key.clone(),
            }}});
        let shown = format!("{builder:?}");
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key);
        assert!(shown.contains("local"), "{shown}");
        assert!(!shown.contains(&b64[..16]), "{shown}");
        assert!(!shown.contains("90, 90, 90"), "{shown}");
    }

    /// The TLS options (a client key's password) are wiped with the
    /// providers document, and never shown.
    #[test]
    fn tls_options_are_wiped_and_not_shown() {
        let tls = bson::doc! {"kmip": {
            "tlsCertificateKeyFile": "client.pem",
            "tlsCertificateKeyFilePassword": "hunter2-correct-horse",
        }};
        let options = ProviderOptions::default().with_tls(tls);
        let builder = EncryptedClient::builder(mongodb::options::ClientOptions::builder().build())
            .kms_providers_with(bson::doc! {"kmip": {"endpoint": "k.example"}}, options);
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let mut kms = builder.kms;
        kms.wipe();
        let KmsChoice::Document(providers, options) = &kms else {
            panic!("{kms:?}")
        };
        assert!(providers.is_empty());
        assert!(options.tls.is_empty(), "{options:?}");
    }
}
