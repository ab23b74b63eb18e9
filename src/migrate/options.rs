//! How a migration runs: [`MigrationOptions`], and the [`Progress`] it
//! reports to.

use crate::analysis::Namespace;
use std::sync::Arc;
use std::time::Duration;

/// Receives progress: the CLI draws an `indicatif` bar with it.
pub trait Progress: Send + Sync {
    /// A phase (`"migrate"`, `"verify"`) begins, over about `total` documents.
    fn start(&self, phase: &str, total: u64);
    /// `n` more documents are done.
    fn advance(&self, n: u64);
    /// The phase is over.
    fn finish(&self);
}

/// How a migration runs: [`Default`] and the `with_*` setters.
///
/// ```
/// # use csfle::migrate::MigrationOptions;
/// let options = MigrationOptions::default().with_workers(8).with_verify(true);
/// assert_eq!((options.workers, options.verify), (8, true));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct MigrationOptions {
    /// Write the migrated documents to this collection instead of in place
    /// (upserts by `_id`; the source is only read).
    pub target: Option<Namespace>,
    /// Where checkpoints live (default: `<source db>.csfle_migrations`).
    pub checkpoint_namespace: Option<Namespace>,
    /// Parallel workers of this process over `_id` ranges (default 4). A
    /// new job is cut into this many ranges; processes that join it (and
    /// workers that run out of work) split the largest ranges left.
    pub workers: usize,
    /// Documents per read batch and per bulk write (default 1000).
    pub batch_size: usize,
    /// Read and transform everything, write nothing (no checkpoints).
    pub dry_run: bool,
    /// Re-read every document afterwards and check it against the plan.
    pub verify: bool,
    /// How often a document changed concurrently is read again and retried
    /// before it is reported as failed (default 10).
    pub max_retries: u32,
    /// How long transient failures (network errors, server restarts,
    /// failovers) are retried, from the first of a streak, before the run
    /// stops (resumable) with [`Error::GaveUp`](super::Error::GaveUp) (default 5 minutes).
    pub max_retry_time: Duration,
    /// How long a range stays this process's without a sign of life
    /// (default 30 s; renewed every third of it). A process that dies
    /// loses its ranges to the others this long after.
    pub lease: Duration,
    /// Progress reporting.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            target: None,
            checkpoint_namespace: None,
            workers: 4,
            batch_size: 1000,
            dry_run: false,
            verify: false,
            max_retries: 10,
            max_retry_time: Duration::from_secs(300),
            lease: Duration::from_secs(30),
            progress: None,
        }
    }
}

impl MigrationOptions {
    /// Sets [`target`](Self::target): write to this collection instead of
    /// in place.
    pub fn with_target(mut self, target: Namespace) -> Self {
        self.target = Some(target);
        self
    }

    /// Sets [`checkpoint_namespace`](Self::checkpoint_namespace).
    pub fn with_checkpoint_namespace(mut self, namespace: Namespace) -> Self {
        self.checkpoint_namespace = Some(namespace);
        self
    }

    /// Sets [`workers`](Self::workers).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets [`batch_size`](Self::batch_size).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`dry_run`](Self::dry_run).
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets [`verify`](Self::verify).
    pub fn with_verify(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Sets [`max_retries`](Self::max_retries).
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets [`max_retry_time`](Self::max_retry_time).
    pub fn with_max_retry_time(mut self, max_retry_time: Duration) -> Self {
        self.max_retry_time = max_retry_time;
        self
    }

    /// Sets [`lease`](Self::lease).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`progress`](Self::progress).
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }
}

impl std::fmt::Debug for MigrationOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationOptions")
            .field("target", &self.target)
            .field("checkpoint_namespace", &self.checkpoint_namespace)
            .field("workers", &self.workers)
            .field("batch_size", &self.batch_size)
            .field("dry_run", &self.dry_run)
            .field("verify", &self.verify)
            .field("max_retries", &self.max_retries)
            .field("max_retry_time", &self.max_retry_time)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}
