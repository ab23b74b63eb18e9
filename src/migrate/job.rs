//! A migration job: its identity (which checkpoints it resumes), and the
//! run that starts the workers, waits for all of them, then verifies.

use super::checkpoint::{Checkpoints, JobIdentity};
use super::lease::{JobStore, MemoryStore, RangeRecord, SystemClock, later, owner_id};
use super::options::MigrationOptions;
use super::plan::Plan;
use super::run::{RunState, Totals};
use super::summary::{FailedDocument, JobTotals, MigrationSummary, VerifySummary};
use super::write::WriteMode;
use super::{Error, Namespace};
use crate::client::ClientEncryption;
use bson::doc;
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

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
    ///
    /// A `client` whose monitor polls (`serverMonitoringMode=poll`, as the
    /// CLI's) gets past a "not primary" or "shutting down" reply at once;
    /// with the driver's default streaming monitor each such retry waits
    /// for the monitor's next heartbeat (up to 10 s).
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

    /// Runs the migration (joining a run of the same job that is going
    /// on: an interrupted one, or other processes'), then the verification
    /// pass when asked for (by the one process that finishes the run).
    pub async fn run(&self) -> Result<MigrationSummary, Error> {
        let started = Instant::now();
        let target = self.target();
        let checkpoint_ns = self.checkpoint_namespace();
        // A dry run records nothing: its ranges live in memory.
        let memory = Arc::new(MemoryStore::new(Vec::new()));
        let state = Arc::new(self.run_state(&target, &checkpoint_ns, &memory));

        // Nothing is written before this passes.
        state
            .preflight(&self.source, &target, &checkpoint_ns)
            .await?;

        let resumed = self.join_or_start(&state, &target, &memory).await?;
        if let Some(p) = &state.options.progress {
            let total = state
                .retrying(|| async { Ok(state.source.estimated_document_count().await?) })
                .await?;
            p.start("migrate", total);
        }
        if let Err(error) = run_workers(&state).await {
            return Err(self.stopped(&state, error, target, resumed, started).await);
        }
        self.finish(&state, target, resumed, started).await
    }

    /// Where the checkpoints live: as set, or `<source db>.csfle_migrations`.
    fn checkpoint_namespace(&self) -> Namespace {
        self.options
            .checkpoint_namespace
            .clone()
            .unwrap_or(Namespace {
                db: self.source.db.clone(),
                coll: "csfle_migrations".into(),
            })
    }

    /// The options a run goes by: at least one worker and one document a
    /// batch, and a lease of at least 100 ms.
    fn run_options(&self) -> MigrationOptions {
        MigrationOptions {
            batch_size: self.options.batch_size.max(1),
            workers: self.options.workers.max(1),
            lease: self.options.lease.max(Duration::from_millis(100)),
            ..self.options.clone()
        }
    }

    /// This process's state for a run to `target`: the collections, the
    /// checkpoints in `checkpoint_ns` (or, for a dry run, the ranges in
    /// `memory`), this process as lease owner, empty totals.
    fn run_state(
        &self,
        target: &Namespace,
        checkpoint_ns: &Namespace,
        memory: &Arc<MemoryStore>,
    ) -> RunState {
        let options = self.run_options();
        let mode = if options.dry_run {
            WriteMode::DryRun
        } else if *target == self.source {
            WriteMode::InPlace
        } else {
            WriteMode::Copy
        };
        let source = self
            .client
            .database(&self.source.db)
            .collection(&self.source.coll);
        let checkpoints = (mode != WriteMode::DryRun).then(|| {
            Arc::new(Checkpoints::new(
                self.client
                    .database(&checkpoint_ns.db)
                    .collection(&checkpoint_ns.coll),
                source.clone(),
                self.job_id(),
            ))
        });
        let store: Arc<dyn JobStore> = match &checkpoints {
            Some(c) => c.clone(),
            None => memory.clone(),
        };
        RunState {
            client: self.client.clone(),
            source,
            target: self.client.database(&target.db).collection(&target.coll),
            target_db: self.client.database(&target.db),
            mode,
            plan: Arc::clone(&self.plan),
            encryption: Arc::clone(&self.encryption),
            options,
            checkpoints,
            store,
            clock: Arc::new(SystemClock),
            me: owner_id(),
            totals: Totals::default(),
            failures: Mutex::new(Vec::new()),
            working: Mutex::new(Vec::new()),
            range_ended: tokio::sync::Notify::new(),
        }
    }

    /// Joins the job's run that is going on, or starts a new one over the
    /// source cut into ranges; whether it joined one. A dry run always
    /// starts anew, its ranges in `memory`.
    async fn join_or_start(
        &self,
        state: &RunState,
        target: &Namespace,
        memory: &MemoryStore,
    ) -> Result<bool, Error> {
        match &state.checkpoints {
            Some(c) => {
                let identity = JobIdentity {
                    source: &self.source,
                    target,
                    plan: self.plan.schema(),
                    decrypt_unlisted: self.plan.decrypt_unlisted(),
                };
                state
                    .retrying(|| c.join_or_start(&state.me, &identity, || state.split()))
                    .await
            }
            None => {
                // A dry run cuts the ranges anew and keeps them in memory.
                let ranges = state.retrying(|| state.split()).await?;
                let records = ranges
                    .into_iter()
                    .map(|(min, max, size)| RangeRecord::new("dry-run", "dry-run", min, max, size))
                    .collect();
                *memory.ranges.lock().unwrap_or_else(|p| p.into_inner()) = records;
                Ok(false)
            }
        }
    }

    /// After every worker finished: marks the run finished (exactly one
    /// process does), reads the job's failures and totals, verifies when
    /// asked for and this process finished the run, and sums it all up.
    async fn finish(
        &self,
        state: &RunState,
        target: Namespace,
        resumed: bool,
        started: Instant,
    ) -> Result<MigrationSummary, Error> {
        let (failed, failed_count, finisher, processes) = match &state.checkpoints {
            None => {
                let (list, n) = dry_run_failures(state);
                (list, n, true, 1)
            }
            Some(c) => {
                let finisher = state.retrying(|| c.finish_run()).await?;
                let (list, n) = state.retrying(|| c.failures()).await?;
                let processes = state.retrying(|| c.owners()).await?;
                (list, n, finisher, processes)
            }
        };
        let ranges = state.retrying(|| state.store.ranges()).await?;
        let job = JobTotals::of(&ranges, processes);
        let verify = if state.options.verify && finisher {
            Some(verification(state).await?)
        } else {
            None
        };
        Ok(MigrationSummary {
            finished_run: finisher,
            job,
            failed,
            failed_count,
            verify,
            ..self.summary(state, target, resumed, started)
        })
    }

    /// This process's summary as of now, without the job's totals, the
    /// failures and verification (left empty).
    fn summary(
        &self,
        state: &RunState,
        target: Namespace,
        resumed: bool,
        started: Instant,
    ) -> MigrationSummary {
        let c = state.totals.counts();
        MigrationSummary {
            source: self.source.clone(),
            target,
            dry_run: state.options.dry_run,
            resumed,
            workers: state.options.workers,
            read: c.read,
            changed: c.changed,
            skipped: c.skipped,
            retried: c.retried,
            vanished: c.vanished,
            transient_retries: state.totals.transient_retries.load(Ordering::Relaxed),
            ranges_worked: state.totals.ranges_worked.load(Ordering::Relaxed),
            ranges_taken_over: state.totals.ranges_taken_over.load(Ordering::Relaxed),
            owner: state.me.clone(),
            finished_run: false,
            job: JobTotals::default(),
            failed: Vec::new(),
            failed_count: c.failed,
            seconds: started.elapsed().as_secs_f64(),
            verify: None,
        }
    }

    /// After a worker failed (its siblings already stopped): lets go of
    /// this process's leases, so another process takes its ranges over now
    /// rather than a lease later, and reads what it can of the job for the
    /// summary. Both are attempted once, within [`WRAP_UP`]: the server may
    /// be what failed, and then the leases simply run out.
    async fn stopped(
        &self,
        state: &RunState,
        error: Error,
        target: Namespace,
        resumed: bool,
        started: Instant,
    ) -> Error {
        tracing::warn!(error = %error, "a worker failed: the run stops (resumable)");
        let mut summary = self.summary(state, target, resumed, started);
        let wrap_up = async {
            if let Err(e) = state.store.release(&state.me).await {
                tracing::warn!(error = %e, "could not release the leases; they run out instead");
            }
            let (failed, processes) = match &state.checkpoints {
                None => (Ok(dry_run_failures(state)), Ok(1)),
                Some(c) => (c.failures().await, c.owners().await),
            };
            (failed, processes, state.store.ranges().await)
        };
        match tokio::time::timeout(WRAP_UP, wrap_up).await {
            Ok((failed, processes, ranges)) => {
                if let Ok((list, n)) = failed {
                    summary.failed = list;
                    summary.failed_count = n;
                }
                if let (Ok(ranges), Ok(processes)) = (ranges, processes) {
                    summary.job = JobTotals::of(&ranges, processes);
                }
            }
            Err(_) => {
                tracing::warn!(
                    "the server did not answer while stopping; the leases run out instead"
                );
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        Error::Stopped {
            error: Box::new(error),
            summary: Box::new(summary),
        }
    }
}

/// How long a stopping run spends letting go of its leases and reading
/// the job for its summary.
const WRAP_UP: Duration = Duration::from_secs(5);

/// A dry run's failures (kept in memory), and how many.
fn dry_run_failures(state: &RunState) -> (Vec<FailedDocument>, u64) {
    let list = state
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let n = list.len() as u64;
    (list, n)
}

/// The verification pass. Its progress bar is cleared on success (by the
/// pass); on an error too, so the message starts on a line of its own.
async fn verification(state: &RunState) -> Result<VerifySummary, Error> {
    let verified = state.verify().await;
    if verified.is_err()
        && let Some(p) = &state.options.progress
    {
        p.finish();
    }
    verified
}

/// Runs this process's workers, with the heartbeat that keeps their
/// leases, until all are done or one failed (then the others are stopped:
/// [`join_workers`]).
async fn run_workers(state: &Arc<RunState>) -> Result<(), Error> {
    let renewals = tokio::spawn(heartbeat(Arc::clone(state)));
    let mut workers = JoinSet::new();
    for _ in 0..state.options.workers {
        let state = Arc::clone(state);
        workers.spawn(async move { state.worker().await });
    }
    let outcome = join_workers(&mut workers).await;
    // Awaited after the abort: the heartbeat no longer runs when the
    // leases are let go after a failure (a renewal already sent finds them
    // ownerless, and changes nothing).
    renewals.abort();
    let _ = renewals.await;
    if let Some(p) = &state.options.progress {
        p.finish();
    }
    outcome
}

/// The heartbeat: the leases of the ranges this process's workers are on
/// renewed every third of their length, until aborted. A failed renewal is
/// logged; the next one, or the workers' own checkpoints, renew again. A
/// range held but not worked on (its claim's reply lost) is not renewed:
/// it runs out, and is claimed again.
async fn heartbeat(state: Arc<RunState>) {
    let every = state.options.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let until = later(state.clock.now(), state.options.lease);
        let working = state.working();
        if let Err(e) = state.store.renew(&state.me, &working, until).await {
            tracing::warn!(error = %e, "lease renewal failed");
        }
    }
}

/// Waits for every worker. The first to fail (a panic included) stops the
/// others at once: left running, they would wait for ever for the failed
/// worker's range, whose lease this process's heartbeat keeps renewing.
/// Stopping a worker at any await is safe for the same reasons a killed
/// process is: each write is conditional and idempotent, the checkpoint
/// follows the write, and a split inserts its new range before shrinking
/// the old one.
async fn join_workers(workers: &mut JoinSet<Result<(), Error>>) -> Result<(), Error> {
    let mut first_error = None;
    while let Some(joined) = workers.join_next().await {
        let outcome = match joined {
            Ok(outcome) => outcome,
            // A sibling stopped below.
            Err(e) if e.is_cancelled() && first_error.is_some() => continue,
            Err(e) => Err(Error::Worker(e)),
        };
        if let Err(e) = outcome
            && first_error.is_none()
        {
            first_error = Some(e);
            workers.abort_all();
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers that never finish by themselves, like ones waiting for a
    /// range held by a failed sibling.
    fn stuck(workers: &mut JoinSet<Result<(), Error>>, n: usize) {
        for _ in 0..n {
            workers.spawn(std::future::pending::<Result<(), Error>>());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_failed_worker_stops_the_others() {
        let mut workers = JoinSet::new();
        stuck(&mut workers, 3);
        workers.spawn(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err(Error::Preflight {
                reason: "boom".into(),
            })
        });
        let outcome =
            tokio::time::timeout(Duration::from_secs(60), join_workers(&mut workers)).await;
        match outcome {
            Ok(Err(Error::Preflight { reason })) => assert_eq!(reason, "boom"),
            other => panic!("expected the worker's error, got {other:?}"),
        }
        assert!(workers.is_empty(), "every worker stopped and joined");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicked_worker_stops_the_others() {
        let mut workers = JoinSet::new();
        stuck(&mut workers, 2);
        workers.spawn(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            std::hint::black_box(Option::<()>::None).expect("a worker bug");
            Ok(())
        });
        let outcome =
            tokio::time::timeout(Duration::from_secs(60), join_workers(&mut workers)).await;
        assert!(
            matches!(outcome, Ok(Err(Error::Worker(ref e))) if e.is_panic()),
            "{outcome:?}"
        );
        assert!(workers.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn workers_that_all_finish_are_ok() {
        let mut workers = JoinSet::new();
        for i in 0..4u64 {
            workers.spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * i)).await;
                Ok(())
            });
        }
        assert!(join_workers(&mut workers).await.is_ok());
    }
}
