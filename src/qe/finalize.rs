//! Automatic Queryable Encryption's last step: what libmongocrypt does with
//! query analysis's reply (`_fle2_finalize` in its
//! `mongocrypt-ctx-encrypt.c`, `mc_schema_broker_add_schemas_to_cmd` in
//! `mc-schema-broker.c`).
//!
//! Query analysis (mongocryptd, crypt_shared, or csfle's own) hands back the
//! command with every value to encrypt replaced by a *placeholder* (a
//! subtype-6 binary whose first byte is 3, see [`placeholder`](super::placeholder)).
//! Then, in order:
//!
//! 1. [`placeholder_key_ids`]: the data keys the placeholders name (index
//!    and user key of each, as libmongocrypt requests them), so that the
//!    caller can fetch and decrypt them in one key-vault round;
//! 2. [`encrypt_placeholders`]: every placeholder replaced by its payload,
//!    in document order (the order libmongocrypt draws its randomness in);
//! 3. [`add_encryption_information`]: the `encryptionInformation` the
//!    server needs, `{type: 1, schema: {<db.coll>: <encryptedFields>}}`,
//!    where the command carries it: inside `explain`'s document for
//!    `explain`, inside `nsInfo`'s only entry for `bulkWrite`, at the end
//!    for every other command. Any `encryptionInformation` already there
//!    (query analysis returns one) is replaced.
//!
//! Which commands get one, as libmongocrypt decides
//! (`must_omit_encryptionInformation`): `find`, `aggregate`, `count`,
//! `distinct` and `insert` only when they carry a payload the server must
//! process (insert/update and find payloads, v1 and v2: an unindexed
//! value alone needs none); `update`, `delete`, `findAndModify`, `explain`
//! and `bulkWrite` always; `create`, `collMod` and `createIndexes` never
//! (the server refuses it there). Any other command is refused, among them
//! `compactStructuredEncryptionData` and `cleanupStructuredEncryptionData`,
//! whose compaction tokens are not built here. When no collection the
//! command touches has `encryptedFields`, the command is FLE1's business and
//! is returned unchanged, as libmongocrypt does.
//!
//! [`add_encryption_information_bypassing_analysis`] is the same step for
//! the `bypassQueryAnalysis` option: the application's own command, whose
//! values it encrypted explicitly (automatic encryption verifies that
//! first, with `analysis::verify_bypassed`), sent with the
//! `encryptionInformation` the server needs (libmongocrypt finalizes it
//! the same way, without query analysis).
//!
//! Fail closed. Every walk is bounded ([`MAX_NESTING`] levels, as the rest
//! of csfle). [`encrypt_placeholders`] refuses, before it encrypts anything,
//! any other subtype-6 binary in the command (an FLE1 marking, a payload, a
//! ciphertext: query analysis's output holds only placeholders where values
//! are encrypted); the `encryptionInformation` steps refuse a placeholder or
//! FLE1 marking still in the command (its plaintext would be sent). Errors
//! name commands, fields, collections and key ids, never values.
//!
//! Not done here, and why: `$db` (libmongocrypt appends the input's `$db`
//! when the marked command lost it; the caller, who has the input, does);
//! `strEncodeVersion` (libmongocrypt adds it only for text-search fields,
//! which [`EncryptedFields::to_document`] refuses, and a `create`
//! command's `encryptedFields` is written by
//! [`EncryptedFields::to_create_document`]).

use super::Error as QeError;
use super::aead::QeDataKey;
use super::encrypted_fields::{EncryptedFields, EncryptedFieldsError};
use super::payload::{self, FIND_EQUALITY_V2, FIND_RANGE_V2, INSERT_UPDATE_V1, INSERT_UPDATE_V2};
use super::placeholder::{ENCRYPTION_PLACEHOLDER, Fle2Algorithm, Placeholder};
use super::random::QeRandom;
use crate::wire::ENCRYPTION_INFORMATION;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, JavaScriptCodeWithScope, doc};

/// How deep documents and arrays may nest in a command: csfle's limit
/// everywhere (`csfle::MAX_NESTING`), restated because this pure layer
/// imports only `crypto` and `wire`.
pub const MAX_NESTING: usize = 256;

/// First byte of an FLE1 marking (what FLE1 query analysis leaves).
const FLE1_MARKING: u8 = 0;
/// FLE2FindEqualityPayload (v1).
const FIND_EQUALITY_V1: u8 = 5;
/// FLE2FindRangePayload (v1).
const FIND_RANGE_V1: u8 = 10;
/// FLE2FindTextPayload.
const FIND_TEXT: u8 = 18;

/// The payloads the server only processes with `encryptionInformation`
/// (libmongocrypt's `_mongocrypt_fle2_insert_update_find`).
const NEED_ENCRYPTION_INFORMATION: [u8; 7] = [
    INSERT_UPDATE_V1,
    FIND_EQUALITY_V1,
    FIND_RANGE_V1,
    INSERT_UPDATE_V2,
    FIND_EQUALITY_V2,
    FIND_RANGE_V2,
    FIND_TEXT,
];

/// Why a command cannot be finalized. Never carries a value, a key or a
/// token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FinalizeError {
    /// Documents or arrays nested deeper than [`MAX_NESTING`].
    #[error("document nesting exceeds {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A command without any field, so without a name.
    #[error("an empty command has no name")]
    EmptyCommand,
    /// A command this step does not finalize.
    #[error("command not supported by Queryable Encryption: {0}")]
    UnsupportedCommand(String),
    /// A subtype-6 binary without a byte.
    #[error("an empty subtype-6 binary in the command")]
    EmptyEncryptedValue,
    /// An FLE1 marking where Queryable Encryption's placeholders are
    /// encrypted.
    #[error("an FLE1 marking (subtype 6, first byte 0) in a Queryable Encryption command")]
    Fle1Marking,
    /// A subtype-6 binary that is neither a placeholder nor an FLE1
    /// marking where only placeholders are expected.
    #[error(
        "a subtype-6 binary with first byte {0} in query analysis's output, where only placeholders (first byte 3) are encrypted"
    )]
    UnexpectedEncryptedValue(u8),
    /// A placeholder (3) or FLE1 marking (0) still in a command about to be
    /// sent: its plaintext would reach the server.
    #[error(
        "a placeholder (subtype 6, first byte {0}) is still in the command: its value was not encrypted"
    )]
    PlaceholderLeft(u8),
    /// A field of the command with the wrong shape.
    #[error("'{field}' of {command} must be {expected}")]
    Malformed {
        /// The command.
        command: String,
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// An `encryptionInformation` where the command does not carry one
    /// (at the top of `explain` or `bulkWrite`).
    #[error("{command} carries encryptionInformation {place}, not at its top level")]
    MisplacedEncryptionInformation {
        /// The command.
        command: String,
        /// Where it belongs.
        place: &'static str,
    },
    /// `bulkWrite` with other than one namespace (libmongocrypt's limit).
    #[error("expected one namespace in `bulkWrite`, found {0}")]
    BulkWriteNamespaces(usize),
    /// `bulkWrite`'s namespace is not the one collection given.
    #[error("bulkWrite writes to '{ns}', which is not the collection whose schema was given")]
    BulkWriteNamespace {
        /// `nsInfo.0.ns`.
        ns: String,
    },
    /// A database name that cannot prefix a namespace.
    #[error("invalid database name '{0}'")]
    InvalidDatabase(String),
    /// A collection name that cannot be part of a namespace.
    #[error("invalid collection name '{0}'")]
    InvalidCollection(String),
    /// A collection given twice.
    #[error("the schema of collection '{0}' was given twice")]
    DuplicateCollection(String),
    /// A collection's `encryptedFields` cannot be sent (an unresolved
    /// `keyAltName`, an unsupported query type).
    #[error(transparent)]
    EncryptedFields(Box<EncryptedFieldsError>),
    /// A placeholder refused, or its payload not built (libmongocrypt's
    /// words).
    #[error(transparent)]
    Qe(#[from] QeError),
    /// A document that cannot be converted (invalid BSON).
    #[error("invalid BSON in {0}")]
    InvalidBson(&'static str),
}

impl From<EncryptedFieldsError> for FinalizeError {
    fn from(e: EncryptedFieldsError) -> Self {
        FinalizeError::EncryptedFields(Box::new(e))
    }
}

const TOO_DEEP: FinalizeError = FinalizeError::TooDeep { limit: MAX_NESTING };

/// Calls `f` on every subtype-6 binary of `doc`, in document order, parents
/// before children, descending into documents, arrays and the scopes of
/// JavaScript code; without recursion, failing past [`MAX_NESTING`].
fn for_each_encrypted<'a>(
    doc: &'a Document,
    f: &mut dyn FnMut(&'a Binary) -> Result<(), FinalizeError>,
) -> Result<(), FinalizeError> {
    let mut stack: Vec<(&'a Bson, usize)> = doc.values().map(|v| (v, 1)).collect();
    // Popped from the end: reversed, so that document order comes out.
    stack.reverse();
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(TOO_DEEP);
        }
        let first = stack.len();
        match value {
            Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => f(b)?,
            Bson::Document(d) => stack.extend(d.values().map(|v| (v, depth + 1))),
            Bson::Array(a) => stack.extend(a.iter().map(|v| (v, depth + 1))),
            Bson::JavaScriptCodeWithScope(c) => {
                stack.extend(c.scope.values().map(|v| (v, depth + 1)));
            }
            _ => {}
        }
        stack[first..].reverse();
    }
    Ok(())
}

/// A copy of `doc` (whose values are at `depth`) with every subtype-6
/// binary for which `f` returns a replacement replaced, in document order.
/// Recursive, bounded by [`MAX_NESTING`].
fn map_document(
    doc: &Document,
    depth: usize,
    f: &mut dyn FnMut(&Binary) -> Result<Option<Bson>, FinalizeError>,
) -> Result<Document, FinalizeError> {
    let mut out = Document::new();
    for (key, value) in doc {
        out.insert(key.clone(), map_value(value, depth, f)?);
    }
    Ok(out)
}

fn map_value(
    value: &Bson,
    depth: usize,
    f: &mut dyn FnMut(&Binary) -> Result<Option<Bson>, FinalizeError>,
) -> Result<Bson, FinalizeError> {
    if depth > MAX_NESTING {
        return Err(TOO_DEEP);
    }
    Ok(match value {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => match f(b)? {
            Some(replacement) => replacement,
            None => value.clone(),
        },
        Bson::Document(d) => Bson::Document(map_document(d, depth + 1, f)?),
        Bson::Array(a) => Bson::Array(
            a.iter()
                .map(|v| map_value(v, depth + 1, f))
                .collect::<Result<_, _>>()?,
        ),
        Bson::JavaScriptCodeWithScope(c) => {
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: c.code.clone(),
                scope: map_document(&c.scope, depth + 1, f)?,
            })
        }
        other => other.clone(),
    })
}

/// The placeholder bytes of `b`, refusing every other subtype-6 binary.
fn placeholder_bytes(b: &Binary) -> Result<&[u8], FinalizeError> {
    match b.bytes.first() {
        Some(&ENCRYPTION_PLACEHOLDER) => Ok(b.bytes.as_slice()),
        Some(&FLE1_MARKING) => Err(FinalizeError::Fle1Marking),
        Some(&other) => Err(FinalizeError::UnexpectedEncryptedValue(other)),
        None => Err(FinalizeError::EmptyEncryptedValue),
    }
}

/// Every data key the placeholders of `command` name, each once, in the
/// order met: for each placeholder its index key, then its user key, as
/// libmongocrypt requests them (`_collect_key_from_marking`), whether or
/// not the payload uses both. The caller fetches them before
/// [`encrypt_placeholders`].
///
/// Refuses what [`encrypt_placeholders`] refuses before it encrypts: a
/// malformed placeholder, a text-search placeholder (not supported), any
/// other subtype-6 binary, nesting past [`MAX_NESTING`].
pub fn placeholder_key_ids(command: &Document) -> Result<Vec<[u8; 16]>, FinalizeError> {
    let mut ids: Vec<[u8; 16]> = Vec::new();
    for_each_encrypted(command, &mut |b| {
        let placeholder = Placeholder::parse(placeholder_bytes(b)?)?;
        if placeholder.algorithm == Fle2Algorithm::TextSearch {
            return Err(QeError::from(payload::PayloadError::TextSearchUnsupported).into());
        }
        for id in [placeholder.index_key_id, placeholder.user_key_id] {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(())
    })?;
    Ok(ids)
}

/// `command` with every placeholder replaced by its payload (a subtype-6
/// binary whose first byte is the payload's type), libmongocrypt's
/// `_replace_marking_with_ciphertext` over the whole command: documents,
/// arrays, pipelines at any depth. `keys` gives the decrypted data keys by
/// id (those [`placeholder_key_ids`] named); `rng` the randomness, drawn
/// placeholder by placeholder in document order.
///
/// The command is checked whole before anything is encrypted: nesting
/// past [`MAX_NESTING`], an FLE1 marking, or any subtype-6 binary other
/// than a placeholder refuses it. A placeholder that cannot be encrypted
/// (malformed, text search, a key `keys` does not have) refuses it too;
/// nothing partial is returned.
pub fn encrypt_placeholders<'k>(
    command: &Document,
    keys: &dyn Fn(&[u8; 16]) -> Option<&'k QeDataKey>,
    rng: &mut QeRandom,
) -> Result<Document, FinalizeError> {
    // One bounded pass first, without recursion: the depth and every
    // binary's kind are known before the recursive copy and before any
    // randomness is drawn.
    for_each_encrypted(command, &mut |b| placeholder_bytes(b).map(|_| ()))?;
    map_document(command, 1, &mut |b| {
        let placeholder = Placeholder::parse(placeholder_bytes(b)?)?;
        let sealed = placeholder.encrypt(keys, rng)?;
        Ok(Some(Bson::Binary(payload::to_binary(sealed))))
    })
}

/// When a command carries `encryptionInformation`
/// (libmongocrypt's `must_omit_encryptionInformation`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    /// Only with a payload the server must process.
    PayloadsNeedIt,
    /// Always.
    Always,
    /// Never: the server refuses it.
    Never,
}

/// Where a command carries it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The last field of the command.
    TopLevel,
    /// The last field of the explained command.
    Explain,
    /// The last field of `nsInfo`'s only entry.
    BulkWrite,
}

/// The commands finalized here: an allow-list.
fn rules(name: &str) -> Result<(When, Place), FinalizeError> {
    Ok(match name {
        "find" | "aggregate" | "count" | "distinct" | "insert" => {
            (When::PayloadsNeedIt, Place::TopLevel)
        }
        "update" | "delete" | "findAndModify" => (When::Always, Place::TopLevel),
        "explain" => (When::Always, Place::Explain),
        "bulkWrite" => (When::Always, Place::BulkWrite),
        "create" | "collMod" | "createIndexes" => (When::Never, Place::TopLevel),
        _ => return Err(FinalizeError::UnsupportedCommand(name.to_owned())),
    })
}

fn check_database(db: &str) -> Result<(), FinalizeError> {
    if db.is_empty() || db.contains(['.', '\0']) {
        return Err(FinalizeError::InvalidDatabase(db.to_owned()));
    }
    Ok(())
}

/// `{type: 1, schema: {<db>.<coll>: <encryptedFields>, …}}`, each
/// collection in the order given (libmongocrypt's
/// `append_encryptionInformation`): its `encryptedFields` as
/// [`EncryptedFields::to_document`] writes it, or for a collection without
/// one the empty configuration libmongocrypt writes.
fn encryption_information(
    db: &str,
    schemas: &[(&str, Option<&EncryptedFields>)],
) -> Result<Document, FinalizeError> {
    check_database(db)?;
    let mut schema = Document::new();
    for &(coll, fields) in schemas {
        let ns = format!("{db}.{coll}");
        if schema.contains_key(&ns) {
            return Err(FinalizeError::DuplicateCollection(coll.to_owned()));
        }
        let entry = match fields {
            Some(fields) => fields
                .to_document(coll)?
                .to_document()
                .map_err(|_| FinalizeError::InvalidBson("encryptedFields"))?,
            None => {
                if coll.is_empty() || coll.contains('\0') {
                    return Err(FinalizeError::InvalidCollection(coll.to_owned()));
                }
                doc! {
                    "escCollection": format!("enxcol_.{coll}.esc"),
                    "ecocCollection": format!("enxcol_.{coll}.ecoc"),
                    "fields": [],
                }
            }
        };
        schema.insert(ns, entry);
    }
    Ok(doc! { "type": 1i32, "schema": schema })
}

fn malformed(command: &str, field: &'static str, expected: &'static str) -> FinalizeError {
    FinalizeError::Malformed {
        command: command.to_owned(),
        field,
        expected,
    }
}

/// `command` with the `encryptionInformation` at `place` removed and, when
/// `info` is given, `info` appended there, in libmongocrypt's field order
/// (`_fle2_strip_encryptionInformation`, then
/// `insert_encryptionInformation`).
fn rewrite(
    mut command: Document,
    name: &str,
    place: Place,
    info: Option<Document>,
    db: &str,
    schemas: &[(&str, Option<&EncryptedFields>)],
) -> Result<Document, FinalizeError> {
    match place {
        Place::TopLevel => {
            command.remove(ENCRYPTION_INFORMATION);
            if let Some(info) = info {
                command.insert(ENCRYPTION_INFORMATION, info);
            }
            Ok(command)
        }
        Place::Explain => {
            if command.contains_key(ENCRYPTION_INFORMATION) {
                return Err(FinalizeError::MisplacedEncryptionInformation {
                    command: name.to_owned(),
                    place: "inside the explained command",
                });
            }
            let mut explained = match command.remove("explain") {
                Some(Bson::Document(d)) => d,
                _ => return Err(malformed(name, "explain", "a document")),
            };
            explained.remove(ENCRYPTION_INFORMATION);
            if let Some(info) = info {
                explained.insert(ENCRYPTION_INFORMATION, info);
            }
            // The explained command first, then the rest (`verbosity`, …).
            let mut out = doc! { "explain": explained };
            out.extend(command);
            Ok(out)
        }
        Place::BulkWrite => {
            if command.contains_key(ENCRYPTION_INFORMATION) {
                return Err(FinalizeError::MisplacedEncryptionInformation {
                    command: name.to_owned(),
                    place: "inside nsInfo's entry",
                });
            }
            let mut entries = match command.remove("nsInfo") {
                Some(Bson::Array(entries)) => entries,
                _ => return Err(malformed(name, "nsInfo", "an array")),
            };
            if entries.len() != 1 {
                return Err(FinalizeError::BulkWriteNamespaces(entries.len()));
            }
            let mut entry = match entries.pop() {
                Some(Bson::Document(d)) => d,
                _ => return Err(malformed(name, "nsInfo.0", "a document")),
            };
            // The schema sent must be the namespace's: one collection, the
            // one bulkWrite writes to.
            let ns = match entry.get("ns") {
                Some(Bson::String(ns)) => ns.clone(),
                _ => return Err(malformed(name, "nsInfo.0.ns", "a string")),
            };
            match schemas {
                [(coll, _)] if ns == format!("{db}.{coll}") => {}
                _ => return Err(FinalizeError::BulkWriteNamespace { ns }),
            }
            entry.remove(ENCRYPTION_INFORMATION);
            if let Some(info) = info {
                entry.insert(ENCRYPTION_INFORMATION, info);
            }
            // `nsInfo` last, as libmongocrypt rebuilds it.
            command.insert("nsInfo", vec![Bson::Document(entry)]);
            Ok(command)
        }
    }
}

/// `command` (placeholders encrypted) with the `encryptionInformation` the
/// server needs, placed and ordered byte for byte as libmongocrypt does
/// (see the [module](self) documentation for which commands get one and
/// where).
///
/// `db` is the database of the collections (for `bulkWrite`, the one its
/// `nsInfo` names, not `admin`); `schemas` every collection the command
/// touches, in the order query analysis met them (the target first), each
/// with its `encryptedFields` or `None` when it has none (it is then sent
/// with an empty configuration, as libmongocrypt sends it). Collections
/// with only an FLE1 JSON schema are left out, as libmongocrypt leaves
/// them out. With no `encryptedFields` at all the command is returned
/// unchanged.
///
/// Refused: a command not on the allow-list; a placeholder or FLE1 marking
/// still in it; nesting past [`MAX_NESTING`]; an `encryptionInformation`
/// at the top of `explain` or `bulkWrite`; `bulkWrite` with other than one
/// namespace, or one that is not the collection given; a collection given
/// twice; an `encryptedFields` with an unresolved key or an unsupported
/// query type.
pub fn add_encryption_information(
    command: Document,
    db: &str,
    schemas: &[(&str, Option<&EncryptedFields>)],
) -> Result<Document, FinalizeError> {
    let name = command
        .keys()
        .next()
        .ok_or(FinalizeError::EmptyCommand)?
        .clone();
    let (when, place) = rules(&name)?;
    let mut needs_it = false;
    for_each_encrypted(&command, &mut |b| match b.bytes.first() {
        Some(&first) if first == FLE1_MARKING || first == ENCRYPTION_PLACEHOLDER => {
            Err(FinalizeError::PlaceholderLeft(first))
        }
        Some(first) => {
            needs_it |= NEED_ENCRYPTION_INFORMATION.contains(first);
            Ok(())
        }
        None => Err(FinalizeError::EmptyEncryptedValue),
    })?;
    if !schemas.iter().any(|(_, fields)| fields.is_some()) {
        return Ok(command);
    }
    let info = match when {
        When::Never => None,
        When::PayloadsNeedIt if !needs_it => None,
        When::PayloadsNeedIt | When::Always => Some(encryption_information(db, schemas)?),
    };
    rewrite(command, &name, place, info, db, schemas)
}

/// [`add_encryption_information`] for the `bypassQueryAnalysis` option: the
/// application's own command, not analysed, sent with the
/// `encryptionInformation` of the collections it names (the specification's
/// `fle2v2-BypassQueryAnalysis`; libmongocrypt finalizes it the same way).
///
/// Nothing is encrypted or verified here: every value the schema encrypts
/// must already be a payload the application made with explicit
/// encryption. Automatic encryption checks that first
/// ([`verify_bypassed`](crate::analysis::verify_bypassed), which refuses a
/// command with a plaintext where the schema encrypts, naming the field);
/// a caller of this function alone must do the same, or a field the
/// application forgot to encrypt goes to the server in plaintext. A
/// placeholder or FLE1 marking in the command is refused (no step would
/// encrypt it).
pub fn add_encryption_information_bypassing_analysis(
    command: Document,
    db: &str,
    schemas: &[(&str, Option<&EncryptedFields>)],
) -> Result<Document, FinalizeError> {
    add_encryption_information(command, db, schemas)
}

#[cfg(test)]
mod tests;
