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
