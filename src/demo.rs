//! `headroom demo`: a simulated supplier with a quota, Headroom in front of it, a burst of
//! concurrent pollers, and a short report. Everything runs in this process on free ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{self, Config};
use crate::server::Gateway;
use crate::sim::{self, Convention, SimArgs};

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

/// What the burst saw.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    rate_limited: usize,
    other: usize,
    errors: usize,
}

/// Runs the demo and prints its report.
pub async fn run() -> Result<(), DemoError> {
    let supplier = sim::start(SimArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        limit: QUOTA,
        window: WINDOW,
        convention: Convention::Github,
        ..SimArgs::default()
    })
    .await?;
    let config = demo_config(supplier.addr())?;
    let gateway = Gateway::bind(config).await?;
    let proxy = gateway.proxy_addr()?;
    let admin = gateway.admin_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(gateway.serve(async move {
        let _ = stopped.await;
    }));

    println!("Headroom demo");
    println!(
        "  simulated supplier  http://{} ({QUOTA} requests per {}s, GitHub-style headers)",
        supplier.addr(),
        WINDOW.as_secs()
    );
    println!("  Headroom proxy      http://{proxy}/supplier-a/...");
    println!("  admin               http://{admin}/healthz");
    println!();
    println!("Sending {BURST} requests from {POLLERS} concurrent pollers through Headroom...");

    let started = Instant::now();
    let tally = burst(&format!("http://{proxy}/supplier-a/records")).await?;
    let elapsed = started.elapsed();
    let stats = supplier.stats();

    println!();
    println!("  sent                {BURST}");
    println!("  succeeded (200)     {}", tally.ok);
    println!("  429 seen by pollers {}", tally.rate_limited);
    println!("  other / errors      {} / {}", tally.other, tally.errors);
    println!("  upstream 429s       {}", stats.rate_limited);
    println!("  time                {:.2}s", elapsed.as_secs_f64());
    println!();
    println!(
        "Headroom forwards and streams today; the quota engine (pacing, retries) is the next step,"
    );
    println!("so the supplier still answers 429 once the quota is spent.");

    let _ = stop.send(());
    let _ = serving.await;
    supplier.shutdown().await;
    Ok(())
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

async fn burst(url: &str) -> Result<Tally, DemoError> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let permits = Arc::new(Semaphore::new(POLLERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let client = client.clone();
        let permits = Arc::clone(&permits);
        let url = format!("{url}?page={i}");
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            client.get(url).send().await.map(|r| r.status().as_u16())
        });
    }
    let mut tally = Tally::default();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(200)) => tally.ok += 1,
            Ok(Ok(429)) => tally.rate_limited += 1,
            Ok(Ok(_)) => tally.other += 1,
            _ => tally.errors += 1,
        }
    }
    Ok(tally)
}
