//! A leaky bucket (`used/size`, Shopify's REST convention): each request adds one unit, the
//! bucket leaks at a rate estimated from successive observations, and a request goes while
//! one unit is free.

use std::time::Duration;

use tokio::time::Instant;

use crate::quota::model::{later, Wait};

/// Leak rate assumed until two observations measure it (Shopify's REST rate).
const DEFAULT_LEAK_PER_SEC: f64 = 2.0;
/// Slowest leak rate believed (one request per 10 s).
pub const MIN_LEAK_PER_SEC: f64 = 0.1;
/// Highest leak rate believed, in bucket sizes per second: one odd pair of observations
/// (a bucket that "drained" a billion units) must not open the gates.
const MAX_LEAK_SIZES_PER_SEC: f64 = 10.0;
/// Observations closer together than this measure no leak (the count is too coarse).
const MIN_MEASURE_SECS: f64 = 0.5;

/// A bucket level as last observed, with the estimated leak rate.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    used: f64,
    size: u64,
    at: Instant,
    leak_per_sec: f64,
    /// Responses observed since `at` (each added one unit before leaking).
    added_since: u64,
}

impl Bucket {
    /// The bucket after an answer said `used` of `size` at `now`; `previous` is the bucket
    /// as it was (its level and time measure the leak).
    #[must_use]
    pub fn observed(previous: Option<Self>, used: u64, size: u64, now: Instant) -> Self {
        let leak = match previous {
            Some(prev) => {
                let elapsed = (now - prev.at).as_secs_f64();
                if elapsed >= MIN_MEASURE_SECS {
                    let leaked = prev.used + prev.added_since as f64 - used as f64;
                    let fastest = size.max(1) as f64 * MAX_LEAK_SIZES_PER_SEC;
                    let measured = (leaked / elapsed).clamp(MIN_LEAK_PER_SEC, fastest);
                    // Smooth: one odd sample must not swing the pace.
                    0.7 * prev.leak_per_sec + 0.3 * measured
                } else {
                    prev.leak_per_sec
                }
            }
            None => DEFAULT_LEAK_PER_SEC,
        };
        let keep_at = previous
            .filter(|prev| (now - prev.at).as_secs_f64() < MIN_MEASURE_SECS)
            .map(|prev| (prev.at, prev.added_since + 1));
        let (at, added_since) = keep_at.unwrap_or((now, 0));
        Self {
            used: used.min(size) as f64,
            size,
            at,
            leak_per_sec: leak,
            added_since,
        }
    }

    /// Whether one more request fits at `now` with `in_flight` requests unanswered; else
    /// when it will (at most `max_wait` ahead).
    pub fn check(&self, in_flight: u64, max_wait: Duration, now: Instant) -> Result<(), Wait> {
        let leaked = (now - self.at).as_secs_f64() * self.leak_per_sec;
        let level = (self.used - leaked).max(0.0) + in_flight as f64;
        // Keep one unit free: the level is an estimate (a bucket of one has no unit to spare:
        // it sends when empty).
        let room = self.size.saturating_sub(1).max(1) as f64;
        if level + 1.0 <= room {
            return Ok(());
        }
        let drain = (level + 1.0 - room) / self.leak_per_sec.max(MIN_LEAK_PER_SEC);
        let drain = Duration::try_from_secs_f64(drain)
            .unwrap_or(max_wait)
            .min(max_wait);
        Err(Wait::Until(later(now, drain)))
    }

    /// A request the supplier counted but whose answer never came: its unit stays added.
    pub fn spend(&mut self) {
        self.used = (self.used + 1.0).min(self.size as f64);
    }

    /// The estimated leak, in requests per second.
    pub fn leak_per_sec(&self) -> f64 {
        self.leak_per_sec
    }
}
