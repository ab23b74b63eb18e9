//! What a migration reports: per-document failures, the verification pass,
//! the run's totals, and their one-line JSON form (the CLI's output).

use super::Namespace;
use bson::Bson;
use serde::Serialize;

/// A document the migration could not migrate (left untouched), or one
/// verification found wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FailedDocument {
    /// Its `_id` (in JSON: canonical Extended JSON).
    #[serde(rename = "_id", serialize_with = "canonical")]
    pub id: Bson,
    /// Why.
    pub reason: String,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VerifySummary {
    /// Documents checked.
    pub checked: u64,
    /// Documents that do not match the plan, do not decrypt, or (copying)
    /// are missing from the target or differ from the source in plaintext.
    #[serde(rename = "mismatches")]
    pub mismatched: Vec<FailedDocument>,
    /// Documents in the source at the end.
    pub source_count: u64,
    /// Documents in the target at the end.
    pub target_count: u64,
}

/// What the whole job has done, over every process that shared it (this
/// run's ranges). Near a takeover or a split two workers can briefly work
/// on the same documents: the data is written once (conditional writes),
/// but such a document can be counted by both (`read`, and `changed` when
/// each saw it change), so these totals are at least, not exactly, the
/// collection's size.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct JobTotals {
    /// Ranges of the run (the first cut plus splits).
    pub ranges: usize,
    /// Processes that joined the run.
    pub processes: usize,
    /// Documents read.
    pub read: u64,
    /// Documents changed.
    pub changed: u64,
    /// Documents that already matched the plan.
    pub skipped: u64,
    /// Documents read again after a concurrent change.
    pub retried: u64,
    /// Documents deleted while being migrated.
    pub vanished: u64,
    /// Documents that could not be migrated.
    pub failed: u64,
}

/// What a migration did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MigrationSummary {
    /// The source collection.
    pub source: Namespace,
    /// Where documents were written (the source, in place).
    pub target: Namespace,
    /// Nothing was written.
    pub dry_run: bool,
    /// This process joined a run already going on: an interrupted one, or
    /// one other processes are working on.
    pub resumed: bool,
    /// This process's workers.
    pub workers: usize,
    /// This process as a lease owner (host/pid/random).
    pub owner: String,
    /// Ranges this process's workers claimed or split off.
    pub ranges_worked: u64,
    /// Of those, ranges taken over from a process whose lease ran out.
    pub ranges_taken_over: u64,
    /// Transient failures ridden out by retrying (network errors, server
    /// restarts, failovers).
    pub transient_retries: u64,
    /// This process marked the run finished (and verified, when asked).
    pub finished_run: bool,
    /// The whole job's totals, all processes together.
    pub job: JobTotals,
    /// Documents read by this process.
    pub read: u64,
    /// Documents changed (with `dry_run`: that would change).
    pub changed: u64,
    /// Documents that already matched the plan.
    pub skipped: u64,
    /// Documents read again and rewritten after a concurrent change.
    pub retried: u64,
    /// Documents deleted by someone else while being migrated.
    pub vanished: u64,
    /// Documents that could not be migrated, with reasons (the whole run's,
    /// all processes and interrupted attempts included; at most 1000
    /// listed).
    pub failed: Vec<FailedDocument>,
    /// How many documents failed in all.
    pub failed_count: u64,
    /// Wall time of this run, verification included.
    pub seconds: f64,
    /// The verification pass, when asked for (run by the process that
    /// finished the run).
    pub verify: Option<VerifySummary>,
}

fn canonical<S: serde::Serializer>(id: &Bson, s: S) -> Result<S::Ok, S::Error> {
    crate::ejson::to_canonical(id).serialize(s)
}

/// The JSON line: the summary's fields, with counts where the summary
/// holds lists and the lists beside them.
#[derive(Serialize)]
struct Report<'a> {
    source: String,
    target: String,
    dry_run: bool,
    resumed: bool,
    owner: &'a str,
    workers: usize,
    ranges_worked: u64,
    ranges_taken_over: u64,
    read: u64,
    changed: u64,
    skipped: u64,
    retried: u64,
    vanished: u64,
    transient_retries: u64,
    failed: u64,
    failures: &'a [FailedDocument],
    finished_run: bool,
    job: &'a JobTotals,
    seconds: f64,
    docs_per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<VerifyReport<'a>>,
}

#[derive(Serialize)]
struct VerifyReport<'a> {
    mismatched: usize,
    #[serde(flatten)]
    summary: &'a VerifySummary,
}

impl MigrationSummary {
    /// Documents read per second.
    pub fn docs_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.read as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The summary as one JSON object (`_id`s in canonical Extended JSON).
    pub fn to_json(&self) -> serde_json::Value {
        let report = Report {
            source: self.source.to_string(),
            target: self.target.to_string(),
            dry_run: self.dry_run,
            resumed: self.resumed,
            owner: &self.owner,
            workers: self.workers,
            ranges_worked: self.ranges_worked,
            ranges_taken_over: self.ranges_taken_over,
            read: self.read,
            changed: self.changed,
            skipped: self.skipped,
            retried: self.retried,
            vanished: self.vanished,
            transient_retries: self.transient_retries,
            failed: self.failed_count,
            failures: &self.failed,
            finished_run: self.finished_run,
            job: &self.job,
            seconds: (self.seconds * 1000.0).round() / 1000.0,
            docs_per_sec: self.docs_per_second().round(),
            verify: self.verify.as_ref().map(|v| VerifyReport {
                mismatched: v.mismatched.len(),
                summary: v,
            }),
        };
        // Plain data: serializing it to a JSON value cannot fail.
        serde_json::to_value(report).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_shape() {
        let failure = FailedDocument {
            id: Bson::Int32(7),
            reason: "bad".into(),
        };
        let mut s = MigrationSummary {
            source: Namespace::new("a", "b"),
            target: Namespace::new("a", "c"),
            dry_run: false,
            resumed: true,
            workers: 2,
            owner: "h/1/ab".into(),
            ranges_worked: 3,
            ranges_taken_over: 1,
            transient_retries: 4,
            finished_run: true,
            job: JobTotals {
                ranges: 5,
                processes: 2,
                read: 20,
                ..Default::default()
            },
            read: 10,
            changed: 4,
            skipped: 5,
            retried: 1,
            vanished: 0,
            failed: vec![failure.clone()],
            failed_count: 1,
            seconds: 2.0,
            verify: None,
        };
        assert_eq!(
            s.to_json(),
            serde_json::json!({
                "source": "a.b", "target": "a.c", "dry_run": false, "resumed": true,
                "owner": "h/1/ab", "workers": 2, "ranges_worked": 3, "ranges_taken_over": 1,
                "read": 10, "changed": 4, "skipped": 5, "retried": 1,
                "vanished": 0, "transient_retries": 4, "failed": 1,
                "failures": [{"_id": {"$numberInt": "7"}, "reason": "bad"}],
                "finished_run": true,
                "job": {"ranges": 5, "processes": 2, "read": 20, "changed": 0,
                        "skipped": 0, "retried": 0, "vanished": 0, "failed": 0},
                "seconds": 2.0, "docs_per_sec": 5.0,
            })
        );
        s.verify = Some(VerifySummary {
            checked: 10,
            mismatched: vec![failure],
            source_count: 10,
            target_count: 9,
        });
        assert_eq!(
            s.to_json()["verify"],
            serde_json::json!({
                "checked": 10, "mismatched": 1,
                "mismatches": [{"_id": {"$numberInt": "7"}, "reason": "bad"}],
                "source_count": 10, "target_count": 9,
            })
        );
    }
}
