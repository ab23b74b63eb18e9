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
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A clock the test moves.
    struct FakeClock(AtomicI64);

    impl FakeClock {
        fn advance(&self, d: Duration) {
            self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> DateTime {
            DateTime::from_millis(self.0.load(Ordering::SeqCst))
        }
    }

    const LEASE: Duration = Duration::from_secs(30);

    /// Documents with `_id` 0..n, split like `RunState::split` does.
    fn store(n: i64, parts: i64) -> MemoryStore {
        let bound = |i: i64| match i {
            0 => Bson::MinKey,
            i if i == parts => Bson::MaxKey,
            i => Bson::Int64(n * i / parts),
        };
        let ranges = (0..parts)
            .map(|i| RangeRecord::new("j", "r", bound(i), bound(i + 1), n / parts))
            .collect();
        let mut s = MemoryStore::new(ranges);
        // The middle of what is left of a range over the ids 0..n.
        s.split = Some(Box::new(move |r: &RangeRecord, min_each: i64| {
            let lo = match (&r.after, &r.min) {
                (Some(Bson::Int64(a)), _) => a + 1,
                (None, Bson::Int64(m)) => *m,
                _ => 0,
            };
            let hi = match &r.max {
                Bson::Int64(m) => *m,
                _ => n,
            };
            let left = hi - lo;
            (left >= 2 * min_each).then(|| SplitPoint {
                at: Bson::Int64(lo + left / 2),
                below: left / 2,
                from: left - left / 2,
            })
        }));
        s
    }

    fn coordinator<'s>(s: &'s MemoryStore, c: &'s FakeClock, me: &'s str) -> Coordinator<'s> {
        Coordinator {
            store: s,
            clock: c,
            me,
            lease: LEASE,
            min_split: 10,
            gone: |_| false,
        }
    }

    fn work(n: Next) -> RangeRecord {
        match n {
            Next::Work { range, .. } => *range,
            other => panic!("expected a range, got {other:?}"),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn stats(read: u64) -> Counts {
        Counts {
            read,
            ..Default::default()
        }
    }

    #[test]
    fn each_range_is_claimed_once_while_its_lease_lives() {
        block_on(async {
            let s = store(1000, 3);
            let clock = FakeClock(AtomicI64::new(1_000_000));
            let a = coordinator(&s, &clock, "a");
            let b = coordinator(&s, &clock, "b");
            let r1 = work(a.next().await.unwrap());
            let r2 = work(b.next().await.unwrap());
            let r3 = work(a.next().await.unwrap());
            let ids = [&r1.id, &r2.id, &r3.id];
            assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
            assert_eq!(r2.owner.as_deref(), Some("b"));
            // Nothing unheld, nothing expired, ranges too small to split
            // (333 each, but none read yet and min_split 10 → they are
            // splittable): a third process splits the largest.
            let c = coordinator(&s, &clock, "c");
            let r4 = work(c.next().await.unwrap());
            assert_eq!(r4.owner.as_deref(), Some("c"));
            assert_eq!(s.ranges.lock().unwrap().len(), 4);
        });
    }

    #[test]
    fn a_stale_claim_loses_the_compare_and_set() {
        block_on(async {
            let s = store(100, 1);
            let clock = FakeClock(AtomicI64::new(0));
            let seen = s.ranges.lock().unwrap()[0].clone();
            let until = later(clock.now(), LEASE);
            assert!(s.claim(&seen, "a", until).await.unwrap().is_some());
            // "b" read the same unheld record: its claim must fail.
            assert!(s.claim(&seen, "b", until).await.unwrap().is_none());
            assert_eq!(s.ranges.lock().unwrap()[0].owner.as_deref(), Some("a"));
        });
    }

    #[test]
    fn an_expired_lease_is_taken_over_from_its_last_checkpoint() {
        block_on(async {
            let s = store(1000, 1);
            let clock = FakeClock(AtomicI64::new(0));
            let a = coordinator(&s, &clock, "a");
            let r = work(a.next().await.unwrap());
            let until = later(clock.now(), LEASE);
            let after = s
                .checkpoint(&r.id, "a", &Bson::Int64(99), &stats(100), until)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(after.after, Some(Bson::Int64(99)));
            // "a" dies. Before its lease runs out "b" may only split.
            let b = Coordinator {
                min_split: 1000,
                ..coordinator(&s, &clock, "b")
            };
            clock.advance(LEASE - Duration::from_secs(1));
            assert!(matches!(b.next().await.unwrap(), Next::Wait));
            clock.advance(Duration::from_secs(1));
            let next = b.next().await.unwrap();
            assert!(matches!(
                next,
                Next::Work {
                    taken_over: true,
                    ..
                }
            ));
            let taken = work(next);
            assert_eq!(taken.id, r.id);
            assert_eq!(taken.owner.as_deref(), Some("b"));
            assert_eq!(taken.after, Some(Bson::Int64(99)), "resumes after 99");
            // "a" comes back: its checkpoints and its finish are refused.
            let until = later(clock.now(), LEASE);
            assert!(
                s.checkpoint(&r.id, "a", &Bson::Int64(199), &stats(100), until)
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(!s.finish(&r.id, "a").await.unwrap());
            assert!(s.finish(&r.id, "b").await.unwrap());
            assert!(matches!(b.next().await.unwrap(), Next::Finished));
        });
    }

    #[test]
    fn heartbeats_keep_a_lease() {
        block_on(async {
            let s = store(1000, 1);
            let clock = FakeClock(AtomicI64::new(0));
            let a = coordinator(&s, &clock, "a");
            let held = work(a.next().await.unwrap());
            let b = Coordinator {
                min_split: 1000,
                ..coordinator(&s, &clock, "b")
            };
            for _ in 0..10 {
                clock.advance(LEASE / 3);
                s.renew(
                    "a",
                    std::slice::from_ref(&held.id),
                    later(clock.now(), LEASE),
                )
                .await
                .unwrap();
                assert!(matches!(b.next().await.unwrap(), Next::Wait));
            }
        });
    }

    #[test]
    fn splitting_covers_every_id_exactly_once_and_the_owner_sees_its_new_bound() {
        block_on(async {
            let s = store(1000, 1);
            let clock = FakeClock(AtomicI64::new(0));
            let a = coordinator(&s, &clock, "a");
            let r = work(a.next().await.unwrap());
            let until = later(clock.now(), LEASE);
            s.checkpoint(&r.id, "a", &Bson::Int64(199), &stats(200), until)
                .await
                .unwrap();
            let b = coordinator(&s, &clock, "b");
            let upper = work(b.next().await.unwrap());
            // What was left (200..1000) is cut at 600.
            assert_eq!(upper.min, Bson::Int64(600));
            assert_eq!(upper.max, Bson::MaxKey);
            assert_eq!(upper.size, 400);
            let lower = s
                .checkpoint(&r.id, "a", &Bson::Int64(299), &stats(100), until)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                lower.max,
                Bson::Int64(600),
                "the owner learns its new bound"
            );
            assert_eq!(lower.size, 600);
            // The two ranges partition the ids.
            let ranges = s.ranges.lock().unwrap().clone();
            for id in 0..1000i64 {
                let holders = ranges
                    .iter()
                    .filter(|r| {
                        let lo = match &r.min {
                            Bson::Int64(m) => *m,
                            _ => i64::MIN,
                        };
                        let hi = match &r.max {
                            Bson::Int64(m) => *m,
                            _ => i64::MAX,
                        };
                        lo <= id && id < hi
                    })
                    .count();
                assert_eq!(holders, 1, "id {id}");
            }
        });
    }

    #[test]
    fn a_split_that_loses_its_race_leaves_no_range_behind() {
        block_on(async {
            let s = store(1000, 1);
            let clock = FakeClock(AtomicI64::new(0));
            let a = coordinator(&s, &clock, "a");
            let r = work(a.next().await.unwrap());
            // Someone shrinks the range between "b"'s read and its
            // compare-and-set: simulated by shrinking, then asking the
            // store to shrink from the old bound.
            assert!(s.shrink(&r, &Bson::Int64(500), 500, 0).await.unwrap());
            assert!(!s.shrink(&r, &Bson::Int64(700), 700, 0).await.unwrap());
            // The owner records a batch between "b"'s read and its
            // compare-and-set: a cut its next batch may reach loses, one
            // past it stands.
            let mut seen = r.clone();
            seen.max = Bson::Int64(500);
            let mut moved = s
                .checkpoint(&r.id, "a", &Bson::Int64(99), &stats(100), a.until())
                .await
                .unwrap()
                .expect("a holds the range");
            assert!(!s.shrink(&seen, &Bson::Int64(300), 300, 50).await.unwrap());
            assert!(s.shrink(&seen, &Bson::Int64(300), 300, 100).await.unwrap());
            // A done range is never split or shrunk.
            assert!(s.finish(&r.id, "a").await.unwrap());
            moved.max = Bson::Int64(300);
            assert!(
                !s.shrink(&moved, &Bson::Int64(250), 250, 1000)
                    .await
                    .unwrap()
            );
            let b = coordinator(&s, &clock, "b");
            assert!(matches!(b.next().await.unwrap(), Next::Finished));
            assert_eq!(s.ranges.lock().unwrap().len(), 1);
        });
    }

    #[test]
    fn released_ranges_are_claimed_at_once_and_turn_away_the_old_owner() {
        block_on(async {
            let s = store(1000, 2);
            let clock = FakeClock(AtomicI64::new(0));
            let a = coordinator(&s, &clock, "a");
            let r1 = work(a.next().await.unwrap());
            let r2 = work(a.next().await.unwrap());
            let until = later(clock.now(), LEASE);
            s.checkpoint(&r1.id, "a", &Bson::Int64(99), &stats(100), until)
                .await
                .unwrap();
            assert!(s.finish(&r2.id, "a").await.unwrap());
            // "a" stops on an error: its unfinished range is free long
            // before its lease would run out; the finished one stays done.
            s.release("a").await.unwrap();
            let b = Coordinator {
                min_split: 1000,
                ..coordinator(&s, &clock, "b")
            };
            let taken = work(b.next().await.unwrap());
            assert_eq!(taken.id, r1.id);
            assert_eq!(taken.after, Some(Bson::Int64(99)), "resumes after 99");
            // A renewal or checkpoint of "a" still in flight changes nothing.
            s.renew(
                "a",
                std::slice::from_ref(&r1.id),
                later(clock.now(), LEASE * 10),
            )
            .await
            .unwrap();
            assert!(
                s.checkpoint(&r1.id, "a", &Bson::Int64(199), &stats(100), until)
                    .await
                    .unwrap()
                    .is_none()
            );
            let now = s.ranges.lock().unwrap().clone();
            let r1_now = now.iter().find(|r| r.id == r1.id).unwrap();
            assert_eq!(r1_now.owner.as_deref(), Some("b"));
            assert_eq!(r1_now.expires, taken.expires);
            assert!(now.iter().find(|r| r.id == r2.id).unwrap().done);
        });
    }

    #[test]
    fn small_ranges_are_not_split() {
        let clock = FakeClock(AtomicI64::new(0));
        let mut r = RangeRecord::new("j", "r", Bson::MinKey, Bson::MaxKey, 30);
        r.owner = Some("a".into());
        r.expires = Some(later(clock.now(), LEASE));
        assert!(pick_split(std::slice::from_ref(&r), clock.now(), 20).is_some());
        r.counts.read = 15;
        assert!(pick_split(std::slice::from_ref(&r), clock.now(), 20).is_none());
        // Expired: claimed, not split.
        r.counts.read = 0;
        clock.advance(LEASE);
        assert!(pick_split(std::slice::from_ref(&r), clock.now(), 20).is_none());
        assert!(claimable(&r, clock.now(), "b", |_| false));
        // "a"'s own range: in use while its lease lives (its workers' ranges
        // are renewed), an orphan once it ran out.
        assert!(claimable(&r, clock.now(), "a", |_| false), "a's orphan");
        r.expires = Some(later(clock.now(), LEASE));
        assert!(!claimable(&r, clock.now(), "a", |_| false), "a's own range");
    }

    #[test]
    fn a_range_held_but_not_worked_runs_out_and_is_claimed_again() {
        block_on(async {
            let s = store(1000, 1);
            let clock = FakeClock(AtomicI64::new(0));
            let a = coordinator(&s, &clock, "a");
            // "a" claimed the range, but the reply was lost: no worker of
            // "a" is on it, so the heartbeat does not renew it.
            let lost = work(a.next().await.unwrap());
            for _ in 0..3 {
                clock.advance(LEASE / 3);
                s.renew("a", &[], later(clock.now(), LEASE)).await.unwrap();
            }
            // "a" itself claims it again (a lone process must not wait for
            // ever on its own lost claim).
            let again = work(a.next().await.unwrap());
            assert_eq!(again.id, lost.id);
            assert_eq!(again.owner.as_deref(), Some("a"));
            assert!(again.expires > lost.expires);
        });
    }

    #[test]
    fn a_holder_known_gone_is_taken_over_before_its_lease_runs_out() {
        block_on(async {
            let s = store(1000, 1);
            let clock = FakeClock(AtomicI64::new(0));
            let dead = coordinator(&s, &clock, "host/41/dead");
            work(dead.next().await.unwrap());
            let b = Coordinator {
                min_split: 1000,
                gone: |owner| owner.contains("/41/"),
                ..coordinator(&s, &clock, "host/42/b")
            };
            let next = b.next().await.unwrap();
            assert!(matches!(
                next,
                Next::Work {
                    taken_over: true,
                    ..
                }
            ));
            // Without that knowledge: wait for the lease.
            let s = store(1000, 1);
            let a = coordinator(&s, &clock, "host/41/dead");
            work(a.next().await.unwrap());
            let c = Coordinator {
                min_split: 1000,
                ..coordinator(&s, &clock, "host/43/c")
            };
            assert!(matches!(c.next().await.unwrap(), Next::Wait));
        });
    }

    #[test]
    fn only_a_local_process_that_is_not_running_is_gone() {
        let host = host_name();
        assert!(!owner_is_gone(&owner_id()), "this process");
        // The parent of this test runs; pid 1 always does.
        assert!(!owner_is_gone(&format!("{host}/1/ab")));
        // A pid past the kernel's maximum never runs.
        if std::path::Path::new("/proc/self").exists() {
            assert!(owner_is_gone(&format!("{host}/4294967294/ab")));
        }
        assert!(
            !owner_is_gone("another-host/4294967294/ab"),
            "remote: unknown"
        );
        assert!(!owner_is_gone("garbage"));
        assert!(!owner_is_gone(&format!("{host}/notapid/ab")));
    }
}
