//! The operations of a client-level `bulkWrite` on a Queryable Encryption
//! collection (mongocryptd's answer in libmongocrypt's
//! `bulkWrite/simple/mongocryptd-reply.json`): inserts, or a single update
//! or delete (mongocryptd refuses an update or a delete beside other
//! operations, "Only insert is supported in BulkWrite with multiple
//! operations and Queryable Encryption.", and so does mongod), each
//! analysed as what it is in the collection's own commands, by the same
//! code:
//!
//! * `{insert: 0, document}`: `document` as a document of an `insert`;
//! * `{update: 0, filter, updateMods, multi, upsert, arrayFilters,
//!   collation, hint, sort}`: the `update` statement `{q: filter,
//!   u: updateMods, …}` (the other fields under their own names);
//! * `{delete: 0, filter, multi, collation, hint}`: the `delete`
//!   statement `{q: filter, collation, hint}` (`multi` is a delete
//!   statement's `limit`, which holds no user data).
//!
//! The rewritten `q` and `u` go back as `filter` and `updateMods`, every
//! field in its place; the command's `let` is checked as every command's.
//! The shapes (operation kinds, `nsInfo` entry 0, allow-lists, documents
//! where documents are needed) were checked by `analysis::bulk_write`
//! before the collection was looked up; here, again, anything else is
//! refused.

use super::view::{View, paths_schema};
use super::{insert_document, let_vars, statement};
use crate::analysis::context::{Ctx, Error, Namespace};
use crate::qe::encrypted_fields::EncryptedFields;
use bson::{Bson, Document};

/// `cmd`, a `bulkWrite` on the QE collection `ns` whose
/// `encryptedFields` are `fields`, with each operation rewritten.
pub(crate) fn ops(
    cx: &mut Ctx<'_, '_>,
    ns: &Namespace,
    fields: &EncryptedFields,
    cmd: &Document,
) -> Result<Document, Error> {
    let schema = paths_schema(fields)?;
    let view = View::new(ns, fields, &schema);
    let Some(Bson::Array(ops)) = cmd.get("ops") else {
        return Err(Error::Malformed("bulkWrite needs an 'ops' array".into()));
    };
    if ops.len() > 1
        && let Some((index, op)) = ops.iter().enumerate().find_map(|(i, op)| {
            let kind = op.as_document()?.keys().next()?;
            (kind != "insert").then(|| (i, kind.clone()))
        })
    {
        return Err(Error::BulkWriteQueryableOps {
            index,
            op,
            ns: ns.to_string(),
        });
    }
    let mut rewritten = Vec::with_capacity(ops.len());
    for op in ops {
        let Bson::Document(op) = op else {
            return Err(Error::Malformed("a bulkWrite op must be a document".into()));
        };
        let op = match op.keys().next().map(String::as_str) {
            Some("insert") => insert_op(cx, &view, op)?,
            Some(name @ ("update" | "delete")) => statement_op(cx, &view, name, op)?,
            _ => {
                return Err(Error::Malformed(
                    "a bulkWrite op must be an insert, an update or a delete".into(),
                ));
            }
        };
        rewritten.push(Bson::Document(op));
    }
    let_vars(&view, cmd, "let")?;
    let mut out = cmd.clone();
    out.insert("ops", rewritten);
    Ok(out)
}

/// `{insert: 0, document}`: the document written as an `insert` writes
/// it.
fn insert_op(cx: &mut Ctx<'_, '_>, view: &View<'_>, op: &Document) -> Result<Document, Error> {
    let Some(Bson::Document(d)) = op.get("document") else {
        return Err(Error::Malformed(
            "a bulkWrite insert needs a 'document'".into(),
        ));
    };
    let written = insert_document(cx, view, d)?;
    let mut out = op.clone();
    out.insert("document", written);
    Ok(out)
}

/// An update or delete operation (`name`), analysed as the statement of
/// its command: `filter` as `q`, `updateMods` as `u`, the rest under its
/// own name (a delete's `multi` left out, see the module documentation).
fn statement_op(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    name: &str,
    op: &Document,
) -> Result<Document, Error> {
    let mut stmt = Document::new();
    for (k, v) in op.iter().skip(1) {
        match k.as_str() {
            "filter" => {
                stmt.insert("q", v.clone());
            }
            "updateMods" if name == "update" => {
                stmt.insert("u", v.clone());
            }
            "multi" if name == "delete" => {}
            _ => {
                stmt.insert(k.clone(), v.clone());
            }
        }
    }
    let analysed = statement(cx, view, name, &stmt)?;
    let mut out = Document::new();
    for (k, v) in op {
        let new = match k.as_str() {
            "filter" => analysed.get("q"),
            "updateMods" if name == "update" => analysed.get("u"),
            _ => None,
        };
        out.insert(k.clone(), new.unwrap_or(v).clone());
    }
    Ok(out)
}
