//! Which attempts are retried, and when: pure decisions on a method, its headers and how an
//! attempt ended, with the clock and the random number passed in. The attempt loop
//! (`proxy::attempts`) only carries them out.

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use tokio::time::Instant;

use crate::config::RetryConfig;
use crate::retry::backoff;

/// `Idempotency-Key`: a client's promise that the request may be repeated.
pub static IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

/// Why an attempt is retried (the `reason` label of `headroom_retries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 429, or a 503/403 that announces a rate limit.
    RateLimited,
    /// Any other 5xx.
    ServerError,
    /// No connection (refused, reset, TLS failure, closed before the response).
    ConnectError,
    /// No response headers within `timeout`.
    Timeout,
}

impl Reason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::ConnectError => "connect_error",
            Self::Timeout => "timeout",
        }
    }
}

/// Whether repeating the request is safe: an idempotent method (RFC 9110 9.2.2) or an
/// `Idempotency-Key` header.
pub fn is_safe_to_repeat(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    ) || headers.contains_key(&IDEMPOTENCY_KEY)
}

/// Why a response would be retried, if it would: rate limits and 5xx; never other 4xx.
pub fn reason_for_status(status: StatusCode, rate_limited: bool) -> Option<Reason> {
    if status == StatusCode::TOO_MANY_REQUESTS || rate_limited {
        Some(Reason::RateLimited)
    } else if status.is_server_error() {
        Some(Reason::ServerError)
    } else {
        None
    }
}

/// How one attempt ended, as far as the retry decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The supplier answered.
    Answered {
        /// Its status.
        status: StatusCode,
        /// Whether it announced a rate limit (a 429, or a 503/403 with a usable wait).
        limited: bool,
        /// The end of the quota pause it caused, if any.
        pause: Option<Instant>,
    },
    /// No response within `timeout`.
    TimedOut,
    /// No connection, or it closed before the response.
    Unreachable,
    /// Anything else, and the client's own faults: never retried.
    Failed,
}

/// Where a request stands for the decision.
#[derive(Debug, Clone, Copy)]
pub struct Tries {
    /// Attempts sent so far, this one included (at least 1).
    pub sent: u32,
    /// Whether the request may be sent again: a safe method or an `Idempotency-Key`, and a
    /// body that can be replayed.
    pub repeatable: bool,
    /// When the request stops waiting (`queue.max_wait` after it arrived).
    pub deadline: Instant,
}

/// What the attempt loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The attempt's result goes to the client, as it is.
    Answer,
    /// Rate limited, with a quota pause that ends past the deadline: the client is answered
    /// `504 queue_timeout` at once, with the real time until the pause ends.
    GiveUp {
        /// Until the pause ends.
        retry_after: Duration,
    },
    /// Rate limited: ask the scheduler again, which holds the request until the quota's pause
    /// (`paused_for` from now, when it announced one) is over.
    Requeue {
        /// The pause, for `headroom_backoff_seconds`.
        paused_for: Option<Duration>,
    },
    /// Send again after `delay` (capped exponential backoff, full jitter).
    Backoff {
        /// Why (the `reason` label of `headroom_retries_total`).
        reason: Reason,
        /// How long to wait first.
        delay: Duration,
    },
}

/// Decides what follows an attempt that `ended` so, at `now`. `unit` is a random number in
/// `[0, 1)` that draws the jitter. Never a retry for a request that is not repeatable, past
/// `retry.max_attempts`, or whose backoff would end after its deadline.
#[must_use]
pub fn decide(retry: &RetryConfig, tries: Tries, ended: Ended, now: Instant, unit: f64) -> Next {
    let reason = match ended {
        Ended::Answered {
            status, limited, ..
        } => reason_for_status(status, limited),
        Ended::TimedOut => Some(Reason::Timeout),
        Ended::Unreachable => Some(Reason::ConnectError),
        Ended::Failed => None,
    };
    let Some(reason) = reason else {
        return Next::Answer;
    };
    if !tries.repeatable || tries.sent >= retry.max_attempts {
        return Next::Answer;
    }
    if let (Reason::RateLimited, Ended::Answered { pause, .. }) = (reason, ended) {
        // The quota is paused: the next grant waits for it. A pause past the deadline is
        // answered now, with the real time to come back.
        return match pause {
            Some(until) if until > tries.deadline => Next::GiveUp {
                retry_after: until.saturating_duration_since(now),
            },
            _ => Next::Requeue {
                paused_for: pause.map(|until| until.saturating_duration_since(now)),
            },
        };
    }
    let n = tries.sent.saturating_sub(1);
    let delay = backoff::full_jitter(n, retry.base_delay, retry.max_delay, unit);
    match now.checked_add(delay) {
        Some(at) if at <= tries.deadline => Next::Backoff { reason, delay },
        _ => Next::Answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn retry() -> RetryConfig {
        RetryConfig {
            max_attempts: 3,
            base_delay: 200 * MS,
            max_delay: 1000 * MS,
            max_body: 0,
        }
    }

    fn answered(code: u16, limited: bool, pause: Option<Instant>) -> Ended {
        Ended::Answered {
            status: StatusCode::from_u16(code).expect("status"),
            limited,
            pause,
        }
    }

    #[test]
    fn decisions() {
        let now = Instant::now();
        let deadline = now + 10_000 * MS;
        let tries = |sent, repeatable| Tries {
            sent,
            repeatable,
            deadline,
        };
        let soon = Some(now + 2_000 * MS);
        let late = Some(now + 60_000 * MS);
        let backoff = |reason, ms| Next::Backoff {
            reason,
            delay: ms * MS,
        };
        // (what, tries, how it ended, random unit, what follows)
        #[rustfmt::skip]
        let cases = [
            ("a 200 is answered", tries(1, true), answered(200, false, None), 0.5, Next::Answer),
            ("a 404 is answered", tries(1, true), answered(404, false, None), 0.5, Next::Answer),
            ("a 403 without a wait is answered", tries(1, true), answered(403, false, None), 0.5, Next::Answer),
            ("a 500 backs off: half of 200 ms", tries(1, true), answered(500, false, None), 0.5, backoff(Reason::ServerError, 100)),
            ("the second backoff doubles its ceiling", tries(2, true), answered(502, false, None), 0.5, backoff(Reason::ServerError, 200)),
            ("a timeout backs off within its ceiling", tries(2, true), Ended::TimedOut, 1.0, backoff(Reason::Timeout, 400)),
            ("a connection failure backs off", tries(1, true), Ended::Unreachable, 0.0, backoff(Reason::ConnectError, 0)),
            ("the last attempt is answered", tries(3, true), answered(500, false, None), 0.5, Next::Answer),
            ("a POST without a key is answered", tries(1, false), answered(503, false, None), 0.5, Next::Answer),
            ("a POST's 429 is answered", tries(1, false), answered(429, true, soon), 0.5, Next::Answer),
            ("other failures are answered", tries(1, true), Ended::Failed, 0.5, Next::Answer),
            ("a 429 waits for its pause", tries(1, true), answered(429, true, soon), 0.5, Next::Requeue { paused_for: Some(2_000 * MS) }),
            ("a 503 announcing a wait is a rate limit", tries(1, true), answered(503, true, None), 0.5, Next::Requeue { paused_for: None }),
            ("a pause past the deadline gives up", tries(1, true), answered(429, true, late), 0.5, Next::GiveUp { retry_after: 60_000 * MS }),
            ("a pause past the deadline on the last attempt is answered", tries(3, true), answered(429, true, late), 0.5, Next::Answer),
        ];
        for (what, tries, ended, unit, want) in cases {
            assert_eq!(decide(&retry(), tries, ended, now, unit), want, "{what}");
        }
    }

    #[test]
    fn a_backoff_past_the_deadline_is_answered() {
        let now = Instant::now();
        let tries = Tries {
            sent: 1,
            repeatable: true,
            deadline: now + 50 * MS,
        };
        let ended = answered(500, false, None);
        assert_eq!(
            decide(&retry(), tries, ended, now, 0.2),
            Next::Backoff {
                reason: Reason::ServerError,
                delay: 40 * MS
            }
        );
        assert_eq!(decide(&retry(), tries, ended, now, 0.3), Next::Answer);
    }

    #[test]
    fn only_idempotent_methods_or_keyed_requests_repeat() {
        let none = HeaderMap::new();
        let mut keyed = HeaderMap::new();
        keyed.insert(&IDEMPOTENCY_KEY, http::HeaderValue::from_static("k-1"));
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(is_safe_to_repeat(&method, &none), "{method}");
        }
        for method in [Method::POST, Method::PATCH] {
            assert!(!is_safe_to_repeat(&method, &none), "{method}");
            assert!(is_safe_to_repeat(&method, &keyed), "{method} with a key");
        }
    }

    #[test]
    fn statuses() {
        let cases = [
            (429, false, Some(Reason::RateLimited)),
            (503, true, Some(Reason::RateLimited)),
            (403, true, Some(Reason::RateLimited)),
            (403, false, None),
            (500, false, Some(Reason::ServerError)),
            (502, false, Some(Reason::ServerError)),
            (503, false, Some(Reason::ServerError)),
            (404, false, None),
            (409, false, None),
            (200, false, None),
            (304, false, None),
        ];
        for (code, limited, want) in cases {
            let status = StatusCode::from_u16(code).expect("status");
            assert_eq!(reason_for_status(status, limited), want, "{code} {limited}");
        }
    }
}
