//! Aggregation expressions (`$expr`, projections, `let`, computed fields):
//! whether they read an encrypted field, or could.
//!
//! The server evaluates an expression on what it stores, so an expression
//! that reads an encrypted field compares or computes on ciphertext, and a
//! constant beside it is a plaintext sent to be compared with it. An
//! expression that may read any field — the whole document (`$$ROOT`,
//! `$$CURRENT`), JavaScript (`$function`, `$accumulator`, `$where`), a field
//! named at run time (`$getField` with a computed name) — is refused on
//! documents with encrypted fields, because no analysis can say which
//! fields it reads. Constants alone are fine: with no encrypted field read,
//! there is nothing for them to meet.

use super::context::Error;
use super::shape::Shape;
use crate::schema::FieldInfo;
use bson::Bson;

/// Checks that `expr`, evaluated on documents of `shape`, reads no
/// encrypted field and nothing that could be one.
pub(crate) fn check(shape: &Shape<'_>, expr: &Bson) -> Result<(), Error> {
    if !shape.encrypted() {
        return Ok(());
    }
    match expr {
        Bson::String(s) if s.starts_with("$$") => variable(shape, &s[2..]),
        Bson::String(s) if s.starts_with('$') => field_path(shape, &s[1..]),
        Bson::Array(items) => items.iter().try_for_each(|e| check(shape, e)),
        Bson::Document(d) => {
            if d.len() == 1
                && let Some((op, arg)) = d.iter().next()
            {
                match op.as_str() {
                    // Constants, whatever they look like.
                    "$literal" => return Ok(()),
                    "$function" | "$accumulator" | "$where" => {
                        return Err(untracked(shape, op));
                    }
                    "$getField" | "$setField" | "$unsetField" => {
                        return field_operator(shape, op, arg);
                    }
                    _ => {}
                }
            }
            if let Some(js) = d
                .keys()
                .find(|k| matches!(k.as_str(), "$function" | "$accumulator" | "$where"))
            {
                return Err(untracked(shape, js));
            }
            d.values().try_for_each(|e| check(shape, e))
        }
        _ => Ok(()),
    }
}

fn untracked(shape: &Shape<'_>, what: &str) -> Error {
    Error::UntrackedAccess {
        ns: shape.ns().to_string(),
        what: what.to_owned(),
    }
}

/// `$name.path` or `$name`.
fn variable(shape: &Shape<'_>, var: &str) -> Result<(), Error> {
    let (name, path) = match var.split_once('.') {
        Some((n, p)) => (n, Some(p)),
        None => (var, None),
    };
    match (name, path) {
        ("ROOT" | "CURRENT", None) => Err(untracked(shape, &format!("$${name}"))),
        ("ROOT" | "CURRENT", Some(p)) => field_path(shape, p),
        // System variables (`$$NOW`, `$$REMOVE`, …) and the ones an
        // expression binds itself (`$let`, `$map`, `$filter`, `$reduce`,
        // `let`): whatever they hold was read by an expression that is
        // checked where it binds.
        _ => Ok(()),
    }
}

fn field_path(shape: &Shape<'_>, path: &str) -> Result<(), Error> {
    match shape.field(path)? {
        FieldInfo::Plain => Ok(()),
        _ => Err(Error::ExpressionOnEncrypted {
            ns: shape.ns().to_string(),
            field: path.to_owned(),
        }),
    }
}

/// `$getField` / `$setField` / `$unsetField`: the field is named by a
/// string, not a path; a computed name could be anything.
fn field_operator(shape: &Shape<'_>, op: &str, arg: &Bson) -> Result<(), Error> {
    let (field, rest): (Option<&Bson>, Vec<&Bson>) = match arg {
        Bson::Document(d) => (
            d.get("field"),
            d.iter()
                .filter(|(k, _)| k.as_str() != "field")
                .map(|(_, v)| v)
                .collect(),
        ),
        other => (Some(other), Vec::new()),
    };
    match field {
        Some(Bson::String(name)) if !name.starts_with('$') => {
            // Without `input`, the field is read from the current document.
            let reads_current = match arg {
                Bson::Document(d) => !d.contains_key("input"),
                _ => true,
            };
            if reads_current && !matches!(shape.field(name)?, FieldInfo::Plain) {
                return Err(Error::ExpressionOnEncrypted {
                    ns: shape.ns().to_string(),
                    field: name.clone(),
                });
            }
        }
        Some(Bson::Document(d)) if d.len() == 1 && d.contains_key("$literal") => {
            if let Some(Bson::String(name)) = d.get("$literal")
                && !matches!(shape.field(name)?, FieldInfo::Plain)
            {
                return Err(Error::ExpressionOnEncrypted {
                    ns: shape.ns().to_string(),
                    field: name.clone(),
                });
            }
        }
        _ => {
            return Err(untracked(
                shape,
                &format!("{op} with a computed field name"),
            ));
        }
    }
    rest.into_iter().try_for_each(|e| check(shape, e))
}
