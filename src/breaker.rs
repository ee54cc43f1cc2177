//! The circuit breaker of one upstream (Resilience4j's model): closed, open, half-open and
//! forced open. Pure: every method takes the current [`Instant`].
//!
//! - Closed: opens after `failure_threshold` consecutive failures, or when the failure rate
//!   over the last `window` reaches `failure_rate` (once `min_calls` calls were seen).
//! - Open: refuses everything until `open_for` has passed, then half-open.
//! - Half-open: lets `half_open_probes` requests through; a success closes, a failure opens.
//! - Forced open (an operator's trip): refuses everything until an operator's reset.
//!
//! Failures are 5xx, connection errors and timeouts; 429s and other 4xx are not.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BreakerConfig;

/// Retry-After given while half-open probes are out.
const HALF_OPEN_RETRY: Duration = Duration::from_secs(1);

/// A breaker state as the admin API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Requests flow.
    Closed,
    /// Refusing until the instant, then half-open.
    Open {
        /// When half-open begins.
        until: Instant,
    },
    /// A few probes go; their outcome decides.
    HalfOpen,
    /// Tripped by an operator; only an operator's reset closes it.
    ForcedOpen,
}

impl Phase {
    /// `closed`, `open`, `half_open`, `forced_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
        }
    }

    /// The `headroom_breaker_state` value: 0 closed, 1 half-open, 2 open, 3 forced open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open { .. } => 2,
            Self::ForcedOpen => 3,
        }
    }
}

/// How an attempt ended, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An answer that shows the upstream works (2xx, 3xx, 4xx including 429).
    Success,
    /// 5xx, connection error, timeout.
    Failure,
}

/// Permission to send one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether this attempt is a half-open probe.
    pub probe: bool,
    /// The half-open period it was admitted in: a probe from an earlier one (ended by an
    /// operator's reset, say) gives back no place of the current one.
    round: u64,
}

/// One upstream's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: Phase,
    consecutive_failures: u32,
    /// Recent calls (when the failure-rate rule is on).
    calls: VecDeque<(Instant, bool)>,
    probes_out: u32,
    /// Counts half-open periods.
    round: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Phase::Closed,
            consecutive_failures: 0,
            calls: VecDeque::new(),
            probes_out: 0,
            round: 0,
        }
    }

    /// The state at `now` (an open breaker whose time is up reads half-open).
    pub fn state(&mut self, now: Instant) -> Phase {
        if let Phase::Open { until } = self.state {
            if now >= until {
                self.state = Phase::HalfOpen;
                self.probes_out = 0;
                self.round = self.round.wrapping_add(1);
            }
        }
        self.state
    }

    /// The state as last changed, without moving an expired open breaker to half-open.
    pub fn current(&self) -> Phase {
        self.state
    }

    /// May an attempt go at `now`? `Err` carries the Retry-After, when known.
    pub fn admit(&mut self, now: Instant) -> Result<Admission, Option<Duration>> {
        match self.state(now) {
            Phase::Closed => Ok(Admission {
                probe: false,
                round: self.round,
            }),
            Phase::Open { until } => Err(Some(until - now)),
            Phase::ForcedOpen => Err(None),
            Phase::HalfOpen if self.probes_out < self.config.half_open_probes => {
                self.probes_out += 1;
                Ok(Admission {
                    probe: true,
                    round: self.round,
                })
            }
            Phase::HalfOpen => Err(Some(HALF_OPEN_RETRY)),
        }
    }

    /// Records an attempt's outcome. Returns the new state when it changed.
    pub fn record(
        &mut self,
        now: Instant,
        admission: Admission,
        outcome: Verdict,
    ) -> Option<Phase> {
        let before = self.state(now);
        self.give_back(admission);
        let failed = outcome == Verdict::Failure;
        self.consecutive_failures = if failed {
            self.consecutive_failures.saturating_add(1)
        } else {
            0
        };
        if self.config.failure_rate.is_some() {
            self.calls.push_back((now, failed));
            while self
                .calls
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > self.config.window)
            {
                self.calls.pop_front();
            }
        }
        match before {
            Phase::HalfOpen if admission.probe => {
                if failed {
                    self.open(now);
                } else {
                    self.close();
                }
            }
            Phase::Closed if failed && self.should_open() => self.open(now),
            _ => {}
        }
        (self.state != before).then_some(self.state)
    }

    /// Gives back a probe that was admitted but never sent (its request left the queue).
    pub fn cancel(&mut self, admission: Admission) {
        self.give_back(admission);
    }

    /// Frees a probe's place, if it holds one of the current half-open period.
    fn give_back(&mut self, admission: Admission) {
        if admission.probe && admission.round == self.round {
            self.probes_out = self.probes_out.saturating_sub(1);
        }
    }

    /// An operator's trip: forced open until [`Breaker::reset`].
    pub fn trip(&mut self) {
        self.state = Phase::ForcedOpen;
    }

    /// An operator's reset: closed, counters cleared.
    pub fn reset(&mut self) {
        self.close();
    }

    fn should_open(&self) -> bool {
        if self.consecutive_failures >= self.config.failure_threshold {
            return true;
        }
        let Some(rate) = self.config.failure_rate else {
            return false;
        };
        let calls = self.calls.len();
        if calls < self.config.min_calls as usize {
            return false;
        }
        let failures = self.calls.iter().filter(|(_, failed)| *failed).count();
        failures as f64 / calls as f64 >= rate
    }

    fn open(&mut self, now: Instant) {
        self.state = Phase::Open {
            until: now + self.config.open_for,
        };
        self.probes_out = 0;
    }

    fn close(&mut self) {
        self.state = Phase::Closed;
        self.consecutive_failures = 0;
        self.calls.clear();
        self.probes_out = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn config(failure_rate: Option<f64>) -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            open_for: 30 * S,
            failure_rate,
            window: 60 * S,
            min_calls: 10,
            half_open_probes: 1,
        }
    }

    fn call(b: &mut Breaker, now: Instant, outcome: Verdict) -> Option<Phase> {
        let admission = b.admit(now).expect("admitted");
        b.record(now, admission, outcome)
    }

    #[test]
    fn consecutive_failures_open_then_half_open_then_close() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(None));
        assert_eq!(call(&mut b, t0, Verdict::Failure), None);
        assert_eq!(
            call(&mut b, t0, Verdict::Success),
            None,
            "a success resets the count"
        );
        call(&mut b, t0, Verdict::Failure);
        call(&mut b, t0, Verdict::Failure);
        assert_eq!(
            call(&mut b, t0, Verdict::Failure),
            Some(Phase::Open { until: t0 + 30 * S })
        );
        assert_eq!(b.admit(t0 + 10 * S), Err(Some(20 * S)));
        // After open_for: one probe goes, the others wait.
        let probe = b.admit(t0 + 30 * S).expect("probe");
        assert!(probe.probe);
        assert_eq!(b.state(t0 + 30 * S), Phase::HalfOpen);
        assert_eq!(b.admit(t0 + 30 * S), Err(Some(HALF_OPEN_RETRY)));
        assert_eq!(
            b.record(t0 + 31 * S, probe, Verdict::Success),
            Some(Phase::Closed)
        );
    }

    #[test]
    fn a_failed_probe_reopens() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(None));
        for _ in 0..3 {
            call(&mut b, t0, Verdict::Failure);
        }
        let probe = b.admit(t0 + 30 * S).expect("probe");
        assert_eq!(
            b.record(t0 + 31 * S, probe, Verdict::Failure),
            Some(Phase::Open { until: t0 + 61 * S })
        );
    }

    #[test]
    fn the_failure_rate_opens_once_enough_calls_were_seen() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(Some(0.5)));
        for i in 0..9 {
            let outcome = if i % 2 == 0 {
                Verdict::Failure
            } else {
                Verdict::Success
            };
            assert_eq!(call(&mut b, t0, outcome), None, "under min_calls");
        }
        assert_eq!(
            call(&mut b, t0, Verdict::Failure),
            Some(Phase::Open { until: t0 + 30 * S }),
            "6 of 10 failed"
        );
    }

    #[test]
    fn old_calls_leave_the_window() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(Some(0.5)));
        for _ in 0..2 {
            call(&mut b, t0, Verdict::Failure);
            call(&mut b, t0, Verdict::Success);
        }
        // 61 s later the old failures no longer count.
        for _ in 0..9 {
            assert_eq!(call(&mut b, t0 + 61 * S, Verdict::Success), None);
        }
        assert_eq!(
            call(&mut b, t0 + 61 * S, Verdict::Failure),
            None,
            "1 of 10 failed"
        );
    }

    #[test]
    fn a_probe_from_an_earlier_half_open_period_gives_back_no_place() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(None));
        for _ in 0..3 {
            call(&mut b, t0, Verdict::Failure);
        }
        let old = b.admit(t0 + 30 * S).expect("probe");
        b.reset();
        for _ in 0..3 {
            call(&mut b, t0 + 31 * S, Verdict::Failure);
        }
        let current = b.admit(t0 + 61 * S).expect("a probe of the new period");
        assert!(current.probe);
        b.cancel(old);
        assert_eq!(
            b.admit(t0 + 61 * S),
            Err(Some(HALF_OPEN_RETRY)),
            "the old probe freed nothing"
        );
        b.cancel(current);
        assert!(b.admit(t0 + 61 * S).is_ok());
    }

    #[test]
    fn operators_trip_and_reset() {
        let t0 = Instant::now();
        let mut b = Breaker::new(config(None));
        b.trip();
        assert_eq!(b.admit(t0 + 3600 * S), Err(None), "forced open has no end");
        assert_eq!(b.state(t0).gauge(), 3);
        b.reset();
        assert_eq!(b.state(t0), Phase::Closed);
        assert!(b.admit(t0).is_ok());
    }
}
