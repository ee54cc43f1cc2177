//! The quota promise in foul weather: impatient clients, a probe whose client hangs up,
//! hostile headers, a supplier that tightens its quota, client faults that are not the
//! supplier's, per-resource quotas, queued bodies, pagination links. Real sockets on
//! 127.0.0.1, real time, each run bounded (a few seconds).

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use headroom::sim::{Convention, SimArgs};
use support::{assert_error, client, upstream_config, Gateway, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

async fn sim(
    convention: Convention,
    limit: u32,
    window: Duration,
    latency: Duration,
) -> headroom::sim::SimHandle {
    headroom::sim::start(SimArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        limit,
        window,
        convention,
        latency,
        seed: Some(7),
        ..SimArgs::default()
    })
    .await
    .expect("simulator starts")
}

/// A supplier written for these tests, on 127.0.0.1:0:
/// - `/shopify`: 200 with a bucket level no bucket can hold;
/// - `/busy`: 503 with `Retry-After: 1` (a rate-limit answer, not a failure);
/// - `/search/*` and `/repos/*`: GitHub's `search` (2 per minute) and `core` resources;
/// - `/page`: 200 with `Link` and `Location` to its own URL and to another host;
/// - `/stall`: 200, one chunk of body, then nothing ever again;
/// - `/big`: 200 with 64 MiB of body;
/// - anything else: reads the body and answers 200 with its length.
async fn supplier() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}");
    let search_used = Arc::new(AtomicU64::new(0));
    let own = url.clone();
    let used = search_used.clone();
    let app = axum::Router::new()
        .route(
            "/shopify",
            axum::routing::get(|| async {
                (
                    [(
                        "x-shopify-shop-api-call-limit",
                        "18446744073709551615/40",
                    )],
                    "ok",
                )
            }),
        )
        .route(
            "/busy",
            axum::routing::get(|| async {
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "busy")
            }),
        )
        .route(
            "/search/{*rest}",
            axum::routing::get(move || {
                let used = used.clone();
                async move {
                    let n = used.fetch_add(1, Ordering::SeqCst) + 1;
                    let remaining = 2u64.saturating_sub(n);
                    let reset = epoch() + 60;
                    let status = if n > 2 {
                        StatusCode::FORBIDDEN
                    } else {
                        StatusCode::OK
                    };
                    (status, github_headers("search", 2, remaining, reset), "search")
                }
            }),
        )
        .route(
            "/repos/{*rest}",
            axum::routing::get(|| async {
                (
                    github_headers("core", 5000, 4990, epoch() + 3600),
                    "core",
                )
            }),
        )
        .route(
            "/page",
            axum::routing::get(move || {
                let own = own.clone();
                async move {
                    let link = format!(
                        "<{own}/page?cursor=2>; rel=\"next\", <https://elsewhere.example/page?cursor=9>; rel=\"other\""
                    );
                    (
                        StatusCode::FOUND,
                        [
                            ("link", link),
                            ("location", format!("{own}/page?cursor=2")),
                        ],
                        "page",
                    )
                }
            }),
        )
        .route(
            "/stall",
            axum::routing::get(|| async {
                let first = futures_util::stream::iter([Ok::<_, std::io::Error>(
                    axum::body::Bytes::from_static(b"first chunk"),
                )]);
                let stream = futures_util::StreamExt::chain(first, futures_util::stream::pending());
                axum::body::Body::from_stream(stream)
            }),
        )
        .route(
            "/big",
            axum::routing::get(|| async {
                let chunks = (0..1024).map(|_| {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 64 * 1024]))
                });
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .fallback(|body: axum::body::Bytes| async move { format!("{}", body.len()) });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, search_used)
}

fn epoch() -> u64 {
    headroom::quota::clock::wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn github_headers(resource: &str, limit: u64, remaining: u64, reset: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        h.insert(name, value.parse().expect("header value"));
    };
    put("x-ratelimit-limit", limit.to_string());
    put("x-ratelimit-remaining", remaining.to_string());
    put("x-ratelimit-reset", reset.to_string());
    put("x-ratelimit-resource", resource.to_owned());
    h
}

/// 64 clients that give up after 0.4 s, 8 at a time, in front of a supplier that takes
/// 1.5 s to answer and allows 5 per 4 s: a request written to the supplier stays spent when
/// its client leaves (and its answer still teaches the quota), so the supplier never has to
/// say 429. Before the fix: 56 upstream 429s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impatient_clients_do_not_overrun_the_quota() {
    headroom::logging::init();
    let supplier = sim(Convention::Github, 5, 4 * S, 1500 * MS).await;
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &supplier.url())]).await;
    // Headroom learns the quota from one patient request.
    let first = client()
        .get(gateway.url("/s/records"))
        .send()
        .await
        .expect("patient request");
    assert_eq!(first.status(), 200);

    let impatient = reqwest::Client::builder()
        .timeout(400 * MS)
        .no_proxy()
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, next, url) = (impatient.clone(), next.clone(), gateway.url("/s/records"));
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < 64 {
                let _ = http.get(&url).send().await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    // Let the attempts still out (their clients gone) finish, bounded by the latency.
    let upstream = gateway.state.router().by_name("s").expect("upstream");
    let deadline = tokio::time::Instant::now() + 5 * S;
    while upstream.scheduler().in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(50 * MS).await;
    }
    let stats = supplier.stats();
    // Rejections as the quota decided them: a 429 whose connection was dropped during the
    // simulated latency never reaches the response counters.
    let rejected: u64 = stats.windows.iter().map(|w| w.rejected).sum();
    eprintln!(
        "impatient: {} upstream requests, {rejected} 429s, windows {:?}",
        stats.requests,
        stats
            .windows
            .iter()
            .map(|w| (w.admitted, w.rejected))
            .collect::<Vec<_>>()
    );
    assert!(rejected <= 2, "{rejected} upstream 429s");
    assert!(stats.ok >= 5, "the quota was still used: {} ok", stats.ok);
}

/// Quota 20 per 2 s, halved to 10 from the window after the 80th request, 32 clients, 120
/// requests: at most 2 upstream 429s (before the fix: a full wave of 20 on the old limit at
/// the window where the supplier started counting 10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tightened_quota_costs_at_most_two_429s() {
    headroom::logging::init();
    let supplier = Arc::new(sim(Convention::Github, 20, 2 * S, Duration::ZERO).await);
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &supplier.url())]).await;
    let http = client();
    let next = Arc::new(AtomicUsize::new(0));
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (http, next, url, supplier) = (
            http.clone(),
            next.clone(),
            gateway.url("/s/records"),
            supplier.clone(),
        );
        pollers.spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= 120 {
                    return statuses;
                }
                if n == 80 {
                    supplier.set_limit(10);
                }
                let status = http
                    .get(&url)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                statuses.push(status);
            }
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = pollers.join_next().await {
        statuses.extend(s.expect("poller"));
    }
    let stats = supplier.stats();
    eprintln!(
        "tightened: {} 429s, windows {:?}",
        stats.rate_limited,
        stats
            .windows
            .iter()
            .map(|w| (w.admitted, w.rejected))
            .collect::<Vec<_>>()
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let rejected: u64 = stats.windows.iter().map(|w| w.rejected).sum();
    assert!(rejected <= 2, "{rejected} upstream 429s");
}

/// The breaker opens; its half-open probe's client hangs up while the supplier is slow; the
/// supplier recovers: the breaker closes again (before the fix: `breaker_open` until an
/// operator's reset, since the probe's place was never given back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_up_probe_does_not_hold_the_breaker_open() {
    let upstream = Upstream::start().await;
    let mut config = upstream_config("s", "/s", &upstream.url());
    config.breaker.failure_threshold = 2;
    config.breaker.open_for = 200 * MS;
    config.retry.max_attempts = 1;
    config.timeout = 5 * S;
    let gateway = Gateway::start(vec![config]).await;
    let http = client();
    for _ in 0..2 {
        let r = http
            .get(gateway.url("/s/status/500"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 500);
    }
    assert_error(
        http.get(gateway.url("/s/x")).send().await.expect("send"),
        503,
        "breaker_open",
    )
    .await;
    tokio::time::sleep(250 * MS).await; // open_for passes: the next request probes
    let impatient = reqwest::Client::builder()
        .timeout(300 * MS)
        .no_proxy()
        .build()
        .expect("client");
    assert!(
        impatient.get(gateway.url("/s/hold")).send().await.is_err(),
        "gave up"
    );
    // The supplier recovers: the probe's answer arrives although its client left.
    upstream.release();
    let mut last = 0;
    for _ in 0..50 {
        last = http
            .get(gateway.url("/s/x"))
            .send()
            .await
            .expect("send")
            .status()
            .as_u16();
        if last == 200 {
            break;
        }
        tokio::time::sleep(20 * MS).await;
    }
    assert_eq!(
        last, 200,
        "the breaker closed again once the supplier recovered"
    );
}

/// `X-Shopify-Shop-Api-Call-Limit: 18446744073709551615/40` is ignored and counted; the
/// upstream keeps answering (before the fix: a panic, then every request hung).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_bucket_header_does_not_kill_the_upstream() {
    let (url, _) = supplier().await;
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &url)]).await;
    let http = client();
    for _ in 0..5 {
        let r = tokio::time::timeout(5 * S, http.get(gateway.url("/s/shopify")).send())
            .await
            .expect("answered in time")
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    let metrics = gateway.state.metrics().render();
    assert!(
        metrics.contains("headroom_ignored_headers_total{upstream=\"s\"} 5"),
        "{metrics}"
    );
}

/// Client faults and rate-limit answers never open the breaker: an upload over
/// `max_request_body` (413), an aborted upload (400), a slow upload (408), a 503 with
/// `Retry-After`. Threshold 2: two of any would have opened it before the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_faults_and_rate_limits_do_not_open_the_breaker() {
    let (url, _) = supplier().await;
    let mut config = upstream_config("s", "/s", &url);
    config.breaker.failure_threshold = 2;
    config.retry.max_attempts = 1;
    config.timeout = 300 * MS;
    let mut server = support::server_config();
    server.max_request_body = 1000;
    let gateway = Gateway::start_with(server, vec![config]).await;
    let upstream = gateway.state.router().by_name("s").expect("upstream");
    let http = client();
    let closed = || assert_eq!(upstream.breaker_state().as_str(), "closed");

    for _ in 0..2 {
        // Chunked, so the length is only known once it has passed the limit.
        let chunks =
            futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 400])));
        let r = http
            .post(gateway.url("/s/upload"))
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .expect("send");
        assert_error(r, 413, "payload_too_large").await;
        closed();
    }
    for _ in 0..2 {
        // Declares 900 bytes, sends 10, then vanishes.
        let mut stream = tokio::net::TcpStream::connect(gateway.proxy)
            .await
            .expect("connect");
        stream
            .write_all(
                b"POST /s/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n0123456789",
            )
            .await
            .expect("write");
        drop(stream);
    }
    for _ in 0..2 {
        // A trickle: one byte every 100 ms, slower than the 300 ms attempt timeout allows.
        let mut stream = connect_and_send(
            gateway.proxy,
            b"POST /s/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n",
        )
        .await;
        let mut answer = Vec::new();
        let (mut reader, mut writer) = stream.split();
        let trickle = async {
            for _ in 0..50 {
                if writer.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(100 * MS).await;
            }
        };
        tokio::select! {
            () = trickle => {}
            _ = reader.read_to_end(&mut answer) => {}
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    for _ in 0..2 {
        let r = http.get(gateway.url("/s/busy")).send().await.expect("send");
        assert_eq!(r.status(), 503);
    }
    // Give the aborted uploads' attempts time to settle, then the breaker is still closed and
    // a plain request goes through.
    tokio::time::sleep(400 * MS).await;
    closed();
    let r = http
        .post(gateway.url("/s/upload"))
        .body("abc")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "3");
}

/// GitHub's `search` resource runs out (2 per minute): search requests wait or are answered
/// 503, while `core` requests keep flowing (before the fix: one tracker, search's 0 left
/// paused core too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_search_exhaustion_does_not_pause_core() {
    let (url, search_used) = supplier().await;
    let mut config = upstream_config("s", "/s", &url);
    config.queue.max_wait = 2 * S;
    let gateway = Gateway::start(vec![config]).await;
    let http = client();
    let core = http
        .get(gateway.url("/s/repos/a/b"))
        .send()
        .await
        .expect("send");
    assert_eq!(core.status(), 200);
    for _ in 0..2 {
        let r = http
            .get(gateway.url("/s/search/issues?q=x"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    // Search is spent for a minute: the next search request is answered at once.
    let r = http
        .get(gateway.url("/s/search/issues?q=y"))
        .send()
        .await
        .expect("send");
    assert_error(r, 503, "queue_timeout").await;
    assert_eq!(
        search_used.load(Ordering::SeqCst),
        2,
        "no search request overran"
    );
    for _ in 0..5 {
        let r = tokio::time::timeout(S, http.get(gateway.url("/s/repos/a/b")).send())
            .await
            .expect("core is not paused")
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    let snapshot = gateway
        .state
        .router()
        .by_name("s")
        .expect("upstream")
        .scheduler()
        .quota();
    assert_eq!(
        snapshot.limit,
        Some(5000),
        "the upstream shows core, not search"
    );
}

/// Requests queued behind a held one hold no body: 50 uploads of 1 MiB whose clients have
/// sent only their first kilobyte are all queued (before the fix each waited, unqueued, to
/// read its body first: 50 MiB held for one upstream at most `max_concurrency` can use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_hold_no_body() {
    let upstream = Upstream::start().await;
    let mut config = upstream_config("s", "/s", &upstream.url());
    config.max_concurrency = 1;
    let gateway = Gateway::start(vec![config]).await;
    let held = tokio::spawn(client().get(gateway.url("/s/hold")).send());
    upstream.wait_for(1).await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut stream = connect_and_send(
            gateway.proxy,
            b"PUT /s/blob HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
        )
        .await;
        stream.write_all(&[b'x'; 1024]).await.expect("write");
        streams.push(stream);
    }
    tokio::time::timeout(10 * S, gateway.wait_for_queue("s", 50))
        .await
        .expect("all 50 queued without their bodies");
    upstream.release();
    assert_eq!(held.await.expect("join").expect("held").status(), 200);
    drop(streams);
}

/// Pagination links and redirects to the upstream's own URL are rewritten to its prefix on
/// Headroom; links to other hosts are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_to_the_supplier_are_rewritten_to_the_prefix() {
    let (url, _) = supplier().await;
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &url)]).await;
    let r = client()
        .get(gateway.url("/s/page"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/s/page?cursor=2");
    assert_eq!(
        r.headers()["link"],
        "</s/page?cursor=2>; rel=\"next\", <https://elsewhere.example/page?cursor=9>; rel=\"other\""
    );

    let mut config = upstream_config("s", "/s", &url);
    config.rewrite_links = false;
    let plain = Gateway::start(vec![config]).await;
    let r = client()
        .get(plain.url("/s/page"))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.headers()["location"],
        format!("{url}/page?cursor=2").as_str()
    );
}

/// A supplier that stalls mid-body, and a client that stops reading, free their concurrency
/// slot after `server.idle_timeout` (before: held with no timeout at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_and_clients_that_stop_reading_free_their_slot() {
    let (url, _) = supplier().await;
    let mut config = upstream_config("s", "/s", &url);
    config.max_concurrency = 1;
    let mut server = support::server_config();
    server.idle_timeout = 300 * MS;
    let gateway = Gateway::start_with(server, vec![config]).await;
    let upstream = gateway.state.router().by_name("s").expect("upstream");
    let slot_freed = || async {
        for _ in 0..100 {
            if upstream.scheduler().in_flight() == 0 {
                return true;
            }
            tokio::time::sleep(50 * MS).await;
        }
        false
    };

    // The supplier stalls after its first chunk: the client gets a cut body.
    let response = client()
        .get(gateway.url("/s/stall"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body is cut, not hung");
    assert!(slot_freed().await, "the stalled body gave its slot back");

    // A client asks for 64 MiB and never reads: its connection is closed.
    let stream = connect_and_send(gateway.proxy, b"GET /s/big HTTP/1.1\r\nHost: x\r\n\r\n").await;
    upstream_busy(upstream).await;
    assert!(
        slot_freed().await,
        "the client that stopped reading gave its slot back"
    );
    let ok = client()
        .get(gateway.url("/s/other"))
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 200, "the upstream serves again");
    drop(stream);
}

/// Waits (bounded) until `upstream` has a request in flight.
async fn upstream_busy(upstream: &headroom::upstream::Upstream) {
    for _ in 0..100 {
        if upstream.scheduler().in_flight() > 0 {
            return;
        }
        tokio::time::sleep(10 * MS).await;
    }
    panic!("the request never went out");
}

/// A client that sends a POST (not safe to repeat, so its body is never buffered for a
/// retry) and hangs up while the request is queued: the POST never reaches the supplier. Small
/// bodies arrive with the head; larger ones are read while the request waits (within the
/// upstream's spool budget), so hyper sees the hang-up either way. (The issue read from the
/// code that such a request was still sent: true before for bodies hyper had not read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_post_whose_client_left_is_never_sent() {
    for size in [7usize, 4096, 1 << 20] {
        let head = format!("POST /s/orders HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        let posts = posts_sent_after_hang_up(head.into_bytes(), vec![b'x'; size]).await;
        assert_eq!(posts, 0, "{size}-byte POST of a client that left was sent");
    }
}

/// Queues a POST (`head`, then `body` written in the background) behind a held request on
/// an upstream of one slot, hangs up, lets the held request finish and returns how many
/// POSTs the supplier saw.
async fn posts_sent_after_hang_up(head: Vec<u8>, body: Vec<u8>) -> usize {
    let upstream = Upstream::start().await;
    let mut config = upstream_config("s", "/s", &upstream.url());
    config.max_concurrency = 1;
    let gateway = Gateway::start(vec![config]).await;
    let held = tokio::spawn(client().get(gateway.url("/s/hold")).send());
    upstream.wait_for(1).await;
    let mut stream = connect_and_send(gateway.proxy, &head).await;
    let writer = tokio::spawn(async move {
        let _ = stream.write_all(&body).await;
        stream
    });
    gateway.wait_for_queue("s", 1).await;
    // The client hangs up (its body may still sit in the socket buffers).
    drop(tokio::time::timeout(S, writer).await);
    for _ in 0..50 {
        if gateway.queue_depth("s") == 0 {
            break;
        }
        tokio::time::sleep(20 * MS).await;
    }
    upstream.release();
    assert_eq!(held.await.expect("join").expect("held").status(), 200);
    let ok = client()
        .get(gateway.url("/s/after"))
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 200);
    upstream
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .count()
}

/// A client that stops sending its body once its request holds a slot is answered
/// `408 request_timeout` after `server.idle_timeout`, and the slot serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_its_body_is_cut_after_the_idle_timeout() {
    let upstream = Upstream::start().await;
    let mut config = upstream_config("s", "/s", &upstream.url());
    config.max_concurrency = 1;
    let mut server = support::server_config();
    server.idle_timeout = 300 * MS;
    let gateway = Gateway::start_with(server, vec![config]).await;
    let mut stream = connect_and_send(
        gateway.proxy,
        b"PUT /s/blob HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\nxyz",
    )
    .await;
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(5 * S, stream.read(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    let ok = client()
        .get(gateway.url("/s/next"))
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 200);
    assert!(
        upstream.seen().iter().all(|s| s.method != "PUT"),
        "the cut PUT never reached the supplier"
    );
}

/// A raw client connection to `addr` that has sent `bytes`.
async fn connect_and_send(addr: SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream
}

/// The same with a chunked POST (no declared length): its first 64 KiB are spooled while it
/// waits, so a client that sent a chunked body of up to 64 KiB and hung up is seen too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_chunked_post_whose_client_left_is_never_sent() {
    // 60 KiB in 15 chunks of 4 KiB: more than hyper reads with the head.
    let mut request =
        b"POST /s/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..15 {
        request.extend_from_slice(b"1000\r\n");
        request.extend_from_slice(&[b'x'; 4096]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let posts = posts_sent_after_hang_up(request, Vec::new()).await;
    assert_eq!(posts, 0, "the chunked POST of a client that left was sent");
}
