//! The writes of a migration, as pure functions: the statement that
//! changes a document without overwriting a concurrent change, the
//! statements for a batch, the `update` commands they are sent in (each
//! statement encoded to BSON once), and what a bulk `update` reply says
//! happened to each statement. No I/O: the worker sends what this module
//! builds.
//!
//! In place, a statement sets only the fields the plan changes, and only
//! while those fields (and the fields their keys are named by) still hold
//! exactly what was read. A document someone changed in between does not
//! match; the worker reads it again and applies the plan to the new
//! version, so a concurrent write is never overwritten.

use super::Error;
use super::counts::Counts;
use super::plan::Change;
use super::ranges::type_alias;
use super::summary::FailedDocument;
use bson::{Bson, Document, RawArrayBuf, RawDocumentBuf, doc};

/// Where a migration writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteMode {
    /// Conditional updates of the source collection.
    InPlace,
    /// Upserts by `_id` into another collection (the source is only read).
    Copy,
    /// Nothing is written.
    DryRun,
}

/// One batch's counts, added to the totals and to the worker's checkpoint,
/// and the documents that failed, recorded with the reasons.
#[derive(Debug, Default, PartialEq)]
pub(super) struct BatchStats {
    /// `counts.failed` is `failed.len()`: both change only in
    /// [`fail`](Self::fail).
    counts: Counts,
    failed: Vec<FailedDocument>,
}

impl BatchStats {
    /// A batch of `read` documents, nothing else counted yet.
    pub(super) fn of(read: u64) -> Self {
        BatchStats {
            counts: Counts {
                read,
                ..Counts::default()
            },
            failed: Vec::new(),
        }
    }

    /// The batch's counts.
    pub(super) fn counts(&self) -> Counts {
        self.counts
    }

    /// The documents that failed.
    pub(super) fn failed(&self) -> &[FailedDocument] {
        &self.failed
    }

    /// Counts a document that failed, and keeps it.
    pub(super) fn fail(&mut self, document: FailedDocument) {
        self.counts.failed += 1;
        self.failed.push(document);
    }

    /// Counts `n` documents deleted by someone else meanwhile.
    pub(super) fn add_vanished(&mut self, n: u64) {
        self.counts.vanished += n;
    }
}

/// A document's `_id` (`null` when it has none).
pub(super) fn id_of(doc: &Document) -> Bson {
    doc.get("_id").cloned().unwrap_or(Bson::Null)
}

/// The condition that holds exactly when the top-level field `name` still
/// holds `was`: equal (`$eq` alone would also match an array containing
/// `was`, and a number of another type), of the same type (`$type` alone
/// also matches an array with an element of that type), and not an array
/// that merely contains it. One field's operators in one clause (the
/// server ANDs them, as it would separate clauses). Plain query
/// operators, so the server can use the `_id` index (some servers scan for
/// `$expr`).
fn unchanged(name: &str, was: &Bson) -> Bson {
    let mut ops = doc! {"$eq": was.clone(), "$type": type_alias(was)};
    if matches!(was, Bson::Array(_)) {
        // `$type: "array"` holds for arrays only; this one must not be an
        // array holding `was` as an element.
        ops.insert("$not", doc! {"$elemMatch": {"$eq": was.clone()}});
    } else {
        // `$eq` and `$type` both also match an array holding `was`.
        ops.insert("$not", doc! {"$type": "array"});
    }
    Bson::Document(doc! {name: ops})
}

/// The in-place write for a changed document: set only the changed fields,
/// and only if they (and the fields their keys depend on) still hold what
/// was read. Field names a query or `$set` would take as paths (dots, a
/// leading `$`) fall back to replacing the whole document on condition
/// that all of it is unchanged.
///
/// `new` is taken by value: its changed values (the new ciphertexts) move
/// into the statement instead of being copied; the rest of it is not sent.
pub(super) fn conditional_update(
    orig: &Document,
    mut new: Document,
    fields: &[String],
    depends_on: &[String],
) -> Document {
    let id = id_of(orig);
    let literal = |f: &String| f.contains('.') || f.starts_with('$');
    if fields.iter().chain(depends_on).any(literal) {
        return doc! {
            "q": {"_id": id, "$expr": {"$eq": ["$$ROOT", {"$literal": orig.clone()}]}},
            "u": new,
            "multi": false,
            "upsert": false,
        };
    }
    let conditions: Vec<Bson> = fields
        .iter()
        .chain(depends_on)
        .map(|f| unchanged(f, orig.get(f).unwrap_or(&Bson::Null)))
        .collect();
    let mut set = Document::new();
    for f in fields {
        // A field named twice is set once, to its new value (a second
        // `remove` would find nothing and set it to null).
        if set.contains_key(f) {
            continue;
        }
        set.insert(f.clone(), new.remove(f).unwrap_or(Bson::Null));
    }
    doc! {
        "q": {"_id": id, "$and": conditions},
        "u": {"$set": set},
        "multi": false,
        "upsert": false,
    }
}

/// The copy-mode write: the document as it should be in the target,
/// upserted by `_id` (idempotent, so a rerun after a crash is harmless).
fn upsert(id: Bson, document: Document) -> Document {
    doc! {"q": {"_id": id}, "u": document, "upsert": true, "multi": false}
}

/// A count in a server reply (`n`): any numeric type the server may use,
/// 0 when absent or negative.
fn count(reply: &Document, key: &str) -> u64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}

/// The statements for a batch whose documents the plan was applied to,
/// by `_id`, with the batch's counts. `attempt` 0 is the first read; later
/// attempts are documents read again after their write did not match.
pub(super) fn statements(
    prepared: Vec<(Document, Result<Change, String>)>,
    attempt: u32,
    mode: WriteMode,
    stats: &mut BatchStats,
) -> Vec<(Bson, Document)> {
    let mut writes = Vec::new();
    for (orig, change) in prepared {
        let id = id_of(&orig);
        match change {
            Err(reason) => stats.fail(FailedDocument { id, reason }),
            Ok(Change::Unchanged) => {
                if attempt == 0 {
                    stats.counts.skipped += 1;
                } else {
                    // Read again after an unmatched write: our write had
                    // landed (or someone else did the same).
                    stats.counts.changed += 1;
                }
                if mode == WriteMode::Copy {
                    writes.push((id.clone(), upsert(id, orig)));
                }
            }
            Ok(Change::Changed {
                document,
                fields,
                depends_on,
            }) => {
                if attempt > 0 {
                    // Changed by someone else since it was read.
                    stats.counts.retried += 1;
                }
                match mode {
                    WriteMode::DryRun => stats.counts.changed += 1,
                    // Counted once the server reports the match.
                    WriteMode::InPlace => writes.push((
                        id,
                        conditional_update(&orig, document, &fields, &depends_on),
                    )),
                    WriteMode::Copy => {
                        stats.counts.changed += 1;
                        writes.push((id.clone(), upsert(id, document)));
                    }
                }
            }
        }
    }
    writes
}

/// The statements of one `update` command, each encoded to BSON once (the
/// encoding that sizes the chunk is the one sent): the `_id`s, in order,
/// and the command's `updates` array.
///
/// No `Debug`: the statements hold the values read (plaintext, when a
/// field is being encrypted).
#[derive(Default)]
pub(super) struct Chunk {
    /// The `_id` of each statement, in the order of `updates`.
    pub(super) ids: Vec<Bson>,
    /// The statements, as the command's `updates` array.
    pub(super) updates: RawArrayBuf,
}

/// Splits statements into `update` commands of at most about `max_bytes`
/// of statements each (one statement over the limit goes alone), encoding
/// each statement as it goes. A statement that cannot be encoded fails
/// the batch, as the command holding it failed to encode before.
pub(super) fn chunks(writes: Vec<(Bson, Document)>, max_bytes: usize) -> Result<Vec<Chunk>, Error> {
    let mut out = Vec::new();
    let mut chunk = Chunk::default();
    let mut bytes = 0;
    for (id, stmt) in writes {
        let raw = encode(&stmt).map_err(mongodb::error::Error::from)?;
        bytes += raw.as_bytes().len();
        chunk.ids.push(id);
        chunk.updates.push(raw);
        if bytes >= max_bytes {
            out.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
    }
    if !chunk.ids.is_empty() {
        out.push(chunk);
    }
    Ok(out)
}

/// How deep [`encode`] goes element by element; deeper sub-documents are
/// left to `bson`'s serializer, as every statement was before. A
/// statement holds a document that was read (at most
/// [`MAX_NESTING`](crate::explicit::MAX_NESTING) deep, or the plan refused
/// it) under a few levels of its own.
const ENCODE_DEPTH: usize = crate::explicit::MAX_NESTING + 8;

/// `doc` encoded to BSON element by element (`RawDocumentBuf::append`),
/// not through `bson`'s serde serializer: that one writes every binary
/// (each ciphertext of the statement) as base64 text and decodes it again,
/// which was a fifth of a migration's CPU time. The same bytes
/// (`write_tests`). A statement this cannot encode exactly is handed to
/// the serializer whole, as every statement was before: one nested deeper
/// than [`ENCODE_DEPTH`], a NUL byte in a key or a regular expression
/// (which `append` would panic on, and the serializer refuses), or a
/// regular expression whose options are not in the order the serializer
/// writes them. Statements hold BSON the server sent, which has none of
/// these.
pub(super) fn encode(doc: &Document) -> Result<RawDocumentBuf, bson::raw::Error> {
    match encode_document(doc, 0) {
        Some(raw) => Ok(raw),
        None => RawDocumentBuf::from_document(doc),
    }
}

fn encode_document(doc: &Document, depth: usize) -> Option<RawDocumentBuf> {
    if depth > ENCODE_DEPTH {
        return None;
    }
    let mut raw = RawDocumentBuf::new();
    for (k, v) in doc {
        if k.contains('\0') {
            return None;
        }
        raw.append(k, encode_value(v, depth)?);
    }
    Some(raw)
}

/// One value for [`encode`]: documents, arrays and code with scope
/// element by element, scalars as they convert; `None`: the serializer's.
fn encode_value(v: &Bson, depth: usize) -> Option<bson::RawBson> {
    if depth > ENCODE_DEPTH {
        return None;
    }
    Some(match v {
        Bson::Document(d) => bson::RawBson::Document(encode_document(d, depth + 1)?),
        Bson::Array(items) => {
            let mut array = RawArrayBuf::new();
            for item in items {
                array.push(encode_value(item, depth + 1)?);
            }
            bson::RawBson::Array(array)
        }
        Bson::JavaScriptCodeWithScope(c) => {
            bson::RawBson::JavaScriptCodeWithScope(bson::RawJavaScriptCodeWithScope {
                code: c.code.clone(),
                scope: encode_document(&c.scope, depth + 1)?,
            })
        }
        Bson::RegularExpression(r) => {
            let sorted = r.options.as_bytes().is_sorted();
            if r.pattern.contains('\0') || r.options.contains('\0') || !sorted {
                return None;
            }
            bson::RawBson::try_from(v.clone()).ok()?
        }
        scalar => bson::RawBson::try_from(scalar.clone()).ok()?,
    })
}

/// The unordered bulk `update` of `collection` with the statements
/// `updates`, with majority, journaled write concern: the batch is durable
/// before the checkpoint that follows says it is done.
pub(super) fn update_command(collection: &str, updates: RawArrayBuf) -> RawDocumentBuf {
    let mut concern = RawDocumentBuf::new();
    concern.append("w", "majority");
    concern.append("j", true);
    let mut command = RawDocumentBuf::new();
    command.append("update", collection);
    command.append("updates", updates);
    command.append("ordered", false);
    command.append("writeConcern", concern);
    command
}

/// What the reply to one unordered bulk `update` of the statements for
/// `ids` (in order) says: the statements that failed, the documents
/// changed, and the `_id`s that may not have matched (in place, when fewer
/// matched than were sent without error; which ones is found by reading
/// them again). A write concern error fails the batch: nothing in it is
/// known to be durable.
pub(super) fn outcome(
    ids: Vec<Bson>,
    reply: &Document,
    mode: WriteMode,
    stats: &mut BatchStats,
) -> Result<Vec<Bson>, Error> {
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(Error::WriteConcern {
            message: wce.get_str("errmsg").unwrap_or("unknown").to_owned(),
            details: Box::new(wce.clone()),
        });
    }
    let mut errored = vec![false; ids.len()];
    if let Ok(errors) = reply.get_array("writeErrors") {
        for e in errors.iter().filter_map(Bson::as_document) {
            let i = e
                .get_i32("index")
                .ok()
                .and_then(|i| usize::try_from(i).ok());
            if let Some(i) = i.filter(|i| *i < ids.len())
                && !errored[i]
            {
                errored[i] = true;
                stats.fail(FailedDocument {
                    id: ids[i].clone(),
                    reason: format!(
                        "write error {}: {}",
                        e.get_i32("code").unwrap_or_default(),
                        e.get_str("errmsg").unwrap_or("unknown")
                    ),
                });
            }
        }
    }
    let expected = errored.iter().filter(|e| !**e).count() as u64;
    let matched = count(reply, "n");
    if mode != WriteMode::InPlace {
        return Ok(Vec::new());
    }
    if matched >= expected {
        stats.counts.changed += expected;
        return Ok(Vec::new());
    }
    Ok(ids
        .into_iter()
        .zip(errored)
        .filter(|(_, e)| !e)
        .map(|(id, _)| id)
        .collect())
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
