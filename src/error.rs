//! What Headroom itself refuses or fails at, mapped once to the contract's JSON error body.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};

/// Errors a boxed body may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error that Headroom answers itself (as opposed to an upstream response it passes on).
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No upstream prefix matches the request path.
    #[error("no upstream is configured for this path")]
    NoRoute,
    /// The request is malformed (bad path, absolute-form target, ...).
    #[error("{0}")]
    BadRequest(String),
    /// `CONNECT` or another method a reverse proxy must not serve.
    #[error("method {0} is not served: Headroom is a reverse proxy, not a forward proxy")]
    MethodNotAllowed(String),
    /// The request body is larger than `server.max_request_body`.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The request line and headers are larger than `server.max_header_bytes`.
    #[error("request headers larger than {limit} bytes")]
    HeadersTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The upstream could not be reached (connect error, reset, TLS failure).
    #[error("upstream unreachable: {0}")]
    UpstreamUnavailable(String),
    /// The upstream did not send response headers within `timeout`.
    #[error("upstream did not answer within {}", humantime::format_duration(*.0))]
    UpstreamTimeout(Duration),
    /// The upstream's circuit breaker is open (or tripped by an operator).
    #[error(
        "the circuit breaker of this upstream is open; requests are refused until it half-opens"
    )]
    BreakerOpen {
        /// Until half-open, when known.
        retry_after: Option<Duration>,
    },
    /// `queue.max_depth` requests already wait for this upstream.
    #[error("too many requests are waiting for this upstream; retry in {}s", secs(*.retry_after))]
    QueueFull {
        /// Estimated wait before a place frees up.
        retry_after: Duration,
    },
    /// The request would wait (or waited) longer than `queue.max_wait`.
    #[error("the upstream's quota does not allow this request within queue.max_wait; retry in {}s", secs(*.retry_after))]
    QueueTimeout {
        /// The real end of the supplier's pause when known, else an estimate.
        retry_after: Duration,
    },
    /// The client's request body was still arriving when the attempt's `timeout` ran out:
    /// the client's slowness, not the supplier's.
    #[error("the request body did not arrive within {}", humantime::format_duration(*.0))]
    RequestTimeout(Duration),
    /// The client closed its side of the connection while the request waited for quota:
    /// it was not sent (a client that vanished costs no quota). nginx's 499.
    #[error("the client closed its side of the connection while the request waited for quota; it was not sent")]
    ClientClosed,
    /// Headroom is shutting down and the request could not finish within
    /// `server.drain_timeout`: it was not sent (again).
    #[error("Headroom is shutting down and this request could not finish before it stops; retry in {}s (another replica, or this one once restarted)", secs(*.retry_after))]
    ShuttingDown {
        /// When to come back.
        retry_after: Duration,
    },
    /// Headroom's own fault (a bug): answered rather than left hanging.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// The contract's JSON error body, `{"error", "message", "upstream", "request_id"}`, for
/// every error Headroom answers itself (proxy and admin API alike).
pub fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    upstream: Option<&str>,
    request_id: Option<&str>,
) -> Response<Body> {
    let body = serde_json::json!({
        "error": code,
        "message": message,
        "upstream": upstream,
        "request_id": request_id,
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Whole seconds, rounded up so a client never comes back too early, and at least 1:
/// `Retry-After: 0` invites a tight loop.
fn secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl ProxyError {
    /// HTTP status sent to the client.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ClientClosed => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Self::QueueFull { .. }
            | Self::QueueTimeout { .. }
            | Self::BreakerOpen { .. }
            | Self::ShuttingDown { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The contract's `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::BadRequest(_) => "bad_request",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::UpstreamUnavailable(_) => "upstream_unavailable",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::QueueFull { .. } => "queue_full",
            Self::QueueTimeout { .. } => "queue_timeout",
            Self::BreakerOpen { .. } => "breaker_open",
            Self::RequestTimeout(_) => "request_timeout",
            Self::Internal(_) => "internal_error",
            Self::ClientClosed => "client_closed",
            Self::ShuttingDown { .. } => "shutting_down",
        }
    }

    /// `Retry-After` to send, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::QueueFull { retry_after }
            | Self::QueueTimeout { retry_after }
            | Self::ShuttingDown { retry_after } => Some(*retry_after),
            Self::BreakerOpen { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Builds the JSON error response.
    pub fn into_response(self, upstream: Option<&str>, request_id: &str) -> Response<Body> {
        let mut response = json_error(
            self.status(),
            self.code(),
            &self.to_string(),
            upstream,
            Some(request_id),
        );
        let headers = response.headers_mut();
        if let Some(wait) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs(wait)));
        }
        if matches!(self, Self::MethodNotAllowed(_)) {
            headers.insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
        response
    }
}
