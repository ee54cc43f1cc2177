//! Replicas sharing one quota through a real `redis-server` (and a real 3-node Redis Cluster):
//! 32 clients spread over two or three in-process gateways in front of one simulated supplier
//! account; a 429 seen by one replica holds the others; Redis stopped mid-run; a replica
//! killed with SIGKILL while holding reservations; operator trips travel.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use headroom::config::{Config, StoreConfig, UpstreamConfig};
use headroom::sim::{Convention, SimHandle};
use support::redis::{RedisCluster, RedisServer};
use support::{client, free_port, server_config, simulator, upstream_config, Gateway};

const LIMIT: u32 = 20;
const REQUESTS: usize = 160;
const CLIENTS: usize = 32;
const TOKEN: &str = "fleet-token";

fn store(url: String, prefix: &str) -> StoreConfig {
    let nodes: Vec<String> = url.split(',').map(str::to_owned).collect();
    StoreConfig {
        cluster: nodes.len() > 1,
        nodes,
        redis_url: url,
        key_prefix: prefix.to_owned(),
        timeout: Duration::from_millis(200),
        reservation_ttl: Duration::from_secs(60),
    }
}

fn supplier_config(url: &str) -> UpstreamConfig {
    let mut upstream = upstream_config("supplier", "/supplier", url);
    upstream.queue.max_wait = Duration::from_secs(60);
    upstream.max_concurrency = 16;
    upstream
}

async fn replicas(n: usize, upstream: &UpstreamConfig, store: Option<StoreConfig>) -> Vec<Gateway> {
    let mut gateways = Vec::new();
    for _ in 0..n {
        let config = Config {
            server: server_config(),
            upstreams: vec![upstream.clone()],
            store: store.clone(),
        };
        gateways.push(Gateway::start_config(config, Some(TOKEN.to_owned())).await);
    }
    gateways
}

/// `REQUESTS` GETs from `CLIENTS` concurrent clients, client `c` on replica `c % n`.
/// Returns every status (0: no response).
async fn load(gateways: &[Gateway]) -> Vec<u16> {
    let urls: Vec<String> = gateways.iter().map(|g| g.url("/supplier/items")).collect();
    support::load_spread(&urls, CLIENTS, REQUESTS).await
}

/// Share of the supplier's quota used over the windows fully inside the run.
fn quota_use(supplier: &SimHandle) -> f64 {
    let windows = supplier.stats().windows;
    let inner = &windows[1..windows.len().saturating_sub(1).max(1)];
    let admitted: u64 = inner.iter().map(|w| w.admitted).sum();
    admitted as f64 / (f64::from(LIMIT) * inner.len().max(1) as f64)
}

async fn shared_quota_holds(convention: Convention, n: usize, url: String, max_429: u64) {
    let supplier = simulator(convention, LIMIT, 0.0).await;
    let upstream = supplier_config(&supplier.url());
    let gateways = replicas(
        n,
        &upstream,
        Some(store(url, &format!("{convention:?}{n}"))),
    )
    .await;
    for gateway in &gateways {
        let mode = admin_upstream(gateway).await["store"].clone();
        assert_eq!(mode, "redis", "the replica joined the fleet");
    }
    let statuses = load(&gateways).await;
    let stats = supplier.stats();
    let used = quota_use(&supplier);
    eprintln!(
        "{convention:?} x{n}: 429s {} of {} upstream requests, quota use {used:.2}",
        stats.rate_limited, stats.requests
    );
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every client got 200: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert_eq!(statuses.len(), REQUESTS);
    assert!(
        stats.rate_limited <= max_429,
        "{convention:?} with {n} replicas drew {} upstream 429s (at most {max_429})",
        stats.rate_limited
    );
    assert!(
        used >= 0.9,
        "{convention:?} x{n}: quota use {used:.2} < 0.9"
    );
}

async fn admin_upstream(gateway: &Gateway) -> serde_json::Value {
    let body: serde_json::Value = client()
        .get(format!("http://{}/admin/upstreams", gateway.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin answers")
        .json()
        .await
        .expect("json");
    body[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_github_quota() {
    let redis = RedisServer::start().await;
    shared_quota_holds(Convention::Github, 2, redis.url(), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_a_github_quota() {
    let redis = RedisServer::start().await;
    shared_quota_holds(Convention::Github, 3, redis.url(), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_an_ietf_quota() {
    let redis = RedisServer::start().await;
    shared_quota_holds(Convention::Ietf, 2, redis.url(), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_an_ietf_quota() {
    let redis = RedisServer::start().await;
    shared_quota_holds(Convention::Ietf, 3, redis.url(), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_what_a_429_only_supplier_taught() {
    let redis = RedisServer::start().await;
    // One 429 per window at most, plus 2 while the limit is first inferred.
    let windows = (REQUESTS as u64).div_ceil(u64::from(LIMIT)) + 1;
    shared_quota_holds(Convention::RetryAfter, 2, redis.url(), windows + 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_what_a_429_only_supplier_taught() {
    let redis = RedisServer::start().await;
    let windows = (REQUESTS as u64).div_ceil(u64::from(LIMIT)) + 1;
    shared_quota_holds(Convention::RetryAfter, 3, redis.url(), windows + 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_quota_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    shared_quota_holds(Convention::Github, 2, cluster.url(), 2).await;
}

/// What the scripted supplier does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    /// The first request gets `429 Retry-After: 2`; the rest 200 without quota headers.
    FirstIsLimited,
    /// GitHub headers (limit 4, a reset a minute away); the first request is answered, later
    /// ones are held until `open` is set.
    HoldAfterFirst,
}

struct Scripted {
    script: Script,
    arrivals: std::sync::Mutex<Vec<tokio::time::Instant>>,
    open: std::sync::atomic::AtomicBool,
    opened: tokio::sync::Notify,
    reset_epoch: u64,
}

async fn scripted(script: Script) -> (String, Arc<Scripted>) {
    use axum::response::IntoResponse;
    let reset_epoch = headroom::quota::clock::wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 60;
    let state = Arc::new(Scripted {
        script,
        arrivals: std::sync::Mutex::new(Vec::new()),
        open: std::sync::atomic::AtomicBool::new(false),
        opened: tokio::sync::Notify::new(),
        reset_epoch,
    });
    let shared = Arc::clone(&state);
    let app = axum::Router::new().fallback(move || {
        let state = Arc::clone(&shared);
        async move {
            let n = {
                let mut arrivals = state.arrivals.lock().expect("lock");
                arrivals.push(tokio::time::Instant::now());
                arrivals.len()
            };
            match state.script {
                Script::FirstIsLimited if n == 1 => {
                    (http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")]).into_response()
                }
                Script::FirstIsLimited => http::StatusCode::OK.into_response(),
                Script::HoldAfterFirst => {
                    if n > 1 {
                        while !state.open.load(Ordering::SeqCst) {
                            state.opened.notified().await;
                        }
                    }
                    let remaining = 4u64.saturating_sub(n as u64).to_string();
                    (
                        http::StatusCode::OK,
                        [
                            ("x-ratelimit-limit", "4".to_owned()),
                            ("x-ratelimit-remaining", remaining),
                            ("x-ratelimit-reset", state.reset_epoch.to_string()),
                            ("x-ratelimit-resource", "core".to_owned()),
                        ],
                    )
                        .into_response()
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

impl Scripted {
    fn arrivals(&self) -> Vec<tokio::time::Instant> {
        self.arrivals.lock().expect("lock").clone()
    }

    async fn wait_for(&self, n: usize) {
        for _ in 0..1000 {
            if self.arrivals().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the supplier never saw {n} requests");
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

/// Waits (bounded: 5 s) until Redis holds `field` in `upstream`'s own tracker.
async fn wait_for_field(redis: &RedisServer, prefix: &str, upstream: &str, field: &str) {
    let mut conn = redis.connection().await;
    let key = format!("{{{prefix}:{upstream}}}:q:-:-");
    for _ in 0..500 {
        let value: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg(field)
            .query_async(&mut conn)
            .await
            .expect("HGET");
        if value.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("Redis never recorded {field} for {upstream}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_seen_by_one_replica_holds_every_replica() {
    let redis = RedisServer::start().await;
    let (url, supplier) = scripted(Script::FirstIsLimited).await;
    let upstream = supplier_config(&url);
    let gateways = replicas(2, &upstream, Some(store(redis.url(), "pause"))).await;
    let http = client();
    // Replica A's request draws the 429 (and is retried by A after the pause).
    let first = tokio::spawn(http.get(gateways[0].url("/supplier/a")).send());
    supplier.wait_for(1).await;
    wait_for_field(&redis, "pause", "supplier", "pause").await;
    // Replica B's requests must not reach the supplier before the announced instant.
    let mut from_b = Vec::new();
    for i in 0..3 {
        from_b.push(tokio::spawn(
            http.get(gateways[1].url(&format!("/supplier/b{i}"))).send(),
        ));
    }
    for request in from_b {
        let response = request.await.expect("join").expect("B answered");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        first.await.expect("join").expect("A answered").status(),
        200
    );
    let arrivals = supplier.arrivals();
    assert_eq!(arrivals.len(), 5, "one 429, its retry, three from B");
    // Retry-After is whole seconds from the 429's answer, which left right after its arrival.
    let pause_end = arrivals[0] + Duration::from_millis(1990);
    for later in &arrivals[1..] {
        assert!(
            *later >= pause_end,
            "a request reached the supplier {:?} after the 429, inside the 2 s pause",
            *later - arrivals[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_loses_nothing_and_the_replicas_rejoin() {
    let mut redis = RedisServer::start().await;
    let supplier = simulator(Convention::Github, LIMIT, 0.0).await;
    let upstream = supplier_config(&supplier.url());
    let gateways = Arc::new(replicas(2, &upstream, Some(store(redis.url(), "outage"))).await);
    let run = {
        let gateways = Arc::clone(&gateways);
        tokio::spawn(async move { load(&gateways).await })
    };
    // A quarter of the way in, Redis dies (SIGKILL, nothing saved) for two seconds.
    while supplier.stats().requests < (REQUESTS / 4) as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for gateway in gateways.iter() {
        assert_eq!(admin_upstream(gateway).await["store"], "degraded");
    }
    redis.restart().await;
    let statuses = run.await.expect("load");
    let stats = supplier.stats();
    eprintln!(
        "Redis outage: 429s {} of {} upstream requests, client statuses {:?}, windows {:?}",
        stats.rate_limited,
        stats.requests,
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>(),
        stats
            .windows
            .iter()
            .map(|w| (w.admitted, w.rejected))
            .collect::<Vec<_>>()
    );
    assert_eq!(statuses.len(), REQUESTS);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "no client saw a failure caused by the outage"
    );
    // Pacing alone on half the last known quota, then relearning an empty Redis: bounded.
    assert!(
        stats.rate_limited <= 2,
        "{} upstream 429s",
        stats.rate_limited
    );
    for gateway in gateways.iter() {
        let mut mode = serde_json::Value::Null;
        for _ in 0..100 {
            mode = admin_upstream(gateway).await["store"].clone();
            if mode == "redis" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(mode, "redis", "the replica rejoined the fleet");
        let metrics = support::metrics_text(gateway.admin).await;
        assert!(
            metrics.contains("headroom_store_fallbacks_total 1"),
            "{metrics}"
        );
        assert!(metrics.contains("headroom_store_degraded{upstream=\"supplier\"} 0"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_holding_reservations_gives_them_back_within_the_ttl() {
    use std::io::Write;
    let redis = RedisServer::start().await;
    let (url, supplier) = scripted(Script::HoldAfterFirst).await;
    let ttl = Duration::from_secs(2);
    let port = free_port();
    let admin = free_port();
    let mut config = tempfile::NamedTempFile::new().expect("temp config");
    write!(
        config,
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\n\
         [[upstream]]\nname = \"supplier\"\nprefix = \"/supplier\"\nurl = \"{url}\"\n\n\
         [store]\nredis_url = \"{}\"\nkey_prefix = \"kill\"\nreservation_ttl = \"2s\"\n",
        redis.url()
    )
    .expect("write config");
    let mut doomed = tokio::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .arg("--config")
        .arg(config.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn headroom");
    let base = format!("http://127.0.0.1:{port}/supplier");
    let http = client();
    let mut first = None;
    for _ in 0..500 {
        if let Ok(response) = http.get(format!("{base}/first")).send().await {
            first = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        first,
        Some(http::StatusCode::OK),
        "the doomed replica serves"
    );
    // Three more go (4 - 1 left) and hang at the supplier: three reservations held.
    for i in 0..3 {
        let url = format!("{base}/held{i}");
        let http = http.clone();
        tokio::spawn(async move { http.get(url).send().await });
    }
    supplier.wait_for(4).await;
    let held_at = supplier.arrivals()[3];
    doomed.start_kill().expect("SIGKILL");
    doomed.wait().await.expect("reaped");
    supplier.open();
    // The survivor sees 3 left and 3 in flight: it may only go once those expire.
    let upstream = supplier_config(&url);
    let survivor = replicas(1, &upstream, Some(store(redis.url(), "kill"))).await;
    let response = http
        .get(survivor[0].url("/supplier/after"))
        .send()
        .await
        .expect("survivor answers");
    assert_eq!(response.status(), 200);
    let arrivals = supplier.arrivals();
    assert_eq!(arrivals.len(), 5);
    let waited = arrivals[4] - held_at;
    assert!(
        waited >= ttl - Duration::from_millis(100),
        "the dead replica's reservations were honoured until they expired ({waited:?})"
    );
    assert!(
        waited <= ttl + Duration::from_millis(1500),
        "the quota came back within the TTL ({waited:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_trip_on_one_replica_opens_every_breaker() {
    let redis = RedisServer::start().await;
    let supplier = simulator(Convention::Github, 0, 0.0).await;
    let upstream = supplier_config(&supplier.url());
    let gateways = replicas(2, &upstream, Some(store(redis.url(), "trip"))).await;
    let operate = |gateway: &Gateway, verb: &str| {
        client()
            .post(format!(
                "http://{}/admin/upstreams/supplier/breaker/{verb}",
                gateway.admin
            ))
            .bearer_auth(TOKEN)
            .send()
    };
    let tripped: serde_json::Value = operate(&gateways[0], "trip")
        .await
        .expect("trip")
        .json()
        .await
        .expect("json");
    assert_eq!(tripped["breaker"]["fleet"], "published");
    assert_eq!(
        breaker_of(&gateways[1], "forced_open").await,
        "forced_open",
        "replica B opened too"
    );
    let refused = client()
        .get(gateways[1].url("/supplier/x"))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 503);
    // A replica that starts after the trip finds it.
    let late = replicas(1, &upstream, Some(store(redis.url(), "trip"))).await;
    assert_eq!(breaker_of(&late[0], "forced_open").await, "forced_open");
    operate(&gateways[1], "reset").await.expect("reset");
    assert_eq!(breaker_of(&gateways[0], "closed").await, "closed");
    assert_eq!(breaker_of(&late[0], "closed").await, "closed");
}

/// Polls (bounded: 3 s) `gateway`'s breaker until it reads `want`; returns the last state.
async fn breaker_of(gateway: &Gateway, want: &str) -> String {
    let mut state = String::new();
    for _ in 0..300 {
        state = admin_upstream(gateway).await["breaker"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    state
}

/// What a replica does while Redis is away, without Redis at all: two replicas each told
/// that two share the quota stay inside it (without the share they would send twice it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_pacing_alone_on_their_share_stay_inside_the_quota() {
    let supplier = simulator(Convention::Github, LIMIT, 0.0).await;
    let upstream = supplier_config(&supplier.url());
    let gateways = replicas(2, &upstream, None).await;
    for gateway in &gateways {
        let upstream = gateway
            .state
            .router()
            .by_name("supplier")
            .expect("upstream");
        upstream.scheduler().set_share(2);
    }
    let statuses = load(&gateways).await;
    assert!(statuses.iter().all(|s| *s == 200));
    let stats = supplier.stats();
    assert_eq!(stats.rate_limited, 0, "windows: {:?}", stats.windows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_while_redis_is_down_serves_and_joins_later() {
    let mut redis = RedisServer::start().await;
    redis.stop();
    let supplier = simulator(Convention::Github, LIMIT, 0.0).await;
    let upstream = supplier_config(&supplier.url());
    let gateways = replicas(1, &upstream, Some(store(redis.url(), "late"))).await;
    let response = client()
        .get(gateways[0].url("/supplier/items"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200, "traffic flows without Redis");
    assert_eq!(admin_upstream(&gateways[0]).await["store"], "degraded");
    redis.restart().await;
    let mut mode = serde_json::Value::Null;
    for _ in 0..100 {
        mode = admin_upstream(&gateways[0]).await["store"].clone();
        if mode == "redis" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mode, "redis", "joined once Redis answered");
    let response = client()
        .get(gateways[0].url("/supplier/items"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    // The settle is flushed off the request path: wait for it (bounded), then read it.
    wait_for_field(&redis, "late", "supplier", "lim").await;
    let mut conn = redis.connection().await;
    let learned: Option<String> = redis::cmd("HGET")
        .arg("{late:supplier}:q:-:-")
        .arg("lim")
        .query_async(&mut conn)
        .await
        .expect("HGET");
    assert_eq!(
        learned.as_deref(),
        Some("20"),
        "the shared tracker learned the limit"
    );
}
