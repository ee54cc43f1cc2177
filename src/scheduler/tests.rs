//! Scheduler decisions on tokio's paused clock: a 60-second window or a 1-hour pause takes
//! milliseconds.

use std::time::Duration;

use http::StatusCode;
use tokio::time::{advance, Instant};

use super::{Priority, Rejected, Scheduler, SchedulerConfig};
use crate::config::LimitConfig;
use crate::quota::observation::{QuotaObservation, Source};
use crate::quota::state::{Ask, QuotaState};
use crate::quota::tracker::TrackerConfig;

const S: Duration = Duration::from_secs(1);

fn scheduler(
    concurrency: usize,
    max_depth: usize,
    max_wait: Duration,
    max_delay: Duration,
) -> Scheduler {
    scheduler_with_limit(concurrency, max_depth, max_wait, max_delay, None)
}

fn scheduler_with_limit(
    concurrency: usize,
    max_depth: usize,
    max_wait: Duration,
    max_delay: Duration,
    limit: Option<LimitConfig>,
) -> Scheduler {
    let tracker = TrackerConfig {
        probes: 2,
        base_delay: Duration::from_millis(200),
        max_delay,
        share: 1,
    };
    Scheduler::new(
        SchedulerConfig {
            max_concurrency: concurrency,
            max_depth,
            max_wait,
        },
        QuotaState::new(tracker, limit, 100),
        prometheus::IntCounter::new("internal_errors", "test").expect("counter"),
    )
}

fn window(limit: u64, remaining: u64, reset: Duration) -> QuotaObservation {
    let mut obs = QuotaObservation::new(Source::Ietf);
    obs.limit = Some(limit);
    obs.remaining = Some(remaining);
    obs.reset_after = Some(reset);
    obs
}

/// Lets spawned tasks (the dispatcher) run without moving the clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_60_second_window_holds_the_next_request_until_it_resets() {
    let s = scheduler(8, 100, 120 * S, 30 * S);
    let deadline = Instant::now() + 120 * S;
    for remaining in [2, 1, 0] {
        let grant = s
            .acquire(Priority::Normal, Ask::default(), deadline)
            .await
            .expect("granted");
        assert_eq!(grant.queue_wait, Duration::ZERO);
        grant
            .into_parts()
            .0
            .complete("", StatusCode::OK, Some(&window(3, remaining, 60 * S)));
    }
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        let grant = s.acquire(Priority::Normal, Ask::default(), deadline).await;
        (grant.map(|g| g.queue_wait), s)
    });
    settle().await;
    advance(59 * S).await;
    settle().await;
    assert!(!waiting.is_finished(), "granted before the window reset");
    advance(S).await;
    let (wait, _s) = waiting.await.expect("join");
    assert_eq!(wait.expect("granted"), 60 * S);
    assert_eq!(Instant::now() - started, 60 * S);
}

#[tokio::test(start_paused = true)]
async fn a_one_hour_retry_after_pauses_the_upstream_or_answers_at_once() {
    let s = scheduler(8, 100, 2 * 3600 * S, 2 * 3600 * S);
    let deadline = Instant::now() + 2 * 3600 * S;
    let grant = s
        .acquire(Priority::Normal, Ask::default(), deadline)
        .await
        .expect("granted");
    let mut obs = QuotaObservation::new(Source::RetryAfter);
    obs.retry_after = Some(3600 * S);
    obs.rate_limited = true;
    let until = grant
        .into_parts()
        .0
        .complete("", StatusCode::TOO_MANY_REQUESTS, Some(&obs));
    assert_eq!(until, Some(Instant::now() + 3600 * S));

    // A request whose deadline is within the hour is answered at once, with the real wait.
    let short = s
        .acquire(Priority::Normal, Ask::default(), Instant::now() + 30 * S)
        .await;
    assert_eq!(
        short.err(),
        Some(Rejected::QueueTimeout {
            retry_after: 3600 * S
        })
    );

    // One that may wait is sent when the hour is over, not before.
    let started = Instant::now();
    let grant = s
        .acquire(Priority::Normal, Ask::default(), deadline)
        .await
        .expect("granted");
    assert_eq!(Instant::now() - started, 3600 * S);
    assert_eq!(grant.queue_wait, 3600 * S);
}

#[tokio::test(start_paused = true)]
async fn queued_requests_that_cannot_make_it_are_answered_when_the_pause_starts() {
    let s = std::sync::Arc::new(scheduler(1, 100, 10 * S, 3600 * S));
    let first = s
        .acquire(Priority::Normal, Ask::default(), Instant::now() + 10 * S)
        .await
        .expect("granted");
    let queued = {
        let s = s.clone();
        tokio::spawn(async move {
            s.acquire(Priority::Normal, Ask::default(), Instant::now() + 10 * S)
                .await
                .map(|_| ())
        })
    };
    settle().await;
    assert_eq!(s.queue_depth(), 1);
    let mut obs = QuotaObservation::new(Source::RetryAfter);
    obs.retry_after = Some(600 * S);
    obs.rate_limited = true;
    first
        .into_parts()
        .0
        .complete("", StatusCode::TOO_MANY_REQUESTS, Some(&obs));
    settle().await;
    let rejected = queued.await.expect("join");
    assert_eq!(
        rejected,
        Err(Rejected::QueueTimeout {
            retry_after: 600 * S
        }),
        "answered without waiting 10 s"
    );
    assert_eq!(s.queue_depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_bounded_and_a_leaver_frees_its_place_at_once() {
    let s = std::sync::Arc::new(scheduler(1, 1, 30 * S, 30 * S));
    let deadline = Instant::now() + 30 * S;
    let holder = s
        .acquire(Priority::Normal, Ask::default(), deadline)
        .await
        .expect("granted");
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move {
            s.acquire(Priority::Normal, Ask::default(), deadline)
                .await
                .map(|_| ())
        })
    };
    settle().await;
    assert_eq!(s.queue_depth(), 1);
    let full = s.acquire(Priority::Normal, Ask::default(), deadline).await;
    assert!(matches!(full, Err(Rejected::QueueFull { .. })), "{full:?}");

    waiter.abort();
    let _ = waiter.await;
    assert_eq!(
        s.queue_depth(),
        0,
        "the place is free as soon as the client left"
    );
    let next = {
        let s = s.clone();
        tokio::spawn(async move {
            s.acquire(Priority::Normal, Ask::default(), deadline)
                .await
                .map(|g| g.queue_wait)
        })
    };
    settle().await;
    assert_eq!(s.queue_depth(), 1);
    advance(S).await;
    drop(holder);
    assert_eq!(next.await.expect("join").expect("granted"), S);
}

#[tokio::test(start_paused = true)]
async fn high_goes_first_and_fifo_holds_within_a_class() {
    let s = std::sync::Arc::new(scheduler(1, 100, 30 * S, 30 * S));
    let deadline = Instant::now() + 30 * S;
    let holder = s
        .acquire(Priority::Normal, Ask::default(), deadline)
        .await
        .expect("granted");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (name, priority) in [
        ("low-1", Priority::Low),
        ("normal-1", Priority::Normal),
        ("high-1", Priority::High),
        ("normal-2", Priority::Normal),
        ("high-2", Priority::High),
    ] {
        let s = s.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let grant = s
                .acquire(priority, Ask::default(), deadline)
                .await
                .expect("granted");
            tx.send(name).expect("send");
            drop(grant);
        });
        settle().await;
    }
    drop(holder);
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(rx.recv().await.expect("grant"));
    }
    assert_eq!(order, ["high-1", "high-2", "normal-1", "normal-2", "low-1"]);
}

#[tokio::test(start_paused = true)]
async fn the_static_limit_applies_on_top() {
    let limit = LimitConfig {
        requests: 2,
        per: 10 * S,
    };
    let s = scheduler_with_limit(8, 100, 60 * S, 30 * S, Some(limit));
    let deadline = Instant::now() + 60 * S;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let grant = s
            .acquire(Priority::Normal, Ask::default(), deadline)
            .await
            .expect("granted");
        waits.push(grant.queue_wait);
        grant
            .into_parts()
            .0
            .complete("", StatusCode::OK, Some(&window(1000, 999, 60 * S)));
    }
    assert_eq!(waits, [Duration::ZERO, Duration::ZERO, 5 * S, 5 * S]);
}

#[tokio::test(start_paused = true)]
async fn partitions_have_their_own_quota() {
    let s = scheduler(8, 100, 60 * S, 30 * S);
    let deadline = Instant::now() + 60 * S;
    let a = Ask {
        partition: Some("key-a"),
        route: "",
    };
    let grant = s
        .acquire(Priority::Normal, a, deadline)
        .await
        .expect("granted");
    grant
        .into_parts()
        .0
        .complete("", StatusCode::OK, Some(&window(1, 0, 30 * S)));
    // key-a is spent for 30 s; key-b is not.
    let b = s
        .acquire(
            Priority::Normal,
            Ask {
                partition: Some("key-b"),
                route: "",
            },
            Instant::now() + S,
        )
        .await;
    assert!(b.is_ok());
    let a_again = s.acquire(Priority::Normal, a, Instant::now() + S).await;
    assert!(matches!(a_again, Err(Rejected::QueueTimeout { .. })));
}

/// The dispatcher panics (a bug): it is restarted with its queue intact and counted; the
/// queued request is still served.
#[tokio::test(start_paused = true)]
async fn a_panicking_dispatcher_is_restarted_with_its_queue() {
    let s = scheduler(1, 100, 60 * S, 30 * S);
    let deadline = Instant::now() + 60 * S;
    let first = s
        .acquire(Priority::Normal, Ask::default(), deadline)
        .await
        .expect("granted");
    s.shared
        .panic_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let shared = std::sync::Arc::clone(&s.shared);
    let s = std::sync::Arc::new(s);
    let waiting = tokio::spawn({
        let s = std::sync::Arc::clone(&s);
        async move {
            s.acquire(Priority::Normal, Ask::default(), deadline)
                .await
                .map(|g| g.queue_wait)
        }
    });
    settle().await;
    // The slot comes back: the dispatcher wakes, panics, is restarted and grants.
    drop(first);
    settle().await;
    advance(S).await;
    settle().await;
    let granted = waiting.await.expect("join");
    assert!(granted.is_ok(), "{granted:?}");
    assert_eq!(shared.internal_errors.get(), 1, "the panic was counted");
    assert_eq!(s.queue_depth(), 0);
}

/// Whatever quota facts the parser lets through (extreme counts, zero and maximal waits,
/// buckets over their size), the scheduler never panics and never holds a request longer
/// than the caps: the parser's `max_wait` (two days) for an announced window reset, plus
/// `retry.max_delay` for a pause or a bucket's drain.
mod extremes {
    use proptest::prelude::*;

    use super::*;
    use crate::quota::observation::LeakyBucket;

    fn extreme_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0),
            Just(1),
            Just(u64::MAX),
            Just(u64::MAX - 1),
            any::<u64>()
        ]
    }

    fn extreme_duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::from_nanos(1)),
            Just(Duration::from_secs(2 * 24 * 3600)),
            (0u64..=2 * 24 * 3600 * 1000).prop_map(Duration::from_millis),
        ]
    }

    fn observation() -> impl Strategy<Value = (u16, QuotaObservation)> {
        (
            prop_oneof![Just(200u16), Just(429), Just(503), Just(403)],
            proptest::option::of(extreme_u64()),
            proptest::option::of(extreme_u64()),
            proptest::option::of(extreme_duration()),
            proptest::option::of(extreme_duration()),
            proptest::option::of(extreme_duration()),
            proptest::option::of((
                extreme_u64(),
                prop_oneof![Just(1u64), Just(2), 1u64..=u64::MAX],
            )),
            any::<bool>(),
            prop_oneof![
                Just(Source::Github),
                Just(Source::Shopify),
                Just(Source::RetryAfter)
            ],
        )
            .prop_map(
                |(status, limit, remaining, reset, window, retry, bucket, limited, source)| {
                    let mut obs = QuotaObservation::new(source);
                    obs.limit = limit;
                    obs.remaining = remaining;
                    obs.reset_after = reset;
                    obs.window = window;
                    obs.retry_after = retry.filter(|_| limited);
                    obs.bucket = bucket.map(|(used, size)| LeakyBucket { used, size });
                    obs.rate_limited = limited || status == 429;
                    (status, obs)
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn no_panic_and_no_wait_past_the_caps(answers in proptest::collection::vec(observation(), 1..12)) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let max_delay = 30 * S;
                // The longest announced reset the parser lets through (two days), plus at most
                // `retry.max_delay` (a pause, or a poll when a window rolled to "none left" and
                // nothing says when it resets).
                let cap = 2 * 24 * 3600 * S + max_delay;
                let s = scheduler(4, 100, 3 * cap, max_delay);
                for (status, obs) in answers {
                    let started = Instant::now();
                    let grant = tokio::time::timeout(
                        cap + S,
                        s.acquire(Priority::Normal, Ask::default(), started + 3 * cap),
                    )
                    .await;
                    let waited = Instant::now() - started;
                    prop_assert!(waited <= cap, "waited {waited:?}");
                    let Ok(Ok(grant)) = grant else {
                        prop_assert!(false, "no grant within the cap: {grant:?}");
                        return Ok(());
                    };
                    let status = StatusCode::from_u16(status).expect("status");
                    let (reservation, _slot) = grant.into_parts();
                    if let Some(until) = reservation.complete("", status, Some(&obs)) {
                        prop_assert!(until - Instant::now() <= cap);
                    }
                }
                Ok(())
            })?;
        }
    }
}

/// A queued request held by the upstream's own quota does not hold back a request for
/// another partition behind it.
#[tokio::test(start_paused = true)]
async fn a_held_head_does_not_block_other_partitions() {
    let s = std::sync::Arc::new(scheduler(8, 100, 60 * S, 30 * S));
    let deadline = Instant::now() + 60 * S;
    let grant = s
        .acquire(Priority::Normal, Ask::default(), deadline)
        .await
        .expect("granted");
    grant
        .into_parts()
        .0
        .complete("", StatusCode::OK, Some(&window(1, 0, 30 * S)));
    let head = tokio::spawn({
        let s = std::sync::Arc::clone(&s);
        async move {
            s.acquire(Priority::Normal, Ask::default(), deadline)
                .await
                .map(|g| g.queue_wait)
        }
    });
    settle().await;
    assert_eq!(s.queue_depth(), 1, "the head waits for the window");
    let other = s
        .acquire(
            Priority::Normal,
            Ask {
                partition: Some("key-b"),
                route: "",
            },
            Instant::now() + S,
        )
        .await;
    assert!(other.is_ok(), "{:?}", other.err());
    head.abort();
}
