//! The scheduler of one upstream: requests wait in a bounded [`Queue`] until a dispatcher
//! task can give them a concurrency slot and a unit of quota, or their deadline passes.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::StatusCode;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::grant::{Grant, Reservation};
use super::queue::{Entry, Position, Priority, Queue};
use crate::quota::observation::QuotaObservation;
use crate::quota::state::QuotaState;
use crate::quota::tracker::{Snapshot, Wait};

/// Why a request was not scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// `queue.max_depth` requests are already waiting.
    QueueFull {
        /// Estimated wait before a place frees up.
        retry_after: Duration,
    },
    /// The request would wait longer than `queue.max_wait` (or already did).
    QueueTimeout {
        /// When to come back: the real end of a pause when one is known, else an estimate.
        retry_after: Duration,
    },
    /// The upstream's circuit breaker opened while the request waited.
    BreakerOpen {
        /// Until half-open, when known.
        retry_after: Option<Duration>,
    },
}

/// The scheduler's settings.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// `max_concurrency`.
    pub max_concurrency: usize,
    /// `queue.max_depth`.
    pub max_depth: usize,
    /// `queue.max_wait`.
    pub max_wait: Duration,
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const LEFT: u8 = 2;

/// The dispatcher's handle on a waiting request.
#[derive(Debug)]
struct Slot {
    tx: oneshot::Sender<Result<Grant, Rejected>>,
    state: Arc<AtomicU8>,
}

impl Slot {
    fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == QUEUED && !self.tx.is_closed()
    }
}

#[derive(Debug)]
struct State {
    queue: Queue<Slot>,
    /// Requests waiting whose waiter is still there.
    waiting: usize,
    quota: QuotaState,
}

impl State {
    /// Takes the waiting requests for which `which` is true out of the queue and answers
    /// each with `rejection` (those whose waiter already left are just dropped).
    fn reject_where(&mut self, which: impl FnMut(&Entry<Slot>) -> bool, rejection: Rejected) {
        for entry in self.queue.drain_where(which) {
            if entry
                .slot
                .state
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.waiting -= 1;
                let _ = entry.slot.tx.send(Err(rejection));
            }
        }
    }
}

/// What the dispatcher and the waiters share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    wake: Notify,
    slots: Arc<Semaphore>,
    config: SchedulerConfig,
}

/// A per-upstream scheduler. Dropping it stops its dispatcher.
#[derive(Debug)]
pub struct Scheduler {
    shared: Arc<Shared>,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

impl Scheduler {
    /// A scheduler over `quota`; spawns its dispatcher on the current runtime.
    pub fn new(config: SchedulerConfig, quota: QuotaState) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Queue::new(config.max_wait),
                waiting: 0,
                quota,
            }),
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            config,
        });
        let dispatcher = tokio::spawn(dispatch(Arc::clone(&shared)));
        Self { shared, dispatcher }
    }

    /// Waits for a concurrency slot and a unit of quota, until `deadline`.
    pub async fn acquire(
        &self,
        priority: Priority,
        partition: Option<String>,
        deadline: Instant,
    ) -> Result<Grant, Rejected> {
        let shared = &self.shared;
        let now = Instant::now();
        let (rx, state) = {
            let mut state = shared.lock();
            if let Some(until) = state.quota.paused_until(partition.as_deref(), now) {
                if until > deadline {
                    return Err(Rejected::QueueTimeout {
                        retry_after: until - now,
                    });
                }
            }
            if state.waiting == 0 {
                if let Ok(slot) = Arc::clone(&shared.slots).try_acquire_owned() {
                    if state.quota.try_reserve(partition.as_deref(), now).is_ok() {
                        let reservation = Reservation::new(Arc::clone(shared), partition, now);
                        return Ok(Grant::new(reservation, slot, Duration::ZERO));
                    }
                }
            }
            if state.waiting >= shared.config.max_depth {
                return Err(Rejected::QueueFull {
                    retry_after: shared.estimate(&mut state, partition.as_deref(), now),
                });
            }
            let (tx, rx) = oneshot::channel();
            let entry_state = Arc::new(AtomicU8::new(QUEUED));
            state.queue.push(Entry {
                priority,
                partition: partition.clone(),
                enqueued: now,
                deadline,
                slot: Slot {
                    tx,
                    state: Arc::clone(&entry_state),
                },
            });
            state.waiting += 1;
            (rx, entry_state)
        };
        shared.wake.notify_one();
        let waiter = Waiter { shared, state };
        let result = tokio::time::timeout_at(deadline, rx).await;
        match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) | Err(_) => {
                waiter.leave();
                let now = Instant::now();
                let mut state = shared.lock();
                Err(Rejected::QueueTimeout {
                    retry_after: shared.estimate(&mut state, partition.as_deref(), now),
                })
            }
        }
    }

    /// Answers every waiting request at once with `rejection` (the breaker opened).
    pub fn reject_waiting(&self, rejection: Rejected) {
        let mut state = self.shared.lock();
        state.reject_where(|_| true, rejection);
    }

    /// Requests waiting now.
    pub fn queue_depth(&self) -> usize {
        self.shared.lock().waiting
    }

    /// Requests holding a concurrency slot now.
    pub fn in_flight(&self) -> usize {
        self.shared
            .config
            .max_concurrency
            .saturating_sub(self.shared.slots.available_permits())
    }

    /// The upstream's own quota, for the admin API and metrics.
    pub fn quota(&self) -> Snapshot {
        self.shared.lock().quota.snapshot(Instant::now())
    }
}

/// A request's place in the queue; leaving (timeout, client gone) frees it at once.
struct Waiter<'a> {
    shared: &'a Shared,
    state: Arc<AtomicU8>,
}

impl Waiter<'_> {
    fn leave(&self) {
        if self
            .state
            .compare_exchange(QUEUED, LEFT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.shared.lock().waiting -= 1;
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters half-updated in a way
        // worse than stopping the upstream; keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn observe(
        &self,
        partition: Option<&str>,
        sent_at: Instant,
        now: Instant,
        status: StatusCode,
        observation: Option<&QuotaObservation>,
    ) -> Option<Instant> {
        let mut state = self.lock();
        let tracker = state.quota.tracker(partition, now);
        let pause = tracker.observe(sent_at, now, status, observation);
        tracing::trace!(
            status = status.as_u16(),
            observed_remaining = observation.and_then(|o| o.remaining),
            observed_reset_ms = observation
                .and_then(|o| o.reset_after)
                .map(|d| d.as_millis() as u64),
            quota = ?tracker.snapshot(now),
            "observed"
        );
        drop(state);
        self.wake.notify_one();
        pause
    }

    pub(crate) fn release(&self, partition: Option<&str>) {
        self.lock()
            .quota
            .tracker(partition, Instant::now())
            .release();
        self.wake.notify_one();
    }

    /// How long a request arriving now would likely wait: the pause, plus the queue ahead of
    /// it at the known send rate.
    fn estimate(&self, state: &mut State, partition: Option<&str>, now: Instant) -> Duration {
        let paused = state
            .quota
            .paused_until(partition, now)
            .map_or(Duration::ZERO, |until| until - now);
        let ahead = state.waiting as f64 + 1.0;
        let queued = state
            .quota
            .rate_per_sec()
            .filter(|rate| *rate > 0.0)
            .and_then(|rate| Duration::try_from_secs_f64(ahead / rate).ok())
            .unwrap_or(Duration::from_secs(1));
        (paused + queued).min(self.config.max_wait.max(Duration::from_secs(1)))
    }

    /// Gives `slot` to the first waiting request whose quota allows it now. Returns what
    /// holds the others back when nobody could go.
    fn try_grant(self: &Arc<Self>, slot: OwnedSemaphorePermit) -> Option<Wait> {
        let now = Instant::now();
        let mut state = self.lock();
        state.queue.retain(|e| e.slot.is_waiting());
        let mut blocked: Vec<(Option<String>, Wait)> = Vec::new();
        let mut chosen: Option<Position> = None;
        let candidates = match state.queue.next() {
            None => return None,
            Some(head) if state.queue.get(head).is_some_and(|e| e.partition.is_none()) => {
                vec![head]
            }
            Some(_) => state.queue.in_order(),
        };
        for at in candidates {
            let Some(partition) = state.queue.get(at).map(|e| e.partition.clone()) else {
                continue;
            };
            if blocked.iter().any(|(p, _)| *p == partition) {
                continue;
            }
            match state.quota.try_reserve(partition.as_deref(), now) {
                Ok(()) => {
                    tracing::trace!(quota = ?state.quota.snapshot(now), "granted from the queue");
                    chosen = Some(at);
                    break;
                }
                Err(wait) => blocked.push((partition, wait)),
            }
        }
        if let Some(at) = chosen {
            let entry = state.queue.remove(at)?;
            let taken = entry
                .slot
                .state
                .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if taken {
                state.waiting -= 1;
            }
            drop(state);
            let reservation = Reservation::new(Arc::clone(self), entry.partition, now);
            if taken {
                // If the waiter left in the meantime the grant comes back here and its drop
                // gives the slot and the unit back.
                let _ = entry
                    .slot
                    .tx
                    .send(Ok(Grant::new(reservation, slot, now - entry.enqueued)));
            }
            return None;
        }
        // Nobody may go. Requests that would still be waiting when their deadline passes are
        // answered now, with the real time to come back.
        for (partition, wait) in &blocked {
            if let Wait::Until(until) = *wait {
                state.reject_where(
                    |e| e.partition == *partition && e.deadline < until,
                    Rejected::QueueTimeout {
                        retry_after: until - now,
                    },
                );
            }
        }
        blocked.iter().map(|(_, wait)| *wait).min_by_key(|wait| {
            match wait {
                Wait::Until(until) => Some(*until),
                Wait::Response => None,
            }
            .map_or((1, now), |u| (0, u))
        })
    }
}

/// The dispatcher: whenever a slot is free and someone waits, try to let one go; otherwise
/// sleep until the quota allows or something changes.
async fn dispatch(shared: Arc<Shared>) {
    loop {
        let has_waiting = shared.lock().waiting > 0;
        if !has_waiting {
            shared.wake.notified().await;
            continue;
        }
        let slot = tokio::select! {
            slot = Arc::clone(&shared.slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => return,
            },
            () = shared.wake.notified() => continue,
        };
        let blocked = shared.try_grant(slot);
        tracing::trace!(?blocked, "dispatcher");
        match blocked {
            None => {}
            Some(Wait::Until(until)) => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    () = shared.wake.notified() => {}
                }
            }
            Some(Wait::Response) => shared.wake.notified().await,
        }
    }
}
