//! [`conform`]: a batch of documents made to match a plan, what importing
//! into an encrypted collection does.

use super::Error;
use super::keys::batch_keys;
use super::plan::Plan;

/// Each of `docs` as `plan` wants it (a document already matching the plan
/// as it is), or why it cannot be: what importing into an encrypted
/// collection does to every document. The keys are fetched once for the
/// batch (one per document only when one is missing, so only the
/// documents that need it fail); a key vault or KMS failure is the batch's
/// error. The plan's rules apply: plaintext in an encrypted field is
/// encrypted, a ciphertext already under the field's key and algorithm is
/// kept byte for byte (never encrypted twice).
pub async fn conform(
    encryption: &crate::ClientEncryption,
    plan: &Plan,
    docs: Vec<bson::Document>,
) -> Result<Vec<Result<bson::Document, String>>, Error> {
    let keys = batch_keys(encryption, &docs, |d| plan.keys_for(d)).await?;
    Ok(docs
        .into_iter()
        .zip(keys)
        .map(|(d, k)| {
            let k = k?;
            // The document is the caller's to give up: changed in place.
            plan.apply_owned(d, &*k).map_err(|e| e.to_string())
        })
        .collect())
}

/// `doc` encoded to BSON, the bytes `bson`'s serializer writes
/// (`RawDocumentBuf::from_document`), but element by element: that
/// serializer writes every binary (each ciphertext `conform` made) as
/// base64 text and decodes it again. What the element writer cannot
/// encode exactly (a NUL byte in a key or a regular expression, deep
/// nesting, a binary the serializer refuses or writes under another
/// subtype) is handed to the serializer, whose bytes or refusal it is. The same
/// encoding `csfle migrate` writes its statements with.
pub fn encode_document(doc: &bson::Document) -> Result<bson::RawDocumentBuf, bson::raw::Error> {
    super::write::encode(doc)
}
