//! What a migration reports: per-document failures, the verification pass,
//! the run's totals, and their one-line JSON form (the CLI's output).

use super::Namespace;
use bson::Bson;
use serde::Serialize;

/// A document the migration could not migrate (left untouched), or one
/// verification found wrong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedDocument {
    /// Its `_id` (in JSON: canonical Extended JSON).
    #[serde(rename = "_id", serialize_with = "canonical")]
    pub id: Bson,
    /// Why.
    pub reason: String,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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

/// What a migration did.
#[derive(Clone, Debug, PartialEq)]
pub struct MigrationSummary {
    /// The source collection.
    pub source: Namespace,
    /// Where documents were written (the source, in place).
    pub target: Namespace,
    /// Nothing was written.
    pub dry_run: bool,
    /// This run continued an interrupted job.
    pub resumed: bool,
    /// Worker ranges.
    pub workers: usize,
    /// Documents read by this run.
    pub read: u64,
    /// Documents changed (with `dry_run`: that would change).
    pub changed: u64,
    /// Documents that already matched the plan.
    pub skipped: u64,
    /// Documents read again and rewritten after a concurrent change.
    pub retried: u64,
    /// Documents deleted by someone else while being migrated.
    pub vanished: u64,
    /// Documents that could not be migrated, with reasons (this job's,
    /// interrupted runs included; at most 1000 listed).
    pub failed: Vec<FailedDocument>,
    /// How many documents failed in all.
    pub failed_count: u64,
    /// Wall time of this run, verification included.
    pub seconds: f64,
    /// The verification pass, when asked for.
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
    workers: usize,
    read: u64,
    changed: u64,
    skipped: u64,
    retried: u64,
    vanished: u64,
    failed: u64,
    failures: &'a [FailedDocument],
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
            workers: self.workers,
            read: self.read,
            changed: self.changed,
            skipped: self.skipped,
            retried: self.retried,
            vanished: self.vanished,
            failed: self.failed_count,
            failures: &self.failed,
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
                "workers": 2, "read": 10, "changed": 4, "skipped": 5, "retried": 1,
                "vanished": 0, "failed": 1,
                "failures": [{"_id": {"$numberInt": "7"}, "reason": "bad"}],
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
