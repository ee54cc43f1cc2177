//! The gateway process: bind both listeners, serve until told to stop, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::proxy::idle::{ReadEnd, WriteStallGuard};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
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
        let roots = upstream::system_roots();
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
                Upstream::with_fleet(u, &roots, Arc::clone(&metrics), fleet.as_ref()).map(Arc::new)
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

        let proxy = serve_proxy(
            self.proxy_listener,
            self.proxy,
            self.max_header_bytes,
            stop_rx,
            self.drain_timeout,
            self.timeouts,
        );
        let proxy = tokio::spawn(proxy);

        shutdown.await;
        let _ = stop_tx.send(true);
        let _ = proxy.await;
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

async fn serve_proxy(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    max_header_bytes: usize,
    mut stop: watch::Receiver<bool>,
    drain_timeout: Duration,
    timeouts: ConnectionTimeouts,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // hyper's timer runs from the end of a response to the end of the next head: the
        // idle keep-alive time. The head itself is timed from its first byte by the
        // connection's guard (`server.header_read_timeout`).
        .header_read_timeout(timeouts.keepalive)
        .keep_alive(true)
        // A client that half-closes after its request (scripts, netcat, some HTTP/1.0
        // clients) still gets its answer (RFC 9112 9.6); the connection closes after it.
        .half_close(true)
        // Room above the configured limit, so oversized heads reach the handler and get the
        // JSON 431 instead of hyper's bare one.
        .max_buf_size((max_header_bytes * 2).max(8 * 1024))
        .max_headers(500);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let read_end = Arc::new(ReadEnd::watching(&stream));
        let stream = WriteStallGuard::new(stream, timeouts.idle, Arc::clone(&read_end))
            .with_header_read_timeout(timeouts.header_read, timeouts.header_timeouts.clone());
        let service = service_fn(move |request| {
            let proxy = Arc::clone(&proxy);
            let read_end = Arc::clone(&read_end);
            async move { Ok::<_, std::convert::Infallible>(proxy.handle(peer, request, read_end).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %peer, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    proxy
        .drain()
        .begin(tokio::time::Instant::now() + drain_timeout);
    tracing::info!(
        ?drain_timeout,
        "stopped accepting; draining in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all client connections closed"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(?drain_timeout, "drain timeout reached; closing the remaining connections");
        }
    }
}
