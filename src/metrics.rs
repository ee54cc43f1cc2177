//! Prometheus metrics: the contract's names, labels bounded to the upstream name and small
//! enums, histogram buckets fitted to what each one measures.

use std::sync::OnceLock;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::retry::Reason;

/// Label value of requests that matched no upstream.
pub const NO_UPSTREAM: &str = "none";

/// Every metric Headroom exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `headroom_requests_total{upstream, status}`: responses sent to clients.
    pub requests: IntCounterVec,
    /// `headroom_upstream_requests_total{upstream, status}`: attempts (`error`: no response).
    pub upstream_requests: IntCounterVec,
    /// `headroom_retries_total{upstream, reason}`.
    pub retries: IntCounterVec,
    /// `headroom_rejected_total{upstream, reason}`.
    pub rejected: IntCounterVec,
    /// `headroom_request_duration_seconds{upstream}`: arrival to the end of the response body.
    pub request_duration: HistogramVec,
    /// `headroom_queue_wait_seconds{upstream}`: waiting for quota or a slot, per attempt.
    pub queue_wait: HistogramVec,
    /// `headroom_backoff_seconds{upstream}`: backoff delays and rate-limit pauses.
    pub backoff: HistogramVec,
    /// `headroom_queue_depth{upstream}`.
    pub queue_depth: IntGaugeVec,
    /// `headroom_in_flight{upstream}`.
    pub in_flight: IntGaugeVec,
    /// `headroom_quota_limit{upstream}` (absent while unknown).
    pub quota_limit: GaugeVec,
    /// `headroom_quota_remaining{upstream}` (absent while unknown).
    pub quota_remaining: GaugeVec,
    /// `headroom_quota_reset_seconds{upstream}` (absent while unknown).
    pub quota_reset_seconds: GaugeVec,
    /// `headroom_breaker_state{upstream}`: 0 closed, 1 half-open, 2 open, 3 forced open.
    pub breaker_state: IntGaugeVec,
    /// `headroom_ignored_headers_total{upstream}`: malformed rate-limit header values ignored.
    pub ignored_headers: IntCounterVec,
    /// `headroom_internal_errors_total{upstream}`: Headroom's own faults (a task that panicked
    /// and was restarted, a request answered 500 `internal_error`). Never expected.
    pub internal_errors: IntCounterVec,
    /// `headroom_store_requests_total{op, result}`: calls to the fleet's Redis (`op`:
    /// reserve, settle, heartbeat, breaker, connect; `result`: ok, error, timeout).
    pub store_requests: IntCounterVec,
    /// `headroom_store_latency_seconds{op}`: how long each Redis call took.
    pub store_latency: HistogramVec,
    /// `headroom_store_degraded{upstream}`: 1 while Redis is away and the replica paces alone.
    pub store_degraded: IntGaugeVec,
    /// `headroom_store_fallbacks_total`: times the replica switched to pacing alone.
    pub store_fallbacks: IntCounter,
    /// `headroom_replicas`: replicas seen alive in the fleet's Redis at the last heartbeat.
    pub replicas: IntGauge,
    /// `headroom_header_timeouts_total`: client connections closed because a request head
    /// took longer than `server.header_read_timeout`.
    pub header_timeouts: IntCounter,
    /// `headroom_client_connections{worker}`: client connections open on each worker thread
    /// (`server.workers`); new connections go to the worker with the fewest.
    pub client_connections: IntGaugeVec,
    /// `headroom_client_connections_idle`: client connections idle between requests and
    /// parked, holding no buffers (nginx's "waiting").
    pub idle_client_connections: IntGauge,
    /// `headroom_log_dropped_total`: log lines dropped because stdout could not keep up
    /// (a request never waits for the log).
    pub log_dropped: IntCounter,
}

/// One upstream's per-request metric handles, resolved once (the label lookup hashes the
/// label values and takes a lock; done per request it showed in profiles). Each series is
/// created on first use, so it appears only once something was counted in it.
#[derive(Debug)]
pub struct UpstreamHandles {
    upstream: String,
    metrics: Metrics,
    /// `headroom_requests_total{upstream, status}`, statuses 100 to 599.
    requests: Box<[OnceLock<IntCounter>]>,
    /// `headroom_upstream_requests_total{upstream, status}`, statuses 100 to 599.
    attempts: Box<[OnceLock<IntCounter>]>,
    /// `headroom_upstream_requests_total{upstream, status="error"}`.
    attempt_errors: OnceLock<IntCounter>,
    /// `headroom_request_duration_seconds{upstream}`.
    request_duration: OnceLock<Histogram>,
    /// `headroom_queue_wait_seconds{upstream}`.
    queue_wait: OnceLock<Histogram>,
    /// `headroom_retries_total{upstream, reason}`, by [`Reason`].
    retries: [OnceLock<IntCounter>; 4],
    /// `headroom_backoff_seconds{upstream}`.
    backoff: OnceLock<Histogram>,
    /// `headroom_rejected_total{upstream, reason}`, for each of [`REJECTIONS`].
    rejected: [OnceLock<IntCounter>; REJECTIONS.len()],
    /// `headroom_ignored_headers_total{upstream}`.
    ignored_headers: OnceLock<IntCounter>,
    /// `headroom_internal_errors_total{upstream}`.
    internal_errors: OnceLock<IntCounter>,
}

/// The `reason`s of `headroom_rejected_total` (a request Headroom answered itself).
pub const REJECTIONS: [&str; 5] = [
    "breaker_open",
    "client_closed",
    "queue_full",
    "queue_timeout",
    "shutting_down",
];

impl UpstreamHandles {
    /// Counts a response sent to a client: `headroom_requests_total{upstream, status}`.
    pub fn count_request(&self, status: u16) {
        self.by_status(&self.metrics.requests, &self.requests, status);
    }

    /// Counts an attempt: `headroom_upstream_requests_total{upstream, status}` (`None`: no
    /// response, `status="error"`).
    pub fn count_attempt(&self, status: Option<u16>) {
        let vec = &self.metrics.upstream_requests;
        match status {
            Some(status) => self.by_status(vec, &self.attempts, status),
            None => self
                .attempt_errors
                .get_or_init(|| vec.with_label_values(&[&self.upstream, "error"]))
                .inc(),
        }
    }

    /// Observes a request's whole duration: `headroom_request_duration_seconds{upstream}`.
    pub fn observe_duration(&self, seconds: f64) {
        self.request_duration
            .get_or_init(|| {
                self.metrics
                    .request_duration
                    .with_label_values(&[&self.upstream])
            })
            .observe(seconds);
    }

    /// Observes an attempt's wait: `headroom_queue_wait_seconds{upstream}`.
    pub fn observe_queue_wait(&self, seconds: f64) {
        self.queue_wait
            .get_or_init(|| self.metrics.queue_wait.with_label_values(&[&self.upstream]))
            .observe(seconds);
    }

    /// Counts a retry: `headroom_retries_total{upstream, reason}`.
    pub fn count_retry(&self, reason: Reason) {
        let index = match reason {
            Reason::RateLimited => 0,
            Reason::ServerError => 1,
            Reason::ConnectError => 2,
            Reason::Timeout => 3,
        };
        self.retries[index]
            .get_or_init(|| {
                self.metrics
                    .retries
                    .with_label_values(&[&self.upstream, reason.as_str()])
            })
            .inc();
    }

    /// Observes a backoff or a rate-limit pause: `headroom_backoff_seconds{upstream}`.
    pub fn observe_backoff(&self, seconds: f64) {
        self.backoff
            .get_or_init(|| self.metrics.backoff.with_label_values(&[&self.upstream]))
            .observe(seconds);
    }

    /// Counts a request Headroom answered itself: `headroom_rejected_total{upstream,
    /// reason}` (a reason outside [`REJECTIONS`] is looked up each time).
    pub fn count_rejected(&self, reason: &str) {
        let lookup = || {
            self.metrics
                .rejected
                .with_label_values(&[&self.upstream, reason])
        };
        match REJECTIONS.iter().position(|known| *known == reason) {
            Some(index) => self.rejected[index].get_or_init(lookup).inc(),
            None => lookup().inc(),
        }
    }

    /// Counts header values ignored: `headroom_ignored_headers_total{upstream}`.
    pub fn count_ignored_headers(&self, count: u64) {
        self.ignored_headers
            .get_or_init(|| {
                self.metrics
                    .ignored_headers
                    .with_label_values(&[&self.upstream])
            })
            .inc_by(count);
    }

    /// Counts one of Headroom's own faults: `headroom_internal_errors_total{upstream}`.
    pub fn count_internal_error(&self) {
        self.internal_errors
            .get_or_init(|| {
                self.metrics
                    .internal_errors
                    .with_label_values(&[&self.upstream])
            })
            .inc();
    }

    /// Counts `status` in `vec`, through its handle in `counters` (statuses outside 100 to
    /// 599, never seen in practice, are looked up each time).
    fn by_status(&self, vec: &IntCounterVec, counters: &[OnceLock<IntCounter>], status: u16) {
        let lookup = || vec.with_label_values(&[&self.upstream, &status.to_string()]);
        match usize::from(status)
            .checked_sub(100)
            .and_then(|i| counters.get(i))
        {
            Some(slot) => slot.get_or_init(lookup).inc(),
            None => lookup().inc(),
        }
    }
}

/// A metric could not be registered (a bug: names are fixed).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// The per-request handles of `upstream` ([`NO_UPSTREAM`] for unrouted requests).
    #[must_use]
    pub fn handles(&self, upstream: &str) -> UpstreamHandles {
        let by_status = || (100..600).map(|_| OnceLock::new()).collect();
        UpstreamHandles {
            upstream: upstream.to_owned(),
            metrics: self.clone(),
            requests: by_status(),
            attempts: by_status(),
            attempt_errors: OnceLock::new(),
            request_duration: OnceLock::new(),
            queue_wait: OnceLock::new(),
            retries: Default::default(),
            backoff: OnceLock::new(),
            rejected: Default::default(),
            ignored_headers: OnceLock::new(),
            internal_errors: OnceLock::new(),
        }
    }

    /// A fresh registry with every metric.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
                let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let histogram =
            |name: &str, help: &str, buckets: Vec<f64>| -> Result<HistogramVec, MetricsError> {
                let metric = HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets),
                    &["upstream"],
                )?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let int_gauge = |name: &str, help: &str| -> Result<IntGaugeVec, MetricsError> {
            let metric = IntGaugeVec::new(Opts::new(name, help), &["upstream"])?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, MetricsError> {
            let metric = GaugeVec::new(Opts::new(name, help), &["upstream"])?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        Ok(Self {
            requests: counter(
                "headroom_requests_total",
                "Responses sent to clients, by upstream and status code.",
                &["upstream", "status"],
            )?,
            upstream_requests: counter(
                "headroom_upstream_requests_total",
                "Attempts sent upstream, by status code (error: no response).",
                &["upstream", "status"],
            )?,
            retries: counter(
                "headroom_retries_total",
                "Attempts retried, by reason.",
                &["upstream", "reason"],
            )?,
            rejected: counter(
                "headroom_rejected_total",
                "Requests Headroom answered 503 itself, by reason.",
                &["upstream", "reason"],
            )?,
            request_duration: histogram(
                "headroom_request_duration_seconds",
                "Time from a request's arrival to the end of its response.",
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0, 300.0,
                ],
            )?,
            queue_wait: histogram(
                "headroom_queue_wait_seconds",
                "Time an attempt waited for quota or a concurrency slot.",
                vec![
                    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
                    300.0, 600.0,
                ],
            )?,
            backoff: histogram(
                "headroom_backoff_seconds",
                "Backoff delays before retries and rate-limit pauses.",
                vec![
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
                ],
            )?,
            queue_depth: int_gauge(
                "headroom_queue_depth",
                "Requests waiting for quota or a slot.",
            )?,
            in_flight: int_gauge("headroom_in_flight", "Requests holding a concurrency slot.")?,
            quota_limit: gauge(
                "headroom_quota_limit",
                "Requests per window, as learned (absent while unknown).",
            )?,
            quota_remaining: gauge(
                "headroom_quota_remaining",
                "Requests left in the window, minus those in flight (absent while unknown).",
            )?,
            quota_reset_seconds: gauge(
                "headroom_quota_reset_seconds",
                "Seconds until the window resets or the pause ends (absent while unknown).",
            )?,
            breaker_state: int_gauge(
                "headroom_breaker_state",
                "Circuit breaker: 0 closed, 1 half-open, 2 open, 3 forced open.",
            )?,
            ignored_headers: counter(
                "headroom_ignored_headers_total",
                "Malformed rate-limit header values ignored.",
                &["upstream"],
            )?,
            internal_errors: counter(
                "headroom_internal_errors_total",
                "Headroom's own faults: tasks restarted after a panic, requests answered 500.",
                &["upstream"],
            )?,
            store_requests: counter(
                "headroom_store_requests_total",
                "Calls to the fleet's Redis, by operation and result (ok, error, timeout).",
                &["op", "result"],
            )?,
            store_latency: {
                let metric = HistogramVec::new(
                    HistogramOpts::new(
                        "headroom_store_latency_seconds",
                        "Time each call to the fleet's Redis took, by operation.",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0,
                    ]),
                    &["op"],
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            store_degraded: int_gauge(
                "headroom_store_degraded",
                "1 while the fleet's Redis is away and this replica paces alone on its share.",
            )?,
            store_fallbacks: {
                let metric = IntCounter::new(
                    "headroom_store_fallbacks_total",
                    "Times this replica switched to pacing alone because Redis failed.",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            replicas: {
                let metric = IntGauge::new(
                    "headroom_replicas",
                    "Replicas seen alive in the fleet's Redis at the last heartbeat.",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            client_connections: {
                let metric = IntGaugeVec::new(
                    Opts::new(
                        "headroom_client_connections",
                        "Client connections open on each worker thread.",
                    ),
                    &["worker"],
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            idle_client_connections: {
                let metric = IntGauge::new(
                    "headroom_client_connections_idle",
                    "Client connections idle between requests, parked without buffers.",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            header_timeouts: {
                let metric = IntCounter::new(
                    "headroom_header_timeouts_total",
                    "Client connections closed because a request head took longer than server.header_read_timeout.",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            log_dropped: {
                let metric = IntCounter::new(
                    "headroom_log_dropped_total",
                    "Log lines dropped because stdout could not keep up (requests never wait for the log).",
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            registry,
        })
    }

    /// Sets a gauge that may be unknown: unknown values are not exported at all.
    pub fn set_optional(gauge: &GaugeVec, upstream: &str, value: Option<f64>) {
        match value {
            Some(value) => gauge.with_label_values(&[upstream]).set(value),
            None => {
                let _ = gauge.remove_label_values(&[upstream]);
            }
        }
    }

    /// The Prometheus text format of every metric.
    pub fn render(&self) -> String {
        let dropped = crate::logging::dropped_lines();
        self.log_dropped
            .inc_by(dropped.saturating_sub(self.log_dropped.get()));
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %err, "could not encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handles resolved once count into the same series a label lookup would.
    #[test]
    fn handles_count_into_the_labelled_series() {
        let metrics = Metrics::new().expect("metrics");
        let handles = metrics.handles("github");
        handles.count_retry(Reason::RateLimited);
        handles.count_retry(Reason::RateLimited);
        handles.count_retry(Reason::Timeout);
        handles.count_rejected("queue_full");
        handles.count_rejected("something_new");
        handles.count_ignored_headers(3);
        handles.count_internal_error();
        handles.observe_backoff(0.25);
        let text = metrics.render();
        for line in [
            r#"headroom_retries_total{reason="rate_limited",upstream="github"} 2"#,
            r#"headroom_retries_total{reason="timeout",upstream="github"} 1"#,
            r#"headroom_rejected_total{reason="queue_full",upstream="github"} 1"#,
            r#"headroom_rejected_total{reason="something_new",upstream="github"} 1"#,
            r#"headroom_ignored_headers_total{upstream="github"} 3"#,
            r#"headroom_internal_errors_total{upstream="github"} 1"#,
            r#"headroom_backoff_seconds_count{upstream="github"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line}");
        }
    }
}
