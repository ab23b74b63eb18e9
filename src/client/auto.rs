//! Automatic encryption of commands and decryption of replies, from a schema
//! map, with in-process query analysis.

use super::encryption::ClientEncryption;
use super::remote_schema::{RemoteSchema, SchemaFetcher};
use crate::analysis::{self, Analysis, Namespace, NamespaceSchema};
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
    /// Skip query analysis: commands go out as written (values the
    /// application encrypted explicitly stay encrypted), replies are still
    /// decrypted (the drivers' `bypassQueryAnalysis`). Unlike
    /// `bypass_auto_encryption`, schemas are still read and validated, so a
    /// broken schema map or server schema is still an error.
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
    pub schema_map_only: bool,
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

    /// Sets [`bypass_query_analysis`](Self::bypass_query_analysis).
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

/// Why a namespace declared plain is refused when it has a schema.
const PLAIN_HAS_SCHEMA: &str = "declared plain (plain_namespaces) but it has a schema: a namespace is either encrypted or plain, not both";

/// A schema read from the server, and when.
#[derive(Debug)]
struct CachedRemote {
    schema: Option<Arc<EncryptionSchema>>,
    fetched: Instant,
}

/// The encryption schema in a server's reply for `namespace`: `None`
/// without one; a view or an unreadable or invalid schema is an error.
pub(crate) fn server_schema(
    namespace: &str,
    reply: RemoteSchema,
) -> Result<Option<EncryptionSchema>, Error> {
    match reply {
        RemoteSchema::View => Err(Error::Client(ClientError::View {
            namespace: namespace.to_string(),
        })),
        RemoteSchema::None => Ok(None),
        RemoteSchema::Invalid(reason) => Err(Error::Client(ClientError::UnreadableRemoteSchema {
            namespace: namespace.to_string(),
            reason,
        })),
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

/// The schema of a namespace opened as a typed collection.
#[derive(Debug)]
struct TypedSchema {
    type_id: std::any::TypeId,
    rust_type: &'static str,
    schema: Arc<EncryptionSchema>,
}

/// Encrypts outgoing commands by a schema map (or the collections' own
/// `$jsonSchema` validators) and decrypts replies.
#[derive(Debug)]
pub struct AutoEncrypter {
    encryption: ClientEncryption,
    schemas: HashMap<String, Arc<EncryptionSchema>>,
    options: AutoEncryptionOptions,
    remote: Option<Arc<dyn SchemaFetcher>>,
    remote_cache: Mutex<HashMap<String, CachedRemote>>,
    /// What the server schemas' time to live is measured by.
    clock: crate::keyvault::Clock,
    /// Schemas of typed collections (`#[derive(Encrypted)]` types), by
    /// namespace: local schemas, after the schema map's.
    typed: Mutex<HashMap<String, TypedSchema>>,
}

impl AutoEncrypter {
    /// An encrypter for the schema map `{"db.coll": <$jsonSchema>}`; every
    /// key and schema is validated now, strictly
    /// ([`parse_schema_map`](crate::schema::parse_schema_map)), and so are
    /// the `plain_namespaces` of `options` (each `db.coll`, none in the
    /// schema map).
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
            if schema_map.contains_key(plain) {
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
        Ok(AutoEncrypter {
            encryption,
            schemas,
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

    /// Reads the schema of namespaces missing from the schema map from the
    /// server's `$jsonSchema` validators (cached for the TTL). A schema map
    /// entry always wins.
    pub fn with_remote_schemas(mut self, fetcher: Arc<dyn SchemaFetcher>) -> Self {
        self.remote = Some(fetcher);
        self
    }

    /// Whether namespaces missing from the schema map are looked up on the
    /// server.
    pub fn has_remote_schemas(&self) -> bool {
        self.remote.is_some()
    }

    /// The options.
    pub fn options(&self) -> &AutoEncryptionOptions {
        &self.options
    }

    /// The schema for `db.coll`: the schema map's, else the server's (with
    /// `require_schema`, having none is an error). Without a server to ask,
    /// a namespace missing from the map is an error unless the map is
    /// declared complete (`schema_map_only`).
    async fn schema(
        &self,
        db: &str,
        coll: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<Arc<EncryptionSchema>>, Error> {
        let ns = format!("{db}.{coll}");
        let local = self.schemas.get(&ns).cloned().or_else(|| {
            let typed = self.typed.lock().unwrap_or_else(|p| p.into_inner());
            typed.get(&ns).map(|t| Arc::clone(&t.schema))
        });
        let plain = self.options.plain_namespaces.contains(&ns);
        let schema = match (local, &self.remote) {
            (Some(s), _) => Some(s),
            (None, _) if self.options.schema_map_only => None,
            // A declared plain namespace is still looked up on the server:
            // a schema there contradicts the declaration.
            (None, Some(fetcher)) => {
                self.remote_schema(fetcher.as_ref(), db, coll, &ns, deadline)
                    .await?
            }
            (None, None) if plain => None,
            (None, None) if !self.options.require_schema => {
                return Err(analysis::Error::SchemaUnavailable(Namespace::new(db, coll)).into());
            }
            (None, None) => None,
        };
        if plain {
            return match schema {
                Some(_) => Err(Error::Client(ClientError::PlainNamespace {
                    namespace: ns,
                    reason: PLAIN_HAS_SCHEMA,
                })),
                None => Ok(None),
            };
        }
        if schema.is_none() && self.options.require_schema {
            return Err(Error::Client(ClientError::MissingSchema {
                namespace: ns.to_string(),
            }));
        }
        Ok(schema)
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
    ) -> Result<Option<Arc<EncryptionSchema>>, Error> {
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
        let schema = server_schema(ns, reply)?.map(Arc::new);
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

    /// The fetcher of server schemas, if this encrypter has one.
    pub(crate) fn remote_fetcher(&self) -> Option<&Arc<dyn SchemaFetcher>> {
        self.remote.as_ref()
    }

    /// Registers the schema of a typed collection of `T` for `ns`. The same
    /// type again is a no-op; another type is refused.
    pub(crate) fn register_typed<T: 'static>(
        &self,
        ns: &str,
        rust_type: &'static str,
        schema: EncryptionSchema,
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
                        schema: Arc::new(schema),
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
    /// it: the schema map, else the server (cached), else the command is
    /// refused.
    pub async fn encrypt_command(&self, db: &str, command: &Document) -> Result<Document, Error> {
        Ok(match self.prepare_command(db, command).await? {
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
        Ok(match self.prepare_command(db, &command).await? {
            Prepared::Unchanged => command,
            Prepared::Encrypted(sent) => sent,
        })
    }

    /// What [`encrypt_command`](Self::encrypt_command) sends: the command
    /// unchanged, or the encrypted one.
    async fn prepare_command(&self, db: &str, command: &Document) -> Result<Prepared, Error> {
        if self.options.bypass_auto_encryption {
            return Ok(Prepared::Unchanged);
        }
        let deadline = self.options.timeout.map(|t| Instant::now() + t);
        let (name, coll) = analysis::command_target(command)?;
        if analysis::is_bypassed(name) {
            return Ok(Prepared::Unchanged);
        }
        // The command itself, or the one an `explain` wraps.
        let (own_name, own_coll) = match (name, command.get("explain")) {
            ("explain", Some(Bson::Document(inner))) => analysis::command_target(inner)?,
            _ => (name, coll),
        };
        if self.options.bypass_query_analysis {
            // Commands go out as written, but the schemas still have to be
            // valid: read the command's own.
            if let Some(c) = own_coll {
                self.schema(db, c, deadline).await?;
            }
            return Ok(Prepared::Unchanged);
        }
        // The command's own namespace is needed first: look it up before
        // analysing, so the common case takes one pass.
        let mut known: HashMap<Namespace, Option<Arc<EncryptionSchema>>> = HashMap::new();
        if let (true, Some(c)) = (analysis::is_supported(own_name), own_coll) {
            let ns = Namespace::new(db, c);
            let schema = self.schema(db, c, deadline).await?;
            known.insert(ns, schema);
        }
        self.analyse_known(db, command, known, deadline).await
    }

    /// Analyses `command` with the schemas already `known` (looking up any
    /// other namespace analysis asks for) and encrypts its markings.
    async fn analyse_known(
        &self,
        db: &str,
        command: &Document,
        mut known: HashMap<Namespace, Option<Arc<EncryptionSchema>>>,
        deadline: Option<Instant>,
    ) -> Result<Prepared, Error> {
        let analysis = loop {
            let lookup = |ns: &Namespace| match known.get(ns) {
                Some(s) => NamespaceSchema::Known(s.as_deref()),
                None => NamespaceSchema::Unknown,
            };
            match analysis::analyze(command, db, &lookup) {
                Err(analysis::Error::SchemaUnavailable(ns)) if !known.contains_key(&ns) => {
                    let schema = self.schema(&ns.db, &ns.coll, deadline).await?;
                    known.insert(ns, schema);
                }
                other => break other?,
            }
        };
        match analysis {
            Analysis::Unchanged => Ok(Prepared::Unchanged),
            Analysis::Marked(marked) => {
                let refs = analysis::marking_keys(&marked)?;
                let keys = self
                    .encryption
                    .resolved(&refs)
                    .await
                    .map_err(|e| marking_key_error(e, &refs))?;
                Ok(Prepared::Encrypted(analysis::encrypt_markings(
                    &marked, &keys,
                )?))
            }
        }
    }

    /// The documents of `{insert: coll, documents, …fields}` on `db` as
    /// automatic encryption sends them: what
    /// [`encrypt_command`](Self::encrypt_command) sends, byte for byte
    /// (random ciphertexts aside), and the same refusals.
    ///
    /// Each document comes as the application's and as serialized
    /// (`bson::to_raw_document_buf`, which the insert already did to size
    /// its batches). The namespace's schema is looked up as
    /// `encrypt_command` looks it up; then, when the fast path takes the
    /// documents ([`plan_insert`](super::fast_path::plan_insert): every
    /// encrypted field top level, keyed by id, its value a plain scalar,
    /// …), their keys are fetched at once and the serialized documents are
    /// encrypted in one pass, without building, analysing, copying and
    /// re-serializing the command. Otherwise the command is built and
    /// analysed with the schema already found, exactly as
    /// `encrypt_command` does.
    pub(crate) async fn encrypt_insert(
        &self,
        db: &str,
        coll: &str,
        documents: Vec<(Document, RawDocumentBuf)>,
        fields: &Document,
    ) -> Result<InsertDocuments, Error> {
        let command = |documents: Vec<(Document, RawDocumentBuf)>| {
            let documents: Vec<Bson> = documents
                .into_iter()
                .map(|(d, _)| Bson::Document(d))
                .collect();
            let mut command = doc! {"insert": coll, "documents": documents};
            command.extend(fields.clone());
            command
        };
        if self.options.bypass_auto_encryption || self.options.bypass_query_analysis {
            let sent = self.encrypt_command_owned(db, command(documents)).await?;
            return Ok(InsertDocuments::Command(sent));
        }
        // As `prepare_command` for an insert: its own namespace first.
        let deadline = self.options.timeout.map(|t| Instant::now() + t);
        let schema = self.schema(db, coll, deadline).await?;
        let fast = match super::fast_path::plan_insert(schema.as_deref(), &documents, fields) {
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
            Some(None) => Ok(InsertDocuments::Raw(
                documents.into_iter().map(|(_, raw)| raw).collect(),
            )),
            Some(Some(encrypted)) => Ok(InsertDocuments::Raw(encrypted)),
            None => {
                let mut known = HashMap::new();
                known.insert(Namespace::new(db, coll), schema);
                let command = command(documents);
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
            .into_iter()
            .map(|d| -> Result<(Document, RawDocumentBuf), Error> {
                let raw = bson::to_raw_document_buf(&d)?;
                Ok((d, raw))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        match self
            .encrypt_insert(db, coll, documents, &doc! {"ordered": true})
            .await?
        {
            InsertDocuments::Raw(sent) => Ok(sent),
            InsertDocuments::Command(sent) => super::command::Fields::new("insert", sent)
                .docs("documents")?
                .unwrap_or_default()
                .iter()
                .map(|d| -> Result<RawDocumentBuf, Error> { Ok(bson::to_raw_document_buf(d)?) })
                .collect(),
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
