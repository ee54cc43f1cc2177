//! Configuration: the TOML file described in `CONTRACT.md`, its defaults and its validation.
//!
//! The structs here are what the rest of Headroom reads. Loading (`load`, `from_str`) reports
//! every problem at once, each with its key and the line and column where the file has them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod defaults;
mod document;
mod keys;
mod raw;
mod source;
mod syntax;
mod validate;

#[cfg(test)]
mod tests;

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`: listeners and process-wide limits.
    pub server: ServerConfig,
    /// `[[upstream]]`: one entry per supplier API.
    pub upstreams: Vec<UpstreamConfig>,
    /// `[store]`: optional shared quota state.
    pub store: Option<StoreConfig>,
}

/// `[server]`
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `listen`: the proxy listener (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `admin_listen`: `/healthz`, `/metrics`, `/admin/*` (default `127.0.0.1:9090`).
    pub admin_listen: SocketAddr,
    /// `drain_timeout`: on SIGTERM/SIGINT, how long in-flight requests may take (default 30s).
    pub drain_timeout: Duration,
    /// `idle_timeout`: how long a body may stall (a client sending its request body, a client
    /// reading its response, a supplier sending its response) before it is cut and its slot
    /// freed (default 60s).
    pub idle_timeout: Duration,
    /// `keepalive_timeout`: how long an idle client connection (between requests) is kept
    /// open (default 75s, as nginx).
    pub keepalive_timeout: Duration,
    /// `header_read_timeout`: how long a client may take to send a request head once its
    /// first byte came (default 30s); a slower one is cut off and counted.
    pub header_read_timeout: Duration,
    /// `max_request_body`: largest request body accepted, in bytes (default 4 GiB); beyond: 413.
    pub max_request_body: u64,
    /// `max_header_bytes`: largest request head (request line plus headers) accepted, in bytes
    /// (default 64 KiB); beyond: 431.
    pub max_header_bytes: usize,
    /// `workers`: threads that serve client connections, each with its own event loop and
    /// its own upstream connection pools (default 0: one per CPU core, as nginx's
    /// `worker_processes auto`).
    pub workers: usize,
}

impl ServerConfig {
    /// `workers` with 0 resolved to the number of CPU cores.
    #[must_use]
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

/// One `[[upstream]]`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `name`: `[a-z0-9_-]+`, unique; the label on every metric.
    pub name: String,
    /// `prefix`: requests whose path starts with it (on a segment boundary) go here.
    pub prefix: String,
    /// `url`: scheme, host, optional port and base path; no query, fragment or user info.
    pub url: url::Url,
    /// `max_concurrency`: requests in flight to this upstream at once (default 8).
    pub max_concurrency: usize,
    /// `connect_timeout` (default 5s).
    pub connect_timeout: Duration,
    /// `timeout`: per attempt, until the response headers arrive (default 30s).
    pub timeout: Duration,
    /// `ca_file`: PEM file of extra CA certificates trusted for this upstream (private CAs),
    /// in addition to the system roots. Relative paths are relative to the config file.
    pub ca_file: Option<PathBuf>,
    /// `rewrite_links`: rewrite `Location`, `Content-Location` and `Link` URLs that point at
    /// `url` to this upstream's `prefix` on Headroom, so pollers that follow pagination links
    /// stay behind Headroom (default true).
    pub rewrite_links: bool,
    /// `[upstream.limit]`: optional static ceiling.
    pub limit: Option<LimitConfig>,
    /// `[upstream.quota]`: how the quota the supplier announces is read and tracked.
    pub quota: QuotaConfig,
    /// `[upstream.queue]`
    pub queue: QueueConfig,
    /// `[upstream.retry]`
    pub retry: RetryConfig,
    /// `[upstream.breaker]`
    pub breaker: BreakerConfig,
}

/// `[upstream.limit]`: at most `requests` every `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// `requests` (> 0).
    pub requests: u32,
    /// `per` (> 0).
    pub per: Duration,
}

/// `[upstream.quota]`: how the quota the supplier announces in its responses is read and
/// tracked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaConfig {
    /// `reset_format`: how a numeric rate-limit reset header is read (default `"auto"`).
    pub reset_format: ResetFormat,
    /// `partition_by`: `"header:<Header-Name>"`, one quota per distinct value of that request
    /// header (e.g. one per API key). Default: none, one quota for the whole upstream.
    pub partition_by: Option<PartitionBy>,
    /// `probes`: requests sent before the first response shows how the supplier announces its
    /// quota, the conservative start (default 2, 1 to 1000).
    pub probes: u32,
    /// `max_partitions`: distinct partition keys tracked; beyond it the least recently used
    /// is forgotten (default 1000, 1 to 1000000).
    pub max_partitions: usize,
}

/// `reset_format` of `[upstream.quota]`: how a numeric rate-limit reset header
/// (`X-RateLimit-Reset` and the like) is read; the quota parser's own type.
/// How to read a numeric reset value (config `quota.reset_format`). Date strings (HTTP-date,
/// ISO 8601, JavaScript `Date.toString()`) are absolute whatever the format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetFormat {
    /// The convention's own definition where it has one (IETF `reset`/`t`: delta seconds),
    /// else by magnitude: below 1e9 delta seconds, 1e9..1e11 epoch seconds, from 1e11 epoch
    /// milliseconds.
    #[default]
    Auto,
    /// Always delta seconds.
    Delta,
    /// Always an epoch: seconds, or milliseconds from 1e11 (year 5138 in seconds).
    Epoch,
    /// Always delta milliseconds (`X-Rate-Limit-Reset: 600000`), which no magnitude rule can
    /// tell from delta seconds.
    DeltaMs,
}

/// `partition_by` of `[upstream.quota]`: what splits one upstream's quota into several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionBy {
    /// `"header:<Header-Name>"`: one quota per distinct value of this request header. The
    /// name is stored lowercase; never a hop-by-hop header nor `host`.
    Header(http::HeaderName),
}

/// `[upstream.queue]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// `max_depth`: waiting requests; beyond: 503 `queue_full` (default 1000).
    pub max_depth: usize,
    /// `max_wait`: beyond: 503 `queue_timeout` (default 30s).
    pub max_wait: Duration,
}

/// `[upstream.retry]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// `max_attempts`: attempts in total, first included (default 5, at least 1).
    pub max_attempts: u32,
    /// `base_delay` (default 200ms).
    pub base_delay: Duration,
    /// `max_delay`: also caps any Retry-After pause; an announced window reset is honoured as
    /// announced, bounded per request by `queue.max_wait` (default 30s).
    pub max_delay: Duration,
    /// `max_body`: request bodies up to this many bytes are buffered so that a retry can
    /// replay them; larger ones (or bodies of unknown length that turn out larger) are
    /// streamed and not retried. 0 never buffers (default 1 MiB, at most 1 GiB).
    pub max_body: u64,
}

/// `[upstream.breaker]`
///
/// Not `Eq`: `failure_rate` is a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// `failure_threshold`: consecutive failures that open the breaker (default 5).
    pub failure_threshold: u32,
    /// `open_for`: then half-open (default 30s).
    pub open_for: Duration,
    /// `failure_rate`: the breaker also opens when the share of failures among the calls of
    /// the last `window` is at least this, once there are `min_calls` of them; in (0, 1].
    /// Default: none, the failure-rate rule is off.
    pub failure_rate: Option<f64>,
    /// `window`: the sliding window of the failure-rate rule (default 60s).
    pub window: Duration,
    /// `min_calls`: calls needed in the `window` before the failure rate counts (default 20,
    /// 1 to 100000).
    pub min_calls: u32,
    /// `half_open_probes`: requests let through while half-open (default 1, 1 to 1000).
    pub half_open_probes: u32,
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `redis_url`: one URL, or several separated by commas (the seed nodes of a cluster).
    pub redis_url: String,
    /// The nodes of `redis_url`, one URL each.
    pub nodes: Vec<String>,
    /// `cluster`: speak the Redis Cluster protocol (default: when `redis_url` lists several
    /// nodes).
    pub cluster: bool,
    /// `key_prefix`: the start of every key and channel name (default `headroom`).
    pub key_prefix: String,
    /// `timeout`: longest wait for one Redis call before the replica paces alone (default
    /// 100ms).
    pub timeout: Duration,
    /// `reservation_ttl`: how long a reservation outlives a replica that died holding it
    /// (default 60s).
    pub reservation_ttl: Duration,
}

/// Every problem found in a configuration file.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct ConfigError {
    /// One entry per problem, in file order.
    pub problems: Vec<Problem>,
}

/// One problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, when the config came from one.
    pub file: Option<PathBuf>,
    /// Dotted key, e.g. `upstream[1].retry.max_delay`.
    pub key: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong, for a human.
    pub message: String,
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        if let Some((line, col)) = self.position {
            write!(f, "{line}:{col}: ")?;
        } else if self.file.is_some() {
            write!(f, " ")?;
        }
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// Reads and validates a configuration file.
///
/// A file that cannot be read gives one problem with the key `(file)` and the OS error.
/// Relative `ca_file` paths are resolved against the directory of `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => from_str(&text, Some(path)),
        Err(err) => Err(ConfigError {
            problems: vec![Problem {
                file: Some(path.to_path_buf()),
                key: "(file)".to_owned(),
                position: None,
                message: format!("cannot read the configuration file: {err}"),
            }],
        }),
    }
}

/// Parses and validates configuration text (`file` only labels the problems).
///
/// Relative `ca_file` paths are resolved against the directory of `file`, or against the
/// current directory when `file` is `None`.
///
/// ```
/// let text = "[server]\nlisten = \"nowhere\"\n\n[[upstream]]\nname = \"a\"\nlimt = 3\n";
/// let err = headroom::config::from_str(text, None).expect_err("four problems");
/// let found: Vec<_> = err.problems.iter().map(|p| (p.key.as_str(), p.position)).collect();
/// assert_eq!(
///     found,
///     [
///         ("server.listen", Some((2, 10))),
///         ("upstream[0].prefix", Some((4, 1))), // missing: at its `[[upstream]]`
///         ("upstream[0].url", Some((4, 1))),
///         ("upstream[0].limt", Some((6, 1))),
///     ]
/// );
/// ```
pub fn from_str(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let source = source::Source::new(text, file);
    let base_dir = file.and_then(Path::parent).unwrap_or_else(|| Path::new(""));
    let (config, problems) = document::check(&source, base_dir);
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError { problems }),
    }
}
