//! Documents written: inserted documents, replacements, update operators.

use super::context::{Ctx, Error};
use super::shape::Shape;
use super::{filters, markings, pipelines};
use crate::schema::FieldInfo;
use bson::{Bson, Document};

/// Marks the encrypted fields of a document being written (insert,
/// replacement, `$set` of a sub-document). `prefix` is its path; `root`
/// the whole document, for JSON-pointer keys.
pub(crate) fn write_document<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    doc: &Document,
    prefix: &str,
    top: bool,
    root: Option<&Document>,
) -> Result<Document, Error> {
    let mut out = Document::new();
    for (k, v) in doc {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.insert(k.clone(), write_value(cx, shape, v, &path, root, top)?);
    }
    Ok(out)
}

fn write_value<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    v: &Bson,
    path: &str,
    root: Option<&Document>,
    top: bool,
) -> Result<Bson, Error> {
    match shape.field(path)? {
        FieldInfo::Plain => Ok(v.clone()),
        FieldInfo::Encrypted(spec) => {
            if top
                && let Bson::Timestamp(t) = v
                && t.time == 0
                && t.increment == 0
            {
                return Err(Error::TimestampZero(path.to_owned()));
            }
            markings::mark(cx, spec, v, path, root)
        }
        FieldInfo::ContainsEncrypted => match v {
            Bson::Document(d) => Ok(Bson::Document(write_document(
                cx, shape, d, path, false, root,
            )?)),
            Bson::Array(_) => Err(Error::CannotEncryptType {
                path: path.to_owned(),
                ty: "array",
                detail: ": the schema has encrypted fields below it, which cannot be inside arrays"
                    .into(),
            }),
            // Nothing there (an `Option` of a nested type that is `None`).
            Bson::Null => Ok(Bson::Null),
            // A scalar where the schema has a document holding encrypted
            // fields: the schema does not describe it, so it would be
            // stored as is, in plaintext.
            other => Err(Error::CannotEncryptType {
                path: path.to_owned(),
                ty: crate::ciphertext::type_name(other.element_type()),
                detail: ": the schema has encrypted fields below it, so only a document can be written there"
                    .into(),
            }),
        },
        FieldInfo::BelowEncrypted(_) => Err(Error::BelowEncrypted(path.to_owned())),
        FieldInfo::Conflict => Err(Error::SchemaConflict(path.to_owned())),
    }
}

/// An update (`u` of an update statement, `update` of findAndModify):
/// operators, a replacement document, or a pipeline.
pub(crate) fn update<'s>(cx: &mut Ctx<'_, 's>, shape: &Shape<'s>, u: &Bson) -> Result<Bson, Error> {
    let u = match u {
        Bson::Array(stages) => {
            if shape.encrypted() {
                return Err(Error::PipelineUpdate(shape.ns().to_string()));
            }
            // Still analysed: a stage could name another collection.
            return Ok(Bson::Array(pipelines::update_pipeline(cx, shape, stages)?));
        }
        Bson::Document(d) => d,
        _ => {
            return Err(Error::Malformed(
                "update must be a document or a pipeline".into(),
            ));
        }
    };
    let operators = u.keys().filter(|k| k.starts_with('$')).count();
    if operators == 0 {
        return Ok(Bson::Document(write_document(
            cx,
            shape,
            u,
            "",
            true,
            Some(u),
        )?));
    }
    if operators != u.len() {
        // `{name: "x", $set: {ssn: …}}`: as a replacement the `$set` field
        // would carry its value in plaintext.
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
                    set.insert(path.clone(), set_path(cx, shape, path, v)?);
                }
                set
            }
            "$unset" => fields.clone(),
            "$rename" => {
                for (from, to) in fields {
                    let to = to
                        .as_str()
                        .ok_or_else(|| Error::Malformed("$rename needs strings".into()))?;
                    let same = match (shape.field(from)?, shape.field(to)?) {
                        (FieldInfo::Plain, FieldInfo::Plain) => true,
                        (FieldInfo::Encrypted(x), FieldInfo::Encrypted(y)) => x == y,
                        _ => false,
                    };
                    if !same {
                        return Err(Error::Rename {
                            from: from.clone(),
                            to: to.to_owned(),
                        });
                    }
                }
                fields.clone()
            }
            "$inc" | "$mul" | "$max" | "$min" | "$currentDate" | "$pop" | "$pull" | "$pullAll"
            | "$push" | "$addToSet" | "$bit" => {
                for p in fields.keys() {
                    if !matches!(shape.field(&encrypted_prefix(p))?, FieldInfo::Plain) {
                        return Err(Error::UpdateOperator(match op.as_str() {
                            "$inc" | "$mul" => "$inc and $mul",
                            "$max" | "$min" => "$max and $min",
                            "$currentDate" => "$currentDate",
                            "$pop" => "$pop",
                            "$pull" => "$pull",
                            "$pullAll" => "$pullAll",
                            "$push" => "$push",
                            "$addToSet" => "$addToSet",
                            _ => "$bit",
                        }));
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

fn set_path<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    path: &str,
    v: &Bson,
) -> Result<Bson, Error> {
    let segments: Vec<&str> = path.split('.').collect();
    if let Some(i) = segments
        .iter()
        .position(|s| *s == "$" || s.starts_with("$["))
    {
        let prefix = segments[..i].join(".");
        if !matches!(shape.field(&prefix)?, FieldInfo::Plain) {
            return Err(if segments[i] == "$" {
                Error::Positional(path.to_owned())
            } else {
                Error::ArrayUpdate(path.to_owned())
            });
        }
        return Ok(v.clone());
    }
    // A `$set` has no whole document to resolve a JSON-pointer key against.
    write_value(cx, shape, v, path, None, false)
}

/// An update's `arrayFilters` (update statements, findAndModify): every
/// path of the update that names an identifier (`$[t]`) must have a plain
/// array before it, and each filter, on the elements of such arrays, may
/// only hold plain predicates.
pub(crate) fn array_filters(
    shape: &Shape<'_>,
    u: &Bson,
    array_filters: Option<&Bson>,
) -> Result<(), Error> {
    let Some(array_filters) = array_filters else {
        return Ok(());
    };
    let Bson::Array(array_filters) = array_filters else {
        return Err(Error::Malformed("arrayFilters must be an array".into()));
    };
    if !shape.encrypted() {
        return Ok(());
    }
    if let Bson::Document(u) = u {
        for (op, fields) in u.iter().filter(|(op, _)| op.starts_with('$')) {
            let Bson::Document(fields) = fields else {
                continue; // `update` refuses it
            };
            let renamed_to = fields
                .values()
                .filter(|_| op == "$rename")
                .filter_map(Bson::as_str);
            for path in fields.keys().map(String::as_str).chain(renamed_to) {
                let segments: Vec<&str> = path.split('.').collect();
                if let Some(i) = segments.iter().position(|s| s.starts_with("$[")) {
                    if i == 0 {
                        return Err(Error::Malformed(format!(
                            "'{path}' starts with an array identifier"
                        )));
                    }
                    if !matches!(shape.field(&segments[..i].join("."))?, FieldInfo::Plain) {
                        return Err(Error::ArrayUpdate(path.to_owned()));
                    }
                }
            }
        }
    }
    for f in array_filters {
        let Bson::Document(f) = f else {
            return Err(Error::Malformed("arrayFilters must hold documents".into()));
        };
        filters::plain_filter(f)?;
    }
    Ok(())
}

/// The longest leading part of `path` before any positional segment.
fn encrypted_prefix(path: &str) -> String {
    path.split('.')
        .take_while(|s| !s.starts_with('$'))
        .collect::<Vec<_>>()
        .join(".")
}
