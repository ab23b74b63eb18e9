//! One bounded walk over BSON trees.
//!
//! Commands, schemas and replies come from parties csfle does not trust (the
//! application's input, the server), and a document nested 100,000 levels
//! deep would overflow the stack of any recursive walker. Every walker in
//! csfle therefore goes through here: [`check`] measures the nesting without
//! recursion (an explicit stack on the heap), and [`visit`] / [`map`] walk
//! with the depth counted, failing with [`TooDeep`] past [`MAX_NESTING`].
//! Pure: no I/O.

use bson::{Bson, Document};

/// How deep documents and arrays may nest (the server's own limit is 100
/// for stored documents; commands add a few levels around them).
pub const MAX_NESTING: usize = 256;

/// A document or array nested deeper than [`MAX_NESTING`] levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("document nesting exceeds {limit} levels")]
#[non_exhaustive]
pub struct TooDeep {
    /// The limit that was exceeded.
    pub limit: usize,
}

const TOO_DEEP: TooDeep = TooDeep { limit: MAX_NESTING };

/// Checks that `doc` nests at most [`MAX_NESTING`] levels, without
/// recursion: safe on any input, whatever its depth.
pub(crate) fn check(doc: &Document) -> Result<(), TooDeep> {
    measure(doc.values().map(|v| (v, 1)).collect())
}

fn measure(mut stack: Vec<(&Bson, usize)>) -> Result<(), TooDeep> {
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(TOO_DEEP);
        }
        match value {
            Bson::Document(d) => stack.extend(d.values().map(|v| (v, depth + 1))),
            Bson::Array(a) => stack.extend(a.iter().map(|v| (v, depth + 1))),
            Bson::JavaScriptCodeWithScope(c) => {
                stack.extend(c.scope.values().map(|v| (v, depth + 1)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// [`check`] for raw BSON (a server reply before it is parsed). Malformed
/// elements are left for the parser that follows to report. Returns how
/// many subtype-6 binaries (encrypted values) the walk met, counting up to
/// `count_up_to` and no further (past it, binaries are not looked at).
/// The whole document is always walked: the one-value-at-a-time
/// decryption the benches compare with measures documents this way;
/// [`count_raw_up_to`] is the walk that may stop early.
#[cfg(any(test, feature = "fuzzing", feature = "bench"))]
pub(crate) fn check_raw(doc: &bson::RawDocument, count_up_to: usize) -> Result<usize, TooDeep> {
    walk_raw(doc, count_up_to, false)
}

/// How many subtype-6 binaries (encrypted values) `doc` holds, counting up
/// to `enough` and stopping there. Below `enough`, the whole document was
/// walked and its nesting checked, without recursion (malformed elements
/// left for the parser that follows); at `enough`, the rest of the
/// document was not looked at, its nesting included: for a caller whose
/// own walk bounds the depth at every level (the planned decryption),
/// which then does not walk a large document twice.
pub(crate) fn count_raw_up_to(doc: &bson::RawDocument, enough: usize) -> Result<usize, TooDeep> {
    walk_raw(doc, enough, true)
}

fn walk_raw(
    doc: &bson::RawDocument,
    count_up_to: usize,
    stop_at_count: bool,
) -> Result<usize, TooDeep> {
    use bson::spec::{BinarySubtype, ElementType};
    let mut encrypted = 0;
    // Only documents and arrays are opened (scalars are not parsed): the
    // same bound as `visit_raw`, without a stack entry per value.
    let mut stack = vec![(doc, 0usize)];
    while let Some((doc, depth)) = stack.pop() {
        for el in doc.iter_elements() {
            if stop_at_count && encrypted >= count_up_to {
                return Ok(encrypted);
            }
            let Ok(el) = el else { break };
            if depth + 1 > MAX_NESTING {
                return Err(TOO_DEEP);
            }
            match el.element_type() {
                ElementType::Binary if encrypted < count_up_to => {
                    if let Ok(bson::RawBsonRef::Binary(b)) = el.value()
                        && b.subtype == BinarySubtype::Encrypted
                    {
                        encrypted += 1;
                    }
                }
                ElementType::EmbeddedDocument | ElementType::Array => match el.value() {
                    Ok(bson::RawBsonRef::Document(d)) => stack.push((d, depth + 1)),
                    Ok(bson::RawBsonRef::Array(a)) => {
                        if let Ok(d) = bson::RawDocument::from_bytes(a.as_bytes()) {
                            stack.push((d, depth + 1));
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(encrypted)
}

/// Calls `f` on every value below `doc` (raw BSON, not parsed into a
/// tree), without recursion, in no particular order; fails past
/// [`MAX_NESTING`]. Malformed elements are skipped, left for the parser
/// that follows to report.
#[cfg_attr(not(feature = "driver"), allow(dead_code))] // used by the client
pub(crate) fn visit_raw<E: From<TooDeep>>(
    doc: &bson::RawDocument,
    f: &mut dyn FnMut(bson::RawBsonRef<'_>) -> Result<(), E>,
) -> Result<(), E> {
    use bson::RawBsonRef;
    fn children<'a>(v: RawBsonRef<'a>, depth: usize, stack: &mut Vec<(RawBsonRef<'a>, usize)>) {
        match v {
            RawBsonRef::Document(d) => {
                stack.extend(d.iter().filter_map(Result::ok).map(|(_, v)| (v, depth + 1)));
            }
            RawBsonRef::Array(a) => {
                stack.extend(a.into_iter().filter_map(Result::ok).map(|v| (v, depth + 1)));
            }
            _ => {}
        }
    }
    let mut stack = Vec::new();
    children(RawBsonRef::Document(doc), 0, &mut stack);
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(TOO_DEEP.into());
        }
        f(value)?;
        children(value, depth, &mut stack);
    }
    Ok(())
}

/// Calls `f` on every value of `value`, itself included, parents before
/// children, without recursion; fails past [`MAX_NESTING`].
pub(crate) fn visit<E: From<TooDeep>>(
    value: &Bson,
    f: &mut dyn FnMut(&Bson) -> Result<(), E>,
) -> Result<(), E> {
    let mut stack: Vec<(&Bson, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(TOO_DEEP.into());
        }
        f(value)?;
        // Children in reverse, so they are visited in document order.
        let first = stack.len();
        match value {
            Bson::Document(d) => stack.extend(d.values().map(|v| (v, depth + 1))),
            Bson::Array(a) => stack.extend(a.iter().map(|v| (v, depth + 1))),
            _ => {}
        }
        stack[first..].reverse();
    }
    Ok(())
}

/// A copy of `value` in which every value for which `f` returns a
/// replacement is replaced (its children are not visited); fails past
/// [`MAX_NESTING`]. Recursion is bounded by the same limit.
pub(crate) fn map<E: From<TooDeep>>(
    value: &Bson,
    f: &mut dyn FnMut(&Bson) -> Result<Option<Bson>, E>,
) -> Result<Bson, E> {
    fn go<E: From<TooDeep>>(
        value: &Bson,
        depth: usize,
        f: &mut dyn FnMut(&Bson) -> Result<Option<Bson>, E>,
    ) -> Result<Bson, E> {
        if depth > MAX_NESTING {
            return Err(TOO_DEEP.into());
        }
        if let Some(replacement) = f(value)? {
            return Ok(replacement);
        }
        Ok(match value {
            Bson::Document(d) => {
                let mut out = Document::new();
                for (k, v) in d {
                    out.insert(k.clone(), go(v, depth + 1, f)?);
                }
                Bson::Document(out)
            }
            Bson::Array(a) => Bson::Array(
                a.iter()
                    .map(|v| go(v, depth + 1, f))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }
    go(value, 0, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    /// A document `levels` deep, built without recursion.
    fn deep(levels: usize) -> Document {
        let mut d = doc! {"x": 1};
        for _ in 0..levels {
            d = doc! {"a": d};
        }
        d
    }

    #[test]
    fn limits() {
        assert!(check(&deep(MAX_NESTING - 1)).is_ok());
        assert_eq!(check(&deep(MAX_NESTING)), Err(TOO_DEEP));
        let mut arrays = Bson::Int32(1);
        for _ in 0..MAX_NESTING + 1 {
            arrays = Bson::Array(vec![arrays]);
        }
        assert_eq!(check(&doc! {"a": arrays}), Err(TOO_DEEP));
        let mut n = 0;
        visit::<TooDeep>(&Bson::Document(deep(10)), &mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 12);
        let r = map::<TooDeep>(&Bson::Document(deep(MAX_NESTING + 5)), &mut |_| Ok(None));
        assert_eq!(r, Err(TOO_DEEP));
    }
}
