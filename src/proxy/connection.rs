//! One client connection: hyper serves it while a request is under way, and between requests
//! it is parked, holding its socket and little else.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for a connection's whole life,
//! idle or not (measured: 10,000 idle keep-alive connections held 150 MiB, where nginx holds
//! 6 MiB). nginx hands its buffers back when a connection goes idle between requests
//! (`ngx_http_set_keepalive`); this does the same with hyper's public API. Once hyper waits
//! for a next request head with nothing of it read, and its last response is written whole
//! ([`ReadEnd::idle`]), the connection is taken back: `graceful_shutdown` on an idle hyper
//! connection ends it without a byte written, and `poll_without_shutdown` leaves the socket
//! open. The socket then waits to be readable (no buffer), for at most
//! `server.keepalive_timeout`, and a new hyper connection serves the next request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::proxy::idle::{Deadline, ReadEnd, SharedStream, WriteStallGuard};
use crate::proxy::Proxy;
use axum::body::Body;

/// A client connection's socket as hyper sees it.
pub type ClientIo = WriteStallGuard<SharedStream>;

/// The proxy as hyper's service for one client connection.
#[derive(Clone)]
pub struct ProxyService {
    proxy: Arc<Proxy>,
    peer: SocketAddr,
    read_end: Arc<ReadEnd>,
}

impl ProxyService {
    /// Serves the requests of `peer`, whose connection's end is watched by `read_end`.
    pub fn new(proxy: Arc<Proxy>, peer: SocketAddr, read_end: Arc<ReadEnd>) -> Self {
        Self {
            proxy,
            peer,
            read_end,
        }
    }
}

/// A request's future is boxed: hyper keeps its slot for the whole life of a connection, so
/// an unboxed one (several KiB) would stay allocated on every connection.
type Handling = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Handling;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let proxy = Arc::clone(&self.proxy);
        let read_end = Arc::clone(&self.read_end);
        let peer = self.peer;
        Box::pin(async move { Ok(proxy.handle(peer, request, read_end).await) })
    }
}

type Hyper = http1::Connection<TokioIo<ClientIo>, ProxyService>;

/// How long a connection stays idle in hyper before it is parked (at most
/// `server.keepalive_timeout`). Parking costs a new hyper connection for the next request
/// (measured: parking at once made a busy keep-alive connection about 9% slower), so a
/// connection is parked at its first idle moment once this long has passed since it was
/// first idle in hyper: a busy one about once a period, one left idle within a period.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// One in a count of connections (open on a worker, parked), taken off when dropped.
struct Counted(IntGauge);

impl Counted {
    /// Counts one more in `gauge`.
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A connection taken back from hyper while idle.
struct Parked {
    io: ClientIo,
    /// Bytes hyper read and did not use (in a buffer of their own).
    unread: Bytes,
    service: ProxyService,
    /// How long the connection has been idle.
    idle_for: Duration,
}

/// What a worker gives each of its client connections.
#[derive(Clone)]
pub struct Settings {
    /// hyper's settings.
    pub http: http1::Builder,
    /// `server.keepalive_timeout`.
    pub keepalive: Duration,
    /// Turns true when the worker drains: an idle connection then closes at once, a busy one
    /// after its response.
    pub closing: watch::Receiver<bool>,
    /// `headroom_client_connections_idle`.
    pub parked: IntGauge,
}

/// Serves one client connection until it closes, the keep-alive time passes with no request,
/// or the worker drains. `open` counted the connection in, and is taken one off at the end.
pub async fn serve(mut settings: Settings, io: ClientIo, service: ProxyService, open: IntGauge) {
    // Counted in by whoever gave this worker the connection.
    let _open = Counted(open);
    let read_end = io.read_end();
    let keepalive = settings.keepalive;
    let park_after = keepalive.min(PARK_AFTER);
    // A new connection waits for its first bytes as a parked one does.
    let mut parked = Parked {
        io,
        unread: Bytes::new(),
        service,
        idle_for: Duration::ZERO,
    };
    loop {
        let wait = keepalive.saturating_sub(parked.idle_for);
        if parked.unread.is_empty() && !park(parked.io.get_ref(), wait, &mut settings).await {
            return;
        }
        let Parked {
            mut io,
            unread,
            service,
            ..
        } = parked;
        io.replay(unread);
        // Boxed: only a connection being served holds hyper's state and buffers.
        let hyper = Box::new(settings.http.serve_connection(TokioIo::new(io), service));
        // `None`: the connection is over (the client closed, `Connection: close`, an error,
        // a drain).
        let Some(next) = run(hyper, &read_end, park_after, &mut settings.closing).await else {
            return;
        };
        parked = next;
    }
}

/// Waits for the client's next bytes, for at most `keepalive`; false when the connection
/// should close instead (the time passed, the worker drains, or the socket failed).
async fn park(socket: &SharedStream, keepalive: Duration, settings: &mut Settings) -> bool {
    let _parked = Counted::new(settings.parked.clone());
    tokio::select! {
        biased;
        _ = settings.closing.wait_for(|closing| *closing) => false,
        readable = tokio::time::timeout(keepalive, socket.readable()) => {
            matches!(readable, Ok(Ok(())))
        }
    }
}

/// Lets hyper serve until the connection is idle past `park_after` (then parks it) or over.
async fn run(
    mut hyper: Box<Hyper>,
    read_end: &ReadEnd,
    park_after: Duration,
    closing: &mut watch::Receiver<bool>,
) -> Option<Parked> {
    let mut parking = false;
    let mut draining = false;
    let mut park_at = Deadline::default();
    // The idle time being watched: since when, after how many requests.
    let mut idle_since: Option<(usize, Instant)> = None;
    let drain = closing.wait_for(|closing| *closing);
    tokio::pin!(drain);
    let ended = std::future::poll_fn(|cx| {
        if !draining && drain.as_mut().poll(cx).is_ready() {
            // An idle connection closes now; a busy one after its response.
            draining = true;
            Pin::new(&mut *hyper).graceful_shutdown();
        }
        loop {
            // Ended by hyper, a connection is flushed and its write side closed (`poll`);
            // parked, it is kept open, flushed already (`ReadEnd::idle`).
            let polled = if parking {
                hyper.poll_without_shutdown(cx)
            } else {
                Pin::new(&mut *hyper).poll(cx)
            };
            match polled {
                Poll::Ready(ended) => return Poll::Ready(ended),
                Poll::Pending if !parking && !draining && read_end.idle() => {
                    let requests = read_end.requests_started();
                    let since = match idle_since {
                        Some((after, since)) if after == requests => since,
                        _ => idle_since.insert((requests, Instant::now())).1,
                    };
                    if !park_at.passed(cx, || since + park_after) {
                        return Poll::Pending;
                    }
                    parking = true;
                    Pin::new(&mut *hyper).graceful_shutdown();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    match ended {
        Ok(()) if parking && !draining => {
            let parts = hyper.into_parts();
            Some(Parked {
                io: parts.io.into_inner(),
                // Copied: it shares hyper's whole read buffer, which parking gives back.
                unread: Bytes::copy_from_slice(&parts.read_buf),
                service: parts.service,
                idle_for: idle_since.map_or(Duration::ZERO, |(_, since)| since.elapsed()),
            })
        }
        Ok(()) => None,
        Err(err) => {
            tracing::debug!(error = %err, "client connection ended with an error");
            None
        }
    }
}
