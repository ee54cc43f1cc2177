//! Shared test helpers: a recording upstream on 127.0.0.1:0 (plain or TLS), a gateway on
//! 127.0.0.1:0 in front of it, and config builders.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use headroom::config::{Config, ServerConfig, UpstreamConfig};
use http_body_util::BodyExt;
use tokio::sync::{oneshot, Notify};

pub mod redis;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A real HTTP server that records every request and answers by path:
/// `/status/<code>`, `/hold` (answers only after `release()`), `/hop` (sends hop-by-hop
/// headers), anything else 200 with a JSON summary.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
}

#[derive(Default)]
struct UpstreamState {
    seen: Mutex<Vec<Seen>>,
    arrived: Notify,
    release: Notify,
    released: std::sync::atomic::AtomicBool,
}

impl Upstream {
    /// Plain HTTP upstream.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(UpstreamState::default());
        let app = app(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    /// HTTPS upstream presenting `cert` for 127.0.0.1.
    pub async fn start_tls(tls: &TestCa) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(UpstreamState::default());
        let app = app(state.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let app = app.clone();
                            async move {
                                use tower::ServiceExt;
                                app.oneshot(req.map(Body::new)).await
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    /// The last request seen.
    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw no request")
    }

    /// Waits until the upstream has seen `n` requests in total.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.state.arrived.notified();
            if self.state.seen.lock().expect("lock").len() >= n {
                return;
            }
            notified.await;
        }
    }

    /// Lets every `/hold` request (present and future) answer.
    pub fn release(&self) {
        self.state
            .released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.state.release.notify_waiters();
    }
}

fn app(state: Arc<UpstreamState>) -> axum::Router {
    axum::Router::new().fallback(answer).with_state(state)
}

async fn answer(State(state): State<Arc<UpstreamState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        target: target.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    state.seen.lock().expect("lock").push(seen);
    state.arrived.notify_waiters();

    let path = parts.uri.path();
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok());
        let status = status.unwrap_or(StatusCode::BAD_REQUEST);
        return (
            status,
            [("content-type", "application/json")],
            format!("{{\"status\":{}}}", status.as_u16()),
        )
            .into_response();
    }
    if path == "/hold" {
        loop {
            let notified = state.release.notified();
            if state.released.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            notified.await;
        }
        return (StatusCode::OK, "released").into_response();
    }
    if path == "/hop" {
        return Response::builder()
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("x-end-to-end", "kept")
            .body(Body::from("hop"))
            .expect("response");
    }
    let summary = serde_json::json!({
        "method": parts.method.as_str(),
        "target": target,
        "body_len": body.len(),
    });
    (
        [("content-type", "application/json"), ("x-upstream", "yes")],
        summary.to_string(),
    )
        .into_response()
}

/// A CA made for the test and a server certificate for 127.0.0.1 signed by it.
pub struct TestCa {
    pub ca_pem: String,
    cert_der: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &ca, &ca_key)
            .expect("server cert");
        Self {
            ca_pem: ca.pem(),
            cert_der: server.der().clone(),
            key_der: server_key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![self.cert_der.clone()], key)
        .expect("server config");
        Arc::new(config)
    }

    /// Writes the CA certificate to a PEM file in `dir`.
    pub fn write_ca(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca");
        path
    }
}

/// `[server]` on free ports with the contract's defaults.
pub fn server_config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        drain_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        keepalive_timeout: Duration::from_secs(75),
        header_read_timeout: Duration::from_secs(30),
        max_request_body: 4 << 30,
        max_header_bytes: 64 * 1024,
        workers: 1,
    }
}

/// An `[[upstream]]` with the contract's defaults.
pub fn upstream_config(name: &str, prefix: &str, url: &str) -> UpstreamConfig {
    UpstreamConfig::with_defaults(name, prefix, url::Url::parse(url).expect("url"))
}

/// A gateway on free ports, stopped when dropped or by `stop()`.
pub struct Gateway {
    pub proxy: SocketAddr,
    pub state: Arc<headroom::proxy::Proxy>,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Gateway {
    pub async fn start(upstreams: Vec<UpstreamConfig>) -> Self {
        Self::start_with(server_config(), upstreams).await
    }

    pub async fn start_with(server: ServerConfig, upstreams: Vec<UpstreamConfig>) -> Self {
        Self::start_full(server, upstreams, None).await
    }

    /// A gateway whose admin API accepts `token`.
    pub async fn start_with_token(upstreams: Vec<UpstreamConfig>, token: &str) -> Self {
        Self::start_full(server_config(), upstreams, Some(token.to_owned())).await
    }

    async fn start_full(
        server: ServerConfig,
        upstreams: Vec<UpstreamConfig>,
        token: Option<String>,
    ) -> Self {
        let config = Config {
            server,
            upstreams,
            store: None,
        };
        Self::start_config(config, token).await
    }

    /// A gateway running `config` (with its `[store]`, if any).
    pub async fn start_config(config: Config, token: Option<String>) -> Self {
        let gateway = headroom::server::Gateway::bind(config)
            .await
            .expect("gateway binds")
            .with_admin_token(token);
        let proxy = gateway.proxy_addr().expect("addr");
        let admin = gateway.admin_addr().expect("addr");
        let state = Arc::clone(gateway.proxy());
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        Self {
            proxy,
            state,
            admin,
            stop: Some(stop),
            done: Some(done),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// Requests waiting in `upstream`'s queue.
    pub fn queue_depth(&self, upstream: &str) -> usize {
        self.state
            .router()
            .by_name(upstream)
            .expect("upstream")
            .scheduler()
            .queue_depth()
    }

    /// Waits (yielding, no sleeping) until `upstream`'s queue holds `depth` requests.
    pub async fn wait_for_queue(&self, upstream: &str, depth: usize) {
        while self.queue_depth(upstream) != depth {
            tokio::task::yield_now().await;
        }
    }

    /// Starts the graceful shutdown and waits for it to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.done.take().expect("running").await.expect("join")
    }
}

/// Whether `check` comes true within `tries` looks, 10 ms apart (for what another process or
/// thread does on its own time).
pub async fn eventually<F, Fut>(tries: usize, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..tries {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// The admin listener's `/metrics` text (`admin`: its address, `127.0.0.1:port`).
pub async fn metrics_text(admin: impl std::fmt::Display) -> String {
    client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// A supplier simulator on a free port: `limit` per 2 s window (0: no quota), `fail_rate`
/// of 5xx, seeded dice.
pub async fn simulator(
    convention: headroom::sim::Convention,
    limit: u32,
    fail_rate: f64,
) -> headroom::sim::SimHandle {
    headroom::sim::start(headroom::sim::SimArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        limit,
        window: Duration::from_secs(2),
        convention,
        fail_rate,
        seed: Some(7),
        ..headroom::sim::SimArgs::default()
    })
    .await
    .expect("simulator starts")
}

/// A reqwest client that neither follows redirects nor uses a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

/// Sends raw bytes on a new connection and returns everything the server answered until it
/// closed the connection (or the first response, when `Connection: close` was sent).
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts a Headroom error response: its status and JSON `error` code; returns the body.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status);
    let body = error_body(response).await;
    assert_eq!(body["error"], code, "{body}");
    body
}

/// The JSON error body of a Headroom error response.
pub async fn error_body(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("")),
        Some("application/json")
    );
    response.json().await.expect("JSON error body")
}

/// Asserts that a raw HTTP answer has `status` and Headroom's JSON error `code`.
pub fn assert_refused(answer: &str, status: u16, code: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{answer}"
    );
    assert!(
        answer.contains(&format!("\"error\":\"{code}\"")),
        "{answer}"
    );
}

/// Awaits requests to `/hold` and asserts each completed once released.
pub async fn assert_all_released(
    requests: Vec<tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>>,
) {
    for request in requests {
        let response = request
            .await
            .expect("join")
            .expect("in-flight request completes");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "released");
    }
}

/// `requests` GETs from `clients` concurrent pollers, poller `c` on `urls[c % urls.len()]`;
/// every status (0: no response), in no particular order.
pub async fn load_spread(urls: &[String], clients: usize, requests: usize) -> Vec<u16> {
    let http = client();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut pollers = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (http, next, url) = (http.clone(), next.clone(), urls[c % urls.len()].clone());
        pollers.spawn(async move {
            let mut statuses = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < requests {
                let status = http
                    .get(&url)
                    .timeout(Duration::from_secs(90))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                statuses.push(status);
            }
            statuses
        });
    }
    let mut all = Vec::new();
    while let Some(statuses) = pollers.join_next().await {
        all.extend(statuses.expect("poller"));
    }
    all
}

/// A free TCP port on 127.0.0.1 (the OS picks it; closed again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The real binary on `config` (a temporary file, returned to keep it alive), with
/// `RUST_LOG=info`, stdout piped, stderr dropped, killed when the child is dropped.
pub fn spawn_headroom(config: &str) -> (tokio::process::Child, tempfile::NamedTempFile) {
    spawn_with_config(config, |path| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_headroom"));
        command.arg("--config").arg(path);
        command
    })
}

/// [`spawn_headroom`] from a shell that first runs `setup` (e.g. `ulimit -Sn 128 &&`), then
/// becomes Headroom (same process).
pub fn spawn_headroom_after(
    config: &str,
    setup: &str,
) -> (tokio::process::Child, tempfile::NamedTempFile) {
    spawn_with_config(config, |path| {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!(r#"{setup} exec "$0" --config "$1""#))
            .arg(env!("CARGO_BIN_EXE_headroom"))
            .arg(path);
        command
    })
}

fn spawn_with_config(
    config: &str,
    command: impl FnOnce(&std::path::Path) -> tokio::process::Command,
) -> (tokio::process::Child, tempfile::NamedTempFile) {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(config.as_bytes()).expect("write config");
    let child = command(file.path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn headroom");
    (child, file)
}
