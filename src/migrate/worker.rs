//! The workers: each reads its `_id` range in batches, resolves the batch's
//! keys with one key-vault query, applies the plan on the blocking pool,
//! sends the statements [`write`](super::write) builds, reads back what
//! did not match, and checkpoints.

use super::Error;
use super::lease::{Coordinator, Next, RangeRecord, later, owner_is_gone};
use super::ranges::range_filter;
use super::retry::Backoff;
use super::run::RunState;
use super::summary::FailedDocument;
use super::write::{self, BatchStats, id_of};
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The most bytes of write statements sent in one `update` command (the
/// server takes up to 16 MiB of command plus 48 MiB messages; staying well
/// below keeps one large document from failing a whole batch).
const MAX_WRITE_BYTES: usize = 8 * 1024 * 1024;

impl RunState {
    /// The lease protocol's decisions, for this process's workers.
    fn coordinator(&self) -> Coordinator<'_> {
        Coordinator {
            store: &*self.store,
            clock: &*self.clock,
            me: &self.me,
            lease: self.options.lease,
            // Two batches each side: an owner that has not yet seen its new bound
            // finishes the batch it is on well below the cut.
            min_split: i64::try_from(self.options.batch_size.saturating_mul(2)).unwrap_or(i64::MAX),
            gone: owner_is_gone,
        }
    }

    /// One worker: claims ranges (or splits others' when none is left)
    /// and migrates them until every range of the run is done.
    pub(super) async fn worker(&self) -> Result<(), Error> {
        let coordinator = self.coordinator();
        // Idle workers look again this often (a lease may run out, a
        // range may become worth splitting).
        let poll =
            (self.options.lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            match self.retrying(|| coordinator.next()).await? {
                Next::Finished => return Ok(()),
                Next::Wait => tokio::time::sleep(poll).await,
                Next::Work { range, taken_over } => {
                    self.totals.ranges_worked.fetch_add(1, Ordering::Relaxed);
                    if taken_over {
                        tracing::info!(range = %range.id, "took over a range whose lease ran out");
                        self.totals
                            .ranges_taken_over
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let id = range.id.clone();
                    self.working_on(&id, true);
                    let outcome = self.work(*range).await;
                    self.working_on(&id, false);
                    outcome?;
                }
            }
        }
    }

    /// Migrates a claimed range to its end (or until its lease is lost),
    /// restarting from the last checkpoint after transient failures.
    async fn work(&self, mut range: RangeRecord) -> Result<(), Error> {
        let mut backoff = Backoff::default();
        loop {
            match self.work_once(&mut range, &mut backoff).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => {
                    backoff.wait(self.options.max_retry_time, e).await?;
                    self.totals
                        .transient_retries
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt at the rest of a range: batch by batch after its last
    /// checkpoint; a checkpoint that shows the range's upper bound lowered
    /// by a split reopens the cursor on what is left of it.
    async fn work_once(&self, range: &mut RangeRecord, backoff: &mut Backoff) -> Result<(), Error> {
        'cursor: loop {
            let filter = range_filter(&range.min, &range.max, range.after.as_ref());
            let mut batches = self.batches(filter).await?;
            while let Some(batch) = batches.next().await? {
                let last = batch.last().map(id_of).unwrap_or(Bson::Null);
                let stats = self.process(batch).await?;
                let Some(now) = self.record(&range.id, &last, stats).await? else {
                    tracing::warn!(range = %range.id, "lease lost to another process; leaving the range to it");
                    return Ok(());
                };
                backoff.reset();
                range.after = Some(last);
                if now.max != range.max {
                    range.max = now.max;
                    continue 'cursor;
                }
            }
            if !self.store.finish(&range.id, &self.me).await? {
                tracing::warn!(range = %range.id, "lease lost to another process before the range was marked done");
            }
            return Ok(());
        }
    }

    /// Adds a finished batch to the totals and checkpoints it; the range
    /// as it now is, or `None` when this process no longer holds it.
    async fn record(
        &self,
        range: &str,
        last: &Bson,
        stats: BatchStats,
    ) -> Result<Option<RangeRecord>, Error> {
        let counts = stats.counts();
        self.totals.add(counts);
        if let Some(p) = &self.options.progress {
            p.advance(counts.read);
        }
        match &self.checkpoints {
            Some(c) => c.record_failures(stats.failed()).await?,
            None => self
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(stats.failed().iter().cloned()),
        }
        let until = later(self.clock.now(), self.options.lease);
        self.store
            .checkpoint(range, &self.me, last, &counts, until)
            .await
    }

    /// Migrates one batch; documents changed concurrently are read again
    /// and retried.
    async fn process(&self, docs: Vec<Document>) -> Result<BatchStats, Error> {
        let mut stats = BatchStats::of(docs.len() as u64);
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
            stats.add_vanished((unmatched.len() - current.len()) as u64);
            if attempt > self.options.max_retries {
                for d in current {
                    stats.fail(FailedDocument {
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

    /// Sends one chunk as an unordered bulk `update` with majority,
    /// journaled write concern; returns the `_id`s that may not have matched.
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
                // Journaled before the checkpoint that follows says so.
                "writeConcern": {"w": "majority", "j": true},
            })
            .await?;
        write::outcome(ids, &reply, self.mode, stats)
    }
}
