//! `server.workers`: client connections are spread over worker threads (each its own event
//! loop and upstream pools), each is served wholly by its worker, and the queue, quota and
//! drain stay shared.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{server_config, upstream_config, Gateway, Upstream};

/// One keep-alive request on `stream`; returns the response head and body.
async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "the connection closed before the response ended");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse().ok())
                .expect("a content-length");
            if body.len() >= length {
                return text.into_owned();
            }
        }
    }
}

async fn connections_by_worker(gateway: &Gateway) -> Vec<(String, i64)> {
    let text = support::metrics_text(gateway.admin).await;
    let mut found: Vec<(String, i64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("headroom_client_connections{worker=\""))
        .filter_map(|rest| {
            let (worker, value) = rest.split_once("\"} ")?;
            Some((worker.to_owned(), value.trim().parse().ok()?))
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_spread_over_the_workers_and_each_is_served() {
    let up = Upstream::start().await;
    let mut server = server_config();
    server.workers = 2;
    let gateway = Gateway::start_with(server, vec![upstream_config("s", "/s", &up.url())]).await;

    // Four keep-alive connections, opened one after another: each goes to the worker with
    // the fewest, so two each.
    let mut streams = Vec::new();
    for i in 0..4 {
        let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
        let answer = exchange(&mut stream, &format!("/s/first-{i}")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        streams.push(stream);
    }
    assert_eq!(
        connections_by_worker(&gateway).await,
        [("0".to_owned(), 2), ("1".to_owned(), 2)]
    );
    // Every connection keeps being served by its worker, requests interleaved.
    for round in 0..3 {
        for (i, stream) in streams.iter_mut().enumerate() {
            let answer = exchange(stream, &format!("/s/again-{round}-{i}")).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    }
    assert_eq!(up.seen().len(), 4 + 12);
    // Closed connections are taken off their worker's count.
    drop(streams);
    let zero = [("0".to_owned(), 0), ("1".to_owned(), 0)];
    assert!(
        support::eventually(200, || async {
            connections_by_worker(&gateway).await == zero
        })
        .await,
        "connections still counted after closing: {:?}",
        connections_by_worker(&gateway).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_held_on_another_worker_finishes_during_the_drain() {
    let up = Upstream::start().await;
    let mut server = server_config();
    server.workers = 2;
    let gateway = Gateway::start_with(server, vec![upstream_config("s", "/s", &up.url())]).await;
    let proxy = gateway.proxy;

    // The first connection goes to worker 0, the second (held) to worker 1.
    let mut first = TcpStream::connect(proxy).await.expect("connect");
    let answer = exchange(&mut first, "/s/records").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let held = tokio::spawn(async move {
        let mut second = TcpStream::connect(proxy).await.expect("connect");
        exchange(&mut second, "/s/hold").await
    });
    up.wait_for(2).await;
    assert_eq!(
        connections_by_worker(&gateway).await,
        [("0".to_owned(), 1), ("1".to_owned(), 1)]
    );

    let stopping = tokio::spawn(gateway.stop());
    // New connections are refused once the gateway stops accepting.
    let refused = support::eventually(200, || async { TcpStream::connect(proxy).await.is_err() });
    assert!(refused.await, "new connections are refused while draining");
    up.release();
    let answer = held.await.expect("held request");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(first);
    stopping.await.expect("join").expect("drained");
}

/// The real binary raises a low soft limit on open descriptors to the hard one: with a soft
/// limit of 128, it still serves 300 connections held open at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_descriptor_limit_is_raised_to_the_hard_one() {
    let up = Upstream::start().await;
    let (port, admin) = (support::free_port(), support::free_port());
    let (_child, _config) = support::spawn_headroom_after(
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\n\
             [[upstream]]\nname = \"s\"\nprefix = \"/s\"\nurl = \"{}\"\n",
            up.url()
        ),
        "ulimit -Sn 128 &&",
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let listening = support::eventually(500, || async { TcpStream::connect(addr).await.is_ok() });
    assert!(listening.await, "headroom listens");
    let mut held = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            exchange(&mut stream, &format!("/s/{i}")),
        )
        .await
        .unwrap_or_else(|_| panic!("connection {i} was not served"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    assert_eq!(held.len(), 300);
}
