//! The supplier simulator: an HTTP server with a quota, a rate-limit header convention and
//! injectable faults. It is the upstream for `headroom demo`, the tests and the benchmarks.

use std::net::SocketAddr;
use std::time::Duration;

/// How the simulator announces its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Convention {
    /// GitHub: `x-ratelimit-limit/remaining/used/reset` (epoch seconds) and `x-ratelimit-resource`.
    Github,
    /// `X-RateLimit-Limit/Remaining/Reset` with a delta-seconds reset.
    Delta,
    /// Latest IETF draft: `RateLimit-Policy: "default";q=N;w=W` and `RateLimit: "default";r=R;t=T`.
    Ietf,
    /// IETF draft -07: `RateLimit: limit=N, remaining=R, reset=T` and `RateLimit-Policy: N;w=W`.
    #[value(name = "ietf-07")]
    Ietf07,
    /// Discord: `X-RateLimit-Limit/Remaining/Reset` (epoch, decimals) and `Reset-After`, `Bucket`.
    Discord,
    /// Nothing on success; `Retry-After: <seconds>` on 429.
    RetryAfter,
    /// Nothing on success; `Retry-After: <HTTP-date>` on 429.
    RetryAfterDate,
}

/// `headroom simulate` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Requests allowed per window.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Window length (fixed window), e.g. `2s`, `1m`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// Header convention.
    #[arg(long, value_enum, default_value_t = Convention::Github)]
    pub convention: Convention,
    /// Share of requests answered with a 5xx (0.0..=1.0).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Added delay before each response, e.g. `50ms`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// Share of requests whose connection is reset instead of answered (0.0..=1.0).
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
}

/// Runs the simulator until SIGINT/SIGTERM.
pub async fn run(args: SimArgs) -> std::io::Result<()> {
    let _ = args;
    todo!("simulator")
}
