//! One structured log line per request, written when its response body has been sent.

use tokio::time::Instant;

use crate::proxy::body::BodyObserver;

/// What the access log line says about one request.
#[derive(Debug)]
pub struct AccessLog {
    /// The request id sent upstream and returned to the client.
    pub request_id: http::HeaderValue,
    /// The upstream, when the request was routed.
    pub upstream: Option<std::sync::Arc<crate::upstream::Upstream>>,
    /// HTTP method.
    pub method: http::Method,
    /// The request target; only its path is logged (queries may carry secrets).
    pub uri: http::Uri,
    /// Status sent to the client.
    pub status: u16,
    /// Attempts made upstream.
    pub attempts: u32,
    /// Time spent queued, in milliseconds.
    pub queue_ms: u64,
    /// When the request arrived.
    pub started: Instant,
    /// Headroom's own error code, when it answered itself.
    pub error: Option<&'static str>,
    /// The upstream concurrency slot, held until the response body has been sent.
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Where `headroom_requests_total` and the duration histogram are counted for a request
    /// that matched no upstream.
    pub unrouted: std::sync::Arc<crate::metrics::UpstreamHandles>,
    /// The client connection, told when this response is done.
    pub connection: std::sync::Arc<crate::proxy::idle::ReadEnd>,
}

impl BodyObserver for AccessLog {
    fn finished(&mut self, bytes: u64, complete: bool) {
        self.slot = None;
        self.connection.response_finished();
        let elapsed = self.started.elapsed();
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let handles = self
            .upstream
            .as_ref()
            .map_or(&*self.unrouted, |upstream| upstream.handles());
        handles.count_request(self.status);
        handles.observe_duration(elapsed.as_secs_f64());
        tracing::info!(
            target: "headroom::access",
            request_id = self.request_id.to_str().unwrap_or_default(),
            upstream = self.upstream.as_ref().map_or("-", |upstream| upstream.name()),
            method = self.method.as_str(),
            path = self.uri.path(),
            status = self.status,
            duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            attempts = self.attempts,
            queue_ms = self.queue_ms,
            bytes_sent = bytes,
            complete,
            error = self.error.unwrap_or("-"),
            "request"
        );
    }
}
