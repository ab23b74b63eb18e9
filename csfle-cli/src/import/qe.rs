//! `csfle import` into a Queryable Encryption collection (feature `qe`):
//! each batch's documents go out as `insert` commands that automatic
//! encryption analyses and finalizes (every value of an encrypted field a
//! QE payload, the `encryptionInformation` the server needs beside them),
//! sent as they are. A document automatic encryption refuses is its
//! line's failure; the others of its batch are written.

use super::{MAX_BATCH_BYTES, MAX_DOCUMENT_BYTES, Prepared, cannot_store};
use crate::common::{Failure, runtime_error, usage};
use crate::csv_values::{self, ColumnType};
use bson::{Bson, Document, doc};
use csfle::qe::encrypted_fields::{EncryptedFields, ParseMode};
use std::collections::VecDeque;

/// The most documents an `insert` command carries: one. mongod accepts a
/// single document per insert that carries `encryptionInformation`
/// (error 6371202, "Only single insert batches are supported in Queryable
/// Encryption"). A command is still measured once encrypted (QE payloads
/// are many times their plaintext, a range field's edge tokens above all)
/// and refused alone when it is over the server's limit.
const MAX_DOCUMENTS_PER_COMMAND: usize = 1;

/// The documents of one Queryable Encryption collection, encrypted by
/// automatic encryption configured with that collection's
/// `encryptedFields` alone (read once, when the import starts, as an FLE1
/// import reads its schema once).
pub(super) struct Queryable {
    auto: csfle::AutoEncrypter,
    fields: EncryptedFields,
    db: String,
    coll: String,
    ordered: bool,
}

/// An `insert` command as automatic encryption finalized it.
pub(super) struct Finalized {
    /// The input positions of its documents, in order.
    pub(super) at: Vec<u64>,
    /// The command, sent as it is.
    pub(super) command: Document,
    /// The first of its input positions whose document had no `_id` (it
    /// was given one before encryption, as the driver gives one).
    pub(super) first_without_id: Option<u64>,
}

/// A document waiting to be encrypted.
struct Pending {
    at: u64,
    doc: Document,
    generated_id: bool,
}

impl Queryable {
    /// The encrypter of `ns`, whose `encryptedFields` is `fields` (an
    /// `--encrypted-fields-map` entry, or the server's, each already read
    /// strictly as its source requires). `ordered`: --stop-on-error.
    pub(super) fn new(
        encryption: csfle::ClientEncryption,
        ns: &csfle::analysis::Namespace,
        fields: Document,
        ordered: bool,
    ) -> Result<Self, Failure> {
        let parsed = EncryptedFields::from_document(&fields, ParseMode::Map)
            .map_err(|e| usage(format!("the encryptedFields of {ns}: {e}")))?;
        let mut map = Document::new();
        map.insert(ns.to_string(), fields);
        // The map is the only source: the server is not asked again, and
        // no other namespace can be written.
        let options = csfle::AutoEncryptionOptions::default()
            .with_encrypted_fields_map(map)
            .with_schema_map_only(true)
            .with_require_schema(true);
        let auto =
            csfle::AutoEncrypter::new(encryption, &Document::new(), options).map_err(usage)?;
        Ok(Queryable {
            auto,
            fields: parsed,
            db: ns.db.clone(),
            coll: ns.coll.clone(),
            ordered,
        })
    }

    /// The CSV column type of `field` when the collection encrypts it:
    /// its `bsonType`, never a guess.
    pub(super) fn column_type(&self, field: &str) -> Option<ColumnType> {
        self.fields
            .field(field)
            .map(|f| csv_values::schema_type(f.bson_type()))
    }

    /// A batch ready to write: `ready` (the records that parsed, in input
    /// order) as finalized `insert` commands, the records refused before
    /// (`bad`) and by encryption, in input order. With `stop_on_error`,
    /// nothing after the first refused record is encrypted or written.
    /// Runs outside the runtime, as the FLE1 preparation does.
    pub(super) fn prepare(
        &self,
        runtime: &tokio::runtime::Handle,
        records: u64,
        mut ready: Vec<(u64, Document)>,
        mut bad: Vec<(u64, String)>,
        read_failure: Option<(u64, String)>,
        stop_on_error: bool,
    ) -> Result<Prepared, Failure> {
        if stop_on_error && let Some(first_bad) = bad.iter().map(|(line, _)| *line).min() {
            ready.retain(|(line, _)| *line < first_bad);
        }
        let (commands, refused) = runtime.block_on(self.finalize(ready, stop_on_error))?;
        bad.extend(refused);
        bad.sort_by_key(|(line, _)| *line);
        Ok(Prepared {
            records,
            good: Vec::new(),
            commands,
            bad,
            read_failure,
        })
    }

    /// `docs` as finalized `insert` commands, each within the server's
    /// limit, and the documents refused (position, reason). A command that
    /// automatic encryption refuses, or that is too large once encrypted,
    /// is halved and each half tried in turn, so that every document that
    /// can be written is, and each one that cannot is found and refused on
    /// its own. A failure that is not the documents' (the key vault, the
    /// KMS) fails the batch.
    async fn finalize(
        &self,
        docs: Vec<(u64, Document)>,
        stop_on_error: bool,
    ) -> Result<(Vec<Finalized>, Vec<(u64, String)>), Failure> {
        let mut finalized = Vec::new();
        let mut refused = Vec::new();
        let mut pending = VecDeque::new();
        let mut part: Vec<Pending> = Vec::new();
        let mut part_bytes = 0;
        for (at, doc) in docs {
            let (doc, generated_id) = with_id(doc);
            let bytes = match bson::to_vec(&doc) {
                Ok(bytes) => bytes.len(),
                Err(e) => {
                    refused.push((at, cannot_store(e)));
                    if stop_on_error {
                        break;
                    }
                    continue;
                }
            };
            if !part.is_empty()
                && (part.len() == MAX_DOCUMENTS_PER_COMMAND || part_bytes + bytes > MAX_BATCH_BYTES)
            {
                pending.push_back(std::mem::take(&mut part));
                part_bytes = 0;
            }
            part_bytes += bytes;
            part.push(Pending {
                at,
                doc,
                generated_id,
            });
        }
        if !part.is_empty() {
            pending.push_back(part);
        }
        while let Some(part) = pending.pop_front() {
            let reason = match self.encrypt(&part).await {
                // A write error's index names a document of the command,
                // and so an input position: one document out per document
                // in, or nothing is sent.
                Ok(command)
                    if command.get_array("documents").map(Vec::len).ok() != Some(part.len()) =>
                {
                    return Err(Failure::Runtime(
                        "error: automatic encryption did not return an insert's documents one for one"
                            .into(),
                    ));
                }
                Ok(command) => match bson::to_vec(&command) {
                    Ok(bytes) if bytes.len() <= MAX_DOCUMENT_BYTES => {
                        finalized.push(Finalized {
                            at: part.iter().map(|p| p.at).collect(),
                            command,
                            first_without_id: part.iter().find(|p| p.generated_id).map(|p| p.at),
                        });
                        continue;
                    }
                    Ok(bytes) => format!(
                        "too large: {} bytes once encrypted, the server takes at most {MAX_DOCUMENT_BYTES} in one command",
                        bytes.len()
                    ),
                    Err(e) => cannot_store(e),
                },
                Err(e) if refuses_document(&e) => e.to_string(),
                Err(e) => return Err(runtime_error(e)),
            };
            if part.len() > 1 {
                // The first half first: the input order is kept.
                let mut first = part;
                let second = first.split_off(first.len() / 2);
                pending.push_front(second);
                pending.push_front(first);
                continue;
            }
            if let Some(p) = part.first() {
                refused.push((p.at, reason));
            }
            if stop_on_error {
                break;
            }
        }
        // The refusals of the size pass come before the others in the
        // list, not in the input: sorted by the caller.
        Ok((finalized, refused))
    }

    /// The `insert` of `part` as automatic encryption sends it.
    async fn encrypt(&self, part: &[Pending]) -> Result<Document, csfle::Error> {
        let documents: Vec<Bson> = part.iter().map(|p| Bson::Document(p.doc.clone())).collect();
        let command = doc! {
            "insert": self.coll.as_str(),
            "documents": documents,
            "ordered": self.ordered,
        };
        self.auto.encrypt_command(&self.db, &command).await
    }
}

/// `doc` with an `_id` (a new ObjectId, first) when it has none, as the
/// driver gives one to a document it inserts, before encryption; and
/// whether it was given one.
fn with_id(doc: Document) -> (Document, bool) {
    if doc.contains_key("_id") {
        return (doc, false);
    }
    let mut with = doc! {"_id": bson::oid::ObjectId::new()};
    with.extend(doc);
    (with, true)
}

/// Whether automatic encryption refused something in the documents (a
/// value of another type than the field's, outside a range index's
/// bounds, already encrypted, `__safeContent__`, nesting too deep): the
/// failure of the document that holds it. Any other failure (the key
/// vault, the KMS, a data key that cannot be read or found, the
/// collection's configuration) is the import's.
fn refuses_document(e: &csfle::Error) -> bool {
    use csfle::qe::finalize::FinalizeError;
    match e {
        csfle::Error::Analysis(_)
        | csfle::Error::Explicit(_)
        | csfle::Error::Ciphertext(_)
        | csfle::Error::InvalidBson(_)
        | csfle::Error::BsonSerialization(_)
        | csfle::Error::TooDeep(_) => true,
        // The collection's encryptedFields is every document's: not one
        // line's failure.
        csfle::Error::Client(csfle::ClientError::Finalize(f)) => {
            !matches!(**f, FinalizeError::EncryptedFields(_))
        }
        _ => false,
    }
}
