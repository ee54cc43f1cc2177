//! The quota of one upstream: its trackers and the optional static ceiling
//! (`[upstream.limit]`, a `governor` GCRA limiter on tokio's clock).
//!
//! One tracker per quota the supplier keeps apart:
//! - the upstream's own quota;
//! - one per partition key (`quota.partition_by`), when the supplier counts per API key;
//! - one per named resource (GitHub's `x-ratelimit-resource: search`, Discord's
//!   `X-RateLimit-Bucket`) besides the default one: a request is reserved against the
//!   resource its route was last seen answering from, so exhausting `search` never pauses
//!   `core`.
//!
//! Trackers beyond the upstream's own are bounded (`quota.max_partitions`), least recently
//! used forgotten first; one with requests in flight or a pause running is never forgotten.

use std::num::NonZeroU32;
use std::num::NonZeroUsize;

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use lru::LruCache;
use tokio::time::Instant;

use crate::config::LimitConfig;
use crate::quota::clock::TokioClock;
use crate::quota::model::Wait;
use crate::quota::observation::{QuotaObservation, Source};
use crate::quota::tracker::{Answer, Snapshot, Tracker, TrackerConfig};

type StaticLimiter =
    RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Duration>>;

/// Longest partition key kept as is; longer values are cut (they are API keys, not essays).
const MAX_KEY_LEN: usize = 256;
/// Routes whose resource is remembered.
const MAX_ROUTES: usize = 1024;
/// GitHub's default resource: the one most requests count against.
const GITHUB_DEFAULT_RESOURCE: &str = "core";

/// Which tracker a reservation was taken on: the partition key and the supplier's resource
/// (`None`, `None`: the upstream's own quota).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TrackerKey {
    partition: Option<String>,
    resource: Option<String>,
}

impl TrackerKey {
    /// The key of the tracker for `partition` and `resource`.
    pub fn new(partition: Option<&str>, resource: Option<&str>) -> Self {
        Self {
            partition: partition.map(|p| truncate(p).to_owned()),
            resource: resource.map(str::to_owned),
        }
    }

    /// The partition key, if any.
    pub fn partition(&self) -> Option<&str> {
        self.partition.as_deref()
    }

    /// The supplier's resource, if not the default one.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// Whether this is the upstream's own quota (no partition, default resource).
    pub fn is_own(&self) -> bool {
        self.partition.is_none() && self.resource.is_none()
    }
}

/// What a request tells the quota about itself before it is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask<'a> {
    /// Its partition key, if the upstream partitions its quota.
    pub partition: Option<&'a str>,
    /// Its route: the first two segments of the path after the prefix.
    pub route: &'a str,
}

/// The route of a path (after the upstream's prefix): its first two segments, which is how
/// suppliers assign resources (`/search/code` and `/search/issues` count apart at GitHub,
/// `/channels/{id}` is Discord's major parameter).
pub fn route_of(path: &str) -> &str {
    let path = path.trim_start_matches('/');
    let mut ends = path.match_indices('/').map(|(i, _)| i);
    let _first = ends.next();
    match ends.next() {
        Some(end) => &path[..end],
        None => path,
    }
}

/// Quota state of one upstream.
pub struct QuotaState {
    config: TrackerConfig,
    shared: Tracker,
    others: LruCache<TrackerKey, Tracker>,
    max_others: usize,
    /// The resource the upstream's own tracker stands for (GitHub: `core`; else the first one
    /// seen).
    default_resource: Option<String>,
    /// The resource each route answered from last, when not the default one.
    routes: LruCache<String, String>,
    limiter: Option<(StaticLimiter, TokioClock)>,
    static_rate: Option<f64>,
    /// Replicas sharing the quota while this one paces alone (1 without a fleet).
    share: u64,
}

impl std::fmt::Debug for QuotaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaState")
            .field("shared", &self.shared)
            .field("others", &self.others.len())
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
            others: LruCache::unbounded(),
            max_others: max_partitions.max(1),
            default_resource: None,
            routes: LruCache::new(NonZeroUsize::new(MAX_ROUTES).unwrap_or(NonZeroUsize::MIN)),
            limiter,
            share: 1,
        }
    }

    /// The key of the tracker a request asking `ask` is reserved against.
    pub fn key_for(&mut self, ask: Ask<'_>) -> TrackerKey {
        let resource = if self.routes.is_empty() {
            None
        } else {
            self.routes.get(ask.route).cloned()
        };
        TrackerKey {
            partition: ask.partition.map(|p| truncate(p).to_owned()),
            resource,
        }
    }

    /// The tracker for `key`, if it exists (never creates one).
    fn peek(&mut self, key: &TrackerKey) -> Option<&mut Tracker> {
        if key.is_own() {
            Some(&mut self.shared)
        } else {
            self.others.get_mut(key)
        }
    }

    /// The tracker for `key`, created when missing (forgetting the least recently used idle
    /// one beyond the bound; when every one is busy the bound gives way rather than forget a
    /// pause or a reservation).
    fn tracker(&mut self, key: &TrackerKey) -> &mut Tracker {
        if key.is_own() {
            return &mut self.shared;
        }
        if !self.others.contains(key) {
            if self.others.len() >= self.max_others {
                self.forget_least_recent_idle();
            }
            self.others.put(key.clone(), Tracker::new(self.config));
        }
        self.others
            .get_mut(key)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// May a request for `key` go at `now`? When it may, its unit is reserved (learned quota
    /// and static ceiling alike). A refused request leaves no new tracker behind.
    pub fn try_reserve(&mut self, key: &TrackerKey, now: Instant) -> Result<(), Wait> {
        // A tracker not made yet knows nothing: its first request goes (`quota.probes` is at
        // least 1), so only an existing one is asked.
        if let Some(tracker) = self.peek(key) {
            tracker.check(now)?;
        }
        if let Some((limiter, clock)) = &self.limiter {
            // A replica pacing alone takes `share` cells per request: its part of the rate.
            let cells = NonZeroU32::new(u32::try_from(self.share).unwrap_or(u32::MAX))
                .unwrap_or(NonZeroU32::MIN);
            let checked = match limiter.check_n(cells) {
                Ok(checked) => checked,
                // More replicas than the burst: one cell, as without a fleet.
                Err(_) => limiter.check(),
            };
            if let Err(not_until) = checked {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(clock));
                return Err(Wait::Until(now + wait));
            }
        }
        self.tracker(key).reserve(now);
        Ok(())
    }

    /// Applies the answer to a request reserved on `key` and sent at `sent_at`; returns the
    /// end of the pause it caused, if any. An answer that names another resource than the
    /// one reserved moves the unit there, and teaches which resource `route` counts against.
    pub fn observe(
        &mut self,
        key: &TrackerKey,
        route: &str,
        answer: &Answer<'_>,
    ) -> Option<Instant> {
        self.observe_at(key, route, answer).0
    }

    /// [`QuotaState::observe`], also returning the key of the tracker the answer's facts
    /// went to (the store in Redis applies them there too).
    pub fn observe_at(
        &mut self,
        key: &TrackerKey,
        route: &str,
        answer: &Answer<'_>,
    ) -> (Option<Instant>, TrackerKey) {
        let target = self.target_of(key, route, answer.observation);
        let pause = if target == *key {
            self.tracker(key).observe(answer)
        } else {
            if let Some(tracker) = self.peek(key) {
                tracker.release();
            }
            let tracker = self.tracker(&target);
            tracker.reserve(answer.sent_at);
            tracker.observe(answer)
        };
        // A rate-limit answer that names no resource (Discord's global limit, a plain 429)
        // holds the whole upstream: every resource of the partition waits it out too.
        if let Some(until) = pause.filter(|_| target.resource.is_none()) {
            for (other, tracker) in self.others.iter_mut() {
                if other.partition == target.partition && other.resource.is_some() {
                    let _ = tracker.pause_until(until);
                }
            }
        }
        (pause, target)
    }

    /// Pauses `key`'s quota until `until`; returns the end of the pause now running.
    pub fn pause(&mut self, key: &TrackerKey, until: Instant) -> Instant {
        self.tracker(key).pause_until(until)
    }

    /// Takes a unit on `key` that was granted elsewhere (by the fleet's store): this
    /// replica's trackers count it in flight, so they are right when the replica paces alone.
    pub fn reserve_granted(&mut self, key: &TrackerKey, now: Instant) {
        self.tracker(key).reserve(now);
    }

    /// Sets how many replicas share this quota when this one paces alone (Redis gone): each
    /// of them takes `1 / share` of what is left (and of the static ceiling).
    pub fn set_share(&mut self, share: u64) {
        let share = share.max(1);
        if share == self.share {
            return;
        }
        self.share = share;
        self.config.share = share;
        self.shared.set_share(share);
        for (_, tracker) in self.others.iter_mut() {
            tracker.set_share(share);
        }
    }

    /// Where an answer's facts belong, remembering the route's resource on the way.
    fn target_of(
        &mut self,
        key: &TrackerKey,
        route: &str,
        observation: Option<&QuotaObservation>,
    ) -> TrackerKey {
        let Some(obs) = observation.filter(|o| o.has_quota() || o.rate_limited) else {
            return key.clone();
        };
        let Some(resource) = obs.resource.as_deref() else {
            return TrackerKey {
                partition: key.partition.clone(),
                resource: None,
            };
        };
        let default = self.default_resource.get_or_insert_with(|| {
            if obs.source == Source::Github {
                GITHUB_DEFAULT_RESOURCE.to_owned()
            } else {
                resource.to_owned()
            }
        });
        let resource = (resource != default.as_str()).then(|| resource.to_owned());
        match &resource {
            Some(name) => {
                if self.routes.peek(route) != Some(name) {
                    self.routes.put(route.to_owned(), name.clone());
                }
            }
            None => {
                self.routes.pop(route);
            }
        }
        TrackerKey {
            partition: key.partition.clone(),
            resource,
        }
    }

    /// Settles a reservation on `key` whose request never reached the supplier.
    pub fn release(&mut self, key: &TrackerKey) {
        if let Some(tracker) = self.peek(key) {
            tracker.release();
        }
    }

    /// Settles a reservation on `key` whose request reached the supplier at `sent_at` but got
    /// no answer: its unit stays spent ([`Tracker::spend`]).
    pub fn spend(&mut self, key: &TrackerKey, sent_at: Instant) {
        if let Some(tracker) = self.peek(key) {
            tracker.spend(sent_at);
        }
    }

    /// When requests for `key` may go again, if a pause holds them.
    pub fn paused_until(&mut self, key: &TrackerKey, now: Instant) -> Option<Instant> {
        self.peek(key)?.paused_until(now)
    }

    /// Average requests per second allowed, when known (learned quota, else static limit).
    pub fn rate_per_sec(&self) -> Option<f64> {
        self.shared.rate_per_sec().or(self.static_rate)
    }

    /// The upstream's own quota, for the admin API and metrics.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        self.shared.snapshot(now)
    }

    /// The snapshot of the tracker for `key`, if it exists (tests, diagnostics).
    pub fn snapshot_of(&mut self, key: &TrackerKey, now: Instant) -> Option<Snapshot> {
        self.peek(key).map(|t| t.snapshot(now))
    }

    /// Trackers kept besides the upstream's own.
    pub fn tracked(&self) -> usize {
        self.others.len()
    }

    /// Forgets the least recently used tracker that holds no reservation, no pause and no
    /// spent window (forgetting those would let a fresh tracker probe into a 429).
    /// The LRU order makes the usual case (the oldest is idle) one step.
    fn forget_least_recent_idle(&mut self) {
        let now = Instant::now();
        let idle = self
            .others
            .iter()
            .rev()
            .find(|(_, t)| {
                let snapshot = t.snapshot(now);
                let spent = snapshot.remaining == Some(0) && snapshot.reset_in.is_some();
                snapshot.in_flight == 0 && t.paused_until(now).is_none() && !spent
            })
            .map(|(key, _)| key.clone());
        if let Some(key) = idle {
            self.others.pop(&key);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::quota::tracker::tests::answer;
    use http::StatusCode;

    const S: Duration = Duration::from_secs(1);

    fn state(max_partitions: usize) -> QuotaState {
        QuotaState::new(
            TrackerConfig {
                probes: 2,
                base_delay: Duration::from_millis(200),
                max_delay: 30 * S,
                share: 1,
            },
            None,
            max_partitions,
        )
    }

    fn github(resource: &str, limit: u64, remaining: u64, reset: Duration) -> QuotaObservation {
        let mut obs = QuotaObservation::new(Source::Github);
        obs.limit = Some(limit);
        obs.remaining = Some(remaining);
        obs.reset_after = Some(reset);
        obs.resource = Some(resource.to_owned());
        obs
    }

    #[test]
    fn routes_are_the_first_two_segments() {
        for (path, route) in [
            ("/search/code", "search/code"),
            ("/search/code/x?q=1", "search/code"),
            ("/repos/a/b/issues", "repos/a"),
            ("/graphql", "graphql"),
            ("/", ""),
            ("", ""),
        ] {
            assert_eq!(route_of(path), route, "{path}");
        }
    }

    #[test]
    fn github_search_and_core_are_tracked_apart() {
        let now = Instant::now();
        let mut q = state(100);
        let core = Ask {
            partition: None,
            route: "repos/a",
        };
        let search = Ask {
            partition: None,
            route: "search/issues",
        };
        // The first search request is reserved on the upstream's own quota, then moves.
        let key = q.key_for(search);
        q.try_reserve(&key, now).expect("first");
        q.observe(
            &key,
            search.route,
            &answer(
                now,
                now,
                StatusCode::OK,
                Some(&github("search", 30, 29, 60 * S)),
            ),
        );
        assert_eq!(
            q.snapshot(now).limit,
            None,
            "search does not set the own quota"
        );
        assert_eq!(q.snapshot(now).in_flight, 0);
        let key = q.key_for(core);
        q.try_reserve(&key, now).expect("core");
        q.observe(
            &key,
            core.route,
            &answer(
                now,
                now,
                StatusCode::OK,
                Some(&github("core", 5000, 4999, 3600 * S)),
            ),
        );
        assert_eq!(q.snapshot(now).remaining, Some(4999));
        // Search runs out: a 429 pauses search for 60 s, not core.
        let key = q.key_for(search);
        assert!(key.resource.is_some(), "the route learned its resource");
        q.try_reserve(&key, now).expect("search");
        let mut spent = github("search", 30, 0, 60 * S);
        spent.rate_limited = true;
        spent.retry_after = Some(60 * S);
        let pause = q.observe(
            &key,
            search.route,
            &answer(now, now, StatusCode::FORBIDDEN, Some(&spent)),
        );
        assert_eq!(pause, Some(now + 30 * S), "capped by max_delay");
        let (search_key, core_key) = (q.key_for(search), q.key_for(core));
        assert!(q.try_reserve(&search_key, now).is_err());
        assert_eq!(q.paused_until(&core_key, now), None);
        assert!(q.try_reserve(&core_key, now).is_ok(), "core still flows");
    }

    #[test]
    fn a_429_that_names_no_resource_pauses_every_resource() {
        let now = Instant::now();
        let mut q = state(100);
        let search = Ask {
            partition: None,
            route: "search/code",
        };
        let key = q.key_for(search);
        q.try_reserve(&key, now).expect("first");
        q.observe(
            &key,
            search.route,
            &answer(
                now,
                now,
                StatusCode::OK,
                Some(&github("search", 30, 29, 60 * S)),
            ),
        );
        let own = q.key_for(Ask::default());
        q.try_reserve(&own, now).expect("own");
        let mut global = QuotaObservation::new(Source::RetryAfter);
        global.rate_limited = true;
        global.retry_after = Some(5 * S);
        q.observe(
            &own,
            "",
            &answer(now, now, StatusCode::TOO_MANY_REQUESTS, Some(&global)),
        );
        let search_key = q.key_for(search);
        assert!(search_key.resource.is_some());
        assert_eq!(q.paused_until(&search_key, now), Some(now + 5 * S));
    }

    #[test]
    fn busy_or_paused_partitions_are_not_forgotten_and_refusals_create_none() {
        let now = Instant::now();
        let mut q = state(2);
        let key = |p: &'static str| TrackerKey {
            partition: Some(p.to_owned()),
            resource: None,
        };
        // "a" holds a reservation, "b" is paused.
        q.try_reserve(&key("a"), now).expect("a");
        q.try_reserve(&key("b"), now).expect("b");
        let mut limited = QuotaObservation::new(Source::RetryAfter);
        limited.rate_limited = true;
        limited.retry_after = Some(10 * S);
        q.observe(
            &key("b"),
            "",
            &answer(now, now, StatusCode::TOO_MANY_REQUESTS, Some(&limited)),
        );
        // A third key goes over the bound rather than forget either.
        q.try_reserve(&key("c"), now).expect("c");
        assert_eq!(q.tracked(), 3);
        assert!(q.paused_until(&key("b"), now).is_some(), "b's pause kept");
        assert_eq!(q.snapshot_of(&key("a"), now).map(|s| s.in_flight), Some(1));
        // "c" answers and is idle: a fourth key forgets the least recent idle one.
        q.observe(&key("c"), "", &answer(now, now, StatusCode::OK, None));
        q.release(&key("a"));
        q.try_reserve(&key("d"), now).expect("d");
        assert_eq!(q.tracked(), 3);
        assert!(q.paused_until(&key("b"), now).is_some(), "b's pause kept");
        // A refused request creates no tracker: "b" is paused, and "e" would go over.
        assert!(q.try_reserve(&key("b"), now).is_err());
        let before = q.tracked();
        let _ = q.paused_until(&key("e"), now);
        assert_eq!(q.tracked(), before, "a look creates nothing");
    }
}
