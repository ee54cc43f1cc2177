//! The options of `headroom simulate`, also the configuration of [`super::start`].

use std::net::{Ipv4Addr, SocketAddr};
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

/// Longest accepted `--window`: keeps every reset an epoch-second value below 1e11 and every
/// HTTP-date before the year 9999.
pub const MAX_WINDOW: Duration = Duration::from_secs(100_000_000_000);

/// Shortest accepted `--window` (window starts are reported in milliseconds).
pub const MIN_WINDOW: Duration = Duration::from_millis(1);

/// `headroom simulate` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Requests allowed per window; 0 means no quota at all (never 429, no rate-limit
    /// headers), handy for benchmarks.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Window length (fixed windows aligned to multiples of it since the Unix epoch), e.g.
    /// `2s`, `1m`; from 1ms to 1e11 s.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// Header convention.
    #[arg(long, value_enum, default_value_t = Convention::Github)]
    pub convention: Convention,
    /// Share of admitted requests answered with a 500/502/503 (0.0..=1.0); they still count
    /// against the quota and carry no Retry-After.
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub fail_rate: f64,
    /// Added delay before each response, e.g. `50ms`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// Share of requests whose TCP connection is reset (RST) instead of answered (0.0..=1.0);
    /// they do not count against the quota.
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub reset_rate: f64,
    /// Seed of the fault dice, for reproducible runs (random when absent, logged at start).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Default for SimArgs {
    /// The command-line defaults, except `listen`, which is `127.0.0.1:0` (any free port), the
    /// usual choice in-process.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            limit: 20,
            window: Duration::from_secs(2),
            convention: Convention::Github,
            fail_rate: 0.0,
            latency: Duration::ZERO,
            reset_rate: 0.0,
            seed: None,
        }
    }
}

impl SimArgs {
    /// Checks the values clap cannot check on its own (and those of in-process callers).
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&self.window) {
            problems.push(format!(
                "window: {:?} is outside {MIN_WINDOW:?}..={}s",
                self.window,
                MAX_WINDOW.as_secs()
            ));
        }
        for (key, value) in [
            ("fail_rate", self.fail_rate),
            ("reset_rate", self.reset_rate),
        ] {
            if !is_share(value) {
                problems.push(format!("{key}: {value} is not within 0.0..=1.0"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn is_share(value: f64) -> bool {
    (0.0..=1.0).contains(&value)
}

/// Parses a share of requests, `0.0..=1.0`.
fn parse_share(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|err| format!("`{text}` is not a number: {err}"))?;
    if is_share(value) {
        Ok(value)
    } else {
        Err(format!("{value} is not within 0.0..=1.0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_checked() {
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert_eq!(parse_share("1"), Ok(1.0));
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("-0.1").is_err());
        assert!(parse_share("NaN").is_err());
        assert!(parse_share("x").is_err());
    }

    #[test]
    fn validate_reports_every_problem() {
        assert_eq!(SimArgs::default().validate(), Ok(()));
        let args = SimArgs {
            window: Duration::ZERO,
            fail_rate: 2.0,
            reset_rate: f64::NAN,
            ..SimArgs::default()
        };
        let err = args.validate().err().unwrap_or_default();
        assert!(err.contains("window"), "{err}");
        assert!(err.contains("fail_rate"), "{err}");
        assert!(err.contains("reset_rate"), "{err}");
    }
}
