//! Verification: every source document re-read, its migrated version
//! checked against the plan and decrypted (and, copying, compared in
//! plaintext with the source).

use super::Error;
use super::plan::Change;
use super::ranges::range_filter;
use super::retry::Backoff;
use super::run::RunState;
use super::summary::{FailedDocument, VerifySummary};
use super::write::id_of;
use crate::client::collect_key_ids;
use crate::explicit::ExplicitEncrypter;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;

/// A key for maps by `_id` (BSON values are not `Hash`).
fn id_key(id: &Bson) -> String {
    crate::ejson::to_canonical(id).to_string()
}

impl RunState {
    /// Re-reads every source document and checks its migrated version.
    /// A transient failure resumes after the last batch checked, within
    /// the retry budget.
    pub(super) async fn verify(&self) -> Result<VerifySummary, Error> {
        let source_count = self
            .retrying(|| async { Ok(self.source.count_documents(doc! {}).await?) })
            .await?;
        let target_count = self
            .retrying(|| async { Ok(self.target.count_documents(doc! {}).await?) })
            .await?;
        if let Some(p) = &self.options.progress {
            p.start("verify", source_count);
        }
        let mut summary = VerifySummary {
            source_count,
            target_count,
            ..Default::default()
        };
        let mut after: Option<Bson> = None;
        let mut backoff = Backoff::default();
        loop {
            match self
                .verify_after(&mut after, &mut summary, &mut backoff)
                .await
            {
                Ok(()) => break,
                Err(e) if e.is_transient() => {
                    backoff.wait(self.options.max_retry_time, e).await?;
                    self.totals
                        .transient_retries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(p) = &self.options.progress {
            p.finish();
        }
        Ok(summary)
    }

    /// Checks the documents after `after`, moving it along.
    async fn verify_after(
        &self,
        after: &mut Option<Bson>,
        summary: &mut VerifySummary,
        backoff: &mut Backoff,
    ) -> Result<(), Error> {
        let filter = range_filter(&Bson::MinKey, &Bson::MaxKey, after.as_ref());
        let mut batches = self.batches(filter).await?;
        while let Some(batch) = batches.next().await? {
            let n = batch.len() as u64;
            let last = batch.last().map(id_of);
            let bad = self.verify_batch(batch).await?;
            summary.checked += n;
            summary.mismatched.extend(bad);
            *after = last;
            backoff.reset();
            if let Some(p) = &self.options.progress {
                p.advance(n);
            }
        }
        Ok(())
    }

    async fn verify_batch(&self, sources: Vec<Document>) -> Result<Vec<FailedDocument>, Error> {
        let in_place = self.in_place();
        // The migrated version of each source document.
        let migrated: Vec<Option<Document>> = if in_place {
            sources.iter().cloned().map(Some).collect()
        } else {
            let ids: Vec<Bson> = sources.iter().map(id_of).collect();
            let found: Vec<Document> = self
                .target
                .find(doc! {"_id": {"$in": ids}})
                .await?
                .try_collect()
                .await?;
            let mut by_id: HashMap<String, Document> =
                found.into_iter().map(|d| (id_key(&id_of(&d)), d)).collect();
            sources
                .iter()
                .map(|s| by_id.remove(&id_key(&id_of(s))))
                .collect()
        };
        let plan = Arc::clone(&self.plan);
        let pairs: Vec<(Document, Option<Document>)> = sources.into_iter().zip(migrated).collect();
        let docs: Vec<Document> = pairs
            .iter()
            .map(|(s, m)| {
                // Keys for the plan, for every ciphertext of the migrated
                // version, and (copying) of the source.
                let mut d = doc! {"m": m.clone().unwrap_or_default()};
                if !in_place {
                    d.insert("s", s.clone());
                }
                d
            })
            .collect();
        let keys = self
            .keys_for(&docs, |d| {
                let m = d.get_document("m").cloned().unwrap_or_default();
                let mut refs = plan.keys_for(&m);
                let _ = collect_key_ids(&Bson::Document(d.clone()), &mut refs);
                refs
            })
            .await?;
        let plan = Arc::clone(&self.plan);
        tokio::task::spawn_blocking(move || {
            let mut bad = Vec::new();
            for ((source, migrated), keys) in pairs.into_iter().zip(keys) {
                let id = id_of(&source);
                let Some(migrated) = migrated else {
                    bad.push(FailedDocument {
                        id,
                        reason: "missing from the target".into(),
                    });
                    continue;
                };
                let check = || -> Result<(), String> {
                    let keys = keys?;
                    match plan.apply(&migrated, &*keys).map_err(|e| e.to_string())? {
                        Change::Unchanged => {}
                        Change::Changed { fields, .. } => {
                            return Err(format!("does not match the plan: {}", fields.join(", ")));
                        }
                    }
                    let enc = ExplicitEncrypter::new(&*keys);
                    let plain = enc
                        .decrypt_document(&migrated)
                        .map_err(|e| format!("does not decrypt: {e}"))?;
                    if !in_place {
                        let was = enc
                            .decrypt_document(&source)
                            .map_err(|e| format!("source does not decrypt: {e}"))?;
                        if was != plain {
                            return Err("plaintext differs from the source".into());
                        }
                    }
                    Ok(())
                };
                if let Err(reason) = check() {
                    bad.push(FailedDocument { id, reason });
                }
            }
            bad
        })
        .await
        .map_err(Error::Worker)
    }
}
