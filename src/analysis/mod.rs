//! Query analysis: which values of a command must be encrypted, done
//! in-process (what `mongocryptd` / `crypt_shared` do for the drivers).
//!
//! [`analyze`] takes a command, its database and a way to look up the
//! schema of any namespace, and returns the command to send, with every
//! value to encrypt replaced by a *marking*: a subtype-6 binary whose first
//! byte is 0 followed by the BSON document `{a: 1|2, ki: <key UUID> | ka:
//! <alt name>, v: <value>}`, the format mongocryptd uses.
//! [`encrypt_markings`] then replaces the markings with ciphertexts, given
//! ready keys. Filters are emitted in mongocryptd's normalised form (`{f: v}`
//! becomes `{f: {$eq: v}}`, several predicates an `$and`), but only when
//! something is encrypted: otherwise the original command goes out
//! unchanged.
//!
//! **Fail closed, over the whole command.** Every supported command has an
//! allow-list of top-level fields, each either analysed or known to carry no
//! user data; any other field is refused when a namespace the command
//! touches has encrypted fields. Every namespace a command touches
//! (`$lookup`, `$graphLookup`, `$unionWith`, `$merge`, `$out`, sub-pipelines
//! at any depth, `viewOn`) is resolved through the same lookup as the
//! command's own; one that cannot be resolved refuses the command.
//! Expressions (`$expr`, projections, `let`, pipeline stages) that reference
//! an encrypted field, or could (`$$ROOT`, `$function`, …), are refused, as
//! are reads that join or filter on another collection's encrypted fields and
//! pipeline writes into an encrypted collection. Application values that look
//! like markings are refused before analysis, so only markings made here are
//! ever encrypted. Every walk is bounded by [`crate::nesting::MAX_NESTING`].
//!
//! **Commands sent without analysis** (`bypass_query_analysis`):
//! [`verify_bypassed`] runs the same dispatch and walkers in a second
//! pass, where each value a marking or placeholder would replace must
//! instead already be a ciphertext of the kind expected there; anything
//! else, plaintext above all, refuses the command.
//!
//! **Queryable Encryption** (feature `qe`): a namespace the lookup answers
//! `NamespaceSchema::Queryable` for (its `encryptedFields`) gets the
//! same command and field allow-lists, then QE walkers that put
//! mongocryptd's QE *placeholders* (subtype 6, first byte 3) where values
//! must be encrypted, in mongocryptd's command shape; the result is
//! [`Analysis::Marked`] as for FLE1, and the placeholders are turned into
//! payloads after it. What they support and refuse is listed in
//! `queryable`. A QE collection named by a command of another collection
//! (a join, a union, a view) is refused, as is one whose query types csfle
//! does not all implement.
//!
//! The client-level `bulkWrite` (one namespace, its only `nsInfo` entry):
//! on a QE collection its operations are analysed as that collection's
//! `insert`, `update` and `delete` statements, on a namespace without a
//! schema it is sent unchanged, on an FLE1 one it is refused.
//!
//! The code is split along what it analyses: [`commands`](self) (the
//! allow-lists and dispatch), `bulk_write` (the client-level
//! `bulkWrite`'s namespace and operations), `queryable` (QE collections'
//! commands), updates, pipelines, filters, expressions, the document
//! shape a pipeline stage sees, and markings, each importing only files
//! after it in that list and `context` (the namespace, error and
//! per-analysis state all of them share); this file, above them all,
//! holds the public entry points.

mod bulk_write;
mod commands;
mod context;
mod expressions;
mod filters;
mod markings;
mod pipelines;
#[cfg(all(test, feature = "qe"))]
mod qe_vector_tests;
#[cfg(feature = "qe")]
mod queryable;
mod shape;
mod updates;

/// `bulkWrite`'s target: automatic encryption finalizes a Queryable
/// Encryption `bulkWrite` for the namespace of its `nsInfo`.
#[cfg(all(feature = "qe", feature = "driver"))]
pub(crate) use bulk_write::namespace as bulk_write_namespace;
pub use commands::{Analysis, command_target, is_bypassed};
pub use context::{Error, Namespace, NamespaceSchema};
#[cfg(feature = "driver")]
pub(crate) use markings::Markings;
#[cfg(feature = "driver")]
pub(crate) use markings::redact_document_alt_names;
#[cfg(feature = "driver")]
pub(crate) use markings::redact_key_error;
#[cfg(feature = "driver")]
pub(crate) use markings::resolve_pointer;
pub use markings::{encrypt_markings, marking_keys};

use bson::Document;

/// Whether `name` is a collection command automatic encryption analyses
/// (`insert`, `find`, `aggregate`, …; `explain` wraps one of them).
pub fn is_supported(name: &str) -> bool {
    commands::is_supported(name)
}

/// Analyzes `command`, run on database `db`, looking up each namespace it
/// touches with `schemas`.
///
/// A namespace `schemas` answers [`NamespaceSchema::Unknown`] for refuses
/// the command with [`Error::SchemaUnavailable`]; an asynchronous caller
/// fetches that schema and calls again (see
/// `AutoEncrypter`, feature `driver`).
pub fn analyze<'s>(
    command: &Document,
    db: &str,
    schemas: &dyn Fn(&Namespace) -> NamespaceSchema<'s>,
) -> Result<Analysis, Error> {
    commands::analyze(command, db, schemas)
}

/// Verifies `command`, run on database `db`, before it is sent as written
/// under `bypass_query_analysis` (the drivers' `bypassQueryAnalysis`: the
/// application encrypts values itself, with explicit encryption): every
/// value at a position the schemas encrypt must already be a ciphertext of
/// the kind expected there, or the command is refused with
/// [`Error::PlaintextUnderBypass`], naming the field (never the value).
///
/// The kinds, by their first byte (binary subtype 6): an FLE1 field takes
/// the ciphertext of its schema's algorithm (1 deterministic, 2 random); a
/// Queryable Encryption field written (an inserted or replacement
/// document, `$set`, `$setOnInsert`) takes an insert payload (11) when
/// indexed, an unindexed value (16) when not; one queried takes an
/// equality find payload (12) when equality-indexed, a range find payload
/// (13) when range-indexed. A marking or placeholder (first byte 0 or 3,
/// each holding its value in plaintext) is refused anywhere in the command.
///
/// The same dispatch and walkers as [`analyze`], with every other refusal
/// of analysis kept (unsupported commands, fields, operators and stages;
/// expressions on encrypted fields; joins; …): what analysis cannot tell
/// is safe, it cannot tell is encrypted either. A namespace `schemas`
/// answers [`NamespaceSchema::Unknown`] for refuses the command with
/// [`Error::SchemaUnavailable`], as [`analyze`] does. Commands
/// [`is_bypassed`] names pass unread.
pub fn verify_bypassed<'s>(
    command: &Document,
    db: &str,
    schemas: &dyn Fn(&Namespace) -> NamespaceSchema<'s>,
) -> Result<(), Error> {
    commands::verify_bypassed(command, db, schemas)
}
