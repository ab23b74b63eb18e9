//! Match expressions (`filter`, `q`, `$match`, validators), sorts and
//! projections.

use super::commands::Ctx;
use super::shape::Shape;
use super::{Error, expressions, markings};
use crate::crypto::Algorithm;
use crate::schema::{EncryptSpec, FieldInfo};
use bson::{Bson, Document, doc};

/// Rewrites a match expression into normalised form with markings.
pub(crate) fn filter<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    filter: &Document,
) -> Result<Document, Error> {
    let mut preds = Vec::new();
    for (k, v) in filter {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                let Bson::Array(items) = v else {
                    return Err(Error::Malformed(format!("{k} needs an array")));
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Bson::Document(d) = item else {
                        return Err(Error::Malformed(format!("{k} needs documents")));
                    };
                    out.push(Bson::Document(self::filter(cx, shape, d)?));
                }
                preds.push(doc! {k.clone(): out});
            }
            "$comment" => preds.push(doc! {k.clone(): v.clone()}),
            // An expression: allowed when it reads no encrypted field.
            "$expr" => {
                expressions::check(shape, v)?;
                preds.push(doc! {k.clone(): v.clone()});
            }
            "$text" | "$where" | "$jsonSchema" | "$sampleRate" => {
                return Err(Error::UnsupportedOperator(k.clone()));
            }
            op if op.starts_with('$') => return Err(Error::UnsupportedOperator(op.to_owned())),
            path => field_predicates(cx, shape, path, v, &mut preds)?,
        }
    }
    Ok(match preds.len() {
        0 => Document::new(),
        1 => preds.pop().unwrap_or_default(),
        _ => doc! {"$and": preds},
    })
}

fn field_predicates<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    path: &str,
    v: &Bson,
    preds: &mut Vec<Document>,
) -> Result<(), Error> {
    let ops: Vec<(String, Bson)> = match v {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            d.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        Bson::RegularExpression(_) => vec![("$regex".into(), v.clone())],
        other => vec![("$eq".into(), other.clone())],
    };
    match shape.field(path)? {
        FieldInfo::Plain => {
            for (op, arg) in ops {
                if op == "$where" {
                    return Err(Error::UnsupportedOperator(op));
                }
                preds.push(doc! {path: {op: arg}});
            }
        }
        FieldInfo::BelowEncrypted(_) => return Err(Error::BelowEncrypted(path.to_owned())),
        FieldInfo::ContainsEncrypted => {
            for (op, arg) in ops {
                if op != "$exists" {
                    return Err(Error::InvalidOperator {
                        path: path.to_owned(),
                        op: format!("{op} on a document containing encrypted fields"),
                    });
                }
                preds.push(doc! {path: {op: arg}});
            }
        }
        FieldInfo::Encrypted(spec) => {
            for (op, arg) in ops {
                let rewritten = encrypted_operator(cx, spec, path, &op, &arg)?;
                preds.push(doc! {path: {op: rewritten}});
            }
        }
        FieldInfo::Conflict => return Err(Error::SchemaConflict(path.to_owned())),
    }
    Ok(())
}

fn encrypted_operator(
    cx: &mut Ctx<'_, '_>,
    spec: &EncryptSpec,
    path: &str,
    op: &str,
    arg: &Bson,
) -> Result<Bson, Error> {
    if op == "$exists" {
        return Ok(arg.clone());
    }
    if matches!(op, "$text" | "$where") {
        return Err(Error::UnsupportedOperator(op.to_owned()));
    }
    if spec.algorithm == Algorithm::Random {
        return Err(Error::RandomizedQuery(path.to_owned()));
    }
    match op {
        "$eq" | "$ne" => {
            if matches!(arg, Bson::Null) {
                return Err(Error::NullEquality(path.to_owned()));
            }
            if matches!(arg, Bson::RegularExpression(_)) {
                return Err(Error::InvalidOperator {
                    path: path.to_owned(),
                    op: "$regex".into(),
                });
            }
            markings::mark(cx, spec, arg, path, None)
        }
        "$in" | "$nin" => {
            let Bson::Array(items) = arg else {
                return Err(Error::Malformed(format!("{op} needs an array")));
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Bson::Null => return Err(Error::NullInIn(path.to_owned())),
                    Bson::RegularExpression(_) => {
                        return Err(Error::InvalidOperator {
                            path: path.to_owned(),
                            op: "$regex".into(),
                        });
                    }
                    other => out.push(markings::mark(cx, spec, other, path, None)?),
                }
            }
            Ok(Bson::Array(out))
        }
        "$not" => {
            let Bson::Document(inner) = arg else {
                return Err(Error::InvalidOperator {
                    path: path.to_owned(),
                    op: "$not".into(),
                });
            };
            let mut out = Document::new();
            for (k, v) in inner {
                out.insert(k.clone(), encrypted_operator(cx, spec, path, k, v)?);
            }
            Ok(Bson::Document(out))
        }
        other => Err(Error::InvalidOperator {
            path: path.to_owned(),
            op: other.to_owned(),
        }),
    }
}

/// A sort specification: every key plain (`{$meta: …}` values are fine).
pub(crate) fn sort(shape: &Shape<'_>, sort: Option<&Bson>) -> Result<(), Error> {
    match sort {
        None => Ok(()),
        Some(Bson::Document(s)) => {
            for p in s.keys() {
                if !matches!(shape.field(p)?, FieldInfo::Plain) {
                    return Err(Error::SortOnEncrypted(p.clone()));
                }
            }
            Ok(())
        }
        Some(_) if !shape.encrypted() => Ok(()),
        Some(_) => Err(Error::Malformed("sort must be a document".into())),
    }
}

/// `min` / `max` of a find: index bounds, so values of the fields named.
pub(crate) fn min_max(shape: &Shape<'_>, bounds: Option<&Bson>) -> Result<(), Error> {
    if let Some(Bson::Document(b)) = bounds {
        for p in b.keys() {
            if !matches!(shape.field(p)?, FieldInfo::Plain) {
                return Err(Error::MinMaxOnEncrypted(p.clone()));
            }
        }
    }
    Ok(())
}

/// A find projection (`projection`, findAndModify's `fields`) or a
/// `$project` stage: inclusion and exclusion are fine anywhere; `$slice`
/// and `$meta` are; `$elemMatch` needs a plain array; any other value is an
/// expression, which must read no encrypted field and may not be assigned
/// to a field the schema encrypts.
pub(crate) fn projection(shape: &Shape<'_>, p: &Document, prefix: &str) -> Result<(), Error> {
    for (k, spec) in p {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match spec {
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Boolean(_) => {}
            Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                let op = d.keys().next().map_or("", String::as_str);
                match (op, d.len()) {
                    ("$slice" | "$meta", 1) => {}
                    ("$elemMatch", 1) => {
                        if !matches!(shape.field(&path)?, FieldInfo::Plain) {
                            return Err(Error::InvalidOperator {
                                path,
                                op: "$elemMatch".into(),
                            });
                        }
                    }
                    _ => assigned(shape, &path, spec)?,
                }
            }
            // A nested projection: `{a: {b: 1}}` is `{"a.b": 1}`.
            Bson::Document(d) => projection(shape, d, &path)?,
            other => assigned(shape, &path, other)?,
        }
    }
    Ok(())
}

/// A computed or literal value assigned to `path` (`$project`,
/// `$addFields`/`$set`, a find projection's expression).
pub(crate) fn assigned(shape: &Shape<'_>, path: &str, expr: &Bson) -> Result<(), Error> {
    expressions::check(shape, expr)?;
    if !matches!(shape.field(path)?, FieldInfo::Plain) {
        return Err(Error::AssignToEncrypted {
            ns: shape.ns().to_string(),
            field: path.to_owned(),
        });
    }
    Ok(())
}

/// A collection validator or an index's partial filter: stored on the
/// server and evaluated there, so it may not compare an encrypted field
/// (the `$jsonSchema` the server keeps is the exception: it is the schema).
pub(crate) fn validator(shape: &Shape<'_>, filter: &Document) -> Result<(), Error> {
    for (k, v) in filter {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                if let Bson::Array(items) = v {
                    for item in items {
                        if let Bson::Document(d) = item {
                            validator(shape, d)?;
                        }
                    }
                }
            }
            "$jsonSchema" | "$comment" => {}
            "$expr" => expressions::check(shape, v)?,
            op if op.starts_with('$') => {
                if shape.encrypted() {
                    return Err(Error::UnsupportedOperator(op.to_owned()));
                }
            }
            path => {
                if !matches!(shape.field(path)?, FieldInfo::Plain) {
                    return Err(Error::ComparisonToEncrypted(path.to_owned()));
                }
                if let Bson::Document(ops) = v
                    && let Some(e) = ops.get("$expr")
                {
                    expressions::check(shape, e)?;
                }
            }
        }
    }
    Ok(())
}
