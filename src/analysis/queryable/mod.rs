//! Query analysis for Queryable Encryption collections (feature `qe`):
//! what mongocryptd / crypt_shared do for the drivers, in process.
//!
//! A command on a collection the caller resolves to
//! [`NamespaceSchema::Queryable`](crate::analysis::NamespaceSchema) goes
//! through the same dispatch as FLE1 (the command allow-list and each
//! command's field allow-list in `commands`), then here, where every value
//! of an encrypted field is replaced by a QE *placeholder* (binary subtype
//! 6, first byte 3, then mongocryptd's `{t, a, ki, ku, v, cm, s?}`, written
//! by [`write_placeholder`](crate::qe::placeholder::write_placeholder)),
//! in mongocryptd's command shape: filters normalised (`{f: v}` becomes
//! `{f: {$eq: v}}`, several predicates an `$and`), range predicates as in
//! [`filters`](self::filters), written values as in
//! [`writes`](self::writes). The placeholders are turned into payloads,
//! and `encryptionInformation` added, after analysis.
//!
//! Supported, as libmongocrypt's test data (its mongocryptd replies, and
//! the specification's QE tests) show it:
//!
//! * `insert`; `update` and `findAndModify` with a replacement or `$set` /
//!   `$setOnInsert` (upserts included); `delete`; `find`, `count`,
//!   `distinct` (on a plain key), `aggregate` with `$match`, `$limit`,
//!   `$skip`, `$sample`, `$sort`, `$project`, `$addFields`/`$set`,
//!   `$unset`, `$unwind`, `$count`; `explain` of any of them; `create`
//!   (with `encryptedFields`), `collMod`, `createIndexes`;
//! * the client-level `bulkWrite` on one QE collection (its only `nsInfo`
//!   entry), as libmongocrypt 1.10 and later send it to query analysis:
//!   inserts, or one update or delete, each analysed as the `insert`
//!   document, `update` statement or `delete` statement it is (see
//!   `bulk_write`), the `encryptionInformation` placed inside the `nsInfo`
//!   entry after analysis;
//! * on an equality field: `$eq`, the implicit equality and `$in`; on a
//!   range field: `$gt`, `$gte`, `$lt`, `$lte` (one predicate, one or two
//!   sides), equality and `$in` (an `$or` of equalities); `$and`, `$or` around them; `$expr` and plain
//!   predicates that read no encrypted field;
//! * sorts, projections, `let`, validators, partial filters and array
//!   filters through the FLE1 checks, on the collection's encrypted paths.
//!
//! Fail closed: the default arm of every match refuses, naming the field
//! or stage. **Refused here, and possibly allowed by crypt_shared** (not
//! shown supported by libmongocrypt's data or the specification's tests,
//! or shown only in a form whose encoding is not known here):
//!
//! * `$ne`, `$nin`, `$not`, and any predicate on an encrypted field below
//!   a `$nor` (negations);
//! * `$exists`, `$type`, `$regex`, `$elemMatch`, `$size`, `$all`, `$mod`,
//!   bit and geo operators on an encrypted field or a document holding
//!   one; equality with a regular expression value;
//! * an encrypted field in an expression (`$expr` comparisons, including
//!   range comparisons in aggregate expressions, two encrypted fields
//!   compared, `$project`/`$addFields` computing on one, `let`);
//! * sorting, `min`/`max` bounds and `distinct` on an encrypted field;
//! * `$unset`, `$rename`, `$inc`, `$mul`, `$min`, `$max`,
//!   `$currentDate`, `$push`, `$pull`, `$pullAll`, `$pop`, `$addToSet`,
//!   `$bit` on an encrypted field, positional and array-filter updates
//!   below one, pipeline-style updates on a QE collection;
//! * `$lookup`, `$graphLookup`, `$unionWith`, `$facet`, `$group`,
//!   `$bucket`, `$bucketAuto`, `$sortByCount`, `$replaceRoot`,
//!   `$replaceWith`, `$redact`, `$geoNear`, `$setWindowFields`,
//!   `$densify`, `$fill`, `$merge`, `$out`, `$documents`, `$changeStream`,
//!   search and every other stage on a QE collection; a QE collection
//!   named by another collection's command (a join, a union, a view, a
//!   pipeline write), and FLE1 and QE collections in one command; a
//!   `bulkWrite` naming more than one namespace (libmongocrypt's limit),
//!   or with an update or a delete beside other operations (mongocryptd's
//!   and mongod's);
//! * views named like, or over, a QE collection;
//! * text-search query types and Decimal128 range indexes with a
//!   precision (every command on such a collection, by
//!   [`EncryptedFields::check_supported`]);
//! * writing, renaming, removing or querying `__safeContent__`.

mod bulk_write;
mod filters;
mod view;
mod writes;

pub(crate) use bulk_write::ops as bulk_write_ops;
pub(crate) use view::count_placeholders;

use self::view::{View, get_doc, paths_schema};
use crate::analysis::context::{Ctx, Error, Namespace};
use crate::analysis::{expressions, filters as shared, updates};
use crate::qe::encrypted_fields::EncryptedFields;
use crate::schema::FieldInfo;
use bson::{Bson, Document, doc};

/// Fields a command may carry only on a QE collection, besides those of
/// its FLE1 allow-list: `create`'s `encryptedFields` (the schema itself,
/// no user data; libmongocrypt's `qe_keyAltName/create` reply passes it
/// through unchanged).
const QUERYABLE_FIELDS: &[(&str, &[&str])] = &[("create", &["encryptedFields"])];

/// Whether `command` may carry `field` on a QE collection beyond its
/// FLE1 allow-list.
pub(crate) fn allows_field(command: &str, field: &str) -> bool {
    QUERYABLE_FIELDS
        .iter()
        .any(|(c, fields)| *c == command && fields.contains(&field))
}

/// The fields of an update statement (the same as FLE1's).
const UPDATE_STATEMENT: &[&str] = &[
    "q",
    "u",
    "upsert",
    "multi",
    "arrayFilters",
    "collation",
    "hint",
    "c",
    "sort",
];

/// The fields of a delete statement (the same as FLE1's).
const DELETE_STATEMENT: &[&str] = &["q", "limit", "collation", "hint"];

/// One command on the QE collection `ns`, its fields already checked
/// against the command's allow-list: the command with placeholders.
pub(crate) fn collection_command(
    cx: &mut Ctx<'_, '_>,
    ns: &Namespace,
    fields: &EncryptedFields,
    name: &str,
    cmd: &Document,
) -> Result<Document, Error> {
    let schema = paths_schema(fields)?;
    let mut view = View::new(ns, fields, &schema);
    let mut out = cmd.clone();
    match name {
        "insert" => insert(cx, &view, cmd, &mut out)?,
        "find" | "count" | "distinct" => find_count_or_distinct(cx, &view, name, cmd, &mut out)?,
        "delete" | "update" => statements(cx, &view, name, cmd, &mut out)?,
        "findAndModify" => find_and_modify(cx, &view, cmd, &mut out)?,
        "aggregate" => aggregate(cx, &mut view, cmd, &mut out)?,
        "create" | "collMod" => create_or_coll_mod(&view, name, cmd)?,
        "createIndexes" => create_indexes(&view, cmd)?,
        other => return Err(Error::UnsupportedCommand(other.to_owned())),
    }
    Ok(out)
}

/// `let` variables: evaluated without a document, checked like any
/// expression.
fn let_vars(view: &View<'_>, cmd: &Document, key: &str) -> Result<(), Error> {
    if let Some(vars) = get_doc(cmd, key)? {
        vars.values()
            .try_for_each(|v| expressions::check(&view.shape, v))?;
    }
    Ok(())
}

/// `insert`: every document written.
fn insert(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    let Some(Bson::Array(docs)) = cmd.get("documents") else {
        return Err(Error::Malformed("insert needs 'documents'".into()));
    };
    let mut written = Vec::with_capacity(docs.len());
    for d in docs {
        let Bson::Document(d) = d else {
            return Err(Error::Malformed("documents must be documents".into()));
        };
        written.push(Bson::Document(insert_document(cx, view, d)?));
    }
    out.insert("documents", written);
    Ok(())
}

/// One inserted document (of an `insert`, or a `bulkWrite` insert),
/// written whole.
fn insert_document(cx: &mut Ctx<'_, '_>, view: &View<'_>, d: &Document) -> Result<Document, Error> {
    writes::write_document(cx, view, d, "", true)
}

/// `find`, `count`, `distinct`: the filter rewritten; what else `find`
/// reads checked; `distinct`'s key plain.
fn find_count_or_distinct(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    name: &str,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    let key = if name == "find" { "filter" } else { "query" };
    if let Some(f) = get_doc(cmd, key)?
        && view.encrypted()
    {
        out.insert(key, filters::filter(cx, view, f, false)?);
    }
    if name == "find" {
        shared::sort(&view.shape, cmd.get("sort"))?;
        if let Some(p) = get_doc(cmd, "projection")? {
            shared::projection(&view.shape, p, "")?;
        }
        shared::min_max(&view.shape, cmd.get("min"))?;
        shared::min_max(&view.shape, cmd.get("max"))?;
        let_vars(view, cmd, "let")?;
    }
    if name == "distinct" {
        let Some(Bson::String(k)) = cmd.get("key") else {
            return Err(Error::Malformed("distinct needs a string 'key'".into()));
        };
        if !matches!(view.field(k)?, FieldInfo::Plain) {
            return Err(Error::InvalidOperator {
                path: k.clone(),
                op: "distinct".into(),
            });
        }
    }
    Ok(())
}

/// `delete`, `update`: each statement's filter and update rewritten, its
/// fields checked against the statement's allow-list.
fn statements(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    name: &str,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    let list = if name == "delete" {
        "deletes"
    } else {
        "updates"
    };
    let Some(Bson::Array(stmts)) = cmd.get(list) else {
        return Err(Error::Malformed(format!("{name} needs '{list}'")));
    };
    let mut rewritten = Vec::with_capacity(stmts.len());
    for s in stmts {
        let Bson::Document(s) = s else {
            return Err(Error::Malformed(format!("bad {name} statement")));
        };
        rewritten.push(Bson::Document(statement(cx, view, name, s)?));
    }
    out.insert(list, rewritten);
    let_vars(view, cmd, "let")?;
    Ok(())
}

/// One statement of a `delete` or `update` (`name`; also a `bulkWrite`
/// operation, as the statement it is): its fields checked against the
/// statement's allow-list, its filter and update rewritten, what else it
/// reads checked.
fn statement(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    name: &str,
    s: &Document,
) -> Result<Document, Error> {
    let (list, allowed) = if name == "delete" {
        ("deletes", DELETE_STATEMENT)
    } else {
        ("updates", UPDATE_STATEMENT)
    };
    for k in s.keys() {
        if !allowed.contains(&k.as_str()) {
            cx.unknown.push(format!("{list}.{k}"));
        }
    }
    let mut s = s.clone();
    if let Some(q) = get_doc(&s, "q")?
        && view.encrypted()
    {
        let q = filters::filter(cx, view, q, false)?;
        s.insert("q", q);
    }
    if let Some(u) = s.get("u").cloned() {
        updates::array_filters(&view.shape, &u, s.get("arrayFilters"))?;
        s.insert("u", writes::update(cx, view, &u)?);
    } else if s.contains_key("arrayFilters") {
        updates::array_filters(&view.shape, &Bson::Null, s.get("arrayFilters"))?;
    }
    shared::sort(&view.shape, s.get("sort"))?;
    let_vars(view, &s, "c")?;
    Ok(s)
}

/// `findAndModify`: the query and the update rewritten, what else it
/// reads checked.
fn find_and_modify(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    if let Some(q) = get_doc(cmd, "query")?
        && view.encrypted()
    {
        out.insert("query", filters::filter(cx, view, q, false)?);
    }
    updates::array_filters(
        &view.shape,
        cmd.get("update").unwrap_or(&Bson::Null),
        cmd.get("arrayFilters"),
    )?;
    if let Some(u) = cmd.get("update") {
        out.insert("update", writes::update(cx, view, u)?);
    }
    shared::sort(&view.shape, cmd.get("sort"))?;
    if let Some(p) = get_doc(cmd, "fields")? {
        shared::projection(&view.shape, p, "")?;
    }
    let_vars(view, cmd, "let")?;
    Ok(())
}

/// `aggregate`: the pipeline, stage by stage from an allow-list.
fn aggregate(
    cx: &mut Ctx<'_, '_>,
    view: &mut View<'_>,
    cmd: &Document,
    out: &mut Document,
) -> Result<(), Error> {
    let Some(Bson::Array(stages)) = cmd.get("pipeline") else {
        return Err(Error::Malformed("aggregate needs 'pipeline'".into()));
    };
    let_vars(view, cmd, "let")?;
    let mut rewritten = Vec::with_capacity(stages.len());
    for stage in stages {
        let Bson::Document(stage) = stage else {
            return Err(Error::Malformed(
                "a pipeline stage must be a document".into(),
            ));
        };
        let mut entries = stage.iter();
        let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
            return Err(Error::Malformed(
                "a pipeline stage must have exactly one field".into(),
            ));
        };
        let new = match op.as_str() {
            "$match" => {
                let Bson::Document(f) = arg else {
                    return Err(Error::Malformed("$match needs a document".into()));
                };
                if view.encrypted() {
                    Some(doc! {"$match": filters::filter(cx, view, f, false)?})
                } else {
                    None
                }
            }
            "$limit" | "$skip" | "$sample" | "$unset" => None,
            "$sort" => {
                shared::sort(&view.shape, Some(arg))?;
                None
            }
            "$project" => {
                let Bson::Document(p) = arg else {
                    return Err(Error::Malformed("$project needs a document".into()));
                };
                shared::projection(&view.shape, p, "")?;
                None
            }
            "$addFields" | "$set" => {
                let Bson::Document(fields) = arg else {
                    return Err(Error::Malformed(format!("{op} needs a document")));
                };
                for (path, expr) in fields {
                    if path.split('.').next() == Some(view::SAFE_CONTENT) {
                        return Err(Error::SafeContent(path.clone()));
                    }
                    shared::assigned(&view.shape, path, expr)?;
                }
                None
            }
            "$unwind" => {
                let path = match arg {
                    Bson::Document(d) => d.get("path").cloned().unwrap_or(Bson::Null),
                    other => other.clone(),
                };
                expressions::check(&view.shape, &path)?;
                None
            }
            "$count" => {
                view.reshaped_by = Some("$count");
                None
            }
            other => {
                return Err(Error::UnsupportedStage {
                    stage: other.to_owned(),
                    ns: view.ns.to_string(),
                });
            }
        };
        rewritten.push(Bson::Document(new.unwrap_or_else(|| stage.clone())));
    }
    out.insert("pipeline", rewritten);
    Ok(())
}

/// `create`, `collMod`: no view named like a QE collection; the
/// validator may not compare an encrypted field.
fn create_or_coll_mod(view: &View<'_>, name: &str, cmd: &Document) -> Result<(), Error> {
    if cmd.contains_key("viewOn") || cmd.contains_key("pipeline") {
        return Err(Error::QueryableCollection {
            ns: view.ns.to_string(),
            what: format!("{name} of a view with the name of a Queryable Encryption collection"),
        });
    }
    if let Some(v) = get_doc(cmd, "validator")? {
        shared::validator(&view.shape, v, "validator")?;
    }
    Ok(())
}

/// `createIndexes`: each index's partial filter, checked like a
/// validator.
fn create_indexes(view: &View<'_>, cmd: &Document) -> Result<(), Error> {
    let Some(Bson::Array(indexes)) = cmd.get("indexes") else {
        return Err(Error::Malformed(
            "createIndexes: 'indexes' must be an array".into(),
        ));
    };
    for i in indexes {
        let Bson::Document(i) = i else {
            return Err(Error::Malformed("an index must be a document".into()));
        };
        match i.get("partialFilterExpression") {
            None => {}
            Some(Bson::Document(p)) => {
                shared::validator(&view.shape, p, "partialFilterExpression")?
            }
            Some(_) => {
                return Err(Error::Malformed(
                    "partialFilterExpression must be a document".into(),
                ));
            }
        }
    }
    Ok(())
}
