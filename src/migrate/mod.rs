//! Collection migration: encrypt, re-encrypt or decrypt every document of a
//! collection to match a plan, safely.
//!
//! * **Plan**: a `$jsonSchema` (a schema-map entry) says which fields end up
//!   encrypted with which key and algorithm ([`Plan`]). Values already
//!   encrypted with any key in the vault are decrypted first, so plaintext →
//!   encrypted, old key → new key, deterministic ↔ random and encrypted →
//!   plaintext all work. An encrypted field the plan does not name stays
//!   as it is unless `decrypt_unlisted`.
//! * **Safety**: in place, each write is conditional on the changed fields
//!   (and the fields their keys are named by) still holding the values that
//!   were read, and only those fields are set, so concurrent application
//!   writes are never overwritten; a document changed in between is read
//!   again and retried. Per-worker checkpoints in a collection make a
//!   killed run resumable: the transform is idempotent (a value already
//!   under the target key and algorithm is left alone), so documents
//!   written but not yet checkpointed are simply found done on the rerun.
//!   Copying to another collection upserts by `_id`, equally idempotent.
//! * **Throughput**: workers over `_id` ranges (type-aware bounds), a
//!   streaming cursor each, keys fetched once per batch (through the
//!   cache), encryption on the blocking pool, unordered bulk `update`s.
//!
//! ```no_run
//! # async fn run(client: mongodb::Client, encryption: csfle::ClientEncryption, schema: bson::Document) -> Result<(), Box<dyn std::error::Error>> {
//! use csfle::analysis::Namespace;
//! use csfle::migrate::{Migration, MigrationOptions, Plan};
//! let plan = Plan::from_schema(&schema, false)?;
//! let migration = Migration::new(client, Namespace::parse("hr.people")?, plan, encryption, MigrationOptions::default());
//! let summary = migration.run().await?;
//! println!("{} changed, {} failed", summary.changed, summary.failed.len());
//! # Ok(()) }
//! ```

mod checkpoint;
mod counts;
mod job;
mod keys;
mod lease;
mod options;
mod plan;
mod preflight;
// `pub(crate)`: the benchmark hooks (`crate::__private::range_filter`)
// reach `range_filter` here.
pub(crate) mod ranges;
mod retry;
mod run;
mod summary;
mod verify;
mod worker;
mod write;

pub use job::Migration;
pub use options::{MigrationOptions, Progress};
pub use plan::{Change, DocumentError, Plan};
pub use summary::{FailedDocument, JobTotals, MigrationSummary, VerifySummary};

/// Why a migration cannot run (per-document problems are not errors: they
/// are reported in [`MigrationSummary::failed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plan's schema is not a valid encryption schema.
    #[error("migration plan: {0}")]
    Plan(#[source] crate::schema::Error),
    /// The server failed a read, a write or a checkpoint. The driver's
    /// error is kept whole (codes, labels).
    #[error("server error during migration: {0}")]
    Server(#[source] Box<mongodb::error::Error>),
    /// The server could not satisfy the write concern of a batch.
    #[error("server error during migration: write concern error: {message}")]
    WriteConcern {
        /// The server's message.
        message: String,
        /// The whole `writeConcernError` document.
        details: Box<bson::Document>,
    },
    /// A checkpoint in the checkpoint collection that this version cannot
    /// read (a field missing or of the wrong type): resuming from it could
    /// skip documents, so the run stops.
    #[error("unreadable migration checkpoint: {0}")]
    Checkpoint(#[source] bson::de::Error),
    /// A checkpoint that cannot be written as BSON.
    #[error("cannot write migration checkpoint: {0}")]
    CheckpointEncoding(#[source] bson::ser::Error),
    /// The range checkpoints of a running job do not match the job (some
    /// missing).
    #[error("migration job {job}: expected {expected} range checkpoints, found {found}")]
    CheckpointInconsistent {
        /// The job id.
        job: String,
        /// Ranges the job recorded.
        expected: i64,
        /// Range checkpoints found.
        found: usize,
    },
    /// A check before the first document was touched failed: the plan's
    /// keys cannot be fetched or unwrapped, a namespace is unusable, or
    /// every sampled document fails the plan for the same reason. Nothing
    /// was written.
    #[error("migration preflight: {reason}")]
    Preflight {
        /// What is wrong, and with what.
        reason: String,
    },
    /// The key vault or KMS failed for a whole batch (not a key missing for
    /// some documents): the run stops rather than failing every document.
    #[error("migration keys: {0}")]
    Keys(#[source] Box<crate::Error>),
    /// The data keys of a batch whose documents name keys by alternate
    /// name (`keyId` pointers) failed; the names, the documents' data, are
    /// redacted from the message.
    #[error("data keys: {0}")]
    KeysOfDocuments(String),
    /// Transient failures (network, server restarts, failovers) went on
    /// longer than the retry budget. The job's checkpoints are intact:
    /// running the same migration again resumes it.
    #[error(
        "gave up after {retries} retries over {seconds} s of transient failures (the last: {source}); the job is resumable: run the same migration again"
    )]
    GaveUp {
        /// Retries of the streak that ran out.
        retries: u64,
        /// How long the streak lasted.
        seconds: u64,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },
    /// A task of the migration panicked or was cancelled.
    #[error("migration worker failed: {0}")]
    Worker(#[source] tokio::task::JoinError),
    /// A worker failed after the run had started (`error`, shown as this
    /// error's text): this process's other workers were stopped and its
    /// leases let go, so other processes take its ranges over at once; the
    /// job's checkpoints are intact and running the same migration again
    /// resumes it. `summary` is what this process did until then (job
    /// totals and failures as far as they could still be read).
    #[error("{error}")]
    Stopped {
        /// What stopped the run.
        error: Box<Error>,
        /// This process's work until it stopped.
        summary: Box<MigrationSummary>,
    },
}

impl From<mongodb::error::Error> for Error {
    fn from(e: mongodb::error::Error) -> Self {
        Error::Server(Box::new(e))
    }
}

impl Error {
    /// The driver's error, when the server failed a read, a write or a
    /// checkpoint (also when that stopped the run): its code, labels and
    /// retryability. A migration error is not a [`crate::Error`] (it holds
    /// one, [`Error::Keys`]), so this is where its driver error is read.
    pub fn driver_error(&self) -> Option<&mongodb::error::Error> {
        match self {
            Error::Server(e) => Some(&**e),
            Error::Stopped { error, .. } => match &**error {
                Error::Server(e) => Some(&**e),
                _ => None,
            },
            _ => None,
        }
    }
}

// A `db.collection` name: the one namespace type of csfle, at home in
// `analysis`.
use crate::analysis::Namespace;

/// Each of `docs` as `plan` wants it (a document already matching the plan
/// as it is), or why it cannot be: what importing into an encrypted
/// collection does to every document. The keys are fetched once for the
/// batch (one per document only when one is missing, so only the
/// documents that need it fail); a key vault or KMS failure is the batch's
/// error. The plan's rules apply: plaintext in an encrypted field is
/// encrypted, a ciphertext already under the field's key and algorithm is
/// kept byte for byte (never encrypted twice).
pub async fn conform(
    encryption: &crate::ClientEncryption,
    plan: &Plan,
    docs: Vec<bson::Document>,
) -> Result<Vec<Result<bson::Document, String>>, Error> {
    let keys = keys::batch_keys(encryption, &docs, |d| plan.keys_for(d)).await?;
    Ok(docs
        .into_iter()
        .zip(keys)
        .map(|(d, k)| {
            let k = k?;
            match plan.apply(&d, &*k).map_err(|e| e.to_string())? {
                Change::Unchanged => Ok(d),
                Change::Changed { document, .. } => Ok(document),
            }
        })
        .collect())
}
