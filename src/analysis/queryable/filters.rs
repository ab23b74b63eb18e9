//! Match expressions on a Queryable Encryption collection (`filter`,
//! `q`, `query`, `$match`), rewritten as mongocryptd rewrites them: in
//! normalised form (`{f: v}` is `{f: {$eq: v}}`, several predicates an
//! `$and`), each compared value of an encrypted field a find placeholder.
//!
//! * equality field: `$eq` (and the implicit form) and `$in` keep their
//!   operator, each value a find placeholder (t 2, a 2);
//! * range field: `$gt`, `$gte`, `$lt`, `$lte` of one predicate make one
//!   range: one-sided, `{f: {$gt: P}}` (P carrying the interval, open on
//!   the other side); two-sided, `{$and: [{f: {op1: P}}, {f: {op2: S}}]}`
//!   (S the stub, same `payloadId`), the operators in the order written;
//!   an equality is the two-sided range `[v, v]`, `$gte` then `$lte`
//!   (libmongocrypt's `range-sends-cryptoParams/auto-find-int32` and
//!   `no-trimFactor/find` replies); `$in` is an `$or` of such equalities,
//!   one per value (mongocryptd's rewrite; the specification's
//!   `Rangev2-*-Correctness` tests run it). `payloadId`s count from 0 in
//!   each command.
//!
//! Everything else on an encrypted field is refused, naming it: see the
//! list in the module above.

use super::view::{View, check_query_value};
use crate::analysis::context::{Ctx, Error};
use crate::analysis::expressions;
use crate::analysis::filters::plain_operator;
use crate::qe::encrypted_fields::{EncryptedField, EncryptedFieldsError, FieldQueries};
use crate::qe::payload::RangeOperator;
use crate::qe::placeholder::{PlaceholderRequest, RangeBound};
use crate::schema::FieldInfo;
use bson::{Bson, Document, doc};

/// The clauses of a `$and`, `$or` or `$nor` (`op`): documents in an array.
fn clauses<'a>(op: &str, v: &'a Bson) -> Result<Vec<&'a Document>, Error> {
    let Bson::Array(items) = v else {
        return Err(Error::Malformed(format!("{op} needs an array")));
    };
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => Ok(d),
            _ => Err(Error::Malformed(format!("{op} needs documents"))),
        })
        .collect()
}

/// Rewrites a match expression of the collection's documents.
/// `negated` is set below a `$nor`, where a predicate on an encrypted
/// field is refused.
pub(crate) fn filter(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    filter: &Document,
    negated: bool,
) -> Result<Document, Error> {
    let mut preds = Vec::new();
    for (k, v) in filter {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                let below = negated || k == "$nor";
                let mut out = Vec::new();
                for d in clauses(k, v)? {
                    out.push(Bson::Document(self::filter(cx, view, d, below)?));
                }
                preds.push(doc! {k.clone(): out});
            }
            "$comment" => preds.push(doc! {k.clone(): v.clone()}),
            // An expression: allowed when it reads no encrypted field.
            "$expr" => {
                expressions::check(&view.shape, v)?;
                preds.push(doc! {k.clone(): v.clone()});
            }
            op if op.starts_with('$') => return Err(Error::UnsupportedOperator(op.to_owned())),
            path => field_predicates(cx, view, path, v, negated, &mut preds)?,
        }
    }
    Ok(match preds.len() {
        0 => Document::new(),
        1 => preds.pop().unwrap_or_default(),
        _ => doc! {"$and": preds},
    })
}

fn field_predicates(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    path: &str,
    v: &Bson,
    negated: bool,
    preds: &mut Vec<Document>,
) -> Result<(), Error> {
    let ops: Vec<(String, Bson)> = match v {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => {
            d.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        Bson::RegularExpression(_) => vec![("$regex".into(), v.clone())],
        other => vec![("$eq".into(), other.clone())],
    };
    match view.field(path)? {
        FieldInfo::Plain => {
            for (op, arg) in ops {
                plain_operator(&op, &arg)?;
                preds.push(doc! {path: {op: arg}});
            }
            Ok(())
        }
        FieldInfo::Encrypted(_) => {
            let field = view.encrypted_field(path)?;
            if negated {
                return Err(Error::InvalidOperator {
                    path: path.to_owned(),
                    op: "$nor (a negation of a Queryable Encryption predicate)".into(),
                });
            }
            encrypted_predicates(cx, view, field, path, ops, preds)
        }
        FieldInfo::ContainsEncrypted => Err(Error::InvalidOperator {
            path: path.to_owned(),
            op: format!(
                "{} on a document holding Queryable Encryption fields",
                ops.first().map_or("a predicate", |(op, _)| op.as_str())
            ),
        }),
        FieldInfo::BelowEncrypted(_) => Err(Error::BelowEncrypted(path.to_owned())),
        FieldInfo::Conflict => Err(Error::SchemaConflict(path.to_owned())),
    }
}

fn encrypted_predicates(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    field: &EncryptedField,
    path: &str,
    ops: Vec<(String, Bson)>,
    preds: &mut Vec<Document>,
) -> Result<(), Error> {
    let refuse = |op: &str| Error::InvalidOperator {
        path: path.to_owned(),
        op: op.to_owned(),
    };
    match field.queries() {
        FieldQueries::Unindexed => Err(Error::NotQueryable(path.to_owned())),
        FieldQueries::Unsupported(query_type) => Err(Error::EncryptedFields {
            ns: view.ns.to_string(),
            source: Box::new(EncryptedFieldsError::Unsupported {
                field: path.to_owned(),
                query_type: *query_type,
            }),
        }),
        FieldQueries::Equality { .. } => {
            for (op, arg) in ops {
                match op.as_str() {
                    "$eq" => {
                        check_query_value(cx, field, path, &arg)?;
                        let p =
                            view.placeholder(cx, field, PlaceholderRequest::EqualityFind(&arg))?;
                        preds.push(doc! {path: {"$eq": p}});
                    }
                    "$in" => {
                        let Bson::Array(items) = &arg else {
                            return Err(Error::Malformed("$in needs an array".into()));
                        };
                        let mut out = Vec::with_capacity(items.len());
                        for item in items {
                            if matches!(item, Bson::Null) {
                                return Err(Error::NullInIn(path.to_owned()));
                            }
                            check_query_value(cx, field, path, item)?;
                            out.push(view.placeholder(
                                cx,
                                field,
                                PlaceholderRequest::EqualityFind(item),
                            )?);
                        }
                        preds.push(doc! {path: {"$in": out}});
                    }
                    other => return Err(refuse(other)),
                }
            }
            Ok(())
        }
        FieldQueries::Range(range) => {
            let index = view.range_index(field, range)?;
            let mut lower: Option<(RangeOperator, Bson)> = None;
            let mut upper: Option<(RangeOperator, Bson)> = None;
            let mut order: Vec<RangeOperator> = Vec::new();
            for (op, arg) in ops {
                let operator = match op.as_str() {
                    "$eq" => {
                        check_query_value(cx, field, path, &arg)?;
                        let bound = RangeBound {
                            value: &arg,
                            included: true,
                        };
                        preds.push(range_predicate(
                            cx,
                            view,
                            field,
                            path,
                            &index,
                            (Some(bound), Some(bound)),
                            (RangeOperator::Gte, RangeOperator::Lte),
                        )?);
                        continue;
                    }
                    "$gt" => RangeOperator::Gt,
                    "$gte" => RangeOperator::Gte,
                    "$lt" => RangeOperator::Lt,
                    "$lte" => RangeOperator::Lte,
                    "$in" => {
                        preds.push(range_in(cx, view, field, path, &index, &arg)?);
                        continue;
                    }
                    other => return Err(refuse(other)),
                };
                check_query_value(cx, field, path, &arg)?;
                let side = if matches!(operator, RangeOperator::Gt | RangeOperator::Gte) {
                    &mut lower
                } else {
                    &mut upper
                };
                if side.is_some() {
                    return Err(refuse(&format!(
                        "{} with another bound on the same side",
                        operator.name()
                    )));
                }
                *side = Some((operator, arg));
                order.push(operator);
            }
            match order.as_slice() {
                [] => {}
                [first] => preds.push(range_predicate(
                    cx,
                    view,
                    field,
                    path,
                    &index,
                    (bound(&lower), bound(&upper)),
                    (*first, RangeOperator::None),
                )?),
                [first, second] => preds.push(range_predicate(
                    cx,
                    view,
                    field,
                    path,
                    &index,
                    (bound(&lower), bound(&upper)),
                    (*first, *second),
                )?),
                // Two sides hold at most two operators.
                _ => return Err(refuse("more than two range operators")),
            }
            Ok(())
        }
    }
}

/// `$in` on a range field, as mongocryptd rewrites it: an `$or` of one
/// equality range `[v, v]` per value (each its own `payloadId`), every
/// value checked as an equality is. An empty list matches nothing and
/// carries no value: it is kept as written.
fn range_in(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    field: &EncryptedField,
    path: &str,
    index: &super::view::RangeBounds,
    arg: &Bson,
) -> Result<Document, Error> {
    let Bson::Array(items) = arg else {
        return Err(Error::Malformed("$in needs an array".into()));
    };
    if items.is_empty() {
        return Ok(doc! {path: {"$in": []}});
    }
    let mut alternatives = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Bson::Null => return Err(Error::NullInIn(path.to_owned())),
            Bson::RegularExpression(_) => {
                return Err(Error::InvalidOperator {
                    path: path.to_owned(),
                    op: "$in with a regular expression".into(),
                });
            }
            _ => {}
        }
        check_query_value(cx, field, path, item)?;
        let point = RangeBound {
            value: item,
            included: true,
        };
        alternatives.push(Bson::Document(range_predicate(
            cx,
            view,
            field,
            path,
            index,
            (Some(point), Some(point)),
            (RangeOperator::Gte, RangeOperator::Lte),
        )?));
    }
    Ok(doc! {"$or": alternatives})
}

/// One end of a range predicate, as written (`$gte`/`$lte` include it).
fn bound(side: &Option<(RangeOperator, Bson)>) -> Option<RangeBound<'_>> {
    side.as_ref().map(|(op, value)| RangeBound {
        value,
        included: matches!(op, RangeOperator::Gte | RangeOperator::Lte),
    })
}

/// One range predicate on `path`: the placeholder carrying the interval
/// under the first operator and, when two-sided, the stub under the
/// second, in an `$and`.
fn range_predicate(
    cx: &mut Ctx<'_, '_>,
    view: &View<'_>,
    field: &EncryptedField,
    path: &str,
    index: &super::view::RangeBounds,
    (lower, upper): (Option<RangeBound<'_>>, Option<RangeBound<'_>>),
    (first, second): (RangeOperator, RangeOperator),
) -> Result<Document, Error> {
    let payload_id = cx.next_payload_id;
    // libmongocrypt's counter wraps to 0 after i32::MAX.
    cx.next_payload_id = if payload_id == i32::MAX {
        0
    } else {
        payload_id + 1
    };
    let find = view.placeholder(
        cx,
        field,
        PlaceholderRequest::RangeFind {
            lower,
            upper,
            index: index.spec(),
            payload_id,
            first,
            second,
        },
    )?;
    if second == RangeOperator::None {
        return Ok(doc! {path: {first.name(): find}});
    }
    let stub = view.placeholder(
        cx,
        field,
        PlaceholderRequest::RangeStub {
            payload_id,
            first,
            second,
        },
    )?;
    Ok(doc! {"$and": [{path: {first.name(): find}}, {path: {second.name(): stub}}]})
}
