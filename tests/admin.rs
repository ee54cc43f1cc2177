//! The admin listener: auth, the upstream list, trip and reset, the breaker end to end, and
//! metrics that move with traffic.

mod support;

use headroom::sim::Convention;
use serde_json::Value;
use support::{client, simulator, upstream_config, Gateway, Upstream};

const TOKEN: &str = "s3cret-admin-token";

fn admin(gateway: &Gateway, path: &str) -> String {
    format!("http://{}{path}", gateway.admin)
}

/// The Prometheus text of `/metrics`.
async fn metrics_text(gateway: &Gateway) -> String {
    let response = client()
        .get(admin(gateway, "/metrics"))
        .send()
        .await
        .expect("send");
    response.text().await.expect("text")
}

/// An authorised admin call; its JSON answer.
async fn call(gateway: &Gateway, post: bool, path: &str) -> Value {
    let http = client();
    let request = if post {
        http.post(admin(gateway, path))
    } else {
        http.get(admin(gateway, path))
    };
    let response = request.bearer_auth(TOKEN).send().await.expect("send");
    response.json().await.expect("json")
}

#[tokio::test]
async fn admin_auth_rules() {
    let up = Upstream::start().await;
    let open = Gateway::start(vec![upstream_config("a", "/a", &up.url())]).await;
    let http = client();

    // No token configured: 403 that says how to set one.
    let response = http
        .get(admin(&open, "/admin/upstreams"))
        .bearer_auth("x")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("HEADROOM_ADMIN_TOKEN")),
        "{body}"
    );

    let gateway =
        Gateway::start_with_token(vec![upstream_config("a", "/a", &up.url())], TOKEN).await;
    for (token, want) in [
        (None, 401),
        (Some("wrong"), 401),
        (Some("s3cret-admin-tokenX"), 401),
        (Some(TOKEN), 200),
    ] {
        let mut request = http.get(admin(&gateway, "/admin/upstreams"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), want, "token {token:?}");
    }
    let response = http
        .post(admin(&gateway, "/admin/upstreams/nope/breaker/trip"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 404);
    let response = http
        .post(admin(&gateway, "/admin/upstreams/a/breaker/trip"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401, "trip needs the token too");

    // Health, metrics and the status page need none.
    for path in ["/healthz", "/metrics", "/"] {
        let response = http.get(admin(&gateway, path)).send().await.expect("send");
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn upstream_list_trip_and_reset() {
    let up = Upstream::start().await;
    let gateway = Gateway::start_with_token(
        vec![
            upstream_config("a", "/a", &up.url()),
            upstream_config("b", "/b", &up.url()),
        ],
        TOKEN,
    )
    .await;
    let http = client();
    let list: Value = call(&gateway, false, "/admin/upstreams").await;
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let a = &list[0];
    assert_eq!(a["breaker"]["state"], "closed");
    assert_eq!(a["queue_depth"], 0);
    assert_eq!(a["in_flight"], 0);
    assert!(
        a["quota"]["limit"].is_null() && a["quota"]["source"].is_null(),
        "nothing learned yet: {a}"
    );

    let tripped: Value = call(&gateway, true, "/admin/upstreams/a/breaker/trip").await;
    assert_eq!(tripped["breaker"]["state"], "forced_open");
    let response = http.get(gateway.url("/a/x")).send().await.expect("send");
    support::assert_error(response, 503, "breaker_open").await;
    assert!(
        up.seen().is_empty(),
        "nothing reached the upstream while tripped"
    );
    assert_eq!(
        http.get(gateway.url("/b/x"))
            .send()
            .await
            .expect("send")
            .status(),
        200,
        "b is not affected"
    );

    let reset: Value = call(&gateway, true, "/admin/upstreams/a/breaker/reset").await;
    assert_eq!(reset["breaker"]["state"], "closed");
    assert_eq!(
        http.get(gateway.url("/a/x"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
}

#[tokio::test]
async fn the_breaker_opens_on_failures_and_refuses_with_retry_after() {
    let supplier = simulator(Convention::Github, 0, 1.0).await;
    let mut config = upstream_config("s", "/s", &supplier.url());
    config.retry.max_attempts = 1;
    config.breaker.failure_threshold = 3;
    let gateway = Gateway::start_with_token(vec![config], TOKEN).await;
    let http = client();
    for _ in 0..3 {
        let response = http.get(gateway.url("/s/x")).send().await.expect("send");
        assert!(
            response.status().is_server_error(),
            "the supplier's 5xx passes through"
        );
    }
    let response = http.get(gateway.url("/s/x")).send().await.expect("send");
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(support::error_body(response).await["error"], "breaker_open");
    assert_eq!(
        supplier.stats().requests,
        3,
        "the open breaker sent nothing upstream"
    );

    let list: Value = call(&gateway, false, "/admin/upstreams").await;
    assert_eq!(list[0]["breaker"]["state"], "open");
    let metrics = metrics_text(&gateway).await;
    assert!(
        metrics.contains("headroom_breaker_state{upstream=\"s\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("headroom_rejected_total{reason=\"breaker_open\",upstream=\"s\"} 1"),
        "{metrics}"
    );
}

/// The value of one sample in Prometheus text format.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let supplier = simulator(Convention::Ietf, 5, 0.0).await;
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &supplier.url())]).await;
    let http = client();
    let before = metrics_text(&gateway).await;
    for name in [
        "headroom_queue_depth",
        "headroom_in_flight",
        "headroom_breaker_state",
    ] {
        assert!(
            before.contains(&format!("{name}{{upstream=\"s\"}} 0")),
            "{name} missing: {before}"
        );
    }
    for _ in 0..3 {
        assert_eq!(
            http.get(gateway.url("/s/x"))
                .send()
                .await
                .expect("send")
                .status(),
            200
        );
    }
    assert_eq!(
        http.get(gateway.url("/nowhere"))
            .send()
            .await
            .expect("send")
            .status(),
        404
    );
    let after = metrics_text(&gateway).await;
    assert_eq!(
        sample(
            &after,
            "headroom_requests_total{status=\"200\",upstream=\"s\"}"
        ),
        Some(3.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "headroom_requests_total{status=\"404\",upstream=\"none\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "headroom_upstream_requests_total{status=\"200\",upstream=\"s\"}"
        ),
        Some(3.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "headroom_quota_limit{upstream=\"s\"}"),
        Some(5.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "headroom_quota_remaining{upstream=\"s\"}"),
        Some(2.0),
        "{after}"
    );
    assert!(
        sample(&after, "headroom_quota_reset_seconds{upstream=\"s\"}")
            .is_some_and(|s| s > 0.0 && s <= 2.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "headroom_queue_wait_seconds_count{upstream=\"s\"}"),
        Some(3.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "headroom_request_duration_seconds_count{upstream=\"s\"}"
        ),
        Some(3.0),
        "{after}"
    );
}

#[tokio::test]
async fn a_trip_answers_queued_requests_at_once() {
    let up = Upstream::start().await;
    let mut config = upstream_config("a", "/a", &up.url());
    config.max_concurrency = 1;
    let gateway = Gateway::start_with_token(vec![config], TOKEN).await;
    let http = client();
    let holder = tokio::spawn(http.get(gateway.url("/a/hold")).send());
    up.wait_for(1).await;
    let queued = tokio::spawn(http.get(gateway.url("/a/queued")).send());
    gateway.wait_for_queue("a", 1).await;

    let response = http
        .post(admin(&gateway, "/admin/upstreams/a/breaker/trip"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    // The queued request is answered now, while the held one is still in flight.
    let response = queued.await.expect("join").expect("send");
    support::assert_error(response, 503, "breaker_open").await;
    assert_eq!(gateway.queue_depth("a"), 0);
    up.release();
    assert_eq!(holder.await.expect("join").expect("send").status(), 200);
    assert_eq!(
        up.seen().len(),
        1,
        "the queued request never reached the upstream"
    );
}
