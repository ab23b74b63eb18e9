//! `_id` ranges as query filters that follow the server's sort order across
//! BSON types.
//!
//! A plain `{_id: {$gt: 5}}` matches numbers only (MongoDB brackets
//! comparisons by type), so a worker resuming after `_id: 5` would skip
//! every string or ObjectId `_id`. Each bound here is "compares after `x`
//! in `_id` order": `{$gt: x}` within `x`'s type class, or any `_id` whose
//! type sorts after that class.

use bson::{Bson, Document, doc};

/// The server's comparison order of BSON types, with the `$type` aliases
/// of each class (MinKey, null, numbers, strings, objects, arrays, binary,
/// ObjectId, booleans, dates, timestamps, regexes, then the rare types and
/// MaxKey).
const CLASSES: &[&[&str]] = &[
    &["minKey"],
    &["null", "undefined"],
    &["double", "int", "long", "decimal"],
    &["string", "symbol"],
    &["object"],
    &["array"],
    &["binData"],
    &["objectId"],
    &["bool"],
    &["date"],
    &["timestamp"],
    &["regex"],
    &["dbPointer"],
    &["javascript"],
    &["javascriptWithScope"],
    &["maxKey"],
];

/// The position of a value's type in [`CLASSES`].
fn class(value: &Bson) -> usize {
    match value {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Double(_) | Bson::Int32(_) | Bson::Int64(_) | Bson::Decimal128(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::JavaScriptCodeWithScope(_) => 14,
        Bson::MaxKey => 15,
    }
}

/// The `$type` alias of a value's type.
pub(super) fn type_alias(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "object",
        Bson::Array(_) => "array",
        Bson::Binary(_) => "binData",
        Bson::Undefined => "undefined",
        Bson::ObjectId(_) => "objectId",
        Bson::Boolean(_) => "bool",
        Bson::DateTime(_) => "date",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::DbPointer(_) => "dbPointer",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::Symbol(_) => "symbol",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Timestamp(_) => "timestamp",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::MinKey => "minKey",
        Bson::MaxKey => "maxKey",
    }
}

fn types(classes: impl Iterator<Item = usize>) -> Vec<&'static str> {
    classes.flat_map(|c| CLASSES[c].iter().copied()).collect()
}

/// `_id` compares after (`op` = `$gt`) or not before (`$gte`) `x`.
fn above(op: &str, x: &Bson) -> Option<Document> {
    if matches!(x, Bson::MinKey) {
        return None;
    }
    let later = types(class(x) + 1..CLASSES.len());
    let same_class = doc! {"_id": {op: x.clone()}};
    Some(if later.is_empty() {
        same_class
    } else {
        doc! {"$or": [same_class, {"_id": {"$type": later}}]}
    })
}

/// `_id` compares before `x`.
fn below(x: &Bson) -> Option<Document> {
    if matches!(x, Bson::MaxKey) {
        return None;
    }
    let earlier = types(0..class(x));
    let same_class = doc! {"_id": {"$lt": x.clone()}};
    Some(if earlier.is_empty() {
        same_class
    } else {
        doc! {"$or": [same_class, {"_id": {"$type": earlier}}]}
    })
}

/// The filter for `_id` in `[min, max)`, and after `after` when a worker
/// resumes. `MinKey` / `MaxKey` mean unbounded.
pub(crate) fn range_filter(min: &Bson, max: &Bson, after: Option<&Bson>) -> Document {
    let lower = match after {
        Some(a) => above("$gt", a),
        None => above("$gte", min),
    };
    let parts: Vec<Document> = lower.into_iter().chain(below(max)).collect();
    match parts.len() {
        0 => Document::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => doc! {"$and": parts},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cross_type_classes() {
        assert_eq!(range_filter(&Bson::MinKey, &Bson::MaxKey, None), doc! {});
        let f = range_filter(&Bson::MinKey, &Bson::String("m".into()), None);
        assert_eq!(
            f,
            doc! {"$or": [{"_id": {"$lt": "m"}}, {"_id": {"$type": ["minKey", "null", "undefined", "double", "int", "long", "decimal"]}}]}
        );
        let f = range_filter(&Bson::Int32(5), &Bson::MaxKey, Some(&Bson::Int32(7)));
        let or = f.get_array("$or").unwrap();
        assert_eq!(or[0], Bson::Document(doc! {"_id": {"$gt": 7}}));
        let later = or[1].as_document().unwrap().get_document("_id").unwrap();
        let later = later.get_array("$type").unwrap();
        assert!(later.contains(&Bson::String("string".into())));
        assert!(later.contains(&Bson::String("objectId".into())));
        assert!(!later.contains(&Bson::String("int".into())));
        assert!(range_filter(&Bson::Int32(1), &Bson::Int32(9), None).contains_key("$and"));
        // A bound of the last class has nothing after it.
        assert_eq!(
            above("$gt", &Bson::MaxKey),
            Some(doc! {"_id": {"$gt": Bson::MaxKey}})
        );
    }
}
