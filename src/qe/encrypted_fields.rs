//! A collection's `encryptedFields`: which fields automatic Queryable
//! Encryption encrypts, with which key, and which queries each supports.
//!
//! The document comes from the client's `encryptedFieldsMap`, from the
//! server (a collection's `options.encryptedFields` in `listCollections`),
//! or from a create-collection call:
//!
//! ```text
//! { escCollection?: "enxcol_.<coll>.esc", ecocCollection?: "enxcol_.<coll>.ecoc",
//!   fields: [ { path: "a.b", keyId: UUID | keyAltName: "name", bsonType: "string",
//!               queries?: { queryType: "equality", contention?: 8 }
//!                       | { queryType: "range", contention?, min?, max?, sparsity?,
//!                           trimFactor?, precision? }
//!                       | [ one of these ] } ] }
//! ```
//!
//! [`EncryptedFields::parse`] is strict, like the FLE1 schema parser
//! ([`crate::schema`]): a key it does not know is refused, never ignored
//! (an ignored key is a field the client would send in plaintext), and each
//! refusal is a typed [`EncryptedFieldsError`] naming the field. It checks
//! what the server checks when it creates the collection (key ids unique,
//! paths unique and not prefixes of each other, the BSON types each index
//! supports, the range options) and what libmongocrypt checks
//! (`mc-efc.c`: one of `keyId`/`keyAltName`, `keyAltName`s unique,
//! `rangePreview` refused, `strEncodeVersion`). Beyond both, it refuses:
//!
//! * keys neither defines: libmongocrypt ignores them (its
//!   `efc/efc-extraField.json` parses), the server refuses them;
//! * `queryType`s in another case (`"Equality"`): libmongocrypt compares
//!   them ignoring case;
//! * a field without `bsonType`, a `bsonType` that is no BSON type alias
//!   (`"int32"`, which libmongocrypt's `fle2-find-equality-v2` vector
//!   carries: libmongocrypt does not read `bsonType`), an empty `queries`
//!   array, duplicate key ids, an empty `keyAltName`;
//! * integers written as doubles (`contention: 8.0`), paths with an empty
//!   segment, a segment starting with `$`, a NUL byte or more than
//!   [`MAX_PATH_SEGMENTS`] segments.
//!
//! Query types csfle does not implement (text search: `prefix`, `suffix`,
//! `substring` and their `…Preview` forms; a range index on `decimal` with
//! a precision, which explicit encryption refuses too) do not fail the
//! parse: the field is marked [`FieldQueries::Unsupported`], and
//! [`EncryptedFields::check_supported`] refuses, naming the field, so that
//! every command on the collection is refused rather than sent with that
//! field in plaintext.
//!
//! Defaults are the server's: contention 8 ([`DEFAULT_CONTENTION`]),
//! sparsity 2, the trim factor libmongocrypt computes, and for a range
//! index on `int`, `long` or `date` without bounds the type's limits.
//! [`EncryptedField::insert_options`] and [`EncryptedField::query_options`]
//! turn a field into the options of [`explicit`](super::explicit)
//! encryption. [`EncryptedFields::to_document`] gives back the document
//! libmongocrypt sends in `encryptionInformation`: the one given, byte for
//! byte, with `keyAltName`s replaced by the key ids they name and the
//! state collections' default names appended.
//!
//! Nothing here is secret (paths, key ids and index bounds are sent to the
//! server in every command): errors name them.

use super::explicit::{QeAlgorithm, QeEncryptOptions, QueryType, RangeOptions};
use super::range::{DEFAULT_SPARSITY, RangeError, bit_length, encoding};
use bson::Binary;
use bson::spec::{BinarySubtype, ElementType};
use bson::{Bson, Document, RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The contention factor of an equality or range index that sets none
/// (the server's default since 7.0).
pub const DEFAULT_CONTENTION: i64 = 8;

/// The smallest sparsity of a range index.
pub const MIN_SPARSITY: i64 = 1;

/// The largest sparsity of a range index.
pub const MAX_SPARSITY: i64 = 4;

/// The most segments a field path may have: MongoDB stores no document
/// nested deeper than 100 levels.
pub const MAX_PATH_SEGMENTS: usize = 100;

/// The most fields an `encryptedFields` may list. Analysis looks fields up
/// for every command; a server could otherwise list ~10^5 of them in one
/// `listCollections` reply and make each command cost seconds of CPU.
/// Collections with more than a few dozen encrypted fields are not known.
pub const MAX_FIELDS: usize = 1_000;

/// The only `strEncodeVersion` libmongocrypt knows (its minimum and
/// latest).
const STR_ENCODE_VERSION: i32 = 1;

/// Where the document is read from, which decides how a field may name its
/// key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseMode {
    /// The client's `encryptedFieldsMap`: `keyId` (a UUID) or `keyAltName`
    /// (resolved through the key vault, libmongocrypt 1.18+).
    Map,
    /// A collection's `encryptedFields` read from the server: `keyId` only,
    /// the form the server stores.
    Remote,
    /// The `encryptedFields` of a create-collection call: `keyId` (a
    /// UUID), `keyAltName`, or `keyId: null` for a key the
    /// create-encrypted-collection helper creates.
    Create,
}

impl ParseMode {
    fn name(self) -> &'static str {
        match self {
            ParseMode::Map => "an encryptedFieldsMap",
            ParseMode::Remote => "a collection's encryptedFields from the server",
            ParseMode::Create => "a create-collection call",
        }
    }
}

/// How a field names its data key, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyIdOrAltName {
    /// `keyId`: the key's UUID, its 16 bytes (as the rest of [`qe`](super)
    /// names keys: `crate::KeyId::from_bytes` makes one a `KeyId`).
    Id([u8; 16]),
    /// `keyAltName`: one of the key's alternate names.
    AltName(String),
    /// `keyId: null` ([`ParseMode::Create`] only): a key to create.
    ToCreate,
}

/// A query type csfle does not implement. A field with one makes every
/// command on its collection refused ([`EncryptedFields::check_supported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsupportedQuery {
    /// Text search, `prefix`.
    Prefix,
    /// Text search, `suffix`.
    Suffix,
    /// Text search, `substring`.
    Substring,
    /// Text search, `prefixPreview` (server 8.2's public preview).
    PrefixPreview,
    /// Text search, `suffixPreview`.
    SuffixPreview,
    /// Text search, `substringPreview`.
    SubstringPreview,
    /// A `range` index on `decimal` with `precision`: it needs
    /// libmongocrypt's decimal arithmetic, which csfle does not reproduce
    /// ([`RangeError::Decimal128PrecisionUnsupported`]).
    Decimal128RangePrecision,
}

impl UnsupportedQuery {
    /// The query type as `encryptedFields` writes it (`range` for a
    /// Decimal128 range index with a precision).
    pub const fn name(self) -> &'static str {
        match self {
            UnsupportedQuery::Prefix => "prefix",
            UnsupportedQuery::Suffix => "suffix",
            UnsupportedQuery::Substring => "substring",
            UnsupportedQuery::PrefixPreview => "prefixPreview",
            UnsupportedQuery::SuffixPreview => "suffixPreview",
            UnsupportedQuery::SubstringPreview => "substringPreview",
            UnsupportedQuery::Decimal128RangePrecision => "range",
        }
    }

    /// The text-search query type named `name` (exact case).
    fn text(name: &str) -> Option<Self> {
        Some(match name {
            "prefix" => UnsupportedQuery::Prefix,
            "suffix" => UnsupportedQuery::Suffix,
            "substring" => UnsupportedQuery::Substring,
            "prefixPreview" => UnsupportedQuery::PrefixPreview,
            "suffixPreview" => UnsupportedQuery::SuffixPreview,
            "substringPreview" => UnsupportedQuery::SubstringPreview,
            _ => return None,
        })
    }
}

impl fmt::Display for UnsupportedQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnsupportedQuery::Decimal128RangePrecision => {
                f.write_str("range queries on decimal with a precision")
            }
            other => write!(f, "'{}' queries (text search)", other.name()),
        }
    }
}

/// The first field (in document order) whose query type csfle does not
/// implement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The field's path.
    pub field: String,
    /// Its query type.
    pub query_type: UnsupportedQuery,
}

/// A range index, its defaults filled.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeIndex {
    contention: i64,
    options: RangeOptions,
}

impl RangeIndex {
    /// The maximum contention factor.
    pub fn contention(&self) -> i64 {
        self.contention
    }

    /// The options of explicit range encryption for this index: `min` and
    /// `max` as given, or for `int`, `long` and `date` the type's limits
    /// when absent (`double` and `decimal` without a precision take
    /// theirs in [`explicit`](super::explicit)); `sparsity` as given or
    /// 2; `trim_factor` and `precision` as given.
    pub fn options(&self) -> &RangeOptions {
        &self.options
    }
}

/// The queries a field supports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldQueries {
    /// No `queries`: encrypted, not queryable (randomized).
    Unindexed,
    /// `queryType: "equality"`.
    Equality {
        /// The maximum contention factor.
        contention: i64,
    },
    /// `queryType: "range"` (boxed: its options are large).
    Range(Box<RangeIndex>),
    /// A query type csfle does not implement.
    Unsupported(UnsupportedQuery),
}

/// One encrypted field of an [`EncryptedFields`].
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptedField {
    path: String,
    key: KeyIdOrAltName,
    /// The id a `keyAltName` or `keyId: null` was resolved to.
    resolved: Option<[u8; 16]>,
    bson_type: ElementType,
    queries: FieldQueries,
}

impl EncryptedField {
    /// The dotted path of the field.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The key as written.
    pub fn key(&self) -> &KeyIdOrAltName {
        &self.key
    }

    /// The key's id: the `keyId` written, or the id a `keyAltName` or
    /// `keyId: null` was resolved to ([`EncryptedFields::resolve_keys`]);
    /// `None` before resolution.
    pub fn key_id(&self) -> Option<[u8; 16]> {
        match self.key {
            KeyIdOrAltName::Id(id) => Some(id),
            _ => self.resolved,
        }
    }

    /// The declared BSON type (`bsonType`).
    pub fn bson_type(&self) -> ElementType {
        self.bson_type
    }

    /// The queries the field supports.
    pub fn queries(&self) -> &FieldQueries {
        &self.queries
    }

    /// The maximum contention factor of an equality or range index.
    pub fn contention(&self) -> Option<i64> {
        match &self.queries {
            FieldQueries::Equality { contention } => Some(*contention),
            FieldQueries::Range(range) => Some(range.contention),
            FieldQueries::Unindexed | FieldQueries::Unsupported(_) => None,
        }
    }

    /// The explicit-encryption algorithm of the field; an error for a
    /// query type csfle does not implement.
    pub fn algorithm(&self) -> Result<QeAlgorithm, EncryptedFieldsError> {
        match &self.queries {
            FieldQueries::Unindexed => Ok(QeAlgorithm::Unindexed),
            FieldQueries::Equality { .. } => Ok(QeAlgorithm::Indexed),
            FieldQueries::Range(_) => Ok(QeAlgorithm::Range),
            FieldQueries::Unsupported(query_type) => Err(EncryptedFieldsError::Unsupported {
                field: self.path.clone(),
                query_type: *query_type,
            }),
        }
    }

    /// The options of explicit encryption for a value stored in the field
    /// (insert, update): algorithm, contention and range options.
    pub fn insert_options(&self) -> Result<QeEncryptOptions<'_>, EncryptedFieldsError> {
        let options = QeEncryptOptions::new(self.algorithm()?);
        Ok(match &self.queries {
            FieldQueries::Equality { contention } => options.with_contention_factor(*contention),
            FieldQueries::Range(range) => options
                .with_contention_factor(range.contention)
                .with_range_options(&range.options),
            FieldQueries::Unindexed | FieldQueries::Unsupported(_) => options,
        })
    }

    /// The options of explicit encryption for a query on the field: the
    /// insert options with the field's query type. An unindexed field
    /// cannot be queried.
    pub fn query_options(&self) -> Result<QeEncryptOptions<'_>, EncryptedFieldsError> {
        let options = self.insert_options()?;
        match &self.queries {
            FieldQueries::Equality { .. } => Ok(options.with_query_type(QueryType::Equality)),
            FieldQueries::Range(_) => Ok(options.with_query_type(QueryType::Range)),
            FieldQueries::Unindexed | FieldQueries::Unsupported(_) => {
                Err(EncryptedFieldsError::NotQueryable {
                    field: self.path.clone(),
                })
            }
        }
    }

    /// The field's document as libmongocrypt sends it: `source` (the
    /// field as written) with a `keyAltName` replaced by `keyId` at the
    /// end, or a `keyId: null` replaced in place.
    fn rebuilt(&self, source: &RawDocument) -> Result<RawDocumentBuf, EncryptedFieldsError> {
        let id = self
            .key_id()
            .ok_or_else(|| EncryptedFieldsError::KeyNotResolved {
                field: self.path.clone(),
            })?;
        let mut out = RawDocumentBuf::new();
        for item in source {
            let (key, value) = item.map_err(|_| invalid_bson(&field_at(&self.path)))?;
            match (&self.key, key) {
                (KeyIdOrAltName::AltName(_), "keyAltName") => {}
                (KeyIdOrAltName::ToCreate, "keyId") => out.append(key, uuid(id)),
                _ => out.append_ref(key, value),
            }
        }
        if matches!(self.key, KeyIdOrAltName::AltName(_)) {
            out.append("keyId", uuid(id));
        }
        Ok(out)
    }
}

/// A parsed, validated `encryptedFields` document.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptedFields {
    /// The document as given, for [`EncryptedFields::to_document`].
    source: RawDocumentBuf,
    mode: ParseMode,
    esc_collection: Option<String>,
    ecoc_collection: Option<String>,
    fields: Vec<EncryptedField>,
    unsupported: Option<Unsupported>,
}

/// Why an `encryptedFields` document is refused, or cannot be used. Every
/// variant names where: the field's path (`field`), or a location (`at`:
/// `encryptedFields`, `field 'a.b'`, `fields.3` for a field whose path is
/// unreadable, `field 'a.b' queries`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptedFieldsError {
    /// The BSON is malformed.
    #[error("encryptedFields: invalid BSON in {at}")]
    InvalidBson {
        /// Where.
        at: String,
    },
    /// A key neither the server nor libmongocrypt defines there.
    #[error("encryptedFields: unknown key '{key}' in {at}")]
    UnknownKey {
        /// Where.
        at: String,
        /// The key.
        key: String,
    },
    /// A key given twice.
    #[error("encryptedFields: key '{key}' given twice in {at}")]
    DuplicateKey {
        /// Where.
        at: String,
        /// The key.
        key: String,
    },
    /// A required key is absent.
    #[error("encryptedFields: {at} has no '{key}'")]
    MissingKey {
        /// Where.
        at: String,
        /// The key.
        key: &'static str,
    },
    /// A value of the wrong BSON type.
    #[error("encryptedFields: '{key}' in {at} must be {expected}")]
    WrongType {
        /// Where.
        at: String,
        /// The key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// An element of `fields` that is not a document.
    #[error("encryptedFields: fields.{index} must be a document")]
    FieldNotDocument {
        /// Its index in `fields`.
        index: usize,
    },
    /// More fields than [`MAX_FIELDS`].
    #[error("encryptedFields: {count} fields, more than the {max} csfle reads")]
    TooManyFields {
        /// How many the document lists.
        count: usize,
        /// [`MAX_FIELDS`].
        max: usize,
    },
    /// An empty state collection name, or one with a NUL byte.
    #[error("encryptedFields: '{key}' {reason}")]
    InvalidStateCollection {
        /// `escCollection`, `ecocCollection` or `eccCollection`.
        key: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `strEncodeVersion` libmongocrypt does not know.
    #[error("encryptedFields: 'strEncodeVersion' of {version} is not supported")]
    UnsupportedStrEncodeVersion {
        /// The version given.
        version: i32,
    },
    /// A path that cannot name an encrypted field.
    #[error("encryptedFields: field path '{path}' is invalid: {reason}")]
    InvalidPath {
        /// The path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two fields with the same path.
    #[error("encryptedFields: duplicate field path '{path}'")]
    DuplicatePath {
        /// The path.
        path: String,
    },
    /// A field inside another: an encrypted field's value is one
    /// ciphertext.
    #[error(
        "encryptedFields: conflicting field paths '{prefix}' and '{path}': one is a prefix of the other"
    )]
    OverlappingPaths {
        /// The longer path.
        path: String,
        /// The field it is inside.
        prefix: String,
    },
    /// A field with neither `keyId` nor `keyAltName`.
    #[error("encryptedFields: field '{field}' has neither 'keyId' nor 'keyAltName'")]
    NoKey {
        /// The field.
        field: String,
    },
    /// A field with both `keyId` and `keyAltName`.
    #[error("encryptedFields: field '{field}' has both 'keyId' and 'keyAltName': give one")]
    KeyIdAndKeyAltName {
        /// The field.
        field: String,
    },
    /// A `keyId` that is a binary but not a UUID (subtype 4, 16 bytes).
    #[error("encryptedFields: 'keyId' of field '{field}' must be a UUID (binary subtype 4)")]
    KeyIdNotUuid {
        /// The field.
        field: String,
    },
    /// A `keyAltName` where the document cannot carry one.
    #[error("encryptedFields: field '{field}': 'keyAltName' is not allowed in {mode}")]
    KeyAltNameNotAllowed {
        /// The field.
        field: String,
        /// Where the document comes from.
        mode: &'static str,
    },
    /// `keyId: null` outside a create-collection call.
    #[error(
        "encryptedFields: field '{field}': 'keyId: null' (a key to create) is only allowed in a create-collection call, not in {mode}"
    )]
    KeyIdNullNotAllowed {
        /// The field.
        field: String,
        /// Where the document comes from.
        mode: &'static str,
    },
    /// An empty `keyAltName`.
    #[error("encryptedFields: 'keyAltName' of field '{field}' is empty")]
    EmptyKeyAltName {
        /// The field.
        field: String,
    },
    /// Two fields with the same key.
    #[error("encryptedFields: fields '{other}' and '{field}' use the same key id")]
    DuplicateKeyId {
        /// The later field.
        field: String,
        /// The earlier one.
        other: String,
    },
    /// Two fields with the same `keyAltName`.
    #[error("encryptedFields: fields '{other}' and '{field}' use the same keyAltName '{name}'")]
    DuplicateKeyAltName {
        /// The later field.
        field: String,
        /// The earlier one.
        other: String,
        /// The name.
        name: String,
    },
    /// A `bsonType` that is no BSON type alias.
    #[error("encryptedFields: field '{field}': unknown bsonType '{bson_type}'")]
    UnknownBsonType {
        /// The field.
        field: String,
        /// The name given.
        bson_type: String,
    },
    /// A `bsonType` the field's index does not support.
    #[error("encryptedFields: field '{field}': bsonType '{bson_type}' is not supported by {index}")]
    BsonTypeNotAllowed {
        /// The field.
        field: String,
        /// The type.
        bson_type: &'static str,
        /// The index: `an unindexed field`, `an equality index`, …
        index: &'static str,
    },
    /// A `queryType` neither the server nor libmongocrypt defines (case
    /// counts).
    #[error("encryptedFields: field '{field}': unknown queryType '{query_type}'")]
    UnknownQueryType {
        /// The field.
        field: String,
        /// The name given.
        query_type: String,
    },
    /// `rangePreview`, removed in favour of `range` (libmongocrypt's
    /// refusal).
    #[error(
        "Cannot use field '{field}' with 'rangePreview' queries. 'rangePreview' is unsupported. Use 'range' instead. 'range' is not compatible with 'rangePreview' and requires recreating the collection."
    )]
    RangePreviewRemoved {
        /// The field.
        field: String,
    },
    /// A `queries` array without exactly one query (two are allowed only
    /// for text search, `prefix` with `suffix`).
    #[error("encryptedFields: field '{field}': exactly one query type must be given, got {count}")]
    QueryCount {
        /// The field.
        field: String,
        /// The number of queries given.
        count: usize,
    },
    /// An option the query type does not take (`sparsity` on equality…).
    #[error("encryptedFields: field '{field}': '{key}' is not allowed for a {query_type} index")]
    QueryKeyNotAllowed {
        /// The field.
        field: String,
        /// The option.
        key: &'static str,
        /// The query type.
        query_type: &'static str,
    },
    /// A negative contention factor, or `i64::MAX`.
    #[error(
        "encryptedFields: field '{field}': contention must be non-negative and below 2^63 - 1, got {contention}"
    )]
    ContentionOutOfRange {
        /// The field.
        field: String,
        /// The value given.
        contention: i64,
    },
    /// A sparsity outside `1..=4`.
    #[error("encryptedFields: field '{field}': sparsity must be between 1 and 4, got {sparsity}")]
    SparsityOutOfRange {
        /// The field.
        field: String,
        /// The value given.
        sparsity: i64,
    },
    /// A trim factor that is negative or not below the domain's bits.
    #[error(
        "encryptedFields: field '{field}': trimFactor must be >= 0 and less than the {bits} bits of the domain, got {trim_factor}"
    )]
    TrimFactorOutOfRange {
        /// The field.
        field: String,
        /// The value given.
        trim_factor: i64,
        /// The domain's bit length.
        bits: u32,
    },
    /// A negative precision, or one above `i32::MAX`.
    #[error(
        "encryptedFields: field '{field}': precision must be a non-negative int32, got {precision}"
    )]
    PrecisionOutOfRange {
        /// The field.
        field: String,
        /// The value given.
        precision: i64,
    },
    /// A precision on a type other than `double` and `decimal`.
    #[error(
        "encryptedFields: field '{field}': precision is only allowed for double and decimal, not '{bson_type}'"
    )]
    PrecisionNotAllowed {
        /// The field.
        field: String,
        /// The field's type.
        bson_type: &'static str,
    },
    /// A `min` or `max` of another type than the field's.
    #[error(
        "encryptedFields: field '{field}': '{bound}' is a '{bound_type}', the field is a '{bson_type}'"
    )]
    BoundTypeMismatch {
        /// The field.
        field: String,
        /// `min` or `max`.
        bound: &'static str,
        /// The bound's type.
        bound_type: &'static str,
        /// The field's type.
        bson_type: &'static str,
    },
    /// Range options that must come together but do not.
    #[error("encryptedFields: field '{field}': {requirement}")]
    BoundsIncomplete {
        /// The field.
        field: String,
        /// What must come together.
        requirement: &'static str,
    },
    /// `min` not below `max`.
    #[error("encryptedFields: field '{field}': min ({min}) must be less than max ({max})")]
    MinNotBelowMax {
        /// The field.
        field: String,
        /// The minimum.
        min: String,
        /// The maximum.
        max: String,
    },
    /// An infinite or NaN double bound.
    #[error("encryptedFields: field '{field}': '{bound}' must be a finite double")]
    BoundNotFinite {
        /// The field.
        field: String,
        /// `min` or `max`.
        bound: &'static str,
    },
    /// Range options the range encoding refuses (libmongocrypt's words).
    #[error("encryptedFields: field '{field}': {source}")]
    Range {
        /// The field.
        field: String,
        /// The encoding's refusal.
        #[source]
        source: RangeError,
    },
    /// A field whose query type csfle does not implement: every command on
    /// the collection is refused.
    #[error(
        "field '{field}' of the collection's encryptedFields has {query_type}, which csfle does not support: every command on this collection is refused"
    )]
    Unsupported {
        /// The field.
        field: String,
        /// Its query type.
        query_type: UnsupportedQuery,
    },
    /// A `keyAltName` or `keyId: null` not yet resolved to a key id.
    #[error("encryptedFields: the key of field '{field}' is not resolved to a key id")]
    KeyNotResolved {
        /// The field.
        field: String,
    },
    /// A query on an unindexed field.
    #[error("encryptedFields: field '{field}' is not indexed: it cannot be queried")]
    NotQueryable {
        /// The field.
        field: String,
    },
    /// A collection name that is empty or holds a NUL byte.
    #[error("encryptedFields: invalid collection name '{collection}'")]
    InvalidCollectionName {
        /// The name.
        collection: String,
    },
}

/// Why a client's `encryptedFieldsMap` (`{"db.coll": <encryptedFields>,
/// …}`) is refused ([`EncryptedFields::parse_map`]). Every variant names
/// the entry's key ([`EncryptedFieldsMapError::namespace`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptedFieldsMapError {
    /// A key that is not `db.collection` (both parts non-empty).
    #[error("encryptedFieldsMap: key '{namespace}' must be db.collection")]
    InvalidNamespace {
        /// The key.
        namespace: String,
    },
    /// An entry that is not a document.
    #[error("encryptedFieldsMap: the entry for '{namespace}' must be an encryptedFields document")]
    NotADocument {
        /// The entry's key.
        namespace: String,
    },
    /// An entry [`EncryptedFields::parse`] refuses, read as
    /// [`ParseMode::Map`].
    #[error("encryptedFieldsMap: the entry for '{namespace}': {source}")]
    Entry {
        /// The entry's key.
        namespace: String,
        /// Why the entry is refused.
        #[source]
        source: EncryptedFieldsError,
    },
}

impl EncryptedFieldsMapError {
    /// The key of the entry refused.
    pub fn namespace(&self) -> &str {
        match self {
            EncryptedFieldsMapError::InvalidNamespace { namespace }
            | EncryptedFieldsMapError::NotADocument { namespace }
            | EncryptedFieldsMapError::Entry { namespace, .. } => namespace,
        }
    }
}

use EncryptedFieldsError as E;

fn invalid_bson(at: &str) -> E {
    E::InvalidBson { at: at.to_owned() }
}

/// A key id as BSON: a UUID (binary subtype 4).
fn uuid(id: [u8; 16]) -> Binary {
    Binary {
        subtype: BinarySubtype::Uuid,
        bytes: id.to_vec(),
    }
}

fn field_at(path: &str) -> String {
    format!("field '{path}'")
}

const TOP: &str = "encryptedFields";

/// The `$type` aliases of the BSON types.
const TYPE_ALIASES: [(&str, ElementType); 21] = [
    ("double", ElementType::Double),
    ("string", ElementType::String),
    ("object", ElementType::EmbeddedDocument),
    ("array", ElementType::Array),
    ("binData", ElementType::Binary),
    ("undefined", ElementType::Undefined),
    ("objectId", ElementType::ObjectId),
    ("bool", ElementType::Boolean),
    ("date", ElementType::DateTime),
    ("null", ElementType::Null),
    ("regex", ElementType::RegularExpression),
    ("dbPointer", ElementType::DbPointer),
    ("javascript", ElementType::JavaScriptCode),
    ("symbol", ElementType::Symbol),
    ("javascriptWithScope", ElementType::JavaScriptCodeWithScope),
    ("int", ElementType::Int32),
    ("timestamp", ElementType::Timestamp),
    ("long", ElementType::Int64),
    ("decimal", ElementType::Decimal128),
    ("minKey", ElementType::MinKey),
    ("maxKey", ElementType::MaxKey),
];

fn type_from_alias(name: &str) -> Option<ElementType> {
    TYPE_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, ty)| *ty)
}

fn type_alias(ty: ElementType) -> &'static str {
    TYPE_ALIASES
        .iter()
        .find(|(_, t)| *t == ty)
        .map_or("unknown", |(alias, _)| *alias)
}

/// The types an unindexed field may hold (the server's
/// `isFLE2UnindexedSupportedType`): all but the singletons.
fn unindexed_type(ty: ElementType) -> bool {
    use ElementType::*;
    matches!(
        ty,
        Binary
            | JavaScriptCode
            | RegularExpression
            | String
            | Int32
            | Int64
            | Boolean
            | Timestamp
            | DateTime
            | ObjectId
            | Array
            | EmbeddedDocument
            | Decimal128
            | Double
            | Symbol
            | JavaScriptCodeWithScope
            | DbPointer
    )
}

/// The types of an equality index (the server's
/// `isFLE2EqualityIndexedSupportedType`, libmongocrypt's
/// `is_fle2_equality_indexed_supported_type`): the deterministic ones.
fn equality_type(ty: ElementType) -> bool {
    use ElementType::*;
    matches!(
        ty,
        Binary
            | JavaScriptCode
            | RegularExpression
            | String
            | Int32
            | Int64
            | Boolean
            | Timestamp
            | DateTime
            | ObjectId
            | Symbol
            | DbPointer
    )
}

/// The types of a range index.
fn range_type(ty: ElementType) -> bool {
    use ElementType::*;
    matches!(ty, Int32 | Int64 | DateTime | Double | Decimal128)
}

/// What reading a document's keys found wrong first.
#[derive(Clone, Copy)]
enum KeyProblem<'a> {
    Invalid,
    Unknown(&'a str),
    Duplicate(&'a str),
}

/// The values of a document's keys, each one of `names`, and the first
/// problem met (read on, so that a field's path is known for the error).
struct Slots<'a, const N: usize> {
    values: [Option<RawBsonRef<'a>>; N],
    problem: Option<KeyProblem<'a>>,
}

fn read_slots<'a, const N: usize>(doc: &'a RawDocument, names: &[&str; N]) -> Slots<'a, N> {
    let mut values: [Option<RawBsonRef<'a>>; N] = [None; N];
    let mut problem = None;
    for item in doc {
        let Ok((key, value)) = item else {
            problem = Some(KeyProblem::Invalid);
            break;
        };
        match names.iter().position(|n| *n == key) {
            None => {
                if problem.is_none() {
                    problem = Some(KeyProblem::Unknown(key));
                }
            }
            Some(i) => {
                if values[i].replace(value).is_some() && problem.is_none() {
                    problem = Some(KeyProblem::Duplicate(key));
                }
            }
        }
    }
    Slots { values, problem }
}

impl<const N: usize> Slots<'_, N> {
    fn check(&self, at: &str) -> Result<(), E> {
        match self.problem {
            None => Ok(()),
            Some(KeyProblem::Invalid) => Err(invalid_bson(at)),
            Some(KeyProblem::Unknown(key)) => Err(E::UnknownKey {
                at: at.to_owned(),
                key: key.to_owned(),
            }),
            Some(KeyProblem::Duplicate(key)) => Err(E::DuplicateKey {
                at: at.to_owned(),
                key: key.to_owned(),
            }),
        }
    }
}

/// An int32 or int64 (the server's `exactInt64`, without doubles).
fn integer(at: &str, key: &'static str, value: RawBsonRef<'_>) -> Result<i64, E> {
    match value {
        RawBsonRef::Int32(i) => Ok(i64::from(i)),
        RawBsonRef::Int64(i) => Ok(i),
        _ => Err(E::WrongType {
            at: at.to_owned(),
            key,
            expected: "an int32 or int64",
        }),
    }
}

fn state_collection(key: &'static str, value: Option<RawBsonRef<'_>>) -> Result<Option<String>, E> {
    // The server refuses names outside `enxcol_.<coll>.esc` when it creates
    // the collection (with its own message); libmongocrypt's vectors use
    // other names, and the drop helper must still reach them.
    match value {
        None => Ok(None),
        Some(RawBsonRef::String("")) => Err(E::InvalidStateCollection {
            key,
            reason: "is empty",
        }),
        Some(RawBsonRef::String(s)) if s.contains('\0') => Err(E::InvalidStateCollection {
            key,
            reason: "contains a NUL byte",
        }),
        Some(RawBsonRef::String(s)) => Ok(Some(s.to_owned())),
        Some(_) => Err(E::WrongType {
            at: TOP.to_owned(),
            key,
            expected: "a string",
        }),
    }
}

/// What is wrong with `path` as an encrypted field's path, if anything.
fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("it is empty");
    }
    if path.contains('\0') {
        return Some("it contains a NUL byte");
    }
    for (i, segment) in path.split('.').enumerate() {
        if i >= MAX_PATH_SEGMENTS {
            return Some("it has more than 100 segments");
        }
        if segment.is_empty() {
            return Some("it has an empty segment");
        }
        if segment.starts_with('$') {
            return Some("a segment starts with '$'");
        }
        if i == 0 && segment == "_id" {
            return Some("'_id' and its subfields cannot be encrypted");
        }
    }
    None
}

/// One entry of `queries`, read.
enum Query<'a> {
    Equality { contention: i64 },
    Range(RangeQuery<'a>),
    Text(UnsupportedQuery),
}

/// The options of a `range` query as written, integers type-checked;
/// [`range_index`] checks them against the field's type.
struct RangeQuery<'a> {
    contention: i64,
    min: Option<RawBsonRef<'a>>,
    max: Option<RawBsonRef<'a>>,
    sparsity: Option<i64>,
    trim_factor: Option<i64>,
    precision: Option<i64>,
}

const QUERY_KEYS: [&str; 12] = [
    "queryType",
    "contention",
    "min",
    "max",
    "sparsity",
    "trimFactor",
    "precision",
    "strMaxLength",
    "strMinQueryLength",
    "strMaxQueryLength",
    "caseSensitive",
    "diacriticSensitive",
];

/// The first of `keys` that is present.
fn first_present(keys: &[(&'static str, Option<RawBsonRef<'_>>)]) -> Option<&'static str> {
    keys.iter().find(|(_, v)| v.is_some()).map(|(k, _)| *k)
}

fn key_not_allowed(field: &str, key: &'static str, query_type: &'static str) -> E {
    E::QueryKeyNotAllowed {
        field: field.to_owned(),
        key,
        query_type,
    }
}

/// One query of a field's `queries`: its keys (an allow-list), its
/// `queryType` (exact case) and `contention`, then the options of that
/// query type, any other type's option refused.
fn parse_query<'a>(doc: &'a RawDocument, field: &str) -> Result<Query<'a>, E> {
    let at = format!("field '{field}' queries");
    let slots = read_slots(doc, &QUERY_KEYS);
    slots.check(&at)?;
    let [
        query_type,
        contention,
        min,
        max,
        sparsity,
        trim_factor,
        precision,
        str_max_length,
        str_min_query_length,
        str_max_query_length,
        case_sensitive,
        diacritic_sensitive,
    ] = slots.values;
    let query_type = read_query_type(query_type, &at)?;
    let contention = read_contention(contention, field, &at)?;
    let range_keys = [
        ("min", min),
        ("max", max),
        ("sparsity", sparsity),
        ("trimFactor", trim_factor),
        ("precision", precision),
    ];
    let text_keys = [
        ("strMaxLength", str_max_length),
        ("strMinQueryLength", str_min_query_length),
        ("strMaxQueryLength", str_max_query_length),
        ("caseSensitive", case_sensitive),
        ("diacriticSensitive", diacritic_sensitive),
    ];
    match query_type {
        "equality" => {
            if let Some(key) = first_present(&range_keys).or_else(|| first_present(&text_keys)) {
                return Err(key_not_allowed(field, key, "equality"));
            }
            Ok(Query::Equality { contention })
        }
        "range" => {
            if let Some(key) = first_present(&text_keys) {
                return Err(key_not_allowed(field, key, "range"));
            }
            let int = |key: &'static str, v: Option<RawBsonRef<'a>>| {
                v.map(|v| integer(&at, key, v)).transpose()
            };
            Ok(Query::Range(RangeQuery {
                contention,
                min,
                max,
                sparsity: int("sparsity", sparsity)?,
                trim_factor: int("trimFactor", trim_factor)?,
                precision: int("precision", precision)?,
            }))
        }
        "rangePreview" => Err(E::RangePreviewRemoved {
            field: field.to_owned(),
        }),
        other => {
            let Some(text) = UnsupportedQuery::text(other) else {
                return Err(E::UnknownQueryType {
                    field: field.to_owned(),
                    query_type: other.to_owned(),
                });
            };
            if let Some(key) = first_present(&range_keys) {
                return Err(key_not_allowed(field, key, text.name()));
            }
            check_text_options(&at, text_keys)?;
            Ok(Query::Text(text))
        }
    }
}

/// A query's `queryType`, as written.
fn read_query_type<'a>(value: Option<RawBsonRef<'a>>, at: &str) -> Result<&'a str, E> {
    match value {
        None => Err(E::MissingKey {
            at: at.to_owned(),
            key: "queryType",
        }),
        Some(RawBsonRef::String(s)) => Ok(s),
        Some(_) => Err(E::WrongType {
            at: at.to_owned(),
            key: "queryType",
            expected: "a string",
        }),
    }
}

/// A query's `contention`: from 0 to `i64::MAX - 1`, [`DEFAULT_CONTENTION`]
/// when absent.
fn read_contention(value: Option<RawBsonRef<'_>>, field: &str, at: &str) -> Result<i64, E> {
    let Some(value) = value else {
        return Ok(DEFAULT_CONTENTION);
    };
    let contention = integer(at, "contention", value)?;
    if contention < 0 || contention == i64::MAX {
        return Err(E::ContentionOutOfRange {
            field: field.to_owned(),
            contention,
        });
    }
    Ok(contention)
}

/// The options of a text-search query, in `QUERY_KEYS` order: only their
/// types are checked, as the field is refused for use.
fn check_text_options(
    at: &str,
    options: [(&'static str, Option<RawBsonRef<'_>>); 5],
) -> Result<(), E> {
    let [
        max_length,
        min_query_length,
        max_query_length,
        case_sensitive,
        diacritic_sensitive,
    ] = options;
    for (key, value) in [max_length, min_query_length, max_query_length] {
        if let Some(v) = value {
            integer(at, key, v)?;
        }
    }
    for (key, value) in [case_sensitive, diacritic_sensitive] {
        if let Some(v) = value
            && !matches!(v, RawBsonRef::Boolean(_))
        {
            return Err(E::WrongType {
                at: at.to_owned(),
                key,
                expected: "a bool",
            });
        }
    }
    Ok(())
}

/// A bound's value as libmongocrypt prints it (index parameters, not
/// secret).
fn show(v: RawBsonRef<'_>) -> String {
    match v {
        RawBsonRef::Int32(i) => i.to_string(),
        RawBsonRef::Int64(i) => i.to_string(),
        RawBsonRef::DateTime(d) => d.timestamp_millis().to_string(),
        RawBsonRef::Double(d) => d.to_string(),
        other => type_alias(other.element_type()).to_owned(),
    }
}

/// A field's type refused by its index.
fn type_not_allowed(field: &str, ty: ElementType, index: &'static str) -> E {
    E::BsonTypeNotAllowed {
        field: field.to_owned(),
        bson_type: type_alias(ty),
        index,
    }
}

/// Checks a range index and fills its defaults; a Decimal128 index with a
/// precision is [`UnsupportedQuery::Decimal128RangePrecision`]. The checks
/// run in this order, the first refusal reported: the field's type,
/// `sparsity`, `precision`, the bounds' types, the bounds, `trimFactor`
/// (which needs the domain the bounds make).
fn range_index(field: &str, ty: ElementType, query: &RangeQuery<'_>) -> Result<FieldQueries, E> {
    if !range_type(ty) {
        return Err(type_not_allowed(field, ty, "a range index"));
    }
    let sparsity = range_sparsity(field, query.sparsity)?;
    let precision = range_precision(field, ty, query.precision)?;
    check_bound_types(field, ty, query.min, query.max)?;
    // Its domain needs libmongocrypt's decimal arithmetic, which csfle does
    // not reproduce: the field is marked (every command on the collection
    // refused), its trim factor not read.
    if ty == ElementType::Decimal128
        && precision.is_some()
        && query.min.is_some()
        && query.max.is_some()
    {
        return Ok(FieldQueries::Unsupported(
            UnsupportedQuery::Decimal128RangePrecision,
        ));
    }
    let domain = range_domain(field, ty, query.min, query.max, precision)?;
    let trim_factor = range_trim_factor(field, query.trim_factor, domain.bits)?;
    Ok(FieldQueries::Range(Box::new(RangeIndex {
        contention: query.contention,
        options: RangeOptions {
            min: domain.min,
            max: domain.max,
            sparsity: Some(sparsity),
            trim_factor,
            precision,
        },
    })))
}

/// `sparsity`: from [`MIN_SPARSITY`] to [`MAX_SPARSITY`], 2 when absent.
fn range_sparsity(field: &str, sparsity: Option<i64>) -> Result<i64, E> {
    match sparsity {
        None => Ok(DEFAULT_SPARSITY),
        Some(s) if (MIN_SPARSITY..=MAX_SPARSITY).contains(&s) => Ok(s),
        Some(s) => Err(E::SparsityOutOfRange {
            field: field.to_owned(),
            sparsity: s,
        }),
    }
}

/// `precision`, when given: a non-negative int32, on a `double` or
/// `decimal` field only.
fn range_precision(field: &str, ty: ElementType, precision: Option<i64>) -> Result<Option<i32>, E> {
    let Some(given) = precision else {
        return Ok(None);
    };
    let Some(precision) = i32::try_from(given).ok().filter(|p| *p >= 0) else {
        return Err(E::PrecisionOutOfRange {
            field: field.to_owned(),
            precision: given,
        });
    };
    match ty {
        ElementType::Double | ElementType::Decimal128 => Ok(Some(precision)),
        _ => Err(E::PrecisionNotAllowed {
            field: field.to_owned(),
            bson_type: type_alias(ty),
        }),
    }
}

/// `min` and `max`, when given, must be of the field's type.
fn check_bound_types(
    field: &str,
    ty: ElementType,
    min: Option<RawBsonRef<'_>>,
    max: Option<RawBsonRef<'_>>,
) -> Result<(), E> {
    for (bound, value) in [("min", min), ("max", max)] {
        if let Some(v) = value
            && v.element_type() != ty
        {
            return Err(E::BoundTypeMismatch {
                field: field.to_owned(),
                bound,
                bound_type: type_alias(v.element_type()),
                bson_type: type_alias(ty),
            });
        }
    }
    Ok(())
}

/// `trimFactor`, when given: 0, or positive and below the domain's `bits`.
/// libmongocrypt refuses a trim factor at or above the bits (a 0-bit
/// domain keeping 0); the server the same.
fn range_trim_factor(field: &str, trim_factor: Option<i64>, bits: u32) -> Result<Option<i32>, E> {
    let Some(given) = trim_factor else {
        return Ok(None);
    };
    i32::try_from(given)
        .ok()
        .filter(|t| *t == 0 || (*t > 0 && t.unsigned_abs() < bits))
        .map(Some)
        .ok_or_else(|| E::TrimFactorOutOfRange {
            field: field.to_owned(),
            trim_factor: given,
            bits,
        })
}

/// The domain of a range index: the bounds explicit encryption is given
/// (`None`: the type's own, which it fills) and the bit length of the
/// encoded domain, which the trim factor must stay below.
struct Domain {
    min: Option<Bson>,
    max: Option<Bson>,
    bits: u32,
}

const BOTH_OR_NEITHER: &str = "min and max must both be set or both be unset";
const ALL_OR_NONE: &str =
    "min, max and precision must all be set or all be unset for double and decimal";

fn bounds_incomplete(field: &str, requirement: &'static str) -> E {
    E::BoundsIncomplete {
        field: field.to_owned(),
        requirement,
    }
}

fn range_refused(field: &str, source: RangeError) -> E {
    E::Range {
        field: field.to_owned(),
        source,
    }
}

/// The domain of a range index on `ty` (a range type, with bounds of its
/// type): for `int`, `long` and `date` both bounds or neither (then the
/// type's limits); for `double` and `decimal` `min`, `max` and `precision`
/// all or none. A `decimal` index with all three does not come here
/// ([`range_index`] marks it unsupported); any other combination is
/// refused.
fn range_domain(
    field: &str,
    ty: ElementType,
    min: Option<RawBsonRef<'_>>,
    max: Option<RawBsonRef<'_>>,
    precision: Option<i32>,
) -> Result<Domain, E> {
    use ElementType::{DateTime, Decimal128, Double, Int32, Int64};
    match (ty, min, max) {
        (Int32 | Int64 | DateTime, Some(lo), Some(hi)) => bounded_integer_domain(field, lo, hi),
        (Int32, None, None) => Ok(Domain {
            min: Some(Bson::Int32(i32::MIN)),
            max: Some(Bson::Int32(i32::MAX)),
            bits: 32,
        }),
        (Int64, None, None) => Ok(Domain {
            min: Some(Bson::Int64(i64::MIN)),
            max: Some(Bson::Int64(i64::MAX)),
            bits: 64,
        }),
        (DateTime, None, None) => Ok(Domain {
            min: Some(Bson::DateTime(bson::DateTime::MIN)),
            max: Some(Bson::DateTime(bson::DateTime::MAX)),
            bits: 64,
        }),
        (Int32 | Int64 | DateTime, _, _) => Err(bounds_incomplete(field, BOTH_OR_NEITHER)),
        (Double, None, None) if precision.is_none() => Ok(Domain {
            min: None,
            max: None,
            bits: 64,
        }),
        (Double, Some(RawBsonRef::Double(lo)), Some(RawBsonRef::Double(hi))) => match precision {
            Some(precision) => bounded_double_domain(field, lo, hi, precision),
            None => Err(bounds_incomplete(field, ALL_OR_NONE)),
        },
        (Decimal128, None, None) if precision.is_none() => Ok(Domain {
            min: None,
            max: None,
            bits: 128,
        }),
        _ => Err(bounds_incomplete(field, ALL_OR_NONE)),
    }
}

/// The domain of an `int`, `long` or `date` range index with both bounds:
/// `min` below `max`, a domain the range encoding takes.
fn bounded_integer_domain(
    field: &str,
    lo: RawBsonRef<'_>,
    hi: RawBsonRef<'_>,
) -> Result<Domain, E> {
    let not_below = || E::MinNotBelowMax {
        field: field.to_owned(),
        min: show(lo),
        max: show(hi),
    };
    let (min, max, encoded) = match (lo, hi) {
        (RawBsonRef::Int32(l), RawBsonRef::Int32(h)) => {
            if l >= h {
                return Err(not_below());
            }
            (
                Bson::Int32(l),
                Bson::Int32(h),
                encoding::encode_int32(l, Some(l), Some(h)),
            )
        }
        (RawBsonRef::Int64(l), RawBsonRef::Int64(h)) => {
            if l >= h {
                return Err(not_below());
            }
            (
                Bson::Int64(l),
                Bson::Int64(h),
                encoding::encode_int64(l, Some(l), Some(h)),
            )
        }
        (RawBsonRef::DateTime(l), RawBsonRef::DateTime(h)) => {
            let (l_ms, h_ms) = (l.timestamp_millis(), h.timestamp_millis());
            if l_ms >= h_ms {
                return Err(not_below());
            }
            (
                Bson::DateTime(l),
                Bson::DateTime(h),
                encoding::encode_int64(l_ms, Some(l_ms), Some(h_ms)),
            )
        }
        // The bounds' types were checked equal to the field's, one of
        // these three (check_bound_types).
        _ => return Err(bounds_incomplete(field, BOTH_OR_NEITHER)),
    };
    let encoded = encoded.map_err(|source| range_refused(field, source))?;
    Ok(Domain {
        min: Some(min),
        max: Some(max),
        bits: bit_length(encoded.max),
    })
}

/// The domain of a `double` range index with `min`, `max` and `precision`:
/// finite bounds, `min` below `max`, a domain the range encoding takes at
/// that precision.
fn bounded_double_domain(field: &str, lo: f64, hi: f64, precision: i32) -> Result<Domain, E> {
    for (bound, v) in [("min", lo), ("max", hi)] {
        if !v.is_finite() {
            return Err(E::BoundNotFinite {
                field: field.to_owned(),
                bound,
            });
        }
    }
    if lo >= hi {
        return Err(E::MinNotBelowMax {
            field: field.to_owned(),
            min: lo.to_string(),
            max: hi.to_string(),
        });
    }
    let encoded = encoding::encode_double(lo, Some(lo), Some(hi), Some(precision))
        .map_err(|source| range_refused(field, source))?;
    Ok(Domain {
        min: Some(Bson::Double(lo)),
        max: Some(Bson::Double(hi)),
        bits: bit_length(encoded.max),
    })
}

/// The first query type when every query is a text search (none for an
/// empty list).
fn all_text(queries: &[Query<'_>]) -> Option<UnsupportedQuery> {
    let mut first = None;
    for q in queries {
        match q {
            Query::Text(t) => {
                if first.is_none() {
                    first = Some(*t);
                }
            }
            Query::Equality { .. } | Query::Range(_) => return None,
        }
    }
    first
}

const FIELD_KEYS: [&str; 5] = ["path", "keyId", "keyAltName", "bsonType", "queries"];

/// One element of `fields`, read in `mode`: its keys (an allow-list), then
/// its path, key, type and queries, in that order (the first refusal is
/// the one reported).
fn parse_field(doc: &RawDocument, index: usize, mode: ParseMode) -> Result<EncryptedField, E> {
    let slots = read_slots(doc, &FIELD_KEYS);
    let [path, key_id, key_alt_name, bson_type, queries] = slots.values;
    // Errors name the field by its path as soon as it is readable, also
    // for a key problem met before it.
    let at = match path {
        Some(RawBsonRef::String(p)) => field_at(p),
        _ => format!("fields.{index}"),
    };
    slots.check(&at)?;
    let path = read_path(path, &at)?;
    let key = read_key(key_id, key_alt_name, path, &at, mode)?;
    let bson_type = read_bson_type(bson_type, path, &at)?;
    let queries = read_queries(queries, path, &at)?;
    let queries = field_queries(queries.as_deref(), path, bson_type)?;
    Ok(EncryptedField {
        path: path.to_owned(),
        key,
        resolved: None,
        bson_type,
        queries,
    })
}

/// A field's `path`: a string that can name an encrypted field.
fn read_path<'a>(value: Option<RawBsonRef<'a>>, at: &str) -> Result<&'a str, E> {
    let path = match value {
        None => {
            return Err(E::MissingKey {
                at: at.to_owned(),
                key: "path",
            });
        }
        Some(RawBsonRef::String(p)) => p,
        Some(_) => {
            return Err(E::WrongType {
                at: at.to_owned(),
                key: "path",
                expected: "a string",
            });
        }
    };
    match path_problem(path) {
        None => Ok(path),
        Some(reason) => Err(E::InvalidPath {
            path: path.to_owned(),
            reason,
        }),
    }
}

/// A field's key: exactly one of `keyId` and `keyAltName`.
fn read_key(
    key_id: Option<RawBsonRef<'_>>,
    key_alt_name: Option<RawBsonRef<'_>>,
    field: &str,
    at: &str,
    mode: ParseMode,
) -> Result<KeyIdOrAltName, E> {
    match (key_id, key_alt_name) {
        (None, None) => Err(E::NoKey {
            field: field.to_owned(),
        }),
        (Some(_), Some(_)) => Err(E::KeyIdAndKeyAltName {
            field: field.to_owned(),
        }),
        (Some(id), None) => read_key_id(id, field, at, mode),
        (None, Some(name)) => read_key_alt_name(name, field, at, mode),
    }
}

/// A field's `keyId`: a UUID, or in a create-collection call `null` (a key
/// to create).
fn read_key_id(
    value: RawBsonRef<'_>,
    field: &str,
    at: &str,
    mode: ParseMode,
) -> Result<KeyIdOrAltName, E> {
    match value {
        RawBsonRef::Binary(b) => match <[u8; 16]>::try_from(b.bytes) {
            Ok(bytes) if b.subtype == BinarySubtype::Uuid => Ok(KeyIdOrAltName::Id(bytes)),
            _ => Err(E::KeyIdNotUuid {
                field: field.to_owned(),
            }),
        },
        RawBsonRef::Null => match mode {
            ParseMode::Create => Ok(KeyIdOrAltName::ToCreate),
            ParseMode::Map | ParseMode::Remote => Err(E::KeyIdNullNotAllowed {
                field: field.to_owned(),
                mode: mode.name(),
            }),
        },
        _ => Err(E::WrongType {
            at: at.to_owned(),
            key: "keyId",
            expected: "a UUID (binary subtype 4)",
        }),
    }
}

/// A field's `keyAltName`: a non-empty string, where the document may name
/// keys so (not in the form the server stores).
fn read_key_alt_name(
    value: RawBsonRef<'_>,
    field: &str,
    at: &str,
    mode: ParseMode,
) -> Result<KeyIdOrAltName, E> {
    match mode {
        ParseMode::Map | ParseMode::Create => {}
        ParseMode::Remote => {
            return Err(E::KeyAltNameNotAllowed {
                field: field.to_owned(),
                mode: mode.name(),
            });
        }
    }
    match value {
        RawBsonRef::String("") => Err(E::EmptyKeyAltName {
            field: field.to_owned(),
        }),
        RawBsonRef::String(name) => Ok(KeyIdOrAltName::AltName(name.to_owned())),
        _ => Err(E::WrongType {
            at: at.to_owned(),
            key: "keyAltName",
            expected: "a string",
        }),
    }
}

/// A field's `bsonType`: a BSON type alias (`"string"`, `"int"`, …).
fn read_bson_type(value: Option<RawBsonRef<'_>>, field: &str, at: &str) -> Result<ElementType, E> {
    match value {
        None => Err(E::MissingKey {
            at: at.to_owned(),
            key: "bsonType",
        }),
        Some(RawBsonRef::String(name)) => type_from_alias(name).ok_or_else(|| E::UnknownBsonType {
            field: field.to_owned(),
            bson_type: name.to_owned(),
        }),
        Some(_) => Err(E::WrongType {
            at: at.to_owned(),
            key: "bsonType",
            expected: "a string",
        }),
    }
}

/// A field's `queries`, each read: absent, one query document, or an array
/// of them.
fn read_queries<'a>(
    value: Option<RawBsonRef<'a>>,
    field: &str,
    at: &str,
) -> Result<Option<Vec<Query<'a>>>, E> {
    let wrong_type = || E::WrongType {
        at: at.to_owned(),
        key: "queries",
        expected: "a document or an array of documents",
    };
    match value {
        None => Ok(None),
        Some(RawBsonRef::Document(q)) => Ok(Some(vec![parse_query(q, field)?])),
        Some(RawBsonRef::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item.map_err(|_| invalid_bson(at))? {
                    RawBsonRef::Document(q) => out.push(parse_query(q, field)?),
                    _ => return Err(wrong_type()),
                }
            }
            Ok(Some(out))
        }
        Some(_) => Err(wrong_type()),
    }
}

/// What a field's queries make it, its type checked against them:
/// unindexed, an equality index, a range index, or text search. Any other
/// list of queries is refused.
fn field_queries(
    queries: Option<&[Query<'_>]>,
    field: &str,
    ty: ElementType,
) -> Result<FieldQueries, E> {
    match queries {
        None if unindexed_type(ty) => Ok(FieldQueries::Unindexed),
        None => Err(type_not_allowed(field, ty, "an unindexed field")),
        Some([Query::Equality { contention }]) if equality_type(ty) => Ok(FieldQueries::Equality {
            contention: *contention,
        }),
        Some([Query::Equality { .. }]) => Err(type_not_allowed(field, ty, "an equality index")),
        Some([Query::Range(range)]) => range_index(field, ty, range),
        Some(queries) => text_search(queries, field, ty),
    }
}

/// A field whose queries are all text search (one, or several: prefix with
/// suffix), on a string: marked unsupported. Any other list (empty, two
/// equality queries, text with equality) is refused by its count.
fn text_search(queries: &[Query<'_>], field: &str, ty: ElementType) -> Result<FieldQueries, E> {
    let Some(text) = all_text(queries) else {
        return Err(E::QueryCount {
            field: field.to_owned(),
            count: queries.len(),
        });
    };
    if ty != ElementType::String {
        return Err(type_not_allowed(field, ty, "text search"));
    }
    Ok(FieldQueries::Unsupported(text))
}

/// Refuses a key id used by two fields. `ids` gives each field's id, when
/// it has one.
fn check_unique_key_ids<'f>(
    ids: impl Iterator<Item = (&'f str, Option<[u8; 16]>)>,
) -> Result<(), E> {
    let mut seen: HashMap<[u8; 16], &str> = HashMap::new();
    for (path, id) in ids {
        let Some(id) = id else { continue };
        if let Some(other) = seen.insert(id, path) {
            return Err(E::DuplicateKeyId {
                field: path.to_owned(),
                other: other.to_owned(),
            });
        }
    }
    Ok(())
}

const TOP_KEYS: [&str; 5] = [
    "escCollection",
    "ecocCollection",
    "eccCollection",
    "fields",
    "strEncodeVersion",
];

impl EncryptedFields {
    /// Parses and checks an `encryptedFields` document read in `mode`.
    ///
    /// ```
    /// use csfle::qe::encrypted_fields::{EncryptedFields, FieldQueries, ParseMode};
    /// let key = bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![1; 16] };
    /// let doc = bson::rawdoc! {
    ///     "fields": [{ "path": "ssn", "keyId": key, "bsonType": "string",
    ///                  "queries": { "queryType": "equality" } }],
    /// };
    /// let parsed = EncryptedFields::parse(&doc, ParseMode::Map).unwrap();
    /// let ssn = parsed.field("ssn").unwrap();
    /// assert_eq!(ssn.queries(), &FieldQueries::Equality { contention: 8 });
    /// assert_eq!(parsed.esc_collection_name("people"), "enxcol_.people.esc");
    /// ```
    pub fn parse(doc: &RawDocument, mode: ParseMode) -> Result<Self, EncryptedFieldsError> {
        let slots = read_slots(doc, &TOP_KEYS);
        slots.check(TOP)?;
        let [esc, ecoc, ecc, fields, str_encode_version] = slots.values;
        let esc_collection = state_collection("escCollection", esc)?;
        let ecoc_collection = state_collection("ecocCollection", ecoc)?;
        // The v1 protocol's cache collection: still in the server's schema,
        // unused since 7.0; carried through unchanged.
        state_collection("eccCollection", ecc)?;
        match str_encode_version {
            None | Some(RawBsonRef::Int32(STR_ENCODE_VERSION)) => {}
            Some(RawBsonRef::Int32(version)) => {
                return Err(E::UnsupportedStrEncodeVersion { version });
            }
            Some(_) => {
                return Err(E::WrongType {
                    at: TOP.to_owned(),
                    key: "strEncodeVersion",
                    expected: "an int32",
                });
            }
        }
        let items = match fields {
            None => {
                return Err(E::MissingKey {
                    at: TOP.to_owned(),
                    key: "fields",
                });
            }
            Some(RawBsonRef::Array(items)) => items,
            Some(_) => {
                return Err(E::WrongType {
                    at: TOP.to_owned(),
                    key: "fields",
                    expected: "an array",
                });
            }
        };
        let mut fields = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            if index == MAX_FIELDS {
                return Err(E::TooManyFields {
                    count: items.into_iter().count(),
                    max: MAX_FIELDS,
                });
            }
            match item.map_err(|_| invalid_bson(&format!("fields.{index}")))? {
                RawBsonRef::Document(d) => fields.push(parse_field(d, index, mode)?),
                _ => return Err(E::FieldNotDocument { index }),
            }
        }
        check_fields(&fields)?;
        let unsupported = fields.iter().find_map(|f| match f.queries {
            FieldQueries::Unsupported(query_type) => Some(Unsupported {
                field: f.path.clone(),
                query_type,
            }),
            _ => None,
        });
        Ok(EncryptedFields {
            source: doc.to_raw_document_buf(),
            mode,
            esc_collection,
            ecoc_collection,
            fields,
            unsupported,
        })
    }

    /// [`EncryptedFields::parse`] of a [`Document`].
    pub fn from_document(doc: &Document, mode: ParseMode) -> Result<Self, EncryptedFieldsError> {
        let raw = RawDocumentBuf::from_document(doc).map_err(|_| invalid_bson(TOP))?;
        Self::parse(&raw, mode)
    }

    /// Parses a client's `encryptedFieldsMap`, `{"db.coll":
    /// <encryptedFields>, …}`: the one reader of such maps (the client's
    /// `AutoEncryptionOptions::encrypted_fields_map`, the command line's
    /// `--encrypted-fields-map`). Every key must be `db.collection` and
    /// every entry a document [`EncryptedFields::parse`] accepts in
    /// [`ParseMode::Map`]; the first refusal in document order is
    /// returned, naming its entry. The entries come back in document order.
    ///
    /// A field whose query type csfle does not implement does not fail the
    /// parse (see [`EncryptedFields::check_supported`]).
    ///
    /// ```
    /// use csfle::qe::encrypted_fields::{EncryptedFields, EncryptedFieldsMapError};
    /// let key = bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![1; 16] };
    /// let map = bson::doc! {
    ///     "app.people": { "fields": [{ "path": "ssn", "keyId": key, "bsonType": "string" }] },
    /// };
    /// let entries = EncryptedFields::parse_map(&map).unwrap();
    /// assert_eq!(entries[0].0, "app.people");
    /// assert!(entries[0].1.field("ssn").is_some());
    ///
    /// let refused = EncryptedFields::parse_map(&bson::doc! { "people": { "fields": [] } });
    /// assert_eq!(
    ///     refused,
    ///     Err(EncryptedFieldsMapError::InvalidNamespace { namespace: "people".into() })
    /// );
    /// ```
    pub fn parse_map(map: &Document) -> Result<Vec<(String, Self)>, EncryptedFieldsMapError> {
        map.iter()
            .map(|(ns, entry)| {
                if !crate::wire::is_namespace(ns) {
                    return Err(EncryptedFieldsMapError::InvalidNamespace {
                        namespace: ns.clone(),
                    });
                }
                let Bson::Document(entry) = entry else {
                    return Err(EncryptedFieldsMapError::NotADocument {
                        namespace: ns.clone(),
                    });
                };
                match Self::from_document(entry, ParseMode::Map) {
                    Ok(fields) => Ok((ns.clone(), fields)),
                    Err(source) => Err(EncryptedFieldsMapError::Entry {
                        namespace: ns.clone(),
                        source,
                    }),
                }
            })
            .collect()
    }

    /// The mode the document was read in.
    pub fn mode(&self) -> ParseMode {
        self.mode
    }

    /// The fields, in document order.
    pub fn fields(&self) -> &[EncryptedField] {
        &self.fields
    }

    /// The field at exactly `path`.
    pub fn field(&self, path: &str) -> Option<&EncryptedField> {
        self.fields.iter().find(|f| f.path == path)
    }

    /// `escCollection` as given.
    pub fn esc_collection(&self) -> Option<&str> {
        self.esc_collection.as_deref()
    }

    /// `ecocCollection` as given.
    pub fn ecoc_collection(&self) -> Option<&str> {
        self.ecoc_collection.as_deref()
    }

    /// The ESC's name for the collection `collection`: `escCollection`, or
    /// `enxcol_.<collection>.esc`.
    pub fn esc_collection_name(&self, collection: &str) -> String {
        self.esc_collection
            .clone()
            .unwrap_or_else(|| format!("enxcol_.{collection}.esc"))
    }

    /// The ECOC's name for the collection `collection`: `ecocCollection`,
    /// or `enxcol_.<collection>.ecoc`.
    pub fn ecoc_collection_name(&self, collection: &str) -> String {
        self.ecoc_collection
            .clone()
            .unwrap_or_else(|| format!("enxcol_.{collection}.ecoc"))
    }

    /// The first field (in document order) whose query type csfle does not
    /// implement, if any.
    pub fn unsupported_field(&self) -> Option<&Unsupported> {
        self.unsupported.as_ref()
    }

    /// Refuses, naming the field, when a field's query type is one csfle
    /// does not implement: every command on the collection is then an
    /// error.
    pub fn check_supported(&self) -> Result<(), EncryptedFieldsError> {
        match &self.unsupported {
            None => Ok(()),
            Some(u) => Err(E::Unsupported {
                field: u.field.clone(),
                query_type: u.query_type,
            }),
        }
    }

    /// The `keyAltName`s to look up in the key vault, in field order.
    pub fn key_alt_names(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter_map(|f| match &f.key {
                KeyIdOrAltName::AltName(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether every field's key id is known.
    pub fn is_resolved(&self) -> bool {
        self.fields.iter().all(|f| f.key_id().is_some())
    }

    /// Resolves every `keyAltName` and `keyId: null` not yet resolved:
    /// `resolve` returns the key id of the field's key (the key the alt
    /// name names in the key vault, or the key just created), `None` if
    /// there is none. All or nothing: on error nothing is changed. Two
    /// fields resolving to the same key are refused.
    pub fn resolve_keys(
        &mut self,
        mut resolve: impl FnMut(&EncryptedField) -> Option<[u8; 16]>,
    ) -> Result<(), EncryptedFieldsError> {
        let mut ids = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let id = match f.key_id() {
                Some(id) => id,
                None => resolve(f).ok_or_else(|| E::KeyNotResolved {
                    field: f.path.clone(),
                })?,
            };
            ids.push(id);
        }
        check_unique_key_ids(
            self.fields
                .iter()
                .zip(&ids)
                .map(|(f, id)| (f.path.as_str(), Some(*id))),
        )?;
        for (f, id) in self.fields.iter_mut().zip(ids) {
            if !matches!(f.key, KeyIdOrAltName::Id(_)) {
                f.resolved = Some(id);
            }
        }
        Ok(())
    }

    /// The document libmongocrypt sends in `encryptionInformation.schema`
    /// for the collection `collection`: the one given, byte for byte, with
    /// each `keyAltName` replaced by a `keyId` (at the end of its field)
    /// and each `keyId: null` by the created key's id, then
    /// `escCollection` and `ecocCollection` appended with their default
    /// names when absent. Refused while a key is unresolved or a field's
    /// query type is unsupported.
    pub fn to_document(&self, collection: &str) -> Result<RawDocumentBuf, EncryptedFieldsError> {
        if collection.is_empty() || collection.contains('\0') {
            return Err(E::InvalidCollectionName {
                collection: collection.to_owned(),
            });
        }
        let mut out = self.rebuilt()?;
        if self.esc_collection.is_none() {
            out.append("escCollection", self.esc_collection_name(collection));
        }
        if self.ecoc_collection.is_none() {
            out.append("ecocCollection", self.ecoc_collection_name(collection));
        }
        Ok(out)
    }

    /// The document a `create` command sends as `encryptedFields`: the one
    /// given with the keys resolved as in [`EncryptedFields::to_document`],
    /// no default appended (the server fills them).
    pub fn to_create_document(&self) -> Result<RawDocumentBuf, EncryptedFieldsError> {
        self.rebuilt()
    }

    fn rebuilt(&self) -> Result<RawDocumentBuf, EncryptedFieldsError> {
        self.check_supported()?;
        let mut out = RawDocumentBuf::new();
        for item in &self.source {
            let (key, value) = item.map_err(|_| invalid_bson(TOP))?;
            if key != "fields" {
                out.append_ref(key, value);
                continue;
            }
            let RawBsonRef::Array(items) = value else {
                return Err(invalid_bson(TOP));
            };
            // parse() read one field per element: anything else is not the
            // document it read.
            if items.into_iter().count() != self.fields.len() {
                return Err(invalid_bson(TOP));
            }
            let mut fields = RawArrayBuf::new();
            for (item, field) in items.into_iter().zip(&self.fields) {
                let RawBsonRef::Document(doc) = item.map_err(|_| invalid_bson(TOP))? else {
                    return Err(invalid_bson(TOP));
                };
                fields.push(field.rebuilt(doc)?);
            }
            out.append("fields", fields);
        }
        Ok(out)
    }
}

/// The checks across fields, in libmongocrypt's and the server's order of
/// concern: paths unique and not inside one another, key ids unique,
/// `keyAltName`s unique.
fn check_fields(fields: &[EncryptedField]) -> Result<(), E> {
    let mut paths: HashSet<&str> = HashSet::with_capacity(fields.len());
    for f in fields {
        if !paths.insert(f.path.as_str()) {
            return Err(E::DuplicatePath {
                path: f.path.clone(),
            });
        }
    }
    for f in fields {
        // At most MAX_PATH_SEGMENTS - 1 prefixes a path.
        for (i, _) in f.path.match_indices('.') {
            let prefix = &f.path[..i];
            if paths.contains(prefix) {
                return Err(E::OverlappingPaths {
                    path: f.path.clone(),
                    prefix: prefix.to_owned(),
                });
            }
        }
    }
    check_unique_key_ids(fields.iter().map(|f| (f.path.as_str(), f.key_id())))?;
    let mut names: HashMap<&str, &str> = HashMap::new();
    for f in fields {
        if let KeyIdOrAltName::AltName(name) = &f.key
            && let Some(other) = names.insert(name.as_str(), f.path.as_str())
        {
            return Err(E::DuplicateKeyAltName {
                field: f.path.clone(),
                other: other.to_owned(),
                name: name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
