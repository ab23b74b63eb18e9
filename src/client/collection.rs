//! `EncryptedClient` → `EncryptedDatabase` → `EncryptedCollection<T>`: the
//! `mongodb` crate's shape, with automatic encryption of every command and
//! decryption of every reply.

use super::auto::{AutoEncrypter, NsSchema};
use super::encryption::ClientEncryption;
use super::remote_schema::{MongoSchemaFetcher, SchemaFetcher};
use crate::schema::typed::CollectionDocument;
use crate::schema::{EncryptionSchema, SchemaSource};
use crate::{ClientError, Error};
use bson::{Bson, Document};
use std::marker::PhantomData;
use std::sync::Arc;

/// A `mongodb::Client` whose commands are encrypted by an [`AutoEncrypter`].
#[derive(Debug)]
pub struct EncryptedClient {
    client: mongodb::Client,
    auto: Arc<AutoEncrypter>,
}

impl Clone for EncryptedClient {
    fn clone(&self) -> Self {
        EncryptedClient {
            client: self.client.clone(),
            auto: Arc::clone(&self.auto),
        }
    }
}

impl EncryptedClient {
    /// Wraps `client`. Unless `auto` already reads server schemas or its
    /// schema map is declared complete (`schema_map_only`), namespaces
    /// missing from the map are looked up on this client's server
    /// (`listCollections`, cached), as the drivers do.
    pub fn new(client: mongodb::Client, auto: AutoEncrypter) -> Self {
        let auto = if auto.has_remote_schemas() || auto.options().schema_map_only {
            auto
        } else {
            auto.with_remote_schemas(Arc::new(MongoSchemaFetcher::new(client.clone())))
        };
        EncryptedClient {
            client,
            auto: Arc::new(auto),
        }
    }

    /// A database.
    pub fn database(&self, name: &str) -> EncryptedDatabase {
        EncryptedDatabase {
            db: self.client.database(name),
            auto: Arc::clone(&self.auto),
        }
    }

    /// Starts a session, for `.session(&mut s)` on any operation and for
    /// transactions (`s.start_transaction()`, `commit_transaction()`, or
    /// the driver's `start_transaction().and_run(…)` with its retries).
    /// Key-vault reads and schema lookups never join it.
    pub async fn start_session(&self) -> Result<mongodb::ClientSession, Error> {
        Ok(self.client.start_session().await?)
    }

    /// Runs `body` in a transaction of `session` and commits it, as the
    /// drivers' convenient transaction API does: the whole transaction is
    /// run again when it fails with a `TransientTransactionError`, the
    /// commit again when its result is unknown
    /// (`UnknownTransactionCommitResult`), for up to 120 seconds. Any
    /// other error aborts the transaction and is returned.
    ///
    /// ```no_run
    /// # async fn run(client: csfle::EncryptedClient) -> Result<(), csfle::Error> {
    /// let accounts = client.database("bank").collection::<bson::Document>("accounts");
    /// let mut session = client.start_session().await?;
    /// client
    ///     .with_transaction(&mut session, async |s| {
    ///         accounts.update_one(bson::doc! {"_id": 1}, bson::doc! {"$inc": {"n": -1}}).session(s).await?;
    ///         accounts.update_one(bson::doc! {"_id": 2}, bson::doc! {"$inc": {"n": 1}}).session(s).await?;
    ///         Ok(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn with_transaction<R>(
        &self,
        session: &mut mongodb::ClientSession,
        mut body: impl AsyncFnMut(&mut mongodb::ClientSession) -> Result<R, Error>,
    ) -> Result<R, Error> {
        use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
        const LIMIT: std::time::Duration = std::time::Duration::from_secs(120);
        let started = std::time::Instant::now();
        'transaction: loop {
            session.start_transaction().await?;
            let value = match body(session).await {
                Ok(v) => v,
                Err(e) => {
                    // Aborting may fail too; the body's error is the one
                    // that says what happened.
                    let _ = session.abort_transaction().await;
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR) && started.elapsed() < LIMIT {
                        continue 'transaction;
                    }
                    return Err(e);
                }
            };
            loop {
                match session.commit_transaction().await {
                    Ok(()) => return Ok(value),
                    Err(e) if started.elapsed() < LIMIT => {
                        if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                            && crate::driver::driver_code(&e) != Some(50)
                        {
                            continue;
                        }
                        if e.contains_label(TRANSIENT_TRANSACTION_ERROR) {
                            continue 'transaction;
                        }
                        return Err(e.into());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    /// The plain driver client (no encryption, no decryption).
    pub fn inner(&self) -> &mongodb::Client {
        &self.client
    }

    /// The automatic encrypter (its options, the schemas it reads).
    pub fn auto_encrypter(&self) -> &AutoEncrypter {
        &self.auto
    }

    /// The [`ClientEncryption`] this client
    /// encrypts and decrypts with: the same key vault, KMS providers, key
    /// cache and audit sink. For data keys (`create_data_key`, `get_keys`,
    /// `rewrap_many_data_key`, …) and explicit encryption next to automatic
    /// encryption, without building a second client.
    ///
    /// ```no_run
    /// # async fn run(client: csfle::EncryptedClient) -> Result<(), csfle::Error> {
    /// use csfle::kms::ProviderName;
    ///
    /// let id = client
    ///     .client_encryption()
    ///     .create_data_key(&ProviderName::parse("local")?, csfle::DataKeyOptions::default())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn client_encryption(&self) -> &ClientEncryption {
        self.auto.client_encryption()
    }
}

/// A database of an [`EncryptedClient`].
#[derive(Debug)]
pub struct EncryptedDatabase {
    db: mongodb::Database,
    auto: Arc<AutoEncrypter>,
}

impl Clone for EncryptedDatabase {
    fn clone(&self) -> Self {
        EncryptedDatabase {
            db: self.db.clone(),
            auto: Arc::clone(&self.auto),
        }
    }
}

/// A collection's document type that derives `Encrypted` and has
/// encrypted fields: its operations need the namespace opened as its typed
/// collection.
///
/// Why a check at each operation and not a refusal when the collection is
/// made: `collection` returns no `Result` (as the driver's), the
/// registration `typed_collection` makes is asynchronous (it resolves key
/// names through the key vault), and a namespace may be opened typed after
/// an untyped handle to it was made. The `CollectionDocument` bound is what
/// lets the check see that `T` derives `Encrypted` (no registry, no
/// `unsafe`); the check itself is a map lookup.
#[derive(Clone, Copy, Debug)]
struct NeedsTyped {
    type_id: std::any::TypeId,
    rust_type: &'static str,
}

fn needs_typed<T: CollectionDocument>() -> Option<NeedsTyped> {
    let declared = T::declared_schema()?;
    (declared.template)()
        .has_encrypted_fields()
        .then_some(NeedsTyped {
            type_id: declared.type_id,
            rust_type: declared.rust_type,
        })
}

impl EncryptedDatabase {
    /// A collection of `T`, with the database's read and write concerns
    /// and read preference.
    ///
    /// `T` is a [`CollectionDocument`]: `bson::Document`,
    /// `bson::RawDocumentBuf`, a type deriving [`Encrypted`](crate::Encrypted),
    /// or a plain serde type declared with
    /// `impl csfle::CollectionDocument for MyType {}`. The namespace's
    /// schema (schema map, server `$jsonSchema`) says what is encrypted. A
    /// type deriving `Encrypted` with encrypted fields must be opened with
    /// [`typed_collection`](Self::typed_collection), which registers its
    /// schema: until then every operation of this collection fails with
    /// [`ClientError::UntypedCollection`], so such a type is never written or
    /// queried without its schema.
    ///
    /// A serde type that declares nothing does not compile:
    ///
    /// ```compile_fail
    /// # fn open(db: csfle::EncryptedDatabase) {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Visit {
    ///     room: u32,
    /// }
    /// let visits = db.collection::<Visit>("visits");
    /// # }
    /// ```
    ///
    /// and compiles once declared plain:
    ///
    /// ```no_run
    /// # fn open(db: csfle::EncryptedDatabase) {
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Visit {
    ///     room: u32,
    /// }
    /// impl csfle::CollectionDocument for Visit {}
    /// let visits = db.collection::<Visit>("visits");
    /// # }
    /// ```
    pub fn collection<T: CollectionDocument>(&self, name: &str) -> EncryptedCollection<T> {
        EncryptedCollection {
            db: self.clone(),
            inner: self.db.collection(name),
            needs_typed: needs_typed::<T>(),
            _t: PhantomData,
        }
    }

    /// The collection of a type deriving [`Encrypted`](crate::Encrypted):
    /// its schema, generated from the type, is the namespace's schema for
    /// this client from now on (after an entry of the schema map, which
    /// must agree with it).
    ///
    /// Key alternate names the type names are resolved to key ids through
    /// the key vault (one query). Refused, with nothing registered: a name
    /// no key has, a type whose schema cannot be made, a schema map entry
    /// or a server-side `$jsonSchema` for the namespace that disagrees with
    /// the type (a field encrypted in one and not the other, or with
    /// another algorithm, key or BSON type; the error names the fields),
    /// a view, and a namespace already opened with another type.
    ///
    /// A type with Queryable Encryption fields (`#[encrypted(queryable =
    /// …)]`) has an `encryptedFields` instead of a schema: refused when the
    /// schema map has an entry for the namespace, the `encryptedFieldsMap`
    /// or the server's collection has an `encryptedFields` that disagrees
    /// with the type's (compared parsed, defaults filled; the error names
    /// the differing fields, the first first), or the server's collection
    /// has a `$jsonSchema` with encrypted fields. Once they agree, the
    /// type's `encryptedFields` is the namespace's for this client (after
    /// the `encryptedFieldsMap`'s, which agrees with it), and its commands
    /// are encrypted as Queryable Encryption's. A type with FLE1 fields is
    /// refused on a namespace with an `encryptedFields` (in the map or on
    /// the server).
    ///
    /// ```no_run
    /// # async fn run(client: csfle::EncryptedClient) -> Result<(), csfle::Error> {
    /// use csfle::Encrypted;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Encrypted)]
    /// #[encrypted(key = "patients")]
    /// struct Patient {
    ///     name: String,
    ///     #[encrypted(deterministic)]
    ///     ssn: String,
    /// }
    ///
    /// let patients = client.database("clinic").typed_collection::<Patient>("patients").await?;
    /// let found = patients.find_one(bson::doc! {"ssn": "123-45-6789"}).await?;
    /// # Ok(()) }
    /// ```
    pub async fn typed_collection<T>(&self, name: &str) -> Result<EncryptedCollection<T>, Error>
    where
        T: crate::Encrypted + CollectionDocument + 'static,
    {
        let namespace = format!("{}.{name}", self.db.name());
        let rust_type = T::schema_template().rust_type;
        let invalid = |source| {
            Error::Client(ClientError::InvalidSchema {
                namespace: namespace.clone(),
                remote: false,
                source,
            })
        };
        // A type with Queryable Encryption fields has an encryptedFields,
        // not a $jsonSchema: checked against the namespace's own.
        if let Some(fields) = T::schema_template().encrypted_fields().map_err(invalid)? {
            super::typed_queryable::open::<T>(
                &self.db, &self.auto, name, &namespace, rust_type, &fields,
            )
            .await?;
            return Ok(self.collection(name));
        }
        let document = match self.auto.client_encryption().json_schema::<T>().await {
            Ok(d) => d,
            Err(Error::Schema(source)) => return Err(invalid(source)),
            Err(e) => return Err(e),
        };
        let schema = EncryptionSchema::parse(&document, SchemaSource::Local).map_err(invalid)?;
        let mismatch = |other, differences| {
            Error::Client(ClientError::TypedSchemaMismatch {
                namespace: namespace.clone(),
                rust_type,
                other,
                differences,
            })
        };
        if let Some(entry) = self.auto.schema_map_entry(&namespace) {
            let differences = schema.encryption_differences(entry, "type", "schema map");
            if !differences.is_empty() {
                return Err(mismatch("schema map", differences));
            }
        }
        if self.auto.in_encrypted_fields_map(&namespace) {
            return Err(mismatch(
                "encryptedFieldsMap",
                vec![
                    "the encryptedFieldsMap has a Queryable Encryption entry for the namespace, \
                     and the type an FLE1 schema: one collection uses one scheme"
                        .to_owned(),
                ],
            ));
        }
        let own_fetcher;
        let fetcher: &dyn SchemaFetcher = match self.auto.remote_fetcher() {
            Some(f) => f.as_ref(),
            None => {
                own_fetcher = MongoSchemaFetcher::new(self.db.client().clone());
                &own_fetcher
            }
        };
        let reply = fetcher.collection_schema(self.db.name(), name).await?;
        match super::auto::server_config(&namespace, reply)? {
            NsSchema::Plain => {}
            NsSchema::Fle1(remote) => {
                let differences = schema.encryption_differences(&remote, "type", "server's schema");
                if !differences.is_empty() {
                    return Err(mismatch("server's schema", differences));
                }
            }
            #[cfg(feature = "qe")]
            NsSchema::Queryable(_) => {
                return Err(mismatch(
                    "server's encryptedFields",
                    vec![
                        "the server's collection has a Queryable Encryption encryptedFields, \
                         and the type an FLE1 schema: one collection uses one scheme"
                            .to_owned(),
                    ],
                ));
            }
        }
        self.auto
            .register_typed::<T>(&namespace, rust_type, NsSchema::Fle1(Arc::new(schema)))?;
        tracing::debug!(namespace, rust_type, "typed collection opened");
        Ok(self.collection(name))
    }

    /// A collection with its own read concern, write concern or read
    /// preference, as `mongodb::Database::collection_with_options`. `T` as
    /// for [`collection`](Self::collection): a type deriving `Encrypted`
    /// with encrypted fields needs the namespace opened with
    /// [`typed_collection`](Self::typed_collection) first.
    pub fn collection_with_options<T: CollectionDocument>(
        &self,
        name: &str,
        options: mongodb::options::CollectionOptions,
    ) -> EncryptedCollection<T> {
        EncryptedCollection {
            db: self.clone(),
            inner: self.db.collection_with_options(name, options),
            needs_typed: needs_typed::<T>(),
            _t: PhantomData,
        }
    }

    /// The plain driver database (no encryption, no decryption).
    pub fn inner(&self) -> &mongodb::Database {
        &self.db
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        self.db.name()
    }

    /// Runs a command with automatic encryption and returns the decrypted reply.
    pub async fn run_command(&self, command: Document) -> Result<Document, Error> {
        let sent = self.auto.encrypt_command(self.db.name(), &command).await?;
        let reply = self.db.run_command(sent).await?;
        // A write error is read before anything is decrypted: its details
        // are the server's, and a ciphertext a hostile server put there is
        // never decrypted into an error.
        if let Ok(errors) = reply.get_array("writeErrors")
            && let Some(Bson::Document(first)) = errors.first()
        {
            return Err(Error::Client(ClientError::write(first)));
        }
        self.auto.client_encryption().decrypt_document(&reply).await
    }
}

/// A collection with automatic encryption, shaped like `mongodb::Collection<T>`.
pub struct EncryptedCollection<T> {
    db: EncryptedDatabase,
    inner: mongodb::Collection<Document>,
    /// Set when `T` derives `Encrypted` with encrypted fields: the
    /// namespace must be its typed collection.
    needs_typed: Option<NeedsTyped>,
    _t: PhantomData<fn() -> T>,
}

// By hand: the documents' type need not be `Debug` for the collection to be.
impl<T> std::fmt::Debug for EncryptedCollection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedCollection")
            .field("namespace", &self.inner.namespace())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> Clone for EncryptedCollection<T> {
    fn clone(&self) -> Self {
        EncryptedCollection {
            db: self.db.clone(),
            inner: self.inner.clone(),
            needs_typed: self.needs_typed,
            _t: PhantomData,
        }
    }
}

impl<T> EncryptedCollection<T> {
    /// The collection's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The database this collection is in.
    pub fn database(&self) -> &EncryptedDatabase {
        &self.db
    }

    /// The plain driver collection of `T` (same options; no encryption, no
    /// decryption: what it writes is stored as given). The deliberate
    /// escape hatch: a type deriving `Encrypted` written through it is
    /// stored as serde writes it, its encrypted fields in plaintext.
    pub fn inner(&self) -> mongodb::Collection<T>
    where
        T: Send + Sync,
    {
        self.inner.clone_with_type()
    }

    /// This collection, for documents of another type (`U` as for
    /// [`EncryptedDatabase::collection`]).
    pub fn clone_with_type<U: CollectionDocument>(&self) -> EncryptedCollection<U> {
        EncryptedCollection {
            db: self.db.clone(),
            inner: self.inner.clone(),
            needs_typed: needs_typed::<U>(),
            _t: PhantomData,
        }
    }

    /// This collection as documents, for operations that convert `T`
    /// first: `T`'s need for its typed collection is kept.
    pub(super) fn as_documents(&self) -> EncryptedCollection<Document> {
        EncryptedCollection {
            db: self.db.clone(),
            inner: self.inner.clone(),
            needs_typed: self.needs_typed,
            _t: PhantomData,
        }
    }

    /// The namespace, `db.coll`.
    fn namespace(&self) -> String {
        format!("{}.{}", self.db.name(), self.inner.name())
    }

    /// Refuses an operation on a collection of a type deriving `Encrypted`
    /// whose namespace is not its typed collection.
    fn check_typed(&self) -> Result<(), Error> {
        if let Some(needs) = self.needs_typed {
            let namespace = self.namespace();
            if !self.db.auto.typed_registered(&namespace, needs.type_id) {
                return Err(Error::Client(ClientError::UntypedCollection {
                    namespace,
                    rust_type: needs.rust_type,
                }));
            }
        }
        Ok(())
    }

    /// The driver collection the operations run on.
    pub(super) fn documents(&self) -> &mongodb::Collection<Document> {
        &self.inner
    }

    pub(super) fn auto(&self) -> &Arc<AutoEncrypter> {
        &self.db.auto
    }

    /// `command` as automatic encryption sends it: analysed, fail closed,
    /// its values encrypted.
    pub(super) async fn encrypt(&self, command: Document) -> Result<Document, Error> {
        self.check_typed()?;
        self.db
            .auto
            .encrypt_command_owned(self.db.name(), command)
            .await
    }

    /// The documents of an insert into this collection as automatic
    /// encryption sends them (`AutoEncrypter::encrypt_insert`): each
    /// document serialized; `fields` the command's other fields
    /// (`ordered`, …).
    pub(super) async fn encrypt_insert(
        &self,
        documents: Vec<bson::RawDocumentBuf>,
        fields: &Document,
    ) -> Result<super::auto::InsertDocuments, Error> {
        self.check_typed()?;
        self.db
            .auto
            .encrypt_insert(self.db.name(), self.inner.name(), documents, fields)
            .await
    }
}
