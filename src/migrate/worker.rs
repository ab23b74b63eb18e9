//! The workers: each reads its `_id` range in batches, resolves the batch's
//! keys with one key-vault query, applies the plan on the blocking pool,
//! sends the statements [`write`](super::write) builds, reads back what
//! did not match, and checkpoints.

use super::checkpoint::Checkpoints;
use super::ranges::range_filter;
use super::write::{self, BatchStats, WriteMode, id_of};
use super::{Change, Error, FailedDocument, MigrationOptions, Plan};
use crate::client::{ClientEncryption, ResolvedKeys};
use crate::key::KeyRef;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The most bytes of write statements sent in one `update` command (the
/// server takes up to 16 MiB of command plus 48 MiB messages; staying well
/// below keeps one large document from failing a whole batch).
const MAX_WRITE_BYTES: usize = 8 * 1024 * 1024;

/// The run's totals, added to by every worker.
#[derive(Default)]
pub(super) struct Totals {
    pub(super) read: AtomicU64,
    pub(super) changed: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) vanished: AtomicU64,
    pub(super) failed: AtomicU64,
}

/// A worker's share of the `_id` space and where it stands.
#[derive(Clone, Debug)]
pub(super) struct WorkerRange {
    pub(super) index: i64,
    pub(super) min: Bson,
    pub(super) max: Bson,
    pub(super) after: Option<Bson>,
    pub(super) done: bool,
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

/// What every worker of a run shares.
pub(super) struct Ctx {
    pub(super) source: mongodb::Collection<Document>,
    pub(super) target: mongodb::Collection<Document>,
    pub(super) target_db: mongodb::Database,
    pub(super) mode: WriteMode,
    pub(super) plan: Arc<Plan>,
    pub(super) encryption: Arc<ClientEncryption>,
    pub(super) options: MigrationOptions,
    pub(super) checkpoints: Checkpoints,
    pub(super) totals: Totals,
    /// Dry runs keep their failures here instead of in checkpoints.
    pub(super) failures: Mutex<Vec<FailedDocument>>,
}

impl Ctx {
    pub(super) fn in_place(&self) -> bool {
        self.mode == WriteMode::InPlace
    }

    /// The bounds that split the source's `_id` space into one range per
    /// worker, at evenly spaced `_id`s in sort order (`MinKey` first,
    /// `MaxKey` last).
    pub(super) async fn split(&self) -> Result<Vec<Bson>, Error> {
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
        Ok(bounds)
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

    /// Migrates one range, batch by batch, checkpointing after each.
    pub(super) async fn worker(&self, range: WorkerRange) -> Result<(), Error> {
        let filter = range_filter(&range.min, &range.max, range.after.as_ref());
        let mut batches = self.batches(filter).await?;
        while let Some(batch) = batches.next().await? {
            let last = batch.last().map(id_of).unwrap_or(Bson::Null);
            let stats = self.process(batch).await?;
            self.record(range.index, &last, stats).await?;
        }
        if self.mode != WriteMode::DryRun {
            self.checkpoints.worker_done(range.index).await?;
        }
        Ok(())
    }

    /// Adds a finished batch to the totals and checkpoints it.
    async fn record(&self, worker: i64, last: &Bson, stats: BatchStats) -> Result<(), Error> {
        let t = &self.totals;
        t.read.fetch_add(stats.read, Ordering::Relaxed);
        t.changed.fetch_add(stats.changed, Ordering::Relaxed);
        t.skipped.fetch_add(stats.skipped, Ordering::Relaxed);
        t.retried.fetch_add(stats.retried, Ordering::Relaxed);
        t.vanished.fetch_add(stats.vanished, Ordering::Relaxed);
        t.failed
            .fetch_add(stats.failed.len() as u64, Ordering::Relaxed);
        if let Some(p) = &self.options.progress {
            p.advance(stats.read);
        }
        if self.mode == WriteMode::DryRun {
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(stats.failed);
            return Ok(());
        }
        self.checkpoints.batch_done(worker, last, &stats).await
    }

    /// The keys for each document: one key-vault query for the batch;
    /// when that fails (a key is missing), one per document, so only the
    /// documents that need the missing key fail.
    pub(super) async fn keys_for(
        &self,
        docs: &[Document],
        refs_of: impl Fn(&Document) -> Vec<KeyRef>,
    ) -> Vec<Result<Arc<ResolvedKeys>, String>> {
        let per_doc: Vec<Vec<KeyRef>> = docs.iter().map(&refs_of).collect();
        let mut all: Vec<KeyRef> = Vec::new();
        for r in per_doc.iter().flatten() {
            if !all.contains(r) {
                all.push(r.clone());
            }
        }
        if all.is_empty() {
            return docs
                .iter()
                .map(|_| Ok(Arc::new(ResolvedKeys::default())))
                .collect();
        }
        if let Ok(keys) = self.encryption.resolved(&all).await {
            let keys = Arc::new(keys);
            return docs.iter().map(|_| Ok(Arc::clone(&keys))).collect();
        }
        let mut out = Vec::with_capacity(docs.len());
        for refs in per_doc {
            out.push(
                self.encryption
                    .resolved(&refs)
                    .await
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
            );
        }
        out
    }

    /// Applies the plan to each document on the blocking pool.
    async fn prepare(
        &self,
        docs: Vec<Document>,
    ) -> Result<Vec<(Document, Result<Change, String>)>, Error> {
        let plan = Arc::clone(&self.plan);
        let keys = self.keys_for(&docs, |d| plan.keys_for(d)).await;
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

    /// Migrates one batch; documents changed concurrently are read again
    /// and retried.
    async fn process(&self, docs: Vec<Document>) -> Result<BatchStats, Error> {
        let mut stats = BatchStats {
            read: docs.len() as u64,
            ..Default::default()
        };
        let mut pending = docs;
        let mut attempt = 0;
        while !pending.is_empty() {
            let prepared = self.prepare(pending).await?;
            let writes = write::statements(prepared, attempt, self.mode, &mut stats);
            if writes.is_empty() {
                break;
            }
            let mut unmatched = Vec::new();
            for chunk in write::chunks(writes, MAX_WRITE_BYTES) {
                unmatched.extend(self.send(chunk, &mut stats).await?);
            }
            if unmatched.is_empty() {
                break;
            }
            attempt += 1;
            // Read the unmatched documents again: gone, done, or changed
            // by someone else (then the plan is applied to the new version).
            let current: Vec<Document> = self
                .target
                .find(doc! {"_id": {"$in": unmatched.clone()}})
                .await?
                .try_collect()
                .await?;
            stats.vanished += (unmatched.len() - current.len()) as u64;
            if attempt > self.options.max_retries {
                for d in current {
                    stats.failed.push(FailedDocument {
                        id: id_of(&d),
                        reason: format!(
                            "changed concurrently on each of {} attempts",
                            self.options.max_retries + 1
                        ),
                    });
                }
                break;
            }
            pending = current;
        }
        Ok(stats)
    }

    /// Sends one chunk as an unordered bulk `update` with majority write
    /// concern; returns the `_id`s that may not have matched.
    async fn send(
        &self,
        chunk: Vec<(Bson, Document)>,
        stats: &mut BatchStats,
    ) -> Result<Vec<Bson>, Error> {
        let (ids, stmts): (Vec<Bson>, Vec<Document>) = chunk.into_iter().unzip();
        let reply = self
            .target_db
            .run_command(doc! {
                "update": self.target.name(),
                "updates": stmts,
                "ordered": false,
                "writeConcern": {"w": "majority"},
            })
            .await?;
        write::outcome(ids, &reply, self.mode, stats)
    }
}
