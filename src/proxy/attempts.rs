//! The attempt loop of one request: each attempt goes through the upstream's scheduler
//! (quota and concurrency), its response teaches the quota tracker, and 429s, 5xx and
//! connection failures are retried where that is safe, within `retry.max_attempts` and the
//! request's queue deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::BytesMut;
use http::request::Parts;
use http::{Request, Response};
use http_body::{Body as _, Frame};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::breaker::Verdict;
use crate::error::BoxError;
use crate::error::ProxyError;
use crate::proxy::body::{BodyProgress, Progress, Slotted};
use crate::proxy::forward;
use crate::proxy::replay::RequestBody;
use crate::quota::clock;
use crate::quota::state::Ask;
use crate::retry::{self, Ended, Next, Reason, Tries};
use crate::scheduler::{Grant, Priority, Rejected, Reservation};
use crate::upstream::{Admitted, Upstream};

/// How a request's attempts ended.
#[derive(Debug)]
pub struct Attempted {
    /// The response to stream back (its body holds the concurrency slot), or what Headroom
    /// answers itself.
    pub result: Result<Response<Slotted>, ProxyError>,
    /// Attempts sent upstream.
    pub attempts: u32,
    /// Time spent waiting for quota or a slot, over all attempts.
    pub queue_wait: Duration,
}

/// What a request's attempts came to so far; kept apart from [`Attempted`] so that a waiting
/// request does not hold room for a response.
#[derive(Debug, Default, Clone, Copy)]
struct SoFar {
    attempts: u32,
    queue_wait: Duration,
}

impl SoFar {
    /// The request ends with `result`.
    fn end(self, result: Result<Response<Slotted>, ProxyError>) -> Attempted {
        Attempted {
            result,
            attempts: self.attempts,
            queue_wait: self.queue_wait,
        }
    }
}

/// A request body as it comes from the client: read (up to `retry.max_body`) once the
/// request holds its first grant. While it waits in the queue, it may read its body into a
/// spool within a per-upstream budget ([`Upstream::spool_budget`]), so that hyper sees a
/// client that hangs up; beyond the budget, queued requests hold no body in memory.
#[derive(Debug)]
pub enum PendingBody {
    /// Not read yet: buffer up to this many bytes for replay.
    Unread(Body, u64),
    /// Ready to send.
    Ready(RequestBody),
}

/// The part of a queued request's body read while it waited, and the budget it holds.
struct Spool {
    head: BytesMut,
    rest: Body,
    done: bool,
    /// Bytes the budget covers: reading stops there (a body of unknown length may be longer).
    limit: u64,
    budget: OwnedSemaphorePermit,
}

/// Spool budget taken for a body of unknown length (chunked): what it reads beyond stays
/// unread until the request's turn.
const SPOOL_UNKNOWN_LENGTH: u64 = 64 * 1024;

impl Spool {
    /// Reads frames into `head` until the body ends or the budget is used. Cancel-safe: a
    /// frame is stored as soon as it is read, so dropping this future loses nothing.
    async fn fill(&mut self) -> Result<(), BoxError> {
        while !self.done {
            if self.head.len() as u64 >= self.limit {
                // Budget used: the rest waits for the request's turn.
                std::future::pending::<()>().await;
            }
            match self.rest.frame().await {
                None => self.done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.head.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// What was read, followed by the rest. The body keeps its share of the budget until it
    /// is sent (or dropped), so spooled bytes never outlive their budget.
    fn into_body(self) -> Body {
        let head =
            futures_util::stream::iter([Ok::<_, axum::Error>(Frame::data(self.head.freeze()))]);
        let rest = BodyStream::new(self.rest);
        let budget = self.budget;
        let frames = futures_util::StreamExt::map(
            futures_util::StreamExt::chain(head, rest),
            move |frame| {
                let _held = &budget;
                frame
            },
        );
        Body::new(StreamBody::new(frames))
    }
}

impl PendingBody {
    /// Takes the unread body into a spool, if the upstream's budget has room for it (a body
    /// of unknown length is spooled up to [`SPOOL_UNKNOWN_LENGTH`]).
    fn spool(&mut self, upstream: &Upstream) -> Option<Spool> {
        let Self::Unread(body, _) = self else {
            return None;
        };
        if body.is_end_stream() {
            return None;
        }
        let limit = body.size_hint().exact().unwrap_or(SPOOL_UNKNOWN_LENGTH);
        let budget = upstream.spool_budget(limit)?;
        Some(Spool {
            head: BytesMut::new(),
            rest: std::mem::take(body),
            done: false,
            limit,
            budget,
        })
    }

    /// Reads the body if it was not yet; an error is the client's (too large, cut short).
    async fn ready(&mut self, progress: &BodyProgress) -> Result<&mut RequestBody, ProxyError> {
        if let Self::Unread(body, max_body) = self {
            let body = std::mem::take(body);
            let prepared = RequestBody::prepare(body, *max_body)
                .await
                .map_err(|error| client_body_error(progress, Some(&*error)))?;
            *self = Self::Ready(prepared);
        }
        match self {
            Self::Ready(body) => Ok(body),
            Self::Unread(..) => Err(ProxyError::Internal("request body not prepared")),
        }
    }
}

/// What Headroom answers when the client's body failed: 413 past the limit, else 400.
fn client_body_error(
    progress: &BodyProgress,
    error: Option<&(dyn std::error::Error + Send + Sync)>,
) -> ProxyError {
    match progress.get() {
        Progress::TooLarge => ProxyError::PayloadTooLarge {
            limit: progress.limit(),
        },
        Progress::Stalled => ProxyError::RequestTimeout(progress.idle()),
        _ => ProxyError::BadRequest(match error {
            Some(error) => format!("the request body was cut short by the client: {error}"),
            None => "the request body was cut short by the client".into(),
        }),
    }
}

/// `Retry-After` of a `503 shutting_down`: another replica, or this one restarted, serves
/// by then.
const SHUTDOWN_RETRY: Duration = Duration::from_secs(1);

/// What one request asks of the loop.
#[derive(Debug)]
pub struct Plan {
    /// Method, upstream URI and prepared headers.
    pub parts: Parts,
    /// The body, read or not yet.
    pub body: PendingBody,
    /// How far the client's body has come (to tell its faults from the supplier's).
    pub progress: Arc<BodyProgress>,
    /// `Headroom-Priority`.
    pub priority: Priority,
    /// Quota partition key, when the upstream partitions its quota.
    pub partition: Option<String>,
    /// The route (first two path segments after the prefix), which tells the supplier's
    /// resource once learned; shared with each attempt without a copy.
    pub route: Arc<str>,
    /// When the request stops waiting in the queue (`queue.max_wait` after it arrived).
    pub deadline: Instant,
    /// Whether the request may be sent again ([`retry::is_safe_to_repeat`]).
    pub safe_to_repeat: bool,
    /// Tells when the client's side of its connection ends: a request still waiting for
    /// quota then leaves the queue unsent.
    pub read_end: Arc<crate::proxy::idle::ReadEnd>,
    /// The gateway's drain: a request still waiting when it is about to end is answered
    /// `503 shutting_down`.
    pub drain: Arc<crate::proxy::idle::Drain>,
}

/// How one attempt ended, as the attempt loop needs it.
enum Sent {
    /// A response (its quota facts already applied): its status says what to do next.
    Answered {
        response: Response<Slotted>,
        /// Whether it announces a rate limit (429, or a 503/403 with a usable wait).
        limited: bool,
        /// The end of the pause it caused.
        pause: Option<Instant>,
    },
    /// No response; the breaker and the quota were told.
    Failed(ProxyError),
    /// The client's body failed: answered as the client's fault, not retried.
    ClientFault(ProxyError),
}

impl Sent {
    /// How the attempt ended, for the retry policy.
    fn ended(&self) -> Ended {
        match self {
            Self::Answered {
                response,
                limited,
                pause,
                ..
            } => Ended::Answered {
                status: response.status(),
                limited: *limited,
                pause: *pause,
            },
            Self::Failed(ProxyError::UpstreamTimeout(_)) => Ended::TimedOut,
            Self::Failed(ProxyError::UpstreamUnavailable(_)) => Ended::Unreachable,
            Self::Failed(_) | Self::ClientFault(_) => Ended::Failed,
        }
    }

    /// This attempt's result, as the request's.
    fn answer(self, so_far: SoFar) -> Attempted {
        match self {
            Self::Answered { response, .. } => so_far.end(Ok(response)),
            Self::Failed(error) | Self::ClientFault(error) => so_far.end(Err(error)),
        }
    }
}

/// One attempt, with everything it holds.
struct Attempt {
    upstream: Arc<Upstream>,
    admitted: Admitted,
    reservation: Reservation,
    slot: OwnedSemaphorePermit,
    request: Request<Body>,
    route: Arc<str>,
    progress: Arc<BodyProgress>,
    queue_wait: Duration,
}

/// A future run in place that, if dropped before it completes (the client left), is handed to
/// a task of its own to finish. Written here because spawning every attempt up front costs a
/// task switch per request on the fast path (about a tenth of the proxy's throughput,
/// measured), and no crate offers "finish this if my caller goes away".
struct FinishOnDrop<T: Send + 'static> {
    inner: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
}

impl<T: Send + 'static> FinishOnDrop<T> {
    fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            inner: Some(Box::pin(future)),
        }
    }
}

impl<T: Send + 'static> Future for FinishOnDrop<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Pending;
        };
        let polled = inner.as_mut().poll(cx);
        if polled.is_ready() {
            self.inner = None;
        }
        polled
    }
}

impl<T: Send + 'static> Drop for FinishOnDrop<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            // Outside a runtime (shutdown) there is nothing left to finish it on.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(runtime.spawn(inner));
            }
        }
    }
}

/// Sends one attempt and settles its breaker admission and quota reservation. When the
/// client leaves mid-attempt, the attempt still finishes ([`FinishOnDrop`], bounded by
/// `timeout`), so the supplier's answer teaches the quota and the breaker as if the client
/// had stayed; the response is then dropped.
async fn attempt(attempt: Attempt) -> Sent {
    let Attempt {
        upstream,
        admitted,
        mut reservation,
        slot,
        request,
        route,
        progress,
        queue_wait,
    } = attempt;
    reservation.mark_sent();
    let sent = forward::send(&upstream, request).await;
    upstream.note_attempt(sent.as_ref().ok().map(|r| r.status()), queue_wait);
    match sent {
        Ok(response) => {
            let (observation, _) =
                upstream.observe_headers(response.status(), response.headers(), clock::wall_now());
            let limited = observation.as_ref().is_some_and(|o| o.rate_limited);
            // A rate-limit answer (a 429, or a 503 with Retry-After) shows a working supplier:
            // it never counts toward opening the breaker.
            let failed = response.status().is_server_error() && !limited;
            admitted.record(if failed {
                Verdict::Failure
            } else {
                Verdict::Success
            });
            let pause = reservation.complete(&route, response.status(), observation.as_ref());
            Sent::Answered {
                // The body holds the slot until it has been read (or dropped).
                response: response.map(|body| Slotted::new(body, slot)),
                limited,
                pause,
            }
        }
        Err(failed) => {
            if let Some(error) = client_fault(&progress, &failed.error) {
                // Not the supplier's fault: the breaker's place goes back unused. What was
                // written may have been counted: the unit stays spent.
                drop(admitted);
                return Sent::ClientFault(error);
            }
            admitted.record(Verdict::Failure);
            if !failed.written {
                reservation.release();
            }
            Sent::Failed(failed.error)
        }
    }
}

/// Runs the attempts of one request. After each, the retry policy decides what follows
/// ([`retry::decide`]); this loop only carries its decisions out.
///
/// A function returning an `async` block rather than an `async fn`: an `async fn` keeps a
/// second copy of its arguments in its state, and every waiting request holds that state.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn doubles `plan` in its state"
)]
pub fn run(upstream: &Arc<Upstream>, mut plan: Plan) -> impl Future<Output = Attempted> + '_ {
    async move {
        let retry = &upstream.config().retry;
        let mut so_far = SoFar::default();
        loop {
            let admitted = match upstream.breaker_admit() {
                Ok(admitted) => admitted,
                Err(retry_after) => {
                    upstream.note_rejected("breaker_open");
                    return so_far.end(Err(ProxyError::BreakerOpen { retry_after }));
                }
            };
            // On every early return, `admitted` drops unused: the breaker's place goes back.
            let grant = match wait_for_grant(upstream, &mut plan).await {
                Ok(grant) => grant,
                Err(error) => return so_far.end(Err(error)),
            };
            let queue_wait = grant.queue_wait;
            so_far.queue_wait += queue_wait;
            let (reservation, slot) = grant.into_parts();
            let body = match plan.body.ready(&plan.progress).await {
                Ok(body) => body,
                Err(error) => {
                    // The client's fault, before anything was sent: the breaker's place and
                    // the quota unit go back (both guards drop unused).
                    return so_far.end(Err(error));
                }
            };
            so_far.attempts += 1;
            let tries = Tries {
                sent: so_far.attempts,
                repeatable: plan.safe_to_repeat && body.replayable(),
                deadline: plan.deadline,
            };
            let request = Request::from_parts(plan.parts.clone(), body.take());
            let sent = FinishOnDrop::new(attempt(Attempt {
                upstream: Arc::clone(upstream),
                admitted,
                reservation,
                slot,
                request,
                route: Arc::clone(&plan.route),
                progress: Arc::clone(&plan.progress),
                queue_wait,
            }))
            .await;

            let now = Instant::now();
            match retry::decide(retry, tries, sent.ended(), now, rand::random()) {
                Next::Answer => return sent.answer(so_far),
                Next::GiveUp { retry_after } => {
                    upstream.note_rejected("queue_timeout");
                    return so_far.end(Err(ProxyError::QueueTimeout { retry_after }));
                }
                Next::Requeue { paused_for } => {
                    // The next grant waits for the quota's pause.
                    if let Some(paused_for) = paused_for {
                        upstream.observe_backoff(paused_for);
                    }
                    upstream.note_retry(Reason::RateLimited);
                }
                Next::Backoff { reason, delay } => {
                    drop(sent);
                    upstream.note_retry(reason);
                    upstream.observe_backoff(delay);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = plan.drain.answer_by() => {
                            upstream.note_rejected("shutting_down");
                            return so_far.end(Err(ProxyError::ShuttingDown { retry_after: SHUTDOWN_RETRY }));
                        }
                    }
                }
            }
        }
    }
}

/// Waits in the upstream's queue for a grant (reading the client's body meanwhile, when the
/// upstream's spool budget allows). A request that must wait gives up its place when the
/// client's side ends, or when the gateway's drain is about to end.
async fn wait_for_grant(upstream: &Upstream, plan: &mut Plan) -> Result<Grant, ProxyError> {
    let ask = Ask {
        partition: plan.partition.as_deref(),
        route: &plan.route,
    };
    let acquire = std::pin::pin!(upstream
        .scheduler()
        .acquire(plan.priority, ask, plan.deadline));
    let spool = plan.body.spool(upstream);
    let acquiring = acquire_reading(acquire, spool, &mut plan.body);
    // A grant at once goes, even to a client that half-closed after its request (it still
    // reads the answer); one that must wait gives up its place when the client's side ends:
    // a client that closed its connection is indistinguishable from one that half-closed,
    // and must cost no quota.
    let acquired = tokio::select! {
        biased;
        acquired = acquiring => acquired,
        () = plan.read_end.wait() => {
            upstream.note_rejected("client_closed");
            return Err(ProxyError::ClientClosed);
        }
        () = plan.drain.answer_by() => {
            upstream.note_rejected("shutting_down");
            return Err(ProxyError::ShuttingDown { retry_after: SHUTDOWN_RETRY });
        }
    };
    match acquired {
        Ok(Ok(grant)) => Ok(grant),
        Ok(Err(rejected)) => Err(rejection(upstream, rejected)),
        // The client's body failed while it waited.
        Err(()) => Err(client_body_error(&plan.progress, None)),
    }
}

/// Waits for the grant while reading the body into `spool` (when there is one): once it is
/// read, hyper sees a client that hangs up and drops this request before it is sent. The body
/// (what was read, then the rest) goes back into `body`; `Err` when the client's body failed
/// meanwhile.
async fn acquire_reading(
    mut acquire: Pin<&mut impl Future<Output = Result<Grant, Rejected>>>,
    spool: Option<Spool>,
    body: &mut PendingBody,
) -> Result<Result<Grant, Rejected>, ()> {
    let Some(mut spool) = spool else {
        return Ok(acquire.await);
    };
    let acquired = loop {
        tokio::select! {
            acquired = acquire.as_mut() => break acquired,
            filled = spool.fill(), if !spool.done => {
                if filled.is_err() {
                    return Err(());
                }
            }
        }
    };
    if let PendingBody::Unread(rest, _) = body {
        *rest = spool.into_body();
    }
    Ok(acquired)
}

/// The error for a request the scheduler turned away, counted by reason.
fn rejection(upstream: &Upstream, rejected: Rejected) -> ProxyError {
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
        Rejected::Internal => {
            upstream.note_internal_error();
            return ProxyError::Internal("the request lost its place in the queue");
        }
    };
    upstream.note_rejected(reason);
    error
}

/// Whether a failed attempt was the client's fault: its body went past the limit, was cut
/// short, or was still arriving when the attempt's time ran out.
fn client_fault(progress: &BodyProgress, error: &ProxyError) -> Option<ProxyError> {
    match (progress.get(), error) {
        (Progress::TooLarge | Progress::Aborted | Progress::Stalled, _) => {
            Some(client_body_error(progress, None))
        }
        (Progress::Arriving, ProxyError::UpstreamTimeout(timeout))
            if progress.waiting_on_client() =>
        {
            Some(ProxyError::RequestTimeout(*timeout))
        }
        _ => None,
    }
}
