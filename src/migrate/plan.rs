//! What a migration plan does to one document. Pure: keys come from a
//! [`KeyLookup`], nothing here does I/O.
//!
//! The transform is idempotent, which is what makes a migration safe to
//! interrupt and rerun: a value already encrypted with the target key and
//! algorithm is left as it is (random ciphertexts are not re-randomized),
//! so applying the plan to its own output changes nothing.

use crate::analysis::resolve_pointer;
use crate::ciphertext::Fle1Blob;
use crate::crypto::DataKey;
use crate::crypto::KeyLookup;
use crate::explicit::{ExplicitEncrypter, MAX_NESTING, encrypt_with_key, to_raw};
use crate::key::{KeyRef, LookupError};
use crate::schema::{EncryptKey, EncryptSpec, EncryptionSchema, FieldInfo, SchemaSource};
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document};
use std::sync::Arc;

/// Why one document cannot be migrated. The document is left untouched and
/// reported by `_id`; the rest of the collection goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// A key the document needs is not in the key vault (or cannot be unwrapped).
    #[error("data key not available: {0}")]
    Key(#[from] LookupError),
    /// The data key a `keyId` JSON pointer names is missing, ambiguous or
    /// unavailable. The alternate name is the document's own data, so it is
    /// not shown.
    #[error(
        "field '{field}': the data key named by keyId pointer '{pointer}' (the name is the document's and not shown): {reason}"
    )]
    KeyFromDocument {
        /// The encrypted field.
        field: String,
        /// The pointer.
        pointer: String,
        /// What is wrong with the key.
        reason: &'static str,
    },
    /// A `keyId` JSON pointer does not lead to a string in this document.
    #[error("field '{field}': keyId pointer '{pointer}' does not name a string field")]
    KeyPointer {
        /// The encrypted field.
        field: String,
        /// The pointer.
        pointer: String,
    },
    /// The value's type is not one the plan's `bsonType` allows.
    #[error("field '{field}': {found} is not an allowed bsonType")]
    TypeNotAllowed {
        /// The field.
        field: String,
        /// The value's type.
        found: &'static str,
    },
    /// Schema entries that disagree about whether this field is encrypted.
    #[error("field '{field}': several schema entries match it and disagree about its encryption")]
    SchemaConflict {
        /// The field.
        field: String,
    },
    /// An array where the plan expects a document with encrypted fields
    /// (encrypted fields inside arrays are not supported).
    #[error("field '{field}': an array where the plan expects a document with encrypted fields")]
    ArrayInPlace {
        /// The field.
        field: String,
    },
    /// Encrypting or decrypting a value failed (bad ciphertext, bad MAC,
    /// a type the algorithm refuses, …).
    #[error("field '{field}': {source}")]
    Value {
        /// The field.
        field: String,
        /// Why.
        source: crate::explicit::Error,
    },
    /// A field whose path lies below an encrypted field: a name with a `.`
    /// (`{"ssn.x": …}`, or `{"a": {"b.c": …}}` where `a.b` is encrypted)
    /// that an update or a server reading it as a path would put inside
    /// the encrypted field, in plaintext.
    #[error(
        "field '{field}': below the encrypted field '{encrypted}' (a field name with '.' is read as a path)"
    )]
    BelowEncrypted {
        /// The field, as a dotted path.
        field: String,
        /// The encrypted field it is below.
        encrypted: String,
    },
    /// The document nests deeper than [`MAX_NESTING`].
    #[error("document nesting exceeds {0} levels")]
    TooDeep(usize),
    /// The plan would turn a ciphertext at this field into plaintext, and
    /// it refuses decryption (see [`Plan::refusing_decryption`]).
    #[error(
        "field '{field}': holds a ciphertext the schema would store decrypted (in plaintext); refused"
    )]
    WouldDecrypt {
        /// The field.
        field: String,
    },
}

/// The target state of a collection: which fields end up encrypted, with
/// which key and algorithm, and which end up plaintext.
///
/// * a field the schema marks `encrypt` ends up encrypted with exactly that
///   key and algorithm (plaintext is encrypted; a ciphertext under another
///   key or algorithm is decrypted and re-encrypted);
/// * a field the schema names without `encrypt` ends up plaintext;
/// * an encrypted field the schema does not name stays as it is, unless
///   `decrypt_unlisted` (fail closed: nothing is decrypted by accident).
#[derive(Clone, Debug)]
pub struct Plan {
    schema: EncryptionSchema,
    schema_doc: Document,
    decrypt_unlisted: bool,
    /// Where the plan would store a ciphertext decrypted, the document is
    /// refused instead ([`DocumentError::WouldDecrypt`]).
    refuse_decryption: bool,
}

/// What the plan does to one document.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The document already matches the plan.
    Unchanged,
    /// The document as the plan wants it.
    Changed {
        /// The whole new document.
        document: Document,
        /// The top-level fields whose values change.
        fields: Vec<String>,
        /// Top-level fields the new values were derived from without
        /// changing (those holding `keyId` pointers): a concurrent change
        /// to them must also make a conditional write fail.
        depends_on: Vec<String>,
    },
}

impl Plan {
    /// A plan from a `$jsonSchema` document (a schema-map entry), validated
    /// as a client-side schema.
    pub fn from_schema(schema: &Document, decrypt_unlisted: bool) -> Result<Self, super::Error> {
        let parsed =
            EncryptionSchema::parse(schema, SchemaSource::Local).map_err(super::Error::Plan)?;
        Ok(Plan {
            schema: parsed,
            schema_doc: schema.clone(),
            decrypt_unlisted,
            refuse_decryption: false,
        })
    }

    /// This plan, refusing every document it would turn a ciphertext of
    /// into plaintext (a field named without `encrypt`, a ciphertext where
    /// the schema describes a sub-document, an unlisted field with
    /// `decrypt_unlisted`): for writers such as an import, which have no
    /// audit log of decryptions. A ciphertext re-encrypted under the
    /// plan's key and algorithm stays encrypted and is still allowed.
    #[must_use]
    pub fn refusing_decryption(mut self) -> Self {
        self.refuse_decryption = true;
        self
    }

    /// Whether the plan refuses documents it would decrypt.
    pub fn refuses_decryption(&self) -> bool {
        self.refuse_decryption
    }

    /// The schema document the plan was made from.
    pub fn schema(&self) -> &Document {
        &self.schema_doc
    }

    /// The parsed schema.
    pub fn encryption_schema(&self) -> &EncryptionSchema {
        &self.schema
    }

    /// Whether encrypted fields the schema does not name are decrypted.
    pub fn decrypt_unlisted(&self) -> bool {
        self.decrypt_unlisted
    }

    /// The keys applying the plan to `doc` needs: the keys of the
    /// ciphertexts it must decrypt and the target keys of the fields it must
    /// encrypt. (A ciphertext that has to be decrypted before what is inside
    /// it can be seen may reveal more; [`apply`](Self::apply) then reports
    /// that key as missing.)
    pub fn keys_for(&self, doc: &Document) -> Vec<KeyRef> {
        let mut walk = Walk {
            plan: self,
            root: doc,
            keys: None,
            needed: Vec::new(),
            depends_on: Vec::new(),
        };
        // Errors are reported by `apply`; here only the keys matter.
        let _ = walk.document("", doc, 0);
        walk.needed
    }

    /// Applies the plan to `doc`.
    pub fn apply(&self, doc: &Document, keys: &dyn KeyLookup) -> Result<Change, DocumentError> {
        let Changes { values, depends_on } = self.changes(doc, keys)?;
        let fields: Vec<String> = changed_names(doc, &values).map(str::to_owned).collect();
        if fields.is_empty() {
            return Ok(Change::Unchanged);
        }
        // A clone keeps the map's index, where inserting every field again
        // would hash every name; the new values then replace the old in
        // place.
        let mut document = doc.clone();
        replace_values(&mut document, values);
        Ok(Change::Changed {
            document,
            fields,
            depends_on,
        })
    }

    /// [`apply`](Self::apply) to a document the caller gives up: the
    /// document as the plan wants it, changed in place, never copied (an
    /// unchanged document is returned as it came). For writers that keep
    /// only the result (`conform`).
    pub fn apply_owned(
        &self,
        mut doc: Document,
        keys: &dyn KeyLookup,
    ) -> Result<Document, DocumentError> {
        let values = self.changes(&doc, keys)?.values;
        replace_values(&mut doc, values);
        Ok(doc)
    }

    /// What applying the plan to `doc` changes.
    fn changes(&self, doc: &Document, keys: &dyn KeyLookup) -> Result<Changes, DocumentError> {
        let mut walk = Walk {
            plan: self,
            root: doc,
            keys: Some(keys),
            needed: Vec::new(),
            depends_on: Vec::new(),
        };
        let mut values = Vec::with_capacity(doc.len());
        for (k, v) in doc {
            values.push(walk.value(k, v, 1)?);
        }
        let mut depends_on = walk.depends_on;
        depends_on.retain(|f| !changed_names(doc, &values).any(|k| k == f));
        Ok(Changes { values, depends_on })
    }
}

/// What [`Plan::changes`] found.
struct Changes {
    /// One entry per top-level field, in the document's order: its new
    /// value, or `None` where it stays.
    values: Vec<Option<Bson>>,
    /// Top-level fields the new values were derived from without changing.
    depends_on: Vec<String>,
}

/// The names of the top-level fields of `doc` that `values` (its
/// [`Changes::values`]) changes, in the document's order.
fn changed_names<'d>(
    doc: &'d Document,
    values: &'d [Option<Bson>],
) -> impl Iterator<Item = &'d str> + 'd {
    doc.keys()
        .zip(values)
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.as_str())
}

/// Puts the new `values` ([`Changes::values`] of this document: one entry
/// per field, in its order) in place of the old.
fn replace_values(doc: &mut Document, values: Vec<Option<Bson>>) {
    debug_assert_eq!(doc.len(), values.len());
    for ((_, slot), new) in doc.iter_mut().zip(values) {
        if let Some(new) = new {
            *slot = new;
        }
    }
}

/// One pass over a document: with `keys`, producing the new values; without,
/// recording which keys a real pass would need.
struct Walk<'a> {
    plan: &'a Plan,
    root: &'a Document,
    keys: Option<&'a dyn KeyLookup>,
    needed: Vec<KeyRef>,
    depends_on: Vec<String>,
}

fn child(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The shortest prefix of `path` (whole segments) that `schema` encrypts:
/// the encrypted field a path found below one is below.
fn encrypted_prefix(schema: &EncryptionSchema, path: &str) -> String {
    path.match_indices('.')
        .map(|(i, _)| &path[..i])
        .find(|prefix| matches!(schema.field(prefix), FieldInfo::Encrypted(_)))
        .unwrap_or(path)
        .to_owned()
}

/// `WouldDecrypt` when `v` is or holds a ciphertext.
fn refuse_ciphertext(path: &str, v: &Bson, depth: usize) -> Result<(), DocumentError> {
    if depth > MAX_NESTING {
        return Err(DocumentError::TooDeep(MAX_NESTING));
    }
    match v {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
            Err(DocumentError::WouldDecrypt {
                field: path.to_owned(),
            })
        }
        Bson::Document(d) => d
            .values()
            .try_for_each(|x| refuse_ciphertext(path, x, depth + 1)),
        Bson::Array(a) => a
            .iter()
            .try_for_each(|x| refuse_ciphertext(path, x, depth + 1)),
        _ => Ok(()),
    }
}

fn encrypted(value: &Bson) -> Option<&Binary> {
    match value {
        Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => Some(b),
        _ => None,
    }
}

impl Walk<'_> {
    fn need(&mut self, r: KeyRef) {
        if !self.needed.contains(&r) {
            self.needed.push(r);
        }
    }

    fn value_error(field: &str, e: impl Into<crate::explicit::Error>) -> DocumentError {
        DocumentError::Value {
            field: field.to_owned(),
            source: e.into(),
        }
    }

    /// Decrypts one ciphertext (collect mode: records its key, returns `None`).
    fn decrypt(&mut self, path: &str, b: &Binary) -> Result<Option<Bson>, DocumentError> {
        let blob = Fle1Blob::parse(&b.bytes).map_err(|e| Self::value_error(path, e))?;
        let Some(keys) = self.keys else {
            self.need(KeyRef::Id(blob.key_id));
            return Ok(None);
        };
        keys.data_key(&KeyRef::Id(blob.key_id))?;
        ExplicitEncrypter::new(keys)
            .decrypt(b)
            .map(Some)
            .map_err(|e| Self::value_error(path, e))
    }

    /// The new value of the field at `path`, or `None` when it stays.
    fn value(&mut self, path: &str, v: &Bson, depth: usize) -> Result<Option<Bson>, DocumentError> {
        if depth > MAX_NESTING {
            return Err(DocumentError::TooDeep(MAX_NESTING));
        }
        match self.plan.schema.field(path) {
            FieldInfo::Conflict => Err(DocumentError::SchemaConflict {
                field: path.to_owned(),
            }),
            FieldInfo::Encrypted(spec) => self.encrypt_field(path, v, spec),
            FieldInfo::ContainsEncrypted => match v {
                Bson::Document(d) => Ok(self.document(path, d, depth)?.map(Bson::Document)),
                Bson::Array(_) => Err(DocumentError::ArrayInPlace {
                    field: path.to_owned(),
                }),
                // The plan names this field as a document: a ciphertext here
                // is decrypted, then its fields follow the plan (those it
                // does not encrypt end up plaintext).
                Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => {
                    if self.plan.refuse_decryption {
                        return Err(DocumentError::WouldDecrypt {
                            field: path.to_owned(),
                        });
                    }
                    match self.decrypt(path, b)? {
                        Some(Bson::Document(d)) => Ok(Some(Bson::Document(
                            self.document(path, &d, depth)?.unwrap_or(d),
                        ))),
                        other => Ok(other),
                    }
                }
                _ => Ok(None),
            },
            // Never left as it is, whatever the mode: written as a path it
            // is a plaintext inside a ciphertext's place.
            FieldInfo::BelowEncrypted(_) => Err(DocumentError::BelowEncrypted {
                field: path.to_owned(),
                encrypted: encrypted_prefix(&self.plan.schema, path),
            }),
            FieldInfo::Plain => {
                if self.plan.decrypt_unlisted || self.plan.schema.is_listed(path) {
                    if self.plan.refuse_decryption {
                        refuse_ciphertext(path, v, depth)?;
                    }
                    self.decrypt_all(path, v, depth)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The new version of a sub-document, or `None` when nothing in it changes.
    fn document(
        &mut self,
        prefix: &str,
        d: &Document,
        depth: usize,
    ) -> Result<Option<Document>, DocumentError> {
        let mut out: Option<Document> = None;
        for (i, (k, v)) in d.iter().enumerate() {
            let new = self.value(&child(prefix, k), v, depth + 1)?;
            match (new, &mut out) {
                (Some(new), Some(o)) => {
                    o.insert(k.clone(), new);
                }
                (Some(new), None) => {
                    // First change: copy the fields before it.
                    let mut o: Document = d
                        .iter()
                        .take(i)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    o.insert(k.clone(), new);
                    out = Some(o);
                }
                (None, Some(o)) => {
                    o.insert(k.clone(), v.clone());
                }
                (None, None) => {}
            }
        }
        Ok(out)
    }

    /// `v` with every ciphertext in it decrypted, or `None` when it has none.
    fn decrypt_all(
        &mut self,
        path: &str,
        v: &Bson,
        depth: usize,
    ) -> Result<Option<Bson>, DocumentError> {
        if depth > MAX_NESTING {
            return Err(DocumentError::TooDeep(MAX_NESTING));
        }
        match v {
            Bson::Binary(b) if b.subtype == BinarySubtype::Encrypted => self.decrypt(path, b),
            Bson::Document(d) => {
                let mut changed = false;
                let mut out = Document::new();
                for (k, x) in d {
                    match self.decrypt_all(path, x, depth + 1)? {
                        Some(n) => {
                            changed = true;
                            out.insert(k.clone(), n);
                        }
                        None => {
                            out.insert(k.clone(), x.clone());
                        }
                    }
                }
                Ok(changed.then_some(Bson::Document(out)))
            }
            Bson::Array(a) => {
                let mut changed = false;
                let mut out = Vec::with_capacity(a.len());
                for x in a {
                    match self.decrypt_all(path, x, depth + 1)? {
                        Some(n) => {
                            changed = true;
                            out.push(n);
                        }
                        None => out.push(x.clone()),
                    }
                }
                Ok(changed.then_some(Bson::Array(out)))
            }
            _ => Ok(None),
        }
    }

    /// The field's value encrypted as `spec` says, or `None` when it already is.
    fn encrypt_field(
        &mut self,
        path: &str,
        v: &Bson,
        spec: &EncryptSpec,
    ) -> Result<Option<Bson>, DocumentError> {
        let (target, pointer) = match &spec.key {
            EncryptKey::Id(id) => (KeyRef::Id(*id), None),
            EncryptKey::AltNamePointer(pointer) => {
                let name = resolve_pointer(self.root, pointer).ok_or_else(|| {
                    DocumentError::KeyPointer {
                        field: path.to_owned(),
                        pointer: pointer.clone(),
                    }
                })?;
                // The top-level field the key name comes from.
                if let Some(top) = pointer.trim_start_matches('/').split('/').next() {
                    let top = top.replace("~1", "/").replace("~0", "~");
                    if !self.depends_on.contains(&top) {
                        self.depends_on.push(top);
                    }
                }
                (KeyRef::AltName(name.to_owned()), Some(pointer))
            }
        };
        let Some(keys) = self.keys else {
            self.need(target);
            // The keys of the value's own ciphertexts (it, or ones inside it).
            self.decrypt_all(path, v, 1)?;
            return Ok(None);
        };
        let target_key: Arc<DataKey> = keys.data_key(&target).map_err(|e| match pointer {
            // The name is the document's data: never in the error.
            Some(pointer) => DocumentError::KeyFromDocument {
                field: path.to_owned(),
                pointer: pointer.clone(),
                reason: match e {
                    LookupError::AltNameNotFound(_) => "no data key has that keyAltName",
                    LookupError::AmbiguousAltName(_) => "several data keys have that keyAltName",
                    LookupError::KeyNotFound(_) | LookupError::Unavailable { .. } => {
                        "the data key is not available"
                    }
                },
            },
            None => DocumentError::Key(e),
        })?;
        let plaintext = match encrypted(v) {
            Some(b) => {
                let blob = Fle1Blob::parse(&b.bytes).map_err(|e| Self::value_error(path, e))?;
                if blob.key_id == target_key.id() && blob.subtype.algorithm() == spec.algorithm {
                    return Ok(None);
                }
                self.decrypt(path, b)?.unwrap_or(Bson::Null)
            }
            // A document or array holding ciphertexts is encrypted with
            // them decrypted: never a ciphertext inside a ciphertext.
            None => self.decrypt_all(path, v, 1)?.unwrap_or_else(|| v.clone()),
        };
        if !spec.bson_types.is_empty() && !spec.bson_types.contains(&plaintext.element_type()) {
            return Err(DocumentError::TypeNotAllowed {
                field: path.to_owned(),
                found: crate::ciphertext::type_name(plaintext.element_type()),
            });
        }
        // Encrypt with the key already looked up (an alt-name pointer is
        // resolved once).
        let raw = to_raw(&plaintext).map_err(|e| Self::value_error(path, e))?;
        encrypt_with_key(&target_key, raw.as_raw_bson_ref(), spec.algorithm)
            .map(|bytes| {
                Some(Bson::Binary(Binary {
                    subtype: BinarySubtype::Encrypted,
                    bytes,
                }))
            })
            .map_err(|e| Self::value_error(path, e))
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
