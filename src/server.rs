//! The gateway process: bind both listeners, serve until told to stop, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use prometheus::IntGauge;

use crate::proxy::connection::{self, ProxyService};
use crate::proxy::idle::{ReadEnd, SharedStream, WriteStallGuard};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, Router};
use crate::store::Fleet;
use crate::upstream::{self, Upstream};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A gateway with both listeners bound, ready to serve.
pub struct Gateway {
    admin_token: Option<String>,
    proxy: Arc<Proxy>,
    proxy_listener: TcpListener,
    admin_listener: TcpListener,
    drain_timeout: Duration,
    timeouts: ConnectionTimeouts,
    max_header_bytes: usize,
    workers: usize,
}

/// The limits on one client connection's pace.
#[derive(Clone)]
struct ConnectionTimeouts {
    /// `server.idle_timeout`: a client that accepts nothing of its response.
    idle: Duration,
    /// `server.keepalive_timeout`: an idle connection between requests.
    keepalive: Duration,
    /// `server.header_read_timeout`: a request head, from its first byte.
    header_read: Duration,
    /// `headroom_header_timeouts_total`.
    header_timeouts: prometheus::IntCounter,
}

impl Gateway {
    /// Builds every upstream and binds `listen` and `admin_listen` (port 0 picks a free port).
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        let roots = upstream::client::system_roots();
        let workers = config.server.worker_count();
        let metrics = Arc::new(Metrics::new().map_err(std::io::Error::other)?);
        let fleet = match config.store {
            Some(store) => {
                let fleet = Fleet::new(store, Arc::clone(&metrics));
                fleet.start().await;
                Some(fleet)
            }
            None => None,
        };
        let upstreams = config
            .upstreams
            .into_iter()
            .map(|u| {
                Upstream::with_fleet(u, &roots, Arc::clone(&metrics), fleet.as_ref(), workers)
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        if let Some(fleet) = &fleet {
            for upstream in &upstreams {
                fleet.register(upstream);
                let ttl = fleet.config().reservation_ttl;
                if upstream.config().timeout >= ttl {
                    tracing::warn!(
                        upstream = upstream.name(),
                        timeout = %humantime::format_duration(upstream.config().timeout),
                        reservation_ttl = %humantime::format_duration(ttl),
                        "store.reservation_ttl is not above this upstream's timeout: a request still in flight when its reservation expires is no longer counted by the fleet"
                    );
                }
            }
        }
        let header_timeouts = metrics.header_timeouts.clone();
        let proxy = Arc::new(Proxy::new(Router::new(upstreams), &config.server, metrics));
        let admin_token = std::env::var(crate::admin::TOKEN_ENV)
            .ok()
            .filter(|token| !token.is_empty());
        let proxy_listener = bind(config.server.listen, "server.listen").await?;
        let admin_listener = bind(config.server.admin_listen, "server.admin_listen").await?;
        Ok(Self {
            admin_token,
            proxy,
            proxy_listener,
            admin_listener,
            drain_timeout: config.server.drain_timeout,
            timeouts: ConnectionTimeouts {
                idle: config.server.idle_timeout,
                keepalive: config.server.keepalive_timeout,
                header_read: config.server.header_read_timeout,
                header_timeouts,
            },
            max_header_bytes: config.server.max_header_bytes,
            workers,
        })
    }

    /// Replaces the admin token read from `HEADROOM_ADMIN_TOKEN` (for embedding and tests).
    #[must_use]
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token;
        self
    }

    /// The proxy: routing table and upstream state.
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// The proxy listener's address.
    pub fn proxy_addr(&self) -> std::io::Result<SocketAddr> {
        self.proxy_listener.local_addr()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin_listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish for at most `server.drain_timeout`.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tracing::info!(
            proxy = %self.proxy_addr()?,
            admin = %self.admin_addr()?,
            upstreams = self.proxy.router().upstreams().count(),
            "headroom listening"
        );

        let mut admin_stop = stop_rx.clone();
        let admin = axum::serve(
            self.admin_listener,
            crate::admin::router(Arc::clone(&self.proxy), self.admin_token),
        )
        .with_graceful_shutdown(async move {
            stopped(&mut admin_stop).await;
        });
        let admin = tokio::spawn(async move { admin.await });

        // Worker 0 accepts and hands each connection to the least busy worker (by open
        // connections): a shared listening socket lets whichever thread wakes first take
        // every connection of a burst, and one core then serves them all.
        let parked = self.proxy.metrics().idle_client_connections.clone();
        let serving = Serving {
            proxy: self.proxy,
            http: connection_builder(self.max_header_bytes, self.timeouts.keepalive),
            timeouts: self.timeouts,
            drain_timeout: self.drain_timeout,
            parked,
        };
        let connections = serving.proxy.metrics().client_connections.clone();
        let mut hand_offs = Vec::with_capacity(self.workers);
        let mut workers = Vec::with_capacity(self.workers);
        for index in 0..self.workers.max(1) {
            let load = connections.with_label_values(&[&index.to_string()]);
            if index == 0 {
                hand_offs.push(HandOff { to: None, load });
                continue;
            }
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            hand_offs.push(HandOff {
                to: Some(tx),
                load: load.clone(),
            });
            let serving = serving.clone();
            workers.push(crate::workers::spawn(index, move || {
                serving.run_worker(rx, load)
            })?);
        }
        let proxy = tokio::spawn(serving.run_acceptor(self.proxy_listener, hand_offs, stop_rx));

        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = proxy.await;
        for worker in workers {
            let _ = worker.await;
        }
        let _ = tokio::time::timeout(self.drain_timeout, admin).await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Binds and runs the gateway until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    Gateway::bind(config).await?.serve(shutdown).await
}

async fn bind(addr: SocketAddr, key: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("cannot listen on {addr} ({key}): {err}"),
        )
    })
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Everything a worker needs to serve client connections.
#[derive(Clone)]
struct Serving {
    proxy: Arc<Proxy>,
    http: http1::Builder,
    timeouts: ConnectionTimeouts,
    drain_timeout: Duration,
    /// `headroom_client_connections_idle`.
    parked: IntGauge,
}

/// Hands `stream` to another worker through `to`, counted in its `load`. Gives the stream
/// back when that worker is gone (a bug), for worker 0 to serve.
fn hand_over(
    to: &HandOffSender,
    load: &IntGauge,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<TcpStream> {
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(error = %err, "cannot hand a connection over");
            return None;
        }
    };
    load.inc();
    let Err(returned) = to.send((stream, peer)) else {
        return None;
    };
    load.dec();
    tracing::error!("a worker is gone; serving its connection on worker 0");
    TcpStream::from_std(returned.0 .0)
        .map_err(|err| tracing::warn!(error = %err, "cannot serve a connection"))
        .ok()
}

/// Where worker 0 sends a connection for another worker, with the client's address.
type HandOffSender = tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>;

/// The way to a worker, and how many connections it holds.
struct HandOff {
    /// `None` for worker 0 itself.
    to: Option<HandOffSender>,
    load: IntGauge,
}

fn connection_builder(max_header_bytes: usize, keepalive: Duration) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // The keep-alive time is timed while a connection is parked between requests
        // (`proxy::connection`), a head from its first byte by the connection's guard
        // (`server.header_read_timeout`). hyper's own timer (from the end of a response to the
        // end of the next head) is kept at the keep-alive time too, as a backstop for a
        // connection left idle in hyper.
        .header_read_timeout(keepalive)
        .keep_alive(true)
        // A client that half-closes after its request (scripts, netcat, some HTTP/1.0
        // clients) still gets its answer (RFC 9112 9.6); the connection closes after it.
        .half_close(true)
        // Room above the configured limit, so oversized heads reach the handler and get the
        // JSON 431 instead of hyper's bare one.
        .max_buf_size((max_header_bytes * 2).max(8 * 1024))
        .max_headers(500);
    http
}

impl Serving {
    /// Worker 0: accepts until stopped, serving each connection itself or handing it to the
    /// worker with the fewest open connections (`workers[0]` is worker 0 itself); then
    /// drains its own connections.
    async fn run_acceptor(
        self,
        listener: TcpListener,
        workers: Vec<HandOff>,
        mut stop: watch::Receiver<bool>,
    ) {
        let own = workers[0].load.clone();
        let (closing, _) = watch::channel(false);
        loop {
            let (stream, peer) = tokio::select! {
                // Once stopped, nothing more is accepted, even when a connection is waiting.
                biased;
                () = stopped(&mut stop) => break,
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            let least = workers
                .iter()
                .min_by_key(|worker| worker.load.get())
                .unwrap_or(&workers[0]);
            let kept = match &least.to {
                None => Some(stream),
                Some(to) => hand_over(to, &least.load, stream, peer),
            };
            if let Some(stream) = kept {
                own.inc();
                self.serve(stream, peer, &closing, &own);
            }
        }
        drop(listener);
        drop(workers);
        self.drain(closing).await;
    }

    /// Workers 1 and up: serve the connections worker 0 hands over, until it stops handing
    /// (it drops its end once it stopped accepting, so every connection it accepted is
    /// served), then drain.
    async fn run_worker(
        self,
        mut handed: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
        load: IntGauge,
    ) {
        let (closing, _) = watch::channel(false);
        while let Some((stream, peer)) = handed.recv().await {
            // Counted in `load` by worker 0 when it handed the connection over.
            match TcpStream::from_std(stream) {
                Ok(stream) => self.serve(stream, peer, &closing, &load),
                Err(err) => {
                    load.dec();
                    tracing::warn!(error = %err, "cannot take a handed-over connection");
                }
            }
        }
        self.drain(closing).await;
    }

    /// Serves one client connection on this worker; it was counted in `load` when it was
    /// given to this worker, and is taken off when it closes.
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        closing: &watch::Sender<bool>,
        load: &IntGauge,
    ) {
        let _ = stream.set_nodelay(true);
        let timeouts = &self.timeouts;
        let stream = SharedStream::new(stream);
        let read_end = Arc::new(ReadEnd::watching(&stream));
        let service = ProxyService::new(Arc::clone(&self.proxy), peer, Arc::clone(&read_end));
        let io = WriteStallGuard::new(stream, timeouts.idle, read_end)
            .with_header_read_timeout(timeouts.header_read, timeouts.header_timeouts.clone());
        let settings = connection::Settings {
            http: self.http.clone(),
            keepalive: timeouts.keepalive,
            closing: closing.subscribe(),
            parked: self.parked.clone(),
        };
        tokio::spawn(connection::serve(settings, io, service, load.clone()));
    }

    /// After the listener closed: waiting requests are answered before the drain ends, and
    /// this worker's connections get at most `drain_timeout` to finish.
    async fn drain(&self, closing: watch::Sender<bool>) {
        let drain_timeout = self.drain_timeout;
        self.proxy
            .drain()
            .begin(tokio::time::Instant::now() + drain_timeout);
        tracing::info!(
            ?drain_timeout,
            worker = crate::workers::current(),
            "stopped accepting; draining in-flight requests"
        );
        tokio::select! {
            () = async {
                closing.send_replace(true);
                closing.closed().await;
            } => tracing::debug!("all client connections closed"),
            () = tokio::time::sleep(drain_timeout) => {
                tracing::warn!(?drain_timeout, "drain timeout reached; closing the remaining connections");
            }
        }
    }
}
