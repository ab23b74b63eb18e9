//! The workers: each reads its `_id` range in batches, resolves the batch's
//! keys with one key-vault query, applies the plan on the blocking pool,
//! sends the statements [`write`](super::write) builds, reads back what
//! did not match, and checkpoints. While one batch is written and
//! checkpointed, the next is read and prepared ([`pipeline`]).

use super::Error;
use super::lease::{Coordinator, Next, RangeRecord, later, owner_is_gone};
use super::ranges::range_filter;
use super::retry::Backoff;
use super::run::{Batches, Prepared, RunState};
use super::summary::FailedDocument;
use super::write::{self, BatchStats, Chunk, id_of};
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
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
            // Registered before looking, so that a range ending while this
            // worker looks is not missed.
            let range_ended = self.range_ended.notified();
            tokio::pin!(range_ended);
            range_ended.as_mut().enable();
            match self.retrying(|| coordinator.next()).await? {
                Next::Finished => return Ok(()),
                Next::Wait => {
                    // Another worker of this process ending its range may
                    // end the run, or leave one to split; other processes'
                    // ranges are seen at the next poll.
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {}
                        () = &mut range_ended => {}
                    }
                }
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
                    self.range_ended.notify_waiters();
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
    /// checkpoint, the next batch read while one is written
    /// ([`pipeline`]); a checkpoint that shows the range's upper bound
    /// lowered by a split reopens the cursor on what is left of it.
    async fn work_once(&self, range: &mut RangeRecord, backoff: &mut Backoff) -> Result<(), Error> {
        loop {
            let filter = range_filter(&range.min, &range.max, range.after.as_ref());
            let mut batches = self.batches(filter).await?;
            match pipeline(self, &mut batches, range, backoff).await? {
                Ended::Split => continue,
                Ended::LeaseLost => {
                    tracing::warn!(range = %range.id, "lease lost to another process; leaving the range to it");
                    return Ok(());
                }
                Ended::Drained => {
                    if !self.store.finish(&range.id, &self.me).await? {
                        tracing::warn!(range = %range.id, "lease lost to another process before the range was marked done");
                    }
                    return Ok(());
                }
            }
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

    /// Writes one prepared batch; documents changed concurrently are read
    /// again, prepared again and retried.
    async fn write_prepared(&self, batch: Prepared) -> Result<BatchStats, Error> {
        let mut stats = BatchStats::of(batch.len() as u64);
        let mut prepared = batch;
        let mut attempt = 0;
        loop {
            let writes = write::statements(prepared, attempt, self.mode, &mut stats);
            if writes.is_empty() {
                break;
            }
            let mut unmatched = Vec::new();
            for chunk in write::chunks(writes, MAX_WRITE_BYTES)? {
                unmatched.extend(self.send(chunk, &mut stats).await?);
            }
            if unmatched.is_empty() {
                break;
            }
            attempt += 1;
            // Read the unmatched documents again: gone, done, or changed
            // by someone else (then the plan is applied to the new version).
            let sent = unmatched.len();
            let current: Vec<Document> = self
                .target
                .find(doc! {"_id": {"$in": unmatched}})
                .await?
                .try_collect()
                .await?;
            stats.add_vanished(sent.saturating_sub(current.len()) as u64);
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
            if current.is_empty() {
                break;
            }
            prepared = self.prepare(current).await?;
        }
        Ok(stats)
    }

    /// Sends one chunk as an unordered bulk `update` with majority,
    /// journaled write concern ([`write::update_command`]), its statements
    /// as they were encoded once; returns the `_id`s that may not have
    /// matched.
    async fn send(&self, chunk: Chunk, stats: &mut BatchStats) -> Result<Vec<Bson>, Error> {
        let command = write::update_command(self.target.name(), chunk.updates);
        let reply = self.target_db.run_raw_command(command).await?;
        write::outcome(chunk.ids, &reply, self.mode, stats)
    }
}

/// The two stages of a worker's pipeline over one cursor: reading and
/// preparing a batch, and writing and checkpointing one. [`RunState`] is
/// the real pair; the tests drive [`pipeline`] with a fake that logs what
/// happens in which order.
trait Stages: Sync {
    /// A batch read and prepared, not yet written.
    type Batch: Send + 'static;
    /// Where the batches come from: a cursor over the range.
    type Reader: Send;

    /// Reads the next batch and prepares it; `None` after the last.
    fn read<'a>(
        &'a self,
        reader: &'a mut Self::Reader,
    ) -> BoxFuture<'a, Result<Option<Self::Batch>, Error>>;

    /// The `_id` of the batch's last document: where the range resumes
    /// once the batch is checkpointed.
    fn last_id(batch: &Self::Batch) -> Bson;

    /// Writes the batch, durably, and only then checkpoints the range
    /// `range` at `last`: the range as it now is, or `None` when this
    /// process no longer holds it.
    fn write_and_record<'a>(
        &'a self,
        range: &'a str,
        last: &'a Bson,
        batch: Self::Batch,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>>;
}

/// How a pipeline over one cursor ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The cursor is exhausted: every batch of the range is written and
    /// checkpointed.
    Drained,
    /// A split lowered the range's upper bound (now in `range.max`): the
    /// cursor is to be reopened on what is left of the range.
    Split,
    /// Another process holds the range now.
    LeaseLost,
}

/// Migrates the batches `reader` yields, reading and preparing batch N+1
/// while batch N is written and checkpointed; `range` follows the
/// checkpoints (its position, and its upper bound when a split lowered it).
///
/// Why reading ahead cannot lose a document or write one twice:
///
/// * **Checkpoint order.** Batch N is checkpointed only after its write
///   returned (majority, journaled), and batch N+1 is written only after
///   the checkpoint of N succeeded: writes and checkpoints still alternate
///   one batch at a time, only the read of N+1 overlaps. A checkpoint never
///   covers a batch not yet written, so a process killed at any point
///   (SIGKILL included) resumes after a batch that is durably written; the
///   batch read ahead, never checkpointed, is read again by the resumed
///   cursor (a batch written but not checkpointed is found done again: the
///   transform is idempotent).
/// * **Lease.** The checkpoint of N is conditional on this process still
///   holding the range. When it did not (`None`), the batch read ahead is
///   dropped unwritten; the new holder resumes from the last checkpoint.
/// * **Splits.** A split that lowered the range's upper bound before the
///   checkpoint of N shows in that checkpoint: the batch read ahead (read
///   under the old bound, so it may reach into the new range) is dropped
///   unwritten, and the caller reopens the cursor after N under the new
///   bound. A split after the checkpoint of N is cut at least one batch
///   past what that checkpoint records (`Coordinator::next` shrinks only
///   on that condition), so N+1, the batch after it, ends below the cut:
///   the same guarantee as when N+1 was read after the checkpoint.
/// * **Disjoint batches.** N and N+1 come from one cursor in `_id` order:
///   no document is in both. A document changed between its read and its
///   write is not overwritten: in place, the conditional update does not
///   match, and the document is read again.
/// * **Errors.** An error writing or checkpointing N wins (the batch read
///   ahead is dropped); an error reading or preparing N+1 is returned
///   after N is checkpointed. Either way the caller restarts from the last
///   checkpoint.
async fn pipeline<S: Stages>(
    stages: &S,
    reader: &mut S::Reader,
    range: &mut RangeRecord,
    backoff: &mut Backoff,
) -> Result<Ended, Error> {
    let mut next = stages.read(reader).await?;
    while let Some(batch) = next {
        let last = S::last_id(&batch);
        let (recorded, ahead) = tokio::join!(
            stages.write_and_record(&range.id, &last, batch),
            stages.read(reader),
        );
        let Some(now) = recorded? else {
            return Ok(Ended::LeaseLost);
        };
        backoff.reset();
        range.after = Some(last);
        if now.max != range.max {
            range.max = now.max;
            return Ok(Ended::Split);
        }
        next = ahead?;
    }
    Ok(Ended::Drained)
}

impl Stages for RunState {
    type Batch = Prepared;
    type Reader = Batches;

    fn read<'a>(
        &'a self,
        reader: &'a mut Batches,
    ) -> BoxFuture<'a, Result<Option<Prepared>, Error>> {
        Box::pin(async move {
            match reader.next().await? {
                Some(docs) => self.prepare(docs).await.map(Some),
                None => Ok(None),
            }
        })
    }

    fn last_id(batch: &Prepared) -> Bson {
        batch.last().map_or(Bson::Null, |(d, _)| id_of(d))
    }

    fn write_and_record<'a>(
        &'a self,
        range: &'a str,
        last: &'a Bson,
        batch: Prepared,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>> {
        Box::pin(async move {
            let stats = self.write_prepared(batch).await?;
            self.record(range, last, stats).await
        })
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
