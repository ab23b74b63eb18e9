//! Checkpoints: where a job and each of its workers stand, in a collection,
//! so a killed run resumes. One document per job, one per worker range, one
//! per failed document; each written as a typed record and read back
//! strictly (a checkpoint missing a field is an error, not a default).

use super::write::BatchStats;
use super::{Error, FailedDocument, Namespace};
use bson::{Bson, DateTime, Document, doc};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

/// The most failures listed in a summary (all are counted).
const MAX_LISTED_FAILURES: i64 = 1000;

/// The job: which collection, to where, by which plan, and whether it is
/// still running. Written after its workers, so a crash before it leaves
/// nothing that looks resumable.
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
    workers: i64,
    state: String,
    started: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished: Option<DateTime>,
}

/// A worker's share of the `_id` space and where it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct WorkerRecord {
    #[serde(rename = "_id")]
    id: String,
    job: String,
    kind: String,
    pub(super) worker: i64,
    /// Lower bound (exclusive, `MinKey` for the first range).
    pub(super) min: Bson,
    /// Upper bound (inclusive, `MaxKey` for the last range).
    pub(super) max: Bson,
    /// The last `_id` done: work resumes after it. Absent before the first
    /// batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) after: Option<Bson>,
    pub(super) done: bool,
    read: i64,
    changed: i64,
    skipped: i64,
    retried: i64,
    failed: i64,
}

/// A document that could not be migrated, kept for the summary.
#[derive(Debug, Serialize, Deserialize)]
struct FailedRecord {
    job: String,
    kind: String,
    doc: Bson,
    reason: String,
}

/// The checkpoints of one job.
pub(super) struct Checkpoints {
    coll: mongodb::Collection<Document>,
    job: String,
}

fn to_document(record: &impl Serialize) -> Result<Document, Error> {
    bson::to_document(record).map_err(Error::CheckpointEncoding)
}

impl Checkpoints {
    pub(super) fn new(coll: mongodb::Collection<Document>, job: String) -> Self {
        Checkpoints { coll, job }
    }

    fn worker_id(&self, index: i64) -> String {
        format!("{}/{index}", self.job)
    }

    /// The worker ranges of this job when it is running (interrupted): to
    /// resume. `None` when there is no such job or it finished.
    pub(super) async fn running(&self) -> Result<Option<Vec<WorkerRecord>>, Error> {
        let Some(job) = self.coll.find_one(doc! {"_id": &self.job}).await? else {
            return Ok(None);
        };
        let job: JobRecord = bson::from_document(job).map_err(Error::Checkpoint)?;
        if job.state != "running" {
            return Ok(None);
        }
        let records: Vec<Document> = self
            .coll
            .find(doc! {"job": &self.job, "kind": "worker"})
            .sort(doc! {"worker": 1})
            .await?
            .try_collect()
            .await?;
        let workers = records
            .into_iter()
            .map(|d| bson::from_document::<WorkerRecord>(d).map_err(Error::Checkpoint))
            .collect::<Result<Vec<_>, _>>()?;
        // Ranges numbered 0..n with none missing: anything else is not a
        // checkpoint this code wrote, and resuming from it could skip
        // documents.
        if workers.len() as i64 != job.workers
            || workers
                .iter()
                .enumerate()
                .any(|(i, w)| w.worker != i as i64)
        {
            return Err(Error::CheckpointInconsistent {
                job: self.job.clone(),
                expected: job.workers,
                found: workers.len(),
            });
        }
        Ok(Some(workers))
    }

    /// Starts the job over these `_id` bounds (consecutive pairs are the
    /// ranges): earlier checkpoints of the job are removed, the workers
    /// written, then the job.
    pub(super) async fn start(
        &self,
        source: &Namespace,
        target: &Namespace,
        plan: &Document,
        decrypt_unlisted: bool,
        bounds: &[Bson],
    ) -> Result<Vec<WorkerRecord>, Error> {
        self.coll.delete_many(doc! {"job": &self.job}).await?;
        let workers: Vec<WorkerRecord> = bounds
            .windows(2)
            .enumerate()
            .map(|(i, w)| WorkerRecord {
                id: self.worker_id(i as i64),
                job: self.job.clone(),
                kind: "worker".into(),
                worker: i as i64,
                min: w[0].clone(),
                max: w[1].clone(),
                after: None,
                done: false,
                read: 0,
                changed: 0,
                skipped: 0,
                retried: 0,
                failed: 0,
            })
            .collect();
        let docs = workers
            .iter()
            .map(to_document)
            .collect::<Result<Vec<_>, _>>()?;
        self.coll.insert_many(docs).await?;
        let job = JobRecord {
            id: self.job.clone(),
            kind: "job".into(),
            source: source.to_string(),
            target: target.to_string(),
            plan: plan.clone(),
            decrypt_unlisted,
            workers: workers.len() as i64,
            state: "running".into(),
            started: DateTime::now(),
            finished: None,
        };
        self.coll
            .replace_one(doc! {"_id": &self.job}, to_document(&job)?)
            .upsert(true)
            .await?;
        Ok(workers)
    }

    /// Records a finished batch of worker `index`: its failures, then its
    /// position and counts (after the data writes were acknowledged).
    pub(super) async fn batch_done(
        &self,
        index: i64,
        last: &Bson,
        stats: &BatchStats,
    ) -> Result<(), Error> {
        for f in &stats.failed {
            tracing::warn!(job = %self.job, id = %f.id, reason = %f.reason, "document not migrated");
            let record = FailedRecord {
                job: self.job.clone(),
                kind: "failed".into(),
                doc: f.id.clone(),
                reason: f.reason.clone(),
            };
            self.coll
                .replace_one(
                    doc! {"_id": {"job": &self.job, "doc": f.id.clone()}},
                    to_document(&record)?,
                )
                .upsert(true)
                .await?;
        }
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.coll
            .update_one(
                doc! {"_id": self.worker_id(index)},
                doc! {
                    "$set": {"after": last.clone(), "updated": DateTime::now()},
                    "$inc": {
                        "read": n(stats.read),
                        "changed": n(stats.changed),
                        "skipped": n(stats.skipped),
                        "retried": n(stats.retried),
                        "failed": n(stats.failed.len() as u64),
                    },
                },
            )
            .await?;
        Ok(())
    }

    /// Marks worker `index` done.
    pub(super) async fn worker_done(&self, index: i64) -> Result<(), Error> {
        self.coll
            .update_one(
                doc! {"_id": self.worker_id(index)},
                doc! {"$set": {"done": true}},
            )
            .await?;
        Ok(())
    }

    /// Marks the job finished; returns its failures (all runs; at most
    /// 1000 listed) and how many there were.
    pub(super) async fn finish(&self) -> Result<(Vec<FailedDocument>, u64), Error> {
        self.coll
            .update_one(
                doc! {"_id": &self.job},
                doc! {"$set": {"state": "done", "finished": DateTime::now()}},
            )
            .await?;
        let filter = doc! {"job": &self.job, "kind": "failed"};
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> WorkerRecord {
        WorkerRecord {
            id: "j/0".into(),
            job: "j".into(),
            kind: "worker".into(),
            worker: 0,
            min: Bson::MinKey,
            max: Bson::Int32(10),
            after: Some(Bson::Int32(4)),
            done: false,
            read: 5,
            changed: 3,
            skipped: 2,
            retried: 0,
            failed: 0,
        }
    }

    #[test]
    fn records_round_trip_in_the_stored_shape() {
        let d = to_document(&worker()).unwrap();
        assert_eq!(d.get_str("_id").unwrap(), "j/0");
        assert_eq!(d.get("min"), Some(&Bson::MinKey));
        assert_eq!(bson::from_document::<WorkerRecord>(d).unwrap(), worker());
        let mut fresh = worker();
        fresh.after = None;
        let d = to_document(&fresh).unwrap();
        assert!(
            !d.contains_key("after"),
            "no position before the first batch"
        );
        assert_eq!(bson::from_document::<WorkerRecord>(d).unwrap(), fresh);
    }

    #[test]
    fn a_checkpoint_missing_a_field_is_an_error_not_a_default() {
        for field in ["min", "max", "done", "worker", "job"] {
            let mut d = to_document(&worker()).unwrap();
            d.remove(field);
            assert!(
                bson::from_document::<WorkerRecord>(d).is_err(),
                "{field} missing was accepted"
            );
        }
        let mut d = to_document(&worker()).unwrap();
        d.insert("done", "yes");
        assert!(bson::from_document::<WorkerRecord>(d).is_err());
    }
}
