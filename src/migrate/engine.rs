//! The migration engine: job and worker checkpoints, `_id`-range workers,
//! batched key resolution, conditional bulk writes, retries, verification.

use super::ranges::{range_filter, type_alias};
use super::{Change, Error, Namespace, Plan};
use crate::client::{ClientEncryption, ResolvedKeys, collect_key_ids};
use crate::explicit::ExplicitEncrypter;
use crate::key::KeyRef;
use bson::{Bson, Document, doc};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The most bytes of write statements sent in one `update` command (the
/// server takes up to 16 MiB of command plus 48 MiB messages; staying well
/// below keeps one large document from failing a whole batch).
const MAX_WRITE_BYTES: usize = 8 * 1024 * 1024;
/// The most failures listed in a summary (all are counted).
const MAX_LISTED_FAILURES: usize = 1000;

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

/// A document the migration could not migrate (left untouched), or one
/// verification found wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedDocument {
    /// Its `_id`.
    pub id: Bson,
    /// Why.
    pub reason: String,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerifySummary {
    /// Documents checked.
    pub checked: u64,
    /// Documents that do not match the plan, do not decrypt, or (copying)
    /// are missing from the target or differ from the source in plaintext.
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

fn failures_json(list: &[FailedDocument]) -> serde_json::Value {
    serde_json::Value::Array(
        list.iter()
            .map(|f| serde_json::json!({"_id": crate::ejson::to_canonical(&f.id), "reason": f.reason}))
            .collect(),
    )
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
        let mut v = serde_json::json!({
            "source": self.source.to_string(),
            "target": self.target.to_string(),
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "workers": self.workers,
            "read": self.read,
            "changed": self.changed,
            "skipped": self.skipped,
            "retried": self.retried,
            "vanished": self.vanished,
            "failed": self.failed_count,
            "failures": failures_json(&self.failed),
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "docs_per_sec": self.docs_per_second().round(),
        });
        if let Some(ver) = &self.verify {
            v["verify"] = serde_json::json!({
                "checked": ver.checked,
                "mismatched": ver.mismatched.len(),
                "mismatches": failures_json(&ver.mismatched),
                "source_count": ver.source_count,
                "target_count": ver.target_count,
            });
        }
        v
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

#[derive(Default)]
struct Stats {
    read: AtomicU64,
    changed: AtomicU64,
    skipped: AtomicU64,
    retried: AtomicU64,
    vanished: AtomicU64,
    failed: AtomicU64,
}

/// One batch's counts, added to the totals and to the worker's checkpoint.
#[derive(Default)]
struct BatchStats {
    read: u64,
    changed: u64,
    skipped: u64,
    retried: u64,
    vanished: u64,
    failed: Vec<FailedDocument>,
}

/// A worker's share of the `_id` space and where it stands.
#[derive(Clone, Debug)]
struct WorkerRange {
    index: usize,
    min: Bson,
    max: Bson,
    after: Option<Bson>,
    done: bool,
}

/// A cursor read in batches of `size` documents.
struct Batches {
    cursor: mongodb::Cursor<Document>,
    size: usize,
}

impl Batches {
    async fn next(&mut self) -> Result<Option<Vec<Document>>, crate::Error> {
        let mut batch = Vec::with_capacity(self.size);
        while batch.len() < self.size {
            match self.cursor.try_next().await.map_err(Error::from)? {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}

struct Ctx {
    source: mongodb::Collection<Document>,
    target: mongodb::Collection<Document>,
    target_db: mongodb::Database,
    in_place: bool,
    plan: Arc<Plan>,
    encryption: Arc<ClientEncryption>,
    options: MigrationOptions,
    checkpoints: mongodb::Collection<Document>,
    job: String,
    stats: Stats,
    failures: Mutex<Vec<FailedDocument>>,
}

fn id_of(doc: &Document) -> Bson {
    doc.get("_id").cloned().unwrap_or(Bson::Null)
}

fn count(reply: &Document, key: &str) -> u64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}

/// A key for maps by `_id` (BSON values are not `Hash`).
fn id_key(id: &Bson) -> String {
    crate::ejson::to_canonical(id).to_string()
}

/// Conditions that hold exactly when the top-level field `name` still
/// holds `was`: equal (`$eq` alone would also match an array containing
/// `was`, and a number of another type), of the same type, and not an
/// array that merely contains it. Plain query operators, so the server can
/// use the `_id` index (some servers scan for `$expr`).
fn unchanged(name: &str, was: &Bson) -> Vec<Bson> {
    let mut c = vec![
        Bson::Document(doc! {name: {"$eq": was.clone()}}),
        Bson::Document(doc! {name: {"$type": type_alias(was)}}),
    ];
    if matches!(was, Bson::Array(_)) {
        c.push(Bson::Document(
            doc! {name: {"$not": {"$elemMatch": {"$eq": was.clone()}}}},
        ));
    }
    c
}

/// The in-place write for a changed document: set only the changed fields,
/// and only if they (and the fields their keys depend on) still hold what
/// was read. Field names a query or `$set` would take as paths (dots, a
/// leading `$`) fall back to replacing the whole document on condition
/// that all of it is unchanged.
fn conditional_update(
    orig: &Document,
    new: &Document,
    fields: &[String],
    depends_on: &[String],
) -> Document {
    let id = id_of(orig);
    let literal = |f: &String| f.contains('.') || f.starts_with('$');
    if fields.iter().chain(depends_on).any(literal) {
        return doc! {
            "q": {"_id": id, "$expr": {"$eq": ["$$ROOT", {"$literal": orig.clone()}]}},
            "u": new.clone(),
            "multi": false,
            "upsert": false,
        };
    }
    let conditions: Vec<Bson> = fields
        .iter()
        .chain(depends_on)
        .flat_map(|f| unchanged(f, orig.get(f).unwrap_or(&Bson::Null)))
        .collect();
    let mut set = Document::new();
    for f in fields {
        set.insert(f.clone(), new.get(f).cloned().unwrap_or(Bson::Null));
    }
    doc! {
        "q": {"_id": id, "$and": conditions},
        "u": {"$set": set},
        "multi": false,
        "upsert": false,
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

    /// Runs the migration (resuming an interrupted run of the same job),
    /// then the verification pass when asked for.
    pub async fn run(&self) -> Result<MigrationSummary, crate::Error> {
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
        let ctx = Arc::new(Ctx {
            source: self
                .client
                .database(&self.source.db)
                .collection(&self.source.coll),
            target: self.client.database(&target.db).collection(&target.coll),
            target_db: self.client.database(&target.db),
            in_place: target == self.source,
            plan: Arc::clone(&self.plan),
            encryption: Arc::clone(&self.encryption),
            options: MigrationOptions {
                batch_size: self.options.batch_size.max(1),
                workers: self.options.workers.max(1),
                ..self.options.clone()
            },
            checkpoints: self
                .client
                .database(&checkpoint_ns.db)
                .collection(&checkpoint_ns.coll),
            job: self.job_id(),
            stats: Stats::default(),
            failures: Mutex::new(Vec::new()),
        });

        let (ranges, resumed) = if ctx.options.dry_run {
            (ctx.split().await?, false)
        } else {
            ctx.load_or_start_job(&self.source, &target).await?
        };
        if let Some(p) = &ctx.options.progress {
            let total = ctx
                .source
                .estimated_document_count()
                .await
                .map_err(Error::from)?;
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
            let r = t.await.map_err(|e| crate::Error::from(Error::Worker(e)));
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
            ctx.finish_job().await?
        };
        let verify = if ctx.options.verify {
            Some(ctx.verify().await?)
        } else {
            None
        };
        let s = &ctx.stats;
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

impl Ctx {
    /// Splits the source's `_id` space into one range per worker, at
    /// evenly spaced `_id`s in sort order.
    async fn split(&self) -> Result<Vec<WorkerRange>, Error> {
        let workers = self.options.workers as u64;
        let n = self.source.count_documents(doc! {}).await?;
        let mut bounds = vec![Bson::MinKey];
        if workers > 1 && n >= workers * 2 {
            for i in 1..workers {
                let at = self
                    .source
                    .find(doc! {})
                    .sort(doc! {"_id": 1})
                    .skip(n * i / workers)
                    .limit(1)
                    .projection(doc! {"_id": 1})
                    .await?
                    .try_next()
                    .await?;
                if let Some(d) = at {
                    let id = id_of(&d);
                    if bounds.last() != Some(&id) {
                        bounds.push(id);
                    }
                }
            }
        }
        bounds.push(Bson::MaxKey);
        Ok(bounds
            .windows(2)
            .enumerate()
            .map(|(index, w)| WorkerRange {
                index,
                min: w[0].clone(),
                max: w[1].clone(),
                after: None,
                done: false,
            })
            .collect())
    }

    fn worker_id(&self, index: usize) -> String {
        format!("{}/{index}", self.job)
    }

    /// The ranges of the running job with this identity, or a new job.
    async fn load_or_start_job(
        &self,
        source: &Namespace,
        target: &Namespace,
    ) -> Result<(Vec<WorkerRange>, bool), Error> {
        let job = self.checkpoints.find_one(doc! {"_id": &self.job}).await?;
        if job.is_some_and(|j| j.get_str("state") == Ok("running")) {
            let mut ranges = Vec::new();
            let mut cursor = self
                .checkpoints
                .find(doc! {"job": &self.job, "kind": "worker"})
                .sort(doc! {"worker": 1})
                .await?;
            while let Some(w) = cursor.try_next().await? {
                ranges.push(WorkerRange {
                    index: ranges.len(),
                    min: w.get("min").cloned().unwrap_or(Bson::MinKey),
                    max: w.get("max").cloned().unwrap_or(Bson::MaxKey),
                    after: w.get("after").cloned(),
                    done: w.get_bool("done").unwrap_or(false),
                });
            }
            tracing::info!(job = %self.job, workers = ranges.len(), "resuming migration");
            return Ok((ranges, true));
        }
        // A new job (or a finished one run again: documents that already
        // match the plan are skipped). The job document is written last, so
        // a crash before it leaves nothing that looks resumable.
        self.checkpoints
            .delete_many(doc! {"job": &self.job})
            .await?;
        let ranges = self.split().await?;
        let workers: Vec<Document> = ranges
            .iter()
            .map(|r| {
                doc! {
                    "_id": self.worker_id(r.index),
                    "job": &self.job,
                    "kind": "worker",
                    "worker": r.index as i64,
                    "min": r.min.clone(),
                    "max": r.max.clone(),
                    "done": false,
                    "read": 0i64, "changed": 0i64, "skipped": 0i64, "retried": 0i64, "failed": 0i64,
                }
            })
            .collect();
        self.checkpoints.insert_many(workers).await?;
        self.checkpoints
            .replace_one(
                doc! {"_id": &self.job},
                doc! {
                    "_id": &self.job,
                    "kind": "job",
                    "source": source.to_string(),
                    "target": target.to_string(),
                    "plan": self.plan.schema().clone(),
                    "decryptUnlisted": self.plan.decrypt_unlisted(),
                    "workers": ranges.len() as i64,
                    "state": "running",
                    "started": bson::DateTime::now(),
                },
            )
            .upsert(true)
            .await?;
        Ok((ranges, false))
    }

    /// Marks the job finished; returns its failures (all runs).
    async fn finish_job(&self) -> Result<(Vec<FailedDocument>, u64), Error> {
        self.checkpoints
            .update_one(
                doc! {"_id": &self.job},
                doc! {"$set": {"state": "done", "finished": bson::DateTime::now()}},
            )
            .await?;
        let filter = doc! {"job": &self.job, "kind": "failed"};
        let n = self.checkpoints.count_documents(filter.clone()).await?;
        let list: Vec<Document> = self
            .checkpoints
            .find(filter)
            .limit(MAX_LISTED_FAILURES as i64)
            .await?
            .try_collect()
            .await?;
        let list = list
            .into_iter()
            .map(|d| FailedDocument {
                id: d.get("doc").cloned().unwrap_or(Bson::Null),
                reason: d.get_str("reason").unwrap_or_default().to_owned(),
            })
            .collect();
        Ok((list, n))
    }

    /// The source documents matching `filter`, in `_id` order, in batches.
    async fn batches(&self, filter: Document) -> Result<Batches, crate::Error> {
        let size = self.options.batch_size;
        let cursor = self
            .source
            .find(filter)
            .sort(doc! {"_id": 1})
            .batch_size(u32::try_from(size).unwrap_or(u32::MAX))
            .await
            .map_err(Error::from)?;
        Ok(Batches { cursor, size })
    }

    async fn worker(&self, range: WorkerRange) -> Result<(), crate::Error> {
        let filter = range_filter(&range.min, &range.max, range.after.as_ref());
        let mut batches = self.batches(filter).await?;
        while let Some(batch) = batches.next().await? {
            let last = batch.last().map(id_of).unwrap_or(Bson::Null);
            let stats = self.process(batch).await?;
            self.checkpoint(range.index, &last, stats).await?;
        }
        if !self.options.dry_run {
            self.checkpoints
                .update_one(
                    doc! {"_id": self.worker_id(range.index)},
                    doc! {"$set": {"done": true}},
                )
                .await
                .map_err(Error::from)?;
        }
        Ok(())
    }

    /// Records a finished batch: totals, failures, then the worker's
    /// position (after the data writes were acknowledged).
    async fn checkpoint(
        &self,
        worker: usize,
        last: &Bson,
        stats: BatchStats,
    ) -> Result<(), crate::Error> {
        let s = &self.stats;
        s.read.fetch_add(stats.read, Ordering::Relaxed);
        s.changed.fetch_add(stats.changed, Ordering::Relaxed);
        s.skipped.fetch_add(stats.skipped, Ordering::Relaxed);
        s.retried.fetch_add(stats.retried, Ordering::Relaxed);
        s.vanished.fetch_add(stats.vanished, Ordering::Relaxed);
        s.failed
            .fetch_add(stats.failed.len() as u64, Ordering::Relaxed);
        if let Some(p) = &self.options.progress {
            p.advance(stats.read);
        }
        if self.options.dry_run {
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(stats.failed);
            return Ok(());
        }
        for f in &stats.failed {
            tracing::warn!(job = %self.job, id = %f.id, reason = %f.reason, "document not migrated");
            self.checkpoints
                .replace_one(
                    doc! {"_id": {"job": &self.job, "doc": f.id.clone()}},
                    doc! {"job": &self.job, "kind": "failed", "doc": f.id.clone(), "reason": &f.reason},
                )
                .upsert(true)
                .await
                .map_err(Error::from)?;
        }
        self.checkpoints
            .update_one(
                doc! {"_id": self.worker_id(worker)},
                doc! {
                    "$set": {"after": last.clone(), "updated": bson::DateTime::now()},
                    "$inc": {
                        "read": stats.read as i64,
                        "changed": stats.changed as i64,
                        "skipped": stats.skipped as i64,
                        "retried": stats.retried as i64,
                        "failed": stats.failed.len() as i64,
                    },
                },
            )
            .await
            .map_err(Error::from)?;
        Ok(())
    }

    /// The keys for each document: one key-vault query for the batch;
    /// when that fails (a key is missing), one per document, so only the
    /// documents that need the missing key fail.
    async fn keys_for(
        &self,
        docs: &[Document],
        refs_of: impl Fn(&Document) -> Vec<KeyRef>,
    ) -> Vec<Result<Arc<ResolvedKeys>, String>> {
        let per_doc: Vec<Vec<KeyRef>> = docs.iter().map(&refs_of).collect();
        let mut all: Vec<KeyRef> = Vec::new();
        for r in per_doc.iter().flatten() {
            if !all.contains(r) {
                all.push(r.clone());
            }
        }
        if all.is_empty() {
            return docs
                .iter()
                .map(|_| Ok(Arc::new(ResolvedKeys::default())))
                .collect();
        }
        if let Ok(keys) = self.encryption.resolved(&all).await {
            let keys = Arc::new(keys);
            return docs.iter().map(|_| Ok(Arc::clone(&keys))).collect();
        }
        let mut out = Vec::with_capacity(docs.len());
        for refs in per_doc {
            out.push(
                self.encryption
                    .resolved(&refs)
                    .await
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
            );
        }
        out
    }

    /// Applies the plan to each document on the blocking pool.
    async fn prepare(
        &self,
        docs: Vec<Document>,
    ) -> Result<Vec<(Document, Result<Change, String>)>, crate::Error> {
        let plan = Arc::clone(&self.plan);
        let keys = self.keys_for(&docs, |d| plan.keys_for(d)).await;
        let plan = Arc::clone(&self.plan);
        tokio::task::spawn_blocking(move || {
            docs.into_iter()
                .zip(keys)
                .map(|(d, k)| {
                    let change = k.and_then(|k| plan.apply(&d, &*k).map_err(|e| e.to_string()));
                    (d, change)
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Worker(e).into())
    }

    /// Migrates one batch; documents changed concurrently are read again
    /// and retried.
    async fn process(&self, docs: Vec<Document>) -> Result<BatchStats, crate::Error> {
        let mut stats = BatchStats {
            read: docs.len() as u64,
            ..Default::default()
        };
        let mut pending = docs;
        let mut attempt = 0;
        while !pending.is_empty() {
            let prepared = self.prepare(pending).await?;
            let mut writes: Vec<(Bson, Document)> = Vec::new();
            for (orig, change) in prepared {
                let id = id_of(&orig);
                match change {
                    Err(reason) => stats.failed.push(FailedDocument { id, reason }),
                    Ok(Change::Unchanged) => {
                        if attempt == 0 {
                            stats.skipped += 1;
                        } else {
                            // Read again after an unmatched write: our write
                            // had landed (or someone else did the same).
                            stats.changed += 1;
                        }
                        if !self.in_place && !self.options.dry_run {
                            writes.push((
                                id.clone(),
                                doc! {"q": {"_id": id}, "u": orig, "upsert": true, "multi": false},
                            ));
                        }
                    }
                    Ok(Change::Changed {
                        document,
                        fields,
                        depends_on,
                    }) => {
                        if attempt > 0 {
                            // Changed by someone else since it was read.
                            stats.retried += 1;
                        }
                        if self.options.dry_run {
                            stats.changed += 1;
                        } else if self.in_place {
                            writes.push((
                                id,
                                conditional_update(&orig, &document, &fields, &depends_on),
                            ));
                        } else {
                            stats.changed += 1;
                            writes.push((id.clone(), doc! {"q": {"_id": id}, "u": document, "upsert": true, "multi": false}));
                        }
                    }
                }
            }
            if writes.is_empty() {
                break;
            }
            let unmatched = self.write(writes, &mut stats).await?;
            if unmatched.is_empty() {
                break;
            }
            attempt += 1;
            // Read the unmatched documents again: gone, done, or changed
            // by someone else (then the plan is applied to the new version).
            let current: Vec<Document> = self
                .target
                .find(doc! {"_id": {"$in": unmatched.clone()}})
                .await
                .map_err(Error::from)?
                .try_collect()
                .await
                .map_err(Error::from)?;
            stats.vanished += (unmatched.len() - current.len()) as u64;
            if attempt > self.options.max_retries {
                for d in current {
                    stats.failed.push(FailedDocument {
                        id: id_of(&d),
                        reason: format!(
                            "changed concurrently on each of {} attempts",
                            self.options.max_retries + 1
                        ),
                    });
                }
                break;
            }
            pending = current;
        }
        Ok(stats)
    }

    /// Sends the writes as unordered bulk `update`s. Returns the `_id`s
    /// that may not have matched (in place, when fewer matched than sent).
    async fn write(
        &self,
        writes: Vec<(Bson, Document)>,
        stats: &mut BatchStats,
    ) -> Result<Vec<Bson>, crate::Error> {
        let mut unmatched = Vec::new();
        let mut chunk: Vec<(Bson, Document)> = Vec::new();
        let mut bytes = 0;
        let mut iter = writes.into_iter().peekable();
        while let Some((id, stmt)) = iter.next() {
            bytes += bson::to_vec(&stmt).map(|v| v.len()).unwrap_or(0);
            chunk.push((id, stmt));
            if bytes >= MAX_WRITE_BYTES || iter.peek().is_none() {
                bytes = 0;
                let sent = std::mem::take(&mut chunk);
                unmatched.extend(self.write_chunk(sent, stats).await?);
            }
        }
        Ok(unmatched)
    }

    async fn write_chunk(
        &self,
        chunk: Vec<(Bson, Document)>,
        stats: &mut BatchStats,
    ) -> Result<Vec<Bson>, crate::Error> {
        let (ids, stmts): (Vec<Bson>, Vec<Document>) = chunk.into_iter().unzip();
        let reply = self
            .target_db
            .run_command(doc! {
                "update": self.target.name(),
                "updates": stmts,
                "ordered": false,
                "writeConcern": {"w": "majority"},
            })
            .await
            .map_err(Error::from)?;
        let mut errored = vec![false; ids.len()];
        if let Ok(errors) = reply.get_array("writeErrors") {
            for e in errors.iter().filter_map(Bson::as_document) {
                let i = e
                    .get_i32("index")
                    .ok()
                    .and_then(|i| usize::try_from(i).ok());
                if let Some(i) = i.filter(|i| *i < ids.len()) {
                    errored[i] = true;
                    stats.failed.push(FailedDocument {
                        id: ids[i].clone(),
                        reason: format!(
                            "write error {}: {}",
                            e.get_i32("code").unwrap_or_default(),
                            e.get_str("errmsg").unwrap_or("unknown")
                        ),
                    });
                }
            }
        }
        if let Ok(wce) = reply.get_document("writeConcernError") {
            return Err(Error::WriteConcern {
                message: wce.get_str("errmsg").unwrap_or("unknown").to_owned(),
                details: wce.clone(),
            }
            .into());
        }
        let expected = errored.iter().filter(|e| !**e).count() as u64;
        let matched = count(&reply, "n");
        if !self.in_place || matched >= expected {
            if self.in_place {
                stats.changed += expected;
            }
            return Ok(Vec::new());
        }
        // Some conditional writes did not match; which ones is found by
        // reading them again.
        Ok(ids
            .into_iter()
            .zip(errored)
            .filter(|(_, e)| !e)
            .map(|(id, _)| id)
            .collect())
    }

    /// Re-reads every source document and checks its migrated version.
    async fn verify(&self) -> Result<VerifySummary, crate::Error> {
        let source_count = self
            .source
            .count_documents(doc! {})
            .await
            .map_err(Error::from)?;
        let target_count = self
            .target
            .count_documents(doc! {})
            .await
            .map_err(Error::from)?;
        if let Some(p) = &self.options.progress {
            p.start("verify", source_count);
        }
        let mut summary = VerifySummary {
            source_count,
            target_count,
            ..Default::default()
        };
        let mut batches = self.batches(doc! {}).await?;
        while let Some(batch) = batches.next().await? {
            let n = batch.len() as u64;
            let bad = self.verify_batch(batch).await?;
            summary.checked += n;
            summary.mismatched.extend(bad);
            if let Some(p) = &self.options.progress {
                p.advance(n);
            }
        }
        if let Some(p) = &self.options.progress {
            p.finish();
        }
        Ok(summary)
    }

    async fn verify_batch(
        &self,
        sources: Vec<Document>,
    ) -> Result<Vec<FailedDocument>, crate::Error> {
        // The migrated version of each source document.
        let migrated: Vec<Option<Document>> = if self.in_place {
            sources.iter().cloned().map(Some).collect()
        } else {
            let ids: Vec<Bson> = sources.iter().map(id_of).collect();
            let found: Vec<Document> = self
                .target
                .find(doc! {"_id": {"$in": ids}})
                .await
                .map_err(Error::from)?
                .try_collect()
                .await
                .map_err(Error::from)?;
            let mut by_id: HashMap<String, Document> =
                found.into_iter().map(|d| (id_key(&id_of(&d)), d)).collect();
            sources
                .iter()
                .map(|s| by_id.remove(&id_key(&id_of(s))))
                .collect()
        };
        let plan = Arc::clone(&self.plan);
        let in_place = self.in_place;
        let pairs: Vec<(Document, Option<Document>)> = sources.into_iter().zip(migrated).collect();
        let docs: Vec<Document> = pairs
            .iter()
            .map(|(s, m)| {
                // Keys for the plan, for every ciphertext of the migrated
                // version, and (copying) of the source.
                let mut d = doc! {"m": m.clone().unwrap_or_default()};
                if !in_place {
                    d.insert("s", s.clone());
                }
                d
            })
            .collect();
        let keys = self
            .keys_for(&docs, |d| {
                let m = d.get_document("m").cloned().unwrap_or_default();
                let mut refs = plan.keys_for(&m);
                let _ = collect_key_ids(&Bson::Document(d.clone()), &mut refs);
                refs
            })
            .await;
        let plan = Arc::clone(&self.plan);
        tokio::task::spawn_blocking(move || {
            let mut bad = Vec::new();
            for ((source, migrated), keys) in pairs.into_iter().zip(keys) {
                let id = id_of(&source);
                let Some(migrated) = migrated else {
                    bad.push(FailedDocument {
                        id,
                        reason: "missing from the target".into(),
                    });
                    continue;
                };
                let check = || -> Result<(), String> {
                    let keys = keys?;
                    match plan.apply(&migrated, &*keys).map_err(|e| e.to_string())? {
                        Change::Unchanged => {}
                        Change::Changed { fields, .. } => {
                            return Err(format!("does not match the plan: {}", fields.join(", ")));
                        }
                    }
                    let enc = ExplicitEncrypter::new(&*keys);
                    let plain = enc
                        .decrypt_document(&migrated)
                        .map_err(|e| format!("does not decrypt: {e}"))?;
                    if !in_place {
                        let was = enc
                            .decrypt_document(&source)
                            .map_err(|e| format!("source does not decrypt: {e}"))?;
                        if was != plain {
                            return Err("plaintext differs from the source".into());
                        }
                    }
                    Ok(())
                };
                if let Err(reason) = check() {
                    bad.push(FailedDocument { id, reason });
                }
            }
            bad
        })
        .await
        .map_err(|e| Error::Worker(e).into())
    }
}
