//! The data keys of a batch of documents: one key-vault query for all of
//! them, and a failure told apart as one document's (a key missing) or the
//! batch's (the vault or the KMS).

use super::Error;
use crate::client::{ClientEncryption, ResolvedKeys};
use crate::key::KeyRef;
use bson::Document;
use std::sync::Arc;

/// The keys for each document: one key-vault query for the batch;
/// when a key is missing, one per document, so only the documents that
/// need it fail. Any other failure (the vault or the KMS unreachable or
/// refusing) is the batch's, not each document's: an error.
pub(super) async fn batch_keys(
    encryption: &ClientEncryption,
    docs: &[Document],
    refs_of: impl Fn(&Document) -> Vec<KeyRef>,
) -> Result<Vec<Result<Arc<ResolvedKeys>, String>>, Error> {
    let per_doc: Vec<Vec<KeyRef>> = docs.iter().map(&refs_of).collect();
    let mut all: Vec<KeyRef> = Vec::new();
    for r in per_doc.iter().flatten() {
        if !all.contains(r) {
            all.push(r.clone());
        }
    }
    if all.is_empty() {
        return Ok(docs
            .iter()
            .map(|_| Ok(Arc::new(ResolvedKeys::default())))
            .collect());
    }
    match encryption.resolved(&all).await {
        Ok(keys) => {
            let keys = Arc::new(keys);
            return Ok(docs.iter().map(|_| Ok(Arc::clone(&keys))).collect());
        }
        Err(e) if !is_missing_key(&e) => return Err(keys_error(e, &all)),
        Err(_) => {}
    }
    let mut out = Vec::with_capacity(docs.len());
    for refs in per_doc {
        out.push(match encryption.resolved(&refs).await {
            Ok(keys) => Ok(Arc::new(keys)),
            Err(e) if is_missing_key(&e) => {
                let message = e.to_string();
                Err(crate::analysis::redact_document_alt_names(&message, &refs).unwrap_or(message))
            }
            Err(e) => return Err(keys_error(e, &refs)),
        });
    }
    Ok(out)
}

/// A key failure for the batch. The plan's alternate names all come from
/// documents (`keyId` pointers: a schema names keys by id otherwise), so a
/// message that would show one is replaced by its redacted text.
fn keys_error(e: crate::Error, refs: &[KeyRef]) -> Error {
    match crate::analysis::redact_document_alt_names(&e.to_string(), refs) {
        Some(redacted) => Error::KeysOfDocuments(redacted),
        None => Error::Keys(Box::new(e)),
    }
}

/// Whether a key failure is about one key that is not there (so only the
/// documents needing it fail), not the vault or KMS as a whole.
fn is_missing_key(e: &crate::Error) -> bool {
    use crate::keyvault::Error as V;
    matches!(
        e,
        crate::Error::KeyVault(V::KeyNotFound(_) | V::AltNameNotFound(_) | V::AmbiguousAltName(_))
    ) || matches!(
        e,
        crate::Error::Lookup(
            crate::key::LookupError::KeyNotFound(_)
                | crate::key::LookupError::AltNameNotFound(_)
                | crate::key::LookupError::AmbiguousAltName(_)
        )
    )
}
