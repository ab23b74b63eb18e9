//! What every file of the analysis shares: the namespaces a command
//! touches and what the caller knows of their schemas, why a command is
//! refused, and the state one analysis carries through all of them (the
//! schemas it may look up, its database, whether it marks values or
//! verifies them already encrypted, the markings it made, what no
//! allow-list knew, and where markings cannot be made).
//!
//! It sits below every other file of `analysis` and imports none of them,
//! so no file reaches these through a file above it (`Ctx` lived in
//! `commands`, which imports the files that took it; `Error` and
//! `Namespace` lived in `mod.rs`, which imports every file). [`Error`] and
//! [`Namespace`] share this file because each names the other
//! (`Error::SchemaUnavailable` carries a namespace, `Namespace::parse`
//! refuses with an `Error`).

use crate::nesting::TooDeep;
#[cfg(feature = "qe")]
use crate::qe::encrypted_fields::{EncryptedFields, EncryptedFieldsError};
use crate::schema::EncryptionSchema;
use bson::Bson;
use bson::spec::BinarySubtype;
use std::fmt;

/// A `db.collection` namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    /// The database.
    pub db: String,
    /// The collection.
    pub coll: String,
}

impl Namespace {
    /// `db.coll`.
    pub fn new(db: impl Into<String>, coll: impl Into<String>) -> Self {
        Namespace {
            db: db.into(),
            coll: coll.into(),
        }
    }

    /// Parses `db.collection` (the collection name may contain dots).
    pub fn parse(ns: &str) -> Result<Self, Error> {
        match ns.split_once('.') {
            Some((db, coll)) if !db.is_empty() && !coll.is_empty() => Ok(Self::new(db, coll)),
            _ => Err(Error::InvalidNamespace(ns.to_owned())),
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.coll)
    }
}

/// What the caller knows about a namespace's schema.
#[derive(Clone, Copy, Debug)]
pub enum NamespaceSchema<'s> {
    /// Looked up: the schema, or `None` when the namespace has none.
    Known(Option<&'s EncryptionSchema>),
    /// A Queryable Encryption collection (feature `qe`): its
    /// `encryptedFields`. Its commands get QE placeholders instead of
    /// markings; one whose [`EncryptedFields::check_supported`] fails
    /// refuses every command that touches it, naming the field. Any other
    /// command that names it (a join, a union, a view over it) is refused.
    #[cfg(feature = "qe")]
    Queryable(&'s EncryptedFields),
    /// Not looked up (yet): analysis refuses with
    /// [`Error::SchemaUnavailable`], naming the namespace, so the caller can
    /// fetch it and try again.
    Unknown,
}

impl<'s> From<Option<&'s EncryptionSchema>> for NamespaceSchema<'s> {
    fn from(s: Option<&'s EncryptionSchema>) -> Self {
        NamespaceSchema::Known(s)
    }
}

/// Why a command cannot be sent with automatic encryption. Messages use
/// mongocryptd's wording where the specification's tests check it, with
/// csfle's detail after it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client-level `bulkWrite` command on a namespace with an FLE1
    /// `$jsonSchema` (the drivers' wording; mongocryptd refuses it too:
    /// "The bulkWrite command only supports Queryable Encryption").
    #[error("bulkWrite does not currently support automatic encryption")]
    BulkWrite,
    /// `bulkWrite` without a namespace: `nsInfo` missing, not an array,
    /// empty, or its first entry not a document with an `ns`
    /// (libmongocrypt's words).
    #[error("failed to find namespace in `bulkWrite` command")]
    BulkWriteNoNamespace,
    /// `bulkWrite`'s `nsInfo.0.ns` is not a string (libmongocrypt's words,
    /// with csfle's name of the type).
    #[error("expected namespace to be UTF8, got: {0}")]
    BulkWriteNamespaceType(&'static str),
    /// `bulkWrite`'s `nsInfo.0.ns` has no dot (libmongocrypt's words).
    #[error("expected namespace to contain dot, got: {0}")]
    BulkWriteNamespaceDot(String),
    /// `bulkWrite` with more than one entry in `nsInfo`: query analysis
    /// supports one namespace (libmongocrypt's words).
    #[error(
        "expected one namespace in `bulkWrite`, but found more than one. Only one namespace is supported."
    )]
    BulkWriteNamespaces,
    /// An operation of `bulkWrite` that is not an insert, update or
    /// delete.
    #[error(
        "bulkWrite op {index}: '{op}' is not supported for auto encryption (only insert, update and delete are)"
    )]
    BulkWriteOpKind {
        /// The operation's index in `ops`.
        index: usize,
        /// Its first field.
        op: String,
    },
    /// An operation of `bulkWrite` that names another `nsInfo` entry than
    /// the only one.
    #[error(
        "bulkWrite op {index}: its {op} names nsInfo entry {entry}, but only one namespace (entry 0) is supported"
    )]
    BulkWriteOpNamespace {
        /// The operation's index in `ops`.
        index: usize,
        /// `insert`, `update` or `delete`.
        op: String,
        /// The entry it names (a number, or the type of what it holds).
        entry: String,
    },
    /// A `bulkWrite` on a Queryable Encryption collection with more than
    /// one operation, one of them an update or a delete (mongocryptd's
    /// words; mongod refuses it too).
    #[error(
        "Only insert is supported in BulkWrite with multiple operations and Queryable Encryption. (op {index} is {op}, on '{ns}')"
    )]
    BulkWriteQueryableOps {
        /// The first operation that is not an insert.
        index: usize,
        /// `update` or `delete`.
        op: String,
        /// The collection.
        ns: String,
    },
    /// A field of `bulkWrite`, of its `nsInfo` entry or of one of its
    /// operations that no allow-list knows (refused whatever the
    /// namespace: an operation that cannot be read cannot be analysed).
    #[error("field '{0}' of bulkWrite is not supported for auto encryption")]
    BulkWriteField(String),
    /// Not on the automatic-encryption allow-list.
    #[error("command not supported for auto encryption: {0}")]
    UnsupportedCommand(String),
    /// A database-level command (e.g. `aggregate: 1`).
    #[error("non-collection command not supported for auto encryption: {0}")]
    NonCollectionCommand(String),
    /// A field the command's allow-list does not know, in a command that
    /// touches encrypted fields.
    #[error(
        "field '{field}' of {command} is not supported for auto encryption ('{ns}' has encrypted fields)"
    )]
    UnknownField {
        /// The command.
        command: String,
        /// The field (dotted for nested ones).
        field: String,
        /// A namespace with encrypted fields the command touches.
        ns: String,
    },
    /// A query on a randomly encrypted field.
    #[error("Cannot query on fields encrypted with the randomized encryption: '{0}'")]
    RandomizedQuery(String),
    /// An operator other than the equality family on an encrypted field.
    #[error("Invalid match expression operator on encrypted field '{path}': {op}")]
    InvalidOperator {
        /// The field.
        path: String,
        /// The operator.
        op: String,
    },
    /// An operator that can never be used with encryption ($text, $where, …).
    #[error("Unsupported match expression operator for encryption: {0}")]
    UnsupportedOperator(String),
    /// `{f: null}` or `{f: {$eq: null}}` on an encrypted field.
    #[error("Illegal equality to null predicate for encrypted field: '{0}'")]
    NullEquality(String),
    /// `null` inside `$in` on an encrypted field.
    #[error("Illegal equality to null inside $in against an encrypted field: '{0}'")]
    NullInIn(String),
    /// A value whose type cannot be encrypted there.
    #[error("Cannot encrypt element of type: {ty} (field '{path}'{detail})")]
    CannotEncryptType {
        /// The field.
        path: String,
        /// The value's type.
        ty: &'static str,
        /// Why, when more can be said.
        detail: String,
    },
    /// A value of a type deterministic encryption refuses.
    #[error("Cannot use deterministic encryption for element of type: {ty} (field '{path}')")]
    DeterministicType {
        /// The field.
        path: String,
        /// The value's type.
        ty: &'static str,
    },
    /// An insert of `Timestamp(0, 0)`, which the server would replace.
    #[error(
        "A command that inserts cannot supply Timestamp(0, 0) for an encrypted top-level field at path '{0}'"
    )]
    TimestampZero(String),
    /// An update operator that cannot apply to ciphertext.
    #[error("{0} not allowed on encrypted values")]
    UpdateOperator(&'static str),
    /// A positional update below an encrypted field.
    #[error("Cannot encrypt fields below '$' positional update operator: '{0}'")]
    Positional(String),
    /// An array-filter update of an encrypted field.
    #[error("Array update operations not allowed on encrypted values: '{0}'")]
    ArrayUpdate(String),
    /// `$rename` between fields encrypted differently.
    #[error(
        "$rename between two encrypted fields must have the same metadata or both be unencrypted: '{from}' -> '{to}'"
    )]
    Rename {
        /// The source field.
        from: String,
        /// The target field.
        to: String,
    },
    /// An update document mixing operators and plain fields.
    #[error("an update document cannot mix update operators and fields: '{0}'")]
    MixedUpdate(String),
    /// A replacement document with a `$`-prefixed key.
    #[error("a replacement document cannot contain the $-prefixed field '{0}'")]
    DollarInReplacement(String),
    /// A path inside an encrypted value.
    #[error("Invalid operation on a path below an encrypted field: '{0}'")]
    BelowEncrypted(String),
    /// A validator or partial filter comparing encrypted fields.
    #[error("Comparison to encrypted fields not supported: '{0}'")]
    ComparisonToEncrypted(String),
    /// `distinct` on a field whose key is a JSON pointer.
    #[error("The distinct key is not allowed to be marked for encryption with a non-UUID keyId")]
    DistinctPointer,
    /// A JSON-pointer key whose field is missing or not a string.
    #[error(
        "the keyId pointer '{pointer}' of encrypted field '{path}' must name a string field of the document"
    )]
    KeyPointer {
        /// The encrypted field.
        path: String,
        /// The pointer.
        pointer: String,
    },
    /// A JSON-pointer key where there is no whole document to resolve it
    /// against (an update operator, a query).
    #[error(
        "A non-static (JSONPointer) keyId is not supported here: field '{0}' (only whole inserted or replacement documents can name their key)"
    )]
    NonStaticKeyId(String),
    /// An aggregation stage that could move encrypted fields untracked.
    #[error("aggregation stage {stage} is not supported on '{ns}', which has encrypted fields")]
    UnsupportedStage {
        /// The stage.
        stage: String,
        /// The namespace whose encrypted fields the stage would see.
        ns: String,
    },
    /// Sorting on an encrypted field.
    #[error("sorting on encrypted field '{0}' is not supported")]
    SortOnEncrypted(String),
    /// `min` / `max` index bounds on an encrypted field (they are values).
    #[error("min/max bounds on encrypted field '{0}' are not supported")]
    MinMaxOnEncrypted(String),
    /// A pipeline-style update on a collection with encrypted fields.
    #[error("pipeline updates are not supported on '{0}', which has encrypted fields")]
    PipelineUpdate(String),
    /// An expression that reads an encrypted field.
    #[error(
        "an expression cannot reference encrypted field '{field}' of '{ns}' (the server would compare or compute on ciphertext)"
    )]
    ExpressionOnEncrypted {
        /// The namespace.
        ns: String,
        /// The field.
        field: String,
    },
    /// An expression that could read any field: the whole document,
    /// JavaScript, a field named at run time.
    #[error("{what} is not supported on '{ns}', which has encrypted fields")]
    UntrackedAccess {
        /// The namespace.
        ns: String,
        /// What reads the document (`$$ROOT`, `$function`, …).
        what: String,
    },
    /// A projection or computed field that would write a value the client
    /// did not encrypt into an encrypted field.
    #[error("cannot assign a computed or literal value to encrypted field '{field}' of '{ns}'")]
    AssignToEncrypted {
        /// The namespace.
        ns: String,
        /// The field.
        field: String,
    },
    /// Another collection's encrypted field where the command cannot
    /// encrypt for it: a join or filter inside a sub-pipeline, a union's
    /// documents, a view definition.
    #[error("{what}: field '{field}' of '{ns}' is encrypted")]
    ForeignEncrypted {
        /// The namespace whose field it is.
        ns: String,
        /// The field.
        field: String,
        /// What the command does with it.
        what: String,
    },
    /// A `$merge` / `$out` that writes into, or from, a collection with
    /// encrypted fields.
    #[error(
        "{stage} into '{target}' is not supported: '{encrypted}' has encrypted fields, and a pipeline cannot write them"
    )]
    PipelineWrite {
        /// The stage.
        stage: String,
        /// The collection written.
        target: String,
        /// The namespace with encrypted fields.
        encrypted: String,
    },
    /// A view over, or named like, a collection with encrypted fields.
    #[error("cannot auto encrypt a view: '{view}' would read '{ns}', which has encrypted fields")]
    View {
        /// The view.
        view: String,
        /// The namespace with encrypted fields.
        ns: String,
    },
    /// A namespace whose schema could not be looked up.
    #[error(
        "cannot tell whether '{0}' has encrypted fields: it is not in the schema map and no server schema lookup is available"
    )]
    SchemaUnavailable(Namespace),
    /// Two schema entries match one field and disagree about encryption.
    #[error(
        "Invalid schema: several properties or patternProperties match field '{0}' and disagree about its encryption"
    )]
    SchemaConflict(String),
    /// An application value that is an encryption marking.
    #[error(
        "the command contains a value that looks like an encryption marking (binary subtype 6, first byte 0); only markings made by query analysis are encrypted"
    )]
    MarkingInInput,
    /// An application value that is a Queryable Encryption placeholder.
    #[error(
        "the command contains a value that looks like a Queryable Encryption placeholder (binary subtype 6, first byte 3); only placeholders made by query analysis are turned into payloads"
    )]
    PlaceholderInInput,
    /// A command sent with `bypass_query_analysis` (the application
    /// encrypts values itself, explicitly) with a value, where the schema
    /// encrypts, that is not a ciphertext of the kind expected there: a
    /// plaintext, a marking or placeholder (each holds its value in
    /// plaintext), or another kind of ciphertext. Nothing is sent. Says
    /// what the value is (its type, or an encrypted binary's kind), never
    /// what it holds.
    #[error(
        "bypassQueryAnalysis is set and the value at '{path}' is not encrypted as the schema requires: found {found}, expected {expected} (encrypt it explicitly before sending the command)"
    )]
    PlaintextUnderBypass {
        /// The field.
        path: String,
        /// What the value is: its BSON type, or an encrypted binary's kind.
        found: String,
        /// The ciphertext kinds accepted there.
        expected: &'static str,
    },
    /// A Queryable Encryption collection named where csfle cannot
    /// encrypt for it (a join, a union, a view, a pipeline of another
    /// collection).
    #[error(
        "{what}: '{ns}' is a Queryable Encryption collection, which csfle does not analyse there"
    )]
    QueryableCollection {
        /// The collection.
        ns: String,
        /// Where it was named.
        what: String,
    },
    /// A Queryable Encryption collection whose `encryptedFields` csfle
    /// cannot use: a query type it does not implement, a key not resolved.
    #[cfg(feature = "qe")]
    #[error("'{ns}': {source}")]
    EncryptedFields {
        /// The collection.
        ns: String,
        /// Why (boxed: its variants carry paths and bounds).
        #[source]
        source: Box<EncryptedFieldsError>,
    },
    /// A query on a Queryable Encryption field without an index.
    #[error(
        "Cannot query on field '{0}': it is encrypted without an index (Queryable Encryption 'unindexed'), so it can only be written"
    )]
    NotQueryable(String),
    /// A query value of another type than the encrypted field's
    /// `bsonType` (Queryable Encryption: the tokens are of the type).
    #[error(
        "field type is not supported for encrypted field '{path}': its value type is a {field_type}, the query's is a {value_type}"
    )]
    QueryType {
        /// The field.
        path: String,
        /// The field's `bsonType`.
        field_type: &'static str,
        /// The type of the value queried.
        value_type: &'static str,
    },
    /// `__safeContent__`, which the server maintains for Queryable
    /// Encryption, written or queried.
    #[error(
        "'{0}': '__safeContent__' holds the tags the server keeps for Queryable Encryption; a command may not write, remove or query it"
    )]
    SafeContent(String),
    /// A placeholder that could not be written.
    #[cfg(feature = "qe")]
    #[error("cannot make the Queryable Encryption placeholder of field '{path}': {source}")]
    Placeholder {
        /// The field.
        path: String,
        /// Why (never a value; boxed: it is large).
        #[source]
        source: Box<crate::qe::Error>,
    },
    /// A namespace that is not `db.collection`.
    #[error("invalid namespace '{0}': expected db.collection")]
    InvalidNamespace(String),
    /// A command with a malformed shape.
    #[error("malformed command: {0}")]
    Malformed(String),
    /// A malformed marking (only markings made here are decoded).
    #[error("malformed marking: {0}")]
    MalformedMarking(String),
    /// A command whose own `$db` names another database than the one it
    /// is analysed for: its namespaces would be resolved against the wrong
    /// schemas.
    #[error(
        "the command's $db '{found}' differs from the database it is analysed for, '{analysed}'"
    )]
    DatabaseMismatch {
        /// The command's `$db`.
        found: String,
        /// The database analysis resolved namespaces in.
        analysed: String,
    },
    /// A numeric or `$`-prefixed path segment below a document holding
    /// encrypted fields (or below a join's array of such documents): it
    /// could address an array element or a field the schema does not
    /// describe, where the value would go out in plaintext.
    #[error(
        "Invalid path '{0}': a numeric or $-prefixed segment below a document with encrypted fields is not supported"
    )]
    AmbiguousSegment(String),
    /// A `$jsonSchema` (validator, partial filter) the schema parser refuses.
    #[error("$jsonSchema in {what}: {source}")]
    InvalidJsonSchema {
        /// Where the schema is (`validator`, `partialFilterExpression`).
        what: String,
        /// Why the parser refused it.
        #[source]
        source: crate::schema::Error,
    },
    /// A `$jsonSchema` keyword that holds values (`enum`, `pattern`,
    /// bounds, …) on a path that is, holds or may be encrypted: the
    /// server would keep those values in plaintext in the collection's
    /// options.
    #[error(
        "$jsonSchema keyword '{keyword}' on encrypted field '{path}' is not supported (the server would store its values in plaintext)"
    )]
    SchemaValueOnEncrypted {
        /// The field (`<root>` for the whole document).
        path: String,
        /// The keyword.
        keyword: String,
    },
    /// A `$documents` literal that puts a value on a path an encrypted
    /// collection met in the same pipeline encrypts.
    #[error(
        "a $documents literal puts a value on field '{field}', which '{ns}' encrypts (the value would go out in plaintext)"
    )]
    DocumentsLiteral {
        /// The namespace that encrypts the field.
        ns: String,
        /// The field.
        field: String,
    },
    /// The number of markings made differs from the number in the command
    /// to send: a value marked for encryption was dropped (and its
    /// plaintext would be sent instead) or duplicated.
    #[error(
        "internal error: {made} values were marked for encryption but {placed} markings are in the command to send; refusing it"
    )]
    MarkingsLost {
        /// Markings made.
        made: usize,
        /// Markings found in the command.
        placed: usize,
    },
    /// The data key a document names through a `keyId` JSON pointer could
    /// not be used. The name is a value of the document, so it is not
    /// shown.
    #[error(
        "the data key named by a document's keyId pointer is not usable (the name, a value of the document, is not shown): {reason}"
    )]
    KeyFromDocument {
        /// The underlying error, with every name taken from a document
        /// replaced.
        reason: String,
    },
    /// Nested deeper than the limit.
    #[error(transparent)]
    TooDeep(#[from] TooDeep),
    /// Encrypting a marking failed (key not found, type not allowed, …).
    #[error(transparent)]
    Encrypt(#[from] crate::explicit::Error),
}

impl Error {
    /// [`Error::PlaintextUnderBypass`] for `value`, found at `path` where a
    /// ciphertext of the kinds `expected` describes must be: what the value
    /// is (its type; an encrypted binary's kind, its first byte), never
    /// what it holds.
    pub(crate) fn plaintext_under_bypass(path: &str, value: &Bson, expected: &'static str) -> Self {
        let found = match value {
            Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => match b.bytes.first() {
                None => "an empty encrypted binary".to_owned(),
                Some(0) => {
                    "an FLE1 marking (first byte 0), which holds its value in plaintext".to_owned()
                }
                Some(3) => "a Queryable Encryption placeholder (first byte 3), which holds its value in plaintext"
                    .to_owned(),
                Some(kind) => format!("a ciphertext of another kind (first byte {kind})"),
            },
            Bson::Binary(b) => format!("a plaintext binary (subtype {})", u8::from(b.subtype)),
            other => format!(
                "a plaintext {}",
                crate::ciphertext::type_name(other.element_type())
            ),
        };
        Error::PlaintextUnderBypass {
            path: path.to_owned(),
            found,
            expected,
        }
    }
}

/// What an analysis does where a value must be encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Puts a marking (FLE1) or a placeholder (Queryable Encryption)
    /// there, to be encrypted after analysis (`analyze`).
    Mark,
    /// Checks that the value there already is a ciphertext of the kind
    /// expected (the application encrypted it explicitly), else refuses
    /// the command with [`Error::PlaintextUnderBypass`]; nothing is made
    /// or counted, and what the walkers return is not sent
    /// (`verify_bypassed`, for `bypass_query_analysis`). Every other
    /// refusal of analysis stands.
    VerifyBypassed,
}

/// The state of one analysis.
pub(crate) struct Ctx<'a, 's> {
    schemas: &'a dyn Fn(&Namespace) -> NamespaceSchema<'s>,
    /// The command's database.
    pub(crate) db: &'a str,
    /// Whether values to encrypt are marked or verified already encrypted.
    pub(crate) pass: Pass,
    /// How many markings were made (each must be in the command sent).
    pub(crate) made: usize,
    /// Fields and stages no allow-list knows: refused at the end if a
    /// namespace with encrypted fields was touched.
    pub(crate) unknown: Vec<String>,
    /// Set where markings cannot be made: the namespace and why.
    pub(crate) no_markings: Option<(Namespace, &'static str)>,
    /// The first namespace with encrypted fields the command touches.
    encrypted: Option<Namespace>,
    /// How many Queryable Encryption placeholders were made (each must
    /// be in the command sent).
    #[cfg(feature = "qe")]
    pub(crate) placeholders: usize,
    /// The `payloadId` of the next range predicate: mongocryptd numbers
    /// them from 0 in each command.
    #[cfg(feature = "qe")]
    pub(crate) next_payload_id: i32,
}

/// What a namespace the command touches is.
#[derive(Clone, Copy)]
pub(crate) enum Resolved<'s> {
    /// FLE1: its schema, or none.
    Fle1(Option<&'s EncryptionSchema>),
    /// A Queryable Encryption collection, its query types all supported.
    #[cfg(feature = "qe")]
    Queryable(&'s EncryptedFields),
}

impl<'a, 's> Ctx<'a, 's> {
    /// The state before anything of a command run on `db` is analysed.
    pub(crate) fn new(
        db: &'a str,
        schemas: &'a dyn Fn(&Namespace) -> NamespaceSchema<'s>,
        pass: Pass,
    ) -> Self {
        Ctx {
            schemas,
            db,
            pass,
            made: 0,
            unknown: Vec::new(),
            no_markings: None,
            encrypted: None,
            #[cfg(feature = "qe")]
            placeholders: 0,
            #[cfg(feature = "qe")]
            next_payload_id: 0,
        }
    }

    /// The first namespace with encrypted fields the command touched.
    pub(crate) fn encrypted(&self) -> Option<&Namespace> {
        self.encrypted.as_ref()
    }

    /// What `ns` is; refuses the command when it cannot be known, or is a
    /// Queryable Encryption collection whose query types csfle does not
    /// all implement.
    pub(crate) fn resolve(&mut self, ns: &Namespace) -> Result<Resolved<'s>, Error> {
        match (self.schemas)(ns) {
            NamespaceSchema::Known(s) => {
                if self.encrypted.is_none() && s.is_some_and(|s| s.has_encrypted_fields()) {
                    self.encrypted = Some(ns.clone());
                }
                Ok(Resolved::Fle1(s))
            }
            #[cfg(feature = "qe")]
            NamespaceSchema::Queryable(fields) => {
                fields
                    .check_supported()
                    .map_err(|source| Error::EncryptedFields {
                        ns: ns.to_string(),
                        source: Box::new(source),
                    })?;
                if self.encrypted.is_none() && !fields.fields().is_empty() {
                    self.encrypted = Some(ns.clone());
                }
                Ok(Resolved::Queryable(fields))
            }
            NamespaceSchema::Unknown => Err(Error::SchemaUnavailable(ns.clone())),
        }
    }

    /// The FLE1 schema of `ns`, for the walkers of FLE1 commands;
    /// refuses the command when it cannot be known, or is a Queryable
    /// Encryption collection (named in a join, a union, a view or a
    /// pipeline write: nothing there encrypts for it).
    pub(crate) fn schema(&mut self, ns: &Namespace) -> Result<Option<&'s EncryptionSchema>, Error> {
        self.resolve(ns)?.fle1(ns)
    }
}

impl<'s> Resolved<'s> {
    /// The FLE1 schema of `ns`, what this is; a Queryable Encryption
    /// collection is refused (the FLE1 walkers cannot encrypt for it).
    #[cfg_attr(not(feature = "qe"), allow(unused_variables))]
    pub(crate) fn fle1(self, ns: &Namespace) -> Result<Option<&'s EncryptionSchema>, Error> {
        match self {
            Resolved::Fle1(s) => Ok(s),
            #[cfg(feature = "qe")]
            Resolved::Queryable(_) => Err(Error::QueryableCollection {
                ns: ns.to_string(),
                what: "a command on FLE1 or unencrypted collections names it".to_owned(),
            }),
        }
    }
}

/// Runs `f` with markings refused: the documents are another collection's,
/// or the pipeline is stored on the server.
pub(crate) fn without_markings<'s, T>(
    cx: &mut Ctx<'_, 's>,
    ns: &Namespace,
    what: &'static str,
    f: impl FnOnce(&mut Ctx<'_, 's>) -> Result<T, Error>,
) -> Result<T, Error> {
    let before = cx.no_markings.replace((ns.clone(), what));
    let r = f(cx);
    cx.no_markings = before;
    r
}
