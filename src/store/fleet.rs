//! The process's link to the fleet's Redis: one multiplexed connection (a Redis Cluster
//! connection when configured), the replicas' heartbeats, the wake-ups and breaker trips other
//! replicas publish, and the switch to local pacing while Redis is slow or gone.
//!
//! - Every call has `store.timeout`; a failed or late call marks the process `degraded`
//!   (logged once, counted, `headroom_store_degraded` set): schedulers then pace on their
//!   local trackers with `1 / replicas` of the last known quota.
//! - The supervisor heartbeats every second (`{prefix}:replicas`, a sorted set scored by
//!   expiry); while degraded it reconnects with capped exponential backoff, and the first
//!   heartbeat Redis answers rejoins: pending settlements are flushed, forced-open breakers
//!   re-read.
//! - Wake-ups (`{prefix}:wake`, published by the settle script) and breaker trips
//!   (`{prefix}:breaker`) arrive on one pub/sub connection to the first node; classic
//!   pub/sub reaches every node of a cluster.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Script, Value};
use tokio::time::Instant;

use super::StoreError;
use crate::config::StoreConfig;
use crate::lock;
use crate::metrics::Metrics;

/// The tracker logic every script shares.
const COMMON: &str = include_str!("quota.lua");
/// How often a replica says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A replica not heard from for this long is no longer counted.
const ALIVE_FOR: Duration = Duration::from_secs(3);
/// First and longest pause between reconnection attempts.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

const HEARTBEAT_SCRIPT: &str = r"
local now = clock(ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 10)
return redis.call('ZCARD', KEYS[1])
";

/// A connection to one Redis (reconnecting by itself) or to a cluster.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The scripts, loaded once per process (EVALSHA; loaded again by redis-rs after a restart).
pub(super) struct Scripts {
    pub reserve: Script,
    pub settle: Script,
    heartbeat: Script,
}

/// An upstream as the fleet sees it: what the fleet's messages and heartbeats change in it.
/// A trait, so that the store needs nothing of the upstream that registers with it.
pub trait Member: Send + Sync {
    /// Its `name`, the same on every replica.
    fn name(&self) -> &str;
    /// Quota may have been freed on another replica: the scheduler looks again.
    fn wake(&self);
    /// Replicas now sharing the quota.
    fn set_share(&self, replicas: u64);
    /// Back on the fleet's shared quota after Redis was away.
    fn rejoined(&self);
    /// An operator's trip (`true`) or reset made on another replica.
    fn apply_fleet_breaker(&self, trip: bool);
    /// An operator's trip or reset made here while Redis was away, not yet published.
    fn take_unsent_breaker(&self) -> Option<bool>;
    /// Keeps it for the next try: publishing it failed.
    fn keep_unsent_breaker(&self, trip: bool);
}

/// The process's link to the fleet's shared state.
pub struct Fleet {
    config: StoreConfig,
    conn: Mutex<Option<Conn>>,
    /// This replica's id (random per process).
    replica: String,
    seq: AtomicU64,
    degraded: AtomicBool,
    replicas: AtomicU64,
    metrics: Arc<Metrics>,
    upstreams: Mutex<HashMap<String, Weak<dyn Member>>>,
    pub(super) scripts: Scripts,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("replica", &self.replica)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A link to the store of `config`, not connected yet (degraded until
    /// [`Fleet::start`] connects).
    pub fn new(config: StoreConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        let script = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Arc::new(Self {
            conn: Mutex::new(None),
            replica: uuid::Uuid::new_v4().simple().to_string(),
            seq: AtomicU64::new(0),
            degraded: AtomicBool::new(true),
            replicas: AtomicU64::new(1),
            metrics,
            upstreams: Mutex::new(HashMap::new()),
            scripts: Scripts {
                reserve: script(include_str!("reserve.lua")),
                settle: script(include_str!("settle.lua")),
                heartbeat: script(HEARTBEAT_SCRIPT),
            },
            config,
        })
    }

    /// Connects (waiting at most `store.timeout` for Redis) and starts the supervisor:
    /// heartbeats, reconnection, pub/sub. A Redis that is down now is not an error: the
    /// replica starts degraded and joins when Redis answers.
    pub async fn start(self: &Arc<Self>) {
        if self.connect().await.is_ok() {
            let _ = self.heartbeat().await;
        }
        if self.is_degraded() {
            tracing::warn!(
                redis_url = %self.config.redis_url,
                "store: Redis does not answer; pacing alone until it does"
            );
            self.metrics.store_fallbacks.inc();
        }
        tokio::spawn(supervise(Arc::downgrade(self)));
    }

    /// The `store.*` settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Lets the fleet wake `upstream`'s scheduler and apply breaker trips to it.
    /// A trip an operator made on another replica before this one started is applied.
    pub fn register(self: &Arc<Self>, upstream: &Arc<impl Member + 'static>) {
        let member: Arc<dyn Member> = upstream.clone();
        lock(&self.upstreams).insert(upstream.name().to_owned(), Arc::downgrade(&member));
        self.set_degraded_gauge(upstream.name(), self.is_degraded());
        if !self.is_degraded() {
            let fleet = Arc::clone(self);
            tokio::spawn(async move { fleet.sync_breaker(&*member).await });
        }
    }

    /// Makes `upstream`'s operator trip agree with the fleet's: one made here while Redis
    /// was away is published; otherwise the fleet's (a trip, or its absence: a reset made
    /// meanwhile) is applied here.
    async fn sync_breaker(&self, upstream: &dyn Member) {
        if let Some(trip) = upstream.take_unsent_breaker() {
            if self.publish_breaker(upstream.name(), trip).await.is_err() {
                upstream.keep_unsent_breaker(trip);
            }
            return;
        }
        if let Ok(forced) = self.forced_open(upstream.name()).await {
            upstream.apply_fleet_breaker(forced);
        }
    }

    /// Whether this replica paces alone now (Redis slow or gone).
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Replicas seen alive at the last heartbeat (at least 1: this one).
    pub fn replicas(&self) -> u64 {
        self.replicas.load(Ordering::Acquire).max(1)
    }

    /// The hash tag and key prefix of `upstream`'s keys: `{prefix:upstream}`.
    pub(super) fn tag(&self, upstream: &str) -> String {
        format!("{{{}:{upstream}}}", self.config.key_prefix)
    }

    /// A fresh id prefix for a reservation batch.
    pub(super) fn next_ticket(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}:{n}", self.replica)
    }

    /// The channel settle scripts publish on.
    pub(super) fn wake_channel(&self) -> String {
        format!("{}:wake", self.config.key_prefix)
    }

    fn breaker_channel(&self) -> String {
        format!("{}:breaker", self.config.key_prefix)
    }

    fn breaker_key(&self, upstream: &str) -> String {
        format!("{}:breaker", self.tag(upstream))
    }

    /// Runs one Redis call with `store.timeout`, counting it; a failure degrades the replica.
    pub(super) async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(conn) = lock(&self.conn).clone() else {
            self.count(op, "error");
            return Err(StoreError::Down);
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(self.config.timeout, f(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(StoreError::Redis(err)),
            Err(_) => Err(StoreError::Timeout(self.config.timeout)),
        };
        self.metrics
            .store_latency
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => self.count(op, "ok"),
            Err(err) => {
                let label = if matches!(err, StoreError::Timeout(_)) {
                    "timeout"
                } else {
                    "error"
                };
                self.count(op, label);
                self.degrade(op, err);
            }
        }
        result
    }

    fn count(&self, op: &'static str, result: &'static str) {
        self.metrics
            .store_requests
            .with_label_values(&[op, result])
            .inc();
    }

    /// Switches to local pacing (logged and counted once per outage).
    fn degrade(&self, op: &str, err: &StoreError) {
        if self.degraded.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics.store_fallbacks.inc();
        tracing::warn!(
            op,
            error = %err,
            replicas = self.replicas(),
            "store: Redis failed; each replica paces alone on its share of the last known quota until Redis answers again"
        );
        for (name, _) in self.live_upstreams() {
            self.set_degraded_gauge(&name, true);
        }
    }

    /// Back on the shared state after Redis answered again.
    async fn rejoin(&self) {
        if !self.degraded.swap(false, Ordering::AcqRel) {
            return;
        }
        tracing::info!("store: Redis answers; back on the fleet's shared quota");
        for (name, upstream) in self.live_upstreams() {
            self.set_degraded_gauge(&name, false);
            upstream.rejoined();
            self.sync_breaker(&*upstream).await;
        }
    }

    fn set_degraded_gauge(&self, upstream: &str, degraded: bool) {
        self.metrics
            .store_degraded
            .with_label_values(&[upstream])
            .set(i64::from(degraded));
    }

    fn live_upstreams(&self) -> Vec<(String, Arc<dyn Member>)> {
        lock(&self.upstreams)
            .iter()
            .filter_map(|(name, weak)| Some((name.clone(), weak.upgrade()?)))
            .collect()
    }

    fn upstream(&self, name: &str) -> Option<Arc<dyn Member>> {
        lock(&self.upstreams).get(name)?.upgrade()
    }

    /// Opens the connection (replacing a broken cluster connection).
    async fn connect(&self) -> Result<(), StoreError> {
        let timeout = self.config.timeout;
        let connecting = async {
            if self.config.cluster {
                let client = redis::cluster::ClusterClientBuilder::new(self.config.nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()?;
                Ok::<_, redis::RedisError>(Conn::Cluster(client.get_async_connection().await?))
            } else {
                let client = redis::Client::open(self.config.redis_url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(RECONNECT_MAX.as_millis() as u64);
                Ok(Conn::Single(
                    client.get_connection_manager_with_config(config).await?,
                ))
            }
        };
        let result = match tokio::time::timeout(timeout.saturating_mul(4), connecting).await {
            Ok(Ok(conn)) => {
                *lock(&self.conn) = Some(conn);
                Ok(())
            }
            Ok(Err(err)) => Err(StoreError::Redis(err)),
            Err(_) => Err(StoreError::Timeout(timeout)),
        };
        self.count("connect", if result.is_ok() { "ok" } else { "error" });
        result
    }

    /// Says this replica is alive; learns how many are. Rejoins when degraded.
    async fn heartbeat(&self) -> Result<u64, StoreError> {
        let key = format!("{}:replicas", self.config.key_prefix);
        let alive = ALIVE_FOR.as_millis() as u64;
        let replica = self.replica.clone();
        let script = &self.scripts.heartbeat;
        let count: u64 = self
            .call("heartbeat", |mut conn| async move {
                script
                    .key(key)
                    .arg(0)
                    .arg(replica)
                    .arg(alive)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        self.replicas.store(count.max(1), Ordering::Release);
        self.metrics
            .replicas
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        let was_degraded = self.is_degraded();
        self.rejoin().await;
        for (_, upstream) in self.live_upstreams() {
            upstream.set_share(count.max(1));
            // Trips also travel by pub/sub; reading the key each heartbeat catches one
            // published while this replica was not yet (or no longer) listening.
            if !was_degraded {
                self.sync_breaker(&*upstream).await;
            }
        }
        Ok(count)
    }

    /// Publishes an operator's trip (`true`) or reset of `upstream`'s breaker to the fleet,
    /// and records it for replicas that start or rejoin later.
    pub async fn publish_breaker(&self, upstream: &str, trip: bool) -> Result<(), StoreError> {
        let key = self.breaker_key(upstream);
        let channel = self.breaker_channel();
        let message = format!("{} {upstream}", if trip { "trip" } else { "reset" });
        self.call("breaker", |mut conn| async move {
            let mut pipe = redis::pipe();
            if trip {
                pipe.set(&key, "forced_open").ignore();
            } else {
                pipe.del(&key).ignore();
            }
            pipe.publish(&channel, message).ignore();
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    async fn forced_open(&self, upstream: &str) -> Result<bool, StoreError> {
        let key = self.breaker_key(upstream);
        let value: Option<String> = self
            .call("breaker", |mut conn| async move {
                redis::cmd("GET").arg(key).query_async(&mut conn).await
            })
            .await?;
        Ok(value.as_deref() == Some("forced_open"))
    }

    /// Listens for wake-ups and breaker trips until the connection drops.
    async fn listen(self: Arc<Self>) {
        let Some(node) = self.config.nodes.first() else {
            return;
        };
        let client = match redis::Client::open(node.as_str()) {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(error = %err, "store: no pub/sub client");
                return;
            }
        };
        let mut pubsub = match tokio::time::timeout(
            self.config.timeout.saturating_mul(4),
            client.get_async_pubsub(),
        )
        .await
        {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "store: pub/sub connection failed");
                return;
            }
            Err(_) => return,
        };
        let wake = self.wake_channel();
        let breaker = self.breaker_channel();
        if let Err(err) = pubsub.subscribe(&[&wake, &breaker]).await {
            tracing::debug!(error = %err, "store: subscribe failed");
            return;
        }
        tracing::debug!(%wake, %breaker, "store: listening");
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            tracing::trace!(channel = message.get_channel_name(), %payload, "store: message");
            if message.get_channel_name() == wake {
                // A settle on that upstream may have freed quota: its scheduler looks again.
                if let Some(upstream) = self.upstream(&payload) {
                    upstream.wake();
                }
            } else if let Some((verb, name)) = payload.split_once(' ') {
                if let Some(upstream) = self.upstream(name) {
                    upstream.apply_fleet_breaker(verb == "trip");
                }
            }
        }
    }
}

/// Heartbeats, reconnects and keeps the pub/sub listener running while the fleet lives.
async fn supervise(fleet: Weak<Fleet>) {
    let mut pause = RECONNECT_FIRST;
    let mut listener: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let Some(link) = fleet.upgrade() else { return };
        let connected = lock(&link.conn).is_some() || link.connect().await.is_ok();
        let alive = connected && link.heartbeat().await.is_ok();
        if alive
            && listener
                .as_ref()
                .is_none_or(tokio::task::JoinHandle::is_finished)
        {
            listener = Some(tokio::spawn(Arc::clone(&link).listen()));
        }
        if connected && !alive && link.config.cluster {
            // A cluster connection that lost its nodes is rebuilt from the seeds.
            *lock(&link.conn) = None;
        }
        drop(link);
        let wait = if alive {
            pause = RECONNECT_FIRST;
            HEARTBEAT
        } else {
            let wait = pause;
            pause = pause.saturating_mul(2).min(RECONNECT_MAX);
            wait
        };
        tokio::time::sleep(wait).await;
    }
}
