//! The socket side: the listener, one hyper HTTP/1.1 connection per socket, real TCP resets,
//! graceful shutdown; [`start`], [`SimHandle`] and [`run`].

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use super::clock::SimClock;
use super::service::{Reply, Sim};
use super::stats::Stats;
use super::SimArgs;

/// Pending connections the kernel may queue (benchmarks open many at once).
const BACKLOG: u32 = 1024;
/// How long [`SimHandle::shutdown`] lets open connections finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after an accept error that is not about one connection (e.g. out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A running simulator. Dropping it stops the simulator too (without waiting), like
/// [`SimHandle::shutdown`].
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SimHandle {
    /// The bound address (the real port when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The seed of the fault dice (the given `--seed`, or the random one drawn at start).
    pub fn seed(&self) -> u64 {
        self.sim.seed()
    }

    /// A snapshot of the counters, as `GET /__stats` serves it.
    pub fn stats(&self) -> Stats {
        self.sim.stats()
    }

    /// Zeroes the counters, as `POST /__stats/reset` does; the quota is untouched.
    pub fn reset_stats(&self) {
        self.sim.reset_stats();
    }

    /// Changes the quota's limit from the next window on (a supplier tightening its quota).
    pub fn set_limit(&self, limit: u32) {
        self.sim.set_limit(limit);
    }

    /// Stops accepting, lets open connections finish their current request (closing idle
    /// keep-alive ones at once) for up to [`DRAIN_TIMEOUT`], then aborts the rest.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "simulator accept loop ended abnormally");
        }
    }
}

/// Binds `args.listen` and serves in the background until the handle is shut down or dropped.
/// Must be called inside a tokio runtime. Fails on invalid `args` or when binding fails.
pub async fn start(args: SimArgs) -> io::Result<SimHandle> {
    args.validate()
        .map_err(|problems| io::Error::new(io::ErrorKind::InvalidInput, problems))?;
    let listener = bind(args.listen)?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim::new(&args, SimClock::from_wall_clock()));
    let (shutdown, stop) = watch::channel(false);
    let resettable = args.reset_rate > 0.0;
    let task = tokio::spawn(accept_loop(listener, Arc::clone(&sim), stop, resettable));
    Ok(SimHandle {
        addr,
        sim,
        shutdown,
        task,
    })
}

/// Runs the simulator until SIGINT/SIGTERM, then shuts it down gracefully.
pub async fn run(args: SimArgs) -> io::Result<()> {
    // Installed before the address is announced, so a signal sent right after is handled.
    let mut signals = Signals::install()?;
    let handle = start(args.clone()).await?;
    announce(&args, &handle);
    signals.recv().await;
    tracing::info!("supplier simulator stopping");
    handle.shutdown().await;
    Ok(())
}

/// Logs the one start-up line (on stderr when no tracing subscriber is installed, since
/// scripts and tests read the address from it).
fn announce(args: &SimArgs, handle: &SimHandle) {
    use clap::ValueEnum;
    let convention = args.convention.to_possible_value().map_or_else(
        || format!("{:?}", args.convention),
        |v| v.get_name().to_owned(),
    );
    let quota = if args.limit == 0 {
        "no quota".to_owned()
    } else {
        format!(
            "limit {} per {}",
            args.limit,
            humantime::format_duration(args.window)
        )
    };
    let line = format!(
        "supplier simulator listening on {} ({quota}, convention {convention}, fail-rate {}, \
         latency {}, reset-rate {}, seed {})",
        handle.url(),
        args.fail_rate,
        humantime::format_duration(args.latency),
        args.reset_rate,
        handle.seed(),
    );
    if tracing::dispatcher::has_been_set() {
        tracing::info!(addr = %handle.addr(), "{line}");
    } else {
        eprintln!("{line}");
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept_loop(
    listener: TcpListener,
    sim: Arc<Sim>,
    mut stop: watch::Receiver<bool>,
    resettable: bool,
) {
    let mut connections = JoinSet::new();
    let for_connections = stop.clone();
    loop {
        tokio::select! {
            // A stop request, or the handle dropped.
            () = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve(
                        stream,
                        Arc::clone(&sim),
                        for_connections.clone(),
                        resettable,
                    ));
                }
                Err(err) if is_per_connection(&err) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "simulator cannot accept; pausing");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "simulator drain timed out; aborting connections"
        );
        connections.shutdown().await;
    }
}

/// Resolves once a stop is requested or the [`SimHandle`] is dropped.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender (the handle) is gone: stop as well.
    let _ = stop.wait_for(|&stop| stop).await;
}

fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Serves one connection until it ends, must be reset, or the simulator stops.
async fn serve(
    stream: TcpStream,
    sim: Arc<Sim>,
    mut stop: watch::Receiver<bool>,
    resettable: bool,
) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    // A second descriptor of the socket (only when resets are wanted): once hyper's is closed,
    // SO_LINGER 0 set through it makes the kernel send an RST instead of a FIN.
    let twin = if resettable {
        SockRef::from(&stream).try_clone().ok()
    } else {
        None
    };
    let reset = Arc::new(Notify::new());
    let service = {
        let reset = Arc::clone(&reset);
        service_fn(move |req| {
            let sim = Arc::clone(&sim);
            let reset = Arc::clone(&reset);
            async move {
                match sim.handle(req).await {
                    Reply::Respond(response) => Ok::<_, Infallible>(response),
                    Reply::Reset => {
                        reset.notify_one();
                        // Never answers: the connection task drops the connection first.
                        std::future::pending().await
                    }
                }
            }
        })
    };
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "simulator connection ended with an error");
                }
                return;
            }
            () = reset.notified() => {
                if let Some(twin) = &twin {
                    if let Err(err) = twin.set_linger(Some(Duration::ZERO)) {
                        tracing::debug!(error = %err, "cannot set SO_LINGER 0; closing normally");
                    }
                }
                // Returning drops `conn` and `twin`: the last close sends the RST.
                return;
            }
            () = stopped(&mut stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// SIGINT and SIGTERM, listened to from installation on.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
