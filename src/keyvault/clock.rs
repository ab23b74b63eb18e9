//! The time the key cache and the key ring expire keys by.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The clock that decides when cached data keys expire: the system's
/// monotonic clock ([`Clock::system`], the default), or a manual clock
/// ([`Clock::manual`]) that moves only when [`advanced`](Clock::advance),
/// so that a test of the time to live does not race the wall clock on a
/// busy machine. Clones share the time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the system clock.
    manual: Option<Arc<ManualTime>>,
}

#[derive(Debug)]
struct ManualTime {
    start: Instant,
    elapsed: Mutex<Duration>,
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock standing still at the moment it is created, until advanced.
    pub fn manual() -> Clock {
        Clock {
            manual: Some(Arc::new(ManualTime {
                start: Instant::now(),
                elapsed: Mutex::new(Duration::ZERO),
            })),
        }
    }

    /// The time now.
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => m.start + *m.elapsed.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock (and its clones) forward by `by`. The system
    /// clock cannot be moved: `false`, and nothing changes.
    pub fn advance(&self, by: Duration) -> bool {
        match &self.manual {
            None => false,
            Some(m) => {
                let mut elapsed = m.elapsed.lock().unwrap_or_else(|p| p.into_inner());
                *elapsed = elapsed.saturating_add(by);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = Clock::manual();
        let t0 = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), t0);
        let other = clock.clone();
        assert!(other.advance(Duration::from_secs(61)));
        assert_eq!(clock.now(), t0 + Duration::from_secs(61));
        assert!(!Clock::system().advance(Duration::from_secs(1)));
    }
}
