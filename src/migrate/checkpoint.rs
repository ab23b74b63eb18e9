//! Checkpoints: the job, its ranges and its failed documents, in a
//! collection. They make a killed run resumable and let processes on
//! several machines share one job ([`lease`](super::lease) is the
//! protocol; this module is its MongoDB store). Records are written typed
//! and read back strictly (a checkpoint missing a field is an error, not a
//! default).
//!
//! Starting a job: a process reads the job record; if a run is going on
//! it joins it. Otherwise it computes the ranges, inserts them under a new
//! run id, and then switches the job record to that run with a write that
//! only succeeds while no run is going on (an upsert whose filter excludes
//! a running job, so a concurrent starter hits the unique `_id`). The
//! loser removes its ranges and joins the winner's run; the winner removes
//! the records of earlier runs.

use super::counts::Counts;
use super::lease::{JobStore, RangeRecord, SplitPoint};
use super::ranges::range_filter;
use super::summary::FailedDocument;
use super::write::id_of;
use super::{Error, Namespace};
use bson::{Bson, DateTime, Document, doc};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// The most failures listed in a summary (all are counted).
const MAX_LISTED_FAILURES: i64 = 1000;

/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;

/// The job: which collection, to where, by which plan, which run is going
/// on, how many ranges it has (a range record gone missing is detected),
/// and which processes joined it.
#[derive(Debug, Serialize, Deserialize)]
struct JobRecord {
    #[serde(rename = "_id")]
    id: String,
    kind: String,
    source: String,
    target: String,
    plan: Document,
    #[serde(rename = "decryptUnlisted")]
    decrypt_unlisted: bool,
    run: String,
    ranges: i64,
    state: String,
    started: DateTime,
    owners: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished: Option<DateTime>,
}

/// A document that could not be migrated, kept for the summary.
#[derive(Debug, Serialize, Deserialize)]
struct FailedRecord {
    job: String,
    run: String,
    kind: String,
    doc: Bson,
    reason: String,
}

/// What the job is, for its record.
pub(super) struct JobIdentity<'a> {
    pub(super) source: &'a Namespace,
    pub(super) target: &'a Namespace,
    pub(super) plan: &'a Document,
    pub(super) decrypt_unlisted: bool,
}

/// The checkpoints of one job, as seen by one process.
pub(super) struct Checkpoints {
    coll: mongodb::Collection<Document>,
    source: mongodb::Collection<Document>,
    job: String,
    run: std::sync::OnceLock<String>,
}

fn to_document(record: &impl Serialize) -> Result<Document, Error> {
    bson::to_document(record).map_err(Error::CheckpointEncoding)
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    crate::driver::driver_code(e) == Some(DUPLICATE_KEY)
}

impl Checkpoints {
    pub(super) fn new(
        coll: mongodb::Collection<Document>,
        source: mongodb::Collection<Document>,
        job: String,
    ) -> Self {
        Checkpoints {
            coll,
            source,
            job,
            run: std::sync::OnceLock::new(),
        }
    }

    /// The run this process joined.
    pub(super) fn run(&self) -> &str {
        self.run.get().map(String::as_str).unwrap_or_default()
    }

    /// The running run of the job, if any (checked for missing ranges).
    async fn running(&self) -> Result<Option<JobRecord>, Error> {
        let Some(job) = self.coll.find_one(doc! {"_id": &self.job}).await? else {
            return Ok(None);
        };
        // A finished job (of any version) is simply run again; only a
        // running one must be understood to be resumed.
        if job.get_str("state") != Ok("running") {
            return Ok(None);
        }
        let job: JobRecord = bson::from_document(job).map_err(Error::Checkpoint)?;
        let found = self
            .coll
            .count_documents(doc! {"job": &self.job, "run": &job.run, "kind": "range"})
            .await?;
        // Splits add ranges and count them after; a range that is gone is
        // not something this code did, and resuming without it would skip
        // documents.
        if (found as i64) < job.ranges {
            return Err(Error::CheckpointInconsistent {
                job: self.job.clone(),
                expected: job.ranges,
                found: found as usize,
            });
        }
        Ok(Some(job))
    }

    /// Whether a run of the job is going on (recorded as running: it may
    /// also be an interrupted one).
    pub(super) async fn is_running(&self) -> Result<bool, Error> {
        let job = self
            .coll
            .find_one(doc! {"_id": &self.job, "state": "running"})
            .await?;
        Ok(job.is_some())
    }

    /// Joins the job's running run, or starts a new one over the ranges
    /// `bounds` gives (`(min, max, size)` each). Whether this process
    /// joined a run that was already going on (an interrupted one, or
    /// another process's).
    pub(super) async fn join_or_start<F, Fut>(
        &self,
        me: &str,
        identity: &JobIdentity<'_>,
        bounds: F,
    ) -> Result<bool, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(Bson, Bson, i64)>, Error>>,
    {
        let mut bounds = Some(bounds);
        let mut computed = None;
        for _ in 0..4 {
            if let Some(job) = self.running().await? {
                self.coll
                    .update_one(doc! {"_id": &self.job}, doc! {"$addToSet": {"owners": me}})
                    .await?;
                tracing::info!(job = %self.job, run = %job.run, "joining a running migration");
                let _ = self.run.set(job.run);
                return Ok(true);
            }
            if computed.is_none()
                && let Some(f) = bounds.take()
            {
                computed = Some(f().await?);
            }
            let ranges_of = computed.as_deref().unwrap_or_default();
            let run = bson::oid::ObjectId::new().to_hex();
            let ranges: Vec<RangeRecord> = ranges_of
                .iter()
                .map(|(min, max, size)| {
                    RangeRecord::new(&self.job, &run, min.clone(), max.clone(), *size)
                })
                .collect();
            let docs = ranges
                .iter()
                .map(to_document)
                .collect::<Result<Vec<_>, _>>()?;
            self.coll.insert_many(docs).await?;
            let job = JobRecord {
                id: self.job.clone(),
                kind: "job".into(),
                source: identity.source.to_string(),
                target: identity.target.to_string(),
                plan: identity.plan.clone(),
                decrypt_unlisted: identity.decrypt_unlisted,
                run: run.clone(),
                ranges: ranges.len() as i64,
                state: "running".into(),
                started: DateTime::now(),
                owners: vec![me.to_owned()],
                finished: None,
            };
            let switched = self
                .coll
                .replace_one(
                    doc! {"_id": &self.job, "state": {"$ne": "running"}},
                    to_document(&job)?,
                )
                .upsert(true)
                .await;
            match switched {
                Ok(_) => {
                    // Earlier runs' ranges and failures (and ranges of
                    // starts that lost a race) are history now.
                    self.coll
                        .delete_many(doc! {"job": &self.job, "run": {"$ne": &run}})
                        .await?;
                    let _ = self.run.set(run);
                    return Ok(false);
                }
                Err(e) if is_duplicate_key(&e) => {
                    // Another process started it first: join that run.
                    self.coll
                        .delete_many(doc! {"job": &self.job, "run": &run})
                        .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::CheckpointInconsistent {
            job: self.job.clone(),
            expected: 1,
            found: 0,
        })
    }

    /// Records a batch's failed documents (before its position).
    pub(super) async fn record_failures(&self, failed: &[FailedDocument]) -> Result<(), Error> {
        for f in failed {
            tracing::warn!(job = %self.job, id = %f.id, reason = %f.reason, "document not migrated");
            let record = FailedRecord {
                job: self.job.clone(),
                run: self.run().to_owned(),
                kind: "failed".into(),
                doc: f.id.clone(),
                reason: f.reason.clone(),
            };
            self.coll
                .replace_one(
                    doc! {"_id": {"job": &self.job, "run": self.run(), "doc": f.id.clone()}},
                    to_document(&record)?,
                )
                .upsert(true)
                .await?;
        }
        Ok(())
    }

    /// Marks the run finished. Whether this process did (exactly one of
    /// the processes sharing the run does; it verifies).
    pub(super) async fn finish_run(&self) -> Result<bool, Error> {
        let r = self
            .coll
            .update_one(
                doc! {"_id": &self.job, "run": self.run(), "state": "running"},
                doc! {"$set": {"state": "done", "finished": DateTime::now()}},
            )
            .await?;
        Ok(r.modified_count == 1)
    }

    /// The run's failures (at most 1000 listed) and how many there were.
    pub(super) async fn failures(&self) -> Result<(Vec<FailedDocument>, u64), Error> {
        let filter = doc! {"job": &self.job, "run": self.run(), "kind": "failed"};
        let n = self.coll.count_documents(filter.clone()).await?;
        let records: Vec<Document> = self
            .coll
            .find(filter)
            .limit(MAX_LISTED_FAILURES)
            .await?
            .try_collect()
            .await?;
        let list = records
            .into_iter()
            .map(|d| {
                let r: FailedRecord = bson::from_document(d).map_err(Error::Checkpoint)?;
                Ok(FailedDocument {
                    id: r.doc,
                    reason: r.reason,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok((list, n))
    }

    /// The processes that joined the run.
    pub(super) async fn owners(&self) -> Result<usize, Error> {
        let job = self.coll.find_one(doc! {"_id": &self.job}).await?;
        Ok(job
            .and_then(|j| j.get_array("owners").ok().map(Vec::len))
            .unwrap_or(0))
    }

    async fn count_ranges(&self, by: i64) -> Result<(), Error> {
        self.coll
            .update_one(
                doc! {"_id": &self.job, "run": self.run()},
                doc! {"$inc": {"ranges": by}},
            )
            .await?;
        Ok(())
    }

    /// Applies `update` to the range `filter` matches; the range after it,
    /// or `None` when nothing matched.
    async fn update_range(
        &self,
        filter: Document,
        update: Document,
    ) -> Result<Option<RangeRecord>, Error> {
        let d = self
            .coll
            .find_one_and_update(filter, update)
            .return_document(mongodb::options::ReturnDocument::After)
            .await?;
        d.map(|d| bson::from_document(d).map_err(Error::Checkpoint))
            .transpose()
    }
}

/// The update that records a batch in its range: position, renewed lease,
/// and `$inc` of the counts. The counts serialize under the very names the
/// range record stores them by (flattened into it), each an `Int64`.
fn checkpoint_update(last: &Bson, until: DateTime, counts: &Counts) -> Result<Document, Error> {
    Ok(doc! {
        "$set": {"after": last.clone(), "expires": until, "updated": DateTime::now()},
        "$inc": to_document(counts)?,
    })
}

fn opt<T: Into<Bson> + Clone>(v: &Option<T>) -> Bson {
    v.clone().map_or(Bson::Null, Into::into)
}

impl JobStore for Checkpoints {
    fn ranges(&self) -> BoxFuture<'_, Result<Vec<RangeRecord>, Error>> {
        Box::pin(async move {
            let docs: Vec<Document> = self
                .coll
                .find(doc! {"job": &self.job, "run": self.run(), "kind": "range"})
                .await?
                .try_collect()
                .await?;
            docs.into_iter()
                .map(|d| bson::from_document(d).map_err(Error::Checkpoint))
                .collect()
        })
    }

    fn claim<'a>(
        &'a self,
        seen: &'a RangeRecord,
        me: &'a str,
        until: DateTime,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>> {
        Box::pin(self.update_range(
            doc! {
                "_id": &seen.id,
                "done": false,
                "owner": opt(&seen.owner),
                "expires": opt(&seen.expires),
            },
            doc! {"$set": {"owner": me, "expires": until}},
        ))
    }

    fn insert<'a>(&'a self, range: &'a RangeRecord) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.coll.insert_one(to_document(range)?).await?;
            self.count_ranges(1).await
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // The count first: a process stopped in between (killed, or
            // its worker cancelled) leaves one range more than counted,
            // which a resume accepts; fewer would refuse the job for ever.
            self.count_ranges(-1).await?;
            let r = self.coll.delete_one(doc! {"_id": id}).await?;
            if r.deleted_count == 0 {
                self.count_ranges(1).await?;
            }
            Ok(())
        })
    }

    fn shrink<'a>(
        &'a self,
        seen: &'a RangeRecord,
        max: &'a Bson,
        size: i64,
        read_at_most: i64,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let r = self
                .coll
                .update_one(
                    doc! {
                        "_id": &seen.id,
                        "done": false,
                        "max": seen.max.clone(),
                        "read": {"$lte": read_at_most},
                    },
                    doc! {"$set": {"max": max.clone(), "size": size}},
                )
                .await?;
            Ok(r.matched_count == 1)
        })
    }

    fn split_point<'a>(
        &'a self,
        range: &'a RangeRecord,
        min_each: i64,
    ) -> BoxFuture<'a, Result<Option<SplitPoint>, Error>> {
        Box::pin(async move {
            let filter = range_filter(&range.min, &range.max, range.after.as_ref());
            let left = self.source.count_documents(filter.clone()).await? as i64;
            if left < 2 * min_each {
                return Ok(None);
            }
            let below = left / 2;
            let at = self
                .source
                .find(filter)
                .sort(doc! {"_id": 1})
                .skip(below as u64)
                .limit(1)
                .projection(doc! {"_id": 1})
                .await?
                .try_next()
                .await?;
            Ok(at.map(|d| SplitPoint {
                at: id_of(&d),
                below,
                from: left - below,
            }))
        })
    }

    fn checkpoint<'a>(
        &'a self,
        id: &'a str,
        me: &'a str,
        last: &'a Bson,
        counts: &'a Counts,
        until: DateTime,
    ) -> BoxFuture<'a, Result<Option<RangeRecord>, Error>> {
        Box::pin(async move {
            let update = checkpoint_update(last, until, counts)?;
            self.update_range(doc! {"_id": id, "owner": me}, update)
                .await
        })
    }

    fn finish<'a>(&'a self, id: &'a str, me: &'a str) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let r = self
                .coll
                .update_one(doc! {"_id": id, "owner": me}, doc! {"$set": {"done": true}})
                .await?;
            Ok(r.matched_count == 1)
        })
    }

    fn renew<'a>(
        &'a self,
        me: &'a str,
        ids: &'a [String],
        until: DateTime,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            self.coll
                .update_many(
                    doc! {"_id": {"$in": ids}, "job": &self.job, "run": self.run(), "kind": "range", "owner": me, "done": false},
                    doc! {"$set": {"expires": until}},
                )
                .await?;
            Ok(())
        })
    }

    fn release<'a>(&'a self, me: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.coll
                .update_many(
                    doc! {"job": &self.job, "run": self.run(), "kind": "range", "owner": me, "done": false},
                    doc! {"$set": {"owner": Bson::Null}},
                )
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> RangeRecord {
        let mut r = RangeRecord::new("j", "r", Bson::MinKey, Bson::Int32(10), 10);
        r.after = Some(Bson::Int32(4));
        r.owner = Some("host/1/ab".into());
        r.expires = Some(DateTime::from_millis(5));
        r.counts.read = 5;
        r
    }

    #[test]
    fn records_round_trip_in_the_stored_shape() {
        let r = range();
        let d = to_document(&r).unwrap();
        assert!(d.get_str("_id").unwrap().starts_with("j/r/"));
        assert_eq!(d.get("min"), Some(&Bson::MinKey));
        assert_eq!(bson::from_document::<RangeRecord>(d).unwrap(), r);
        let mut fresh = r;
        fresh.after = None;
        fresh.owner = None;
        fresh.expires = None;
        let d = to_document(&fresh).unwrap();
        assert!(
            !d.contains_key("after"),
            "no position before the first batch"
        );
        // Unheld is stored as null, so a claim can compare with it.
        assert_eq!(d.get("owner"), Some(&Bson::Null));
        assert_eq!(bson::from_document::<RangeRecord>(d).unwrap(), fresh);
    }

    #[test]
    fn a_checkpoint_increments_the_stored_count_fields() {
        let counts = Counts {
            read: 10,
            changed: 4,
            skipped: 3,
            retried: 1,
            vanished: 1,
            failed: 1,
        };
        let update = checkpoint_update(&Bson::Int32(9), DateTime::from_millis(5), &counts).unwrap();
        assert_eq!(
            update.get_document("$inc").unwrap(),
            &doc! {
                "read": 10_i64, "changed": 4_i64, "skipped": 3_i64,
                "retried": 1_i64, "vanished": 1_i64, "failed": 1_i64,
            }
        );
        // Each `$inc` field is one the range record stores, as a count.
        let stored = to_document(&range()).unwrap();
        for (name, _) in update.get_document("$inc").unwrap() {
            assert!(
                matches!(stored.get(name), Some(Bson::Int64(_))),
                "{name} is not a stored count"
            );
        }
        assert_eq!(
            update.get_document("$set").unwrap().get("after"),
            Some(&Bson::Int32(9))
        );
    }

    #[test]
    fn a_checkpoint_missing_a_field_is_an_error_not_a_default() {
        for field in ["min", "max", "done", "run", "job", "size", "read"] {
            let mut d = to_document(&range()).unwrap();
            d.remove(field);
            assert!(
                bson::from_document::<RangeRecord>(d).is_err(),
                "{field} missing was accepted"
            );
        }
        let mut d = to_document(&range()).unwrap();
        d.insert("done", "yes");
        assert!(bson::from_document::<RangeRecord>(d).is_err());
    }
}
