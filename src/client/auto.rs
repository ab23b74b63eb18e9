//! Automatic encryption of commands and decryption of replies, from a schema
//! map, with in-process query analysis.

use super::encryption::ClientEncryption;
use super::remote_schema::{RemoteSchema, SchemaFetcher};
use crate::analysis::{self, Analysis, Namespace, NamespaceSchema};
#[cfg(feature = "qe")]
use crate::qe::encrypted_fields::{
    EncryptedFields, EncryptedFieldsError, EncryptedFieldsMapError, KeyIdOrAltName, ParseMode,
};
use crate::schema::{EncryptionSchema, SchemaSource};
use crate::{ClientError, Error};
use bson::{Bson, Document, RawDocumentBuf, doc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of automatic encryption, as in the drivers' `AutoEncryptionOpts`.
///
/// Built from [`Default`] with the `with_*` setters (the fields stay
/// readable and assignable; more may be added, so the struct cannot be
/// written as a literal outside csfle):
///
/// ```
/// # use csfle::AutoEncryptionOptions;
/// let options = AutoEncryptionOptions::default()
///     .with_require_schema(true)
///     .with_plain_namespaces(["app.audit"]);
/// assert!(options.require_schema);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct AutoEncryptionOptions {
    /// Refuse commands on namespaces that have no schema (none in the
    /// schema map, none registered by a typed collection, none on the
    /// server), instead of sending them unchanged. Namespaces in
    /// `plain_namespaces` are exempt.
    pub require_schema: bool,
    /// Namespaces (`db.coll`) declared to hold no encrypted fields: with
    /// `require_schema` on, these are the only namespaces without a schema
    /// that commands may touch. A declared namespace that turns out to have
    /// a schema (in the schema map: when the encrypter is made; registered
    /// by a typed collection or found on the server: when a command touches
    /// it) is refused with [`ClientError::PlainNamespace`]: the declaration and
    /// the schema contradict each other, and neither is silently preferred.
    /// A declared namespace is never refused for lacking a server to ask.
    pub plain_namespaces: Vec<String>,
    /// Send commands unchanged and only decrypt replies (the drivers'
    /// `bypassAutoEncryption`).
    pub bypass_auto_encryption: bool,
    /// Skip query analysis: the application encrypts values itself, with
    /// explicit encryption, and commands go out as written, a Queryable
    /// Encryption collection's with the `encryptionInformation` the
    /// server needs; replies are still decrypted (the drivers'
    /// `bypassQueryAnalysis`). Unlike `bypass_auto_encryption`, schemas are
    /// still read and validated, so a broken schema map or server schema
    /// is still an error, and every command is verified against them
    /// first ([`analysis::verify_bypassed`]): a value at a field the
    /// schema encrypts must already be a ciphertext of the kind expected
    /// there (FLE1: of the schema's algorithm; Queryable Encryption: an
    /// insert payload or unindexed value where written, a find payload
    /// where queried), else the command is refused before anything is
    /// sent ([`analysis::Error::PlaintextUnderBypass`], naming the field,
    /// never the value). A value the schema says is encrypted never
    /// reaches the server in plaintext. What analysis refuses (commands,
    /// operators, stages, expressions on encrypted fields) stays refused.
    pub bypass_query_analysis: bool,
    /// How long a schema read from the server is reused (default 60 s).
    pub remote_schema_ttl: Option<Duration>,
    /// The most time an operation of an encrypted collection may take, all
    /// of it: the schema lookup (`listCollections` gets the remaining time
    /// as `maxTimeMS`), the key-vault query, the KMS and the command
    /// itself (the drivers' `timeoutMS`). Past it, the operation fails with
    /// [`ClientError::Timeout`].
    pub timeout: Option<Duration>,
    /// The schema map is complete: a namespace it does not list has no
    /// encrypted fields, and the server is never asked. By default (as in
    /// the drivers) a namespace missing from the map is looked up on the
    /// server (`listCollections`), and when there is no server to ask, a
    /// command touching it is refused. A local map is the safer source: a
    /// schema read from the server can be weakened by whoever controls it.
    /// With an [`encrypted_fields_map`](Self::encrypted_fields_map), the
    /// two maps together are complete.
    pub schema_map_only: bool,
    /// Queryable Encryption's `encryptedFieldsMap` (feature `qe`):
    /// `{"db.coll": <encryptedFields>}`, each entry read strictly
    /// ([`EncryptedFields::parse`](crate::qe::encrypted_fields::EncryptedFields::parse))
    /// when the encrypter is made. A field may name its key by `keyId` (a
    /// UUID) or `keyAltName`, resolved through the key vault when a
    /// command first touches the namespace (a name no key has refuses the
    /// command). A namespace may not be in both this map and the schema
    /// map; an entry wins over the server's `encryptedFields` (and its
    /// validator), as a schema map entry does. Without feature `qe`, a
    /// non-empty map is refused.
    pub encrypted_fields_map: Document,
}

impl AutoEncryptionOptions {
    /// Sets [`require_schema`](Self::require_schema).
    pub fn with_require_schema(mut self, require: bool) -> Self {
        self.require_schema = require;
        self
    }

    /// Sets [`plain_namespaces`](Self::plain_namespaces) (`db.coll` each).
    pub fn with_plain_namespaces<I, S>(mut self, namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.plain_namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`bypass_auto_encryption`](Self::bypass_auto_encryption).
    pub fn with_bypass_auto_encryption(mut self, bypass: bool) -> Self {
        self.bypass_auto_encryption = bypass;
        self
    }

    /// Sets [`bypass_query_analysis`](Self::bypass_query_analysis):
    /// commands go out as written, after a check that every value the
    /// schemas encrypt is already encrypted (explicitly, by the
    /// application); one that is not refuses the command.
    pub fn with_bypass_query_analysis(mut self, bypass: bool) -> Self {
        self.bypass_query_analysis = bypass;
        self
    }

    /// Sets [`remote_schema_ttl`](Self::remote_schema_ttl).
    pub fn with_remote_schema_ttl(mut self, ttl: Duration) -> Self {
        self.remote_schema_ttl = Some(ttl);
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets [`schema_map_only`](Self::schema_map_only).
    pub fn with_schema_map_only(mut self, only: bool) -> Self {
        self.schema_map_only = only;
        self
    }

    /// Sets [`encrypted_fields_map`](Self::encrypted_fields_map)
    /// (`{"db.coll": <encryptedFields>}`).
    pub fn with_encrypted_fields_map(mut self, map: Document) -> Self {
        self.encrypted_fields_map = map;
        self
    }
}

/// What is done with a command before it is sent: analysed (and its
/// markings encrypted), or, under `bypass_query_analysis`, verified.
#[derive(Clone, Copy)]
enum Pass {
    /// [`analysis::analyze`].
    Analyse,
    /// [`analysis::verify_bypassed`].
    VerifyBypassed,
}

/// What automatic encryption sends for a command.
enum Prepared {
    /// The command as it is: nothing to encrypt, or a bypass.
    Unchanged,
    /// The analysed command, its markings encrypted.
    Encrypted(Document),
}

/// The documents an insert sends.
pub(crate) enum InsertDocuments {
    /// Serialized and encrypted by the fast path (or, with nothing to
    /// encrypt, serialized as they are).
    Raw(Vec<RawDocumentBuf>),
    /// The command as analysis made it (or left it).
    Command(Document),
}

/// An error fetching the keys of markings: alternate names in markings
/// come from documents (a keyId JSON pointer), values of the application's
/// data, never echoed in an error.
fn marking_key_error(e: Error, refs: &[crate::key::KeyRef]) -> Error {
    match analysis::redact_document_alt_names(&e.to_string(), refs) {
        Some(reason) => analysis::Error::KeyFromDocument { reason }.into(),
        None => e,
    }
}

// The field of a command that carries Queryable Encryption's
// configuration (defined once, in `wire`); `actions` takes it from here.
pub(crate) use crate::wire::ENCRYPTION_INFORMATION;

/// Why a namespace declared plain is refused when it has a schema.
const PLAIN_HAS_SCHEMA: &str = "declared plain (plain_namespaces) but it has a schema: a namespace is either encrypted or plain, not both";

/// What automatic encryption knows of a namespace: no schema, an FLE1
/// `$jsonSchema`, or (feature `qe`) a Queryable Encryption collection's
/// `encryptedFields`, its keys resolved.
#[derive(Clone, Debug)]
pub(crate) enum NsSchema {
    /// No schema: nothing is encrypted.
    Plain,
    /// An FLE1 schema (possibly without encrypted fields).
    Fle1(Arc<EncryptionSchema>),
    /// A Queryable Encryption collection, every key id known.
    #[cfg(feature = "qe")]
    Queryable(Arc<EncryptedFields>),
}

impl NsSchema {
    /// No schema at all (what `require_schema` refuses).
    fn is_plain(&self) -> bool {
        matches!(self, NsSchema::Plain)
    }

    /// What analysis is told.
    fn lookup(&self) -> NamespaceSchema<'_> {
        match self {
            NsSchema::Plain => NamespaceSchema::Known(None),
            NsSchema::Fle1(s) => NamespaceSchema::Known(Some(&**s)),
            #[cfg(feature = "qe")]
            NsSchema::Queryable(f) => NamespaceSchema::Queryable(f),
        }
    }
}

/// A schema read from the server, and when.
#[derive(Debug)]
struct CachedRemote {
    schema: NsSchema,
    fetched: Instant,
}

/// The FLE1 encryption schema in a server's reply for `namespace`: `None`
/// without one; a view, an unreadable or invalid schema, or a Queryable
/// Encryption collection is an error.
pub(crate) fn server_schema(
    namespace: &str,
    reply: RemoteSchema,
) -> Result<Option<EncryptionSchema>, Error> {
    match reply {
        RemoteSchema::View => Err(Error::Client(ClientError::View {
            namespace: namespace.to_string(),
        })),
        RemoteSchema::None | RemoteSchema::NoCollection => Ok(None),
        RemoteSchema::Invalid(reason) => Err(Error::Client(ClientError::UnreadableRemoteSchema {
            namespace: namespace.to_string(),
            reason,
        })),
        RemoteSchema::EncryptedFields(_) => {
            Err(Error::Client(ClientError::UnreadableRemoteSchema {
                namespace: namespace.to_string(),
                reason:
                    "it is a Queryable Encryption collection (encryptedFields), not an FLE1 one"
                        .into(),
            }))
        }
        RemoteSchema::Schema(s) => EncryptionSchema::parse(&s, SchemaSource::Remote)
            .map(Some)
            .map_err(|source| {
                Error::Client(ClientError::InvalidSchema {
                    namespace: namespace.to_string(),
                    remote: true,
                    source,
                })
            }),
    }
}

/// What a server's reply says of `namespace`: its `encryptedFields`, its
/// FLE1 schema, or nothing. A view, or anything csfle cannot read, is an
/// error, never "nothing".
pub(crate) fn server_config(namespace: &str, reply: RemoteSchema) -> Result<NsSchema, Error> {
    match reply {
        RemoteSchema::EncryptedFields(fields) => server_encrypted_fields(namespace, &fields),
        other => Ok(match server_schema(namespace, other)? {
            Some(s) => NsSchema::Fle1(Arc::new(s)),
            None => NsSchema::Plain,
        }),
    }
}

/// A collection's `encryptedFields` from the server, read as the server
/// stores it (`keyId`s only).
#[cfg(feature = "qe")]
fn server_encrypted_fields(namespace: &str, fields: &Document) -> Result<NsSchema, Error> {
    EncryptedFields::from_document(fields, ParseMode::Remote)
        .map(|f| NsSchema::Queryable(Arc::new(f)))
        .map_err(|e| invalid_encrypted_fields(namespace, true, e))
}

/// Without feature `qe`, a Queryable Encryption collection is refused:
/// nothing here could encrypt for it, and sending its fields unencrypted
/// is not an option.
#[cfg(not(feature = "qe"))]
fn server_encrypted_fields(namespace: &str, _fields: &Document) -> Result<NsSchema, Error> {
    Err(Error::Client(ClientError::UnreadableRemoteSchema {
        namespace: namespace.to_string(),
        reason: "it is a Queryable Encryption collection (encryptedFields), which needs csfle's `qe` feature"
            .into(),
    }))
}

/// An `encryptedFields` refused, as the client's error.
#[cfg(feature = "qe")]
pub(crate) fn invalid_encrypted_fields(
    namespace: &str,
    remote: bool,
    source: EncryptedFieldsError,
) -> Error {
    Error::Client(ClientError::InvalidEncryptedFields {
        namespace: namespace.to_owned(),
        remote,
        source: Box::new(source),
    })
}

/// A Queryable Encryption command not finalized, as the client's error.
#[cfg(feature = "qe")]
fn finalize_error(e: crate::qe::finalize::FinalizeError) -> Error {
    Error::Client(ClientError::Finalize(Box::new(e)))
}

/// The `encryptedFieldsMap`, read strictly by the library's one reader
/// ([`EncryptedFields::parse_map`]: every key `db.coll`, every entry an
/// `encryptedFields` document the parser accepts as a map entry), none also
/// in the schema map.
#[cfg(feature = "qe")]
fn parse_encrypted_fields_map(
    map: &Document,
    schema_map: &Document,
) -> Result<HashMap<String, Arc<EncryptedFields>>, Error> {
    // Before the entries are read: a namespace in both maps is refused
    // whatever its entry holds.
    if let Some(ns) = map.keys().find(|ns| schema_map.contains_key(ns.as_str())) {
        return Err(Error::Client(ClientError::ConflictingSchemes {
            namespace: ns.clone(),
            place: "in the schema map and the encryptedFieldsMap",
        }));
    }
    let entries = EncryptedFields::parse_map(map).map_err(|e| match e {
        EncryptedFieldsMapError::InvalidNamespace { namespace } => {
            Error::Client(ClientError::InvalidEncryptedFieldsMap {
                namespace,
                reason: "expected db.collection",
            })
        }
        EncryptedFieldsMapError::NotADocument { namespace } => {
            Error::Client(ClientError::InvalidEncryptedFieldsMap {
                namespace,
                reason: "an entry must be an encryptedFields document",
            })
        }
        EncryptedFieldsMapError::Entry { namespace, source } => {
            invalid_encrypted_fields(&namespace, false, source)
        }
    })?;
    Ok(entries
        .into_iter()
        .map(|(ns, fields)| (ns, Arc::new(fields)))
        .collect())
}

/// The command's own name and collection: its target, or for `explain`
/// the explained command's.
fn own_target(command: &Document) -> Result<(&str, Option<&str>), Error> {
    let (name, coll) = analysis::command_target(command)?;
    Ok(match (name, command.get("explain")) {
        ("explain", Some(Bson::Document(inner))) => analysis::command_target(inner)?,
        _ => (name, coll),
    })
}

/// The commands that maintain a Queryable Encryption collection's state
/// collections and need tokens csfle does not build: refused with a
/// message saying how to run them.
const STRUCTURED_ENCRYPTION_MAINTENANCE: [&str; 2] = [
    "compactStructuredEncryptionData",
    "cleanupStructuredEncryptionData",
];

/// The Queryable Encryption collection of a command analysed with the
/// schemas `known`: `None` when none of them is one. Analysis refuses a
/// QE collection named anywhere but as its command's own target (for
/// `bulkWrite`, run on `admin`, the only namespace of its `nsInfo`);
/// checked again here, fail closed, before the command is finalized for
/// it.
#[cfg(feature = "qe")]
fn queryable_target(
    db: &str,
    command: &Document,
    known: &HashMap<Namespace, NsSchema>,
) -> Result<Option<(Namespace, Arc<EncryptedFields>)>, Error> {
    let mut found: Option<(&Namespace, &Arc<EncryptedFields>)> = None;
    for (ns, schema) in known {
        if let NsSchema::Queryable(fields) = schema {
            if found.is_some() {
                return Err(analysis::Error::QueryableCollection {
                    ns: ns.to_string(),
                    what: "a command touching two collections names it".to_owned(),
                }
                .into());
            }
            found = Some((ns, fields));
        }
    }
    let Some((ns, fields)) = found else {
        return Ok(None);
    };
    let target = match analysis::command_target(command)? {
        ("bulkWrite", _) => Some(analysis::bulk_write_namespace(command)?),
        _ => own_target(command)?.1.map(|c| Namespace::new(db, c)),
    };
    if target.as_ref() != Some(ns) {
        return Err(analysis::Error::QueryableCollection {
            ns: ns.to_string(),
            what: "a command on another collection names it".to_owned(),
        }
        .into());
    }
    Ok(Some((ns.clone(), Arc::clone(fields))))
}

/// The schema of a namespace opened as a typed collection.
#[derive(Debug)]
struct TypedSchema {
    type_id: std::any::TypeId,
    rust_type: &'static str,
    schema: NsSchema,
}

/// Encrypts outgoing commands by a schema map and an `encryptedFieldsMap`
/// (or the collections' own `$jsonSchema` validators and
/// `encryptedFields`) and decrypts replies.
#[derive(Debug)]
pub struct AutoEncrypter {
    encryption: ClientEncryption,
    schemas: HashMap<String, Arc<EncryptionSchema>>,
    /// The `encryptedFieldsMap`, by namespace (none also in `schemas`). An
    /// entry naming keys by `keyAltName` is replaced by its resolved form
    /// the first time a command needs it.
    #[cfg(feature = "qe")]
    encrypted_fields: Mutex<HashMap<String, Arc<EncryptedFields>>>,
    options: AutoEncryptionOptions,
    remote: Option<Arc<dyn SchemaFetcher>>,
    remote_cache: Mutex<HashMap<String, CachedRemote>>,
    /// What the server schemas' time to live is measured by.
    clock: crate::keyvault::Clock,
    /// Schemas of typed collections (`#[derive(Encrypted)]` types), by
    /// namespace: local schemas, after the two maps'.
    typed: Mutex<HashMap<String, TypedSchema>>,
}

impl AutoEncrypter {
    /// An encrypter for the schema map `{"db.coll": <$jsonSchema>}` and
    /// the `encryptedFieldsMap` of `options`; every key, schema and
    /// `encryptedFields` is validated now, strictly
    /// ([`parse_schema_map`](crate::schema::parse_schema_map)), and so are
    /// the `plain_namespaces` of `options` (each `db.coll`, in neither
    /// map). A namespace in both maps is refused
    /// ([`ClientError::ConflictingSchemes`]).
    pub fn new(
        encryption: ClientEncryption,
        schema_map: &Document,
        options: AutoEncryptionOptions,
    ) -> Result<Self, Error> {
        for plain in &options.plain_namespaces {
            if Namespace::parse(plain).is_err() {
                return Err(Error::Client(ClientError::PlainNamespace {
                    namespace: plain.clone(),
                    reason: "expected db.collection",
                }));
            }
            if schema_map.contains_key(plain) || options.encrypted_fields_map.contains_key(plain) {
                return Err(Error::Client(ClientError::PlainNamespace {
                    namespace: plain.clone(),
                    reason: PLAIN_HAS_SCHEMA,
                }));
            }
        }
        // The one reader of schema maps: a key that is not `db.coll` or a
        // schema it refuses fails the whole map, never an entry ignored.
        let schemas = crate::schema::parse_schema_map(schema_map)
            .map_err(|e| {
                Error::Client(ClientError::InvalidSchema {
                    namespace: e.namespace,
                    remote: false,
                    source: e.source,
                })
            })?
            .into_iter()
            .map(|(ns, schema)| (ns, Arc::new(schema)))
            .collect();
        #[cfg(feature = "qe")]
        let encrypted_fields =
            parse_encrypted_fields_map(&options.encrypted_fields_map, schema_map)?;
        #[cfg(not(feature = "qe"))]
        if !options.encrypted_fields_map.is_empty() {
            return Err(Error::Client(ClientError::InvalidArgument {
                argument: "encrypted_fields_map",
                reason: "Queryable Encryption needs csfle's `qe` feature",
            }));
        }
        Ok(AutoEncrypter {
            encryption,
            schemas,
            #[cfg(feature = "qe")]
            encrypted_fields: Mutex::new(encrypted_fields),
            options,
            remote: None,
            remote_cache: Mutex::new(HashMap::new()),
            clock: crate::keyvault::Clock::system(),
            typed: Mutex::new(HashMap::new()),
        })
    }

    /// Measures the time to live of cached server schemas and of cached
    /// data keys by `clock` instead of the system clock (a
    /// [`Clock::manual`](crate::keyvault::Clock::manual) in tests).
    /// Operation timeouts stay on the system clock.
    pub fn with_clock(mut self, clock: crate::keyvault::Clock) -> Self {
        self.encryption = self.encryption.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// Reads the schema of namespaces missing from both maps from the
    /// server (`listCollections`: `$jsonSchema` validators and
    /// `encryptedFields`, cached for the TTL). A map entry always wins.
    pub fn with_remote_schemas(mut self, fetcher: Arc<dyn SchemaFetcher>) -> Self {
        self.remote = Some(fetcher);
        self
    }

    /// Whether namespaces missing from the maps are looked up on the
    /// server.
    pub fn has_remote_schemas(&self) -> bool {
        self.remote.is_some()
    }

    /// The options.
    pub fn options(&self) -> &AutoEncryptionOptions {
        &self.options
    }

    /// Whether `db.coll` is a Queryable Encryption collection, its schema
    /// looked up as a command on it would look it up (the client-level
    /// bulk write checks what its batches may hold before sending any).
    #[cfg(feature = "qe")]
    pub(crate) async fn is_queryable(&self, db: &str, coll: &str) -> Result<bool, Error> {
        let deadline = self.options.timeout.map(|t| Instant::now() + t);
        Ok(matches!(
            self.schema(db, coll, deadline).await?,
            NsSchema::Queryable(_)
        ))
    }

    /// The schema for `db.coll`: the schema map's, the
    /// `encryptedFieldsMap`'s or a typed collection's, else the server's
    /// (with `require_schema`, having none is an error). Without a server
    /// to ask, a namespace missing from the maps is an error unless they
    /// are declared complete (`schema_map_only`).
    async fn schema(
        &self,
        db: &str,
        coll: &str,
        deadline: Option<Instant>,
    ) -> Result<NsSchema, Error> {
        let ns = format!("{db}.{coll}");
        let local = self.local_schema(&ns).await?;
        let plain = self.options.plain_namespaces.contains(&ns);
        let schema = match (local, &self.remote) {
            (Some(s), _) => s,
            (None, _) if self.options.schema_map_only => NsSchema::Plain,
            // A declared plain namespace is still looked up on the server:
            // a schema there contradicts the declaration.
            (None, Some(fetcher)) => {
                self.remote_schema(fetcher.as_ref(), db, coll, &ns, deadline)
                    .await?
            }
            (None, None) if plain => NsSchema::Plain,
            (None, None) if !self.options.require_schema => {
                return Err(analysis::Error::SchemaUnavailable(Namespace::new(db, coll)).into());
            }
            (None, None) => NsSchema::Plain,
        };
        if plain {
            return if schema.is_plain() {
                Ok(NsSchema::Plain)
            } else {
                Err(Error::Client(ClientError::PlainNamespace {
                    namespace: ns,
                    reason: PLAIN_HAS_SCHEMA,
                }))
            };
        }
        if schema.is_plain() && self.options.require_schema {
            return Err(Error::Client(ClientError::MissingSchema { namespace: ns }));
        }
        Ok(schema)
    }

    /// The local schema of `ns`: the schema map's, else the
    /// `encryptedFieldsMap`'s (keys resolved), else a typed collection's.
    async fn local_schema(&self, ns: &str) -> Result<Option<NsSchema>, Error> {
        if let Some(s) = self.schemas.get(ns) {
            return Ok(Some(NsSchema::Fle1(Arc::clone(s))));
        }
        #[cfg(feature = "qe")]
        if let Some(fields) = self.encrypted_fields_map_entry(ns).await? {
            return Ok(Some(NsSchema::Queryable(fields)));
        }
        let typed = self.typed.lock().unwrap_or_else(|p| p.into_inner());
        Ok(typed.get(ns).map(|t| t.schema.clone()))
    }

    #[cfg(feature = "qe")]
    fn fields_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<EncryptedFields>>> {
        self.encrypted_fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The `encryptedFieldsMap`'s entry for `ns`, its `keyAltName`s
    /// resolved to key ids through the key vault (one query, the first
    /// time; a name no key has is an error naming the field, and is asked
    /// again next time).
    #[cfg(feature = "qe")]
    pub(crate) async fn encrypted_fields_map_entry(
        &self,
        ns: &str,
    ) -> Result<Option<Arc<EncryptedFields>>, Error> {
        let entry = self.fields_map().get(ns).cloned();
        let Some(fields) = entry else {
            return Ok(None);
        };
        if fields.is_resolved() {
            return Ok(Some(fields));
        }
        let names: Vec<String> = fields
            .key_alt_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut ids: HashMap<String, [u8; 16]> = HashMap::new();
        for key in self.encryption.key_vault().find_keys(&[], &names).await? {
            for name in key.key_alt_names {
                ids.insert(name, key.id.bytes());
            }
        }
        let mut resolved = EncryptedFields::clone(&fields);
        resolved
            .resolve_keys(|field| match field.key() {
                KeyIdOrAltName::AltName(name) => ids.get(name).copied(),
                _ => None,
            })
            .map_err(|e| invalid_encrypted_fields(ns, false, e))?;
        let resolved = Arc::new(resolved);
        self.fields_map()
            .insert(ns.to_owned(), Arc::clone(&resolved));
        Ok(Some(resolved))
    }

    /// The server's schema for `ns`, from the cache while fresh (absence
    /// included), else read with the fetcher.
    async fn remote_schema(
        &self,
        fetcher: &dyn SchemaFetcher,
        db: &str,
        coll: &str,
        ns: &str,
        deadline: Option<Instant>,
    ) -> Result<NsSchema, Error> {
        let ttl = self
            .options
            .remote_schema_ttl
            .unwrap_or(Duration::from_secs(60));
        if let Some(c) = self.cache().get(ns)
            && self.clock.now().saturating_duration_since(c.fetched) < ttl
        {
            return Ok(c.schema.clone());
        }
        let max_time = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => {
                    return Err(Error::Client(ClientError::Timeout {
                        after: self.options.timeout.unwrap_or_default(),
                    }));
                }
            },
        };
        let reply = fetcher.collection_schema_within(db, coll, max_time).await?;
        // A collection that does not exist yet is not remembered: cached
        // as plain, a collection created with `encryptedFields` or a
        // validator right after would take plaintext until the entry
        // expired.
        let absent = reply == RemoteSchema::NoCollection;
        let schema = server_config(ns, reply)?;
        if absent {
            self.cache().remove(ns);
            return Ok(schema);
        }
        self.cache().insert(
            ns.to_owned(),
            CachedRemote {
                schema: schema.clone(),
                fetched: self.clock.now(),
            },
        );
        Ok(schema)
    }

    /// The schema map's entry for `ns`, if any.
    pub(crate) fn schema_map_entry(&self, ns: &str) -> Option<&EncryptionSchema> {
        self.schemas.get(ns).map(|s| &**s)
    }

    /// Whether the `encryptedFieldsMap` has an entry for `ns`.
    #[cfg(feature = "qe")]
    pub(crate) fn in_encrypted_fields_map(&self, ns: &str) -> bool {
        self.fields_map().contains_key(ns)
    }

    /// Without feature `qe` the `encryptedFieldsMap` is empty.
    #[cfg(not(feature = "qe"))]
    pub(crate) fn in_encrypted_fields_map(&self, ns: &str) -> bool {
        let _ = ns;
        false
    }

    /// The fetcher of server schemas, if this encrypter has one.
    pub(crate) fn remote_fetcher(&self) -> Option<&Arc<dyn SchemaFetcher>> {
        self.remote.as_ref()
    }

    /// Registers the schema of a typed collection of `T` for `ns` (an FLE1
    /// schema, or a Queryable Encryption `encryptedFields`). The same type
    /// again is a no-op; another type is refused.
    pub(crate) fn register_typed<T: 'static>(
        &self,
        ns: &str,
        rust_type: &'static str,
        schema: NsSchema,
    ) -> Result<(), Error> {
        let mut typed = self.typed.lock().unwrap_or_else(|p| p.into_inner());
        let type_id = std::any::TypeId::of::<T>();
        match typed.get(ns) {
            Some(t) if t.type_id == type_id => Ok(()),
            Some(t) => Err(Error::Client(ClientError::NamespaceTypeConflict {
                namespace: ns.to_owned(),
                registered: t.rust_type,
                requested: rust_type,
            })),
            None => {
                typed.insert(
                    ns.to_owned(),
                    TypedSchema {
                        type_id,
                        rust_type,
                        schema,
                    },
                );
                Ok(())
            }
        }
    }

    /// Whether `ns` is a typed collection of the type `type_id`.
    pub(crate) fn typed_registered(&self, ns: &str, type_id: std::any::TypeId) -> bool {
        let typed = self.typed.lock().unwrap_or_else(|p| p.into_inner());
        typed.get(ns).is_some_and(|t| t.type_id == type_id)
    }

    /// The `encryptedFields` of `db.coll` when it is a Queryable
    /// Encryption collection (the `encryptedFieldsMap`'s entry, a typed
    /// collection's, else the server's), for `drop` to drop its state
    /// collections too. `None` for any other namespace, or with
    /// `bypass_auto_encryption`. Unlike a command's lookup, neither
    /// `require_schema` nor `plain_namespaces` applies, and a view or an
    /// FLE1 validator csfle cannot read is no error: a drop of those drops
    /// what it names.
    #[cfg(feature = "qe")]
    pub(crate) async fn queryable_fields(
        &self,
        db: &str,
        coll: &str,
    ) -> Result<Option<Arc<EncryptedFields>>, Error> {
        if self.options.bypass_auto_encryption {
            return Ok(None);
        }
        let ns = format!("{db}.{coll}");
        let schema = match (self.local_schema(&ns).await?, &self.remote) {
            (Some(s), _) => s,
            (None, _) if self.options.schema_map_only => NsSchema::Plain,
            (None, Some(fetcher)) => match fetcher.collection_schema(db, coll).await? {
                RemoteSchema::EncryptedFields(fields) => server_encrypted_fields(&ns, &fields)?,
                _ => NsSchema::Plain,
            },
            (None, None) => NsSchema::Plain,
        };
        Ok(match schema {
            NsSchema::Queryable(fields) => Some(fields),
            _ => None,
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedRemote>> {
        self.remote_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The explicit-encryption client underneath (key management, cache).
    pub fn client_encryption(&self) -> &ClientEncryption {
        &self.encryption
    }

    /// The command to send for `command` on database `db`: unchanged when
    /// nothing needs encrypting, otherwise with every marked value encrypted
    /// (all keys fetched in one key-vault query, through the cache).
    ///
    /// Every namespace the command touches is resolved as analysis asks for
    /// it: the maps, else the server (cached), else the command is
    /// refused. A command on a Queryable Encryption collection (feature
    /// `qe`) gets its values encrypted as payloads and the
    /// `encryptionInformation` the server needs, placed as libmongocrypt
    /// places it; `compactStructuredEncryptionData` and
    /// `cleanupStructuredEncryptionData` are refused
    /// ([`ClientError::StructuredEncryptionMaintenance`]).
    pub async fn encrypt_command(&self, db: &str, command: &Document) -> Result<Document, Error> {
        Ok(match self.prepare_command(db, command, true).await? {
            Prepared::Unchanged => command.clone(),
            Prepared::Encrypted(sent) => sent,
        })
    }

    /// [`encrypt_command`](Self::encrypt_command) of a command the caller
    /// owns: an unchanged command is returned as it is, not copied.
    pub(crate) async fn encrypt_command_owned(
        &self,
        db: &str,
        command: Document,
    ) -> Result<Document, Error> {
        Ok(match self.prepare_command(db, &command, true).await? {
            Prepared::Unchanged => command,
            Prepared::Encrypted(sent) => sent,
        })
    }

    /// [`encrypt_command`](Self::encrypt_command) through analysis only,
    /// never a fast path: what the fast paths are proved equal to.
    #[doc(hidden)]
    pub async fn encrypt_command_analysed(
        &self,
        db: &str,
        command: &Document,
    ) -> Result<Document, Error> {
        Ok(match self.prepare_command(db, command, false).await? {
            Prepared::Unchanged => command.clone(),
            Prepared::Encrypted(sent) => sent,
        })
    }

    /// What [`encrypt_command`](Self::encrypt_command) sends: the command
    /// unchanged, or the encrypted one (`fast`: a fast path may make it).
    async fn prepare_command(
        &self,
        db: &str,
        command: &Document,
        fast: bool,
    ) -> Result<Prepared, Error> {
        let prepared = self.prepare_command_uncached(db, command, fast).await;
        self.forget_schemas_changed_by(db, command);
        prepared
    }

    /// Forgets the server schemas a command may change (`create`,
    /// `collMod`, `drop` of a collection; `dropDatabase`), after it was
    /// analysed and before it is sent: the next command on that namespace
    /// reads the collection's options again, so a collection made with
    /// `encryptedFields` or a validator is never taken for the plain one
    /// analysis just looked up.
    fn forget_schemas_changed_by(&self, db: &str, command: &Document) {
        let Ok((name, coll)) = own_target(command) else {
            return;
        };
        let mut cache = self.cache();
        match (name, coll) {
            ("create" | "collMod" | "drop", Some(coll)) => {
                cache.remove(&format!("{db}.{coll}"));
            }
            ("dropDatabase", _) => {
                let prefix = format!("{db}.");
                cache.retain(|ns, _| !ns.starts_with(&prefix));
            }
            _ => {}
        }
    }

    async fn prepare_command_uncached(
        &self,
        db: &str,
        command: &Document,
        fast: bool,
    ) -> Result<Prepared, Error> {
        if self.options.bypass_auto_encryption {
            return Ok(Prepared::Unchanged);
        }
        let deadline = self.options.timeout.map(|t| Instant::now() + t);
        let (name, _) = analysis::command_target(command)?;
        if analysis::is_bypassed(name) {
            return Ok(Prepared::Unchanged);
        }
        if let Some(&maintenance) = STRUCTURED_ENCRYPTION_MAINTENANCE
            .iter()
            .find(|m| **m == name)
        {
            return Err(Error::Client(
                ClientError::StructuredEncryptionMaintenance {
                    command: maintenance,
                },
            ));
        }
        // The command itself, or the one an `explain` wraps.
        let (own_name, own_coll) = own_target(command)?;
        // The command's own namespace is needed first: look it up before
        // analysing, so the common case takes one pass.
        let mut known: HashMap<Namespace, NsSchema> = HashMap::new();
        if let (true, Some(c)) = (analysis::is_supported(own_name), own_coll) {
            let ns = Namespace::new(db, c);
            let schema = self.schema(db, c, deadline).await?;
            known.insert(ns, schema);
        }
        if self.options.bypass_query_analysis {
            return self.verify_bypassed(db, command, known, deadline).await;
        }
        if fast
            && let Some(c) = own_coll
            && let Some(prepared) = self
                .find_by_equality(command, known.get(&Namespace::new(db, c)))
                .await?
        {
            return Ok(prepared);
        }
        self.analyse_known(db, command, known, deadline).await
    }

    /// A `find` by equality on its collection's `schema` (its own
    /// namespace, as looked up), encrypted without analysis when the fast
    /// path ([`plan_find`](super::fast_path::plan_find)) takes it: the
    /// same command analysis and `Markings::encrypt` make, the same keys
    /// asked for in the same order, the same errors. `None`: analysis's.
    async fn find_by_equality(
        &self,
        command: &Document,
        schema: Option<&NsSchema>,
    ) -> Result<Option<Prepared>, Error> {
        // Spelled out per kind: a Queryable Encryption collection must
        // never reach the FLE1 fast path.
        let plan = match schema {
            Some(NsSchema::Plain) => super::fast_path::plan_find(None, command),
            Some(NsSchema::Fle1(s)) => super::fast_path::plan_find(Some(&**s), command),
            #[cfg(feature = "qe")]
            Some(NsSchema::Queryable(_)) => None,
            None => None,
        };
        let Some(plan) = plan else {
            return Ok(None);
        };
        if plan.encrypts_nothing() {
            return Ok(Some(Prepared::Unchanged));
        }
        let refs = plan.refs();
        let keys = self
            .encryption
            .resolved(refs)
            .await
            .map_err(|e| marking_key_error(e, refs))?;
        Ok(Some(Prepared::Encrypted(plan.write(&keys)?)))
    }

    /// A command sent as written under `bypass_query_analysis`: verified
    /// first ([`analysis::verify_bypassed`], the schemas looked up as
    /// analysis looks them up), so that a value the schema encrypts and
    /// the application did not encrypt explicitly refuses the command
    /// instead of going to the server in plaintext. A Queryable Encryption
    /// collection's command then gets its `encryptionInformation`; any
    /// other goes out unchanged.
    async fn verify_bypassed(
        &self,
        db: &str,
        command: &Document,
        mut known: HashMap<Namespace, NsSchema>,
        deadline: Option<Instant>,
    ) -> Result<Prepared, Error> {
        self.with_schemas(db, command, &mut known, deadline, Pass::VerifyBypassed)
            .await?;
        #[cfg(feature = "qe")]
        if let Some((ns, fields)) = queryable_target(db, command, &known)? {
            // The collection's own database: for `bulkWrite`, run on
            // `admin`, the one its `nsInfo` names.
            let sent = crate::qe::finalize::add_encryption_information_bypassing_analysis(
                command.clone(),
                &ns.db,
                &[(ns.coll.as_str(), Some(&*fields))],
            )
            .map_err(finalize_error)?;
            return Ok(Prepared::Encrypted(sent));
        }
        Ok(Prepared::Unchanged)
    }

    /// Runs `pass` over `command` with the schemas already `known`,
    /// looking up each other namespace it asks for (and adding it to
    /// `known`) until it answers otherwise.
    async fn with_schemas(
        &self,
        db: &str,
        command: &Document,
        known: &mut HashMap<Namespace, NsSchema>,
        deadline: Option<Instant>,
        pass: Pass,
    ) -> Result<Analysis, Error> {
        loop {
            let lookup = |ns: &Namespace| match known.get(ns) {
                Some(s) => s.lookup(),
                None => NamespaceSchema::Unknown,
            };
            let result = match pass {
                Pass::Analyse => analysis::analyze(command, db, &lookup),
                Pass::VerifyBypassed => {
                    analysis::verify_bypassed(command, db, &lookup).map(|()| Analysis::Unchanged)
                }
            };
            match result {
                Err(analysis::Error::SchemaUnavailable(ns)) if !known.contains_key(&ns) => {
                    let schema = self.schema(&ns.db, &ns.coll, deadline).await?;
                    known.insert(ns, schema);
                }
                other => return Ok(other?),
            }
        }
    }

    /// Analyses `command` with the schemas already `known` (looking up any
    /// other namespace analysis asks for) and encrypts its markings (or,
    /// on a Queryable Encryption collection, finalizes it).
    async fn analyse_known(
        &self,
        db: &str,
        command: &Document,
        mut known: HashMap<Namespace, NsSchema>,
        deadline: Option<Instant>,
    ) -> Result<Prepared, Error> {
        let analysis = self
            .with_schemas(db, command, &mut known, deadline, Pass::Analyse)
            .await?;
        // Finalized for the collection's own database: for `bulkWrite`,
        // run on `admin`, the one its `nsInfo` names.
        #[cfg(feature = "qe")]
        if let Some((ns, fields)) = queryable_target(db, command, &known)? {
            return self
                .finalize_queryable(&ns.db, &ns.coll, &fields, command, analysis)
                .await;
        }
        match analysis {
            Analysis::Unchanged => Ok(Prepared::Unchanged),
            Analysis::Marked(marked) => {
                // Each marking decoded once, for its key and its value.
                let markings = analysis::Markings::collect(&marked)?;
                let refs = markings.keys();
                let keys = self
                    .encryption
                    .resolved(&refs)
                    .await
                    .map_err(|e| marking_key_error(e, &refs))?;
                Ok(Prepared::Encrypted(markings.encrypt(&marked, &keys)?))
            }
        }
    }

    /// A command on the Queryable Encryption collection `db.coll`, as
    /// analysed: its placeholders' keys fetched (one key-vault query,
    /// through the cache), every placeholder turned into its payload with
    /// the system generator, and the `encryptionInformation` added where
    /// and when libmongocrypt adds it (also when nothing was encrypted:
    /// `update`, `delete` and `findAndModify` always carry it).
    #[cfg(feature = "qe")]
    async fn finalize_queryable(
        &self,
        db: &str,
        coll: &str,
        fields: &EncryptedFields,
        command: &Document,
        analysis: Analysis,
    ) -> Result<Prepared, Error> {
        use crate::qe::aead::QeDataKey;
        use crate::qe::finalize;
        let marked = match analysis {
            Analysis::Unchanged => command.clone(),
            Analysis::Marked(marked) => marked,
        };
        let ids = finalize::placeholder_key_ids(&marked).map_err(finalize_error)?;
        let encrypted = if ids.is_empty() {
            marked
        } else {
            let refs: Vec<crate::key::KeyRef> = ids
                .iter()
                .map(|id| crate::key::KeyRef::Id(crate::key::KeyId::from_bytes(*id)))
                .collect();
            let data_keys = self.encryption.data_keys(&refs).await?;
            let mut keys: Vec<([u8; 16], QeDataKey)> = Vec::with_capacity(ids.len());
            for (id, key) in ids.iter().zip(&data_keys) {
                keys.push((*id, QeDataKey::from_data_key(key)?));
            }
            let mut rng = crate::qe::QeRandom::system();
            finalize::encrypt_placeholders(
                &marked,
                &|id| keys.iter().find(|(k, _)| k == id).map(|(_, key)| key),
                &mut rng,
            )
            .map_err(finalize_error)?
        };
        let sent = finalize::add_encryption_information(encrypted, db, &[(coll, Some(fields))])
            .map_err(finalize_error)?;
        Ok(Prepared::Encrypted(sent))
    }

    /// The documents of `{insert: coll, documents, …fields}` on `db` as
    /// automatic encryption sends them: what
    /// [`encrypt_command`](Self::encrypt_command) sends, byte for byte
    /// (random ciphertexts aside), and the same refusals.
    ///
    /// Each document comes serialized (`bson::to_raw_document_buf` of the
    /// application's value, which the insert already did to size its
    /// batches); analysis, when it runs, reads it parsed into a
    /// `Document`. The namespace's schema is looked up as
    /// `encrypt_command` looks it up; then, when the fast path takes the
    /// documents ([`plan_insert`](super::fast_path::plan_insert): every
    /// encrypted field top level, keyed by id, its value a plain scalar,
    /// …), their keys are fetched at once and the serialized documents are
    /// encrypted in one pass, without building, analysing, copying and
    /// re-serializing the command. Otherwise the command is built and
    /// analysed with the schema already found, exactly as
    /// `encrypt_command` does. A Queryable Encryption collection never
    /// takes the fast path: its inserts are analysed and finalized (the
    /// command then carries its `encryptionInformation`).
    pub(crate) async fn encrypt_insert(
        &self,
        db: &str,
        coll: &str,
        documents: Vec<RawDocumentBuf>,
        fields: &Document,
    ) -> Result<InsertDocuments, Error> {
        // The command analysis reads: each document parsed (the fast path
        // takes only documents whose parse serializes back to the same
        // bytes).
        let command = |documents: &[RawDocumentBuf]| -> Result<Document, Error> {
            let documents = documents
                .iter()
                .map(|raw| -> Result<Bson, Error> {
                    Ok(Bson::Document(Document::try_from(raw.as_ref())?))
                })
                .collect::<Result<Vec<Bson>, Error>>()?;
            let mut command = doc! {"insert": coll, "documents": documents};
            command.extend(fields.clone());
            Ok(command)
        };
        if self.options.bypass_auto_encryption || self.options.bypass_query_analysis {
            let sent = self.encrypt_command_owned(db, command(&documents)?).await?;
            return Ok(InsertDocuments::Command(sent));
        }
        // As `prepare_command` for an insert: its own namespace first.
        let deadline = self.options.timeout.map(|t| Instant::now() + t);
        let schema = self.schema(db, coll, deadline).await?;
        // Spelled out per kind: a Queryable Encryption collection must
        // never reach the FLE1 fast path (which would see no FLE1 field to
        // encrypt and send the documents as they are).
        let plan = match &schema {
            NsSchema::Plain => super::fast_path::plan_insert(None, &documents, fields),
            NsSchema::Fle1(s) => super::fast_path::plan_insert(Some(&**s), &documents, fields),
            #[cfg(feature = "qe")]
            NsSchema::Queryable(_) => None,
        };
        let fast = match plan {
            None => None,
            Some(plan) if plan.encrypts_nothing() => Some(None),
            Some(plan) => {
                let refs = plan.refs();
                let keys = self
                    .encryption
                    .data_keys(refs)
                    .await
                    .map_err(|e| marking_key_error(e, refs))?;
                Some(Some(plan.write(&keys)?))
            }
        };
        match fast {
            // Nothing to encrypt: analysis would send the command as it
            // is, and the driver would serialize these very documents.
            Some(None) => Ok(InsertDocuments::Raw(documents)),
            Some(Some(encrypted)) => Ok(InsertDocuments::Raw(encrypted)),
            None => {
                let mut known = HashMap::new();
                known.insert(Namespace::new(db, coll), schema);
                let command = command(&documents)?;
                Ok(InsertDocuments::Command(
                    match self.analyse_known(db, &command, known, deadline).await? {
                        Prepared::Unchanged => command,
                        Prepared::Encrypted(sent) => sent,
                    },
                ))
            }
        }
    }

    /// The documents of an `insert` into `db.coll`, as automatic
    /// encryption sends them, serialized: exactly what
    /// [`encrypt_command`](Self::encrypt_command) puts in
    /// `{insert: coll, documents, ordered: true}` (random ciphertexts
    /// aside), with the same refusals, written in one pass over the
    /// serialized documents when the namespace's schema allows (see
    /// `EncryptedCollection::insert_many`, which sends documents this
    /// way). No `_id` is added, and a document that does not serialize is
    /// refused first, as an insert refuses it.
    ///
    /// Refused for a Queryable Encryption collection whose insert needs an
    /// `encryptionInformation` (any indexed field): the documents alone
    /// cannot be inserted; send the command
    /// [`encrypt_command`](Self::encrypt_command) returns.
    ///
    /// ```no_run
    /// # async fn run(auto: csfle::AutoEncrypter) -> Result<(), csfle::Error> {
    /// let sent = auto
    ///     .encrypt_insert_documents("app", "people", vec![bson::doc! {"_id": 1, "ssn": "457-55-5462"}])
    ///     .await?;
    /// assert_eq!(sent.len(), 1);
    /// # Ok(()) }
    /// ```
    pub async fn encrypt_insert_documents(
        &self,
        db: &str,
        coll: &str,
        documents: Vec<Document>,
    ) -> Result<Vec<RawDocumentBuf>, Error> {
        let documents = documents
            .iter()
            .map(|d| -> Result<RawDocumentBuf, Error> { Ok(bson::to_raw_document_buf(d)?) })
            .collect::<Result<Vec<_>, Error>>()?;
        match self
            .encrypt_insert(db, coll, documents, &doc! {"ordered": true})
            .await?
        {
            InsertDocuments::Raw(sent) => Ok(sent),
            InsertDocuments::Command(sent) => {
                if sent.contains_key(ENCRYPTION_INFORMATION) {
                    return Err(Error::Client(ClientError::UnsupportedOption {
                        command: "insert",
                        field: ENCRYPTION_INFORMATION.to_owned(),
                        reason: "a Queryable Encryption insert needs its encryptionInformation: \
                                 send the command encrypt_command returns"
                            .into(),
                    }));
                }
                super::command::Fields::new("insert", sent)
                    .docs("documents")?
                    .unwrap_or_default()
                    .iter()
                    .map(|d| -> Result<RawDocumentBuf, Error> { Ok(bson::to_raw_document_buf(d)?) })
                    .collect()
            }
        }
    }

    /// A cursor's batch with every encrypted value decrypted (one key-vault
    /// query for the batch): what
    /// [`ClientEncryption::decrypt_raw_documents`] returns, byte for byte,
    /// with the same refusals, in fewer passes over the batch.
    pub async fn decrypt_batch(
        &self,
        docs: &[&bson::RawDocument],
    ) -> Result<Vec<bson::RawDocumentBuf>, Error> {
        let decrypted = self.encryption.decrypt_raw_batch(docs).await?;
        docs.iter()
            .zip(decrypted)
            .map(|(d, plain)| -> Result<RawDocumentBuf, Error> {
                match plain {
                    // Nothing encrypted in it: the bytes as they came.
                    None => Ok(bson::RawDocument::to_owned(d)),
                    Some(mut plain) => Ok(RawDocumentBuf::from_bytes(std::mem::take(&mut *plain))?),
                }
            })
            .collect()
    }

    /// A reply with every encrypted value decrypted.
    pub async fn decrypt_reply(&self, reply: &Document) -> Result<Document, Error> {
        self.encryption.decrypt_document(reply).await
    }
}
