//! A migration job: its options, its identity (which checkpoints it
//! resumes), and the run that starts the workers, waits for all of them,
//! then verifies.

use super::checkpoint::Checkpoints;
use super::worker::{Ctx, Totals, WorkerRange};
use super::write::WriteMode;
use super::{Error, MigrationSummary, Namespace, Plan};
use crate::client::ClientEncryption;
use bson::{Bson, doc};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Receives progress: the CLI draws an `indicatif` bar with it.
pub trait Progress: Send + Sync {
    /// A phase (`"migrate"`, `"verify"`) begins, over about `total` documents.
    fn start(&self, phase: &str, total: u64);
    /// `n` more documents are done.
    fn advance(&self, n: u64);
    /// The phase is over.
    fn finish(&self);
}

/// How a migration runs.
#[derive(Clone)]
pub struct MigrationOptions {
    /// Write the migrated documents to this collection instead of in place
    /// (upserts by `_id`; the source is only read).
    pub target: Option<Namespace>,
    /// Where checkpoints live (default: `<source db>.csfle_migrations`).
    pub checkpoint_namespace: Option<Namespace>,
    /// Parallel workers over `_id` ranges (default 4). A resumed job keeps
    /// the ranges it started with.
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
            progress: None,
        }
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
            .finish_non_exhaustive()
    }
}

/// A migration of one collection to a plan.
pub struct Migration {
    client: mongodb::Client,
    source: Namespace,
    plan: Arc<Plan>,
    encryption: Arc<ClientEncryption>,
    options: MigrationOptions,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("source", &self.source)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Migration {
    /// A migration of `source` to `plan`, with keys from `encryption` (by
    /// value or shared).
    pub fn new(
        client: mongodb::Client,
        source: Namespace,
        plan: Plan,
        encryption: impl Into<Arc<ClientEncryption>>,
        options: MigrationOptions,
    ) -> Self {
        Migration {
            client,
            source,
            plan: Arc::new(plan),
            encryption: encryption.into(),
            options,
        }
    }

    fn target(&self) -> Namespace {
        self.options
            .target
            .clone()
            .unwrap_or_else(|| self.source.clone())
    }

    /// The job's identity: the same source, target and plan resume the
    /// same checkpoints; anything else is a different job.
    fn job_id(&self) -> String {
        let identity = doc! {
            "source": self.source.to_string(),
            "target": self.target().to_string(),
            "plan": self.plan.schema().clone(),
            "decryptUnlisted": self.plan.decrypt_unlisted(),
        };
        let digest = Sha256::digest(crate::ejson::to_canonical_line(&identity).as_bytes());
        digest[..12].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The worker ranges: those of an interrupted run of this job, or new
    /// ones (a dry run always splits anew and records nothing). Whether the
    /// job resumes.
    async fn ranges(
        &self,
        ctx: &Ctx,
        target: &Namespace,
    ) -> Result<(Vec<WorkerRange>, bool), Error> {
        let range = |index: usize, min: Bson, max: Bson, after, done| WorkerRange {
            index: index as i64,
            min,
            max,
            after,
            done,
        };
        if ctx.mode == WriteMode::DryRun {
            let bounds = ctx.split().await?;
            let ranges = bounds
                .windows(2)
                .enumerate()
                .map(|(i, w)| range(i, w[0].clone(), w[1].clone(), None, false))
                .collect();
            return Ok((ranges, false));
        }
        if let Some(workers) = ctx.checkpoints.running().await? {
            tracing::info!(source = %self.source, workers = workers.len(), "resuming migration");
            let ranges = workers
                .into_iter()
                .enumerate()
                .map(|(i, w)| range(i, w.min, w.max, w.after, w.done))
                .collect();
            return Ok((ranges, true));
        }
        // A new job (or a finished one run again: documents that already
        // match the plan are skipped).
        let bounds = ctx.split().await?;
        let workers = ctx
            .checkpoints
            .start(
                &self.source,
                target,
                self.plan.schema(),
                self.plan.decrypt_unlisted(),
                &bounds,
            )
            .await?;
        let ranges = workers
            .into_iter()
            .enumerate()
            .map(|(i, w)| range(i, w.min, w.max, w.after, w.done))
            .collect();
        Ok((ranges, false))
    }

    /// Runs the migration (resuming an interrupted run of the same job),
    /// then the verification pass when asked for.
    pub async fn run(&self) -> Result<MigrationSummary, Error> {
        let started = Instant::now();
        let target = self.target();
        let checkpoint_ns = self
            .options
            .checkpoint_namespace
            .clone()
            .unwrap_or(Namespace {
                db: self.source.db.clone(),
                coll: "csfle_migrations".into(),
            });
        let options = MigrationOptions {
            batch_size: self.options.batch_size.max(1),
            workers: self.options.workers.max(1),
            ..self.options.clone()
        };
        let mode = if options.dry_run {
            WriteMode::DryRun
        } else if target == self.source {
            WriteMode::InPlace
        } else {
            WriteMode::Copy
        };
        let ctx = Arc::new(Ctx {
            source: self
                .client
                .database(&self.source.db)
                .collection(&self.source.coll),
            target: self.client.database(&target.db).collection(&target.coll),
            target_db: self.client.database(&target.db),
            mode,
            plan: Arc::clone(&self.plan),
            encryption: Arc::clone(&self.encryption),
            options,
            checkpoints: Checkpoints::new(
                self.client
                    .database(&checkpoint_ns.db)
                    .collection(&checkpoint_ns.coll),
                self.job_id(),
            ),
            totals: Totals::default(),
            failures: Mutex::new(Vec::new()),
        });

        let (ranges, resumed) = self.ranges(&ctx, &target).await?;
        if let Some(p) = &ctx.options.progress {
            let total = ctx.source.estimated_document_count().await?;
            p.start("migrate", total);
        }
        let mut tasks = Vec::new();
        for range in ranges.iter().filter(|r| !r.done).cloned() {
            let ctx = Arc::clone(&ctx);
            tasks.push(tokio::spawn(async move { ctx.worker(range).await }));
        }
        // Every worker is awaited even when one fails, so none is left
        // writing behind a returned error.
        let mut first_error = None;
        for t in tasks {
            let r = t.await.map_err(Error::Worker);
            if let Err(e) | Ok(Err(e)) = r {
                first_error.get_or_insert(e);
            }
        }
        if let Some(p) = &ctx.options.progress {
            p.finish();
        }
        if let Some(e) = first_error {
            return Err(e);
        }

        let (failed, failed_count) = if ctx.options.dry_run {
            let list = ctx
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let n = list.len() as u64;
            (list, n)
        } else {
            ctx.checkpoints.finish().await?
        };
        let verify = if ctx.options.verify {
            Some(ctx.verify().await?)
        } else {
            None
        };
        let s = &ctx.totals;
        Ok(MigrationSummary {
            source: self.source.clone(),
            target,
            dry_run: ctx.options.dry_run,
            resumed,
            workers: ranges.len(),
            read: s.read.load(Ordering::Relaxed),
            changed: s.changed.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            retried: s.retried.load(Ordering::Relaxed),
            vanished: s.vanished.load(Ordering::Relaxed),
            failed,
            failed_count,
            seconds: started.elapsed().as_secs_f64(),
            verify,
        })
    }
}
