//! One upstream's quota in Redis: the [`QuotaStore`] every replica naming the same Redis and
//! upstream shares. Keys (all under one hash tag, so a cluster keeps them on one node):
//! - `{prefix:upstream}:q:<partition>:<resource>`: a tracker's state (hash);
//! - `{prefix:upstream}:f:<partition>:<resource>`: its reservations in flight (sorted set by
//!   expiry: a dead replica's come back after `store.reservation_ttl`);
//! - `{prefix:upstream}:limit`: the static ceiling's GCRA (`[upstream.limit]`);
//! - `{prefix:upstream}:breaker`: an operator's trip.
//!
//! Partition keys are API keys: only a digest of them names a key.
//!
//! Cost: one `EVALSHA` per dispatch (it may grant several queued requests at once), and one
//! per batch of settlements, sent off the request path by a flusher task.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::fleet::Fleet;
use super::{QuotaStore, Reserved, Settled, Settlement, StoreError};
use crate::config::LimitConfig;
use crate::lock;
use crate::quota::model::Wait;
use crate::quota::observation::Source;
use crate::quota::state::TrackerKey;
use crate::quota::tracker::{Snapshot, TrackerConfig};

/// Largest count sent to the script: Lua numbers are doubles.
const MAX_COUNT: u64 = 1 << 53;
/// Settlements kept while Redis is away (beyond this the oldest are dropped: their
/// reservations expire by TTL instead).
const MAX_PENDING: usize = 10_000;
/// Settlements sent in one script call.
const BATCH: usize = 256;
/// Farthest ahead a wait from Redis is believed (a reset announced for two days at most,
/// as the header parser caps it).
const MAX_AHEAD: Duration = Duration::from_secs(2 * 24 * 3600);
/// Fields per settlement in the settle script's arguments.
const OP_FIELDS: usize = 18;

/// The reply of the reserve script: granted, wait kind, wait until, now, then the view
/// (limit, remaining, reset in, source, in flight); -1 is "unknown".
type ReserveReply = (u64, u8, i64, i64, i64, i64, i64, String, u64);

/// One upstream's quota in the fleet's Redis.
pub struct RedisQuota {
    fleet: Arc<Fleet>,
    name: String,
    tag: String,
    config: TrackerConfig,
    ttl_ms: u64,
    /// `[upstream.limit]` as a GCRA: emission interval in microseconds and burst.
    limit: Option<(u64, u64)>,
    /// Tests only: Redis's clock pinned to (this instant, these milliseconds).
    pinned: Option<(Instant, u64)>,
    pending: Mutex<Vec<Settlement>>,
    flush: Notify,
}

impl std::fmt::Debug for RedisQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQuota")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl RedisQuota {
    /// The quota of upstream `name` in `fleet`'s Redis.
    pub fn new(
        fleet: Arc<Fleet>,
        name: &str,
        config: TrackerConfig,
        limit: Option<LimitConfig>,
    ) -> Arc<Self> {
        let limit = limit.filter(|l| l.requests > 0).map(|l| {
            let interval = l.per.as_micros() / u128::from(l.requests);
            (
                u64::try_from(interval)
                    .unwrap_or(u64::MAX)
                    .clamp(1, MAX_COUNT),
                u64::from(l.requests),
            )
        });
        Arc::new(Self {
            tag: fleet.tag(name),
            name: name.to_owned(),
            ttl_ms: duration_ms(fleet.config().reservation_ttl),
            fleet,
            config,
            limit,
            pinned: None,
            pending: Mutex::new(Vec::new()),
            flush: Notify::new(),
        })
    }

    /// Tests: Redis's clock reads `ms` at `at` (and moves with tokio's), so a table of cases
    /// runs on a paused clock against a real Redis.
    #[must_use]
    pub fn pinned(mut self: Arc<Self>, at: Instant, ms: u64) -> Arc<Self> {
        if let Some(this) = Arc::get_mut(&mut self) {
            this.pinned = Some((at, ms));
        }
        self
    }

    /// The fleet this quota is shared in.
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// The local instant of Redis's `until` (ms), read when Redis's clock said `redis_now`
    /// and ours `now`. Values from Redis are checked: never before `now`, at most
    /// `retry.max_delay` (or a window's worth of a day) ahead.
    fn local_instant(&self, now: Instant, redis_now: i64, until: i64) -> Instant {
        let ahead = until
            .checked_sub(redis_now)
            .and_then(|ms| u64::try_from(ms).ok())
            .unwrap_or(0);
        let cap = self.config.max_delay.max(MAX_AHEAD);
        now.checked_add(Duration::from_millis(ahead).min(cap))
            .unwrap_or(now)
    }

    /// The script's clock argument: 0 (Redis `TIME`) unless pinned.
    fn clock(&self, now: Instant) -> u64 {
        self.pinned.map_or(0, |(at, ms)| {
            ms.saturating_add(duration_ms(now.saturating_duration_since(at)))
        })
    }

    fn keys(&self, key: &TrackerKey) -> (String, String) {
        let partition = key.partition().map_or_else(
            || "-".to_owned(),
            |p| sha1_smol::Sha1::from(p).digest().to_string()[..20].to_owned(),
        );
        let resource = key.resource().unwrap_or("-");
        (
            format!("{}:q:{partition}:{resource}", self.tag),
            format!("{}:f:{partition}:{resource}", self.tag),
        )
    }

    /// Queues a settlement for the flusher (off the request path).
    pub fn settle_later(&self, settlement: Settlement) {
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= MAX_PENDING {
                pending.remove(0);
            }
            pending.push(settlement);
        }
        self.flush.notify_one();
    }

    /// Wakes the flusher (after the fleet rejoined).
    pub fn flush_now(&self) {
        self.flush.notify_one();
    }

    /// Sends queued settlements in batches while the fleet is up; keeps them while it is not.
    pub async fn run_flusher(self: Arc<Self>) {
        loop {
            self.flush.notified().await;
            loop {
                if self.fleet.is_degraded() {
                    break;
                }
                let batch: Vec<Settlement> = {
                    let mut pending = lock(&self.pending);
                    let n = pending.len().min(BATCH);
                    pending.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                if self.settle(&batch, Instant::now()).await.is_err() {
                    // Put back in front, to go once Redis answers again.
                    let mut pending = lock(&self.pending);
                    let mut kept = batch;
                    kept.append(&mut pending);
                    let excess = kept.len().saturating_sub(MAX_PENDING);
                    kept.drain(..excess);
                    *pending = kept;
                    break;
                }
            }
        }
    }
}

impl QuotaStore for RedisQuota {
    async fn reserve(
        &self,
        key: &TrackerKey,
        wanted: u32,
        now: Instant,
    ) -> Result<Reserved, StoreError> {
        let (state, flight) = self.keys(key);
        let ticket = self.fleet.next_ticket();
        let limit_key = format!("{}:limit", self.tag);
        let (interval, burst) = self.limit.unwrap_or((0, 0));
        let mut call = self.fleet.scripts.reserve.prepare_invoke();
        call.key(state)
            .key(flight)
            .key(limit_key)
            .arg(self.clock(now))
            .arg(self.config.probes.min(MAX_COUNT))
            .arg(duration_ms(self.config.base_delay))
            .arg(duration_ms(self.config.max_delay))
            .arg(wanted)
            .arg(&ticket)
            .arg(self.ttl_ms)
            .arg(interval)
            .arg(burst);
        let reply: Result<ReserveReply, StoreError> = self
            .fleet
            .call("reserve", |mut conn| async move {
                call.invoke_async(&mut conn).await
            })
            .await;
        let (granted, kind, until, redis_now, limit, remaining, reset_in, source, in_flight) =
            match reply {
                Ok(reply) => reply,
                Err(err) => {
                    // The script may have run and the answer got lost (a timeout): give back
                    // whatever it may have granted, once Redis answers again (removing a
                    // reservation that does not exist changes nothing).
                    for n in 1..=wanted {
                        self.settle_later(Settlement {
                            key: key.clone(),
                            target: key.clone(),
                            route: Arc::from(""),
                            ticket: format!("{ticket}:{n}"),
                            sent_at: now,
                            outcome: Settled::Released,
                        });
                    }
                    return Err(err);
                }
            };
        let wait = match kind {
            1 => Some(Wait::Until(self.local_instant(now, redis_now, until))),
            2 => Some(Wait::Response),
            _ => None,
        };
        let tickets = (1..=granted).map(|n| format!("{ticket}:{n}")).collect();
        Ok(Reserved {
            tickets,
            wait,
            view: Snapshot {
                limit: known(limit),
                remaining: known(remaining),
                reset_in: known(reset_in).map(Duration::from_millis),
                source: source_name(&source),
                in_flight,
            },
        })
    }

    async fn settle(
        &self,
        batch: &[Settlement],
        now: Instant,
    ) -> Result<Vec<Option<Instant>>, StoreError> {
        let mut keys: Vec<String> = Vec::new();
        let mut index = |name: String| -> usize {
            match keys.iter().position(|k| *k == name) {
                Some(i) => i + 1,
                None => {
                    keys.push(name);
                    keys.len()
                }
            }
        };
        let mut args: Vec<String> = Vec::with_capacity(batch.len() * OP_FIELDS);
        for s in batch {
            let (_, reserved) = self.keys(&s.key);
            let (state, target) = self.keys(&s.target);
            let (h, f, t) = (index(state), index(reserved), index(target));
            let ago = |at: Instant| duration_ms(now.saturating_duration_since(at)).to_string();
            let (kind, received, fields) = match &s.outcome {
                Settled::Answered {
                    received_at,
                    status,
                    observation,
                } => {
                    let limited = *status == StatusCode::TOO_MANY_REQUESTS
                        || observation.as_ref().is_some_and(|o| o.rate_limited);
                    let o = observation.as_ref();
                    let count = |v: Option<u64>| v.map_or(-1, |v| v.min(MAX_COUNT) as i64);
                    let dur = |v: Option<Duration>| v.map_or(-1, |d| duration_ms(d) as i64);
                    (
                        "o",
                        ago(*received_at),
                        [
                            flag(limited),
                            flag(status.is_success()),
                            flag(o.is_some_and(|o| o.has_quota())),
                            count(o.and_then(|o| o.limit)).to_string(),
                            count(o.and_then(|o| o.remaining)).to_string(),
                            dur(o.and_then(|o| o.reset_after)).to_string(),
                            dur(o.and_then(|o| o.window)).to_string(),
                            dur(o.and_then(|o| o.retry_after)).to_string(),
                            flag(o.is_some_and(|o| o.bucket.is_some())),
                            o.map_or("", |o| o.source.as_str()).to_owned(),
                            rand::random::<f64>().to_string(),
                        ],
                    )
                }
                Settled::Spent => ("s", "0".to_owned(), none_fields()),
                Settled::Released => ("r", "0".to_owned(), none_fields()),
                Settled::Paused { until } => {
                    let mut fields = none_fields();
                    fields[7] = duration_ms(until.saturating_duration_since(now)).to_string();
                    ("p", "0".to_owned(), fields)
                }
            };
            args.extend([
                kind.to_owned(),
                h.to_string(),
                f.to_string(),
                t.to_string(),
                s.ticket.clone(),
                ago(s.sent_at),
                received,
            ]);
            args.extend(fields);
        }
        let mut call = self.fleet.scripts.settle.prepare_invoke();
        for key in &keys {
            call.key(key);
        }
        call.arg(self.clock(now))
            .arg(duration_ms(self.config.base_delay))
            .arg(duration_ms(self.config.max_delay))
            .arg(self.fleet.wake_channel())
            .arg(&self.name);
        for arg in &args {
            call.arg(arg);
        }
        let (pauses, redis_now): (Vec<i64>, i64) = self
            .fleet
            .call("settle", |mut conn| async move {
                call.invoke_async(&mut conn).await
            })
            .await?;
        if pauses.len() != batch.len() {
            return Err(StoreError::Reply(format!(
                "{} pauses for {} settlements",
                pauses.len(),
                batch.len()
            )));
        }
        Ok(pauses
            .into_iter()
            .map(|until| (until >= 0).then(|| self.local_instant(now, redis_now, until)))
            .collect())
    }

    async fn view(&self, key: &TrackerKey, now: Instant) -> Result<Snapshot, StoreError> {
        Ok(self.reserve(key, 0, now).await?.view)
    }
}

fn none_fields() -> [String; 11] {
    let mut fields: [String; 11] = Default::default();
    for (i, field) in fields.iter_mut().enumerate() {
        *field = match i {
            0..=2 | 8 => "0",
            9 => "",
            _ => "-1",
        }
        .to_owned();
    }
    fields
}

fn flag(value: bool) -> String {
    if value { "1" } else { "0" }.to_owned()
}

fn known<T: TryFrom<i64>>(value: i64) -> Option<T> {
    (value >= 0).then(|| T::try_from(value).ok()).flatten()
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .min(MAX_COUNT)
}

/// The `&'static` label of a source name the script stored.
fn source_name(name: &str) -> Option<&'static str> {
    if name == "inferred" {
        return Some("inferred");
    }
    Source::ALL.iter().map(|s| s.as_str()).find(|s| *s == name)
}
