//! Riding out transient faults: which errors are worth another try, and
//! the jittered exponential backoff within a time budget.
//!
//! A worker that fails transiently restarts its range from its last
//! checkpoint (the transform is idempotent, so a batch done but not
//! checkpointed is found done again); coordination calls are simply
//! repeated. The budget runs from the first failure of a streak and is
//! reset by any progress, so a long job survives many short outages but
//! not one longer than the budget.

use super::Error;
use mongodb::error::ErrorKind;
use std::time::Duration;
// Tokio's clock, so the backoff tests can run on paused time.
use tokio::time::Instant;

/// Server error codes after which the same operation can succeed: the
/// drivers' retryable-read codes (network, primary changes, shutdown,
/// interruptions), `CursorNotFound` (a server restart loses cursors; the
/// worker reopens from its checkpoint) and `ExceededTimeLimit`.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    43,    // CursorNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// The labels that mark an error as worth retrying.
const TRANSIENT_LABELS: &[&str] = &[
    "RetryableWriteError",
    "TransientTransactionError",
    "RetryableError",
    "SystemOverloadedError",
];

/// Whether the driver's error is transient: the network, server
/// selection, a pool cleared after a network error, a retryable label or
/// code.
pub(super) fn is_transient_driver(e: &mongodb::error::Error) -> bool {
    if matches!(
        e.kind.as_ref(),
        ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::ServerSelection { .. }
    ) {
        return true;
    }
    if TRANSIENT_LABELS.iter().any(|l| e.contains_label(l)) {
        return true;
    }
    let code = match e.kind.as_ref() {
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => crate::driver::driver_code(e),
    };
    code.is_some_and(|c| TRANSIENT_CODES.contains(&c))
}

impl Error {
    /// Whether the same work can succeed if tried again shortly.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Server(e) => is_transient_driver(e),
            Error::WriteConcern { details, .. } => details
                .get_i32("code")
                .is_ok_and(|c| TRANSIENT_CODES.contains(&c)),
            Error::Keys(e) => e.driver_error().is_some_and(is_transient_driver),
            _ => false,
        }
    }
}

/// One streak of transient failures.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    started: Option<Instant>,
    attempt: u32,
    retries: u64,
}

/// The first delay and the longest.
const FIRST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(5);

impl Backoff {
    /// Progress was made: the next failure starts a new streak.
    pub(super) fn reset(&mut self) {
        self.started = None;
        self.attempt = 0;
    }

    /// After a transient failure: waits a jittered, exponentially growing
    /// delay, or, when the streak has lasted `budget`, gives up with the
    /// error.
    pub(super) async fn wait(&mut self, budget: Duration, error: Error) -> Result<(), Error> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let elapsed = started.elapsed();
        if elapsed >= budget {
            return Err(Error::GaveUp {
                retries: self.retries,
                seconds: elapsed.as_secs(),
                source: Box::new(error),
            });
        }
        let cap = FIRST
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(LONGEST);
        // Half fixed, half random: processes that failed together do not
        // retry together.
        let delay = cap / 2 + cap.mul_f64(jitter() / 2.0);
        let delay = delay.min(budget.saturating_sub(elapsed));
        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "transient failure, retrying");
        self.attempt += 1;
        self.retries += 1;
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// A fraction in [0, 1) from the OS generator (0.5 if it fails: jitter
/// is a courtesy, not a secret).
fn jitter() -> f64 {
    use rand::TryRng;
    let mut b = [0u8; 4];
    match rand::rngs::SysRng.try_fill_bytes(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Runs `op` until it succeeds, fails for good, or transient failures
/// outlast `budget`; counts the retries into `retries`.
pub(super) async fn retrying<T, F, Fut>(
    budget: Duration,
    retries: &std::sync::atomic::AtomicU64,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut backoff = Backoff::default();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() => {
                backoff.wait(budget, e).await?;
                retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
