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
mod tests {
    use super::*;
    use mongodb::error::{CommandError, Error as DriverError};

    fn command(code: i32) -> Error {
        let c: CommandError = bson::from_document(bson::doc! {"code": code}).unwrap();
        let e: DriverError = ErrorKind::Command(c).into();
        Error::Server(Box::new(e))
    }

    #[test]
    fn transient_and_permanent_errors() {
        let io: DriverError =
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "unexpected end of file").into();
        assert!(Error::Server(Box::new(io)).is_transient());
        for code in [91, 10107, 11600, 189, 43, 9001] {
            assert!(command(code).is_transient(), "{code}");
        }
        for code in [2, 11000, 13, 121] {
            assert!(!command(code).is_transient(), "{code}");
        }
        assert!(
            Error::WriteConcern {
                message: "shutting down".into(),
                details: Box::new(bson::doc! {"code": 91}),
            }
            .is_transient()
        );
        assert!(!Error::Preflight { reason: "x".into() }.is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_with_jitter_and_gives_up_after_the_budget() {
        let budget = Duration::from_secs(20);
        let mut b = Backoff::default();
        let start = tokio::time::Instant::now();
        let mut delays = Vec::new();
        let mut last = start;
        let outcome = loop {
            match b.wait(budget, command(91)).await {
                Ok(()) => {
                    let now = tokio::time::Instant::now();
                    delays.push(now - last);
                    last = now;
                }
                Err(e) => break e,
            }
            // The budget is wall time from the streak's start.
            if start.elapsed() > Duration::from_secs(60) {
                panic!("never gave up");
            }
        };
        assert!(delays[0] >= FIRST / 2 && delays[0] <= FIRST);
        assert!(delays[3] >= FIRST * 4 && delays[3] <= FIRST * 8);
        assert!(delays.iter().all(|d| *d <= LONGEST));
        assert!(matches!(outcome, Error::GaveUp { .. }), "{outcome}");
        b.reset();
        assert!(b.wait(budget, command(91)).await.is_ok());
    }

    /// What one transient failure costs a run: the first delay (at most
    /// `FIRST`, a tenth of a second), not seconds; with no budget
    /// (`--max-retry-seconds 0`) the first failure gives up at once.
    #[tokio::test(start_paused = true)]
    async fn one_transient_failure_costs_at_most_a_tenth_of_a_second() {
        let retries = std::sync::atomic::AtomicU64::new(0);
        let mut failures_left = 1;
        let start = tokio::time::Instant::now();
        let value = retrying(Duration::from_secs(300), &retries, || {
            let fail = failures_left > 0;
            failures_left -= 1;
            async move { if fail { Err(command(10107)) } else { Ok(7) } }
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(retries.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(start.elapsed() <= FIRST, "{:?}", start.elapsed());
        // Five in a row: at most 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s.
        let mut failures_left = 5;
        let start = tokio::time::Instant::now();
        retrying(Duration::from_secs(300), &retries, || {
            let fail = failures_left > 0;
            failures_left -= 1;
            async move { if fail { Err(command(91)) } else { Ok(()) } }
        })
        .await
        .unwrap();
        assert!(start.elapsed() <= FIRST * 31, "{:?}", start.elapsed());
        // No budget: no wait, no retry.
        let start = tokio::time::Instant::now();
        let outcome = retrying(Duration::ZERO, &retries, || async {
            Err::<(), _>(command(91))
        })
        .await;
        assert!(matches!(outcome, Err(Error::GaveUp { retries: 0, .. })));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
