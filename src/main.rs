//! The `headroom` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const DEFAULT_CONFIG: &str = "config/headroom.toml";

/// Headroom: keeps data-ingestion workers inside their suppliers' API quotas.
#[derive(Debug, Parser)]
#[command(name = "headroom", version, about)]
struct Cli {
    /// Configuration file for the gateway (default: config/headroom.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default when no subcommand is given).
    Run {
        /// Configuration file (default: config/headroom.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file: exit 0, or print every problem and exit 2.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Start a simulated supplier and the gateway in front of it, send a burst, report.
    Demo,
    /// Run the supplier simulator on its own.
    Simulate(headroom::sim::SimArgs),
}

fn main() -> ExitCode {
    return_memory();
    let cli = Cli::parse();
    // The gateway's own thread is its worker 0 (see `headroom::workers`): a single-threaded
    // runtime; the other workers start their own. The simulator and the demo's clients use a
    // multi-threaded one.
    let gateway = matches!(cli.command, None | Some(Command::Run { .. }));
    let runtime = if gateway {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("headroom: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        None => runtime.block_on(run_gateway(cli.config)),
        Some(Command::Run { config }) => runtime.block_on(run_gateway(config.or(cli.config))),
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::Demo) => {
            headroom::logging::init_quiet();
            report(
                runtime
                    .block_on(headroom::demo::run())
                    .map_err(anyhow::Error::from),
            )
        }
        Some(Command::Simulate(args)) => {
            headroom::logging::init();
            report(
                runtime
                    .block_on(headroom::sim::run(args))
                    .map_err(anyhow::Error::from),
            )
        }
    };
    // Every queued log line is written before the process ends.
    headroom::logging::flush();
    code
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match headroom::config::load(file) {
        Ok(config) => {
            println!(
                "{}: ok ({} upstream{})",
                file.display(),
                config.upstreams.len(),
                if config.upstreams.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(2)
        }
    }
}

async fn run_gateway(config: Option<PathBuf>) -> ExitCode {
    let path = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = match headroom::config::load(&path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    headroom::logging::init();
    raise_descriptor_limit();
    report(
        headroom::server::run(config, headroom::shutdown::signal())
            .await
            .map_err(anyhow::Error::from),
    )
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("headroom: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// jemalloc rather than glibc's malloc: the request path allocates and frees many small
/// buffers, and after a burst (thousands of waiting requests or idle connections) glibc's
/// arenas keep what was freed. jemalloc's background thread hands unused pages back to the
/// system within seconds, with or without further traffic (see [`return_memory`]).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Starts jemalloc's background thread, which gives freed pages back to the system after
/// `dirty_decay_ms` (10 s) even when nothing else allocates: RSS comes back down after a
/// burst, not only at the next request.
fn return_memory() {
    // Where jemalloc has no background threads (not Linux), memory comes back at the next
    // allocations instead; nothing to report.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
}

/// Raises the soft limit on open descriptors to the hard one (as Go's runtime and nginx's
/// `worker_rlimit_nofile` do): each client connection holds one, and a default soft limit of
/// 1024 (common in containers) would refuse connections long before memory runs out.
fn raise_descriptor_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open descriptor limit (one per client connection)"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open descriptor limit"),
    }
}
