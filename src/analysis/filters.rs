//! Match expressions (`filter`, `q`, `$match`, validators), sorts and
//! projections.

use super::context::{Ctx, Error};
use super::shape::Shape;
use super::{expressions, markings};
use crate::crypto::Algorithm;
use crate::schema::{EncryptSpec, EncryptionSchema, FieldInfo, SchemaSource};
use bson::{Bson, Document, doc};

/// The operators a predicate on a plain path may use (an allow-list: any
/// other is refused on documents with encrypted fields). Their arguments
/// are values, checked by [`refuse_code`].
const PLAIN_OPERATORS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$type",
    "$regex",
    "$options",
    "$not",
    "$elemMatch",
    "$size",
    "$all",
    "$mod",
    "$bitsAllSet",
    "$bitsAnySet",
    "$bitsAllClear",
    "$bitsAnyClear",
    "$geoWithin",
    "$geoIntersects",
    "$within",
    "$near",
    "$nearSphere",
    "$maxDistance",
    "$minDistance",
];

/// Operators that run code or read the whole document: refused at any
/// depth of an operator's argument (`$elemMatch: {$expr: …}`,
/// `$not: {$where: …}`), where no analysis follows them.
const CODE_OPERATORS: &[&str] = &[
    "$expr",
    "$where",
    "$function",
    "$accumulator",
    "$jsonSchema",
    "$text",
    "$sampleRate",
];

/// Refuses a value that holds one of [`CODE_OPERATORS`] at any depth.
pub(crate) fn refuse_code(v: &Bson) -> Result<(), Error> {
    crate::nesting::visit(v, &mut |v| match v {
        Bson::Document(d) => match d.keys().find(|k| CODE_OPERATORS.contains(&k.as_str())) {
            Some(k) => Err(Error::UnsupportedOperator(k.clone())),
            None => Ok(()),
        },
        _ => Ok(()),
    })
}

/// One operator of a predicate on a plain path.
pub(crate) fn plain_operator(op: &str, arg: &Bson) -> Result<(), Error> {
    if !PLAIN_OPERATORS.contains(&op) {
        return Err(Error::UnsupportedOperator(op.to_owned()));
    }
    refuse_code(arg)
}

/// The value of a predicate on a plain path: operators, or a literal.
fn plain_predicate(v: &Bson) -> Result<(), Error> {
    match v {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            d.iter().try_for_each(|(op, arg)| plain_operator(op, arg))
        }
        other => refuse_code(other),
    }
}

/// The argument of `$elemMatch` on a plain array: a match expression on
/// its elements, or operators applied to them.
fn elem_match(m: &Document) -> Result<(), Error> {
    for (k, v) in m {
        match k.as_str() {
            "$and" | "$or" | "$nor" | "$comment" => plain_filter(&doc! {k.clone(): v.clone()})?,
            op if op.starts_with('$') => plain_operator(op, v)?,
            _ => plain_predicate(v)?,
        }
    }
    Ok(())
}

/// The clauses of a `$and`, `$or` or `$nor` (`op`): an array, else an
/// error; each clause a document, else an error when reached (a walker
/// stops at the first error, in order).
fn clauses<'a>(
    op: &'a str,
    v: &'a Bson,
) -> Result<impl ExactSizeIterator<Item = Result<&'a Document, Error>> + 'a, Error> {
    let Bson::Array(items) = v else {
        return Err(Error::Malformed(format!("{op} needs an array")));
    };
    Ok(items.iter().map(move |item| match item {
        Bson::Document(d) => Ok(d),
        _ => Err(Error::Malformed(format!("{op} needs documents"))),
    }))
}

/// A match expression whose paths are not the documents' own (an update's
/// `arrayFilters`, on array elements the update's identifiers name, which
/// cannot hold encrypted fields): only plain predicates.
pub(crate) fn plain_filter(f: &Document) -> Result<(), Error> {
    for (k, v) in f {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                for d in clauses(k, v)? {
                    plain_filter(d?)?;
                }
            }
            "$comment" => {}
            op if op.starts_with('$') => return Err(Error::UnsupportedOperator(op.to_owned())),
            _ => plain_predicate(v)?,
        }
    }
    Ok(())
}

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
                let items = clauses(k, v)?;
                let mut out = Vec::with_capacity(items.len());
                for d in items {
                    out.push(Bson::Document(self::filter(cx, shape, d?)?));
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
                plain_operator(&op, &arg)?;
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
                let plain = matches!(shape.field(&path)?, FieldInfo::Plain);
                let Some(arg) = d.get(op) else {
                    return Err(Error::Malformed("empty projection operator".into()));
                };
                match (op, d.len(), arg) {
                    // The find projection operator: a count, or
                    // [skip, count]. Any other argument is the
                    // aggregation expression `$slice`.
                    ("$slice", 1, a) if is_number(a) || is_number_pair(a) => {
                        if !plain {
                            return Err(Error::InvalidOperator {
                                path,
                                op: "$slice".into(),
                            });
                        }
                    }
                    // `{$meta: "textScore"}`: a value of the server's own,
                    // which may not land on an encrypted field.
                    ("$meta", 1, Bson::String(_)) => {
                        if !plain {
                            return Err(Error::AssignToEncrypted {
                                ns: shape.ns().to_string(),
                                field: path,
                            });
                        }
                    }
                    ("$elemMatch", 1, Bson::Document(m)) => {
                        if !plain {
                            return Err(Error::InvalidOperator {
                                path,
                                op: "$elemMatch".into(),
                            });
                        }
                        elem_match(m)?;
                    }
                    ("$elemMatch", _, _) => {
                        return Err(Error::Malformed("$elemMatch needs a document".into()));
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

fn is_number(v: &Bson) -> bool {
    matches!(v, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))
}

fn is_number_pair(v: &Bson) -> bool {
    matches!(v, Bson::Array(a) if a.len() == 2 && a.iter().all(is_number))
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

/// A collection validator or an index's partial filter (`what` says
/// which): stored on the server and evaluated there, so it may not compare
/// an encrypted field. A `$jsonSchema` in it is parsed as a schema (it may
/// be the one the server hands to automatic encryption later) and may not
/// hold values for a field that is, holds or may be encrypted.
pub(crate) fn validator(shape: &Shape<'_>, filter: &Document, what: &str) -> Result<(), Error> {
    for (k, v) in filter {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                for d in clauses(k, v)? {
                    validator(shape, d?, what)?;
                }
            }
            "$jsonSchema" => {
                let Bson::Document(s) = v else {
                    return Err(Error::Malformed("$jsonSchema needs a document".into()));
                };
                json_schema(shape, s, what)?;
            }
            "$comment" => {}
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
                if shape.encrypted() {
                    plain_predicate(v)?;
                }
            }
        }
    }
    Ok(())
}

/// Keywords of a `$jsonSchema` that hold values of the field they
/// constrain, or facts about its plaintext: refused where the field is,
/// holds or may be encrypted (the server keeps them, in plaintext, in the
/// collection's options, and cannot check them against ciphertext).
const VALUE_KEYWORDS: &[&str] = &[
    "enum",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "multipleOf",
    "default",
    "examples",
];

/// A `$jsonSchema` of a validator or partial filter: parsed by the schema
/// parser (a schema it refuses is refused here), then walked for
/// [`VALUE_KEYWORDS`] on paths the collection's schema or this one
/// encrypts.
fn json_schema(shape: &Shape<'_>, s: &Document, what: &str) -> Result<(), Error> {
    let own = EncryptionSchema::parse(s, SchemaSource::Remote).map_err(|source| {
        Error::InvalidJsonSchema {
            what: what.to_owned(),
            source,
        }
    })?;
    schema_values(shape, &own, s, "", false)
}

/// Whether `path` is, holds or is below an encrypted field, in the
/// collection's documents or in the schema being stored.
fn sensitive(shape: &Shape<'_>, own: &EncryptionSchema, path: &str) -> Result<bool, Error> {
    if path.is_empty() {
        return Ok(shape.encrypted() || own.has_encrypted_fields());
    }
    Ok(!matches!(shape.field(path)?, FieldInfo::Plain)
        || !matches!(own.field(path), FieldInfo::Plain))
}

/// Walks one schema node at `path`. `below` is set under a node that may
/// hold encrypted fields whose names are not known here
/// (`patternProperties`, `additionalProperties`, `items`): everything
/// there is treated as encrypted. Bounded: the parser checked the
/// schema's nesting.
fn schema_values(
    shape: &Shape<'_>,
    own: &EncryptionSchema,
    node: &Document,
    path: &str,
    below: bool,
) -> Result<(), Error> {
    let here = below || sensitive(shape, own, path)?;
    let refuse = |keyword: &str| Error::SchemaValueOnEncrypted {
        path: if path.is_empty() {
            "<root>".to_owned()
        } else {
            path.to_owned()
        },
        keyword: keyword.to_owned(),
    };
    for (k, v) in node {
        if here && VALUE_KEYWORDS.contains(&k.as_str()) {
            return Err(refuse(k));
        }
        match (k.as_str(), v) {
            ("properties", Bson::Document(props)) => {
                for (name, sub) in props {
                    if let Bson::Document(sub) = sub {
                        let p = if path.is_empty() {
                            name.clone()
                        } else {
                            format!("{path}.{name}")
                        };
                        schema_values(shape, own, sub, &p, below)?;
                    }
                }
            }
            ("patternProperties", Bson::Document(props)) => {
                for sub in props.values() {
                    if let Bson::Document(sub) = sub {
                        schema_values(shape, own, sub, path, here)?;
                    }
                }
            }
            ("additionalProperties" | "items" | "additionalItems", Bson::Document(sub)) => {
                schema_values(shape, own, sub, path, here)?;
            }
            ("items", Bson::Array(subs)) => {
                for sub in subs {
                    if let Bson::Document(sub) = sub {
                        schema_values(shape, own, sub, path, here)?;
                    }
                }
            }
            ("allOf" | "anyOf" | "oneOf", Bson::Array(subs)) => {
                for sub in subs {
                    if let Bson::Document(sub) = sub {
                        schema_values(shape, own, sub, path, below)?;
                    }
                }
            }
            ("not", Bson::Document(sub)) => schema_values(shape, own, sub, path, below)?,
            ("dependencies", Bson::Document(deps)) => {
                for sub in deps.values() {
                    if let Bson::Document(sub) = sub {
                        schema_values(shape, own, sub, path, below)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
