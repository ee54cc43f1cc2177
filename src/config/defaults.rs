//! Every default value of the configuration, in one place.
//!
//! A key left out of the file takes the value here; `config/headroom.toml` and the README's
//! configuration reference show the same values (a test keeps them in step).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::{
    BreakerConfig, Config, QueueConfig, QuotaConfig, ResetFormat, RetryConfig, ServerConfig,
};

/// `server.listen`
pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
/// `server.admin_listen`
pub const ADMIN_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));
/// `server.drain_timeout`
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// `server.keepalive_timeout`
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// `server.header_read_timeout`
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `server.idle_timeout`
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.max_request_body`: 4 GiB.
pub const MAX_REQUEST_BODY: u64 = 4 * 1024 * 1024 * 1024;
/// `server.max_header_bytes`: 64 KiB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// `upstream.rewrite_links`
pub const REWRITE_LINKS: bool = true;
/// `upstream.max_concurrency`
pub const MAX_CONCURRENCY: usize = 8;
/// `upstream.connect_timeout`
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `upstream.timeout`
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// `upstream.quota.reset_format`
pub const QUOTA_RESET_FORMAT: ResetFormat = ResetFormat::Auto;
/// `upstream.quota.probes`
pub const QUOTA_PROBES: u32 = 2;
/// `upstream.quota.max_partitions`
pub const QUOTA_MAX_PARTITIONS: usize = 1000;

/// `upstream.queue.max_depth`
pub const QUEUE_MAX_DEPTH: usize = 1000;
/// `upstream.queue.max_wait`
pub const QUEUE_MAX_WAIT: Duration = Duration::from_secs(30);

/// `upstream.retry.max_attempts`
pub const RETRY_MAX_ATTEMPTS: u32 = 5;
/// `upstream.retry.base_delay`
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(200);
/// `upstream.retry.max_delay`
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);
/// `upstream.retry.max_body`: 1 MiB.
pub const RETRY_MAX_BODY: u64 = 1024 * 1024;

/// `upstream.breaker.failure_threshold`
pub const BREAKER_FAILURE_THRESHOLD: u32 = 5;
/// `upstream.breaker.open_for`
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);
/// `upstream.breaker.window`
pub const BREAKER_WINDOW: Duration = Duration::from_secs(60);
/// `upstream.breaker.min_calls`
pub const BREAKER_MIN_CALLS: u32 = 20;
/// `upstream.breaker.half_open_probes`
pub const BREAKER_HALF_OPEN_PROBES: u32 = 1;

impl Default for Config {
    /// Default `[server]`, no upstream, no `[store]`.
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            upstreams: Vec::new(),
            store: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: LISTEN,
            admin_listen: ADMIN_LISTEN,
            drain_timeout: DRAIN_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            keepalive_timeout: KEEPALIVE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_request_body: MAX_REQUEST_BODY,
            max_header_bytes: MAX_HEADER_BYTES,
            workers: 0,
        }
    }
}

impl Default for QuotaConfig {
    /// No `partition_by`: one quota for the whole upstream.
    fn default() -> Self {
        QuotaConfig {
            reset_format: QUOTA_RESET_FORMAT,
            partition_by: None,
            probes: QUOTA_PROBES,
            max_partitions: QUOTA_MAX_PARTITIONS,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_depth: QUEUE_MAX_DEPTH,
            max_wait: QUEUE_MAX_WAIT,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: RETRY_MAX_ATTEMPTS,
            base_delay: RETRY_BASE_DELAY,
            max_delay: RETRY_MAX_DELAY,
            max_body: RETRY_MAX_BODY,
        }
    }
}

impl Default for BreakerConfig {
    /// No `failure_rate`: only consecutive failures open the breaker.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: BREAKER_FAILURE_THRESHOLD,
            open_for: BREAKER_OPEN_FOR,
            failure_rate: None,
            window: BREAKER_WINDOW,
            min_calls: BREAKER_MIN_CALLS,
            half_open_probes: BREAKER_HALF_OPEN_PROBES,
        }
    }
}

impl super::UpstreamConfig {
    /// An upstream with the given name, prefix and URL and every other key at its default
    /// (no `ca_file`, no `[upstream.limit]`, no `quota.partition_by`, no
    /// `breaker.failure_rate`). Not validated: for code and tests that build a configuration
    /// without a file.
    pub fn with_defaults(name: &str, prefix: &str, url: url::Url) -> Self {
        super::UpstreamConfig {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            url,
            max_concurrency: MAX_CONCURRENCY,
            connect_timeout: CONNECT_TIMEOUT,
            timeout: TIMEOUT,
            ca_file: None,
            rewrite_links: REWRITE_LINKS,
            limit: None,
            quota: QuotaConfig::default(),
            queue: QueueConfig::default(),
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}
