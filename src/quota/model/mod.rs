//! The quota models a [`Tracker`](crate::quota::tracker::Tracker) composes, one a file, each
//! pure (every call takes the current instant; nothing sleeps, does I/O or draws random
//! numbers): a leaky bucket ([`bucket`]) and what a supplier that speaks only on 429 tells
//! ([`silent`]). The window of requests that quota headers announce is the tracker's own.

pub mod bucket;
pub mod silent;

use std::time::Duration;

use tokio::time::Instant;

/// Farthest ahead any instant computed here lies. Every wait is capped far below it (by
/// `retry.max_delay` or the parser's `max_wait`); this only keeps `Instant` arithmetic on
/// values from outside from ever overflowing.
const HORIZON: Duration = Duration::from_secs(366 * 24 * 3600);

/// `now + by`, never panicking: `by` is capped at a year ahead.
pub fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by.min(HORIZON)).unwrap_or(now)
}

/// Why a request may not go yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Not before this instant.
    Until(Instant),
    /// Not before an in-flight request's response (or failure) tells more.
    Response,
}
