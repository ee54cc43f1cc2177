//! The quota's decisions: one tracker's check, reserve and observe cycle on GitHub-style
//! answers, and a scheduler handing out grants with 10,000 requests queued (grants per
//! second, each answered with the supplier's quota headers, as the proxy does).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use headroom::quota::state::{Ask, QuotaState};
use headroom::quota::tracker::{Answer, Tracker, TrackerConfig};
use headroom::quota::{parse, ParseOptions, QuotaObservation};
use headroom::scheduler::{Priority, Scheduler, SchedulerConfig};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

const CONFIG: TrackerConfig = TrackerConfig {
    probes: 2,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(30),
    share: 1,
};

/// A GitHub answer: 5,000 an hour, plenty left.
fn github() -> QuotaObservation {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4000"),
        ("x-ratelimit-used", "1000"),
        ("x-ratelimit-reset", "1800003600"),
        ("x-ratelimit-resource", "core"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    parse(StatusCode::OK, &headers, now, &ParseOptions::default())
        .0
        .expect("an observation")
}

fn tracker(c: &mut Criterion) {
    let observation = github();
    let mut group = c.benchmark_group("tracker");
    group.throughput(Throughput::Elements(1));
    group.bench_function("check_reserve_observe", |b| {
        let mut tracker = Tracker::new(CONFIG);
        let start = Instant::now();
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let now = start + Duration::from_micros(n);
            if tracker.check(now).is_ok() {
                tracker.reserve(now);
            }
            black_box(tracker.observe(&Answer {
                sent_at: now,
                received_at: now,
                status: StatusCode::OK,
                observation: Some(&observation),
                jitter: 0.5,
            }))
        });
    });
    group.finish();
}

/// 10,000 requests queued at once behind 64 slots; each grant is answered at once with
/// quota headers that leave plenty. Returns how long all of them took.
async fn drain_queue(requests: usize, observation: Arc<QuotaObservation>) -> Duration {
    let scheduler = Arc::new(Scheduler::new(
        SchedulerConfig {
            max_concurrency: 64,
            max_depth: requests * 2,
            max_wait: Duration::from_secs(600),
        },
        QuotaState::new(CONFIG, None, 1000),
        prometheus::IntCounter::new("bench_internal_errors", "-").expect("counter"),
    ));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..requests {
        let scheduler = Arc::clone(&scheduler);
        let observation = Arc::clone(&observation);
        tasks.spawn(async move {
            let ask = Ask {
                partition: None,
                route: "/repos",
            };
            let deadline = Instant::now() + Duration::from_secs(600);
            let grant = scheduler
                .acquire(Priority::default(), ask, deadline)
                .await
                .expect("granted");
            let (mut reservation, slot) = grant.into_parts();
            reservation.mark_sent();
            reservation.complete("/repos", StatusCode::OK, Some(&observation));
            drop(slot);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    started.elapsed()
}

fn scheduler(c: &mut Criterion) {
    const QUEUED: usize = 10_000;
    let observation = Arc::new(github());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("scheduler");
    group.sample_size(10);
    group.throughput(Throughput::Elements(QUEUED as u64));
    group.bench_function("grants_with_10000_queued", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| runtime.block_on(drain_queue(QUEUED, Arc::clone(&observation))))
                .sum()
        });
    });
    group.finish();
}

criterion_group!(benches, tracker, scheduler);
criterion_main!(benches);
