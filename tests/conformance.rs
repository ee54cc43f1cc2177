//! HTTP/1.1 as a proxy must speak it (RFC 9112, RFC 9110), one case per requirement, over raw
//! sockets: what the client writes byte for byte, what the supplier receives byte for byte.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{assert_refused, raw_request, upstream_config, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A supplier that records each request head as it arrived (lowercase) and answers every
/// request with the same raw bytes.
struct RawSupplier {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RawSupplier {
    async fn start(answer: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    loop {
                        let Some(head) = read_head(&mut stream).await else {
                            return;
                        };
                        // A request body of Content-Length bytes is read and dropped.
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; length];
                        if stream.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        // A chunked one up to its last chunk (no trailers sent here).
                        if head.contains("transfer-encoding: chunked") {
                            let mut tail = Vec::new();
                            let mut byte = [0u8; 1];
                            while !tail.ends_with(b"0\r\n\r\n") {
                                if stream.read_exact(&mut byte).await.is_err() {
                                    return;
                                }
                                tail.push(byte[0]);
                            }
                        }
                        seen.lock().expect("lock").push(head);
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, heads }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

/// Reads one request head (up to the blank line), lowercased; `None` at end of stream.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).to_ascii_lowercase())
}

async fn gateway_for(url: &str) -> Gateway {
    Gateway::start(vec![upstream_config("s", "/s", url)]).await
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";

/// RFC 9112 section 9.6: a client may close its sending side after its request; the
/// server still answers, then closes.
#[tokio::test]
async fn a_half_closed_client_still_gets_its_answer() {
    let supplier = RawSupplier::start(OK).await;
    let gateway = gateway_for(&supplier.url()).await;
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    stream
        .write_all(b"GET /s/x HTTP/1.1\r\nHost: headroom\r\n\r\n")
        .await
        .expect("write");
    stream.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the connection is closed after the answer")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("ok"), "{answer:?}");
}

/// RFC 9110 section 7.6.1: every header named in `Connection` goes, whatever else the value
/// holds (one non-ASCII byte must not make the whole header skipped); so do the known
/// hop-by-hop ones, in both directions. `TE: trailers` is the one `TE` that may pass.
#[tokio::test]
async fn connection_headers_and_what_they_name_are_dropped_both_ways() {
    static ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\
        Connection: X-Up-Secret, \xe9\r\nX-Up-Secret: 1\r\nKeep-Alive: timeout=5\r\n\
        Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n\r\nok";
    let supplier = RawSupplier::start(ANSWER).await;
    let gateway = gateway_for(&supplier.url()).await;
    let mut request =
        b"GET /s/x HTTP/1.1\r\nHost: headroom\r\nConnection: close, X-Secret-Hop, ".to_vec();
    request.extend_from_slice(b"\xe9\r\nX-Secret-Hop: 1\r\nKeep-Alive: 300\r\n");
    request.extend_from_slice(b"Proxy-Connection: keep-alive\r\nTE: gzip\r\nUpgrade: h2c\r\n");
    request.extend_from_slice(b"X-End-To-End: kept\r\n\r\n");
    let answer = raw_request(gateway.proxy, &request)
        .await
        .to_ascii_lowercase();
    let head = &supplier.heads()[0];
    for gone in [
        "x-secret-hop",
        "keep-alive",
        "proxy-connection",
        "\nte:",
        "upgrade",
    ] {
        assert!(!head.contains(gone), "{gone} reached the supplier:\n{head}");
    }
    assert!(head.contains("x-end-to-end: kept"), "{head}");
    for gone in ["x-up-secret", "keep-alive", "proxy-connection", "upgrade"] {
        assert!(
            !answer.contains(gone),
            "{gone} reached the client:\n{answer}"
        );
    }
    assert!(answer.contains("x-end-to-end: kept"), "{answer}");

    let answer = raw_request(
        gateway.proxy,
        b"GET /s/y HTTP/1.1\r\nHost: headroom\r\nTE: trailers\r\nConnection: close, TE\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        supplier.heads()[1].contains("\r\nte: trailers\r\n"),
        "TE: trailers passes: {}",
        supplier.heads()[1]
    );
}

/// RFC 9110 section 6.5: trailers of a chunked response reach a client that accepts them.
#[tokio::test]
async fn trailers_pass_through() {
    static ANSWER: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
        5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n";
    let supplier = RawSupplier::start(ANSWER).await;
    let gateway = gateway_for(&supplier.url()).await;
    let answer = raw_request(
        gateway.proxy,
        b"GET /s/x HTTP/1.1\r\nHost: headroom\r\nTE: trailers\r\nConnection: close, TE\r\n\r\n",
    )
    .await;
    assert!(answer.contains("hello"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-checksum: abc123"),
        "the trailer arrived: {answer:?}"
    );
}

/// RFC 9112 section 6.3: a message with both `Transfer-Encoding` and `Content-Length` is
/// framed by the former; a proxy forwarding it must drop the length.
#[tokio::test]
async fn a_response_with_length_and_chunked_loses_the_length() {
    static ANSWER: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
        b\r\nhello world\r\n0\r\n\r\n";
    let supplier = RawSupplier::start(ANSWER).await;
    let gateway = gateway_for(&supplier.url()).await;
    let answer = raw_request(
        gateway.proxy,
        b"GET /s/x HTTP/1.1\r\nHost: headroom\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("content-length: 5"),
        "the stale length went out: {answer:?}"
    );
    assert!(answer.contains("hello world"), "the whole body: {answer:?}");
}

/// RFC 9110 section 7.6.3: a proxy adds `Via` in both directions, after any already there.
#[tokio::test]
async fn via_is_added_both_ways() {
    static ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.1 cdn-edge\r\n\r\nok";
    let supplier = RawSupplier::start(ANSWER).await;
    let gateway = gateway_for(&supplier.url()).await;
    let answer = raw_request(
        gateway.proxy,
        b"GET /s/x HTTP/1.1\r\nHost: headroom\r\nVia: 1.0 corp-proxy\r\nConnection: close\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    let head = &supplier.heads()[0];
    assert!(
        head.contains("via: 1.0 corp-proxy, 1.1 headroom"),
        "request Via: {head}"
    );
    assert!(
        answer.contains("via: 1.1 cdn-edge, 1.1 headroom"),
        "response Via: {answer}"
    );
}

/// RFC 9112 section 3.2.2: a server must accept absolute-form targets. Headroom routes them
/// by their path alone: the authority never chooses where the request goes.
#[tokio::test]
async fn absolute_form_targets_are_routed_by_path_alone() {
    let supplier = RawSupplier::start(OK).await;
    let gateway = gateway_for(&supplier.url()).await;
    let answer = raw_request(
        gateway.proxy,
        b"GET http://elsewhere.invalid/s/items?page=2 HTTP/1.1\r\nHost: elsewhere.invalid\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        supplier.heads()[0].starts_with("get /items?page=2 http/1.1"),
        "{}",
        supplier.heads()[0]
    );
    // The supplier's own address as authority, a path no prefix matches: no route, never
    // a request to that authority.
    let target = format!(
        "GET http://{}/other HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        supplier.addr, supplier.addr
    );
    let answer = raw_request(gateway.proxy, target.as_bytes()).await;
    assert_refused(&answer, 404, "no_route");
    assert_eq!(supplier.heads().len(), 1);
}

/// Sends `request` and expects a 400 after which the connection is closed (a second
/// request written on it gets no answer).
async fn assert_rejected_and_closed(gateway: &Gateway, request: &[u8], why: &str) {
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    let mut bytes = request.to_vec();
    bytes.extend_from_slice(b"GET /s/next HTTP/1.1\r\nHost: headroom\r\n\r\n");
    stream.write_all(&bytes).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("{why}: the connection stayed open"))
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{why}: {answer:?}");
    assert_eq!(
        answer.lines().filter(|l| l.starts_with("HTTP/")).count(),
        1,
        "{why}: one answer, then closed: {answer:?}"
    );
}

/// RFC 9112 sections 3.2, 5.2, 6.3 and 7.1: requests a server must reject, with 400 and
/// the connection closed (smuggling defences).
#[tokio::test]
async fn malformed_framing_and_hosts_are_rejected_and_the_connection_closed() {
    let supplier = RawSupplier::start(OK).await;
    let gateway = gateway_for(&supplier.url()).await;
    let cases: [(&[u8], &str); 8] = [
        (b"GET /s/x HTTP/1.1\r\n\r\n", "3.2: no Host in HTTP/1.1"),
        (
            b"GET /s/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "3.2: two Host fields",
        ),
        (b"GET /s/x HTTP/1.1\r\nHost: a b\r\n\r\n", "3.2: invalid Host"),
        (
            b"POST /s/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            "6.3: two different Content-Length",
        ),
        (
            b"POST /s/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
            "6.3: a Content-Length list",
        ),
        (
            b"POST /s/x HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
            "6.3: invalid Content-Length",
        ),
        (
            b"GET /s/x HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
            "5.2: obs-fold",
        ),
        (
            b"POST /s/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            "7.1: bad chunk size",
        ),
    ];
    for (request, why) in cases {
        assert_rejected_and_closed(&gateway, request, why).await;
    }
    assert!(
        supplier.heads().is_empty(),
        "nothing malformed reached the supplier: {:?}",
        supplier.heads()
    );
}

/// RFC 9110 section 9.3.2 and RFC 9112 section 6.3: no body after an answer to HEAD, nor
/// after a 204 or a 304, even when the supplier sends one.
#[tokio::test]
async fn no_body_on_head_204_and_304() {
    for (status, method) in [
        ("200 OK", "HEAD"),
        ("204 No Content", "GET"),
        ("304 Not Modified", "GET"),
    ] {
        let answer: &'static [u8] = Box::leak(
            format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\nhello")
                .into_bytes()
                .into_boxed_slice(),
        );
        let supplier = RawSupplier::start(answer).await;
        let gateway = gateway_for(&supplier.url()).await;
        let request =
            format!("{method} /s/x HTTP/1.1\r\nHost: headroom\r\nConnection: close\r\n\r\n");
        let answer = raw_request(gateway.proxy, request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {}", &status[..3])),
            "{answer}"
        );
        assert!(
            answer.ends_with("\r\n\r\n"),
            "{method} {status}: a body followed: {answer:?}"
        );
    }
}

/// RFC 9110 section 10.1.1: `Expect: 100-continue` gets `100 Continue` before the client
/// sends its body, then the final answer.
#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let supplier = RawSupplier::start(OK).await;
    let gateway = gateway_for(&supplier.url()).await;
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    stream
        .write_all(b"POST /s/x HTTP/1.1\r\nHost: headroom\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut first))
        .await
        .expect("100 Continue comes without the body")
        .expect("read");
    assert!(
        first.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    stream.write_all(b"hello").await.expect("body");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("read");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("HTTP/1.1 200"), "{rest}");
    assert!(
        !supplier.heads()[0].contains("expect:"),
        "{}",
        supplier.heads()[0]
    );
}

/// RFC 9112 section 6.3: a request with both `Content-Length` and `Transfer-Encoding` is a
/// likely smuggling attempt: refused with 400 and its connection closed, so nothing behind
/// it is read, and nothing reaches the supplier. The same when the head comes in pieces,
/// and on a keep-alive connection after a good request.
#[tokio::test]
async fn a_request_with_length_and_chunked_is_refused_and_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let supplier = RawSupplier::start(OK).await;
    let gateway = gateway_for(&supplier.url()).await;
    let smuggling = [
        &b"POST /s/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /s/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        &b"POST /s/x HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /s/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"[..],
    ];
    for request in smuggling {
        let answer = raw_request(gateway.proxy, request).await;
        assert_refused(&answer, 400, "bad_request");
        assert_eq!(
            answer.lines().filter(|l| l.starts_with("HTTP/")).count(),
            1,
            "one answer, then closed: {answer:?}"
        );
        // The head in pieces, split inside a field name.
        let mut stream = tokio::net::TcpStream::connect(gateway.proxy)
            .await
            .expect("connect");
        let (first, rest) = request.split_at(45);
        stream.write_all(first).await.expect("write");
        stream.flush().await.expect("flush");
        tokio::task::yield_now().await;
        stream.write_all(rest).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert_refused(&answer, 400, "bad_request");
    }
    // After a good request on the same connection, too.
    let mut request = b"GET /s/ok HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    let mut stream = tokio::net::TcpStream::connect(gateway.proxy)
        .await
        .expect("connect");
    stream.write_all(&request).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    request.clear();
    request.extend_from_slice(smuggling[0]);
    stream.write_all(&request).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert_refused(&answer, 400, "bad_request");
    let heads = supplier.heads();
    assert_eq!(heads.len(), 1, "only the good request left: {heads:?}");
    assert!(heads[0].starts_with("get /ok "), "{heads:?}");
}

/// `connect_timeout` bounds the whole connect, TCP and TLS handshake: a supplier that accepts
/// and never answers the handshake costs `connect_timeout`, not the attempt's `timeout`.
#[tokio::test]
async fn connect_timeout_covers_the_tls_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // Accepted, never a byte of the handshake.
            holding.lock().expect("lock").push(stream);
        }
    });
    let mut config = upstream_config("s", "/s", &format!("https://{addr}"));
    config.connect_timeout = Duration::from_millis(200);
    config.timeout = Duration::from_secs(120);
    config.retry.max_attempts = 1;
    let gateway = Gateway::start(vec![config]).await;
    // Far below the attempt's 120 s timeout, far above the 200 ms connect_timeout.
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        raw_request(
            gateway.proxy,
            b"GET /s/x HTTP/1.1\r\nHost: headroom\r\nConnection: close\r\n\r\n",
        ),
    )
    .await
    .expect("the handshake that never came was cut by connect_timeout");
    assert!(answer.starts_with("HTTP/1.1 50"), "{answer}");
    assert_eq!(
        held.lock().expect("lock").len(),
        1,
        "one connection was made"
    );
}

/// A client that trickles its request head (a byte every 100 ms) is cut off after
/// `server.header_read_timeout` and counted; an idle keep-alive connection is closed after
/// `server.keepalive_timeout`, and one busy with a slow body is not cut by the head's clock.
#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed_on_their_own_clocks() {
    let supplier = RawSupplier::start(OK).await;
    let mut server = support::server_config();
    server.header_read_timeout = Duration::from_millis(300);
    server.keepalive_timeout = Duration::from_millis(800);
    let gateway =
        Gateway::start_with(server, vec![upstream_config("s", "/s", &supplier.url())]).await;

    // A trickled head: cut well before it would be complete (60 bytes at 10 per second).
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    let head = b"GET /s/x HTTP/1.1\r\nHost: headroom\r\nX-Slow: aaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut probe = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "the trickled head was never cut");
    assert!(supplier.heads().is_empty());
    let metrics = support::metrics_text(gateway.admin).await;
    assert!(
        metrics.contains("headroom_header_timeouts_total 1"),
        "{metrics}"
    );

    // A keep-alive connection: answered, then closed once idle for keepalive_timeout.
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    stream
        .write_all(b"GET /s/x HTTP/1.1\r\nHost: headroom\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the idle connection was closed")
        .expect("read");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));

    // A keep-alive connection idle for longer than header_read_timeout (but not
    // keepalive_timeout), whose next head then comes in two pieces: the head's clock starts
    // at its own first byte, not at the previous request's.
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    let request = b"GET /s/x HTTP/1.1\r\nHost: headroom\r\n\r\n";
    stream.write_all(request).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    stream.write_all(&request[..10]).await.expect("first piece");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream
        .write_all(&request[10..])
        .await
        .expect("second piece");
    let n = stream.read(&mut buf).await.expect("read");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(stream);

    // A POST whose body takes longer than header_read_timeout is not cut by it.
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    stream
        .write_all(b"POST /s/x HTTP/1.1\r\nHost: headroom\r\nContent-Length: 6\r\nConnection: close\r\n\r\n")
        .await
        .expect("head");
    for byte in b"abcdef" {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(&[*byte]).await.expect("a body byte");
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// Reads one response to a request for `OK` (head, then its 2-byte body), lowercased.
async fn read_ok(stream: &mut TcpStream) -> String {
    let head = read_head(stream).await.expect("a response head");
    let mut body = [0u8; 2];
    stream.read_exact(&mut body).await.expect("its body");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    head
}

/// The value of an unlabelled gauge or counter in the gateway's metrics.
async fn metric(gateway: &Gateway, name: &str) -> String {
    let text = support::metrics_text(gateway.admin).await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_default()
        .to_owned()
}

/// RFC 9112 section 9.3 (persistence): a keep-alive connection left idle is taken back from
/// hyper and parked without buffers (`headroom_client_connections_idle`), serves its next
/// request as before, closes `server.keepalive_timeout` after its last response (the time it
/// sat in hyper before it was parked counts), and closes at once when the gateway drains.
#[tokio::test(start_paused = true)]
async fn idle_connections_are_parked_and_keep_their_keepalive_time() {
    let supplier = RawSupplier::start(OK).await;
    let mut server = support::server_config();
    server.keepalive_timeout = Duration::from_secs(10);
    let gateway =
        Gateway::start_with(server, vec![upstream_config("s", "/s", &supplier.url())]).await;
    let request = b"GET /s/x HTTP/1.1\r\nHost: headroom\r\n\r\n";

    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    // No Nagle delay on the pieces of a head: the paused clock would run past it.
    stream.set_nodelay(true).expect("nodelay");
    stream.write_all(request).await.expect("write");
    read_ok(&mut stream).await;
    // The paused clock runs ahead while everything waits: 3 s idle, parked after 1 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        metric(&gateway, "headroom_client_connections_idle").await,
        "1"
    );

    // Parked, it still serves: twice, with a head that comes in two pieces the second time.
    stream.write_all(request).await.expect("write");
    read_ok(&mut stream).await;
    stream.write_all(&request[..12]).await.expect("first piece");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream
        .write_all(&request[12..])
        .await
        .expect("second piece");
    read_ok(&mut stream).await;
    let answered = tokio::time::Instant::now();
    assert_eq!(supplier.heads().len(), 3);

    // Closed 10 s after the last response: about 1 s in hyper, the rest parked.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("closed cleanly");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_secs(10) && idle < Duration::from_millis(10_500),
        "closed after {idle:?} idle"
    );
    assert_eq!(
        metric(&gateway, "headroom_client_connections_idle").await,
        "0"
    );

    // A drain closes a parked connection at once.
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_ok(&mut stream).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        metric(&gateway, "headroom_client_connections_idle").await,
        "1"
    );
    let drained = tokio::time::Instant::now();
    let stopping = tokio::spawn(gateway.stop());
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.expect("closed");
    assert!(rest.is_empty());
    assert!(
        drained.elapsed() < Duration::from_secs(1),
        "{:?}",
        drained.elapsed()
    );
    stopping.await.expect("join").expect("stopped");
}

/// A client that leaves a parked connection (closes it, or half-closes it) is seen at once:
/// the connection closes without waiting out `server.keepalive_timeout`, and it is no longer
/// counted open or idle.
#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_a_parked_connection_is_closed_at_once() {
    let supplier = RawSupplier::start(OK).await;
    let mut server = support::server_config();
    server.keepalive_timeout = Duration::from_secs(60);
    let gateway =
        Gateway::start_with(server, vec![upstream_config("s", "/s", &supplier.url())]).await;
    for half_close in [false, true] {
        let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .write_all(b"GET /s/x HTTP/1.1\r\nHost: headroom\r\n\r\n")
            .await
            .expect("write");
        read_ok(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            metric(&gateway, "headroom_client_connections_idle").await,
            "1"
        );
        let left = tokio::time::Instant::now();
        if half_close {
            stream.shutdown().await.expect("half-close");
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.expect("closed");
            assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
        } else {
            drop(stream);
        }
        let counts_back = support::eventually(100, || async {
            metric(&gateway, "headroom_client_connections_idle").await == "0"
                && metric(&gateway, "headroom_client_connections{worker=\"0\"}").await == "0"
        })
        .await;
        assert!(counts_back, "half_close: {half_close}");
        assert!(
            left.elapsed() < Duration::from_secs(5),
            "{:?}",
            left.elapsed()
        );
    }
}

/// RFC 9112 section 9.6: a connection closed after its response (`Connection: close`) gets
/// all of that response first, even when the client reads slower than the supplier sends and
/// the end of the body is still in the gateway's buffers when the supplier is done.
#[tokio::test]
async fn a_closing_connection_gets_its_whole_response_first() {
    let size = 16 << 20;
    let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").into_bytes();
    answer.resize(answer.len() + size, b'x');
    let supplier = RawSupplier::start(Box::leak(answer.into_boxed_slice())).await;
    let gateway = gateway_for(&supplier.url()).await;
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    stream
        .write_all(b"GET /s/x HTTP/1.1\r\nHost: headroom\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    // A slow reader: small reads, letting every other task run between them.
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        tokio::task::yield_now().await;
    }
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert_eq!(got.len() - head_end, size, "the whole body, then the close");
}

/// A client that half-closes while its request waits for quota (here: for the only
/// concurrency slot) gets `499 client_closed`, and the request is never sent: a closed
/// connection cannot be told from a half-closed one, and a client that left costs nothing.
#[tokio::test]
async fn a_half_closed_client_whose_request_must_wait_gets_499_and_nothing_is_sent() {
    let up = support::Upstream::start().await;
    let mut config = upstream_config("s", "/s", &up.url());
    config.max_concurrency = 1;
    let gateway = Gateway::start(vec![config]).await;
    let held = tokio::spawn(support::client().get(gateway.url("/s/hold")).send());
    up.wait_for(1).await;
    let mut stream = TcpStream::connect(gateway.proxy).await.expect("connect");
    stream
        .write_all(b"GET /s/queued HTTP/1.1\r\nHost: headroom\r\n\r\n")
        .await
        .expect("write");
    gateway.wait_for_queue("s", 1).await;
    stream.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered, then closed")
        .expect("read");
    support::assert_refused(&String::from_utf8_lossy(&answer), 499, "client_closed");
    up.release();
    assert_eq!(held.await.expect("join").expect("held").status(), 200);
    assert_eq!(up.seen().len(), 1, "the queued request was never sent");
}

/// A request answered without its body being read (here: no route) closes its connection
/// (RFC 9112 9.6): the unread body is never taken for the next request head (a body that
/// looks like a smuggling head must not get the next request refused, nor the next head
/// timed from it).
#[tokio::test]
async fn an_answer_before_the_body_was_read_closes_the_connection() {
    let supplier = RawSupplier::start(OK).await;
    let gateway = gateway_for(&supplier.url()).await;
    let body = "Content-Length: 1\r\nTransfer-Encoding: x\r\n\r\n";
    let request = format!(
        "POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}\
         GET /s/next HTTP/1.1\r\nHost: a\r\n\r\n",
        body.len()
    );
    let answer = raw_request(gateway.proxy, request.as_bytes()).await;
    assert_refused(&answer, 404, "no_route");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(
        answer.lines().filter(|l| l.starts_with("HTTP/")).count(),
        1,
        "one answer, then closed: {answer:?}"
    );
    assert!(supplier.heads().is_empty());
    // A body that was read (proxied) keeps the connection open.
    let mut stream = tokio::net::TcpStream::connect(gateway.proxy)
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"POST /s/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.expect("read");
    let first = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(first.starts_with("http/1.1 200"), "{first}");
    assert!(!first.contains("connection: close"), "{first}");
}
