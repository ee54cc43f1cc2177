//! What Headroom knows of one quota (an upstream, or one partition of it) and whether it may
//! send now. Pure: every method takes the current [`Instant`] (and an [`Answer`] its random
//! number for the jitter); nothing here sleeps, does I/O or draws random numbers.
//!
//! - The window (limit, remaining, reset instant) comes from the supplier's headers.
//! - Every request holds a reservation while in flight: the supplier's `remaining` does not
//!   count requests it has not seen yet, so `remaining - in_flight` is what may still go.
//! - A response older than the newest applied one never rolls the window back.
//! - Before the first response only `probes` requests go, then the learned pace.
//! - A 429 pauses the quota until the announced instant (capped), or for a capped exponential
//!   backoff with full jitter when nothing usable was announced.
//! - Suppliers that only speak on 429 (`Retry-After` alone): the limit is inferred from the
//!   successes counted in the window before the 429, and the window from the announced end
//!   ([`model::silent`](crate::quota::model::silent)).
//! - Leaky buckets (`used/size`): the leak rate is estimated from successive observations
//!   ([`model::bucket`](crate::quota::model::bucket)).

use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use crate::quota::model::bucket::Bucket;
use crate::quota::model::silent::Inference;
use crate::quota::model::{later, Wait};
use crate::quota::observation::QuotaObservation;
use crate::retry::backoff;

/// How far apart two announced resets may be and still name the same window.
const STALE_SLACK: Duration = Duration::from_secs(1);
/// When nothing says when a spent quota comes back, look again after this long.
const UNKNOWN_RESET_POLL: Duration = Duration::from_secs(1);

/// Settings of one tracker, from the upstream's `[upstream.retry]` and quota settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Requests sent before the first response shows how the supplier announces its quota.
    pub probes: u64,
    /// First backoff when a 429 carries no usable wait.
    pub base_delay: Duration,
    /// Cap of every pause (`retry.max_delay`).
    pub max_delay: Duration,
    /// Replicas sharing this quota while this one paces alone: it may use `1 / share` of
    /// what is left (1: all of it).
    pub share: u64,
}

/// A supplier's answer to one request, as a quota learns from it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// When the request was sent.
    pub sent_at: Instant,
    /// When its response headers came back.
    pub received_at: Instant,
    /// The response status.
    pub status: StatusCode,
    /// What its headers said of the quota, if anything.
    pub observation: Option<&'a QuotaObservation>,
    /// A random number in `[0, 1)`: draws the backoff when a 429 announced no wait.
    pub jitter: f64,
}

/// How the supplier has shown its quota so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    /// No response yet.
    Unknown,
    /// Quota headers seen.
    Headers,
    /// Responses without quota headers: only 429s tell anything.
    Silent,
}

/// What the admin API and metrics show of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Requests per window, if known.
    pub limit: Option<u64>,
    /// Requests left in this window (supplier's view minus in-flight), if known.
    pub remaining: Option<u64>,
    /// Until the window resets (or the pause ends), if known.
    pub reset_in: Option<Duration>,
    /// Where the numbers come from: a header convention, `inferred`, or none yet.
    pub source: Option<&'static str>,
    /// Reserved requests not yet answered.
    pub in_flight: u64,
}

/// One quota's state.
#[derive(Debug, Clone)]
pub struct Tracker {
    config: TrackerConfig,
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_at: Option<Instant>,
    window: Option<Duration>,
    source: Option<&'static str>,
    bucket: Option<Bucket>,
    in_flight: u64,
    /// Send time of the request whose observation was applied last.
    newest_applied: Option<Instant>,
    /// The reset instant of the last window this tracker rolled past.
    rolled_at: Option<Instant>,
    /// When a spent quota with no known reset may send one probe.
    probe_at: Option<Instant>,
    /// A probe of a spent quota is in flight: its success opens the next window.
    probing: bool,
    /// For an inferred window: when the next one should start (the first probe goes then).
    expected_reset: Option<Instant>,
    /// The guessed start of the current inferred window, until a probe confirms it.
    guessed_reset: Option<Instant>,
    /// Whether `reset_at` was announced by the supplier (a 429's wait), not inferred.
    reset_announced: bool,
    /// Whether `reset_at` is only the end of a backoff pause (a 429 that said nothing): no
    /// window boundary, so no later reset is predicted from it.
    reset_is_backoff: bool,
    /// Whether `rolled_at` was a real window boundary (not the end of a backoff pause), so
    /// the distance to the next announced reset measures the window.
    rolled_at_boundary: bool,
    /// The longest time to a reset any answer announced: a learned window is never longer
    /// (beyond rounding); answers, not pauses between them, say how long windows are.
    longest_announced: Duration,
    paused_until: Option<Instant>,
    consecutive_limited: u32,
    /// When the last 429 that raised the backoff level arrived: 429s to requests sent before
    /// it belong to the same burst and do not raise it again.
    limited_at: Option<Instant>,
    /// Whether the window length was announced (IETF `w=`) rather than learned from the
    /// distance between successive resets.
    window_announced: bool,
    /// Set when a window rolled on the last learned limit and no answer of the new window has
    /// confirmed that limit yet: until one does (or half the window has passed), only a first
    /// wave of half the limit goes. A supplier that tightened its quota costs no burst.
    unconfirmed_since: Option<Instant>,
    /// How long the last answer took (send to response headers): a supplier slower than half
    /// its window cannot confirm a new window in time, so no first wave is held back for it.
    last_rtt: Option<Duration>,
    speaks: Speaks,
    inference: Inference,
}

impl Tracker {
    /// A tracker that knows nothing yet.
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            limit: None,
            remaining: None,
            reset_at: None,
            window: None,
            source: None,
            bucket: None,
            in_flight: 0,
            newest_applied: None,
            rolled_at: None,
            probe_at: None,
            probing: false,
            expected_reset: None,
            guessed_reset: None,
            reset_announced: false,
            reset_is_backoff: false,
            rolled_at_boundary: false,
            longest_announced: Duration::ZERO,
            paused_until: None,
            consecutive_limited: 0,
            limited_at: None,
            window_announced: false,
            unconfirmed_since: None,
            last_rtt: None,
            speaks: Speaks::Unknown,
            inference: Inference::default(),
        }
    }

    /// May one more request go at `now`? Does not reserve: call [`Tracker::reserve`] when it
    /// does go (after any other limiter agreed).
    pub fn check(&mut self, now: Instant) -> Result<(), Wait> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(Wait::Until(until));
            }
            self.paused_until = None;
        }
        self.roll(now);
        if let Some(bucket) = self.bucket {
            return bucket.check(self.in_flight, self.config.max_delay, now);
        }
        if let Some(wait) = self.first_wave_wait(now) {
            return Err(wait);
        }
        match self.remaining {
            Some(remaining) if remaining > self.in_flight => Ok(()),
            Some(_) => match self.reset_at {
                Some(reset) => Err(Wait::Until(reset)),
                None if self.in_flight > 0 => Err(Wait::Response),
                // Spent, and nothing says when it comes back: one probe request after a while.
                None => {
                    // At most `retry.max_delay`: a long window with an unknown reset must not
                    // hold the quota for a whole window on a guess.
                    let poll = self
                        .window
                        .map_or(UNKNOWN_RESET_POLL, |w| {
                            w / u32::try_from(self.limit.unwrap_or(1).max(1)).unwrap_or(u32::MAX)
                        })
                        .min(self.config.max_delay.max(UNKNOWN_RESET_POLL));
                    let at = *self.probe_at.get_or_insert_with(|| {
                        self.expected_reset
                            .take()
                            .unwrap_or_else(|| later(now, poll))
                    });
                    if now < at {
                        return Err(Wait::Until(at));
                    }
                    self.probe_at = None;
                    self.probing = true;
                    Ok(())
                }
            },
            None if self.speaks == Speaks::Unknown && self.in_flight >= self.config.probes => {
                Err(Wait::Response)
            }
            // A silent supplier tells its quota only by a 429: until one did, send one request
            // at a time, so the 429 that reveals the limit is the only one in its window.
            None if self.speaks == Speaks::Silent
                && self.limit.is_none()
                && self.inference.still_probing()
                && self.in_flight >= 1 =>
            {
                Err(Wait::Response)
            }
            None => Ok(()),
        }
    }

    /// Sets the number of replicas sharing this quota ([`TrackerConfig::share`]).
    pub fn set_share(&mut self, share: u64) {
        self.config.share = share.max(1);
    }

    /// Takes one unit for a request sent at `now`.
    pub fn reserve(&mut self, now: Instant) {
        self.in_flight += 1;
        self.inference.sent(now);
    }

    /// Gives back a reservation whose request never reached the supplier (no connection,
    /// or the client left before it was sent).
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Settles a reservation whose request was written to the supplier at `sent_at` but
    /// whose answer never came back (the client left, the attempt timed out, the connection
    /// broke mid-way): the supplier counted it, so its unit stays spent until the window that
    /// counted it has passed, or a later answer says otherwise.
    pub fn spend(&mut self, sent_at: Instant) {
        self.release();
        let this_window = self.rolled_at.is_none_or(|rolled| sent_at >= rolled);
        if !this_window {
            return;
        }
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(1);
        }
        if let Some(bucket) = &mut self.bucket {
            bucket.spend();
        }
    }

    /// Applies a supplier's answer. Returns the end of the pause when it says "over quota"
    /// (429, or a 503/403 the parser marked rate limited).
    pub fn observe(&mut self, answer: &Answer<'_>) -> Option<Instant> {
        let &Answer {
            sent_at,
            received_at: now,
            status,
            observation,
            jitter,
        } = answer;
        self.release();
        self.last_rtt = Some(now.saturating_duration_since(sent_at));
        let limited =
            status == StatusCode::TOO_MANY_REQUESTS || observation.is_some_and(|o| o.rate_limited);
        let facts = observation.filter(|o| o.has_quota());
        match facts {
            Some(obs) => {
                self.speaks = Speaks::Headers;
                let in_order = obs.reset_after.is_some()
                    || self.newest_applied.is_none_or(|newest| sent_at >= newest);
                if in_order && !self.is_stale(obs, now) {
                    self.apply(obs, now);
                    self.newest_applied = Some(sent_at);
                    self.unconfirmed_since = None;
                }
            }
            None => {
                if self.speaks == Speaks::Unknown {
                    self.speaks = Speaks::Silent;
                }
                if !limited {
                    if std::mem::take(&mut self.probing) {
                        // The probe of a spent quota went through: a new window is open.
                        self.remaining = self.limit.map(|limit| limit.saturating_sub(1));
                        self.guessed_reset = None;
                        if self.inference.any_succeeded() {
                            // Not at a guessed start: the window began somewhere since.
                            self.inference = Inference::from(sent_at, false);
                        }
                    } else if let Some(remaining) = &mut self.remaining {
                        // Nobody told us; the request spent one unit of what we believe is left.
                        *remaining = remaining.saturating_sub(1);
                    }
                }
            }
        }
        if !limited {
            self.consecutive_limited = 0;
            if status.is_success() {
                self.inference.succeeded();
            }
            return None;
        }
        // One burst of answers to requests that were all out before the first 429 came back
        // raises the backoff level once, not once per answer.
        if self.limited_at.is_none_or(|at| sent_at >= at) || self.consecutive_limited == 0 {
            self.consecutive_limited = self.consecutive_limited.saturating_add(1);
            self.limited_at = Some(now);
        }
        self.probing = false;
        self.probe_at = None;
        self.expected_reset = None;
        let announced = observation.and_then(|o| {
            o.retry_after.or_else(|| {
                (o.remaining == Some(0) || o.bucket.is_some())
                    .then_some(o.reset_after)
                    .flatten()
            })
        });
        if facts.is_none() {
            if let Some(wait) = announced {
                self.infer(now, wait);
            }
        }
        let wait = announced.map_or_else(
            || {
                backoff::full_jitter(
                    self.consecutive_limited.saturating_sub(1),
                    self.config.base_delay,
                    self.config.max_delay,
                    jitter,
                )
            },
            |wait| wait.min(self.config.max_delay),
        );
        self.remaining = Some(0);
        let until = later(now, wait);
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        if self.reset_at.is_none_or(|reset| reset < until) && announced.is_none() {
            self.reset_at = Some(until);
            self.reset_is_backoff = true;
        }
        self.paused_until
    }

    /// Pauses the quota until `until` (e.g. a 503 with `Retry-After` seen elsewhere).
    pub fn pause_until(&mut self, until: Instant) -> Instant {
        let until = self.paused_until.map_or(until, |p| p.max(until));
        self.paused_until = Some(until);
        until
    }

    /// The end of the current pause, if any.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.paused_until.filter(|until| *until > now)
    }

    /// Requests per second this quota allows on average, when known (for wait estimates).
    pub fn rate_per_sec(&self) -> Option<f64> {
        if let Some(bucket) = self.bucket {
            return Some(bucket.leak_per_sec());
        }
        let limit = self.limit? as f64;
        let window = self.window?.as_secs_f64();
        (window > 0.0).then(|| limit / window)
    }

    /// What the admin API and metrics show.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let reset = match self.paused_until(now) {
            Some(pause) => Some(pause),
            None => self.reset_at.filter(|r| *r > now),
        };
        Snapshot {
            limit: self.limit,
            remaining: self.remaining.map(|r| r.saturating_sub(self.in_flight)),
            reset_in: reset.map(|r| r - now),
            source: self.source,
            in_flight: self.in_flight,
        }
    }

    /// Whether an observation describes a window older than the one this tracker is in: its
    /// reset lies before the current reset, or at a reset already rolled past. Reset values
    /// carry up to a second of rounding (whole seconds, the `Date` header), hence the slack.
    fn is_stale(&self, obs: &QuotaObservation, now: Instant) -> bool {
        let Some(reset) = obs.reset_after.map(|after| later(now, after)) else {
            return false;
        };
        let slack = self.slack();
        self.rolled_at
            .is_some_and(|rolled| reset < later(rolled, slack))
            || self
                .reset_at
                .is_some_and(|current| later(reset, slack) < current)
    }

    /// How far apart two announced resets may be and still name the same window.
    fn slack(&self) -> Duration {
        self.window
            .map_or(STALE_SLACK, |w| (w / 2).min(STALE_SLACK))
    }

    /// A new window once the announced reset has passed.
    fn roll(&mut self, now: Instant) {
        let Some(reset) = self.reset_at else { return };
        if now < reset {
            return;
        }
        self.rolled_at = Some(reset);
        let predict = !std::mem::take(&mut self.reset_is_backoff);
        self.rolled_at_boundary = predict;
        // The next boundary after `now`, however many windows passed idle.
        let next = self
            .window
            .filter(|w| !w.is_zero() && predict)
            .map(|window| {
                let into = (now - reset).as_nanos() % window.as_nanos();
                let left = u64::try_from(window.as_nanos() - into).unwrap_or(u64::MAX);
                later(now, Duration::from_nanos(left))
            });
        if self.speaks == Speaks::Silent {
            // An inferred window is only a guess: one probe first, the rest once it is in.
            self.remaining = Some(0);
            self.reset_at = None;
            self.probe_at = Some(reset);
            self.expected_reset = next;
            // A reset announced by a 429 is a real window start; one from the inferred
            // window length is a guess until its probe goes through.
            let announced = std::mem::take(&mut self.reset_announced);
            self.guessed_reset = (!announced).then_some(reset);
            self.inference = Inference::from(reset, announced);
        } else {
            // A new window allows at least one request, even on an announced limit of 0: its
            // answer tells the truth, and no request waits for more than one window.
            let share = self.config.share.max(1);
            self.remaining = self.limit.map(|limit| (limit / share).max(1));
            self.reset_at = next;
            if self.bucket.is_none() && self.limit.is_some() {
                // The start of the window now running (after an idle gap, not the old reset).
                let start = next
                    .zip(self.window)
                    .and_then(|(next, window)| next.checked_sub(window))
                    .unwrap_or(reset);
                self.unconfirmed_since = Some(start.max(reset));
            }
        }
    }

    /// While a rolled window is unconfirmed ([`Tracker::unconfirmed_since`]), what holds a
    /// request back: half the last learned limit goes at once, the rest once an answer of the
    /// new window confirms the limit, or half the window has passed (when its length is
    /// known), or nothing is in flight any more (then one at a time). A supplier whose answers
    /// take half the window or more (1 s or more while the window is unknown) cannot confirm
    /// in time: for it the whole learned limit goes, as before.
    fn first_wave_wait(&mut self, now: Instant) -> Option<Wait> {
        let since = self.unconfirmed_since?;
        let share = self.config.share.max(1);
        let limit = (self.limit? / share).max(1);
        let slow = self.last_rtt.is_some_and(|rtt| {
            rtt.saturating_mul(2) >= self.window.unwrap_or(UNKNOWN_RESET_POLL * 2)
        });
        let half_window = self.window.map(|w| later(since, w / 2));
        if slow || half_window.is_some_and(|at| now >= at) {
            self.unconfirmed_since = None;
            return None;
        }
        let used = limit
            .saturating_sub(self.remaining.unwrap_or(0))
            .saturating_add(self.in_flight);
        // The first wave is half the limit. Pacing alone on a share of a fleet's quota
        // (Redis away), it is one request: this replica rolled the window on its own clock,
        // and the fleet may have spent the new window before Redis went away (measured: 5
        // 429s when Redis died just after the fleet spent a window, the half-share wave going
        // out before the answers to the fleet's last requests came back).
        let wave = if share > 1 {
            1
        } else {
            limit.div_ceil(2).max(1)
        };
        if used < wave || self.in_flight == 0 {
            return None;
        }
        Some(half_window.map_or(Wait::Response, Wait::Until))
    }

    /// Applies a (not stale) observation. Within one window the supplier's count only goes
    /// up, however its answers are ordered on the way back: the lowest `remaining` and the
    /// earliest reset seen win (resets are rounded up by suppliers, so the earliest is the
    /// most exact and still not early). A later window replaces the numbers.
    fn apply(&mut self, obs: &QuotaObservation, now: Instant) {
        self.source = Some(obs.source.as_str());
        if let Some(limit) = obs.limit {
            self.limit = Some(limit);
        }
        if let Some(window) = obs.window {
            self.window = Some(window);
            self.window_announced = true;
        }
        if let Some(after) = obs.reset_after {
            self.longest_announced = self.longest_announced.max(after);
        }
        let observed_reset = obs.reset_after.map(|after| later(now, after));
        let same_window = match (observed_reset, self.reset_at) {
            (Some(observed), Some(current)) => observed <= later(current, self.slack()),
            _ => false,
        };
        if !same_window && !self.window_announced && self.rolled_at_boundary {
            // Unannounced window length (GitHub, Discord): the distance from the last reset
            // rolled past to the next one announced; the shortest seen, since idle windows
            // in between make it a multiple of the real one.
            if let (Some(observed), Some(rolled)) = (observed_reset, self.rolled_at) {
                let distance = observed.saturating_duration_since(rolled);
                // A window longer than any time-to-reset ever announced (beyond rounding)
                // contradicts the answers: learn nothing from it.
                let plausible = distance <= self.longest_announced.saturating_add(STALE_SLACK);
                if distance >= self.slack() && plausible {
                    self.window = Some(self.window.map_or(distance, |w| w.min(distance)));
                }
            }
        }
        // A replica pacing alone on a share of a fleet's quota keeps its own part: the
        // supplier's count includes the other replicas' requests.
        let share = self.config.share.max(1);
        if same_window {
            if let Some(remaining) = obs.remaining {
                let mine = remaining / share;
                self.remaining = Some(match self.remaining {
                    None => mine,
                    Some(current) if share == 1 => current.min(remaining),
                    // This answer spent one unit of our part; the others' spending shows in
                    // the supplier's count.
                    Some(current) => current.saturating_sub(1).min(mine),
                });
            }
            if let (Some(observed), Some(current)) = (observed_reset, self.reset_at) {
                self.reset_at = Some(current.min(observed));
                self.reset_is_backoff = false;
            }
        } else {
            if let Some(remaining) = obs.remaining {
                self.remaining = Some(remaining / share);
            }
            if observed_reset.is_some() {
                self.reset_at = observed_reset;
                self.reset_is_backoff = false;
            }
        }
        if let Some(level) = obs.bucket {
            self.bucket = Some(Bucket::observed(self.bucket, level.used, level.size, now));
            self.limit = Some(level.size);
        }
    }

    /// A silent supplier said "over quota, come back in `wait`": what succeeded since the
    /// window started is the limit, and the announced end closes the window.
    fn infer(&mut self, now: Instant, wait: Duration) {
        // Beyond the cap the announced end is not waited for: the pause ends at the cap and
        // the next request probes.
        let end = later(now, wait.min(self.config.max_delay));
        let guessed = self.guessed_reset.take();
        if wait <= self.config.max_delay {
            let learned = self.inference.learn(end, guessed, self.window);
            if let Some(window) = learned.window {
                self.window = Some(window);
            }
            if let Some(limit) = learned.limit {
                self.limit = Some(limit);
                self.source = Some("inferred");
            }
        }
        self.reset_at = Some(end);
        self.reset_announced = true;
        self.inference = Inference::from(end, true);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::quota::observation::LeakyBucket;
    use crate::quota::observation::Source;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig {
            probes: 2,
            base_delay: 200 * MS,
            max_delay: 30 * S,
            share: 1,
        })
    }

    fn headers(
        limit: u64,
        remaining: u64,
        reset: Duration,
        window: Option<Duration>,
    ) -> QuotaObservation {
        let mut obs = QuotaObservation::new(Source::Github);
        obs.limit = Some(limit);
        obs.remaining = Some(remaining);
        obs.reset_after = Some(reset);
        obs.window = window;
        obs
    }

    /// An answer whose backoff (if any) is half its ceiling.
    pub(crate) fn answer(
        sent_at: Instant,
        received_at: Instant,
        status: StatusCode,
        observation: Option<&QuotaObservation>,
    ) -> Answer<'_> {
        Answer {
            sent_at,
            received_at,
            status,
            observation,
            jitter: 0.5,
        }
    }

    fn send(t: &mut Tracker, now: Instant) {
        assert_eq!(t.check(now), Ok(()));
        t.reserve(now);
    }

    #[test]
    fn only_probes_go_before_the_first_response() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        send(&mut t, t0);
        assert_eq!(t.check(t0), Err(Wait::Response));
        let obs = headers(20, 19, 2 * S, None);
        t.observe(&answer(t0, t0 + 10 * MS, StatusCode::OK, Some(&obs)));
        assert_eq!(t.check(t0 + 10 * MS), Ok(()), "the learned pace takes over");
    }

    #[test]
    fn in_flight_requests_hold_their_unit() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        t.observe(&answer(
            t0,
            t0,
            StatusCode::OK,
            Some(&headers(10, 3, 2 * S, None)),
        ));
        for _ in 0..3 {
            send(&mut t, t0);
        }
        assert_eq!(
            t.check(t0),
            Err(Wait::Until(t0 + 2 * S)),
            "3 left, 3 in flight"
        );
        assert_eq!(t.snapshot(t0).remaining, Some(0));
        assert_eq!(t.snapshot(t0).in_flight, 3);
        // One answer says 2 left (it counted itself): 2 left, 2 in flight: still nothing.
        t.observe(&answer(
            t0,
            t0 + MS,
            StatusCode::OK,
            Some(&headers(10, 2, 2 * S, None)),
        ));
        assert!(t.check(t0 + MS).is_err());
        // A failed attempt gives its unit back.
        t.release();
        assert_eq!(t.check(t0 + MS), Ok(()));
    }

    #[test]
    fn an_older_response_never_rolls_the_window_back() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        send(&mut t, t0 + MS);
        t.observe(&answer(
            t0 + MS,
            t0 + 5 * MS,
            StatusCode::OK,
            Some(&headers(10, 4, 2 * S, None)),
        ));
        t.observe(&answer(
            t0,
            t0 + 6 * MS,
            StatusCode::OK,
            Some(&headers(10, 5, 2 * S, None)),
        ));
        assert_eq!(t.snapshot(t0 + 6 * MS).remaining, Some(4));
    }

    #[test]
    fn pacing_alone_on_a_share_a_new_window_waits_for_one_answer() {
        let t0 = Instant::now();
        let mut t = tracker();
        t.set_share(2);
        send(&mut t, t0);
        t.observe(&answer(
            t0,
            t0,
            StatusCode::OK,
            Some(&headers(20, 4, 2 * S, None)),
        ));
        // The window resets at t0 + 2 s: this replica's part is 10, but the fleet may have
        // spent the new window already: one request, then its answer.
        send(&mut t, t0 + 2 * S);
        assert_eq!(
            t.check(t0 + 2 * S),
            Err(Wait::Response),
            "one, not half of 10"
        );
        let answered = t0 + 2 * S + 10 * MS;
        t.observe(&answer(
            t0 + 2 * S,
            answered,
            StatusCode::OK,
            Some(&headers(20, 19, 2 * S - 10 * MS, None)),
        ));
        assert_eq!(t.check(answered), Ok(()), "confirmed: the part goes");
    }

    #[test]
    fn a_late_answer_from_the_old_window_does_not_reopen_it() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        t.observe(&answer(
            t0,
            t0,
            StatusCode::OK,
            Some(&headers(20, 1, 2 * S, None)),
        ));
        send(&mut t, t0 + 1500 * MS);
        // The window resets at t0 + 2 s: the full quota is back, but until an answer of the
        // new window confirms the limit only a first wave of half of it goes (the request
        // still in flight holds one unit of it until it answers).
        assert_eq!(t.check(t0 + 2 * S), Ok(()));
        for _ in 0..9 {
            send(&mut t, t0 + 2 * S);
        }
        assert_eq!(t.check(t0 + 2 * S), Err(Wait::Response), "first wave out");
        // The request sent at t0 + 1.5 s answers late, from the old window: its "0 left" is
        // ignored (it neither spends the new window nor confirms it), and its unit comes back.
        let late = t0 + 2 * S + 10 * MS;
        t.observe(&answer(
            t0 + 1500 * MS,
            late,
            StatusCode::OK,
            Some(&headers(20, 0, Duration::ZERO, None)),
        ));
        assert_eq!(t.snapshot(late).remaining, Some(11));
        send(&mut t, late);
        assert_eq!(t.check(late), Err(Wait::Response), "still the first wave");
        // An answer of the new window confirms the limit: the rest may go.
        t.observe(&answer(
            t0 + 2 * S,
            late,
            StatusCode::OK,
            Some(&headers(20, 19, 2 * S - 10 * MS, None)),
        ));
        for _ in 0..10 {
            send(&mut t, late);
        }
        assert!(
            t.check(late).is_err(),
            "19 left after the answer, 19 in flight: nothing more"
        );
    }

    #[test]
    fn a_tightened_quota_costs_no_burst_at_the_next_window() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        t.observe(&answer(
            t0,
            t0,
            StatusCode::OK,
            Some(&headers(20, 0, 2 * S, None)),
        ));
        let next = t0 + 2 * S;
        // The supplier halved its quota to 10: only half the last learned limit goes.
        for _ in 0..10 {
            send(&mut t, next);
        }
        assert_eq!(t.check(next), Err(Wait::Response));
        // The first answer says 10 per window, 9 left: 9 are already out, nothing more.
        t.observe(&answer(
            next,
            next + MS,
            StatusCode::OK,
            Some(&headers(10, 9, 2 * S - MS, None)),
        ));
        assert!(t.check(next + MS).is_err(), "no overshoot");
        assert_eq!(t.snapshot(next + MS).limit, Some(10));
        for _ in 0..9 {
            t.observe(&answer(
                next,
                next + 2 * MS,
                StatusCode::OK,
                Some(&headers(10, 0, 2 * S - 2 * MS, None)),
            ));
        }
        // The window length was learned from the two resets: at the next one, half of 10
        // goes at once, the rest from half the window on.
        let third = next + 2 * S;
        for _ in 0..5 {
            send(&mut t, third);
        }
        assert_eq!(t.check(third), Err(Wait::Until(third + S)));
        assert_eq!(t.check(third + S), Ok(()));
    }

    #[test]
    fn a_supplier_slower_than_half_its_window_gets_no_first_wave() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        // Its answer took 1.5 s of a 2 s window: no answer can confirm a new window in time.
        t.observe(&answer(
            t0,
            t0 + 1500 * MS,
            StatusCode::OK,
            Some(&headers(20, 0, 500 * MS, Some(2 * S))),
        ));
        let next = t0 + 2 * S;
        for _ in 0..20 {
            send(&mut t, next);
        }
        assert!(t.check(next).is_err(), "the whole learned limit, no more");
    }

    #[test]
    fn a_bucket_of_one_sends_when_empty() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        let mut obs = QuotaObservation::new(Source::Shopify);
        obs.bucket = Some(LeakyBucket { used: 1, size: 1 });
        t.observe(&answer(t0, t0, StatusCode::OK, Some(&obs)));
        assert_eq!(
            t.check(t0),
            Err(Wait::Until(t0 + 500 * MS)),
            "full: one leak"
        );
        send(&mut t, t0 + 500 * MS);
        assert!(t.check(t0 + 500 * MS).is_err(), "one in flight fills it");
    }

    #[test]
    fn an_abandoned_request_stays_spent_in_its_window() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        t.observe(&answer(
            t0,
            t0,
            StatusCode::OK,
            Some(&headers(5, 4, 4 * S, None)),
        ));
        for _ in 0..4 {
            send(&mut t, t0 + MS);
        }
        // Their clients give up; the supplier counted them.
        for _ in 0..4 {
            t.spend(t0 + MS);
        }
        assert_eq!(t.snapshot(t0 + S).in_flight, 0);
        assert_eq!(t.snapshot(t0 + S).remaining, Some(0));
        assert_eq!(t.check(t0 + S), Err(Wait::Until(t0 + 4 * S)));
        // A request from the previous window spends nothing of the current one.
        send(&mut t, t0 + 4 * S);
        t.spend(t0 + MS);
        assert_eq!(t.snapshot(t0 + 4 * S).remaining, Some(5));
    }

    #[test]
    fn a_burst_of_429s_raises_the_backoff_once() {
        let t0 = Instant::now();
        let mut t = tracker();
        // Eight requests out at once, all answered 429.
        for _ in 0..8 {
            t.reserve(t0);
        }
        for i in 0..8 {
            t.paused_until = None;
            t.observe(&answer(
                t0,
                t0 + (i + 1) * MS,
                StatusCode::TOO_MANY_REQUESTS,
                None,
            ));
        }
        assert_eq!(t.consecutive_limited, 1, "one burst, one level");
        // A request sent after the pause that meets another 429 raises it.
        t.paused_until = None;
        send(&mut t, t0 + S);
        t.observe(&answer(t0 + S, t0 + S, StatusCode::TOO_MANY_REQUESTS, None));
        assert_eq!(t.consecutive_limited, 2);
    }

    #[test]
    fn a_shopify_bucket_overflowing_u64_is_no_panic_and_a_capped_wait() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        let mut obs = QuotaObservation::new(Source::Shopify);
        obs.bucket = Some(LeakyBucket {
            used: u64::MAX,
            size: 40,
        });
        t.observe(&answer(t0, t0, StatusCode::OK, Some(&obs)));
        match t.check(t0) {
            Ok(()) => {}
            Err(Wait::Until(at)) => assert!(at - t0 <= 30 * S, "{:?}", at - t0),
            Err(Wait::Response) => panic!("nothing in flight to wait for"),
        }
        obs.bucket = Some(LeakyBucket { used: 0, size: 40 });
        t.observe(&answer(t0, t0 + S, StatusCode::OK, Some(&obs)));
        assert_eq!(t.check(t0 + S), Ok(()));
    }

    #[test]
    fn the_window_rolls_at_the_reset_and_keeps_its_length() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        t.observe(&answer(
            t0,
            t0,
            StatusCode::OK,
            Some(&headers(20, 0, 2 * S, Some(2 * S))),
        ));
        assert_eq!(t.check(t0 + S), Err(Wait::Until(t0 + 2 * S)));
        assert_eq!(t.check(t0 + 2 * S), Ok(()));
        assert_eq!(t.snapshot(t0 + 2 * S).remaining, Some(20));
        assert_eq!(
            t.snapshot(t0 + 2 * S).reset_in,
            Some(2 * S),
            "next reset one window later"
        );
        // Long idle: the next reset is the next boundary, not one in the past.
        assert_eq!(t.check(t0 + 9 * S), Ok(()));
        assert_eq!(t.snapshot(t0 + 9 * S).reset_in, Some(S));
    }

    #[test]
    fn a_429_pauses_until_the_announced_instant_capped() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        let mut obs = QuotaObservation::new(Source::RetryAfter);
        obs.retry_after = Some(3600 * S);
        obs.rate_limited = true;
        let until = t.observe(&answer(t0, t0, StatusCode::TOO_MANY_REQUESTS, Some(&obs)));
        assert_eq!(until, Some(t0 + 30 * S), "capped by retry.max_delay");
        assert_eq!(t.check(t0 + 29 * S), Err(Wait::Until(t0 + 30 * S)));
        assert_eq!(
            t.check(t0 + 30 * S),
            Ok(()),
            "after the capped pause a request probes"
        );

        let mut t = tracker();
        send(&mut t, t0);
        obs.retry_after = Some(3 * S);
        let until = t.observe(&answer(t0, t0, StatusCode::TOO_MANY_REQUESTS, Some(&obs)));
        assert_eq!(until, Some(t0 + 3 * S));
        assert_eq!(t.paused_until(t0 + S), Some(t0 + 3 * S));
    }

    #[test]
    fn a_bare_429_backs_off_with_a_growing_capped_jitter() {
        let t0 = Instant::now();
        let mut t = tracker();
        for n in 0..12u32 {
            let now = t0 + Duration::from_secs(u64::from(n) * 60);
            t.paused_until = None;
            send(&mut t, now);
            // The jitter is passed in: at 1.0 the pause is the whole ceiling.
            let bare = Answer {
                jitter: 1.0,
                ..answer(now, now, StatusCode::TOO_MANY_REQUESTS, None)
            };
            let until = t.observe(&bare).expect("paused");
            let ceiling = backoff::ceiling(n, 200 * MS, 30 * S);
            assert_eq!(until - now, ceiling, "n = {n}");
        }
        send(&mut t, t0 + 3600 * S);
        t.observe(&answer(t0 + 3600 * S, t0 + 3600 * S, StatusCode::OK, None));
        assert_eq!(t.consecutive_limited, 0, "a success resets the backoff");
    }

    #[test]
    fn a_silent_supplier_is_learned_from_its_429s() {
        let t0 = Instant::now();
        let mut t = tracker();
        // First response: no quota headers at all.
        for i in 0..5 {
            let now = t0 + i * 10 * MS;
            send(&mut t, now);
            t.observe(&answer(now, now + MS, StatusCode::OK, None));
        }
        send(&mut t, t0 + 50 * MS);
        let mut obs = QuotaObservation::new(Source::RetryAfter);
        obs.retry_after = Some(2 * S);
        obs.rate_limited = true;
        let at = t0 + 60 * MS;
        t.observe(&answer(
            t0 + 50 * MS,
            at,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&obs),
        ));
        let snap = t.snapshot(at);
        assert_eq!(snap.limit, Some(5));
        assert_eq!(snap.source, Some("inferred"));
        let end = at + 2 * S;
        assert_eq!(t.check(end - MS), Err(Wait::Until(end)));
        // The next window: exactly the inferred limit.
        for _ in 0..5 {
            send(&mut t, end);
            t.observe(&answer(end, end + MS, StatusCode::OK, None));
        }
        // Nothing says yet when this window ends: one probe a second later...
        let probe = end + MS + S;
        assert_eq!(t.check(end + MS), Err(Wait::Until(probe)));
        send(&mut t, probe);
        assert!(t.check(probe).is_err(), "one probe at a time");
        // ...meets the 429 that dates the window, which started at a known boundary.
        obs.retry_after = Some(999 * MS);
        t.observe(&answer(
            probe,
            probe,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&obs),
        ));
        let end2 = probe + 999 * MS;
        assert_eq!(t.snapshot(probe).limit, Some(5));
        for _ in 0..5 {
            send(&mut t, end2);
            t.observe(&answer(end2, end2 + MS, StatusCode::OK, None));
        }
        assert_eq!(
            t.check(end2 + MS),
            Err(Wait::Until(end2 + (end2 - end))),
            "paced by the learned window"
        );
    }

    #[test]
    fn a_leaky_bucket_paces_at_its_leak_rate() {
        let t0 = Instant::now();
        let mut t = tracker();
        send(&mut t, t0);
        let mut obs = QuotaObservation::new(Source::Shopify);
        obs.bucket = Some(LeakyBucket { used: 39, size: 40 });
        t.observe(&answer(t0, t0, StatusCode::OK, Some(&obs)));
        assert_eq!(
            t.check(t0),
            Err(Wait::Until(t0 + Duration::from_millis(500))),
            "full: wait one leak at 2/s"
        );
        assert_eq!(t.check(t0 + S), Ok(()));
        obs.bucket = Some(LeakyBucket { used: 10, size: 40 });
        t.observe(&answer(t0, t0 + S, StatusCode::OK, Some(&obs)));
        assert_eq!(t.check(t0 + S), Ok(()));
    }
}
