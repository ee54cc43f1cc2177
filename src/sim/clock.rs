//! The simulator's one clock: tokio's monotonic (pausable) clock anchored to the wall-clock
//! epoch once, at start.

use std::time::Duration;

use tokio::time::Instant;

/// Epoch time as a [`Duration`] since the Unix epoch, derived from [`tokio::time::Instant`] so
/// that `tokio::time::pause()` / `advance()` drive it in tests.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    /// The tokio instant at which `origin_epoch` was read.
    origin: Instant,
    /// Time since the Unix epoch at `origin`.
    origin_epoch: Duration,
}

impl SimClock {
    /// Anchors the clock to the wall clock, read once here and nowhere else.
    pub fn from_wall_clock() -> Self {
        #[allow(clippy::disallowed_methods)] // the single place wall-clock time enters
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self::anchored(Instant::now(), epoch)
    }

    /// A clock that reads `origin_epoch` at `origin` (for tests).
    pub fn anchored(origin: Instant, origin_epoch: Duration) -> Self {
        Self {
            origin,
            origin_epoch,
        }
    }

    /// Now, as time since the Unix epoch.
    pub fn now(&self) -> Duration {
        self.origin_epoch + self.origin.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_tokio_clock() {
        let clock = SimClock::anchored(Instant::now(), Duration::from_secs(1_800_000_000));
        assert_eq!(clock.now(), Duration::from_secs(1_800_000_000));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), Duration::from_millis(1_800_000_001_500));
    }
}
