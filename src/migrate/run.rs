//! One process's run of a job: the state its workers share
//! ([`RunState`]), the run's totals, and what every phase (preflight,
//! workers, verification) does with them: read the source in batches,
//! resolve a batch's keys, apply the plan, retry transient failures.

use super::Error;
use super::checkpoint::Checkpoints;
use super::counts::Counts;
use super::keys::batch_keys;
use super::lease::{Clock, JobStore};
use super::options::MigrationOptions;
use super::plan::{Change, Plan};
use super::retry::retrying;
use super::summary::FailedDocument;
use super::write::{WriteMode, id_of};
use crate::client::{ClientEncryption, ResolvedKeys};
use crate::key::KeyRef;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// The run's totals, added to by every worker of this process.
#[derive(Default)]
pub(super) struct Totals {
    /// What this process's workers did to documents ([`Totals::add`]).
    counts: Mutex<Counts>,
    pub(super) transient_retries: AtomicU64,
    pub(super) ranges_worked: AtomicU64,
    pub(super) ranges_taken_over: AtomicU64,
}

impl Totals {
    /// Adds a batch's counts.
    pub(super) fn add(&self, counts: Counts) {
        *self.lock_counts() += counts;
    }

    /// The counts so far.
    pub(super) fn counts(&self) -> Counts {
        *self.lock_counts()
    }

    fn lock_counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Held only to add or copy six numbers, which cannot panic halfway:
        // a poisoned lock still holds consistent counts.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A cursor read in batches of `size` documents.
pub(super) struct Batches {
    cursor: mongodb::Cursor<Document>,
    size: usize,
}

impl Batches {
    pub(super) async fn next(&mut self) -> Result<Option<Vec<Document>>, Error> {
        let mut batch = Vec::with_capacity(self.size);
        while batch.len() < self.size {
            match self.cursor.try_next().await? {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}

/// A batch with the plan applied: each document as it was read, and what
/// the plan makes of it (or why it cannot be migrated).
pub(super) type Prepared = Vec<(Document, Result<Change, String>)>;

/// This process's part in a run of the job: what its workers, the
/// heartbeat, the preflight checks and the verification pass share.
pub(super) struct RunState {
    pub(super) client: mongodb::Client,
    pub(super) source: mongodb::Collection<Document>,
    pub(super) target: mongodb::Collection<Document>,
    pub(super) target_db: mongodb::Database,
    pub(super) mode: WriteMode,
    pub(super) plan: Arc<Plan>,
    pub(super) encryption: Arc<ClientEncryption>,
    pub(super) options: MigrationOptions,
    /// The checkpoint collection (`None` in a dry run, which records
    /// nothing).
    pub(super) checkpoints: Option<Arc<Checkpoints>>,
    /// Where the ranges are claimed: the checkpoints, or memory.
    pub(super) store: Arc<dyn JobStore>,
    pub(super) clock: Arc<dyn Clock>,
    /// This process, as lease owner: host, pid and a random suffix.
    pub(super) me: String,
    pub(super) totals: Totals,
    /// Dry runs keep their failures here instead of in checkpoints.
    pub(super) failures: Mutex<Vec<FailedDocument>>,
    /// The ranges this process's workers are on: the heartbeat renews
    /// these leases only.
    pub(super) working: Mutex<Vec<String>>,
    /// Signalled whenever one of this process's workers leaves a range
    /// (done, lease lost or failed): a worker waiting for work looks again
    /// at once instead of at its next poll, so the run ends when its last
    /// range does, not up to a poll interval later.
    pub(super) range_ended: tokio::sync::Notify,
}

impl RunState {
    pub(super) fn in_place(&self) -> bool {
        self.mode == WriteMode::InPlace
    }

    /// The ranges `(min, max, documents)` that split the source's `_id`
    /// space into one per worker, at evenly spaced `_id`s in sort order
    /// (`MinKey` first, `MaxKey` last).
    pub(super) async fn split(&self) -> Result<Vec<(Bson, Bson, i64)>, Error> {
        let workers = self.options.workers as u64;
        let n = self.source.count_documents(doc! {}).await?;
        let mut bounds = vec![Bson::MinKey];
        if workers > 1 && n >= workers * 2 {
            for i in 1..workers {
                let at = self
                    .source
                    .find(doc! {})
                    .sort(doc! {"_id": 1})
                    .skip(n * i / workers)
                    .limit(1)
                    .projection(doc! {"_id": 1})
                    .await?
                    .try_next()
                    .await?;
                if let Some(d) = at {
                    let id = id_of(&d);
                    if bounds.last() != Some(&id) {
                        bounds.push(id);
                    }
                }
            }
        }
        bounds.push(Bson::MaxKey);
        let parts = (bounds.len() - 1) as i64;
        let size = i64::try_from(n).unwrap_or(i64::MAX) / parts.max(1);
        Ok(bounds
            .windows(2)
            .map(|w| (w[0].clone(), w[1].clone(), size))
            .collect())
    }

    /// Retries `op` through transient failures within the budget.
    pub(super) async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        retrying(
            self.options.max_retry_time,
            &self.totals.transient_retries,
            op,
        )
        .await
    }

    /// The source documents matching `filter`, in `_id` order, in batches.
    pub(super) async fn batches(&self, filter: Document) -> Result<Batches, Error> {
        let size = self.options.batch_size;
        let cursor = self
            .source
            .find(filter)
            .sort(doc! {"_id": 1})
            .batch_size(u32::try_from(size).unwrap_or(u32::MAX))
            .await?;
        Ok(Batches { cursor, size })
    }

    /// Records that a worker is on the range `id` (`on`), or is done with it.
    pub(super) fn working_on(&self, id: &str, on: bool) {
        let mut working = self.working.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            working.push(id.to_owned());
        } else if let Some(i) = working.iter().position(|w| w == id) {
            working.swap_remove(i);
        }
    }

    /// The ranges this process's workers are on.
    pub(super) fn working(&self) -> Vec<String> {
        self.working
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The keys for each document ([`batch_keys`]).
    pub(super) async fn keys_for(
        &self,
        docs: &[Document],
        refs_of: impl Fn(&Document) -> Vec<KeyRef>,
    ) -> Result<Vec<Result<Arc<ResolvedKeys>, String>>, Error> {
        batch_keys(&self.encryption, docs, refs_of).await
    }

    /// Applies the plan to each document on the blocking pool.
    pub(super) async fn prepare(&self, docs: Vec<Document>) -> Result<Prepared, Error> {
        let plan = Arc::clone(&self.plan);
        let keys = self.keys_for(&docs, |d| plan.keys_for(d)).await?;
        let plan = Arc::clone(&self.plan);
        tokio::task::spawn_blocking(move || {
            docs.into_iter()
                .zip(keys)
                .map(|(d, k)| {
                    let change = k.and_then(|k| plan.apply(&d, &*k).map_err(|e| e.to_string()));
                    (d, change)
                })
                .collect()
        })
        .await
        .map_err(Error::Worker)
    }
}
