//! Documents written to a Queryable Encryption collection: inserted
//! documents, replacements and update operators. Each value of an
//! encrypted field becomes an insert placeholder (t 1) of the field's
//! algorithm: unindexed (a 1), equality (a 2) or range (a 3, `v` the range
//! insert spec `{v, min, max, precision?, trimFactor?}`), with the
//! field's contention (`cm`) and, for range, sparsity (`s`). Only `$set`
//! and `$setOnInsert` may write an encrypted field; every other operator
//! on one is refused, and so is anything that would write, rename or
//! remove `__safeContent__`.

use super::view::{View, check_write_value};
use crate::analysis::context::{Ctx, Error};
use crate::qe::encrypted_fields::{EncryptedField, EncryptedFieldsError, FieldQueries};
use crate::qe::placeholder::PlaceholderRequest;
use crate::schema::FieldInfo;
use bson::{Bson, Document};

/// Marks the encrypted fields of a document being written (an inserted
/// document, a replacement, a sub-document `$set`). `prefix` is its path;
/// `top` is set for a whole document (`Timestamp(0, 0)` is refused there:
/// the server would replace it after encryption).
pub(crate) fn write_document(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    doc: &Document,
    prefix: &str,
    top: bool,
) -> Result<Document, Error> {
    let mut out = Document::new();
    for (k, v) in doc {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.insert(k.clone(), write_value(cx, view, v, &path, top)?);
    }
    Ok(out)
}

fn write_value(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    v: &Bson,
    path: &str,
    top: bool,
) -> Result<Bson, Error> {
    match view.field(path)? {
        FieldInfo::Plain => Ok(v.clone()),
        FieldInfo::Encrypted(_) => {
            let field = view.encrypted_field(path)?;
            insert_placeholder(cx, view, field, path, v, top)
        }
        FieldInfo::ContainsEncrypted => match v {
            Bson::Document(d) => Ok(Bson::Document(write_document(cx, view, d, path, false)?)),
            // Nothing there.
            Bson::Null => Ok(Bson::Null),
            Bson::Array(_) => Err(Error::CannotEncryptType {
                path: path.to_owned(),
                ty: "array",
                detail: ": the collection has encrypted fields below it, which cannot be inside arrays"
                    .into(),
            }),
            other => Err(Error::CannotEncryptType {
                path: path.to_owned(),
                ty: crate::ciphertext::type_name(other.element_type()),
                detail: ": the collection has encrypted fields below it, so only a document can be written there"
                    .into(),
            }),
        },
        FieldInfo::BelowEncrypted(_) => Err(Error::BelowEncrypted(path.to_owned())),
        FieldInfo::Conflict => Err(Error::SchemaConflict(path.to_owned())),
    }
}

/// The insert placeholder of `value`, stored in `field`.
fn insert_placeholder(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    field: &EncryptedField,
    path: &str,
    value: &Bson,
    top: bool,
) -> Result<Bson, Error> {
    if top
        && let Bson::Timestamp(t) = value
        && t.time == 0
        && t.increment == 0
    {
        return Err(Error::TimestampZero(path.to_owned()));
    }
    check_write_value(cx, field, path, value)?;
    match field.queries() {
        FieldQueries::Unindexed => {
            view.placeholder(cx, field, PlaceholderRequest::UnindexedInsert(value))
        }
        FieldQueries::Equality { .. } => {
            view.placeholder(cx, field, PlaceholderRequest::EqualityInsert(value))
        }
        FieldQueries::Range(range) => {
            let index = view.range_index(field, range)?;
            view.placeholder(
                cx,
                field,
                PlaceholderRequest::RangeInsert {
                    value,
                    index: index.spec(),
                },
            )
        }
        FieldQueries::Unsupported(query_type) => Err(Error::EncryptedFields {
            ns: view.ns.to_string(),
            source: Box::new(EncryptedFieldsError::Unsupported {
                field: path.to_owned(),
                query_type: *query_type,
            }),
        }),
    }
}

/// An update (`u` of an update statement, `update` of findAndModify): a
/// replacement document, or update operators. A pipeline-style update is
/// refused: a pipeline cannot encrypt what it writes, and it could write
/// `__safeContent__`.
pub(crate) fn update(cx: &mut Ctx<'_, '_>, view: &View<'_>, u: &Bson) -> Result<Bson, Error> {
    let u = match u {
        Bson::Array(_) => return Err(Error::PipelineUpdate(view.ns.to_string())),
        Bson::Document(d) => d,
        _ => {
            return Err(Error::Malformed(
                "update must be a document or a pipeline".into(),
            ));
        }
    };
    let operators = u.keys().filter(|k| k.starts_with('$')).count();
    if operators == 0 {
        return Ok(Bson::Document(write_document(cx, view, u, "", true)?));
    }
    if operators != u.len() {
        // As a replacement, the operator's document would be stored as is.
        let field = u
            .keys()
            .find(|k| !k.starts_with('$'))
            .cloned()
            .unwrap_or_default();
        return Err(Error::MixedUpdate(field));
    }
    let mut out = Document::new();
    for (op, fields) in u {
        let Bson::Document(fields) = fields else {
            return Err(Error::Malformed(format!("{op} needs a document")));
        };
        let rewritten = match op.as_str() {
            "$set" | "$setOnInsert" => {
                let mut set = Document::new();
                for (path, v) in fields {
                    set.insert(path.clone(), set_path(cx, view, path, v)?);
                }
                set
            }
            "$rename" => {
                for (from, to) in fields {
                    let to = to
                        .as_str()
                        .ok_or_else(|| Error::Malformed("$rename needs strings".into()))?;
                    if !plain(view, from)? || !plain(view, to)? {
                        return Err(Error::Rename {
                            from: from.clone(),
                            to: to.to_owned(),
                        });
                    }
                }
                fields.clone()
            }
            "$unset" | "$inc" | "$mul" | "$max" | "$min" | "$currentDate" | "$pop" | "$pull"
            | "$pullAll" | "$push" | "$addToSet" | "$bit" => {
                for p in fields.keys() {
                    // A path that starts with a positional segment names
                    // the field after it in every element: that field, as
                    // well as the part before the first positional one,
                    // must be plain.
                    if p.starts_with('$')
                        || !plain(view, &before_positional(p))?
                        || !plain(view, &without_positional(p))?
                    {
                        return Err(Error::UpdateOperator(operator_name(op)));
                    }
                }
                fields.clone()
            }
            other => return Err(Error::UnsupportedOperator(other.to_owned())),
        };
        out.insert(op.clone(), rewritten);
    }
    Ok(Bson::Document(out))
}

/// Whether `path` is plain (neither encrypted, nor holding or inside an
/// encrypted field); refuses `__safeContent__`.
fn plain(view: &View<'_>, path: &str) -> Result<bool, Error> {
    Ok(matches!(view.field(path)?, FieldInfo::Plain))
}

/// The name [`Error::UpdateOperator`] gives an operator (`$unset`,
/// `$inc and $mul`, …).
fn operator_name(op: &str) -> &'static str {
    match op {
        "$unset" => "$unset",
        "$inc" | "$mul" => "$inc and $mul",
        "$max" | "$min" => "$max and $min",
        "$currentDate" => "$currentDate",
        "$pop" => "$pop",
        "$pull" => "$pull",
        "$pullAll" => "$pullAll",
        "$push" => "$push",
        "$addToSet" => "$addToSet",
        _ => "$bit",
    }
}

/// One field of a `$set`: a path through a positional segment (`$`,
/// `$[]`, `$[id]`) must have a plain array before it; any other path is
/// written like a field of a document (without `Timestamp(0, 0)`'s
/// refusal: an update does not insert).
fn set_path(cx: &mut Ctx<'_, '_>, view: &View<'_>, path: &str, v: &Bson) -> Result<Bson, Error> {
    let segments: Vec<&str> = path.split('.').collect();
    if let Some(i) = segments
        .iter()
        .position(|s| *s == "$" || s.starts_with("$["))
    {
        // `$[].ssn`, `$.ssn`, `$`: nothing before the positional segment
        // to check, and the field after it would be written as it is.
        if i == 0 {
            return Err(Error::Positional(path.to_owned()));
        }
        let prefix = segments[..i].join(".");
        if !plain(view, &prefix)? {
            return Err(if segments[i] == "$" {
                Error::Positional(path.to_owned())
            } else {
                Error::ArrayUpdate(path.to_owned())
            });
        }
        // The whole path too (`__safeContent__` anywhere in it), and the
        // field it names once the positional segments are taken out.
        if !plain(view, path)? || !plain(view, &without_positional(path))? {
            return Err(Error::ArrayUpdate(path.to_owned()));
        }
        return Ok(v.clone());
    }
    write_value(cx, view, v, path, false)
}

/// `path` without its positional segments (`$`, `$[]`, `$[id]`): the
/// field an update through them writes in each element.
fn without_positional(path: &str) -> String {
    path.split('.')
        .filter(|s| *s != "$" && !s.starts_with("$["))
        .collect::<Vec<_>>()
        .join(".")
}

/// The leading part of `path` before any `$`-prefixed segment.
fn before_positional(path: &str) -> String {
    path.split('.')
        .take_while(|s| !s.starts_with('$'))
        .collect::<Vec<_>>()
        .join(".")
}
