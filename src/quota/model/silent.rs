//! Suppliers that speak only on 429 (`Retry-After` alone, no quota headers): the limit is
//! what succeeded in the window before the 429, and the window runs from one announced end
//! to the next.

use std::time::Duration;

use tokio::time::Instant;

/// A supplier that has answered this many requests without a quota header or a 429 is taken
/// to have no quota: the one-at-a-time probing of a silent supplier stops.
const PROBE_SUCCESSES: u64 = 200;

/// The counting of one window of a silent supplier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inference {
    /// Start of the window being counted (first request, then each announced window end).
    window_start: Option<Instant>,
    /// Whether `window_start` is a real window boundary (an announced end) rather than the
    /// first request, which may fall anywhere in the supplier's window.
    boundary: bool,
    /// Successful responses in that window.
    successes: u64,
}

/// What one 429 taught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    /// Requests per window: the successes counted before it.
    pub limit: Option<u64>,
    /// The window's length.
    pub window: Option<Duration>,
}

impl Inference {
    /// Counting from `start`; `boundary` when it is a real window start (an announced end).
    #[must_use]
    pub fn from(start: Instant, boundary: bool) -> Self {
        Self {
            window_start: Some(start),
            boundary,
            successes: 0,
        }
    }

    /// A request was sent at `now` (the first one starts the count).
    pub fn sent(&mut self, now: Instant) {
        self.window_start.get_or_insert(now);
    }

    /// A request succeeded.
    pub fn succeeded(&mut self) {
        self.successes += 1;
    }

    /// Whether anything succeeded in this window yet.
    pub fn any_succeeded(&self) -> bool {
        self.successes > 0
    }

    /// Whether requests still go one at a time (no 429 has shown a limit, and not so many
    /// succeeded that the supplier seems to have none).
    pub fn still_probing(&self) -> bool {
        self.successes < PROBE_SUCCESSES
    }

    /// What a 429 that announced the window's end at `end` teaches. `guessed` is the window
    /// start this count guessed (an inferred length, not confirmed), `window` the length
    /// believed so far.
    #[must_use]
    pub fn learn(
        &self,
        end: Instant,
        guessed: Option<Instant>,
        window: Option<Duration>,
    ) -> Learned {
        let counted = self.successes;
        let start = self.window_start.filter(|_| self.boundary);
        let window = match (start, guessed) {
            // A whole window, from an announced end to this one.
            (Some(start), _) if counted > 0 => {
                Some(end.saturating_duration_since(start)).filter(|w| !w.is_zero())
            }
            // The probe at a guessed window start met the old window: the window is longer
            // than guessed by as much as its real end is later than the guess.
            (None, Some(guess)) => {
                window.map(|w| w.saturating_add(end.saturating_duration_since(guess)))
            }
            _ => None,
        };
        Learned {
            limit: (counted > 0).then_some(counted),
            window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_window_from_one_announced_end_to_the_next() {
        let t0 = Instant::now();
        let mut counting = Inference::from(t0, true);
        for _ in 0..7 {
            counting.succeeded();
        }
        let learned = counting.learn(t0 + 60 * S, None, None);
        assert_eq!(
            learned,
            Learned {
                limit: Some(7),
                window: Some(60 * S)
            }
        );
    }

    #[test]
    fn a_count_from_the_first_request_learns_the_limit_only() {
        let t0 = Instant::now();
        let mut counting = Inference::default();
        counting.sent(t0);
        counting.sent(t0 + S);
        counting.succeeded();
        let learned = counting.learn(t0 + 30 * S, None, None);
        assert_eq!(learned.limit, Some(1));
        assert_eq!(learned.window, None, "the first request is no window start");
    }

    #[test]
    fn a_probe_that_meets_the_old_window_lengthens_the_guess() {
        let t0 = Instant::now();
        let counting = Inference::default();
        let learned = counting.learn(t0 + 15 * S, Some(t0 + 10 * S), Some(50 * S));
        assert_eq!(learned.window, Some(55 * S));
        assert_eq!(learned.limit, None);
    }
}
