//! The fast paths of the encrypted collection's hot operations: a cursor's
//! batch decrypted in fewer passes, the documents of an `insert`
//! encrypted in one pass over their serialized bytes, and a `find` by
//! equality encrypted without analysing the command.
//!
//! Each stands in for the analysed path only where it is proved to give
//! the same bytes (random ciphertexts aside) and the same refusals. Each
//! is a pure function that either takes its input whole or answers `None`
//! before anything happened (no key-vault query, no audit event, nothing
//! encrypted or decrypted), and the caller then runs the analysed path,
//! which refuses or sends exactly as it always did. So the fast paths never
//! refuse anything themselves and never decide what is safe to send: they
//! only recognise, fail closed, inputs whose outcome they can reproduce.
//! `tests/client_fast_path.rs` runs generated and hostile inputs through
//! both paths and compares them byte for byte.

use crate::Error;
use crate::analysis;
use crate::ciphertext::{self, Fle1Blob};
use crate::crypto::{Algorithm, DataKey, KeyLookup};
use crate::explicit::ExplicitEncrypter;
use crate::key::{KeyId, KeyRef};
use crate::nesting::MAX_NESTING;
use crate::schema::{EncryptKey, EncryptSpec, EncryptionSchema, FieldInfo};
use bson::spec::{BinarySubtype, ElementType};
use bson::{Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf, doc};
use std::ops::Range;
use std::sync::Arc;

// ----------------------------------------------------------------------
// Reads: a cursor's batch.
// ----------------------------------------------------------------------

/// What one scan of a cursor's batch found.
#[derive(Debug, PartialEq)]
pub(crate) struct BatchScan {
    /// The data keys the batch's encrypted values name, each once, in the
    /// order [`batch_keys`](super::encryption::batch_keys) lists them.
    pub(crate) refs: Vec<KeyRef>,
    /// Per document, how many FLE1 values it holds (0: nothing to
    /// decrypt; the count picks the decryption's small-document path).
    pub(crate) encrypted: Vec<usize>,
}

/// Scans a cursor's batch: the key ids of its FLE1 values and which
/// documents hold one, reading only the element headers and the
/// documents, arrays and binaries (not every value, as the full key walk
/// does).
///
/// `None` unless the whole batch is plain sailing: every element reads,
/// every document, array and binary value parses, nothing nests deeper
/// than [`MAX_NESTING`], and every subtype-6 value is an FLE1 blob. Then
/// (and only then) the full path's key walk
/// ([`batch_keys`](super::encryption::batch_keys)) meets exactly these
/// blobs: it skips only values that do not parse (none of which is a
/// binary, document or array here) and stops at a malformed element
/// (there is none), and it visits a document's values last first, so its
/// key order is the reverse of document order, document by document; the
/// nesting check of decryption passes too. Anything else is the full
/// path's to refuse or decrypt: a QE value, a marking, a truncated blob.
pub(crate) fn scan_batch(docs: &[&RawDocument]) -> Option<BatchScan> {
    let mut refs: Vec<KeyRef> = Vec::new();
    let mut encrypted = Vec::with_capacity(docs.len());
    let mut ids: Vec<KeyId> = Vec::new();
    for doc in docs {
        ids.clear();
        scan_document(doc, &mut ids)?;
        encrypted.push(ids.len());
        // The full walk pops a document's values from a stack: last first.
        for id in ids.iter().rev() {
            if !refs
                .iter()
                .any(|r| matches!(r, KeyRef::Id(known) if known == id))
            {
                refs.push(KeyRef::Id(*id));
            }
        }
    }
    Some(BatchScan { refs, encrypted })
}

/// Appends the key ids of `doc`'s FLE1 values to `ids`, in document order
/// (depth first); `None` as [`scan_batch`] says.
fn scan_document(doc: &RawDocument, ids: &mut Vec<KeyId>) -> Option<()> {
    // One element iterator per open document: no recursion, and the stack
    // length is the depth of the elements the top iterator yields.
    let mut stack = vec![doc.iter_elements()];
    while let Some(elements) = stack.last_mut() {
        let Some(element) = elements.next() else {
            stack.pop();
            continue;
        };
        let element = element.ok()?;
        if stack.len() > MAX_NESTING {
            return None;
        }
        match element.element_type() {
            ElementType::Binary => {
                if let RawBsonRef::Binary(b) = element.value().ok()?
                    && b.subtype == BinarySubtype::Encrypted
                {
                    ids.push(Fle1Blob::parse(b.bytes).ok()?.key_id);
                }
            }
            ElementType::EmbeddedDocument => match element.value().ok()? {
                RawBsonRef::Document(d) => stack.push(d.iter_elements()),
                _ => return None,
            },
            ElementType::Array => match element.value().ok()? {
                // An array is a document with keys "0", "1", …
                RawBsonRef::Array(a) => {
                    stack.push(RawDocument::from_bytes(a.as_bytes()).ok()?.iter_elements());
                }
                _ => return None,
            },
            _ => {}
        }
    }
    Some(())
}

// ----------------------------------------------------------------------
// Writes: the documents of an `insert`.
// ----------------------------------------------------------------------

/// How deep a plain value of an inserted document may nest for the fast
/// path (deeper ones go through analysis, which measures them): far below
/// what analysis refuses ([`MAX_NESTING`], counted from the command).
const MAX_PLAIN_DEPTH: usize = 64;

/// An encrypted field of an inserted document.
struct PlannedField<'a> {
    /// The element's bytes in the serialized document (type, name, value).
    element: Range<usize>,
    /// Its name's bytes there.
    name: Range<usize>,
    /// Which of [`InsertPlan::refs`] encrypts it.
    key: usize,
    algorithm: Algorithm,
    /// The value, as serialized.
    value: RawBsonRef<'a>,
}

/// The documents of an `insert`, planned for encryption in one pass: what
/// analysis would mark, found without building the command.
pub(crate) struct InsertPlan<'a> {
    documents: &'a [RawDocumentBuf],
    /// Per document, its encrypted fields in document order.
    fields: Vec<Vec<PlannedField<'a>>>,
    /// The data keys, each once, in the order analysis's markings name
    /// them (`marking_keys`: document by document, field by field).
    refs: Vec<KeyRef>,
}

/// Plans the documents of `{insert: <coll>, documents, …fields}` on a
/// namespace whose schema is `schema`. Each document comes serialized
/// (`bson::to_raw_document_buf` of the application's value); analysis
/// would see it parsed into a `Document`, and the driver would serialize
/// what analysis returns.
///
/// `None` unless analysis is known to accept the command and to mark
/// exactly the planned fields, nothing else, and the parsed and
/// re-serialized documents are these bytes: `fields` only `ordered` and
/// `bypassDocumentValidation`, as booleans (no field of its allow-list is
/// unknown, nothing else to walk); every name of every document plain (not
/// empty, no `.`, no leading `$`: no ambiguous segment) and given once (a
/// `Document` would merge repeated names); every field the schema leaves
/// plain free of subtype-6 values and code with scope, and shallow
/// (nothing for the marking check or the nesting bound to refuse); every
/// encrypted field top level, keyed by id (not a JSON pointer), and its
/// value a scalar of a type whose marking round trip is exact, allowed by
/// the algorithm, the schema's `bsonType` and the encryptability rules
/// (nothing for `mark` to refuse, and the same plaintext bytes as the
/// marking's); no field the schema says holds or sits below encrypted
/// fields, or disagrees about. Everything else goes through analysis.
pub(crate) fn plan_insert<'a>(
    schema: Option<&'a EncryptionSchema>,
    documents: &'a [RawDocumentBuf],
    fields: &Document,
) -> Option<InsertPlan<'a>> {
    let plain_options = fields.iter().all(|(k, v)| {
        matches!(k.as_str(), "ordered" | "bypassDocumentValidation")
            && matches!(v, Bson::Boolean(_))
    });
    if !plain_options {
        return None;
    }
    // As analysis's shape: a schema without encrypted fields marks nothing
    // (and names no field).
    let schema = schema.filter(|s| s.has_encrypted_fields());
    let mut plan = InsertPlan {
        documents,
        fields: Vec::with_capacity(documents.len()),
        refs: Vec::new(),
    };
    let mut names = Vec::new();
    for raw in documents {
        let planned = plan_document(schema, raw, &mut plan.refs, &mut names)?;
        plan.fields.push(planned);
    }
    Some(plan)
}

/// One document of [`plan_insert`]: its encrypted fields, their keys added
/// to `refs` (each once); `names` is scratch space.
fn plan_document<'a>(
    schema: Option<&'a EncryptionSchema>,
    raw: &'a RawDocumentBuf,
    refs: &mut Vec<KeyRef>,
    names: &mut Vec<&'a str>,
) -> Option<Vec<PlannedField<'a>>> {
    let bytes: &'a [u8] = raw.as_bytes();
    let base = bytes.as_ptr() as usize;
    let mut planned = Vec::new();
    names.clear();
    for element in raw.iter_elements() {
        let element = element.ok()?;
        let name: &'a str = element.key();
        if !plain_name(name) {
            return None;
        }
        names.push(name);
        let value = element.value().ok()?;
        let info = match schema {
            None => FieldInfo::Plain,
            Some(s) => s.field(name),
        };
        match info {
            FieldInfo::Plain => {
                if !plain_value(value) {
                    return None;
                }
            }
            FieldInfo::Encrypted(spec) => {
                let EncryptKey::Id(id) = &spec.key else {
                    // A JSON-pointer key: analysis resolves it.
                    return None;
                };
                if !exact_scalar(value) || !encryptable(spec, value) {
                    return None;
                }
                // The element's bytes: type, name, NUL, value (`key()`
                // points into `bytes`).
                let name_at = name.as_ptr() as usize - base;
                let name_end = name_at + name.len();
                let end = name_end + 1 + element.len();
                if name_at == 0 || end > bytes.len() {
                    return None;
                }
                let r = KeyRef::Id(*id);
                let key = match refs.iter().position(|k| *k == r) {
                    Some(i) => i,
                    None => {
                        refs.push(r);
                        refs.len() - 1
                    }
                };
                planned.push(PlannedField {
                    element: name_at - 1..end,
                    name: name_at..name_end,
                    key,
                    algorithm: spec.algorithm,
                    value,
                });
            }
            FieldInfo::ContainsEncrypted | FieldInfo::BelowEncrypted(_) | FieldInfo::Conflict => {
                return None;
            }
        }
    }
    // Names given twice: a `Document` keeps one of them.
    if !distinct(names) {
        return None;
    }
    Some(planned)
}

/// Whether no name of `names` is given twice (sorted in place, so that
/// callers may then search it).
pub(crate) fn distinct(names: &mut [&str]) -> bool {
    names.sort_unstable();
    names.windows(2).all(|w| w[0] != w[1])
}

/// A top-level name analysis reads as one plain segment.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('$') && !name.contains('.')
}

/// A value of a plain field that analysis copies as it is: no subtype-6
/// value anywhere in it (a marking would be refused; any other is left to
/// analysis too), no code with scope (whose scope the nesting bound
/// measures and the marking check does not read), at most
/// [`MAX_PLAIN_DEPTH`] deep, every element readable.
fn plain_value(value: RawBsonRef<'_>) -> bool {
    let nested = match value {
        RawBsonRef::Binary(b) => return b.subtype != BinarySubtype::Encrypted,
        RawBsonRef::JavaScriptCodeWithScope(_) => return false,
        RawBsonRef::Document(d) => d,
        RawBsonRef::Array(a) => match RawDocument::from_bytes(a.as_bytes()) {
            Ok(d) => d,
            Err(_) => return false,
        },
        _ => return true,
    };
    // One element iterator per open document or array: no recursion.
    let mut stack = vec![nested.iter_elements()];
    while let Some(elements) = stack.last_mut() {
        let Some(element) = elements.next() else {
            stack.pop();
            continue;
        };
        let Ok(value) = element.and_then(|e| e.value()) else {
            return false;
        };
        match value {
            RawBsonRef::Binary(b) if b.subtype == BinarySubtype::Encrypted => return false,
            RawBsonRef::JavaScriptCodeWithScope(_) => return false,
            RawBsonRef::Document(d) => stack.push(d.iter_elements()),
            RawBsonRef::Array(a) => match RawDocument::from_bytes(a.as_bytes()) {
                Ok(d) => stack.push(d.iter_elements()),
                Err(_) => return false,
            },
            _ => {}
        }
        if stack.len() > MAX_PLAIN_DEPTH {
            return false;
        }
    }
    true
}

/// Whether `serialized` is a scalar of a type whose trip through a
/// `Document` and a marking (parsed, serialized into the marking, parsed
/// back) gives the same bytes: the plaintext analysis encrypts is then
/// these bytes. Other types go through analysis.
fn exact_scalar(serialized: RawBsonRef<'_>) -> bool {
    match serialized {
        RawBsonRef::String(_)
        | RawBsonRef::Int32(_)
        | RawBsonRef::Int64(_)
        | RawBsonRef::DateTime(_)
        | RawBsonRef::ObjectId(_)
        | RawBsonRef::Boolean(_)
        | RawBsonRef::Double(_)
        | RawBsonRef::Decimal128(_) => true,
        // Analysis refuses Timestamp(0, 0) for a top-level encrypted
        // field (the server would replace it).
        RawBsonRef::Timestamp(t) => t.time != 0 || t.increment != 0,
        RawBsonRef::Binary(b) => !matches!(
            b.subtype,
            BinarySubtype::Encrypted | BinarySubtype::BinaryOld
        ),
        _ => false,
    }
}

/// Whether analysis's `mark` accepts `serialized` for `spec`: the
/// algorithm's types, the schema's `bsonType`, and the encryptability
/// rules, which the encryption applies again to the same bytes.
fn encryptable(spec: &EncryptSpec, serialized: RawBsonRef<'_>) -> bool {
    let ty = serialized.element_type();
    (spec.algorithm != Algorithm::Deterministic || ciphertext::deterministic_allows(ty))
        && (spec.bson_types.is_empty() || spec.bson_types.contains(&ty))
        && ciphertext::check_encryptable(serialized, spec.algorithm).is_ok()
}

impl InsertPlan<'_> {
    /// The data keys to fetch (one key-vault query), in the order analysis
    /// asks for them; empty when nothing is encrypted.
    pub(crate) fn refs(&self) -> &[KeyRef] {
        &self.refs
    }

    /// Whether no field of any document is encrypted: analysis would leave
    /// the command unchanged, and the documents go as serialized.
    pub(crate) fn encrypts_nothing(&self) -> bool {
        self.fields.iter().all(Vec::is_empty)
    }

    /// The documents to send: each serialized document with its encrypted
    /// fields' elements replaced by subtype-6 binaries, encrypted together
    /// (HMACs in lanes) with `keys` (one per [`refs`](Self::refs), in
    /// order). Errors as `encrypt_markings` reports them (the first
    /// failing field in document order); as analysis, refuses the
    /// documents if a planned field did not get its ciphertext.
    pub(crate) fn write(&self, keys: &[Arc<DataKey>]) -> Result<Vec<RawDocumentBuf>, Error> {
        let mut jobs: Vec<(&DataKey, Algorithm, RawBsonRef<'_>)> = Vec::new();
        for f in self.fields.iter().flatten() {
            let key = keys.get(f.key).ok_or_else(|| {
                analysis::Error::Malformed("a planned key was not fetched".into())
            })?;
            jobs.push((&**key, f.algorithm, f.value));
        }
        let made = jobs.len();
        let mut sealed = ciphertext::encrypt_values(&jobs).into_iter();
        let mut placed = 0usize;
        let mut out = Vec::with_capacity(self.documents.len());
        for (raw, fields) in self.documents.iter().zip(&self.fields) {
            if fields.is_empty() {
                out.push(raw.clone());
                continue;
            }
            let bytes = raw.as_bytes();
            let malformed = || analysis::Error::Malformed("a planned element moved".into());
            // Ciphertexts outgrow their plaintexts by at most an IV, a
            // block of padding, a tag and a header.
            let mut doc = Vec::with_capacity(bytes.len() + fields.len() * 96);
            doc.extend_from_slice(&[0; 4]);
            let mut at = 4;
            for f in fields {
                let ciphertext = match sealed.next() {
                    Some(c) => c.map_err(|e| analysis::Error::Encrypt(e.into()))?,
                    None => return Err(analysis::Error::MarkingsLost { made, placed }.into()),
                };
                doc.extend_from_slice(bytes.get(at..f.element.start).ok_or_else(malformed)?);
                doc.push(ElementType::Binary as u8);
                doc.extend_from_slice(bytes.get(f.name.clone()).ok_or_else(malformed)?);
                doc.push(0);
                let len = i32::try_from(ciphertext.len())
                    .map_err(|_| analysis::Error::Malformed("a ciphertext too large".into()))?;
                doc.extend_from_slice(&len.to_le_bytes());
                doc.push(u8::from(BinarySubtype::Encrypted));
                doc.extend_from_slice(&ciphertext);
                at = f.element.end;
                placed += 1;
            }
            // The plain elements after the last encrypted one, then the
            // terminator and the length.
            let rest = bytes.len().checked_sub(1).ok_or_else(malformed)?;
            doc.extend_from_slice(bytes.get(at..rest).ok_or_else(malformed)?);
            doc.push(0);
            let len = i32::try_from(doc.len())
                .map_err(|_| analysis::Error::Malformed("a document too large".into()))?;
            doc[..4].copy_from_slice(&len.to_le_bytes());
            out.push(RawDocumentBuf::from_bytes(doc)?);
        }
        // Analysis's invariant: every value marked is encrypted in what is
        // sent (a field left behind would be a plaintext).
        if placed != made || sealed.next().is_some() {
            return Err(analysis::Error::MarkingsLost { made, placed }.into());
        }
        check_placed(&out, made)?;
        Ok(out)
    }
}

/// Analysis's marking count, on what the fast path sends: as analysis
/// counts the markings in the command it made, the subtype-6 values in the
/// documents are counted, and must be exactly the `made` ciphertexts (the
/// plain fields were checked to hold none).
fn check_placed(documents: &[RawDocumentBuf], made: usize) -> Result<(), Error> {
    let mut ids = Vec::with_capacity(made);
    let mut whole = true;
    for d in documents {
        whole &= scan_document(d, &mut ids).is_some();
    }
    if !whole || ids.len() != made {
        return Err(analysis::Error::MarkingsLost {
            made,
            placed: ids.len(),
        }
        .into());
    }
    Ok(())
}

// ----------------------------------------------------------------------
// Queries: a `find` by equality.
// ----------------------------------------------------------------------

/// One top-level equality of a planned `find` filter: `name: value`, which
/// analysis rewrites to `{name: {$eq: value}}` (the value marked when the
/// schema encrypts the field).
struct Equality<'c> {
    name: &'c str,
    value: &'c Bson,
    /// The data key and algorithm, when the schema encrypts the field.
    encrypted: Option<(KeyRef, Algorithm)>,
}

/// A `find` whose filter is planned without analysis: what analysis would
/// mark and send, found in one pass over the command.
pub(crate) struct FindPlan<'c> {
    command: &'c Document,
    equalities: Vec<Equality<'c>>,
    /// The data keys, each once, in the order analysis's markings name
    /// them (the filter's order).
    refs: Vec<KeyRef>,
}

/// Plans `{find: <coll>, filter, …}` on a namespace whose FLE1 schema is
/// `schema` (`None`: no schema).
///
/// `None` unless analysis is known to accept the command and to mark
/// exactly the planned values: the command's fields only `find` (a
/// string), `filter` (a document) and `limit`, `skip`, `batchSize` (as
/// integers) and `singleBatch` (a boolean), values analysis copies and
/// that name no field; every name of the filter plain (not empty, no `.`,
/// no leading `$`: no operator, no ambiguous segment) and its value a
/// scalar (no document, array, regular expression, code, or subtype-6
/// value: no operator, no marking, nothing for the marking check or the
/// nesting bound to read); every field the schema encrypts deterministic,
/// keyed by id, and its value one an inserted value's checks take
/// ([`exact_scalar`], [`encryptable`]: not null, a marking round trip that
/// is exact, allowed by the algorithm, the schema's `bsonType` and the
/// encryptability rules, nothing for `mark` to refuse); no field the
/// schema says holds or sits below encrypted fields, or disagrees about.
/// Everything else goes through analysis.
pub(crate) fn plan_find<'c>(
    schema: Option<&EncryptionSchema>,
    command: &'c Document,
) -> Option<FindPlan<'c>> {
    let mut fields = command.iter();
    match fields.next() {
        Some((name, Bson::String(_))) if name == "find" => {}
        _ => return None,
    }
    let mut filter = None;
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("filter", Bson::Document(f)) => filter = Some(f),
            ("limit" | "skip" | "batchSize", Bson::Int32(_) | Bson::Int64(_))
            | ("singleBatch", Bson::Boolean(_)) => {}
            _ => return None,
        }
    }
    // As analysis's shape: a schema without encrypted fields leaves the
    // filter as it is.
    let schema = schema.filter(|s| s.has_encrypted_fields());
    let mut plan = FindPlan {
        command,
        equalities: Vec::new(),
        refs: Vec::new(),
    };
    let Some(filter) = filter else {
        return Some(plan);
    };
    for (name, value) in filter {
        if !plain_name(name) || !query_scalar(value) {
            return None;
        }
        let info = match schema {
            None => FieldInfo::Plain,
            Some(s) => s.field(name),
        };
        let encrypted = match info {
            FieldInfo::Plain => None,
            FieldInfo::Encrypted(spec) => {
                let EncryptKey::Id(id) = &spec.key else {
                    return None;
                };
                if spec.algorithm != Algorithm::Deterministic {
                    return None;
                }
                // The value as the marking would carry it: the same checks
                // as an inserted value's (null is no such scalar).
                let marked = crate::explicit::to_raw(value).ok()?;
                let marked = marked.as_raw_bson_ref();
                if !exact_scalar(marked) || !encryptable(spec, marked) {
                    return None;
                }
                let r = KeyRef::Id(*id);
                if !plan.refs.contains(&r) {
                    plan.refs.push(r.clone());
                }
                Some((r, spec.algorithm))
            }
            FieldInfo::ContainsEncrypted | FieldInfo::BelowEncrypted(_) | FieldInfo::Conflict => {
                return None;
            }
        };
        plan.equalities.push(Equality {
            name,
            value,
            encrypted,
        });
    }
    Some(plan)
}

/// A filter value the fast path takes: a scalar analysis either copies (a
/// plain field) or marks as it is. No document or array (operators,
/// nesting), regular expression (`$regex`), code (the code operators),
/// subtype-6 value (a marking, or a ciphertext analysis refuses to
/// re-encrypt), and none of the types without an order or a marking
/// round trip worth proving (symbol, undefined, DB pointer, min/max key).
fn query_scalar(value: &Bson) -> bool {
    match value {
        Bson::String(_)
        | Bson::Int32(_)
        | Bson::Int64(_)
        | Bson::Double(_)
        | Bson::Boolean(_)
        | Bson::Null
        | Bson::ObjectId(_)
        | Bson::DateTime(_)
        | Bson::Decimal128(_)
        | Bson::Timestamp(_) => true,
        Bson::Binary(b) => b.subtype != BinarySubtype::Encrypted,
        _ => false,
    }
}

impl FindPlan<'_> {
    /// The data keys to fetch (one key-vault query), in the order analysis
    /// asks for them; empty when nothing is encrypted.
    pub(crate) fn refs(&self) -> &[KeyRef] {
        &self.refs
    }

    /// Whether no value is encrypted: analysis would leave the command
    /// unchanged.
    pub(crate) fn encrypts_nothing(&self) -> bool {
        self.refs.is_empty()
    }

    /// The command to send, as analysis and `Markings::encrypt` make it:
    /// the filter rewritten to one `{name: {$eq: value}}` per equality (a
    /// `$and` of them when there are several), each encrypted value
    /// replaced by its ciphertext, encrypted together (HMACs in lanes)
    /// with `keys`; the first error in filter order, as analysis reports
    /// it. As analysis, refuses the command if a value did not get its
    /// ciphertext.
    pub(crate) fn write(&self, keys: &dyn KeyLookup) -> Result<Document, Error> {
        let jobs: Vec<(&Bson, &KeyRef, Algorithm)> = self
            .equalities
            .iter()
            .filter_map(|e| e.encrypted.as_ref().map(|(k, a)| (e.value, k, *a)))
            .collect();
        let made = jobs.len();
        let encrypter = ExplicitEncrypter::new(keys);
        let mut ciphertexts = encrypter
            .encrypt_many(&jobs)
            .into_iter()
            .zip(&jobs)
            .map(|(r, (_, key, _))| r.map_err(|e| analysis::redact_key_error(key, e)));
        let mut placed = 0usize;
        let mut predicates = Vec::with_capacity(self.equalities.len());
        for e in &self.equalities {
            let value = match e.encrypted {
                None => e.value.clone(),
                Some(_) => match ciphertexts.next() {
                    Some(c) => {
                        placed += 1;
                        Bson::Binary(c?)
                    }
                    None => return Err(analysis::Error::MarkingsLost { made, placed }.into()),
                },
            };
            let mut predicate = Document::new();
            predicate.insert(e.name, doc! {"$eq": value});
            predicates.push(predicate);
        }
        let mut filter = match predicates.len() {
            1 => predicates.pop().unwrap_or_default(),
            _ => doc! {"$and": predicates},
        };
        // The command's fields in its order, the filter in its place.
        let mut sent = Document::new();
        for (k, v) in self.command {
            let v = match k.as_str() {
                "filter" => Bson::Document(std::mem::take(&mut filter)),
                _ => v.clone(),
            };
            sent.insert(k.clone(), v);
        }
        // Analysis's invariant: every value marked is encrypted in what is
        // sent (the command held no subtype-6 value before).
        let found = count_ciphertexts(&sent)?;
        if placed != made || ciphertexts.next().is_some() || found != made {
            return Err(analysis::Error::MarkingsLost {
                made,
                placed: found,
            }
            .into());
        }
        Ok(sent)
    }
}

/// How many subtype-6 values (ciphertexts, markings, anything of the
/// subtype) `command` holds: the fast path's check of its output, as
/// analysis counts its markings.
fn count_ciphertexts(command: &Document) -> Result<usize, Error> {
    let mut n = 0;
    for v in command.values() {
        crate::nesting::visit(v, &mut |v| {
            if let Bson::Binary(b) = v
                && b.subtype == BinarySubtype::Encrypted
            {
                n += 1;
            }
            Ok::<(), analysis::Error>(())
        })?;
    }
    Ok(n)
}

#[cfg(test)]
#[path = "fast_path_tests.rs"]
mod tests;
