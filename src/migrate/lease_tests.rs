//! Unit tests of `lease.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

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
