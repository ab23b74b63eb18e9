//! The client-level `bulkWrite` command, as libmongocrypt (1.10 and later)
//! handles it: the command runs on `admin`, and the one namespace it
//! writes to is the only entry of its `nsInfo`
//! (`{bulkWrite: 1, ops: [...], nsInfo: [{ns: "db.coll"}], ...}`).
//!
//! * On a Queryable Encryption collection, each operation is analysed as
//!   the statement of that collection's own command it is (`queryable`:
//!   `{insert: 0, document}` as a document of an `insert`,
//!   `{update: 0, filter, updateMods, ...}` as an `update` statement,
//!   `{delete: 0, filter, ...}` as a `delete` statement); finalization
//!   puts the `encryptionInformation` inside the `nsInfo` entry.
//! * On a namespace with no schema, it is sent unchanged.
//! * On a namespace with an FLE1 `$jsonSchema`, it is refused
//!   ([`Error::BulkWrite`]): mongocryptd answers "The bulkWrite command
//!   only supports Queryable Encryption".
//!
//! Fail closed, before the namespace is looked up: `nsInfo` must hold one
//! entry, a document whose only field is a `db.coll` `ns` (libmongocrypt's
//! refusals, in its words); every operation must be a document whose first
//! field is `insert`, `update` or `delete` naming entry 0, whose other
//! fields are on that operation's allow-list, and which carries what it
//! writes or filters as a document. Anything else is refused whatever the
//! namespace: an operation csfle cannot read is one it cannot analyse.
//! (The command's own fields are checked in `commands`, with the other
//! commands' allow-lists.)

use super::context::{Ctx, Error, Namespace, Resolved};
#[cfg(feature = "qe")]
use super::queryable;
use bson::{Bson, Document};

/// The fields of an insert operation besides `insert`.
const INSERT_OP: &[&str] = &["document"];

/// The fields of an update operation besides `update` (the server's
/// `BulkWriteUpdateOp`, as the driver writes it; `updateMods` is a
/// replacement, update operators or a pipeline).
const UPDATE_OP: &[&str] = &[
    "filter",
    "updateMods",
    "multi",
    "upsert",
    "arrayFilters",
    "collation",
    "hint",
    "sort",
];

/// The fields of a delete operation besides `delete`.
const DELETE_OP: &[&str] = &["filter", "multi", "collation", "hint"];

/// The fields of `nsInfo`'s entry. An `encryptionInformation` is
/// finalization's to add, never the application's.
const NS_INFO_ENTRY: &[&str] = &["ns"];

/// The namespace `cmd`, a `bulkWrite`, writes to: `nsInfo`'s only
/// entry's `ns`, checked in libmongocrypt's order and with its words (no
/// namespace, not a string, no dot, more than one), then as csfle reads
/// namespaces (`db.coll`, neither empty), and the entry's fields.
pub(crate) fn namespace(cmd: &Document) -> Result<Namespace, Error> {
    let entries = match cmd.get("nsInfo") {
        Some(Bson::Array(entries)) => entries,
        _ => return Err(Error::BulkWriteNoNamespace),
    };
    let Some(Bson::Document(entry)) = entries.first() else {
        return Err(Error::BulkWriteNoNamespace);
    };
    let ns = match entry.get("ns") {
        None => return Err(Error::BulkWriteNoNamespace),
        Some(Bson::String(ns)) => ns,
        Some(other) => {
            return Err(Error::BulkWriteNamespaceType(crate::ciphertext::type_name(
                other.element_type(),
            )));
        }
    };
    if !ns.contains('.') {
        return Err(Error::BulkWriteNamespaceDot(ns.clone()));
    }
    if entries.len() > 1 {
        return Err(Error::BulkWriteNamespaces);
    }
    let ns = Namespace::parse(ns)?;
    if let Some(k) = entry.keys().find(|k| !NS_INFO_ENTRY.contains(&k.as_str())) {
        return Err(Error::BulkWriteField(format!("nsInfo.0.{k}")));
    }
    Ok(ns)
}

/// `cmd`, a `bulkWrite` writing to `ns` (its [`namespace`]), its own
/// fields already checked: its operations checked, then analysed for the
/// namespace's schema. Returns the command to send (placeholders in it
/// when the namespace is a Queryable Encryption collection with
/// encrypted fields).
pub(crate) fn analyze(
    cx: &mut Ctx<'_, '_>,
    ns: &Namespace,
    cmd: &Document,
) -> Result<Document, Error> {
    check_operations(cmd)?;
    match cx.resolve(ns)? {
        Resolved::Fle1(None) => Ok(cmd.clone()),
        Resolved::Fle1(Some(_)) => Err(Error::BulkWrite),
        #[cfg(feature = "qe")]
        Resolved::Queryable(fields) => queryable::bulk_write_ops(cx, ns, fields, cmd),
    }
}

/// Every operation of `cmd`: a document whose first field is `insert`,
/// `update` or `delete` naming `nsInfo` entry 0 (an `Int32` or `Int64`
/// 0), whose other fields are on the operation's allow-list, and which
/// has what it needs: an insert its `document`, an update its `filter` and
/// `updateMods`, a delete its `filter` (documents; `updateMods` a document
/// or a pipeline).
fn check_operations(cmd: &Document) -> Result<(), Error> {
    let ops = match cmd.get("ops") {
        Some(Bson::Array(ops)) => ops,
        _ => return Err(Error::Malformed("bulkWrite needs an 'ops' array".into())),
    };
    for (index, op) in ops.iter().enumerate() {
        let Bson::Document(op) = op else {
            return Err(Error::Malformed(format!(
                "bulkWrite op {index} must be a document"
            )));
        };
        let Some((kind, entry)) = op.iter().next() else {
            return Err(Error::Malformed(format!("bulkWrite op {index} is empty")));
        };
        let (allowed, needs): (&[&str], &[&str]) = match kind.as_str() {
            "insert" => (INSERT_OP, &["document"]),
            "update" => (UPDATE_OP, &["filter", "updateMods"]),
            "delete" => (DELETE_OP, &["filter"]),
            other => {
                return Err(Error::BulkWriteOpKind {
                    index,
                    op: other.to_owned(),
                });
            }
        };
        match entry {
            Bson::Int32(0) | Bson::Int64(0) => {}
            Bson::Int32(n) => return Err(op_namespace(index, kind, n.to_string())),
            Bson::Int64(n) => return Err(op_namespace(index, kind, n.to_string())),
            other => {
                let ty = crate::ciphertext::type_name(other.element_type());
                return Err(op_namespace(index, kind, format!("of type {ty}")));
            }
        }
        if let Some(k) = op.keys().skip(1).find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::BulkWriteField(format!("ops.{index}.{k}")));
        }
        for field in needs {
            match (*field, op.get(*field)) {
                (_, Some(Bson::Document(_))) | ("updateMods", Some(Bson::Array(_))) => {}
                (_, None) => {
                    return Err(Error::Malformed(format!(
                        "bulkWrite op {index}: {kind} needs '{field}'"
                    )));
                }
                (_, Some(_)) => {
                    return Err(Error::Malformed(format!(
                        "bulkWrite op {index}: '{field}' must be a document{}",
                        if *field == "updateMods" {
                            " or a pipeline"
                        } else {
                            ""
                        }
                    )));
                }
            }
        }
    }
    Ok(())
}

fn op_namespace(index: usize, op: &str, entry: String) -> Error {
    Error::BulkWriteOpNamespace {
        index,
        op: op.to_owned(),
        entry,
    }
}

#[cfg(all(test, feature = "qe"))]
#[path = "bulk_write_tests.rs"]
mod tests;
