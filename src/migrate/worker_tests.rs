//! Unit tests of `worker.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

//! The pipeline's order, on a fake pair of stages over the memory
//! store: what is read, written and checkpointed when, and what
//! happens to the batch read ahead on a split, a lost lease and errors.

use super::*;
use crate::migrate::counts::Counts;
use crate::migrate::lease::{JobStore, MemoryStore};
use std::collections::VecDeque;
use std::sync::Mutex;

/// What the fake stages did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    /// A batch, by its first `_id`, read and prepared.
    Read(i64),
    /// A batch, by its last `_id`, began to be written.
    Write(i64),
    /// A batch, by its last `_id`, written and checkpointed.
    Checkpointed(i64),
}

/// Something another process does to the range while a batch is
/// being written.
#[derive(Clone, Copy)]
enum Meanwhile {
    /// Splits it: its upper bound drops to this `_id`.
    Split(i64),
    /// Takes it over (the lease ran out).
    TakeOver,
}

/// Batches of `_id`s as a cursor yields them; an `Err` is a failed read.
type Reader = VecDeque<Result<Vec<i64>, &'static str>>;

const ME: &str = "me";

struct Fake {
    store: MemoryStore,
    log: Mutex<Vec<Event>>,
    /// While the batch ending at this `_id` is written.
    meanwhile: Option<(i64, Meanwhile)>,
    /// The write of the batch ending at this `_id` fails.
    failing_write: Option<i64>,
}

impl Fake {
    fn new() -> Fake {
        let mut range = RangeRecord::new("j", "r", Bson::MinKey, Bson::MaxKey, 9);
        range.owner = Some(ME.into());
        range.expires = Some(bson::DateTime::from_millis(1_000_000));
        Fake {
            store: MemoryStore::new(vec![range]),
            log: Mutex::new(Vec::new()),
            meanwhile: None,
            failing_write: None,
        }
    }

    fn note(&self, e: Event) {
        self.log.lock().unwrap().push(e);
    }

    fn log(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    /// The range as stored.
    fn stored(&self) -> RangeRecord {
        self.store.ranges.lock().unwrap()[0].clone()
    }

    /// Runs the pipeline over `batches` from the stored range.
    async fn run(
        &self,
        batches: Vec<Result<Vec<i64>, &'static str>>,
    ) -> (Result<Ended, Error>, RangeRecord) {
        let mut range = self.stored();
        let mut reader: Reader = batches.into();
        let ended = pipeline(self, &mut reader, &mut range, &mut Backoff::default()).await;
        (ended, range)
    }
}

impl Stages for Fake {
    type Batch = Vec<i64>;
    type Reader = Reader;

    fn read<'a>(
        &'a self,
        reader: &'a mut Reader,
    ) -> BoxFuture<'a, Result<Option<Vec<i64>>, Error>> {
        Box::pin(async move {
            match reader.pop_front() {
                None => Ok(None),
                Some(Err(reason)) => Err(Error::Preflight {
                    reason: reason.into(),
                }),
                Some(Ok(batch)) => {
                    self.note(Event::Read(batch[0]));
                    Ok(Some(batch))
                }
            }
        })
    }

    fn last_id(batch: &Vec<i64>) -> Bson {
        batch.last().map_or(Bson::Null, |id| Bson::Int64(*id))
    }

    fn write_and_record<'a>(
        &'a self,
        range: &'a str,
        last: &'a Bson,
        batch: Vec<i64>,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>> {
        Box::pin(async move {
            let end = batch[batch.len() - 1];
            self.note(Event::Write(end));
            // Writing takes a while: the read ahead runs meanwhile.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            if self.failing_write == Some(end) {
                return Err(Error::Preflight {
                    reason: "write failed".into(),
                });
            }
            match self.meanwhile {
                Some((during, Meanwhile::Split(max))) if during == end => {
                    let seen = self.stored();
                    assert!(
                        self.store
                            .shrink(&seen, &Bson::Int64(max), 0, i64::MAX)
                            .await?
                    );
                }
                Some((during, Meanwhile::TakeOver)) if during == end => {
                    self.store.release(ME).await?
                }
                _ => {}
            }
            let counts = Counts {
                read: batch.len() as u64,
                ..Counts::default()
            };
            let until = bson::DateTime::from_millis(2_000_000);
            let now = self
                .store
                .checkpoint(range, ME, last, &counts, until)
                .await?;
            if now.is_some() {
                self.note(Event::Checkpointed(end));
            }
            Ok(now)
        })
    }
}

fn at(log: &[Event], e: Event) -> usize {
    log.iter()
        .position(|x| *x == e)
        .unwrap_or_else(|| panic!("{e:?} not in {log:?}"))
}

/// What must hold in every run: each batch is written at most once;
/// a checkpoint follows its batch's write; a write begins only once
/// the batch before it is checkpointed.
fn assert_checkpoints_follow_writes(log: &[Event]) {
    let writes: Vec<(usize, i64)> = log
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Write(n) => Some((i, *n)),
            _ => None,
        })
        .collect();
    for (k, (i, n)) in writes.iter().enumerate() {
        assert_eq!(
            log.iter().filter(|e| **e == Event::Write(*n)).count(),
            1,
            "{log:?}"
        );
        if let Some(c) = log.iter().position(|e| *e == Event::Checkpointed(*n)) {
            assert!(c > *i, "{n} checkpointed before it was written: {log:?}");
        }
        if k > 0 {
            let (_, before) = writes[k - 1];
            assert!(
                at(log, Event::Checkpointed(before)) < *i,
                "{n} written before {before} was checkpointed: {log:?}"
            );
        }
    }
}

fn batches(ids: &[&[i64]]) -> Vec<Result<Vec<i64>, &'static str>> {
    ids.iter().map(|b| Ok(b.to_vec())).collect()
}

#[tokio::test]
async fn the_next_batch_is_read_while_one_is_written_and_written_after_its_checkpoint() {
    let f = Fake::new();
    let (ended, range) = f.run(batches(&[&[1, 2, 3], &[4, 5, 6], &[7, 8, 9]])).await;
    assert_eq!(ended.unwrap(), Ended::Drained);
    let log = f.log();
    assert_checkpoints_follow_writes(&log);
    // Read ahead: batch 2 was read before batch 1 was checkpointed.
    assert!(
        at(&log, Event::Read(4)) < at(&log, Event::Checkpointed(3)),
        "{log:?}"
    );
    assert!(
        at(&log, Event::Read(7)) < at(&log, Event::Checkpointed(6)),
        "{log:?}"
    );
    for n in [3, 6, 9] {
        at(&log, Event::Checkpointed(n));
    }
    let stored = f.stored();
    assert_eq!(stored.after, Some(Bson::Int64(9)));
    assert_eq!(stored.counts.read, 9);
    assert_eq!(range.after, Some(Bson::Int64(9)));
}

#[tokio::test]
async fn a_split_drops_the_batch_read_ahead_and_the_reopened_cursor_reads_it_again() {
    let mut f = Fake::new();
    f.meanwhile = Some((3, Meanwhile::Split(5)));
    let (ended, range) = f.run(batches(&[&[1, 2, 3], &[4, 5, 6], &[7, 8, 9]])).await;
    assert_eq!(ended.unwrap(), Ended::Split);
    assert_eq!(
        (range.after, range.max.clone()),
        (Some(Bson::Int64(3)), Bson::Int64(5))
    );
    let log = f.log();
    assert_checkpoints_follow_writes(&log);
    at(&log, Event::Read(4));
    assert!(
        !log.contains(&Event::Write(6)),
        "read under the old bound: {log:?}"
    );
    // The cursor reopened after 3, below 5.
    let (ended, _) = f.run(batches(&[&[4]])).await;
    assert_eq!(ended.unwrap(), Ended::Drained);
    let log = f.log();
    assert_checkpoints_follow_writes(&log);
    assert!(!log.contains(&Event::Write(6)) && !log.contains(&Event::Write(9)));
    assert_eq!(f.stored().after, Some(Bson::Int64(4)));
    assert_eq!(f.stored().counts.read, 4);
}

#[tokio::test]
async fn a_lost_lease_drops_the_batch_read_ahead() {
    let mut f = Fake::new();
    f.meanwhile = Some((3, Meanwhile::TakeOver));
    let (ended, _) = f.run(batches(&[&[1, 2, 3], &[4, 5, 6]])).await;
    assert_eq!(ended.unwrap(), Ended::LeaseLost);
    let log = f.log();
    assert_checkpoints_follow_writes(&log);
    at(&log, Event::Read(4));
    assert!(!log.contains(&Event::Write(6)), "{log:?}");
    // The new holder resumes from the start: nothing was recorded.
    assert_eq!(f.stored().after, None);
}

#[tokio::test]
async fn a_failed_read_ahead_is_returned_after_the_batch_before_it_is_checkpointed() {
    let f = Fake::new();
    let mut input = batches(&[&[1, 2, 3]]);
    input.push(Err("cursor lost"));
    input.push(Ok(vec![7, 8, 9]));
    let (ended, _) = f.run(input).await;
    assert!(
        matches!(&ended, Err(Error::Preflight { reason }) if reason == "cursor lost"),
        "{ended:?}"
    );
    let log = f.log();
    assert_checkpoints_follow_writes(&log);
    at(&log, Event::Checkpointed(3));
    assert!(!log.contains(&Event::Write(9)), "{log:?}");
    assert_eq!(f.stored().after, Some(Bson::Int64(3)));
}

#[tokio::test]
async fn a_failed_write_is_not_checkpointed_and_nothing_after_it_is_written() {
    let mut f = Fake::new();
    f.failing_write = Some(6);
    let (ended, _) = f.run(batches(&[&[1, 2, 3], &[4, 5, 6], &[7, 8, 9]])).await;
    assert!(
        matches!(&ended, Err(Error::Preflight { reason }) if reason == "write failed"),
        "{ended:?}"
    );
    let log = f.log();
    assert_checkpoints_follow_writes(&log);
    assert!(!log.contains(&Event::Checkpointed(6)), "{log:?}");
    assert!(!log.contains(&Event::Write(9)), "{log:?}");
    // A resume starts after the last batch written and checkpointed.
    assert_eq!(f.stored().after, Some(Bson::Int64(3)));
}
