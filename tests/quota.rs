//! The quota engine end to end: pollers through Headroom in front of `headroom simulate`
//! with each header convention. Real sockets, real time (each run is bounded: 160 requests
//! at 20 per 2 s take about 16 s).

mod support;

use std::time::Duration;

use headroom::sim::Convention;
use support::{client, simulator, upstream_config, Gateway};
use tokio::time::Instant;

const CLIENTS: usize = 32;
const REQUESTS: usize = 160;
const LIMIT: u32 = 20;
const WINDOW: Duration = Duration::from_secs(2);

/// 32 pollers share 160 GETs; returns the statuses they saw and how long it took.
async fn burst(url: String) -> (Vec<u16>, Duration) {
    let started = Instant::now();
    let statuses = support::load_spread(&[url], CLIENTS, REQUESTS).await;
    (statuses, started.elapsed())
}

async fn convention_run(convention: Convention) {
    headroom::logging::init();
    let supplier = simulator(convention, LIMIT, 0.0).await;
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &supplier.url())]).await;
    let (statuses, elapsed) = burst(gateway.url("/s/records")).await;
    let stats = supplier.stats();
    let not_ok: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    // Quota use: the ideal time for 160 requests at 20 per 2 s, against the time it took.
    let ideal = WINDOW.as_secs_f64() * (REQUESTS as f64 / f64::from(LIMIT) - 1.0);
    eprintln!(
        "{convention:?}: {} requests, non-200 {}, upstream 429s {}, {:.1}s (ideal {:.1}s), windows {:?}",
        statuses.len(),
        not_ok.len(),
        stats.rate_limited,
        elapsed.as_secs_f64(),
        ideal,
        stats.windows.iter().map(|w| (w.admitted, w.rejected)).collect::<Vec<_>>()
    );
    assert_eq!(statuses.len(), REQUESTS);
    assert!(not_ok.is_empty(), "every poller gets 200, got {not_ok:?}");
    assert_eq!(stats.ok, REQUESTS as u64);
    match convention {
        Convention::RetryAfter | Convention::RetryAfterDate => {
            // These suppliers only speak on 429: at most one per window.
            for w in &stats.windows {
                assert!(
                    w.rejected <= 1,
                    "{convention:?}: window {w:?} saw more than one 429"
                );
            }
        }
        _ => assert!(
            stats.rate_limited <= 2,
            "{convention:?}: {} upstream 429s",
            stats.rate_limited
        ),
    }
    for w in &stats.windows {
        assert!(w.admitted <= u64::from(LIMIT));
    }
}

macro_rules! conventions {
    ($($name:ident => $convention:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            convention_run($convention).await;
        }
    )*};
}

conventions! {
    paces_github => Convention::Github,
    paces_delta => Convention::Delta,
    paces_ietf => Convention::Ietf,
    paces_ietf_07 => Convention::Ietf07,
    paces_discord => Convention::Discord,
    paces_retry_after => Convention::RetryAfter,
    paces_retry_after_date => Convention::RetryAfterDate,
}

#[tokio::test]
async fn post_without_idempotency_key_is_never_retried() {
    let supplier = simulator(Convention::Github, 0, 1.0).await;
    let mut config = upstream_config("s", "/s", &supplier.url());
    config.breaker.failure_threshold = 100;
    let gateway = Gateway::start(vec![config]).await;
    let http = client();

    let response = http
        .post(gateway.url("/s/records"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert!(response.status().is_server_error());
    assert_eq!(response.headers()["headroom-attempts"], "1");
    assert_eq!(
        supplier.stats().requests,
        1,
        "a POST without Idempotency-Key went out once"
    );

    supplier.reset_stats();
    let response = http
        .post(gateway.url("/s/records"))
        .header("idempotency-key", "lot-42")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert!(response.status().is_server_error());
    assert_eq!(response.headers()["headroom-attempts"], "5");
    assert_eq!(
        supplier.stats().requests,
        5,
        "with a key it is retried up to max_attempts"
    );
}

#[tokio::test]
async fn get_is_retried_through_5xx_and_other_4xx_pass_straight_through() {
    let supplier = simulator(Convention::Github, 0, 0.5).await;
    let mut config = upstream_config("s", "/s", &supplier.url());
    config.breaker.failure_threshold = 100;
    let gateway = Gateway::start(vec![config]).await;
    let http = client();
    let mut attempts = 0;
    for i in 0..20 {
        let response = http
            .get(gateway.url(&format!("/s/records?i={i}")))
            .send()
            .await
            .expect("send");
        attempts += response.headers()["headroom-attempts"]
            .to_str()
            .expect("ascii")
            .parse::<u32>()
            .expect("number");
        // With 5 attempts at a 50% failure rate nearly every GET succeeds (seeded dice).
        assert!(response.status() == 200 || response.status().is_server_error());
    }
    let stats = supplier.stats();
    assert_eq!(
        u64::from(attempts),
        stats.requests,
        "Headroom-Attempts counts what reached the supplier"
    );
    assert!(
        stats.server_errors > 0 && attempts > 20,
        "some GETs were retried"
    );
}

#[tokio::test]
async fn other_4xx_pass_straight_through() {
    let up = support::Upstream::start().await;
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &up.url())]).await;
    for code in [400u16, 401, 403, 404, 409, 422] {
        let url = gateway.url(&format!("/s/status/{code}"));
        let response = client().get(url).send().await.expect("send");
        assert_eq!(response.status().as_u16(), code);
        assert_eq!(response.headers()["headroom-attempts"], "1", "{code}");
    }
    assert_eq!(up.seen().len(), 6, "one attempt each");
}

#[tokio::test]
async fn when_every_attempt_gets_429_the_last_one_goes_to_the_client() {
    let up = support::Upstream::start().await;
    let mut config = upstream_config("s", "/s", &up.url());
    config.retry.max_attempts = 3;
    config.retry.base_delay = Duration::from_millis(1);
    config.retry.max_delay = Duration::from_millis(5);
    let gateway = Gateway::start(vec![config]).await;
    let response = client()
        .get(gateway.url("/s/status/429"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["headroom-attempts"], "3");
    assert_eq!(
        response.text().await.expect("body"),
        "{\"status\":429}",
        "the upstream's body, unchanged"
    );
    assert_eq!(up.seen().len(), 3);
}

#[tokio::test]
async fn priority_order_holds_and_a_client_that_leaves_frees_its_place() {
    let up = support::Upstream::start().await;
    let mut config = upstream_config("s", "/s", &up.url());
    config.max_concurrency = 1;
    config.queue.max_depth = 4;
    let gateway = Gateway::start(vec![config]).await;
    let http = client();

    // One request holds the only slot.
    let holder = tokio::spawn(http.get(gateway.url("/s/hold")).send());
    up.wait_for(1).await;

    // A poller that gives up while queued frees its place at once.
    let leaver = tokio::spawn(http.get(gateway.url("/s/leaver")).send());
    gateway.wait_for_queue("s", 1).await;
    leaver.abort();
    gateway.wait_for_queue("s", 0).await;

    let mut queued = Vec::new();
    for (path, priority) in [
        ("/s/low", "low"),
        ("/s/normal", "normal"),
        ("/s/high", "high"),
        ("/s/high2", "HIGH"),
    ] {
        let request = http
            .get(gateway.url(path))
            .header("headroom-priority", priority)
            .send();
        queued.push(tokio::spawn(request));
        gateway.wait_for_queue("s", queued.len()).await;
    }
    // The queue is full (max_depth 4): the next one is shed with a reason and Retry-After.
    let shed = http.get(gateway.url("/s/shed")).send().await.expect("send");
    assert_eq!(shed.status(), 503);
    assert!(shed.headers().contains_key("retry-after"));
    assert_eq!(support::error_body(shed).await["error"], "queue_full");

    up.release();
    assert_eq!(holder.await.expect("join").expect("send").status(), 200);
    for request in queued {
        let response = request.await.expect("join").expect("send");
        assert_eq!(response.status(), 200);
    }
    let order: Vec<String> = up.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(
        order,
        ["/hold", "/high", "/high2", "/normal", "/low"],
        "the leaver never reached the upstream"
    );
    assert!(
        up.seen()
            .iter()
            .all(|s| !s.headers.contains_key("headroom-priority")),
        "Headroom-Priority is not forwarded"
    );
}
