//! How processes share one job: its `_id` ranges are claimed with leases.
//!
//! Every range of a run is a record in the checkpoint collection with an
//! owner and a lease expiry. A worker with nothing to do claims a range
//! nobody holds or whose lease has run out, by a compare-and-set on the
//! owner and expiry it read, so two claimants never both win. The owner
//! renews the leases of the ranges its workers are on (a heartbeat, and
//! every checkpoint): one it holds with no worker on it (a claim whose
//! reply was lost) runs out and is claimed again, by it or another. A
//! process stopping on an error lets go of its ranges at once. A
//! checkpoint is conditional on still being the owner, so a process that
//! lost a range (paused past its lease, cut off) stops writing positions
//! for it. When
//! nothing is left to claim, an idle worker splits the largest range still
//! being worked on: it inserts the upper half as a new range it owns, then
//! shrinks the old one by a compare-and-set on its upper bound and on how
//! far its owner has read (the cut stays past the one batch the owner may
//! be migrating, also when it has moved on since the split was chosen). The
//! insert comes first, so every `_id` stays covered by some range at every
//! moment (a crash in between leaves an overlap, which costs a re-read:
//! migrating a document twice changes nothing the second time).
//!
//! The decisions (what is claimable, what to split) are pure functions of
//! the records and a clock; [`JobStore`] is the little that touches the
//! database, so the protocol runs in unit tests on a fake clock and a
//! memory store.

use super::Error;
use super::counts::Counts;
use super::summary::JobTotals;
use bson::{Bson, DateTime};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

/// The time leases are measured in. Processes on different machines
/// compare their clocks with the expiries others wrote, so clocks must
/// agree to well within the lease (NTP does; the default lease is 30 s).
pub(super) trait Clock: Send + Sync {
    fn now(&self) -> DateTime;
}

/// The machine's clock.
pub(super) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime {
        DateTime::now()
    }
}

/// `t + d`.
pub(super) fn later(t: DateTime, d: Duration) -> DateTime {
    DateTime::from_millis(
        t.timestamp_millis()
            .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    )
}

/// One range of a run, as stored. Read back strictly: a record missing a
/// field is an error, not a default (resuming from it could skip
/// documents).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct RangeRecord {
    #[serde(rename = "_id")]
    pub(super) id: String,
    pub(super) job: String,
    /// The run of the job this range belongs to (a finished job run again
    /// is a new run).
    pub(super) run: String,
    pub(super) kind: String,
    /// Lower bound (inclusive; `MinKey` for the first range).
    pub(super) min: Bson,
    /// Upper bound (exclusive; `MaxKey` for the last range).
    pub(super) max: Bson,
    /// The last `_id` done: work resumes after it. Absent before the first
    /// batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) after: Option<Bson>,
    pub(super) done: bool,
    /// The process holding the lease (`null`: nobody).
    pub(super) owner: Option<String>,
    /// When the lease runs out (`null`: never held).
    pub(super) expires: Option<DateTime>,
    /// Documents in the range when it was made: with `read`, the estimate
    /// of what is left that splitting goes by.
    pub(super) size: i64,
    /// What was done to the range's documents, stored flat beside the
    /// fields above (`read`, `changed`, …, as checkpoints always had them).
    #[serde(flatten)]
    pub(super) counts: Counts,
}

impl RangeRecord {
    /// A fresh, unowned range.
    pub(super) fn new(job: &str, run: &str, min: Bson, max: Bson, size: i64) -> Self {
        RangeRecord {
            id: format!("{job}/{run}/{}", bson::oid::ObjectId::new().to_hex()),
            job: job.to_owned(),
            run: run.to_owned(),
            kind: "range".into(),
            min,
            max,
            after: None,
            done: false,
            owner: None,
            expires: None,
            size,
            counts: Counts::default(),
        }
    }

    /// Documents read so far, in the size estimate's terms.
    pub(super) fn read(&self) -> i64 {
        i64::try_from(self.counts.read).unwrap_or(i64::MAX)
    }

    /// Documents left, by the estimate.
    fn remaining(&self) -> i64 {
        self.size.saturating_sub(self.read())
    }
}

// Here, beside the records, so that `summary` (which `Error` names) needs
// nothing of the leases: `lease` uses `Error`.
impl JobTotals {
    /// The totals of a run's range records.
    pub(super) fn of(ranges: &[RangeRecord], processes: usize) -> Self {
        let c: Counts = ranges.iter().map(|r| r.counts).sum();
        JobTotals {
            ranges: ranges.len(),
            processes,
            read: c.read,
            changed: c.changed,
            skipped: c.skipped,
            retried: c.retried,
            vanished: c.vanished,
            failed: c.failed,
        }
    }
}

/// Whether an owner is known to be dead without waiting for its lease (a
/// process of this machine that no longer runs); `false` when unknown.
pub(super) type Gone = fn(&str) -> bool;

/// This process as a lease owner: host, process id, and random bits (a
/// restarted process is a new owner).
pub(super) fn owner_id() -> String {
    let host = host_name();
    let suffix = bson::oid::ObjectId::new().to_hex();
    // The ObjectId's random bytes (after its 4-byte timestamp).
    format!("{host}/{}/{}", std::process::id(), &suffix[8..18])
}

/// Whether a lease owner is a process of this machine that no longer runs
/// (so a rerun after a crash need not wait out the dead run's leases).
/// Only with `/proc`; anything else, or a pid that is running again (even
/// another program), counts as alive: the lease then decides.
pub(super) fn owner_is_gone(owner: &str) -> bool {
    let mut parts = owner.split('/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let proc = std::path::Path::new("/proc");
    host == host_name()
        && pid != std::process::id()
        && proc.join("self").exists()
        && !proc.join(pid.to_string()).exists()
}

/// This machine's name, as lease owners carry it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether `me` may claim `r` at `now`: not done, and nobody holds it, or
/// its holder's lease ran out, or its holder is known to be gone. A range
/// `me` holds under a live lease is in use by one of its own workers (only
/// those are renewed); one whose lease `me` let run out is not (its claim's
/// reply was lost, say), and is claimed like anyone's.
pub(super) fn claimable(r: &RangeRecord, now: DateTime, me: &str, gone: Gone) -> bool {
    if r.done {
        return false;
    }
    match (&r.owner, r.expires) {
        (None, _) => true,
        (Some(o), Some(expires)) if o == me => expires <= now,
        (Some(o), Some(expires)) => expires <= now || gone(o),
        (Some(_), None) => true,
    }
}

/// The range to claim: one never held first (in order), else the expired
/// one with the most left.
pub(super) fn pick_claim<'r>(
    ranges: &'r [RangeRecord],
    now: DateTime,
    me: &str,
    gone: Gone,
) -> Option<&'r RangeRecord> {
    let open = ranges.iter().filter(|r| claimable(r, now, me, gone));
    let first = open.clone().find(|r| r.owner.is_none());
    first.or_else(|| open.max_by_key(|r| r.remaining()))
}

/// The range to split: the one being worked on (under a live lease, by
/// anyone) with the most left, when that is over `min_remaining`.
pub(super) fn pick_split(
    ranges: &[RangeRecord],
    now: DateTime,
    min_remaining: i64,
) -> Option<&RangeRecord> {
    ranges
        .iter()
        .filter(|r| !r.done && r.owner.is_some() && r.expires.is_some_and(|e| e > now))
        .filter(|r| r.remaining() > min_remaining)
        .max_by_key(|r| r.remaining())
}

/// Where a range can be cut: the `_id` in the middle of what is left of
/// it, and how many documents are left below and from it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct SplitPoint {
    pub(super) at: Bson,
    pub(super) below: i64,
    pub(super) from: i64,
}

/// What the protocol needs from the database. Object-safe; the MongoDB
/// implementation is the checkpoint collection, [`MemoryStore`] serves dry
/// runs and unit tests.
pub(super) trait JobStore: Send + Sync {
    /// Every range of the run.
    fn ranges(&self) -> BoxFuture<'_, Result<Vec<RangeRecord>, Error>>;
    /// Sets owner and expiry if the range still has the `owner` and
    /// `expires` it was read with; the claimed range, or `None` when
    /// someone else got there first.
    fn claim<'a>(
        &'a self,
        seen: &'a RangeRecord,
        me: &'a str,
        until: DateTime,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>>;
    /// Adds a range.
    fn insert<'a>(&'a self, range: &'a RangeRecord) -> BoxFuture<'a, Result<(), Error>>;
    /// Removes a range that never held work of its own (a split that lost
    /// its race).
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), Error>>;
    /// Lowers the upper bound of the range `seen` to `max` (and its size
    /// estimate) if the range is not done, still has the upper bound `seen`
    /// has, and its owner has read at most `read_at_most` of its documents
    /// (so the batch it may be migrating ends below `max`).
    fn shrink<'a>(
        &'a self,
        seen: &'a RangeRecord,
        max: &'a Bson,
        size: i64,
        read_at_most: i64,
    ) -> BoxFuture<'a, Result<bool, Error>>;
    /// Where the unfinished part of `range` can be cut in two, if it holds
    /// enough documents for both halves to be worth a worker.
    fn split_point<'a>(
        &'a self,
        range: &'a RangeRecord,
        min_each: i64,
    ) -> BoxFuture<'a, Result<Option<SplitPoint>, Error>>;
    /// Records a finished batch of a range `me` holds: position, counts
    /// (added to the range's), renewed lease. The range as it now is (its
    /// bounds may have been lowered by a split), or `None` when `me` no
    /// longer holds it.
    fn checkpoint<'a>(
        &'a self,
        id: &'a str,
        me: &'a str,
        last: &'a Bson,
        counts: &'a Counts,
        until: DateTime,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>>;
    /// Marks a range `me` holds done; whether it still held it.
    fn finish<'a>(&'a self, id: &'a str, me: &'a str) -> BoxFuture<'a, Result<bool, Error>>;
    /// Extends the leases `me` holds on the ranges `ids` (those its
    /// workers are on: a range `me` holds but no worker works, such as one
    /// whose claim's reply was lost, is left to run out).
    fn renew<'a>(
        &'a self,
        me: &'a str,
        ids: &'a [String],
        until: DateTime,
    ) -> BoxFuture<'a, Result<(), Error>>;
    /// Gives up every unfinished range `me` holds (a run stopping on an
    /// error): each becomes unheld, claimable at once, resumed from its
    /// last checkpoint. Clearing the owner, not only the expiry, also turns
    /// away a renewal or checkpoint of `me` still in flight.
    fn release<'a>(&'a self, me: &'a str) -> BoxFuture<'a, Result<(), Error>>;
}

/// What a worker gets to do next.
#[derive(Debug)]
pub(super) enum Next {
    /// This range is now the worker's (`taken_over`: from a process whose
    /// lease ran out).
    Work {
        range: Box<RangeRecord>,
        taken_over: bool,
    },
    /// Everything left is held by live leases and too small to split:
    /// look again shortly.
    Wait,
    /// Every range of the run is done.
    Finished,
}

/// The claim/split decision procedure of one process.
pub(super) struct Coordinator<'s> {
    pub(super) store: &'s dyn JobStore,
    pub(super) clock: &'s dyn Clock,
    pub(super) me: &'s str,
    pub(super) lease: Duration,
    /// The fewest documents each half of a split must have.
    pub(super) min_split: i64,
    /// Owners known dead before their leases run out.
    pub(super) gone: Gone,
}

/// Compare-and-set rounds before a worker waits instead (others are
/// claiming at the same moment).
const MAX_ROUNDS: usize = 8;

impl Coordinator<'_> {
    fn until(&self) -> DateTime {
        later(self.clock.now(), self.lease)
    }

    /// Claims a range, or splits one, or says why not.
    pub(super) async fn next(&self) -> Result<Next, Error> {
        for _ in 0..MAX_ROUNDS {
            let ranges = self.store.ranges().await?;
            if ranges.iter().all(|r| r.done) {
                return Ok(Next::Finished);
            }
            let now = self.clock.now();
            if let Some(r) = pick_claim(&ranges, now, self.me, self.gone) {
                if let Some(claimed) = self.store.claim(r, self.me, self.until()).await? {
                    return Ok(Next::Work {
                        range: Box::new(claimed),
                        taken_over: r.owner.is_some(),
                    });
                }
                continue; // lost the race: look again
            }
            let Some(r) = pick_split(&ranges, now, 2 * self.min_split) else {
                return Ok(Next::Wait);
            };
            let Some(point) = self.store.split_point(r, self.min_split).await? else {
                return Ok(Next::Wait);
            };
            let mut upper = RangeRecord::new(&r.job, &r.run, point.at.clone(), r.max.clone(), 0);
            upper.size = point.from;
            upper.owner = Some(self.me.to_owned());
            upper.expires = Some(self.until());
            // Insert first: the upper half is covered before the old range
            // gives it up.
            self.store.insert(&upper).await?;
            if self
                .store
                .shrink(
                    r,
                    &point.at,
                    r.read() + point.below,
                    // The owner may have recorded batches since `r` was
                    // read: the cut stands only if the batch it may be on
                    // (half of `min_split`: one batch) still ends below it.
                    r.read() + point.below - self.min_split / 2,
                )
                .await?
            {
                tracing::info!(range = %r.id, new = %upper.id, "split a range");
                return Ok(Next::Work {
                    range: Box::new(upper),
                    taken_over: false,
                });
            }
            // The range finished or was split by someone else meanwhile:
            // its upper part is covered by it or by that other split.
            self.store.remove(&upper.id).await?;
        }
        Ok(Next::Wait)
    }
}

/// Ranges held in memory: a dry run's (nothing is recorded), and the unit
/// tests'. `split` says where a range can be cut (dry runs do not split).
pub(super) struct MemoryStore {
    pub(super) ranges: Mutex<Vec<RangeRecord>>,
    #[allow(clippy::type_complexity)]
    pub(super) split: Option<Box<dyn Fn(&RangeRecord, i64) -> Option<SplitPoint> + Send + Sync>>,
}

impl MemoryStore {
    pub(super) fn new(ranges: Vec<RangeRecord>) -> Self {
        MemoryStore {
            ranges: Mutex::new(ranges),
            split: None,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<RangeRecord>) -> T) -> T {
        f(&mut self.ranges.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, Result<T, Error>> {
    Box::pin(std::future::ready(Ok(v)))
}

impl JobStore for MemoryStore {
    fn ranges(&self) -> BoxFuture<'_, Result<Vec<RangeRecord>, Error>> {
        ready(self.with(|r| r.clone()))
    }

    fn claim<'a>(
        &'a self,
        seen: &'a RangeRecord,
        me: &'a str,
        until: DateTime,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>> {
        ready(self.with(|ranges| {
            let r = ranges.iter_mut().find(|r| r.id == seen.id)?;
            if r.done || r.owner != seen.owner || r.expires != seen.expires {
                return None;
            }
            r.owner = Some(me.to_owned());
            r.expires = Some(until);
            Some(r.clone())
        }))
    }

    fn insert<'a>(&'a self, range: &'a RangeRecord) -> BoxFuture<'a, Result<(), Error>> {
        self.with(|r| r.push(range.clone()));
        ready(())
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.with(|r| r.retain(|r| r.id != id));
        ready(())
    }

    fn shrink<'a>(
        &'a self,
        seen: &'a RangeRecord,
        max: &'a Bson,
        size: i64,
        read_at_most: i64,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        ready(self.with(|ranges| {
            match ranges.iter_mut().find(|r| {
                r.id == seen.id && !r.done && r.max == seen.max && r.read() <= read_at_most
            }) {
                Some(r) => {
                    r.max = max.clone();
                    r.size = size;
                    true
                }
                None => false,
            }
        }))
    }

    fn split_point<'a>(
        &'a self,
        range: &'a RangeRecord,
        min_each: i64,
    ) -> BoxFuture<'a, Result<Option<SplitPoint>, Error>> {
        ready(self.split.as_ref().and_then(|f| f(range, min_each)))
    }

    fn checkpoint<'a>(
        &'a self,
        id: &'a str,
        me: &'a str,
        last: &'a Bson,
        counts: &'a Counts,
        until: DateTime,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>> {
        ready(self.with(|ranges| {
            let r = ranges
                .iter_mut()
                .find(|r| r.id == id && r.owner.as_deref() == Some(me))?;
            r.after = Some(last.clone());
            r.counts += *counts;
            r.expires = Some(until);
            Some(r.clone())
        }))
    }

    fn finish<'a>(&'a self, id: &'a str, me: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        ready(self.with(|ranges| {
            match ranges
                .iter_mut()
                .find(|r| r.id == id && r.owner.as_deref() == Some(me))
            {
                Some(r) => {
                    r.done = true;
                    true
                }
                None => false,
            }
        }))
    }

    fn renew<'a>(
        &'a self,
        me: &'a str,
        ids: &'a [String],
        until: DateTime,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.with(|ranges| {
            for r in ranges
                .iter_mut()
                .filter(|r| !r.done && r.owner.as_deref() == Some(me) && ids.contains(&r.id))
            {
                r.expires = Some(until);
            }
        });
        ready(())
    }

    fn release<'a>(&'a self, me: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.with(|ranges| {
            for r in ranges
                .iter_mut()
                .filter(|r| !r.done && r.owner.as_deref() == Some(me))
            {
                r.owner = None;
            }
        });
        ready(())
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
