//! The access log never holds a request: with stdout blocked (a pipe nobody reads, as a
//! stuck log collector), the real binary keeps serving, drops log lines past its bounded
//! queue and counts them.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use support::{client, free_port, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_stdout_drops_log_lines_and_never_holds_a_request() {
    let up = Upstream::start().await;
    let (port, admin) = (free_port(), free_port());
    // stdout is a pipe this test never reads: once its 64 KiB are full, every write blocks.
    let (mut child, _config) = support::spawn_headroom(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\n\
         [[upstream]]\nname = \"s\"\nprefix = \"/s\"\nurl = \"{}\"\nmax_concurrency = 64\n",
        up.url()
    ));
    let http = client();
    let base = format!("http://127.0.0.1:{port}/s/records");
    let mut up_yet = false;
    for _ in 0..500 {
        if http.get(&base).send().await.is_ok() {
            up_yet = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(up_yet, "headroom serves");
    // More lines than the writer's buffer holds (an access line is well over 128 bytes) on
    // top of a full pipe.
    let total = headroom::logging::BUFFERED_BYTES / 128 + 4_000;
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (http, base, next, ok) = (http.clone(), base.clone(), next.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let answered = http
                    .get(&base)
                    .timeout(std::time::Duration::from_secs(10))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if answered {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    assert_eq!(
        ok.load(Ordering::Relaxed),
        total,
        "every request was answered"
    );
    let metrics = support::metrics_text(format!("127.0.0.1:{admin}")).await;
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("headroom_log_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("headroom_log_dropped_total is served");
    assert!(
        dropped > 0,
        "lines past the full queue were dropped and counted"
    );
    child.start_kill().expect("kill");
    let _ = child.wait().await;
}
