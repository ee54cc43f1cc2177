//! Replicas sharing one quota through a real `redis-server` (and a real 3-node Redis Cluster):
//! 32 clients spread over two or three in-process gateways in front of one simulated supplier
//! account; a 429 seen by one replica holds the others; Redis stopped mid-run; a replica
//! killed with SIGKILL while holding reservations; operator trips travel.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use headroom::config::{Config, StoreConfig, UpstreamConfig};
use headroom::sim::{Convention, SimHandle};
use support::redis::{RedisCluster, RedisServer};
use support::{client, server_config, simulator, upstream_config, Gateway};

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
    let next = Arc::new(AtomicUsize::new(0));
    let http = client();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let url = gateways[c % gateways.len()].url("/supplier/items");
        let next = Arc::clone(&next);
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while next.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                let status = http
                    .get(&url)
                    .timeout(Duration::from_secs(90))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                statuses.push(status);
            }
            statuses
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    all
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
    let gateways = replicas(n, &upstream, Some(store(url, &format!("{convention:?}{n}")))).await;
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
    assert!(used >= 0.9, "{convention:?} x{n}: quota use {used:.2} < 0.9");
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
