//! SIGTERM on the real binary: in-flight requests complete, new connections are refused,
//! the process exits 0.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use tokio::io::{AsyncBufReadExt, BufReader};

use support::{client, free_port, Upstream};

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let up = Upstream::start().await;
    let (port, admin) = (free_port(), free_port());
    let mut config = tempfile::NamedTempFile::new().expect("temp file");
    write!(
        config,
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
         drain_timeout = \"60s\"\n\n[[upstream]]\nname = \"s\"\nprefix = \"/s\"\nurl = \"{}\"\n\n\
         [upstream.quota]\nprobes = 8\n",
        up.url()
    )
    .expect("write config");

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .arg("--config")
        .arg(config.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn headroom");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    wait_for_line(&mut lines, "headroom listening").await;

    let url = format!("http://127.0.0.1:{port}/s/hold");
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { client().get(url).send().await })
        })
        .collect();
    up.wait_for(5).await;

    // One access log line per request, with its fields and without secrets.
    let response = client()
        .get(format!(
            "http://127.0.0.1:{port}/s/records?token=query-secret"
        ))
        .header("authorization", "Bearer header-secret")
        .header("cookie", "session=cookie-secret")
        .header("x-request-id", "log-check-1")
        .body("body-secret")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let line = wait_for_line(&mut lines, "log-check-1").await;
    for secret in [
        "query-secret",
        "header-secret",
        "cookie-secret",
        "body-secret",
    ] {
        assert!(
            !line.contains(secret),
            "{secret} leaked into the log: {line}"
        );
    }
    let entry: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(entry["request_id"], "log-check-1");
    assert_eq!(entry["upstream"], "s");
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["path"], "/s/records");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["attempts"], 1);
    assert!(
        entry["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );

    let pid = child.id().expect("pid").to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_for_line(&mut lines, "stopped accepting").await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the listener is closed while draining"
    );

    up.release();
    support::assert_all_released(requests).await;
    let exit = child.wait().await.expect("wait");
    assert_eq!(exit.code(), Some(0), "exit code after SIGTERM");
}

/// Reads log lines until one contains `needle`; the logs are JSON lines since stdout is a pipe.
async fn wait_for_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> String {
    while let Some(line) = lines.next_line().await.expect("read log") {
        if line.contains(needle) {
            assert!(line.starts_with('{'), "JSON log line expected: {line}");
            return line;
        }
    }
    panic!("headroom exited before logging {needle:?}");
}

/// A second SIGTERM exits at once, without waiting for the drain to end.
#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let up = Upstream::start().await;
    let (port, admin) = (free_port(), free_port());
    let (mut child, _config) = support::spawn_headroom(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
         drain_timeout = \"300s\"\n\n[[upstream]]\nname = \"s\"\nprefix = \"/s\"\nurl = \"{}\"\n",
        up.url()
    ));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    wait_for_line(&mut lines, "headroom listening").await;
    // A request the upstream holds: the drain would wait 300 s for it.
    let held = tokio::spawn(
        client()
            .get(format!("http://127.0.0.1:{port}/s/hold"))
            .send(),
    );
    up.wait_for(1).await;
    let pid = child.id().expect("pid").to_string();
    let term = || {
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
    };
    assert!(term().success());
    wait_for_line(&mut lines, "stopped accepting").await;
    assert!(term().success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("exited at once, not after the 300 s drain")
        .expect("wait");
    assert_eq!(exit.code(), Some(1), "exit code after a second signal");
    up.release();
    let _ = held.await;
}

/// While draining, a request still waiting for quota is answered `503 shutting_down` with
/// `Retry-After` before the drain ends, never cut off with its connection.
#[tokio::test]
async fn requests_waiting_for_quota_get_shutting_down_before_the_drain_ends() {
    use headroom::config::LimitConfig;
    let up = Upstream::start().await;
    let mut upstream = support::upstream_config("s", "/s", &up.url());
    upstream.limit = Some(LimitConfig {
        requests: 1,
        per: std::time::Duration::from_secs(600),
    });
    upstream.queue.max_wait = std::time::Duration::from_secs(600);
    let mut server = support::server_config();
    server.drain_timeout = std::time::Duration::from_secs(1);
    let gateway = support::Gateway::start_with(server, vec![upstream]).await;
    let first = client()
        .get(gateway.url("/s/first"))
        .send()
        .await
        .expect("send");
    assert_eq!(first.status(), 200);
    let waiting: Vec<_> = (0..2)
        .map(|i| tokio::spawn(client().get(gateway.url(&format!("/s/wait{i}"))).send()))
        .collect();
    gateway.wait_for_queue("s", 2).await;
    let stopping = tokio::spawn(gateway.stop());
    for request in waiting {
        let response = request
            .await
            .expect("join")
            .expect("answered before the drain ended");
        assert!(response.headers().contains_key("retry-after"));
        support::assert_error(response, 503, "shutting_down").await;
    }
    stopping.await.expect("join").expect("stopped");
    assert_eq!(up.seen().len(), 1, "the waiting requests were never sent");
}
