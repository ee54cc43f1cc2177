//! `headroom demo`: a simulated supplier with a quota, a burst of pollers sent once straight
//! at it and once through Headroom, and the two side by side. Everything runs in this
//! process on free ports of 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{self, Config};
use crate::server::Gateway;
use crate::sim::{self, Convention, SimArgs, SimHandle};

/// The embedded demo configuration.
const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
/// Requests in the burst.
const BURST: usize = 60;
/// Pollers sending at once.
const POLLERS: usize = 16;
/// The simulated supplier's quota: `QUOTA` requests per `WINDOW`.
const QUOTA: u32 = 20;
const WINDOW: Duration = Duration::from_secs(2);

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded configuration is broken (a bug).
    #[error("embedded demo configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// A listener or socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What one burst saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    rate_limited: usize,
    other: usize,
    errors: usize,
    retries: u64,
    max_queue_ms: u64,
    elapsed: Duration,
    upstream_429s: u64,
}

/// Runs the demo and prints its report.
pub async fn run() -> Result<(), DemoError> {
    println!("Headroom demo: {BURST} requests from {POLLERS} concurrent pollers, a supplier allowing {QUOTA} requests per {}s (GitHub-style headers).", WINDOW.as_secs());
    println!();

    let direct_supplier = supplier().await?;
    println!(
        "1. Straight at the supplier ({}), no Headroom...",
        direct_supplier.url()
    );
    let direct = burst(
        &format!("{}/records", direct_supplier.url()),
        &direct_supplier,
    )
    .await?;
    direct_supplier.shutdown().await;

    let supplier = supplier().await?;
    let gateway = Gateway::bind(demo_config(supplier.addr())?).await?;
    let proxy = gateway.proxy_addr()?;
    let admin = gateway.admin_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.serve(async move {
        let _ = stopped.await;
    }));
    println!("2. The same pollers through Headroom (http://{proxy}/supplier-a/...)...");
    let through = burst(&format!("http://{proxy}/supplier-a/records"), &supplier).await?;

    let ideal = WINDOW.as_secs_f64() * (BURST as f64 / f64::from(QUOTA) - 1.0);
    println!();
    println!("                          straight   through Headroom");
    let row = |label: &str, a: String, b: String| println!("  {label:<24}{a:>8}   {b:>16}");
    row("sent", BURST.to_string(), BURST.to_string());
    row(
        "succeeded (200)",
        direct.ok.to_string(),
        through.ok.to_string(),
    );
    row(
        "429s seen by pollers",
        direct.rate_limited.to_string(),
        through.rate_limited.to_string(),
    );
    row(
        "other / errors",
        format!("{} / {}", direct.other, direct.errors),
        format!("{} / {}", through.other, through.errors),
    );
    row(
        "429s sent by supplier",
        direct.upstream_429s.to_string(),
        through.upstream_429s.to_string(),
    );
    row(
        "retries by Headroom",
        "-".into(),
        through.retries.to_string(),
    );
    row(
        "longest queue wait",
        "-".into(),
        format!("{} ms", through.max_queue_ms),
    );
    row(
        "time",
        format!("{:.1}s", direct.elapsed.as_secs_f64()),
        format!("{:.1}s", through.elapsed.as_secs_f64()),
    );
    row(
        "quota use",
        "-".into(),
        format!("{:.2}", (ideal / through.elapsed.as_secs_f64()).min(1.0)),
    );
    println!();
    println!("Quota use is the ideal time for {BURST} requests at {QUOTA} per {}s ({ideal:.0}s) over the time taken.", WINDOW.as_secs());
    println!("Headroom read the supplier's rate-limit headers, queued the burst and paced it to the quota.");
    println!();
    println!("Admin: http://{admin}/healthz   Config reference: README.md   Run it yourself: headroom --config config/headroom.toml");

    let _ = stop.send(());
    let _ = serving.await;
    supplier.shutdown().await;
    Ok(())
}

async fn supplier() -> Result<SimHandle, DemoError> {
    Ok(sim::start(SimArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        limit: QUOTA,
        window: WINDOW,
        convention: Convention::Github,
        ..SimArgs::default()
    })
    .await?)
}

/// The embedded config with free ports and the simulator as the upstream.
fn demo_config(supplier: SocketAddr) -> Result<Config, DemoError> {
    let mut config = config::from_str(DEMO_CONFIG, None)?;
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.admin_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    for upstream in &mut config.upstreams {
        let _ = upstream.url.set_port(Some(supplier.port()));
    }
    Ok(config)
}

async fn burst(url: &str, supplier: &SimHandle) -> Result<Tally, DemoError> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let permits = Arc::new(Semaphore::new(POLLERS));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..BURST {
        let client = client.clone();
        let permits = Arc::clone(&permits);
        let url = format!("{url}?page={i}");
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let response = client.get(url).send().await?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let (attempts, queue_ms) = (header("headroom-attempts"), header("headroom-queue-ms"));
            Ok::<_, reqwest::Error>((response.status().as_u16(), attempts, queue_ms))
        });
    }
    let mut tally = Tally::default();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok((status, attempts, queue_ms))) => {
                match status {
                    200 => tally.ok += 1,
                    429 => tally.rate_limited += 1,
                    _ => tally.other += 1,
                }
                tally.retries += attempts.unwrap_or(1).saturating_sub(1);
                tally.max_queue_ms = tally.max_queue_ms.max(queue_ms.unwrap_or(0));
            }
            _ => tally.errors += 1,
        }
    }
    tally.elapsed = started.elapsed();
    tally.upstream_429s = supplier.stats().rate_limited;
    Ok(tally)
}
