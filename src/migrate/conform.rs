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
