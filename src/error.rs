//! [`Error`], every error csfle returns, and the data of its variants that
//! no lower layer owns.
//!
//! Below the client and migration layers: it wraps each lower layer's error
//! whole and names no type of `client` or `migrate` (a migration error
//! holds a crate error, never the other way round). What only the client
//! edge produces is grouped in `ClientError`, held by `Error::Client`
//! (feature `driver`): the driver's failures are the `mongodb` crate's
//! error, kept whole; the audit refusal and the bulk write's partial
//! result are defined here, as plain data, for the same reason.

#[cfg(feature = "qe")]
use crate::qe;
use crate::{analysis, ciphertext, crypto, explicit, key, keyvault, kms, nesting, schema};

/// Every error csfle returns: one variant per layer, each layer's error
/// kept whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The AEAD layer (bad MAC, bad length, …).
    #[error(transparent)]
    Crypto(#[from] crypto::Error),
    /// The FLE1 format and type rules.
    #[error(transparent)]
    Ciphertext(#[from] ciphertext::Error),
    /// Key data: provider names, key documents, `masterKey`s.
    #[error(transparent)]
    Key(#[from] key::Error),
    /// A key that a lookup does not have ready.
    #[error(transparent)]
    Lookup(#[from] key::LookupError),
    /// Explicit encryption or decryption.
    #[error(transparent)]
    Explicit(#[from] explicit::Error),
    /// A collection's `encryptedFields` (Queryable Encryption's
    /// configuration), refused by its parser or naming a key no key
    /// document has (boxed: its variants carry paths).
    #[cfg(feature = "qe")]
    #[error(transparent)]
    EncryptedFields(Box<qe::encrypted_fields::EncryptedFieldsError>),
    /// Key documents and key vaults.
    #[error(transparent)]
    KeyVault(#[from] keyvault::Error),
    /// KMS providers.
    #[error(transparent)]
    Kms(#[from] kms::Error),
    /// A schema that is not a valid encryption schema.
    #[error(transparent)]
    Schema(#[from] schema::Error),
    /// Query analysis refused the command.
    #[error(transparent)]
    Analysis(#[from] analysis::Error),
    /// A value or document that is not valid BSON.
    #[error("invalid BSON: {0}")]
    InvalidBson(#[from] bson::raw::Error),
    /// A value that cannot be serialized to BSON.
    #[error("invalid BSON: {0}")]
    BsonSerialization(#[from] bson::ser::Error),
    /// A document that does not have the shape a type expects.
    #[error("invalid BSON: {0}")]
    BsonDeserialization(#[from] bson::de::Error),
    /// The client edge (feature `driver`): `ClientEncryption`, the
    /// encrypted client and its collections, the driver and the server.
    #[cfg(feature = "driver")]
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Documents nested deeper than [`MAX_NESTING`](crate::MAX_NESTING).
    #[error("document nesting exceeds {0} levels")]
    TooDeep(usize),
}

/// What the client edge (feature `driver`) refuses or fails with:
/// `ClientEncryption`, the encrypted client, database and collections,
/// schemas they look up, the driver and the server. Reached as
/// [`Error::Client`], as rustls nests the errors of one concern in a typed
/// enum of their own.
#[cfg(feature = "driver")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// An argument the caller passed that cannot be used.
    #[error("invalid {argument}: {reason}")]
    InvalidArgument {
        /// The argument.
        argument: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A schema that is not a valid encryption schema, from the schema map
    /// or from the server.
    #[error("schema {} '{namespace}'{}: {source}", if *remote { "of" } else { "for" }, if *remote { " on the server" } else { "" })]
    InvalidSchema {
        /// The namespace (`db.coll`).
        namespace: String,
        /// Whether the schema came from the server (a validator).
        remote: bool,
        /// What is wrong.
        #[source]
        source: schema::Error,
    },
    /// A collection's options on the server that csfle cannot read as a
    /// schema (a `validator` that is not a document, say).
    #[error("schema of '{namespace}' on the server: {reason}")]
    UnreadableRemoteSchema {
        /// The namespace.
        namespace: String,
        /// What is wrong.
        reason: String,
    },
    /// `require_schema` is set and the namespace has no schema (and is not
    /// declared plain).
    #[error("no schema for namespace '{namespace}'")]
    MissingSchema {
        /// The namespace.
        namespace: String,
    },
    /// A namespace declared plain (`plain_namespaces`) that cannot be:
    /// not `db.coll`, or it has a schema.
    #[error("plain namespace '{namespace}': {reason}")]
    PlainNamespace {
        /// The namespace as given.
        namespace: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The namespace is a view: automatic encryption cannot see through it.
    #[error("cannot auto encrypt a view: '{namespace}'")]
    View {
        /// The view's namespace.
        namespace: String,
    },
    /// Reading a collection's schema from the server failed.
    #[error("listCollections for {namespace} failed: {source}")]
    SchemaFetch {
        /// The namespace.
        namespace: String,
        /// The fetcher's error (for the built-in fetcher a
        /// `mongodb::error::Error`, reachable by downcasting).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An option of an encrypted collection's operation that cannot be
    /// handed to the driver's typed operation (after analysis, every field
    /// of the command must reach the server as analysed).
    #[error("{command}: option '{field}' cannot be sent: {reason}")]
    UnsupportedOption {
        /// The command.
        command: &'static str,
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// Operations of a collection-level bulk write failed; the result
    /// holds what the others did.
    #[error("bulk write: {} operation(s) failed; the first, at index {}: {}", failures.len(), failures.first().map_or(0, |f| f.index), failures.first().map_or(String::new(), |f| f.error.to_string()))]
    BulkWrite {
        /// What the operations that succeeded did.
        result: Box<BulkWriteResult>,
        /// The operations that failed, by index.
        failures: Vec<BulkWriteFailure>,
    },
    /// Operations of a client-level bulk write
    /// ([`EncryptedClient::bulk_write`](crate::EncryptedClient::bulk_write))
    /// failed, or its write concern was not satisfied: every failure by
    /// the index of its model, and what the bulk write did. The message
    /// says how many failed, the first index and the codes, never the
    /// server's messages (which can quote values of the documents): those
    /// are in `write_errors` and `write_concern_errors`.
    #[error("{}", client_bulk_write_message(write_errors, write_concern_errors))]
    ClientBulkWrite {
        /// What the bulk write did: the server's counts, the `_id`s of the
        /// inserts that did not fail, the upserted `_id`s it reported.
        result: Box<ClientBulkWriteResult>,
        /// The operations the server refused, by the index of their model
        /// (ordered, nothing after the first was attempted).
        write_errors: std::collections::BTreeMap<usize, ServerWriteError>,
        /// The write concern errors, one per command that had one.
        write_concern_errors: Vec<ServerWriteError>,
    },
    /// A reply of the server that csfle cannot read (a client-level bulk
    /// write's results cursor without an id, a result naming no operation
    /// of the command, …): what was done is not known.
    #[error("{command}: the server's reply cannot be read: {reason}")]
    InvalidReply {
        /// The command.
        command: &'static str,
        /// What is wrong with the reply.
        reason: &'static str,
    },
    /// The operation did not finish within its timeout
    /// (`AutoEncryptionOptions::timeout`).
    #[error("operation exceeded its timeout of {} ms", after.as_millis())]
    Timeout {
        /// The timeout.
        after: std::time::Duration,
    },
    /// The server reported a write error in a command reply.
    #[error("server error: write error {code}: {message}")]
    Write {
        /// The server's error code.
        code: i32,
        /// The server's message.
        message: String,
        /// The whole `writeErrors` entry.
        details: Box<bson::Document>,
    },
    /// The driver or the server failed a command. The driver's error is
    /// kept whole: its code, labels and retryability stay reachable.
    #[error("server error: {0}")]
    Driver(#[from] Box<mongodb::error::Error>),
    /// The audit sink refused a decryption; nothing was decrypted.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A typed collection's schema (from `#[derive(Encrypted)]`) disagrees
    /// with another schema for its namespace.
    #[error("the schema of `{rust_type}` disagrees with the {other} for '{namespace}': {}", differences.join("; "))]
    TypedSchemaMismatch {
        /// The namespace.
        namespace: String,
        /// The Rust type.
        rust_type: &'static str,
        /// The other schema: "schema map" or "server's schema".
        other: &'static str,
        /// One line per field that differs.
        differences: Vec<String>,
    },
    /// A collection of a type deriving `Encrypted` with encrypted fields
    /// was used without its schema: it was opened with `collection` or
    /// `collection_with_options`, not `typed_collection`.
    #[error(
        "'{namespace}' holds `{rust_type}`, which has encrypted fields, but its schema is not registered: open it with `EncryptedDatabase::typed_collection::<{rust_type}>`, not `collection`"
    )]
    UntypedCollection {
        /// The namespace.
        namespace: String,
        /// The Rust type.
        rust_type: &'static str,
    },
    /// A namespace was opened as a typed collection of two different types.
    #[error("'{namespace}' is already a typed collection of `{registered}`, not of `{requested}`")]
    NamespaceTypeConflict {
        /// The namespace.
        namespace: String,
        /// The type registered first.
        registered: &'static str,
        /// The type asked for now.
        requested: &'static str,
    },
    /// A namespace configured for both FLE1 (a `$jsonSchema` with
    /// encrypted fields) and Queryable Encryption (an `encryptedFields`):
    /// a collection uses one scheme, and neither is silently preferred.
    #[error(
        "'{namespace}' has both an FLE1 $jsonSchema and a Queryable Encryption encryptedFields ({place}): a collection uses one scheme"
    )]
    ConflictingSchemes {
        /// The namespace.
        namespace: String,
        /// Where the two were found.
        place: &'static str,
    },
    /// An entry of the `encryptedFieldsMap` that is not `"db.coll"` →
    /// an `encryptedFields` document.
    #[error("encryptedFieldsMap entry '{namespace}': {reason}")]
    InvalidEncryptedFieldsMap {
        /// The entry's key as given.
        namespace: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A collection's `encryptedFields` (Queryable Encryption's
    /// configuration) that cannot be used, from the `encryptedFieldsMap`
    /// or from the server.
    #[cfg(feature = "qe")]
    #[error("encryptedFields {} '{namespace}'{}: {source}", if *remote { "of" } else { "for" }, if *remote { " on the server" } else { "" })]
    InvalidEncryptedFields {
        /// The namespace (`db.coll`).
        namespace: String,
        /// Whether it came from the server (`listCollections`).
        remote: bool,
        /// What is wrong.
        #[source]
        source: Box<crate::qe::encrypted_fields::EncryptedFieldsError>,
    },
    /// A Queryable Encryption command that cannot be finalized (its
    /// placeholders encrypted, its `encryptionInformation` added).
    #[cfg(feature = "qe")]
    #[error("Queryable Encryption: {0}")]
    Finalize(#[source] Box<crate::qe::finalize::FinalizeError>),
    /// The server is older than Queryable Encryption (maxWireVersion below
    /// 21, MongoDB 7.0): the specification's words.
    #[error(
        "Driver support of Queryable Encryption is incompatible with server. Upgrade server to use Queryable Encryption. (server maxWireVersion {max_wire_version}, 21 needed)"
    )]
    IncompatibleServer {
        /// The server's `maxWireVersion`.
        max_wire_version: i32,
    },
    /// `ClientEncryption::create_encrypted_collection` failed. The
    /// `encryptedFields` holds the ids of the data keys it created before
    /// the failure (key ids only, never key material), so that they can be
    /// used or deleted.
    #[error("create encrypted collection '{namespace}': {source}")]
    CreateEncryptedCollection {
        /// The namespace (`db.coll`).
        namespace: String,
        /// The `encryptedFields` with every key created so far filled in.
        encrypted_fields: Box<bson::Document>,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
    /// `compactStructuredEncryptionData` or
    /// `cleanupStructuredEncryptionData` through the encrypted client: csfle
    /// does not build their tokens, so it refuses rather than send them
    /// without.
    #[error(
        "{command} is refused: csfle does not build its compaction tokens. Run it with mongosh connected with automatic encryption (MongoDB Enterprise or Atlas, with the crypt_shared library), which adds them: db.runCommand({{{command}: \"<collection>\"}})"
    )]
    StructuredEncryptionMaintenance {
        /// The command.
        command: &'static str,
    },
}

impl Error {
    /// The server's error code behind this error, if any: 11000 for a
    /// duplicate key (also when a file or memory key vault detected it),
    /// the code of a write error or of a failed command.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::KeyVault(e) => e.server_code(),
            #[cfg(feature = "driver")]
            Error::Client(e) => e.code(),
            _ => None,
        }
    }

    /// Whether the operation ran out of time: its own timeout, or the
    /// server's `maxTimeMS` (MaxTimeMSExpired, code 50).
    pub fn is_timeout(&self) -> bool {
        #[cfg(feature = "driver")]
        let own = matches!(self, Error::Client(ClientError::Timeout { .. }));
        #[cfg(not(feature = "driver"))]
        let own = false;
        own || self.code() == Some(50)
    }

    /// The driver's error, when the driver or the server failed (with its
    /// code, labels and retryability).
    #[cfg(feature = "driver")]
    pub fn driver_error(&self) -> Option<&mongodb::error::Error> {
        match self {
            Error::Client(e) => e.driver_error(),
            Error::KeyVault(keyvault::Error::Driver { source, .. }) => Some(source),
            _ => None,
        }
    }

    /// Whether the driver's error carries `label` (`RetryableWriteError`,
    /// `TransientTransactionError`, `UnknownTransactionCommitResult`, …).
    #[cfg(feature = "driver")]
    pub fn contains_label(&self, label: &str) -> bool {
        self.driver_error().is_some_and(|e| e.contains_label(label))
    }
}

#[cfg(feature = "driver")]
impl ClientError {
    /// [`ClientError::Write`] of a `writeErrors` (or `writeConcernError`)
    /// entry of a reply, read as the server sent it.
    pub(crate) fn write(details: &bson::Document) -> Self {
        ClientError::Write {
            code: details.get_i32("code").unwrap_or_default(),
            message: details.get_str("errmsg").unwrap_or("unknown").to_owned(),
            details: Box::new(details.clone()),
        }
    }

    /// The server's error code behind this error, if any: the code of a
    /// write error or of a failed command.
    pub fn code(&self) -> Option<i32> {
        match self {
            ClientError::Write { code, .. } => Some(*code),
            ClientError::ClientBulkWrite {
                write_errors,
                write_concern_errors,
                ..
            } => write_errors
                .values()
                .next()
                .or(write_concern_errors.first())
                .map(|e| e.code),
            ClientError::Driver(e) => crate::driver::driver_code(e),
            ClientError::CreateEncryptedCollection { source, .. } => source.code(),
            _ => None,
        }
    }

    /// The driver's error, when the driver or the server failed (the
    /// built-in schema fetcher's included).
    pub fn driver_error(&self) -> Option<&mongodb::error::Error> {
        match self {
            ClientError::Driver(e) => Some(e),
            ClientError::SchemaFetch { source, .. } => source.downcast_ref(),
            ClientError::CreateEncryptedCollection { source, .. } => source.driver_error(),
            _ => None,
        }
    }
}

/// `?` on a driver call: the driver's error, kept whole.
#[cfg(feature = "driver")]
impl From<mongodb::error::Error> for ClientError {
    fn from(e: mongodb::error::Error) -> Self {
        ClientError::Driver(Box::new(e))
    }
}

#[cfg(feature = "driver")]
impl From<mongodb::error::Error> for Error {
    fn from(e: mongodb::error::Error) -> Self {
        Error::Client(ClientError::from(e))
    }
}

#[cfg(feature = "driver")]
impl From<Box<mongodb::error::Error>> for Error {
    fn from(e: Box<mongodb::error::Error>) -> Self {
        Error::Client(ClientError::Driver(e))
    }
}

/// `?` on an [`AuditSink`](crate::AuditSink)'s answer.
#[cfg(feature = "driver")]
impl From<AuditError> for Error {
    fn from(e: AuditError) -> Self {
        Error::Client(ClientError::Audit(e))
    }
}

/// Queryable Encryption's errors (its options, payloads and values) reach
/// callers as [`ExplicitError::Qe`](crate::ExplicitError::Qe), the layer
/// that runs them.
#[cfg(feature = "qe")]
impl From<qe::Error> for Error {
    fn from(e: qe::Error) -> Self {
        Error::Explicit(explicit::Error::from(e))
    }
}

#[cfg(feature = "qe")]
impl From<qe::encrypted_fields::EncryptedFieldsError> for Error {
    fn from(e: qe::encrypted_fields::EncryptedFieldsError) -> Self {
        Error::EncryptedFields(Box::new(e))
    }
}

impl From<nesting::TooDeep> for Error {
    fn from(e: nesting::TooDeep) -> Self {
        Error::TooDeep(e.limit)
    }
}

/// Why an [`AuditSink`](crate::AuditSink) refused a decryption.
#[cfg(feature = "driver")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit refused the decryption: {reason}")]
pub struct AuditError {
    reason: String,
}

#[cfg(feature = "driver")]
impl AuditError {
    /// A refusal; `reason` goes into the operation's error, so it must not
    /// hold secrets.
    pub fn new(reason: impl Into<String>) -> Self {
        AuditError {
            reason: reason.into(),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// What a bulk write did (the operations that succeeded).
#[cfg(feature = "driver")]
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct BulkWriteResult {
    /// Documents inserted.
    pub inserted_count: u64,
    /// Documents matched by updates and replacements.
    pub matched_count: u64,
    /// Documents modified.
    pub modified_count: u64,
    /// Documents deleted.
    pub deleted_count: u64,
    /// Documents upserted.
    pub upserted_count: u64,
    /// The `_id` of each inserted document, by operation index.
    pub inserted_ids: std::collections::BTreeMap<usize, bson::Bson>,
    /// The `_id` of each upserted document, by operation index.
    pub upserted_ids: std::collections::BTreeMap<usize, bson::Bson>,
}

/// What a client-level bulk write
/// ([`EncryptedClient::bulk_write`](crate::EncryptedClient::bulk_write))
/// did.
#[cfg(feature = "driver")]
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ClientBulkWriteResult {
    /// Documents inserted (the server's `nInserted`).
    pub inserted_count: u64,
    /// Documents matched by updates and replacements (`nMatched`).
    pub matched_count: u64,
    /// Documents modified (`nModified`).
    pub modified_count: u64,
    /// Documents upserted (`nUpserted`).
    pub upserted_count: u64,
    /// Documents deleted (`nDeleted`).
    pub deleted_count: u64,
    /// The `_id` of each inserted document (generated when its document
    /// had none), by the index of its model: every insert the server did
    /// not report failed and that was attempted (ordered, none after the
    /// first failure).
    pub inserted_ids: std::collections::HashMap<usize, bson::Bson>,
}

/// A write error the server reported for one operation of a client-level
/// bulk write, or a write concern error: its code and message as the
/// server sent them. `errInfo`, which can quote a document, is not kept,
/// and `Debug` shows the message's length only (a duplicate key error
/// quotes the key's value).
#[cfg(feature = "driver")]
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerWriteError {
    /// The server's error code (11000 for a duplicate key).
    pub code: i32,
    /// The code's name, when the server gave it.
    pub code_name: Option<String>,
    /// The server's message (`errmsg`).
    pub message: String,
}

#[cfg(feature = "driver")]
impl ServerWriteError {
    /// The error of a result or `writeConcernError` document of a reply,
    /// read as the server sent it (a missing or unreadable code is 0).
    pub(crate) fn from_reply(d: &bson::Document) -> Self {
        let code = match d.get("code") {
            Some(bson::Bson::Int32(c)) => *c,
            Some(bson::Bson::Int64(c)) => i32::try_from(*c).unwrap_or_default(),
            _ => 0,
        };
        ServerWriteError {
            code,
            // A name as the server's error codes are spelled, or none: a
            // hostile reply's text (newlines, megabytes) never reaches a
            // message or a log line.
            code_name: d
                .get_str("codeName")
                .ok()
                .filter(|n| {
                    !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric())
                })
                .map(str::to_owned),
            message: d.get_str("errmsg").unwrap_or_default().to_owned(),
        }
    }
}

#[cfg(feature = "driver")]
impl std::fmt::Debug for ServerWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerWriteError")
            .field("code", &self.code)
            .field("code_name", &self.code_name)
            .field(
                "message",
                &format_args!("<{} bytes, not shown>", self.message.len()),
            )
            .finish()
    }
}

/// [`ClientError::ClientBulkWrite`]'s message: counts, the first failing
/// index and codes, nothing the server wrote.
#[cfg(feature = "driver")]
fn client_bulk_write_message(
    write_errors: &std::collections::BTreeMap<usize, ServerWriteError>,
    write_concern_errors: &[ServerWriteError],
) -> String {
    let mut out = format!(
        "client bulk write: {} operation(s) failed",
        write_errors.len()
    );
    if let Some((index, first)) = write_errors.iter().next() {
        out.push_str(&format!(
            "; the first at index {index}, server error code {}",
            first.code
        ));
        if let Some(name) = &first.code_name {
            out.push_str(&format!(" ({name})"));
        }
    }
    if let Some(w) = write_concern_errors.first() {
        out.push_str(&format!(
            "; {} write concern error(s), the first with code {}",
            write_concern_errors.len(),
            w.code
        ));
    }
    out
}

/// An operation of a bulk write that failed.
#[cfg(feature = "driver")]
#[derive(Debug)]
#[non_exhaustive]
pub struct BulkWriteFailure {
    /// Its index in the bulk write.
    pub index: usize,
    /// Why.
    pub error: Error,
}

#[cfg(test)]
mod tests {
    /// Every `Result` of the crate carries this error: it stays under
    /// clippy's `result_large_err` limit (large parts are boxed).
    #[test]
    fn error_is_small() {
        let size = std::mem::size_of::<super::Error>();
        assert!(size < 128, "csfle::Error is {size} bytes");
    }
}
