//! The store seam: one table of cases run against the in-process store and the Redis store
//! (a real `redis-server`), on the same synthetic clock. Both must give the answers the table
//! expects, so the Lua port of the tracker cannot drift from the Rust one.

mod support;

use std::sync::Arc;
use std::time::Duration;

use headroom::config::StoreConfig;
use headroom::metrics::Metrics;
use headroom::quota::model::Wait;
use headroom::quota::state::{QuotaState, TrackerKey};
use headroom::quota::tracker::TrackerConfig;
use headroom::quota::{QuotaObservation, Source};
use headroom::store::{Fleet, LocalStore, QuotaStore, RedisQuota, Settled, Settlement};
use http::StatusCode;
use support::redis::RedisServer;
use tokio::time::Instant;

const CONFIG: TrackerConfig = TrackerConfig {
    probes: 2,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(30),
    share: 1,
};

/// What a step of a case saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Units granted, and what held the rest back (`Until` in ms from the case's start).
    Granted(usize, Option<Held>),
    /// The pause an answer caused (ms from the start), if any.
    Paused(Option<u64>),
    /// The view: limit, remaining (minus in flight), in flight.
    View(Option<u64>, Option<u64>, u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Until(u64),
    Response,
}

/// One step: at `at` ms from the case's start.
#[derive(Debug, Clone)]
enum Step {
    /// Something else (a 503 with `Retry-After` seen elsewhere) pauses `key` until `until`.
    Pause {
        at: u64,
        key: u8,
        until: u64,
    },
    Reserve {
        at: u64,
        key: u8,
        n: u32,
    },
    /// The answer to the `ticket`-th granted unit (in grant order), sent at `sent`.
    Answer {
        at: u64,
        ticket: usize,
        sent: u64,
        status: u16,
        obs: Option<Obs>,
    },
    Spend {
        ticket: usize,
        sent: u64,
    },
    Release {
        ticket: usize,
    },
    View {
        at: u64,
        key: u8,
    },
}

#[derive(Debug, Clone, Copy)]
struct Obs {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_ms: Option<u64>,
    retry_ms: Option<u64>,
}

fn github(limit: u64, remaining: u64, reset_ms: u64) -> Option<Obs> {
    Some(Obs {
        limit: Some(limit),
        remaining: Some(remaining),
        reset_ms: Some(reset_ms),
        retry_ms: None,
    })
}

fn retry_after(ms: u64) -> Option<Obs> {
    Some(Obs {
        limit: None,
        remaining: None,
        reset_ms: None,
        retry_ms: Some(ms),
    })
}

fn key(n: u8) -> TrackerKey {
    match n {
        0 => TrackerKey::default(),
        n => TrackerKey::new(Some(&format!("team-{n}")), None),
    }
}

fn observation(obs: Obs, status: u16) -> QuotaObservation {
    let source = if obs.limit.is_some() {
        Source::Github
    } else {
        Source::RetryAfter
    };
    let mut o = QuotaObservation::new(source);
    o.limit = obs.limit;
    o.remaining = obs.remaining;
    o.reset_after = obs.reset_ms.map(Duration::from_millis);
    o.retry_after = obs.retry_ms.map(Duration::from_millis);
    o.rate_limited = status == 429;
    o
}

/// Runs `steps` against `store` from `start`; returns what each step saw.
async fn run<S: QuotaStore>(store: &S, start: Instant, steps: &[Step]) -> Vec<Seen> {
    let ms = |at: u64| start + Duration::from_millis(at);
    let since = |i: Instant| u64::try_from((i - start).as_millis()).expect("ms");
    let mut tickets: Vec<(TrackerKey, String)> = Vec::new();
    let mut seen = Vec::new();
    for step in steps {
        match step.clone() {
            Step::Reserve { at, key: k, n } => {
                let reserved = store.reserve(&key(k), n, ms(at)).await.expect("reserve");
                let held = reserved.wait.map(|w| match w {
                    Wait::Until(until) => Held::Until(since(until)),
                    Wait::Response => Held::Response,
                });
                seen.push(Seen::Granted(reserved.tickets.len(), held));
                tickets.extend(reserved.tickets.into_iter().map(|t| (key(k), t)));
            }
            Step::Answer {
                at,
                ticket,
                sent,
                status,
                obs,
            } => {
                let (k, t) = tickets[ticket].clone();
                let status = StatusCode::from_u16(status).expect("status");
                let settlement = Settlement {
                    target: k.clone(),
                    key: k,
                    route: Arc::from("items"),
                    ticket: t,
                    sent_at: ms(sent),
                    outcome: Settled::Answered {
                        received_at: ms(at),
                        status,
                        observation: obs.map(|o| observation(o, status.as_u16())),
                    },
                };
                let pauses = store.settle(&[settlement], ms(at)).await.expect("settle");
                seen.push(Seen::Paused(pauses[0].map(since)));
            }
            Step::Spend { ticket, sent } => {
                let (k, t) = tickets[ticket].clone();
                settle_plain(store, k, t, ms(sent), Settled::Spent, ms(sent)).await;
            }
            Step::Release { ticket } => {
                let (k, t) = tickets[ticket].clone();
                settle_plain(store, k, t, start, Settled::Released, start).await;
            }
            Step::Pause { at, key: k, until } => {
                let settlement = Settlement {
                    target: key(k),
                    key: key(k),
                    route: Arc::from(""),
                    ticket: String::new(),
                    sent_at: ms(at),
                    outcome: Settled::Paused { until: ms(until) },
                };
                let pauses = store.settle(&[settlement], ms(at)).await.expect("settle");
                seen.push(Seen::Paused(pauses[0].map(since)));
            }
            Step::View { at, key: k } => {
                let view = store.view(&key(k), ms(at)).await.expect("view");
                seen.push(Seen::View(view.limit, view.remaining, view.in_flight));
            }
        }
    }
    seen
}

async fn settle_plain<S: QuotaStore>(
    store: &S,
    key: TrackerKey,
    ticket: String,
    sent_at: Instant,
    outcome: Settled,
    now: Instant,
) {
    let settlement = Settlement {
        target: key.clone(),
        key,
        route: Arc::from(""),
        ticket,
        sent_at,
        outcome,
    };
    store.settle(&[settlement], now).await.expect("settle");
}

fn cases() -> Vec<(&'static str, Vec<Step>, Vec<Seen>)> {
    use Step::*;
    vec![
        (
            "before any answer only `probes` go; the answer's window then paces",
            vec![
                Reserve {
                    at: 0,
                    key: 0,
                    n: 5,
                },
                Answer {
                    at: 10,
                    ticket: 0,
                    sent: 0,
                    status: 200,
                    obs: github(5, 4, 2000),
                },
                Reserve {
                    at: 20,
                    key: 0,
                    n: 10,
                },
                View { at: 30, key: 0 },
            ],
            vec![
                Seen::Granted(2, Some(Held::Response)),
                Seen::Paused(None),
                // 4 remaining, 1 still in flight: 3 go, the rest wait for the reset.
                Seen::Granted(3, Some(Held::Until(2010))),
                Seen::View(Some(5), Some(0), 4),
            ],
        ),
        (
            "a 429 with Retry-After pauses until the announced instant",
            vec![
                Reserve {
                    at: 0,
                    key: 0,
                    n: 1,
                },
                Answer {
                    at: 5,
                    ticket: 0,
                    sent: 0,
                    status: 429,
                    obs: retry_after(3000),
                },
                Reserve {
                    at: 10,
                    key: 0,
                    n: 1,
                },
                Reserve {
                    at: 3005,
                    key: 0,
                    n: 1,
                },
            ],
            vec![
                Seen::Granted(1, None),
                Seen::Paused(Some(3005)),
                Seen::Granted(0, Some(Held::Until(3005))),
                Seen::Granted(1, None),
            ],
        ),
        (
            "an answer to an older request never rolls the window back",
            vec![
                Reserve {
                    at: 0,
                    key: 0,
                    n: 2,
                },
                Answer {
                    at: 50,
                    ticket: 1,
                    sent: 20,
                    status: 200,
                    obs: github(10, 3, 1000),
                },
                // Sent before the one applied, claims more left: ignored.
                Answer {
                    at: 60,
                    ticket: 0,
                    sent: 0,
                    status: 200,
                    obs: github(10, 7, 1000),
                },
                View { at: 70, key: 0 },
            ],
            vec![
                Seen::Granted(2, None),
                Seen::Paused(None),
                Seen::Paused(None),
                Seen::View(Some(10), Some(3), 0),
            ],
        ),
        (
            "a sent request without an answer stays spent; a never-sent one comes back",
            vec![
                Reserve {
                    at: 0,
                    key: 0,
                    n: 1,
                },
                Answer {
                    at: 10,
                    ticket: 0,
                    sent: 0,
                    status: 200,
                    obs: github(10, 5, 5000),
                },
                Reserve {
                    at: 20,
                    key: 0,
                    n: 2,
                },
                Spend {
                    ticket: 1,
                    sent: 20,
                },
                Release { ticket: 2 },
                View { at: 30, key: 0 },
            ],
            vec![
                Seen::Granted(1, None),
                Seen::Paused(None),
                Seen::Granted(2, None),
                Seen::View(Some(10), Some(4), 0),
            ],
        ),
        (
            "a supplier that only speaks on 429: the limit is inferred from the window's successes",
            vec![
                Reserve {
                    at: 0,
                    key: 0,
                    n: 1,
                },
                Answer {
                    at: 10,
                    ticket: 0,
                    sent: 0,
                    status: 200,
                    obs: None,
                },
                Reserve {
                    at: 20,
                    key: 0,
                    n: 1,
                },
                Answer {
                    at: 30,
                    ticket: 1,
                    sent: 20,
                    status: 200,
                    obs: None,
                },
                Reserve {
                    at: 40,
                    key: 0,
                    n: 1,
                },
                Answer {
                    at: 50,
                    ticket: 2,
                    sent: 40,
                    status: 200,
                    obs: None,
                },
                Reserve {
                    at: 60,
                    key: 0,
                    n: 1,
                },
                Answer {
                    at: 70,
                    ticket: 3,
                    sent: 60,
                    status: 429,
                    obs: retry_after(1000),
                },
                View { at: 80, key: 0 },
                // The next window: one probe first...
                Reserve {
                    at: 1070,
                    key: 0,
                    n: 5,
                },
                Answer {
                    at: 1080,
                    ticket: 4,
                    sent: 1070,
                    status: 200,
                    obs: None,
                },
                // ...then the rest of the inferred limit.
                Reserve {
                    at: 1090,
                    key: 0,
                    n: 5,
                },
            ],
            vec![
                Seen::Granted(1, None),
                Seen::Paused(None),
                Seen::Granted(1, None),
                Seen::Paused(None),
                Seen::Granted(1, None),
                Seen::Paused(None),
                Seen::Granted(1, None),
                Seen::Paused(Some(1070)),
                Seen::View(Some(3), Some(0), 0),
                Seen::Granted(1, Some(Held::Response)),
                Seen::Paused(None),
                Seen::Granted(2, Some(Held::Response)),
            ],
        ),
        (
            "partitions are apart: one spent key does not hold another",
            vec![
                Reserve {
                    at: 0,
                    key: 1,
                    n: 1,
                },
                Answer {
                    at: 10,
                    ticket: 0,
                    sent: 0,
                    status: 429,
                    obs: retry_after(5000),
                },
                Reserve {
                    at: 20,
                    key: 1,
                    n: 1,
                },
                Reserve {
                    at: 20,
                    key: 2,
                    n: 1,
                },
            ],
            vec![
                Seen::Granted(1, None),
                Seen::Paused(Some(5010)),
                Seen::Granted(0, Some(Held::Until(5010))),
                Seen::Granted(1, None),
            ],
        ),
        (
            "a pause recorded from elsewhere holds the quota until its end, and only it",
            vec![
                Reserve {
                    at: 0,
                    key: 3,
                    n: 1,
                },
                Pause {
                    at: 10,
                    key: 3,
                    until: 1500,
                },
                Reserve {
                    at: 20,
                    key: 3,
                    n: 1,
                },
                Reserve {
                    at: 20,
                    key: 4,
                    n: 1,
                },
                Reserve {
                    at: 1500,
                    key: 3,
                    n: 1,
                },
            ],
            vec![
                Seen::Granted(1, None),
                Seen::Paused(Some(1500)),
                Seen::Granted(0, Some(Held::Until(1500))),
                Seen::Granted(1, None),
                Seen::Granted(1, None),
            ],
        ),
        (
            "a new window sends a first wave of half the learned limit until an answer confirms",
            vec![
                Reserve {
                    at: 0,
                    key: 0,
                    n: 1,
                },
                Answer {
                    at: 10,
                    ticket: 0,
                    sent: 0,
                    status: 200,
                    obs: github(6, 0, 990),
                },
                Reserve {
                    at: 1000,
                    key: 0,
                    n: 6,
                },
                Answer {
                    at: 1010,
                    ticket: 1,
                    sent: 1000,
                    status: 200,
                    obs: github(6, 5, 1000),
                },
                Reserve {
                    at: 1020,
                    key: 0,
                    n: 6,
                },
            ],
            vec![
                Seen::Granted(1, None),
                Seen::Paused(None),
                Seen::Granted(3, Some(Held::Response)),
                Seen::Paused(None),
                // Confirmed: 5 left, 2 still in flight.
                Seen::Granted(3, Some(Held::Until(2010))),
            ],
        ),
    ]
}

fn fleet_config(url: String, prefix: &str) -> StoreConfig {
    StoreConfig {
        nodes: vec![url.clone()],
        redis_url: url,
        cluster: false,
        key_prefix: prefix.to_owned(),
        timeout: Duration::from_secs(2),
        reservation_ttl: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn local_and_redis_stores_answer_every_case_alike() {
    let redis = RedisServer::start().await;
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let fleet = Fleet::new(fleet_config(redis.url(), "table"), metrics);
    fleet.start().await;
    assert!(!fleet.is_degraded(), "connected to redis-server");
    // Far from now: the local store's clock is tokio's, Redis's is pinned to the same start.
    let start = Instant::now() + Duration::from_secs(3600);
    for (i, (name, steps, want)) in cases().into_iter().enumerate() {
        let local = LocalStore::new(QuotaState::new(CONFIG, None, 16));
        let remote = RedisQuota::new(Arc::clone(&fleet), &format!("case{i}"), CONFIG, None)
            .pinned(start, 1_800_000_000_000);
        let from_local = run(&local, start, &steps).await;
        let from_redis = run(remote.as_ref(), start, &steps).await;
        assert_eq!(from_local, want, "in-process store: {name}");
        assert_eq!(from_redis, want, "Redis store: {name}");
    }
}

#[tokio::test]
async fn a_static_limit_is_one_gcra_for_every_replica() {
    let redis = RedisServer::start().await;
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let start = Instant::now();
    let limit = headroom::config::LimitConfig {
        requests: 4,
        per: Duration::from_secs(1),
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let fleet = Fleet::new(fleet_config(redis.url(), "gcra"), Arc::clone(&metrics));
        fleet.start().await;
        replicas.push(
            RedisQuota::new(fleet, "limited", CONFIG, Some(limit)).pinned(start, 1_900_000_000_000),
        );
    }
    // A burst of 4 for both replicas together (fresh partitions: 2 probes each), then one
    // every 250 ms.
    let a = replicas[0].reserve(&key(1), 2, start).await.expect("a");
    let b = replicas[1].reserve(&key(2), 2, start).await.expect("b");
    assert_eq!((a.tickets.len(), b.tickets.len()), (2, 2));
    let c = replicas[0].reserve(&key(3), 1, start).await.expect("c");
    assert!(c.tickets.is_empty(), "the burst of 4 is spent fleet-wide");
    assert_eq!(
        c.wait,
        Some(Wait::Until(start + Duration::from_millis(250))),
        "then the shared emission interval"
    );
    let later = start + Duration::from_millis(250);
    let d = replicas[1].reserve(&key(3), 2, later).await.expect("d");
    assert_eq!(d.tickets.len(), 1, "one cell per interval");
}

#[tokio::test]
async fn a_settlement_sent_twice_counts_once() {
    let redis = RedisServer::start().await;
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let fleet = Fleet::new(fleet_config(redis.url(), "twice"), metrics);
    fleet.start().await;
    let start = Instant::now();
    let remote = RedisQuota::new(fleet, "twice", CONFIG, None).pinned(start, 1_700_000_000_000);
    let at = |ms: u64| start + Duration::from_millis(ms);
    let first = remote.reserve(&key(0), 1, at(0)).await.expect("reserve");
    let answer = Settlement {
        key: key(0),
        target: key(0),
        route: Arc::from("items"),
        ticket: first.tickets[0].clone(),
        sent_at: at(0),
        outcome: Settled::Answered {
            received_at: at(10),
            status: StatusCode::OK,
            observation: github(10, 5, 5000).map(|o| observation(o, 200)),
        },
    };
    remote.settle(&[answer], at(10)).await.expect("settle");
    let spent = remote.reserve(&key(0), 1, at(20)).await.expect("reserve");
    let spend = Settlement {
        key: key(0),
        target: key(0),
        route: Arc::from(""),
        ticket: spent.tickets[0].clone(),
        sent_at: at(20),
        outcome: Settled::Spent,
    };
    // The reply to the first was lost (say): the flusher sends the batch again.
    remote
        .settle(std::slice::from_ref(&spend), at(30))
        .await
        .expect("settle");
    remote.settle(&[spend], at(40)).await.expect("settle again");
    let view = remote.view(&key(0), at(50)).await.expect("view");
    assert_eq!(view.remaining, Some(4), "the spend counted once, not twice");
    assert_eq!(view.in_flight, 0);
}
