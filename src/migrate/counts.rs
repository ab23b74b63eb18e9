//! The six counts of a migration, in the one type every place that keeps
//! them uses: a batch's statistics, this process's totals, a range's
//! checkpoint record and the checkpoint's update.

use serde::{Deserialize, Serialize};

/// Documents by what happened to them.
///
/// A range's checkpoint record stores these fields flat beside its own
/// (`#[serde(flatten)]` in [`RangeRecord`](super::lease::RangeRecord)),
/// and the checkpoint's `$inc` update is this type serialized: the field
/// names are the stored format, shared by every version and process that
/// reads the same checkpoints, so they must never change. In BSON each is
/// an `Int64`, as it always was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Counts {
    /// Documents read.
    pub(super) read: u64,
    /// Documents changed (in a dry run: that would change).
    pub(super) changed: u64,
    /// Documents that already matched the plan.
    pub(super) skipped: u64,
    /// Documents read again after a concurrent change.
    pub(super) retried: u64,
    /// Documents deleted by someone else while being migrated.
    pub(super) vanished: u64,
    /// Documents that could not be migrated.
    pub(super) failed: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        // Saturating: no count comes near 2^64, and one that did would
        // stop at the top rather than wrap or panic.
        self.read = self.read.saturating_add(other.read);
        self.changed = self.changed.saturating_add(other.changed);
        self.skipped = self.skipped.saturating_add(other.skipped);
        self.retried = self.retried.saturating_add(other.retried);
        self.vanished = self.vanished.saturating_add(other.vanished);
        self.failed = self.failed.saturating_add(other.failed);
    }
}

impl std::iter::Sum for Counts {
    fn sum<I: Iterator<Item = Counts>>(iter: I) -> Counts {
        iter.fold(Counts::default(), |mut sum, c| {
            sum += c;
            sum
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: u64) -> Counts {
        Counts {
            read: n,
            changed: n + 1,
            skipped: n + 2,
            retried: n + 3,
            vanished: n + 4,
            failed: n + 5,
        }
    }

    #[test]
    fn adding_adds_each_count_and_saturates() {
        let mut c = counts(10);
        c += counts(100);
        let sum = Counts {
            read: 110,
            changed: 112,
            skipped: 114,
            retried: 116,
            vanished: 118,
            failed: 120,
        };
        assert_eq!(c, sum);
        assert_eq!([counts(10), counts(100)].into_iter().sum::<Counts>(), sum);
        let mut top = Counts {
            read: u64::MAX,
            ..Counts::default()
        };
        top += counts(1);
        assert_eq!((top.read, top.changed), (u64::MAX, 2));
    }

    #[test]
    fn stored_as_int64_under_the_names_checkpoints_have() {
        let d = bson::to_document(&counts(1)).unwrap();
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "read", "changed", "skipped", "retried", "vanished", "failed"
            ]
        );
        assert!(d.values().all(|v| matches!(v, bson::Bson::Int64(_))));
        // A checkpoint written before this type existed reads back.
        let stored = bson::doc! {
            "read": 1_i64, "changed": 2_i64, "skipped": 3_i64,
            "retried": 4_i64, "vanished": 5_i64, "failed": 6_i64,
        };
        assert_eq!(bson::from_document::<Counts>(stored).unwrap(), counts(1));
    }
}
