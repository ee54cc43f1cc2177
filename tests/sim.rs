//! The supplier simulator over real sockets on 127.0.0.1:0, with reqwest as the client.
//!
//! Quota tests use a window of 1e10 s: every request of a test falls in the window
//! [0, 1e10) since the epoch, so the epoch resets are exact and no window can roll over
//! mid-test. Rollover itself is tested on the paused clock in `src/sim/service.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use headroom::sim::{
    pattern_byte, start, Convention, Fnv1a64, SimArgs, SimHandle, Stats, WindowStats,
};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A window so long that no test sees it end: [0, 1e10 s) since the epoch.
const FAR: u64 = 10_000_000_000;
/// Slack, in seconds, when comparing a delta reset with the test's own wall clock.
const CLOCK_SLACK: u64 = 120;

fn args(limit: u32, convention: Convention) -> SimArgs {
    SimArgs {
        limit,
        window: Duration::from_secs(FAR),
        convention,
        seed: Some(7),
        ..SimArgs::default()
    }
}

async fn sim(args: SimArgs) -> SimHandle {
    start(args).await.expect("simulator starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

async fn get(sim: &SimHandle, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", sim.url()))
        .send()
        .await
        .expect("response")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

#[allow(clippy::disallowed_methods)] // the reference wall clock the headers are checked against
fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs()
}

/// Asserts that `delta` seconds from now is the end of the window [0, FAR).
fn assert_delta_to_far(delta: f64) {
    let expected = (FAR - epoch_now()) as f64;
    assert!(
        (delta - expected).abs() <= CLOCK_SLACK as f64,
        "delta {delta} vs {expected}"
    );
}

fn rate_limit_header_names(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|n| n.as_str().to_owned())
        .filter(|n| n.contains("ratelimit") || n == "retry-after")
        .collect()
}

/// Sends `limit` requests that must pass, then one that must be rejected; hands each
/// response's status and headers to `check` (with the request's 1-based number).
async fn exhaust(convention: Convention, mut check: impl FnMut(u32, StatusCode, &HeaderMap)) {
    let limit = 3;
    let sim = sim(args(limit, convention)).await;
    for n in 1..=limit + 1 {
        let response = get(&sim, "/items").await;
        let status = response.status();
        let headers = response.headers().clone();
        let body: Value = response.json().await.expect("JSON body");
        if n <= limit {
            assert_eq!(status, StatusCode::OK, "request {n}");
            assert_eq!(body["window_admitted"], n);
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(body, serde_json::json!({"error": "rate_limited"}));
        }
        check(n, status, &headers);
    }
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.ok, stats.rate_limited), (4, 3, 1));
}

#[tokio::test]
async fn github_convention() {
    exhaust(Convention::Github, |n, _, headers| {
        let remaining = 3u32.saturating_sub(n).to_string();
        let used = n.min(3).to_string();
        assert_eq!(header(headers, "x-ratelimit-limit"), "3");
        assert_eq!(header(headers, "x-ratelimit-remaining"), remaining);
        assert_eq!(header(headers, "x-ratelimit-used"), used);
        assert_eq!(header(headers, "x-ratelimit-reset"), FAR.to_string());
        assert_eq!(header(headers, "x-ratelimit-resource"), "core");
        assert!(headers.get("retry-after").is_none());
    })
    .await;
}

#[tokio::test]
async fn delta_convention() {
    exhaust(Convention::Delta, |n, _, headers| {
        assert_eq!(
            rate_limit_header_names(headers),
            [
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset"
            ]
        );
        assert_eq!(header(headers, "x-ratelimit-limit"), "3");
        let remaining = 3u32.saturating_sub(n).to_string();
        assert_eq!(header(headers, "x-ratelimit-remaining"), remaining);
        let reset: u64 = header(headers, "x-ratelimit-reset")
            .parse()
            .expect("integer");
        assert_delta_to_far(reset as f64);
    })
    .await;
}

#[tokio::test]
async fn ietf_convention() {
    exhaust(Convention::Ietf, |n, _, headers| {
        assert_eq!(
            header(headers, "ratelimit-policy"),
            format!("\"default\";q=3;w={FAR}")
        );
        let value = header(headers, "ratelimit");
        let prefix = format!("\"default\";r={};t=", 3u32.saturating_sub(n));
        let t = value
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{value:?} does not start with {prefix:?}"));
        assert_delta_to_far(t.parse::<u64>().expect("integer t") as f64);
        assert!(headers.get("retry-after").is_none());
    })
    .await;
}

#[tokio::test]
async fn ietf_07_convention() {
    exhaust(Convention::Ietf07, |n, _, headers| {
        assert_eq!(header(headers, "ratelimit-policy"), format!("3;w={FAR}"));
        let value = header(headers, "ratelimit");
        let prefix = format!("limit=3, remaining={}, reset=", 3u32.saturating_sub(n));
        let reset = value
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{value:?} does not start with {prefix:?}"));
        assert_delta_to_far(reset.parse::<u64>().expect("integer reset") as f64);
    })
    .await;
}

#[tokio::test]
async fn discord_convention() {
    let mut buckets = Vec::new();
    exhaust(Convention::Discord, |n, status, headers| {
        assert_eq!(header(headers, "x-ratelimit-limit"), "3");
        let remaining = 3u32.saturating_sub(n).to_string();
        assert_eq!(header(headers, "x-ratelimit-remaining"), remaining);
        assert_eq!(header(headers, "x-ratelimit-reset"), format!("{FAR}.000"));
        let after = header(headers, "x-ratelimit-reset-after");
        let (_, decimals) = after.split_once('.').expect("decimals");
        assert_eq!(decimals.len(), 3, "{after}");
        assert_delta_to_far(after.parse().expect("seconds"));
        let bucket = header(headers, "x-ratelimit-bucket");
        assert!(bucket.len() == 16 && bucket.bytes().all(|b| b.is_ascii_hexdigit()));
        buckets.push(bucket.to_owned());
        let scope = headers.get("x-ratelimit-scope");
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(header(headers, "x-ratelimit-scope"), "user");
        } else {
            assert!(scope.is_none());
        }
    })
    .await;
    buckets.dedup();
    assert_eq!(buckets.len(), 1, "one bucket: {buckets:?}");
}

#[tokio::test]
async fn retry_after_convention() {
    exhaust(Convention::RetryAfter, |_, status, headers| {
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(rate_limit_header_names(headers), ["retry-after"]);
            let secs: u64 = header(headers, "retry-after").parse().expect("seconds");
            assert_delta_to_far(secs as f64);
        } else {
            assert!(rate_limit_header_names(headers).is_empty());
        }
    })
    .await;
}

#[tokio::test]
async fn retry_after_date_convention() {
    exhaust(Convention::RetryAfterDate, |_, status, headers| {
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(rate_limit_header_names(headers), ["retry-after"]);
            assert_eq!(
                header(headers, "retry-after"),
                "Sat, 20 Nov 2286 17:46:40 GMT"
            );
        } else {
            assert!(rate_limit_header_names(headers).is_empty());
        }
    })
    .await;
}

#[tokio::test]
async fn resets_are_aligned_to_the_window_and_within_it() {
    for (convention, window) in [(Convention::Github, 60), (Convention::Delta, 7)] {
        let sim = sim(SimArgs {
            limit: 100,
            window: Duration::from_secs(window),
            convention,
            ..SimArgs::default()
        })
        .await;
        let response = get(&sim, "/x").await;
        let reset: u64 = header(response.headers(), "x-ratelimit-reset")
            .parse()
            .expect("integer");
        match convention {
            Convention::Github => {
                assert_eq!(reset % window, 0, "epoch reset {reset} is a window end");
                let delta = reset.abs_diff(epoch_now());
                assert!(delta <= window + CLOCK_SLACK, "{delta}");
            }
            _ => assert!((1..=window).contains(&reset), "delta reset {reset}"),
        }
        let stats = sim.stats();
        assert_eq!(stats.windows.len(), 1);
        assert_eq!(stats.windows[0].start_ms % (window * 1000), 0);
    }
}

#[tokio::test]
async fn limit_zero_means_no_quota() {
    let sim = sim(args(0, Convention::Github)).await;
    for n in 1..=50u64 {
        let response = get(&sim, "/x").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(rate_limit_header_names(response.headers()).is_empty());
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["window_admitted"], n);
    }
    assert_eq!(sim.stats().rate_limited, 0);
}

#[tokio::test]
async fn fail_rate_one_fails_every_admitted_request() {
    let sim = sim(SimArgs {
        fail_rate: 1.0,
        ..args(4, Convention::Github)
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = get(&sim, "/x").await;
        statuses.push(response.status().as_u16());
        assert!(response.headers().get("retry-after").is_none());
        // Failures count against the quota: the headers say so.
        assert!(response.headers().get("x-ratelimit-remaining").is_some());
        let body: Value = response.json().await.expect("JSON body");
        assert!(body["error"].is_string());
    }
    assert_eq!(statuses, [500, 502, 503, 500, 429]);
    let stats = sim.stats();
    assert_eq!(
        (stats.server_errors, stats.rate_limited, stats.ok),
        (4, 1, 0)
    );
    assert_eq!(
        stats.windows,
        [WindowStats {
            start_ms: 0,
            admitted: 4,
            rejected: 1
        }]
    );
}

#[tokio::test]
async fn reset_rate_one_resets_every_connection() {
    let sim = sim(SimArgs {
        reset_rate: 1.0,
        ..args(10, Convention::Github)
    })
    .await;
    for _ in 0..3 {
        let result = client().get(format!("{}/x", sim.url())).send().await;
        assert!(result.is_err(), "{result:?}");
    }
    // A real RST, not a FIN: the read fails with ECONNRESET instead of seeing end of file.
    let mut stream = tokio::net::TcpStream::connect(sim.addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: sim\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let read = stream.read(&mut buf).await;
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.resets, stats.ok), (4, 4, 0));
    assert!(stats.windows.is_empty(), "resets spare the quota");
    // The stats endpoint is spared too.
    let stats: Stats = get(&sim, "/__stats").await.json().await.expect("stats");
    assert_eq!(stats.resets, 4);
}

/// On tokio's paused clock, which jumps over the simulator's sleep: elapsed virtual time
/// proves the delay without measuring real time.
#[tokio::test(start_paused = true)]
async fn latency_is_applied_before_the_response() {
    let latency = Duration::from_secs(300);
    let sim = sim(SimArgs {
        latency,
        ..args(1, Convention::Github)
    })
    .await;
    for expected in [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
        let before = tokio::time::Instant::now();
        let response = get(&sim, "/x").await;
        assert_eq!(response.status(), expected);
        assert!(before.elapsed() >= latency, "{:?}", before.elapsed());
    }
}

#[tokio::test]
async fn stats_count_sixteen_concurrent_requests() {
    const N: usize = 16;
    let sim = sim(args(100, Convention::Github)).await;
    let client = client();
    let mut senders = Vec::new();
    let mut requests = Vec::new();
    for _ in 0..N {
        // Each upload's body stays open until the test sends its last part and closes it.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
        });
        tx.send(Bytes::from_static(b"part1")).await.expect("send");
        senders.push(tx);
        let request = client
            .post(format!("{}/upload", sim.url()))
            .body(reqwest::Body::wrap_stream(body));
        requests.push(tokio::spawn(request.send()));
    }
    // Every request is now in flight at once, held by its open body.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stats: Stats = get(&sim, "/__stats").await.json().await.expect("stats");
        if stats.in_flight == N as u64 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "stuck at {stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for tx in senders {
        tx.send(Bytes::from_static(b"part2")).await.expect("send");
    }
    let mut expected = Fnv1a64::default();
    expected.update(b"part1part2");
    for request in requests {
        let response = request.await.expect("task").expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["bytes"], 10);
        assert_eq!(body["fnv1a64"], expected.hex());
    }
    let stats: Stats = get(&sim, "/__stats").await.json().await.expect("stats");
    assert_eq!(stats, sim.stats());
    assert_eq!(
        (
            stats.requests,
            stats.ok,
            stats.rate_limited,
            stats.server_errors,
            stats.resets
        ),
        (N as u64, N as u64, 0, 0, 0)
    );
    assert_eq!((stats.in_flight, stats.max_in_flight), (0, N as u64));
    assert_eq!(
        stats.windows,
        [WindowStats {
            start_ms: 0,
            admitted: N as u64,
            rejected: 0
        }]
    );
    // POST /__stats/reset zeroes everything.
    let response = client
        .post(format!("{}/__stats/reset", sim.url()))
        .send()
        .await
        .expect("reset");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.stats(), Stats::default());
    sim.reset_stats();
    assert_eq!(sim.stats(), Stats::default());
}

#[tokio::test]
async fn bytes_streams_the_pattern_with_content_length() {
    let sim = sim(args(0, Convention::Github)).await;
    let n = 1_000_003u64;
    let response = get(&sim, &format!("/bytes/{n}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "content-length"), n.to_string());
    let body = response.bytes().await.expect("body");
    assert_eq!(body.len() as u64, n);
    let wrong = (0..n).find(|&i| body[i as usize] != pattern_byte(i));
    assert_eq!(wrong, None);
    assert_eq!(&body[..4], [0, 1, 2, 3]);
    assert_eq!(body[251], 0);

    let empty = get(&sim, "/bytes/0").await;
    assert_eq!(header(empty.headers(), "content-length"), "0");
    assert!(empty.bytes().await.expect("body").is_empty());
    for bad in ["/bytes/abc", "/bytes/-1", "/bytes/68719476737"] {
        assert_eq!(
            get(&sim, bad).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let cap = get(&sim, "/bytes/68719476736").await;
    assert_eq!(header(cap.headers(), "content-length"), "68719476736");
    drop(cap);
}

#[tokio::test]
async fn upload_counts_and_hashes_the_body() {
    let sim = sim(args(0, Convention::Github)).await;
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut expected = Fnv1a64::default();
    expected.update(&body);
    for method in [reqwest::Method::POST, reqwest::Method::PUT] {
        let response = client()
            .request(method.clone(), format!("{}/upload", sim.url()))
            .body(body.clone())
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(
            answer,
            serde_json::json!({"bytes": 3_000_000, "fnv1a64": expected.hex()})
        );
    }
    let response = get(&sim, "/upload").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(response.headers(), "allow"), "POST, PUT");
}

#[tokio::test]
async fn echo_reflects_raw_query_headers_and_body() {
    let sim = sim(args(0, Convention::Github)).await;
    let response = client()
        .patch(format!("{}/echo?a=1&b=%2F&c", sim.url()))
        .header("x-multi", "one")
        .header("x-multi", "two")
        .header("x-request-id", "req-42")
        .body("héllo")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "x-request-id"), "req-42");
    let echo: Value = response.json().await.expect("JSON");
    assert_eq!(echo["method"], "PATCH");
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "a=1&b=%2F&c");
    assert_eq!(
        echo["headers"]["x-multi"],
        serde_json::json!(["one", "two"])
    );
    assert_eq!(
        echo["headers"]["x-request-id"],
        serde_json::json!(["req-42"])
    );
    assert_eq!(
        echo["headers"]["host"],
        serde_json::json!([sim.addr().to_string()])
    );
    assert_eq!(echo["body_len"], 6);
    assert_eq!(echo["body"], "héllo");

    // Raw bytes as received, even where a URL library would normalise them.
    let raw = raw_request_async(
        sim.addr(),
        "GET /echo?q=%zz&&x=a+b;c HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n",
    )
    .await;
    let echo: Value =
        serde_json::from_str(raw.split("\r\n\r\n").nth(1).expect("body")).expect("JSON");
    assert_eq!(echo["query"], "q=%zz&&x=a+b;c");
    let no_query: Value = get(&sim, "/echo").await.json().await.expect("JSON");
    assert_eq!(no_query["query"], Value::Null);

    // A body of 64 KiB or more is counted, not returned.
    let big = vec![b'x'; 100_000];
    let echo: Value = client()
        .post(format!("{}/echo", sim.url()))
        .body(big)
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (echo["body_len"].as_u64(), &echo["body"]),
        (Some(100_000), &Value::Null)
    );
}

#[tokio::test]
async fn status_endpoint_answers_that_status_under_the_quota() {
    let sim = sim(args(3, Convention::Github)).await;
    let response = get(&sim, "/status/418").await;
    assert_eq!(response.status().as_u16(), 418);
    assert_eq!(header(response.headers(), "x-ratelimit-remaining"), "2");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, serde_json::json!({"status": 418}));
    assert_eq!(get(&sim, "/status/503").await.status().as_u16(), 503);
    assert_eq!(
        get(&sim, "/status/abc").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&sim, "/status/204").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let stats = sim.stats();
    assert_eq!((stats.server_errors, stats.rate_limited), (1, 1));
}

#[tokio::test]
async fn default_endpoint_answers_a_traceability_record() {
    let sim = sim(args(10, Convention::Github)).await;
    let response = client()
        .delete(format!("{}/lots/42?since=2026-01-01", sim.url()))
        .header("x-request-id", "abc")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "x-request-id"), "abc");
    assert_eq!(
        header(response.headers(), "content-type"),
        "application/json"
    );
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["method"], "DELETE");
    assert_eq!(body["path"], "/lots/42");
    assert_eq!(body["query"], "since=2026-01-01");
    assert_eq!(body["window_admitted"], 1);
    assert_eq!(body["record"]["traceability_lot_code"], "HRSIM-00000001");
    assert!(body["record"]["critical_tracking_event"].is_string());
    assert!(body["record"]["event_time_ms"].as_u64() > Some(1_700_000_000_000));
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let sim = sim(args(10, Convention::Github)).await;
    let addr = sim.addr();
    assert_eq!(get(&sim, "/x").await.status(), StatusCode::OK);
    sim.shutdown().await;
    // The listener is closed. A process spawned meanwhile by a parallel test may hold a copy
    // of its descriptor until it calls exec, so allow a moment before connecting must fail.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr} still accepts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn invalid_settings_are_refused() {
    let err = start(SimArgs {
        fail_rate: 1.5,
        ..SimArgs::default()
    })
    .await
    .expect_err("invalid");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("fail_rate"), "{err}");
}

/// Sends `request` over a plain socket and returns everything the server answers.
async fn raw_request_async(addr: SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

/// [`raw_request_async`] for a server in another process.
fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn simulate_subcommand_serves_and_exits_0_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--limit",
            "2",
            "--window",
            "1h",
            "--convention",
            "ietf",
            "--seed",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn headroom simulate");
    // Whatever the logging setup, the address line goes to stdout or stderr.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let outputs: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("stdout")),
        Box::new(child.stderr.take().expect("stderr")),
    ];
    for output in outputs {
        let lines_tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
    }
    let addr = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("an address line");
        if let Some(addr) = address_in(&line) {
            break addr;
        }
    };
    let answer = raw_request(
        addr,
        "GET /hello HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("ratelimit-policy: \"default\";q=2;w=3600"),
        "{answer}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    // nextest's slow-timeout (.config/nextest.toml) bounds this wait.
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// The `127.0.0.1:<port>` after `http://` in a log line, if any.
fn address_in(line: &str) -> Option<SocketAddr> {
    let start = line.find("http://127.0.0.1:")? + "http://".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
