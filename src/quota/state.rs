//! The quota of one upstream: its tracker (or one per partition key, least recently used
//! forgotten beyond a bound) and the optional static ceiling (`[upstream.limit]`, a
//! `governor` GCRA limiter on tokio's clock).

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use crate::config::LimitConfig;
use crate::quota::clock::TokioClock;
use crate::quota::tracker::{Snapshot, Tracker, TrackerConfig, Wait};

type StaticLimiter =
    RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Duration>>;

/// Longest partition key kept as is; longer values are cut (they are API keys, not essays).
const MAX_KEY_LEN: usize = 256;

/// Quota state of one upstream.
pub struct QuotaState {
    config: TrackerConfig,
    shared: Tracker,
    partitions: HashMap<String, (Tracker, Instant)>,
    max_partitions: usize,
    limiter: Option<(StaticLimiter, TokioClock)>,
    static_rate: Option<f64>,
}

impl std::fmt::Debug for QuotaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaState")
            .field("shared", &self.shared)
            .field("partitions", &self.partitions.len())
            .field("static_limit", &self.limiter.is_some())
            .finish()
    }
}

impl QuotaState {
    /// State for an upstream with `limit` as its static ceiling.
    pub fn new(config: TrackerConfig, limit: Option<LimitConfig>, max_partitions: usize) -> Self {
        let limiter = limit.and_then(static_limiter);
        let static_rate = limit
            .filter(|l| !l.per.is_zero())
            .map(|l| f64::from(l.requests) / l.per.as_secs_f64());
        Self {
            static_rate,
            config,
            shared: Tracker::new(config),
            partitions: HashMap::new(),
            max_partitions: max_partitions.max(1),
            limiter,
        }
    }

    /// The tracker for `key` (`None`: the upstream's own quota).
    pub fn tracker(&mut self, key: Option<&str>, now: Instant) -> &mut Tracker {
        let Some(key) = key else {
            return &mut self.shared;
        };
        let key = truncate(key);
        if !self.partitions.contains_key(key) && self.partitions.len() >= self.max_partitions {
            self.forget_least_recent();
        }
        let config = self.config;
        let entry = self
            .partitions
            .entry(key.to_owned())
            .or_insert_with(|| (Tracker::new(config), now));
        entry.1 = now;
        &mut entry.0
    }

    /// May a request for `key` go at `now`? When it may, its unit is reserved (learned
    /// quota and static ceiling alike).
    pub fn try_reserve(&mut self, key: Option<&str>, now: Instant) -> Result<(), Wait> {
        self.tracker(key, now).check(now)?;
        if let Some((limiter, clock)) = &self.limiter {
            if let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(clock));
                return Err(Wait::Until(now + wait));
            }
        }
        self.tracker(key, now).reserve(now);
        Ok(())
    }

    /// When requests for `key` may go again, if a pause holds them.
    pub fn paused_until(&mut self, key: Option<&str>, now: Instant) -> Option<Instant> {
        self.tracker(key, now).paused_until(now)
    }

    /// Average requests per second allowed, when known (learned quota, else static limit).
    pub fn rate_per_sec(&self) -> Option<f64> {
        self.shared.rate_per_sec().or(self.static_rate)
    }

    /// The upstream's own quota, for the admin API and metrics.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        self.shared.snapshot(now)
    }

    fn forget_least_recent(&mut self) {
        let oldest = self
            .partitions
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.partitions.remove(&key);
        }
    }
}

fn truncate(key: &str) -> &str {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let mut end = MAX_KEY_LEN;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

fn static_limiter(limit: LimitConfig) -> Option<(StaticLimiter, TokioClock)> {
    let requests = NonZeroU32::new(limit.requests)?;
    let period = limit.per.checked_div(limit.requests)?;
    let quota = Quota::with_period(period)?.allow_burst(requests);
    let clock = TokioClock::new();
    Some((RateLimiter::direct_with_clock(quota, clock), clock))
}
