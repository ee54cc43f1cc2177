//! The request path: refuse what a reverse proxy must not serve, route, forward, stream back,
//! and log one line when the response is done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::error::ProxyError;
use crate::metrics::{Metrics, UpstreamHandles};
use crate::proxy::access_log::AccessLog;
use crate::proxy::attempts::{self, PendingBody, Plan};
use crate::proxy::body::{BodyProgress, LimitedBody, ObservedBody, Progress, Slotted};
use crate::proxy::headers::{self, HEADROOM_ATTEMPTS, HEADROOM_QUEUE_MS, X_REQUEST_ID};
use crate::proxy::idle::{Drain as ReadEndDrain, IdleBody, ReadEnd};
use crate::proxy::links;
use crate::proxy::Router;
use crate::quota::state::route_of;
use crate::retry;
use crate::scheduler::queue::HEADROOM_PRIORITY;
use crate::scheduler::Priority;
use crate::upstream::Upstream;

/// RFC 9112 3.2: an HTTP/1.1 request carries exactly one `Host`, and it is a valid
/// `host[:port]` (empty is allowed); HTTP/1.0 may leave it out.
fn check_host(request: &Request<Incoming>) -> Result<(), ProxyError> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Host header".into()));
    }
    let Some(host) = host else {
        if request.version() == http::Version::HTTP_10 {
            return Ok(());
        }
        return Err(ProxyError::BadRequest(
            "an HTTP/1.1 request needs a Host header".into(),
        ));
    };
    let bytes = host.as_bytes();
    let valid = bytes.is_empty()
        || (!bytes.contains(&b'@') && http::uri::Authority::try_from(bytes).is_ok());
    if valid {
        Ok(())
    } else {
        Err(ProxyError::BadRequest("invalid Host header".into()))
    }
}

/// Milliseconds for `Headroom-Queue-Ms` and the log.
fn queue_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

/// The proxy: routing table and the limits on client requests.
#[derive(Debug)]
pub struct Proxy {
    router: Router,
    drain: Arc<ReadEndDrain>,
    max_request_body: u64,
    max_header_bytes: usize,
    idle_timeout: Duration,
    metrics: Arc<Metrics>,
    /// The metric handles of requests that matched no upstream.
    unrouted: Arc<UpstreamHandles>,
}

/// What happened to one request before its response started.
struct Forwarded {
    upstream: Option<Arc<Upstream>>,
    result: Result<Response<Slotted>, ProxyError>,
    attempts: u32,
    queue_wait: Duration,
    /// The client's request body was read to its end.
    body_read: bool,
}

impl Forwarded {
    fn refused(upstream: Option<Arc<Upstream>>, error: ProxyError) -> Self {
        Self {
            upstream,
            result: Err(error),
            attempts: 0,
            queue_wait: Duration::ZERO,
            body_read: false,
        }
    }
}

impl Proxy {
    /// A proxy over `router` with the client limits of `server`.
    pub fn new(router: Router, server: &ServerConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            router,
            drain: Arc::default(),
            max_request_body: server.max_request_body,
            max_header_bytes: server.max_header_bytes,
            idle_timeout: server.idle_timeout,
            unrouted: Arc::new(metrics.handles(crate::metrics::NO_UPSTREAM)),
            metrics,
        }
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The routing table.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The gateway's drain (begun on SIGTERM).
    pub fn drain(&self) -> &ReadEndDrain {
        &self.drain
    }

    /// Serves one client request from `peer`.
    /// `read_end` tells when the client's side of the connection ends (see [`ReadEnd`]).
    pub async fn handle(
        &self,
        peer: SocketAddr,
        request: Request<Incoming>,
        read_end: Arc<ReadEnd>,
    ) -> Response<Body> {
        let started = Instant::now();
        read_end.request_started();
        let connection = Arc::clone(&read_end);
        let request_id = headers::request_id(request.headers());
        // `Connection: close` read byte-wise: a value with other odd bytes in it still closes.
        let close = headers::asks_to_close(request.headers());
        // A body answered without being read to its end would be read (drained) by hyper
        // after the response: the connection then closes instead, so that its next bytes are
        // always a request head (the head checks and timers rely on it).
        let has_body = !http_body::Body::is_end_stream(request.body());
        let method = request.method().clone();
        let uri = request.uri().clone();

        // A panic on the request path is a bug; the client still gets an answer (500), and
        // it is counted, rather than a dropped connection.
        // Boxed, here and for the attempts: awaited in place, a nested future's state is laid
        // out again in each caller's (measured: the attempts' 3 KiB took 7 KiB in `forward`),
        // and a waiting request holds all of it.
        let forwarded = std::panic::AssertUnwindSafe(Box::pin(self.forward(
            peer,
            request,
            &request_id,
            started,
            Arc::clone(&read_end),
        )));
        let outcome = match futures_util::FutureExt::catch_unwind(forwarded).await {
            Ok(outcome) => outcome,
            Err(_panic) => {
                tracing::error!(request_id = ?request_id, "the request path panicked (a bug)");
                self.metrics
                    .internal_errors
                    .with_label_values(&[crate::metrics::NO_UPSTREAM])
                    .inc();
                Forwarded::refused(None, ProxyError::Internal("the request path failed"))
            }
        };

        let mut log = AccessLog {
            request_id: request_id.clone(),
            upstream: outcome.upstream.clone(),
            method,
            uri,
            status: 0,
            attempts: outcome.attempts,
            queue_ms: queue_ms(outcome.queue_wait),
            started,
            error: None,
            unrouted: Arc::clone(&self.unrouted),
            connection,
        };
        let mut response = match outcome.result {
            Ok(upstream_response) => {
                let (mut parts, body) = upstream_response.into_parts();
                headers::strip_hop_by_hop(&mut parts.headers);
                headers::add_via(&mut parts.headers);
                if let Some(upstream) = outcome.upstream.as_ref() {
                    if upstream.config().rewrite_links {
                        links::rewrite(
                            &mut parts.headers,
                            upstream.config().url.as_str().trim_end_matches('/'),
                            upstream.prefix(),
                        );
                    }
                }
                log.status = parts.status.as_u16();
                let body = IdleBody::new(body, self.idle_timeout);
                Response::from_parts(parts, Body::new(ObservedBody::new(body, log)))
            }
            Err(error) => {
                log.error = Some(error.code());
                let malformed = matches!(error, ProxyError::BadRequest(_));
                let mut response = error.into_response(
                    log.upstream.as_ref().map(|upstream| upstream.name()),
                    log.request_id.to_str().unwrap_or_default(),
                );
                if malformed {
                    // After a malformed request the connection's framing cannot be trusted:
                    // close it (RFC 9112 9.6), as for a request hyper could not parse.
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                log.status = response.status().as_u16();
                response.map(|body| Body::new(ObservedBody::new(body, log)))
            }
        };
        let headers = response.headers_mut();
        if close || (has_body && !outcome.body_read) {
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        read_end.set_closing(
            headers
                .get(http::header::CONNECTION)
                .is_some_and(|value| value == "close"),
        );
        headers.insert(&X_REQUEST_ID, request_id);
        headers.insert(&HEADROOM_ATTEMPTS, HeaderValue::from(outcome.attempts));
        headers.insert(
            &HEADROOM_QUEUE_MS,
            HeaderValue::from(queue_ms(outcome.queue_wait)),
        );
        response
    }

    async fn forward(
        &self,
        peer: SocketAddr,
        request: Request<Incoming>,
        request_id: &HeaderValue,
        started: Instant,
        read_end: Arc<ReadEnd>,
    ) -> Forwarded {
        if read_end.take_ambiguous_length() {
            // RFC 9112 6.3: likely request smuggling; refused, and the connection closed.
            return Forwarded::refused(
                None,
                ProxyError::BadRequest(
                    "a request with both Content-Length and Transfer-Encoding".into(),
                ),
            );
        }
        if let Err(error) = self.admit(&request) {
            return Forwarded::refused(None, error);
        }
        let Some((upstream, rest)) = self.router.route(request.uri().path()) else {
            return Forwarded::refused(None, ProxyError::NoRoute);
        };
        let upstream = Arc::clone(upstream);
        let uri = match upstream.target().uri(rest, request.uri().query()) {
            Ok(uri) => uri,
            Err(error) => return Forwarded::refused(Some(upstream), error),
        };
        let route: Arc<str> = Arc::from(route_of(rest));

        let (mut parts, body) = request.into_parts();
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let priority = Priority::from_header(parts.headers.get(&HEADROOM_PRIORITY));
        parts.headers.remove(&HEADROOM_PRIORITY);
        let partition = upstream.partition_key(&parts.headers);
        headers::prepare_upstream_request(&mut parts.headers, peer.ip(), request_id);

        let progress = Arc::new(BodyProgress::new(self.max_request_body, self.idle_timeout));
        let body_progress = Arc::clone(&progress);
        // A client that stops sending its body mid-way is cut after `idle_timeout`: its
        // request holds a slot and a unit of quota while the body is read.
        let body = IdleBody::new(body, self.idle_timeout);
        let limited = LimitedBody::new(body, self.max_request_body, Arc::clone(&progress));
        let safe_to_repeat = retry::is_safe_to_repeat(&parts.method, &parts.headers);
        let max_body = if safe_to_repeat && upstream.config().retry.max_attempts > 1 {
            upstream.config().retry.max_body
        } else {
            0
        };
        let plan = Plan {
            parts,
            body: PendingBody::Unread(Body::new(limited), max_body),
            progress,
            priority,
            partition,
            route,
            deadline: started + upstream.config().queue.max_wait,
            safe_to_repeat,
            read_end,
            drain: Arc::clone(&self.drain),
        };
        let attempted = Box::pin(attempts::run(&upstream, plan)).await;
        Forwarded {
            upstream: Some(upstream),
            result: attempted.result,
            attempts: attempted.attempts,
            queue_wait: attempted.queue_wait,
            body_read: body_progress.get() == Progress::Complete,
        }
    }

    /// Refusals that need no upstream: forward-proxy use, oversized heads and bodies.
    fn admit(&self, request: &Request<Incoming>) -> Result<(), ProxyError> {
        let method = request.method();
        if method == Method::CONNECT || method == Method::TRACE {
            return Err(ProxyError::MethodNotAllowed(method.to_string()));
        }
        // Absolute-form targets (`GET http://host/prefix/...`) are accepted (RFC 9112 3.2.2)
        // and routed by their path alone: the authority never picks the destination, so
        // Headroom is never an open proxy.
        check_host(request)?;
        if headers::head_size(method, request.uri(), request.headers()) > self.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge {
                limit: self.max_header_bytes,
            });
        }
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_request_body) {
            return Err(ProxyError::PayloadTooLarge {
                limit: self.max_request_body,
            });
        }
        Ok(())
    }
}
