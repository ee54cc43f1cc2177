//! The attempt loop of one request: each attempt goes through the upstream's scheduler
//! (quota and concurrency), its response teaches the quota tracker, and 429s, 5xx and
//! connection failures are retried where that is safe, within `retry.max_attempts` and the
//! request's queue deadline.

use std::time::Duration;

use http::request::Parts;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::breaker::Outcome;
use crate::error::ProxyError;
use crate::proxy::forward;
use crate::proxy::replay::RequestBody;
use crate::quota::{backoff, clock};
use crate::retry::{self, Reason};
use crate::scheduler::{Priority, Rejected};
use crate::upstream::Upstream;

/// How a request's attempts ended.
#[derive(Debug)]
pub struct Attempted {
    /// The response to stream back, or what Headroom answers itself.
    pub result: Result<Response<Incoming>, ProxyError>,
    /// Attempts sent upstream.
    pub attempts: u32,
    /// Time spent waiting for quota or a slot, over all attempts.
    pub queue_wait: Duration,
    /// The concurrency slot, held until the response body has been sent.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// What one request asks of the loop.
#[derive(Debug)]
pub struct Plan {
    /// Method, upstream URI and prepared headers.
    pub parts: Parts,
    /// The body, replayable or not.
    pub body: RequestBody,
    /// `Headroom-Priority`.
    pub priority: Priority,
    /// Quota partition key, when the upstream partitions its quota.
    pub partition: Option<String>,
    /// When the request stops waiting in the queue (`queue.max_wait` after it arrived).
    pub deadline: Instant,
    /// Whether the request may be sent again ([`retry::is_safe_to_repeat`]).
    pub safe_to_repeat: bool,
}

/// Runs the attempts of one request.
pub async fn run(upstream: &Upstream, mut plan: Plan) -> Attempted {
    let retry = upstream.config().retry;
    let safe = plan.safe_to_repeat;
    let mut attempted = Attempted {
        result: Err(ProxyError::UpstreamUnavailable(
            "no attempt was made".into(),
        )),
        attempts: 0,
        queue_wait: Duration::ZERO,
        slot: None,
    };
    loop {
        let admission = match upstream.breaker_admit() {
            Ok(admission) => admission,
            Err(retry_after) => {
                upstream.note_rejected("breaker_open");
                attempted.result = Err(ProxyError::BreakerOpen { retry_after });
                return attempted;
            }
        };
        let grant = match upstream
            .scheduler()
            .acquire(plan.priority, plan.partition.clone(), plan.deadline)
            .await
        {
            Ok(grant) => grant,
            Err(rejected) => {
                upstream.breaker_cancel(admission);
                let (error, reason) = match rejected {
                    Rejected::QueueFull { retry_after } => {
                        (ProxyError::QueueFull { retry_after }, "queue_full")
                    }
                    Rejected::QueueTimeout { retry_after } => {
                        (ProxyError::QueueTimeout { retry_after }, "queue_timeout")
                    }
                    Rejected::BreakerOpen { retry_after } => {
                        (ProxyError::BreakerOpen { retry_after }, "breaker_open")
                    }
                };
                upstream.note_rejected(reason);
                attempted.result = Err(error);
                return attempted;
            }
        };
        attempted.attempts += 1;
        attempted.queue_wait += grant.queue_wait;
        let queue_wait = grant.queue_wait;
        let (reservation, slot) = grant.into_parts();
        let request = Request::from_parts(plan.parts.clone(), plan.body.take());
        let may_retry = safe && plan.body.replayable() && attempted.attempts < retry.max_attempts;

        let sent = forward::send(upstream, request).await;
        upstream.note_attempt(sent.as_ref().ok().map(|r| r.status()), queue_wait);
        let failed = match &sent {
            Ok(response) => response.status().is_server_error(),
            Err(error) => matches!(
                error,
                ProxyError::UpstreamTimeout(_) | ProxyError::UpstreamUnavailable(_)
            ),
        };
        let outcome = if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        upstream.breaker_record(admission, outcome);

        let (reason, delay) = match sent {
            Ok(response) => {
                let (observation, _) = upstream.observe_headers(
                    response.status(),
                    response.headers(),
                    clock::wall_now(),
                );
                let pause = reservation.complete(response.status(), observation.as_ref());
                let limited = observation.as_ref().is_some_and(|o| o.rate_limited);
                let reason = retry::reason_for_status(response.status(), limited);
                match reason {
                    Some(Reason::RateLimited) if may_retry => {
                        // The quota is paused; the next acquire waits for it. A pause past
                        // this request's deadline is answered now, with the real time to
                        // come back.
                        let now = Instant::now();
                        if let Some(until) = pause.filter(|until| *until > plan.deadline) {
                            upstream.note_rejected("queue_timeout");
                            attempted.result = Err(ProxyError::QueueTimeout {
                                retry_after: until - now,
                            });
                            return attempted;
                        }
                        if let Some(until) = pause {
                            upstream.observe_backoff(until.saturating_duration_since(now));
                        }
                        upstream.note_retry(Reason::RateLimited);
                        continue;
                    }
                    Some(reason) if may_retry => {
                        match backoff_within(&attempted, upstream, &plan) {
                            Some(delay) => (reason, delay),
                            None => {
                                attempted.result = Ok(response);
                                attempted.slot = Some(slot);
                                return attempted;
                            }
                        }
                    }
                    _ => {
                        attempted.result = Ok(response);
                        attempted.slot = Some(slot);
                        return attempted;
                    }
                }
            }
            Err(error) => {
                drop(reservation);
                let reason = match &error {
                    ProxyError::UpstreamTimeout(_) => Some(Reason::Timeout),
                    ProxyError::UpstreamUnavailable(_) => Some(Reason::ConnectError),
                    _ => None,
                };
                attempted.result = Err(error);
                let Some(reason) = reason else {
                    return attempted;
                };
                match backoff_within(&attempted, upstream, &plan).filter(|_| may_retry) {
                    Some(delay) => (reason, delay),
                    None => return attempted,
                }
            }
        };
        drop(slot);
        upstream.note_retry(reason);
        upstream.observe_backoff(delay);
        tokio::time::sleep(delay).await;
    }
}

/// The backoff before the next attempt (capped exponential, full jitter), if it ends before
/// the request's deadline.
fn backoff_within(attempted: &Attempted, upstream: &Upstream, plan: &Plan) -> Option<Duration> {
    let retry = upstream.config().retry;
    let delay =
        backoff::random_full_jitter(attempted.attempts - 1, retry.base_delay, retry.max_delay);
    (Instant::now() + delay <= plan.deadline).then_some(delay)
}
