//! The fast paths of the encrypted collection's hot operations: a cursor's
//! batch decrypted in fewer passes, and the documents of an `insert`
//! encrypted in one pass over their serialized bytes.
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
use crate::crypto::{Algorithm, DataKey};
use crate::key::{KeyId, KeyRef};
use crate::nesting::MAX_NESTING;
use crate::schema::{EncryptKey, EncryptSpec, EncryptionSchema, FieldInfo};
use bson::spec::{BinarySubtype, ElementType};
use bson::{Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
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
    documents: &'a [(Document, RawDocumentBuf)],
    /// Per document, its encrypted fields in document order.
    fields: Vec<Vec<PlannedField<'a>>>,
    /// The data keys, each once, in the order analysis's markings name
    /// them (`marking_keys`: document by document, field by field).
    refs: Vec<KeyRef>,
}

/// Plans the documents of `{insert: <coll>, documents, …fields}` on a
/// namespace whose schema is `schema`. Each document comes as the
/// application's `Document` and as serialized by `bson::to_raw_document_buf`
/// (the serialization the driver applies to what analysis returns).
///
/// `None` unless analysis is known to accept the command and to mark
/// exactly the planned fields, nothing else: `fields` only `ordered` and
/// `bypassDocumentValidation`, as booleans (no field of its allow-list is
/// unknown, nothing else to walk); every name of every document plain (not
/// empty, no `.`, no leading `$`: no ambiguous segment); every field the
/// schema leaves plain free of subtype-6 values and code with scope, and
/// shallow (nothing for the marking check or the nesting bound to refuse);
/// every encrypted field top level, keyed by id (not a JSON pointer), and
/// its value a scalar of a type whose marking round trip is exact, allowed
/// by the algorithm, the schema's `bsonType` and the encryptability rules
/// (nothing for `mark` to refuse, and the same plaintext bytes as the
/// marking's); no field the schema says holds or sits below encrypted
/// fields, or disagrees about. Everything else goes through analysis.
pub(crate) fn plan_insert<'a>(
    schema: Option<&'a EncryptionSchema>,
    documents: &'a [(Document, RawDocumentBuf)],
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
    for (doc, raw) in documents {
        let planned = plan_document(schema, doc, raw, &mut plan.refs)?;
        plan.fields.push(planned);
    }
    Some(plan)
}

/// One document of [`plan_insert`]: its encrypted fields, their keys added
/// to `refs` (each once).
fn plan_document<'a>(
    schema: Option<&'a EncryptionSchema>,
    doc: &Document,
    raw: &'a RawDocumentBuf,
    refs: &mut Vec<KeyRef>,
) -> Option<Vec<PlannedField<'a>>> {
    let bytes: &'a [u8] = raw.as_bytes();
    let base = bytes.as_ptr() as usize;
    let mut elements = raw.iter_elements();
    let mut planned = Vec::new();
    // The serialized document holds the document's fields in its order:
    // walked together, each name checked against the other.
    for (name, value) in doc {
        let element = elements.next()?.ok()?;
        if element.key() != name.as_str() || !plain_name(name) {
            return None;
        }
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
                let serialized = element.value().ok()?;
                if !same_scalar(value, serialized) || !encryptable(spec, value, serialized) {
                    return None;
                }
                // The element's bytes: type, name, NUL, value (`key()`
                // points into `bytes`).
                let name_at = element.key().as_ptr() as usize - base;
                let name_end = name_at + element.key().len();
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
                    value: serialized,
                });
            }
            FieldInfo::ContainsEncrypted | FieldInfo::BelowEncrypted(_) | FieldInfo::Conflict => {
                return None;
            }
        }
    }
    if elements.next().is_some() {
        return None;
    }
    Some(planned)
}

/// A top-level name analysis reads as one plain segment.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('$') && !name.contains('.')
}

/// A value of a plain field that analysis copies as it is: no subtype-6
/// value anywhere in it (a marking would be refused; any other is left to
/// analysis too), no code with scope (whose scope the nesting bound
/// measures and the marking check does not read), at most
/// [`MAX_PLAIN_DEPTH`] deep.
fn plain_value(value: &Bson) -> bool {
    match value {
        Bson::Binary(b) => b.subtype != BinarySubtype::Encrypted,
        Bson::JavaScriptCodeWithScope(_) => false,
        Bson::Document(_) | Bson::Array(_) => {
            let mut stack = vec![(value, 0usize)];
            while let Some((v, depth)) = stack.pop() {
                if depth > MAX_PLAIN_DEPTH {
                    return false;
                }
                match v {
                    Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => return false,
                    Bson::JavaScriptCodeWithScope(_) => return false,
                    Bson::Document(d) => stack.extend(d.values().map(|v| (v, depth + 1))),
                    Bson::Array(a) => stack.extend(a.iter().map(|v| (v, depth + 1))),
                    _ => {}
                }
            }
            true
        }
        _ => true,
    }
}

/// Whether `value` (the application's) and `serialized` (its bytes in the
/// serialized document) are the same scalar, of a type whose trip through
/// a marking (serialized into it, parsed back) gives the same value: the
/// plaintext analysis encrypts is then these bytes. Other types go through
/// analysis.
fn same_scalar(value: &Bson, serialized: RawBsonRef<'_>) -> bool {
    match (value, serialized) {
        (Bson::String(a), RawBsonRef::String(b)) => a == b,
        (Bson::Int32(a), RawBsonRef::Int32(b)) => *a == b,
        (Bson::Int64(a), RawBsonRef::Int64(b)) => *a == b,
        (Bson::DateTime(a), RawBsonRef::DateTime(b)) => *a == b,
        (Bson::ObjectId(a), RawBsonRef::ObjectId(b)) => *a == b,
        (Bson::Boolean(a), RawBsonRef::Boolean(b)) => *a == b,
        (Bson::Double(a), RawBsonRef::Double(b)) => a.to_bits() == b.to_bits(),
        (Bson::Decimal128(a), RawBsonRef::Decimal128(b)) => a.bytes() == b.bytes(),
        // Analysis refuses Timestamp(0, 0) for a top-level encrypted
        // field (the server would replace it).
        (Bson::Timestamp(a), RawBsonRef::Timestamp(b)) => {
            *a == b && (a.time != 0 || a.increment != 0)
        }
        (Bson::Binary(a), RawBsonRef::Binary(b)) => {
            !matches!(
                a.subtype,
                BinarySubtype::Encrypted | BinarySubtype::BinaryOld
            ) && a.subtype == b.subtype
                && a.bytes == b.bytes
        }
        _ => false,
    }
}

/// Whether analysis's `mark` accepts `value` for `spec`: the algorithm's
/// types, the schema's `bsonType`, and the encryptability rules, which the
/// encryption applies again to the same bytes.
fn encryptable(spec: &EncryptSpec, value: &Bson, serialized: RawBsonRef<'_>) -> bool {
    let ty = value.element_type();
    ty == serialized.element_type()
        && (spec.algorithm != Algorithm::Deterministic || ciphertext::deterministic_allows(ty))
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
        for ((_, raw), fields) in self.documents.iter().zip(&self.fields) {
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

#[cfg(test)]
#[path = "fast_path_tests.rs"]
mod tests;
