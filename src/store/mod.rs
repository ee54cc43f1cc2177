//! Where an upstream's quota state lives: the seam between the scheduler and the state it
//! shares.
//!
//! [`QuotaStore`] is the whole interface: reserve sends, settle them with what happened (an
//! answer, a send without an answer, no send at all, a pause), read the current view. Two
//! implementations:
//! - [`LocalStore`]: in this process (the [`QuotaState`] of today, the default);
//! - [`RedisQuota`]: in Redis, shared by every replica that names the same Redis and the same
//!   upstream. The same tracker logic runs there as a Lua script with Redis's clock
//!   (`quota.lua`, a line-for-line port of [`crate::quota::tracker`]); the table of cases in
//!   `tests/store.rs` holds both to the same answers.
//!
//! [`Fleet`] is the process's link to Redis: one connection, the replicas' heartbeats, the
//! wake-ups and breaker trips other replicas publish, and the fallback to local pacing when
//! Redis is slow or gone.

mod fleet;
mod redis_quota;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

pub use fleet::{Fleet, Member};
pub use redis_quota::RedisQuota;

use crate::quota::model::Wait;
use crate::quota::observation::QuotaObservation;
use crate::quota::state::{QuotaState, TrackerKey};
use crate::quota::tracker::{Answer, Snapshot};

/// What a reservation asked for got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// One ticket per unit granted (settle each exactly once).
    pub tickets: Vec<String>,
    /// What holds the rest back, when fewer were granted than asked.
    pub wait: Option<Wait>,
    /// The tracker's view after the reservation.
    pub view: Snapshot,
}

/// How a reserved send ended.
#[derive(Debug, Clone)]
pub enum Settled {
    /// The supplier answered at `received_at`.
    Answered {
        /// When the response headers came.
        received_at: Instant,
        /// Its status.
        status: StatusCode,
        /// What its headers said of the quota.
        observation: Option<QuotaObservation>,
    },
    /// Sent, but no answer came back: the supplier counted it.
    Spent,
    /// Never reached the supplier: the unit goes back.
    Released,
    /// Something else said to pause this quota until `until` (no unit is settled).
    Paused {
        /// End of the pause.
        until: Instant,
    },
}

/// One reservation's outcome.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The tracker the unit was reserved on.
    pub key: TrackerKey,
    /// The tracker the answer's facts belong to (another resource than reserved, when the
    /// answer names one); usually `key`.
    pub target: TrackerKey,
    /// The route of the request (first two path segments).
    pub route: Arc<str>,
    /// The ticket from [`Reserved::tickets`].
    pub ticket: String,
    /// When the request was written to the supplier.
    pub sent_at: Instant,
    /// How it ended.
    pub outcome: Settled,
}

/// Why a store call failed. The caller falls back to local pacing; nothing is lost.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error, or the connection broke.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within `store.timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Not connected (yet, or any more).
    #[error("not connected")]
    Down,
    /// An answer of the wrong shape (a script of another version).
    #[error("unexpected reply: {0}")]
    Reply(String),
}

/// The shared quota state of one upstream (and each of its partitions and resources).
pub trait QuotaStore: Send + Sync {
    /// Reserves up to `wanted` units on `key` at `now`.
    fn reserve(
        &self,
        key: &TrackerKey,
        wanted: u32,
        now: Instant,
    ) -> impl Future<Output = Result<Reserved, StoreError>> + Send;

    /// Settles reservations; returns, per settlement, the end of the pause it caused.
    fn settle(
        &self,
        batch: &[Settlement],
        now: Instant,
    ) -> impl Future<Output = Result<Vec<Option<Instant>>, StoreError>> + Send;

    /// The current view of `key`'s tracker.
    fn view(
        &self,
        key: &TrackerKey,
        now: Instant,
    ) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;
}

/// The in-process store: one [`QuotaState`] behind a lock. The scheduler uses its state
/// directly (no future per decision); this is the same state seen through the seam.
#[derive(Debug)]
pub struct LocalStore(Mutex<QuotaState>);

impl LocalStore {
    /// A store over `state`.
    pub fn new(state: QuotaState) -> Self {
        Self(Mutex::new(state))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QuotaState> {
        crate::lock(&self.0)
    }
}

/// A snapshot of a tracker that knows nothing.
pub(crate) const EMPTY_VIEW: Snapshot = Snapshot {
    limit: None,
    remaining: None,
    reset_in: None,
    source: None,
    in_flight: 0,
};

impl QuotaStore for LocalStore {
    async fn reserve(
        &self,
        key: &TrackerKey,
        wanted: u32,
        now: Instant,
    ) -> Result<Reserved, StoreError> {
        let mut state = self.lock();
        let mut tickets = Vec::new();
        let mut wait = None;
        for n in 0..wanted {
            match state.try_reserve(key, now) {
                Ok(()) => tickets.push(format!("local:{n}")),
                Err(w) => {
                    wait = Some(w);
                    break;
                }
            }
        }
        let view = state.snapshot_of(key, now).unwrap_or(EMPTY_VIEW);
        Ok(Reserved {
            tickets,
            wait,
            view,
        })
    }

    async fn settle(
        &self,
        batch: &[Settlement],
        _now: Instant,
    ) -> Result<Vec<Option<Instant>>, StoreError> {
        let mut state = self.lock();
        Ok(batch
            .iter()
            .map(|s| match &s.outcome {
                Settled::Answered {
                    received_at,
                    status,
                    observation,
                } => {
                    let answer = Answer {
                        sent_at: s.sent_at,
                        received_at: *received_at,
                        status: *status,
                        observation: observation.as_ref(),
                        jitter: rand::random(),
                    };
                    state.observe_at(&s.key, &s.route, &answer).0
                }
                Settled::Spent => {
                    state.spend(&s.key, s.sent_at);
                    None
                }
                Settled::Released => {
                    state.release(&s.key);
                    None
                }
                Settled::Paused { until } => Some(state.pause(&s.key, *until)),
            })
            .collect())
    }

    async fn view(&self, key: &TrackerKey, now: Instant) -> Result<Snapshot, StoreError> {
        Ok(self.lock().snapshot_of(key, now).unwrap_or(EMPTY_VIEW))
    }
}
