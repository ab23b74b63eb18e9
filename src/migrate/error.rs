//! [`Error`], why a migration cannot run. It holds a crate error
//! ([`Error::Keys`]), never the other way round.

use super::summary::MigrationSummary;

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
