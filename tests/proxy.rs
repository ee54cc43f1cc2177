//! The gateway path end to end: a real upstream on 127.0.0.1:0, Headroom on 127.0.0.1:0, and
//! real HTTP clients.

mod support;

use std::time::Duration;

use support::{client, error_body, raw_request, upstream_config, Gateway, Upstream};

#[tokio::test]
async fn routes_by_longest_prefix_on_segment_boundaries() {
    let a = Upstream::start().await;
    let ab = Upstream::start().await;
    let deep = Upstream::start().await;
    let gateway = Gateway::start(vec![
        upstream_config("a", "/supplier-a", &a.url()),
        upstream_config("ab", "/supplier-ab", &ab.url()),
        upstream_config("deep", "/supplier-a/v2", &deep.url()),
    ])
    .await;
    let http = client();
    for (path, upstream, target) in [
        ("/supplier-a/x", &a, "/x"),
        ("/supplier-ab/x", &ab, "/x"),
        ("/supplier-a/v2/y", &deep, "/y"),
        ("/supplier-a/v2x", &a, "/v2x"),
        ("/supplier-a", &a, "/"),
    ] {
        let response = http.get(gateway.url(path)).send().await.expect("send");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(upstream.last().target, target, "{path}");
    }
    assert_eq!(a.seen().len(), 3);
    assert_eq!(ab.seen().len(), 1);
    assert_eq!(deep.seen().len(), 1);

    let response = http
        .get(gateway.url("/supplier-c/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    let body = error_body(response).await;
    assert_eq!(body["error"], "no_route");
    assert_eq!(body["upstream"], serde_json::Value::Null);
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn joins_the_base_path_and_keeps_the_query_byte_for_byte() {
    let up = Upstream::start().await;
    let gateway = Gateway::start(vec![upstream_config(
        "s",
        "/s",
        &format!("{}/base/v1/", up.url()),
    )])
    .await;
    let query = "lot=ABC%2F123&x=a+b&empty=&flag&quote='&tilde=~&pct=%25";
    let raw = format!(
        "GET /s/events/2026?{query} HTTP/1.1\r\nHost: headroom\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_request(gateway.proxy, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(up.last().target, format!("/base/v1/events/2026?{query}"));

    let answer = raw_request(
        gateway.proxy,
        b"GET /s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(up.last().target, "/base/v1");
}

#[tokio::test]
async fn encoded_dot_segments_cannot_escape_the_base_path() {
    let up = Upstream::start().await;
    let gateway = Gateway::start(vec![upstream_config(
        "s",
        "/s",
        &format!("{}/base", up.url()),
    )])
    .await;
    for path in [
        "/s/%2e%2e/admin",
        "/s/%2E%2E/admin",
        "/s/.%2e/x",
        "/s/x/..%2f..%2fadmin",
        "/s/../x",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        let answer = raw_request(gateway.proxy, raw.as_bytes()).await;
        support::assert_refused(&answer, 400, "bad_request");
    }
    assert!(up.seen().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn header_rules_hop_by_hop_host_forwarded_and_request_id() {
    let up = Upstream::start().await;
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &up.url())]).await;
    let raw = "GET /s/h HTTP/1.1\r\nHost: headroom.example\r\nConnection: close, X-Hop-Named\r\n\
               X-Hop-Named: secret\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\nUpgrade: h2c\r\n\
               Proxy-Authorization: Basic eA==\r\nAuthorization: Bearer token\r\n\
               X-Forwarded-For: 203.0.113.7\r\nX-Request-Id: poller-42\r\nX-Custom: kept\r\n\r\n";
    let answer = raw_request(gateway.proxy, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-request-id: poller-42"),
        "{answer}"
    );
    let seen = up.last();
    for gone in [
        "x-hop-named",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
    ] {
        assert!(!seen.headers.contains_key(gone), "{gone} was forwarded");
    }
    assert!(
        seen.headers
            .get("connection")
            .is_none_or(|v| v != "close, X-Hop-Named"),
        "the client's Connection header was forwarded"
    );
    assert_eq!(seen.headers["host"], up.addr.to_string());
    assert_eq!(seen.headers["authorization"], "Bearer token");
    assert_eq!(seen.headers["x-custom"], "kept");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-request-id"], "poller-42");

    // No id from the client: one is made, sent upstream and returned.
    let response = client()
        .get(gateway.url("/s/h"))
        .send()
        .await
        .expect("send");
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(up.last().headers["x-request-id"], id.as_str());
    assert_eq!(response.headers()["headroom-attempts"], "1");
    assert!(response.headers().contains_key("headroom-queue-ms"));

    // Hop-by-hop headers of the response are dropped too, end-to-end ones kept.
    let response = client()
        .get(gateway.url("/s/hop"))
        .send()
        .await
        .expect("send");
    assert!(!response.headers().contains_key("x-upstream-hop"));
    assert!(!response.headers().contains_key("keep-alive"));
    assert_eq!(response.headers()["x-end-to-end"], "kept");
}

#[tokio::test]
async fn get_with_a_body_and_a_10_mib_post_arrive_intact() {
    let up = Upstream::start().await;
    let gateway = Gateway::start(vec![upstream_config("s", "/s", &up.url())]).await;
    let http = client();

    let query = r#"{"lot":"FSMA-204-0042","since":"2026-11-01T00:00:00Z"}"#;
    let response = http
        .get(gateway.url("/s/search"))
        .header("content-type", "application/json")
        .body(query)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.body, query.as_bytes());

    let payload: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let response = http
        .post(gateway.url("/s/upload"))
        .body(payload.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(
        up.last().body == payload,
        "the 10 MiB body changed on the way"
    );

    // Chunked (no Content-Length) as well.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        payload.chunks(65_536).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = http
        .put(gateway.url("/s/upload"))
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let seen = up.last();
    assert_eq!(seen.method, "PUT");
    assert!(seen.body == payload, "the chunked body changed on the way");
}

#[tokio::test]
async fn https_upstream_with_a_private_ca_file() {
    let ca = support::TestCa::new();
    let up = Upstream::start_tls(&ca).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("https://127.0.0.1:{}/api", up.addr.port());
    let mut trusted = upstream_config("trusted", "/trusted", &url);
    trusted.ca_file = Some(ca.write_ca(dir.path()));
    let untrusted = upstream_config("untrusted", "/untrusted", &url);
    let gateway = Gateway::start(vec![trusted, untrusted]).await;

    let response = client()
        .get(gateway.url("/trusted/items?x=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(up.last().target, "/api/items?x=1");

    let response = client()
        .get(gateway.url("/untrusted/items"))
        .send()
        .await
        .expect("send");
    let body = support::assert_error(response, 502, "upstream_unavailable").await;
    assert_eq!(body["upstream"], "untrusted");
}

#[tokio::test]
async fn unreachable_upstream_is_502_upstream_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let gateway = Gateway::start(vec![upstream_config(
        "gone",
        "/gone",
        &format!("http://127.0.0.1:{port}"),
    )])
    .await;
    let response = client()
        .get(gateway.url("/gone/x"))
        .send()
        .await
        .expect("send");
    let body = support::assert_error(response, 502, "upstream_unavailable").await;
    assert_eq!(body["upstream"], "gone");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("refused")),
        "{body}"
    );
}

#[tokio::test(start_paused = true)]
async fn silent_upstream_is_504_upstream_timeout() {
    let up = Upstream::start().await;
    let mut config = upstream_config("slow", "/slow", &up.url());
    config.timeout = Duration::from_secs(45);
    let gateway = Gateway::start(vec![config]).await;
    // The upstream holds `/hold` forever; the paused clock jumps to the 45 s deadline as soon
    // as everything is idle, so this takes milliseconds.
    let response = client()
        .get(gateway.url("/slow/hold"))
        .send()
        .await
        .expect("send");
    let body = support::assert_error(response, 504, "upstream_timeout").await;
    assert_eq!(body["upstream"], "slow");
}

#[tokio::test]
async fn oversized_requests_are_413_and_431() {
    let up = Upstream::start().await;
    let mut server = support::server_config();
    server.max_request_body = 1024;
    server.max_header_bytes = 4096;
    let gateway = Gateway::start_with(server, vec![upstream_config("s", "/s", &up.url())]).await;
    let http = client();

    let response = http
        .post(gateway.url("/s/x"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .expect("send");
    support::assert_error(response, 413, "payload_too_large").await;
    assert!(
        up.seen().is_empty(),
        "a declared oversized body never goes upstream"
    );

    // Chunked: the limit is found while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b'y'; 512])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = http
        .post(gateway.url("/s/x"))
        .body(body)
        .send()
        .await
        .expect("send");
    support::assert_error(response, 413, "payload_too_large").await;

    let response = http
        .get(gateway.url("/s/x"))
        .header("x-big", "z".repeat(5000))
        .send()
        .await
        .expect("send");
    support::assert_error(response, 431, "headers_too_large").await;

    let response = http
        .post(gateway.url("/s/x"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "exactly the limit passes");
}

#[tokio::test]
async fn connect_is_refused_and_absolute_form_is_routed_by_path() {
    let up = Upstream::start().await;
    let gateway = Gateway::start(vec![upstream_config("all", "/", &up.url())]).await;
    let answer = raw_request(
        gateway.proxy,
        b"GET http://elsewhere.invalid/x HTTP/1.1\r\nHost: elsewhere.invalid\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        up.last().target,
        "/x",
        "routed by the path, not the authority"
    );

    let answer = raw_request(
        gateway.proxy,
        format!(
            "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
            up.addr
        )
        .as_bytes(),
    )
    .await;
    support::assert_refused(&answer, 405, "method_not_allowed");
    assert_eq!(up.seen().len(), 1, "CONNECT never reached the upstream");
}

#[tokio::test]
async fn upstream_statuses_pass_through_unchanged() {
    let up = Upstream::start().await;
    let mut config = upstream_config("s", "/s", &up.url());
    // The retried 5xx must not open the breaker for the next status.
    config.breaker.failure_threshold = 100;
    let gateway = Gateway::start(vec![config]).await;
    for code in [201u16, 204, 304, 400, 403, 404, 409, 422, 500, 503] {
        let response = client()
            .get(gateway.url(&format!("/s/status/{code}")))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), code);
    }
    let response = client()
        .head(gateway.url("/s/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn graceful_stop_lets_in_flight_requests_finish() {
    let up = Upstream::start().await;
    let mut config = upstream_config("s", "/s", &up.url());
    // All four go out before any answer (no conservative start).
    config.quota.probes = 8;
    let gateway = Gateway::start(vec![config]).await;
    let url = gateway.url("/s/hold");
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { client().get(url).send().await })
        })
        .collect();
    up.wait_for(4).await;
    let proxy = gateway.proxy;
    let stopping = tokio::spawn(gateway.stop());
    // New connections are refused once the listener is closed.
    loop {
        if tokio::net::TcpStream::connect(proxy).await.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    up.release();
    support::assert_all_released(requests).await;
    stopping.await.expect("join").expect("clean stop");
}
