//! The file as written: one serde struct per section, every key optional and spanned.
//!
//! Required keys and defaults are handled in `validate`, so that a missing key is reported
//! with the others instead of stopping serde, and so that defaults live in one place
//! (`defaults`). Integers are read as `i64`, fractions as `f64`, and range-checked there.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub server: Option<RawServer>,
    pub upstream: Option<Vec<RawUpstream>>,
    pub store: Option<RawStore>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub admin_listen: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<HumanDuration>>,
    pub idle_timeout: Option<Spanned<HumanDuration>>,
    pub keepalive_timeout: Option<Spanned<HumanDuration>>,
    pub header_read_timeout: Option<Spanned<HumanDuration>>,
    pub max_request_body: Option<Spanned<i64>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub workers: Option<Spanned<i64>>,
}

/// One `[[upstream]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub name: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub max_concurrency: Option<Spanned<i64>>,
    pub connect_timeout: Option<Spanned<HumanDuration>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub ca_file: Option<Spanned<String>>,
    pub rewrite_links: Option<Spanned<bool>>,
    pub limit: Option<RawLimit>,
    pub quota: Option<RawQuota>,
    pub queue: Option<RawQueue>,
    pub retry: Option<RawRetry>,
    pub breaker: Option<RawBreaker>,
}

/// `[upstream.limit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    pub requests: Option<Spanned<i64>>,
    pub per: Option<Spanned<HumanDuration>>,
}

/// `[upstream.quota]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuota {
    pub reset_format: Option<Spanned<String>>,
    pub partition_by: Option<Spanned<String>>,
    pub probes: Option<Spanned<i64>>,
    pub max_partitions: Option<Spanned<i64>>,
}

/// `[upstream.queue]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    pub max_depth: Option<Spanned<i64>>,
    pub max_wait: Option<Spanned<HumanDuration>>,
}

/// `[upstream.retry]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub max_attempts: Option<Spanned<i64>>,
    pub base_delay: Option<Spanned<HumanDuration>>,
    pub max_delay: Option<Spanned<HumanDuration>>,
    pub max_body: Option<Spanned<i64>>,
}

/// `[upstream.breaker]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreaker {
    pub failure_threshold: Option<Spanned<i64>>,
    pub open_for: Option<Spanned<HumanDuration>>,
    /// A float; an integer (`1`) is read as one too.
    pub failure_rate: Option<Spanned<f64>>,
    pub window: Option<Spanned<HumanDuration>>,
    pub min_calls: Option<Spanned<i64>>,
    pub half_open_probes: Option<Spanned<i64>>,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub redis_url: Option<Spanned<String>>,
    pub cluster: Option<Spanned<bool>>,
    pub key_prefix: Option<Spanned<String>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    pub reservation_ttl: Option<Spanned<HumanDuration>>,
}

/// A duration written as a humantime string: `"250ms"`, `"30s"`, `"1m"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(HumanDurationVisitor)
    }
}

struct HumanDurationVisitor;

impl Visitor<'_> for HumanDurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a duration string such as "250ms", "30s" or "1m""#)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        humantime::parse_duration(text)
            .map(HumanDuration)
            .map_err(|err| {
                E::custom(format!(
                    r#"invalid duration {text:?}: {err}; write e.g. "250ms", "30s" or "1m""#
                ))
            })
    }
}
