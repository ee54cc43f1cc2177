//! The clocks of the quota engine: tokio's (pausable) monotonic clock for every decision,
//! and the one function through which wall-clock time enters (to read epoch resets).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Wall-clock time now: the only place Headroom's logic reads it, to turn epoch and
/// HTTP-date headers into waits.
#[allow(clippy::disallowed_methods)] // the single entry point of wall-clock time
pub fn wall_now() -> SystemTime {
    SystemTime::now()
}

/// A `governor` clock that reads tokio's clock, so static limits follow a paused test clock.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// The tokio instant of a reading of this clock.
    pub fn instant(&self, reading: Duration) -> Instant {
        self.origin + reading
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl governor::clock::Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}
