//! The quota decision: fixed windows aligned to multiples of the window length since the Unix
//! epoch. Pure: takes the current epoch time, knows nothing of HTTP.

use std::time::Duration;

/// The outcome of one [`FixedWindow::admit`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted (always true without a quota).
    pub allowed: bool,
    /// Requests per window; 0 means no quota.
    pub limit: u32,
    /// Requests still allowed in this window, after this one.
    pub remaining: u32,
    /// Requests admitted in this window, this one included; `used + remaining == limit`.
    pub used: u32,
    /// The window length.
    pub window: Duration,
    /// Start of the window, since the Unix epoch.
    pub window_start: Duration,
    /// End of the window (when the quota resets), since the Unix epoch.
    pub reset_at: Duration,
    /// `reset_at - now`; never zero, since `now` is inside the window.
    pub reset_after: Duration,
}

impl Decision {
    /// Whether the simulator runs without a quota (`--limit 0`).
    pub fn unlimited(&self) -> bool {
        self.limit == 0
    }
}

/// A fixed-window counter. `limit == 0` admits everything (but still counts).
#[derive(Debug, Clone)]
pub struct FixedWindow {
    limit: u32,
    window: Duration,
    /// Start of the current window, once a request has been seen.
    start: Option<Duration>,
    /// Requests admitted in the current window.
    admitted: u32,
    /// A limit that applies from the next window on.
    next_limit: Option<u32>,
}

impl FixedWindow {
    /// `window` should be positive; a zero window is treated as 1 ns.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window: window.max(Duration::from_nanos(1)),
            start: None,
            admitted: 0,
            next_limit: None,
        }
    }

    /// Changes the limit from the next window on (as suppliers do during incidents).
    pub fn set_limit(&mut self, limit: u32) {
        self.next_limit = Some(limit);
    }

    /// Decides on one request arriving at `now` (time since the Unix epoch).
    pub fn admit(&mut self, now: Duration) -> Decision {
        let (mut start, mut end) = window_bounds(now, self.window);
        match self.start {
            // Same window; or `now` went backwards (it cannot with a monotonic clock): stay.
            Some(current) if current >= start => {
                start = current;
                end = current + self.window;
            }
            _ => {
                self.start = Some(start);
                self.admitted = 0;
                if let Some(limit) = self.next_limit.take() {
                    self.limit = limit;
                }
            }
        }
        let allowed = self.limit == 0 || self.admitted < self.limit;
        if allowed {
            self.admitted = self.admitted.saturating_add(1);
        }
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(self.admitted),
            used: self.admitted,
            window: self.window,
            window_start: start,
            reset_at: end,
            reset_after: end.saturating_sub(now),
        }
    }
}

/// The window `[start, end)` holding `now`, aligned to multiples of `window` since the epoch.
pub fn window_bounds(now: Duration, window: Duration) -> (Duration, Duration) {
    let window = window.as_nanos().max(1);
    let start = now.as_nanos() - now.as_nanos() % window;
    (from_nanos(start), from_nanos(start + window))
}

fn from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 1e9, so it fits.
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }
    const fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let cases = [
            // (now, window, start, end)
            (
                ms(1_800_000_000_250),
                secs(1),
                secs(1_800_000_000),
                secs(1_800_000_001),
            ),
            (
                ms(1_800_000_001_000),
                secs(1),
                secs(1_800_000_001),
                secs(1_800_000_002),
            ),
            (
                secs(1_800_000_059),
                secs(60),
                secs(1_800_000_000),
                secs(1_800_000_060),
            ),
            (
                secs(1_800_000_075),
                secs(60),
                secs(1_800_000_060),
                secs(1_800_000_120),
            ),
            (
                ms(1_800_000_000_999),
                ms(250),
                ms(1_800_000_000_750),
                ms(1_800_000_001_000),
            ),
            (
                secs(1_800_000_000),
                secs(10_000_000_000),
                secs(0),
                secs(10_000_000_000),
            ),
        ];
        for (now, window, start, end) in cases {
            assert_eq!(
                window_bounds(now, window),
                (start, end),
                "now {now:?} window {window:?}"
            );
        }
    }

    #[test]
    fn admits_up_to_the_limit_then_rejects_until_the_next_window() {
        let mut quota = FixedWindow::new(3, secs(10));
        let t0 = secs(1_800_000_000);
        let expected = [
            (true, 2, 1),
            (true, 1, 2),
            (true, 0, 3),
            (false, 0, 3),
            (false, 0, 3),
        ];
        for (i, (allowed, remaining, used)) in expected.into_iter().enumerate() {
            let now = t0 + ms(1000 * i as u64 + 500);
            let d = quota.admit(now);
            assert_eq!(
                (d.allowed, d.remaining, d.used),
                (allowed, remaining, used),
                "#{i}"
            );
            assert_eq!(d.reset_at, secs(1_800_000_010));
            assert_eq!(d.reset_after, secs(1_800_000_010) - now);
        }
        // The last instant of the window is still closed.
        let d = quota.admit(secs(1_800_000_010) - Duration::from_nanos(1));
        assert!(!d.allowed);
        assert_eq!(d.reset_after, Duration::from_nanos(1));
        // The first instant of the next window opens it.
        let d = quota.admit(secs(1_800_000_010));
        assert_eq!((d.allowed, d.remaining, d.used), (true, 2, 1));
        assert_eq!(d.window_start, secs(1_800_000_010));
        assert_eq!(d.reset_at, secs(1_800_000_020));
        assert_eq!(d.reset_after, secs(10));
    }

    #[test]
    fn a_new_limit_applies_from_the_next_window() {
        let mut quota = FixedWindow::new(3, secs(10));
        assert!(quota.admit(secs(100)).allowed);
        quota.set_limit(1);
        assert!(
            quota.admit(secs(101)).allowed,
            "this window keeps its limit"
        );
        let d = quota.admit(secs(110));
        assert_eq!((d.allowed, d.limit, d.remaining), (true, 1, 0));
        assert!(!quota.admit(secs(111)).allowed);
    }

    #[test]
    fn skipping_windows_starts_afresh() {
        let mut quota = FixedWindow::new(1, secs(1));
        assert!(quota.admit(secs(100)).allowed);
        assert!(!quota.admit(ms(100_900)).allowed);
        let d = quota.admit(ms(105_300));
        assert!(d.allowed);
        assert_eq!(d.window_start, secs(105));
    }

    #[test]
    fn a_clock_going_backwards_keeps_the_current_window() {
        let mut quota = FixedWindow::new(1, secs(1));
        assert!(quota.admit(ms(2_100)).allowed);
        let d = quota.admit(ms(1_900));
        assert!(!d.allowed);
        assert_eq!(d.reset_at, secs(3));
        assert_eq!(d.reset_after, ms(1_100));
    }

    #[test]
    fn limit_zero_admits_everything_and_counts() {
        let mut quota = FixedWindow::new(0, secs(1));
        for i in 1..=1000 {
            let d = quota.admit(secs(50));
            assert!(d.allowed && d.unlimited());
            assert_eq!((d.used, d.remaining), (i, 0));
        }
    }
}
