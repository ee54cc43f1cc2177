//! One configured supplier API and the state Headroom keeps for it.
//!
//! Every per-upstream concern (the pooled HTTP client, built in [`client`]; the scheduler
//! with its quota state; the circuit breaker; the metric handles) hangs off this one value,
//! which the router hands to the request path and the admin API.

pub mod client;
pub mod target;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use rustls::RootCertStore;
use tokio::time::Instant;

use crate::breaker::{Admission, Breaker, Phase as BreakerPhase, Verdict};
use crate::config::UpstreamConfig;
use crate::metrics::{Metrics, UpstreamHandles};
use crate::quota::headers;
use crate::quota::observation::{ParseOptions, QuotaObservation};
use crate::quota::state::QuotaState;
use crate::quota::tracker::TrackerConfig;
use crate::retry::Reason;
use crate::scheduler::{Scheduler, SchedulerConfig};

use crate::store::{Fleet, Member, RedisQuota};
use client::HttpClient;
use target::TargetBase;

/// Longest wait any rate-limit header may announce before it is taken for garbage: two
/// days covers daily quotas (HubSpot, Salesforce's rolling 24 hours).
const MAX_ANNOUNCED_WAIT: Duration = Duration::from_secs(2 * 24 * 3600);

/// An upstream: its configuration and its live state.
#[derive(Debug)]
pub struct Upstream {
    config: UpstreamConfig,
    target: TargetBase,
    /// One pool per worker thread (see [`crate::workers`]): a pooled connection is driven by
    /// the thread that opened it, so a request only uses its own thread's connections.
    clients: Box<[HttpClient]>,
    scheduler: Scheduler,
    parse_options: ParseOptions,
    /// Header problems already logged (each is logged once per upstream).
    warned: Mutex<HashSet<(String, &'static str)>>,
    breaker: Mutex<Breaker>,
    metrics: Arc<Metrics>,
    /// This upstream's per-request metric handles.
    handles: UpstreamHandles,
    /// KiB of request bodies queued requests may read while they wait (see
    /// [`Upstream::spool_budget`]).
    spool: Arc<tokio::sync::Semaphore>,
    /// An operator's trip or reset made while the fleet's Redis was away (see
    /// [`Upstream::publish_breaker`]).
    unsent_breaker: Mutex<Option<bool>>,
}

/// Unit of the spool budget.
const SPOOL_UNIT: u64 = 1024;

/// Why an upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The URL cannot be used.
    #[error("upstream {name}: url: {reason}")]
    Url {
        /// Upstream name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Its HTTP client cannot be built.
    #[error(transparent)]
    Client(#[from] client::ClientError),
}

impl Upstream {
    /// Builds the upstream and its connection pool. `system_roots` are the platform's trusted
    /// CA certificates, loaded once for all upstreams.
    pub fn new(
        config: UpstreamConfig,
        system_roots: &RootCertStore,
        metrics: Arc<Metrics>,
    ) -> Result<Self, UpstreamError> {
        Self::with_fleet(config, system_roots, metrics, None, 1)
    }

    /// [`Upstream::new`], sharing the quota with the other replicas of `fleet` (Redis), with a
    /// connection pool for each of `workers` worker threads.
    pub fn with_fleet(
        config: UpstreamConfig,
        system_roots: &RootCertStore,
        metrics: Arc<Metrics>,
        fleet: Option<&Arc<Fleet>>,
        workers: usize,
    ) -> Result<Self, UpstreamError> {
        let target = TargetBase::from_url(&config.url).map_err(|reason| UpstreamError::Url {
            name: config.name.clone(),
            reason,
        })?;
        let clients = client::build(&config, system_roots, workers)?;
        let tracker = TrackerConfig {
            probes: u64::from(config.quota.probes),
            base_delay: config.retry.base_delay,
            max_delay: config.retry.max_delay,
            share: 1,
        };
        let mut quota = QuotaState::new(tracker, config.limit, config.quota.max_partitions);
        let remote = fleet.map(|fleet| {
            quota.set_share(fleet.replicas());
            RedisQuota::new(Arc::clone(fleet), &config.name, tracker, config.limit)
        });
        let scheduler = Scheduler::with_fleet(
            SchedulerConfig {
                max_concurrency: config.max_concurrency,
                max_depth: config.queue.max_depth,
                max_wait: config.queue.max_wait,
            },
            quota,
            metrics.internal_errors.with_label_values(&[&config.name]),
            remote,
        );
        let parse_options = ParseOptions {
            reset_format: config.quota.reset_format,
            max_wait: MAX_ANNOUNCED_WAIT,
        };
        let breaker = Mutex::new(Breaker::new(config.breaker));
        // As much as the requests in flight may buffer: `max_concurrency` bodies of
        // `retry.max_body` (at least 64 KiB each, so small POSTs are always covered).
        let spool_bytes = (config.max_concurrency as u64)
            .saturating_mul(config.retry.max_body.max(64 * SPOOL_UNIT));
        let spool_units = usize::try_from(spool_bytes / SPOOL_UNIT)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        let handles = metrics.handles(&config.name);
        Ok(Self {
            handles,
            spool: Arc::new(tokio::sync::Semaphore::new(spool_units)),
            config,
            target,
            clients,
            scheduler,
            parse_options,
            warned: Mutex::new(HashSet::new()),
            unsent_breaker: Mutex::new(None),
            breaker,
            metrics,
        })
    }

    /// The scheduler: queue, concurrency and quota.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Reads the quota facts of a response (received at wall-clock `now`). Malformed values
    /// are ignored; each kind of problem is logged once per upstream.
    pub fn observe_headers(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> (Option<QuotaObservation>, usize) {
        let (observation, warnings) = headers::parse(status, headers, now, &self.parse_options);
        let count = warnings.len();
        if count > 0 {
            self.handles.count_ignored_headers(count as u64);
        }
        if count > 0 {
            let mut warned = crate::lock(&self.warned);
            for warning in warnings {
                if warned.insert((warning.header.to_string(), warning.reason)) {
                    tracing::warn!(
                        upstream = %self.config.name,
                        header = %warning.header,
                        value = %warning.value,
                        reason = warning.reason,
                        "ignored a malformed rate-limit header (logged once per header and reason)"
                    );
                }
            }
        }
        (observation, count)
    }

    /// Notes that an attempt is retried.
    pub fn note_retry(&self, reason: Reason) {
        tracing::debug!(upstream = %self.config.name, reason = reason.as_str(), "retrying");
        self.handles.count_retry(reason);
    }

    /// Notes a backoff delay before a retry, or a rate-limit pause.
    pub fn observe_backoff(&self, delay: Duration) {
        self.handles.observe_backoff(delay.as_secs_f64());
    }

    /// Notes one attempt's result: its status, or `error` when no response came.
    pub fn note_attempt(&self, status: Option<StatusCode>, queue_wait: Duration) {
        self.handles.count_attempt(status.map(|s| s.as_u16()));
        self.handles.observe_queue_wait(queue_wait.as_secs_f64());
    }

    /// This upstream's per-request metric handles.
    pub fn handles(&self) -> &UpstreamHandles {
        &self.handles
    }

    /// A share of the spool budget for a queued request whose body is `len` bytes long: while
    /// it waits, its body is read into memory, so that hyper sees the client hang up (and the
    /// request leaves the queue unsent). `None` when the budget is spent: the body then stays
    /// unread until the request's turn.
    pub fn spool_budget(&self, len: u64) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let units = u32::try_from(len.div_ceil(SPOOL_UNIT).max(1)).ok()?;
        Arc::clone(&self.spool).try_acquire_many_owned(units).ok()
    }

    /// Notes one of Headroom's own faults (a request answered 500 `internal_error`).
    pub fn note_internal_error(&self) {
        self.handles.count_internal_error();
    }

    /// Notes a request Headroom answered 503 itself.
    pub fn note_rejected(&self, reason: &str) {
        self.handles.count_rejected(reason);
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        crate::lock(&self.breaker)
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerPhase {
        self.breaker().state(Instant::now())
    }

    /// May an attempt go? `Err` carries the Retry-After, when known. The admission is a
    /// guard: dropped without [`Admitted::record`] (the request left the queue, its client
    /// went away, it was a client's fault), it gives a half-open probe's place back, so the
    /// next request probes.
    pub fn breaker_admit(self: &Arc<Self>) -> Result<Admitted, Option<Duration>> {
        let mut breaker = self.breaker();
        let was_open = matches!(breaker.current(), BreakerPhase::Open { .. });
        let admitted = breaker.admit(Instant::now());
        let half_open = was_open && breaker.current() == BreakerPhase::HalfOpen;
        drop(breaker);
        if half_open {
            self.breaker_changed(BreakerPhase::HalfOpen, "open_for elapsed");
        }
        admitted.map(|admission| Admitted {
            upstream: Arc::clone(self),
            admission: Some(admission),
        })
    }

    /// An operator's trip: forced open until reset.
    pub fn trip(&self) {
        self.breaker().trip();
        self.breaker_changed(BreakerPhase::ForcedOpen, "operator");
    }

    /// An operator's reset: closed.
    pub fn reset(&self) {
        self.breaker().reset();
        self.breaker_changed(BreakerPhase::Closed, "operator");
    }

    /// Tells the fleet's other replicas of an operator's trip or reset done here. Returns
    /// whether it reached them (no fleet: `None`).
    pub async fn publish_breaker(&self, trip: bool) -> Option<bool> {
        let fleet = self.scheduler.fleet()?;
        let sent = fleet.publish_breaker(self.name(), trip).await.is_ok();
        if !sent {
            // Published when Redis answers again (the fleet's rejoin).
            self.keep_unsent_breaker(trip);
        } else {
            self.take_unsent_breaker();
        }
        Some(sent)
    }

    /// Where the quota state lives: `local`, `redis` or `degraded`.
    pub fn store_mode(&self) -> &'static str {
        self.scheduler.store_mode()
    }

    fn breaker_changed(&self, state: BreakerPhase, cause: &'static str) {
        tracing::warn!(upstream = %self.config.name, state = state.as_str(), cause, "circuit breaker changed state");
        self.metrics
            .breaker_state
            .with_label_values(&[self.name()])
            .set(state.gauge());
        let retry_after = match state {
            BreakerPhase::Open { until } => Some(until.saturating_duration_since(Instant::now())),
            BreakerPhase::ForcedOpen => None,
            BreakerPhase::Closed | BreakerPhase::HalfOpen => return,
        };
        self.scheduler
            .reject_waiting(crate::scheduler::Rejected::BreakerOpen { retry_after });
    }

    /// Refreshes this upstream's gauges (queue, in-flight, quota, breaker) before a scrape.
    pub fn refresh_gauges(&self) {
        let name = self.name();
        let m = &self.metrics;
        m.queue_depth
            .with_label_values(&[name])
            .set(self.scheduler.queue_depth() as i64);
        m.in_flight
            .with_label_values(&[name])
            .set(self.scheduler.in_flight() as i64);
        let quota = self.scheduler.quota();
        Metrics::set_optional(&m.quota_limit, name, quota.limit.map(|v| v as f64));
        Metrics::set_optional(&m.quota_remaining, name, quota.remaining.map(|v| v as f64));
        Metrics::set_optional(
            &m.quota_reset_seconds,
            name,
            quota.reset_in.map(|d| d.as_secs_f64()),
        );
        m.breaker_state
            .with_label_values(&[name])
            .set(self.breaker_state().gauge());
    }

    /// The quota partition key of a request, when `quota.partition_by` is set.
    pub fn partition_key(&self, headers: &HeaderMap) -> Option<String> {
        let crate::config::PartitionBy::Header(name) = self.config.quota.partition_by.as_ref()?;
        let value = headers.get(name)?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// `name`.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// `prefix`, normalised (no trailing `/` unless it is `/`).
    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// The configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Where requests go.
    pub fn target(&self) -> &TargetBase {
        &self.target
    }

    /// The pooled client.
    pub fn client(&self) -> &HttpClient {
        &self.clients[crate::workers::current() % self.clients.len()]
    }
}

/// The fleet's messages and heartbeats reach an upstream through this.
impl Member for Upstream {
    fn name(&self) -> &str {
        Upstream::name(self)
    }

    fn wake(&self) {
        self.scheduler.wake();
    }

    fn set_share(&self, replicas: u64) {
        self.scheduler.set_share(replicas);
    }

    fn rejoined(&self) {
        self.scheduler.fleet_rejoined();
    }

    /// An operator's trip (`true`) or reset made on another replica of the fleet. Only
    /// operator trips travel: each replica opens its breaker on the failures it sees.
    fn apply_fleet_breaker(&self, trip: bool) {
        let forced = self.breaker().current() == BreakerPhase::ForcedOpen;
        if trip && !forced {
            self.breaker().trip();
            self.breaker_changed(BreakerPhase::ForcedOpen, "operator (fleet)");
        } else if !trip && forced {
            self.breaker().reset();
            self.breaker_changed(BreakerPhase::Closed, "operator (fleet)");
        }
    }

    /// An operator's trip (`true`) or reset made here while Redis was away, not yet published.
    fn take_unsent_breaker(&self) -> Option<bool> {
        crate::lock(&self.unsent_breaker).take()
    }

    /// Keeps an operator's trip or reset to publish once Redis answers.
    fn keep_unsent_breaker(&self, trip: bool) {
        *crate::lock(&self.unsent_breaker) = Some(trip);
    }
}

/// An attempt the breaker let through; see [`Upstream::breaker_admit`].
#[derive(Debug)]
pub struct Admitted {
    upstream: Arc<Upstream>,
    admission: Option<Admission>,
}

impl Admitted {
    /// Whether this attempt is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.admission.is_some_and(|a| a.probe)
    }

    /// Records the attempt's outcome with the breaker.
    pub fn record(mut self, outcome: Verdict) {
        let Some(admission) = self.admission.take() else {
            return;
        };
        let upstream = &self.upstream;
        let changed = upstream
            .breaker()
            .record(Instant::now(), admission, outcome);
        if let Some(state) = changed {
            upstream.breaker_changed(state, "failures");
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            self.upstream.breaker().cancel(admission);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamConfig;

    /// A half-open probe whose request never went out (it left the queue, its client hung
    /// up) gives its place back when dropped: the next request probes.
    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_gives_its_place_back() {
        let url = url::Url::parse("http://127.0.0.1:9").expect("url");
        let mut config = UpstreamConfig::with_defaults("s", "/s", url);
        config.breaker.failure_threshold = 1;
        config.breaker.open_for = Duration::from_secs(1);
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let upstream =
            Arc::new(Upstream::new(config, &RootCertStore::empty(), metrics).expect("upstream"));
        upstream
            .breaker_admit()
            .expect("closed")
            .record(Verdict::Failure);
        assert!(upstream.breaker_admit().is_err(), "open");
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = upstream.breaker_admit().expect("half-open: a probe");
        assert!(probe.is_probe());
        assert!(upstream.breaker_admit().is_err(), "one probe at a time");
        drop(probe);
        let next = upstream.breaker_admit().expect("the place came back");
        assert!(next.is_probe());
        next.record(Verdict::Success);
        assert_eq!(upstream.breaker_state(), BreakerPhase::Closed);
    }
}
