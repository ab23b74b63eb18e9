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
use bson::spec::BinarySubtype;
use bson::{Bson, Document, RawArrayBuf, RawBson, RawDocumentBuf, doc};

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

/// A write statement: built as BSON already (the in-place conditional
/// update, made of the values read and the new ciphertexts), or a document
/// encoded when its command is (a replacement or an upsert, which holds a
/// whole document).
#[derive(Clone)]
pub(super) enum Statement {
    /// The statement's bytes, or why it has none.
    Raw(Result<RawDocumentBuf, bson::raw::Error>),
    /// Encoded by [`encode`].
    Document(Document),
}

impl From<Document> for Statement {
    fn from(d: Document) -> Self {
        Statement::Document(d)
    }
}

impl Statement {
    fn encode(self) -> Result<RawDocumentBuf, bson::raw::Error> {
        match self {
            Statement::Raw(raw) => raw,
            Statement::Document(d) => encode(&d),
        }
    }

    /// The statement as a document, for the tests' model of the server.
    #[cfg(test)]
    pub(super) fn document(&self) -> Document {
        match self {
            Statement::Raw(raw) => raw.as_ref().unwrap().to_document().unwrap(),
            Statement::Document(d) => d.clone(),
        }
    }
}

/// `{key: v}` as BSON: a binary (a ciphertext) moved as it is, anything
/// else by [`encode`].
fn raw_pair(key: &str, v: Bson) -> Result<RawDocumentBuf, bson::raw::Error> {
    match v {
        Bson::Binary(b) => {
            let mut d = RawDocumentBuf::new();
            d.append(key, RawBson::Binary(b));
            Ok(d)
        }
        v => encode(&doc! {key: v}),
    }
}

/// `{"$literal": v}`: `v` is never taken for an expression or a field path.
fn literal(v: Bson) -> Result<RawBson, bson::raw::Error> {
    raw_pair("$literal", v).map(RawBson::Document)
}

/// `{op: [a, b]}`
fn operator(op: &str, a: RawBson, b: RawBson) -> RawBson {
    let mut args = RawArrayBuf::new();
    args.push(a);
    args.push(b);
    let mut d = RawDocumentBuf::new();
    d.append(op, args);
    RawBson::Document(d)
}

/// The condition, as an aggregation expression, that holds exactly when
/// each of the top-level fields `names` still holds what it held when
/// `orig` was read.
///
/// Between expressions `$eq` compares the values themselves: an array is
/// not matched by one of its elements, as in a query. It does compare
/// numbers across types and strings with symbols, so the type is compared
/// too, except for a binary (every ciphertext), which equals only a binary
/// of the same subtype and bytes. The binaries are compared in one `$eq`
/// of two arrays (a missing field is `null` in an array, which no binary
/// equals): what the server parses for each statement stays small.
fn still_holds<'a>(
    orig: &Document,
    names: impl Iterator<Item = &'a String>,
) -> Result<RawBson, bson::raw::Error> {
    let path = |name: &str| RawBson::String(format!("${name}"));
    let type_of = |name: &str| {
        let mut d = RawDocumentBuf::new();
        d.append("$type", path(name));
        RawBson::Document(d)
    };
    let mut paths = Vec::new();
    let mut binaries = Vec::new();
    let mut others = Vec::new();
    for name in names {
        match orig.get(name) {
            Some(Bson::Binary(was)) => {
                paths.push(path(name));
                binaries.push(RawBson::Binary(was.clone()));
            }
            None => others.push(operator(
                "$eq",
                type_of(name),
                RawBson::String("missing".into()),
            )),
            Some(was) => {
                others.push(operator(
                    "$eq",
                    type_of(name),
                    RawBson::String(type_alias(was).into()),
                ));
                others.push(operator("$eq", path(name), literal(was.clone())?));
            }
        }
    }
    let binaries_equal = if paths.len() > 1 {
        Some(operator(
            "$eq",
            RawBson::Array(array(paths)),
            RawBson::Array(array(binaries)),
        ))
    } else {
        match (paths.pop(), binaries.pop()) {
            (Some(p), Some(b)) => Some(operator("$eq", p, b)),
            _ => None,
        }
    };
    let mut all: Vec<RawBson> = binaries_equal.into_iter().chain(others).collect();
    if all.len() == 1
        && let Some(only) = all.pop()
    {
        return Ok(only);
    }
    let mut d = RawDocumentBuf::new();
    d.append("$and", array(all));
    Ok(RawBson::Document(d))
}

fn array(items: Vec<RawBson>) -> RawArrayBuf {
    let mut a = RawArrayBuf::new();
    for item in items {
        a.push(item);
    }
    a
}

/// The in-place write for a changed document: set only the changed fields,
/// and only if they (and the fields their keys depend on) still hold what
/// was read.
///
/// The statement selects the document by `_id` alone, so the server finds
/// it through the `_id` index without planning a query (a filter with the
/// conditions was planned for every statement, half the cost of a plain
/// rewrite again), and makes the comparison in the update itself: a
/// pipeline that replaces the document with itself, the changed fields
/// merged in (in their places), when the conditions hold, and with itself
/// unchanged otherwise. The server counts the first as modified and the
/// second not, so [`outcome`] reads `nModified`. The statement is built as
/// BSON directly: as documents, its many small levels cost more to build,
/// encode and drop than the encryption of the values in it.
///
/// Strings are compared by their bytes (`collation: simple`): under a
/// collection's case-insensitive default collation, `"ABC"` written
/// meanwhile over `"abc"` would otherwise pass for unchanged and be
/// overwritten, and a key named by a field could change case unnoticed.
///
/// Field names a field path or an expression object would take otherwise
/// (dots, a leading `$`, the empty name; and NUL bytes) fall back to
/// replacing the whole document on condition that all of it is unchanged.
///
/// `new` is taken by value: its changed values (the new ciphertexts) move
/// into the statement instead of being copied; the rest of it is not sent.
pub(super) fn conditional_update(
    orig: &Document,
    mut new: Document,
    fields: &[String],
    depends_on: &[String],
) -> Statement {
    let id = id_of(orig);
    // A NUL byte, which no name from the server holds, is left to the
    // serializer to refuse (appending it would panic).
    let literal_name =
        |f: &String| f.is_empty() || f.contains('.') || f.starts_with('$') || f.contains('\0');
    if fields.iter().chain(depends_on).any(literal_name) {
        return Statement::Document(doc! {
            "q": {"_id": id, "$expr": {"$eq": ["$$ROOT", {"$literal": orig.clone()}]}},
            "u": new,
            "multi": false,
            "upsert": false,
            "collation": {"locale": "simple"},
        });
    }
    let mut build = || -> Result<RawDocumentBuf, bson::raw::Error> {
        let unchanged = still_holds(orig, fields.iter().chain(depends_on))?;
        let mut set = RawDocumentBuf::new();
        for f in fields {
            // A field named twice is set once, to its new value (a second
            // `remove` would find nothing and set it to null).
            if set.get(f)?.is_some() {
                continue;
            }
            // A binary is a constant; anything else (a plaintext, when a
            // migration decrypts) is wrapped in `$literal`, so that it is
            // never taken for an expression or a field path.
            let value = match new.remove(f).unwrap_or(Bson::Null) {
                Bson::Binary(b) => RawBson::Binary(b),
                value => literal(value)?,
            };
            set.append(f, value);
        }
        let root = || RawBson::String("$$ROOT".into());
        let mut merged = RawDocumentBuf::new();
        merged.append("$mergeObjects", array(vec![root(), RawBson::Document(set)]));
        let mut replacement = RawDocumentBuf::new();
        replacement.append(
            "$cond",
            array(vec![unchanged, RawBson::Document(merged), root()]),
        );
        let mut stage = RawDocumentBuf::new();
        stage.append("$replaceWith", replacement);
        let mut statement = RawDocumentBuf::new();
        statement.append("q", raw_pair("_id", id.clone())?);
        statement.append("u", array(vec![RawBson::Document(stage)]));
        statement.append("multi", false);
        statement.append("upsert", false);
        let mut collation = RawDocumentBuf::new();
        collation.append("locale", "simple");
        statement.append("collation", collation);
        Ok(statement)
    };
    Statement::Raw(build())
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
) -> Vec<(Bson, Statement)> {
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
                    writes.push((id.clone(), upsert(id, orig).into()));
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
                        writes.push((id.clone(), upsert(id, document).into()));
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
pub(super) fn chunks(
    writes: Vec<(Bson, Statement)>,
    max_bytes: usize,
) -> Result<Vec<Chunk>, Error> {
    let mut out = Vec::new();
    let mut chunk = Chunk::default();
    let mut bytes = 0;
    for (id, stmt) in writes {
        let raw = stmt.encode().map_err(mongodb::error::Error::from)?;
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
/// (which `append` would panic on, and the serializer refuses), a binary
/// the serializer refuses (over 16 MiB) or writes under another subtype
/// than its variant (see [`writes_as_serialized`]), or a
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
        // Strings and binaries (the ciphertexts) written from where they
        // are, not copied into an owned value first.
        match v {
            Bson::String(s) => raw.append_ref(k, bson::RawBsonRef::String(s)),
            Bson::Binary(b) if writes_as_serialized(b) => {
                raw.append_ref(k, bson::RawBsonRef::Binary(b.as_raw_binary()))
            }
            v => raw.append(k, encode_value(v, depth)?),
        }
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
        Bson::Binary(b) if !writes_as_serialized(b) => return None,
        scalar => bson::RawBson::try_from(scalar.clone()).ok()?,
    })
}

/// The largest binary payload `bson`'s serializer writes (its
/// `MAX_BSON_SIZE`, 16 MiB): a larger one is its refusal, not an element.
const MAX_BINARY_BYTES: usize = 16 * 1024 * 1024;

/// Whether `append` writes `b` as `bson`'s serializer does: a payload the
/// serializer takes, under a subtype named by its own variant. The
/// serializer goes through the subtype's byte, so `Reserved(2)` or
/// `UserDefined(2)` is written as the old binary subtype (with its inner
/// length), which `append`, matching the variant, would not write.
fn writes_as_serialized(b: &bson::Binary) -> bool {
    let payload = match b.subtype {
        BinarySubtype::BinaryOld => b.bytes.len() + 4,
        _ => b.bytes.len(),
    };
    payload <= MAX_BINARY_BYTES && BinarySubtype::from(u8::from(b.subtype)) == b.subtype
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
/// changed, and the `_id`s that may not have been written (in place, when
/// fewer were modified than were sent without error; which ones is found
/// by reading them again). In place, a statement whose conditions fail
/// still matches its document by `_id` and leaves it as it is: the server
/// counts it in `n` and not in `nModified`, so `nModified` is the count of
/// writes made. A write concern error fails the batch: nothing in it is
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
    if mode != WriteMode::InPlace {
        return Ok(Vec::new());
    }
    // Each statement updates at most one document (`multi: false`): a
    // count above what was sent is a reply not to be trusted, read again
    // like a shortfall.
    if count(reply, "nModified") == expected && count(reply, "n") <= expected {
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
