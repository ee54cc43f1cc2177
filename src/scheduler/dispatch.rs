//! The scheduler of one upstream: requests wait in a bounded [`Queue`] until a dispatcher
//! task can give them a concurrency slot and a unit of quota, or their deadline passes.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::grant::{Grant, Reservation, Settle};
use super::queue::{Place, Position, Priority, Queue};
use crate::lock;
use crate::quota::model::Wait;
use crate::quota::state::{Ask, QuotaState, TrackerKey};
use crate::quota::tracker::{Answer, Snapshot};
use crate::store::{QuotaStore, RedisQuota, Settlement};

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
    /// Headroom's own fault: the request's place was lost (never expected; answered 500
    /// rather than left hanging).
    Internal,
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

/// Pause before restarting a dispatcher that panicked.
const RESTART_PAUSE: Duration = Duration::from_millis(100);

/// Shortest sleep of the dispatcher when the quota says "not yet".
const MIN_RECHECK: Duration = Duration::from_millis(1);

/// With a fleet store: longest wait for another replica's answer before asking Redis again
/// (its settle normally wakes this dispatcher at once, through pub/sub).
const FLEET_RESPONSE_POLL: Duration = Duration::from_millis(100);
/// With a fleet store: most requests granted by one Redis call.
const FLEET_BATCH: usize = 32;
/// With a fleet store: most distinct quotas (partitions, resources) asked in one dispatch
/// when the first ones are held back.
const FLEET_KEYS: usize = 4;

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
struct Inner {
    queue: Queue<Slot>,
    /// Requests waiting whose waiter is still there.
    waiting: usize,
    quota: QuotaState,
}

impl Inner {
    /// Takes `slot`'s request out of the waiting ones; false when its waiter already left
    /// (or it was taken).
    fn take(&mut self, slot: &Slot) -> bool {
        let taken = slot
            .state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if taken {
            self.waiting = self.waiting.saturating_sub(1);
        }
        taken
    }

    /// Answers now the requests on `key` that `wait` would keep past their deadline, with the
    /// real time to come back.
    fn reject_hopeless(&mut self, key: &TrackerKey, wait: Wait, now: Instant) {
        if let Wait::Until(until) = wait {
            self.reject_where(
                |e| e.key == *key && e.deadline < until,
                Rejected::QueueTimeout {
                    retry_after: until - now,
                },
            );
        }
    }

    /// Takes the waiting requests for which `which` is true out of the queue and answers
    /// each with `rejection` (those whose waiter already left are just dropped).
    fn reject_where(&mut self, which: impl FnMut(&Place<Slot>) -> bool, rejection: Rejected) {
        for entry in self.queue.drain_where(which) {
            if self.take(&entry.slot) {
                let _ = entry.slot.tx.send(Err(rejection));
            }
        }
    }
}

/// What the dispatcher and the waiters share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<Inner>,
    wake: Notify,
    slots: Arc<Semaphore>,
    config: SchedulerConfig,
    /// Counts the dispatcher's restarts after a panic (`headroom_internal_errors_total`).
    pub(super) internal_errors: prometheus::IntCounter,
    /// The fleet's shared quota in Redis, when `[store]` is set.
    pub(super) fleet: Option<Arc<RedisQuota>>,
    /// The upstream's own quota as Redis showed it last, and when.
    fleet_view: Mutex<Option<(Instant, Snapshot)>>,
    /// Where the next dispatch starts among the quotas after the head's (fleet store).
    fleet_cursor: std::sync::atomic::AtomicUsize,
    /// Test hook: the dispatcher panics at its next grant attempt.
    #[cfg(test)]
    pub(super) panic_next: std::sync::atomic::AtomicBool,
}

/// A per-upstream scheduler. Dropping it stops its dispatcher.
#[derive(Debug)]
pub struct Scheduler {
    pub(super) shared: Arc<Shared>,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

impl Scheduler {
    /// A scheduler over `quota`; spawns its supervised dispatcher on the current runtime.
    /// `internal_errors` counts the dispatcher's restarts after a panic.
    pub fn new(
        config: SchedulerConfig,
        quota: QuotaState,
        internal_errors: prometheus::IntCounter,
    ) -> Self {
        Self::with_fleet(config, quota, internal_errors, None)
    }

    /// A scheduler whose quota is shared with other replicas through `fleet` (Redis); its
    /// local `quota` still learns every answer, and paces alone while Redis is away.
    pub fn with_fleet(
        config: SchedulerConfig,
        quota: QuotaState,
        internal_errors: prometheus::IntCounter,
        fleet: Option<Arc<RedisQuota>>,
    ) -> Self {
        if let Some(remote) = &fleet {
            tokio::spawn(Arc::clone(remote).run_flusher());
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(Inner {
                queue: Queue::new(config.max_wait),
                waiting: 0,
                quota,
            }),
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            config,
            internal_errors,
            fleet,
            fleet_view: Mutex::new(None),
            fleet_cursor: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(test)]
            panic_next: std::sync::atomic::AtomicBool::new(false),
        });
        let dispatcher = tokio::spawn(supervise(Arc::clone(&shared)));
        Self { shared, dispatcher }
    }

    /// Waits for a concurrency slot and a unit of quota, until `deadline`.
    pub async fn acquire(
        &self,
        priority: Priority,
        ask: Ask<'_>,
        deadline: Instant,
    ) -> Result<Grant, Rejected> {
        let shared = &self.shared;
        let now = Instant::now();
        let (rx, state, key) = {
            let mut state = shared.lock();
            let key = state.quota.key_for(ask);
            if let Some(until) = state.quota.paused_until(&key, now) {
                if until > deadline {
                    return Err(Rejected::QueueTimeout {
                        retry_after: until - now,
                    });
                }
            }
            if state.waiting == 0 && shared.remote().is_none() {
                if let Ok(slot) = Arc::clone(&shared.slots).try_acquire_owned() {
                    if state.quota.try_reserve(&key, now).is_ok() {
                        let reservation = Reservation::new(Arc::<Shared>::clone(shared), key, now);
                        return Ok(Grant::new(reservation, slot, Duration::ZERO));
                    }
                }
            }
            if state.waiting >= shared.config.max_depth {
                return Err(Rejected::QueueFull {
                    retry_after: shared.estimate(&mut state, &key, now),
                });
            }
            let (tx, rx) = oneshot::channel();
            let entry_state = Arc::new(AtomicU8::new(QUEUED));
            state.queue.push(Place {
                priority,
                key: key.clone(),
                enqueued: now,
                deadline,
                slot: Slot {
                    tx,
                    state: Arc::clone(&entry_state),
                },
            });
            state.waiting += 1;
            (rx, entry_state, key)
        };
        shared.wake.notify_one();
        let waiter = Waiter { shared, state };
        let result = tokio::time::timeout_at(deadline, rx).await;
        match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => {
                // The place was dropped without an answer: only a panic does that.
                waiter.leave();
                Err(Rejected::Internal)
            }
            Err(_) => {
                waiter.leave();
                let now = Instant::now();
                let mut state = shared.lock();
                Err(Rejected::QueueTimeout {
                    retry_after: shared.estimate(&mut state, &key, now),
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

    /// The upstream's own quota, for the admin API and metrics: as the fleet's Redis showed
    /// it last, when shared and not degraded.
    pub fn quota(&self) -> Snapshot {
        if self.shared.remote().is_some() {
            if let Some((at, mut view)) = *lock(&self.shared.fleet_view) {
                let since = Instant::now().saturating_duration_since(at);
                view.reset_in = view.reset_in.map(|r| r.saturating_sub(since));
                return view;
            }
        }
        self.shared.lock().quota.snapshot(Instant::now())
    }

    /// Where the quota state lives: `local`, `redis`, or `degraded` (Redis away: pacing
    /// alone).
    pub fn store_mode(&self) -> &'static str {
        match &self.shared.fleet {
            None => "local",
            Some(remote) if remote.fleet().is_degraded() => "degraded",
            Some(_) => "redis",
        }
    }

    /// The fleet this scheduler shares its quota in, if any.
    pub fn fleet(&self) -> Option<&Arc<crate::store::Fleet>> {
        self.shared.fleet.as_ref().map(|remote| remote.fleet())
    }

    /// Looks at the queue again (another replica's answer may have freed quota).
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// The fleet's Redis answers again: send what was settled meanwhile, look again.
    pub fn fleet_rejoined(&self) {
        if let Some(remote) = &self.shared.fleet {
            remote.flush_now();
        }
        self.shared.wake.notify_one();
    }

    /// How many replicas share the quota, for pacing alone while Redis is away.
    pub fn set_share(&self, replicas: u64) {
        self.shared.lock().quota.set_share(replicas);
    }
}

/// A request's place in the queue; leaving (timeout, client gone) frees it at once.
struct Waiter<'a> {
    shared: &'a Shared,
    state: Arc<AtomicU8>,
}

impl Waiter<'_> {
    fn leave(&self) {
        // Under the lock, so a recount (after a dispatcher restart) never sees the entry gone
        // and the count not yet lowered.
        let mut state = self.shared.lock();
        if self
            .state
            .compare_exchange(QUEUED, LEFT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            state.waiting = state.waiting.saturating_sub(1);
            drop(state);
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
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters half-updated in a way
        // worse than stopping the upstream; keep serving.
        lock(&self.state)
    }

    /// The fleet's store, while Redis answers.
    pub(super) fn remote(&self) -> Option<Arc<RedisQuota>> {
        self.fleet
            .as_ref()
            .filter(|remote| !remote.fleet().is_degraded())
            .cloned()
    }

    /// Applies `change` to the quota, then wakes the dispatcher when somebody waits for it.
    /// With nobody waiting there is nothing to do: the next request that queues wakes it
    /// itself (`notify_one` keeps that wake-up for a dispatcher not yet listening). Skipping
    /// it spares each response a wake-up of the dispatcher's thread.
    fn change_quota<R>(&self, change: impl FnOnce(&mut QuotaState) -> R) -> R {
        let (changed, waiting) = {
            let mut state = self.lock();
            (change(&mut state.quota), state.waiting > 0)
        };
        if waiting {
            self.wake.notify_one();
        }
        changed
    }

    /// How long a request arriving now would likely wait: the pause, plus the queue ahead of
    /// it at the known send rate.
    fn estimate(&self, state: &mut Inner, key: &TrackerKey, now: Instant) -> Duration {
        let paused = state
            .quota
            .paused_until(key, now)
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
        #[cfg(test)]
        if self
            .panic_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("test hook: the dispatcher panics");
        }
        state.queue.retain(|e| e.slot.is_waiting());
        let mut blocked: Vec<(TrackerKey, Wait)> = Vec::new();
        let mut chosen: Option<Position> = None;
        let head = state.queue.next()?;
        // The head first (the usual case: one quota, FIFO); when its quota holds it back,
        // the first entry in serving order whose own quota (partition, resource) allows.
        let mut candidates = vec![head];
        let mut i = 0;
        while let Some(&at) = candidates.get(i) {
            i += 1;
            let Some(key) = state.queue.get(at).map(|e| e.key.clone()) else {
                continue;
            };
            if blocked.iter().any(|(k, _)| *k == key) {
                continue;
            }
            match state.quota.try_reserve(&key, now) {
                Ok(()) => {
                    tracing::trace!(quota = ?state.quota.snapshot(now), "granted from the queue");
                    chosen = Some(at);
                    break;
                }
                Err(wait) => {
                    blocked.push((key, wait));
                    if i == 1 {
                        let rest = state.queue.in_order();
                        candidates.extend(rest.into_iter().filter(|p| *p != head));
                    }
                }
            }
        }
        if let Some(at) = chosen {
            let entry = state.queue.remove(at)?;
            let taken = state.take(&entry.slot);
            drop(state);
            let reservation = Reservation::new(Arc::<Self>::clone(self), entry.key, now);
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
        for (key, wait) in &blocked {
            state.reject_hopeless(key, *wait, now);
        }
        soonest(blocked.iter().map(|(_, wait)| *wait), now)
    }

    /// [`Shared::try_grant`] with the fleet's store: Redis decides, for up to
    /// [`FLEET_BATCH`] waiting requests of one quota in one call. A failed call has already
    /// degraded the fleet: the next round paces locally.
    async fn grant_shared(
        self: &Arc<Self>,
        remote: Arc<RedisQuota>,
        slot: OwnedSemaphorePermit,
    ) -> Option<Wait> {
        let now = Instant::now();
        // The quotas of the waiting requests, in serving order, with how many wait on each.
        let mut asks: Vec<(TrackerKey, usize)> = {
            let mut state = self.lock();
            state.queue.retain(|e| e.slot.is_waiting());
            let mut asks: Vec<(TrackerKey, usize)> = Vec::new();
            for at in state.queue.in_order() {
                let Some(entry) = state.queue.get(at) else {
                    continue;
                };
                match asks.iter_mut().find(|(k, _)| *k == entry.key) {
                    Some((_, n)) => *n += 1,
                    None => asks.push((entry.key.clone(), 1)),
                }
            }
            asks
        };
        // The head's quota first; when it is held back, a few others, taking turns (a
        // rotating start), so every waiting quota is asked within a few dispatches.
        if asks.len() > FLEET_KEYS {
            let others = asks.len() - 1;
            let start = self
                .fleet_cursor
                .fetch_add(FLEET_KEYS - 1, Ordering::Relaxed);
            let mut chosen = vec![asks[0].clone()];
            chosen.extend((0..FLEET_KEYS - 1).map(|i| asks[1 + (start + i) % others].clone()));
            asks = chosen;
        }
        let free = 1 + self.slots.available_permits();
        let mut slot = Some(slot);
        let mut waits = Vec::new();
        for (key, waiting) in asks {
            // This replica's own answers are applied here at once, in Redis a moment later
            // (settlements are flushed off the request path): a pause it just learned holds.
            {
                let mut state = self.lock();
                if let Some(until) = state.quota.paused_until(&key, now) {
                    state.reject_hopeless(&key, Wait::Until(until), now);
                    waits.push(Wait::Until(until));
                    continue;
                }
            }
            let wanted = u32::try_from(waiting.min(free).min(FLEET_BATCH)).unwrap_or(1);
            let reserved = remote.reserve(&key, wanted, now).await.ok()?;
            if key.is_own() {
                *lock(&self.fleet_view) = Some((now, reserved.view));
            }
            if reserved.tickets.is_empty() {
                let wait = match reserved.wait.unwrap_or(Wait::Response) {
                    Wait::Response => Wait::Until(now + FLEET_RESPONSE_POLL),
                    until => {
                        self.lock().reject_hopeless(&key, until, now);
                        until
                    }
                };
                waits.push(wait);
                continue;
            }
            for ticket in reserved.tickets {
                let permit = slot
                    .take()
                    .or_else(|| Arc::clone(&self.slots).try_acquire_owned().ok());
                let entry = {
                    let mut state = self.lock();
                    state.quota.reserve_granted(&key, now);
                    let at = state.queue.in_order().into_iter().find(|p| {
                        state
                            .queue
                            .get(*p)
                            .is_some_and(|e| e.key == key && e.slot.is_waiting())
                    });
                    let entry = at.and_then(|at| state.queue.remove(at));
                    entry.filter(|e| state.take(&e.slot))
                };
                // Outside the lock: a reservation nobody takes is dropped, which settles it.
                let reservation =
                    Reservation::with_ticket(Arc::<Self>::clone(self), key.clone(), now, ticket);
                match (entry, permit) {
                    (Some(entry), Some(permit)) => {
                        let _ = entry.slot.tx.send(Ok(Grant::new(
                            reservation,
                            permit,
                            now - entry.enqueued,
                        )));
                    }
                    (entry, _) => {
                        drop(reservation);
                        if let Some(entry) = entry {
                            // No slot after all: back in the queue.
                            self.requeue(entry);
                        }
                    }
                }
            }
            return None;
        }
        soonest(waits.into_iter(), now)
    }

    /// Puts a taken entry back (its grant could not be completed), unless its waiter left.
    fn requeue(&self, entry: Place<Slot>) {
        if entry.slot.tx.is_closed() {
            return;
        }
        let mut state = self.lock();
        entry.slot.state.store(QUEUED, Ordering::Release);
        state.waiting += 1;
        state.queue.push(entry);
    }
}

impl Settle for Shared {
    fn observe(
        &self,
        key: &TrackerKey,
        route: &str,
        answer: &Answer<'_>,
    ) -> (Option<Instant>, TrackerKey) {
        self.change_quota(|quota| {
            let observed = quota.observe_at(key, route, answer);
            let observation = answer.observation;
            tracing::trace!(
                status = answer.status.as_u16(),
                observed_remaining = observation.and_then(|o| o.remaining),
                observed_reset_ms = observation
                    .and_then(|o| o.reset_after)
                    .map(|d| d.as_millis() as u64),
                quota = ?quota.snapshot(answer.received_at),
                "observed"
            );
            observed
        })
    }

    /// Settles a reservation whose request never reached the supplier.
    fn release(&self, key: &TrackerKey) {
        self.change_quota(|quota| quota.release(key));
    }

    /// Settles a reservation whose request reached the supplier but got no answer.
    fn spend(&self, key: &TrackerKey, sent_at: Instant) {
        self.change_quota(|quota| quota.spend(key, sent_at));
    }

    fn settle_fleet(&self, settlement: Settlement) {
        if let Some(remote) = &self.fleet {
            remote.settle_later(settlement);
        }
    }
}

/// The wait that ends soonest (a known instant before "a response").
fn soonest(waits: impl Iterator<Item = Wait>, now: Instant) -> Option<Wait> {
    waits.min_by_key(|wait| {
        match wait {
            Wait::Until(until) => Some(*until),
            Wait::Response => None,
        }
        .map_or((1, now), |u| (0, u))
    })
}

/// Runs the dispatcher and restarts it if it panics: the queue lives in [`Shared`], so it
/// survives intact; the panic is logged and counted. Without this, one panic would leave every
/// later request to the upstream waiting until its deadline.
async fn supervise(shared: Arc<Shared>) {
    /// Aborts the running dispatcher when the supervisor itself is stopped (scheduler dropped).
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    loop {
        let task = tokio::spawn(dispatch(Arc::clone(&shared)));
        let _guard = AbortOnDrop(task.abort_handle());
        match task.await {
            Err(error) if error.is_panic() => {
                shared.internal_errors.inc();
                tracing::error!(
                    error = %error,
                    "the scheduler's dispatcher panicked (a bug); restarted with its queue intact"
                );
                // A panic while the lock was held may have left a stale waiting count: recount.
                {
                    let mut state = shared.lock();
                    state.queue.retain(|e| e.slot.is_waiting());
                    state.waiting = state.queue.len();
                }
                // A bug that panics at once again must not spin a core.
                tokio::time::sleep(RESTART_PAUSE).await;
            }
            Ok(()) | Err(_) => return,
        }
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
        let blocked = match shared.remote() {
            Some(remote) => shared.grant_shared(remote, slot).await,
            None => shared.try_grant(slot),
        };
        tracing::trace!(?blocked, "dispatcher");
        match blocked {
            None => {}
            Some(Wait::Until(until)) => {
                // Never look again sooner than 1 ms: a wait that rounds to "now" (a bucket
                // a nanosecond from room) must not spin the dispatcher.
                let until = until.max(Instant::now() + MIN_RECHECK);
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    () = shared.wake.notified() => {}
                }
            }
            Some(Wait::Response) => shared.wake.notified().await,
        }
    }
}
