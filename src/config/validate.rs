//! Semantic checks: from the file as written (`raw`) to the `Config` the gateway reads,
//! collecting every problem with its key and place. Defaults come from `defaults`.

use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::keys::KeyIndex;
use super::raw::{HumanDuration, RawConfig, RawServer, RawStore};
use super::source::Problems;
use super::{Config, ServerConfig, StoreConfig};

mod upstream;

/// Longest duration accepted anywhere (a year and a day): beyond it a typo is more likely than
/// intent, and deadlines computed from it must not overflow.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 60 * 60);
/// `server.max_header_bytes` bounds.
const HEADER_BYTES: RangeInclusive<i64> = 1024..=1024 * 1024;

/// Checks and converts the whole file; `None` if anything was wrong (see `problems`).
pub(super) fn validate(
    raw: RawConfig,
    index: &KeyIndex,
    base_dir: &Path,
    problems: &mut Problems<'_, '_>,
) -> Option<Config> {
    let before = problems.len();
    let mut checker = Checker { index, problems };
    let server = checker.server(raw.server.unwrap_or_default());
    let upstreams = upstream::check_all(&mut checker, raw.upstream.unwrap_or_default(), base_dir);
    let store = raw.store.map(|store| checker.store(store));
    let complete = upstreams.iter().all(Option::is_some) && !matches!(store, Some(None));
    (problems.len() == before && complete).then(|| Config {
        server,
        upstreams: upstreams.into_iter().flatten().collect(),
        store: store.flatten(),
    })
}

/// Records problems, placing each at its value, or at the key or table that holds it.
pub(super) struct Checker<'c, 's, 'a> {
    index: &'c KeyIndex,
    problems: &'c mut Problems<'s, 'a>,
}

impl Checker<'_, '_, '_> {
    /// A problem at `span`, or (without one) wherever the file has `key` or its table.
    fn problem(&mut self, key: &str, span: Option<Range<usize>>, message: impl Into<String>) {
        let span = span.or_else(|| self.index.place(key));
        self.problems.add(key, span, message);
    }

    /// A required key, or a problem saying it is missing.
    fn required<'v, T>(
        &mut self,
        key: &str,
        value: &'v Option<Spanned<T>>,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            let name = key.rsplit('.').next().unwrap_or(key);
            self.problem(key, None, format!("missing required key `{name}`"));
        }
        value.as_ref()
    }

    /// An integer within `range`, or `default` when absent.
    fn int<T: TryFrom<i64> + Copy>(
        &mut self,
        key: &str,
        value: &Option<Spanned<i64>>,
        range: RangeInclusive<i64>,
        default: T,
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        let number = *value.get_ref();
        match T::try_from(number) {
            Ok(converted) if range.contains(&number) => converted,
            _ => {
                let message = if *range.end() == i64::MAX {
                    format!("must be at least {}, got {number}", range.start())
                } else {
                    format!(
                        "must be between {} and {}, got {number}",
                        range.start(),
                        range.end()
                    )
                };
                self.problem(key, Some(value.span()), message);
                default
            }
        }
    }

    /// A duration greater than zero and at most `MAX_DURATION`, or `default` when absent.
    fn duration(
        &mut self,
        key: &str,
        value: &Option<Spanned<HumanDuration>>,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        let duration = value.get_ref().0;
        if duration.is_zero() {
            self.problem(key, Some(value.span()), "must be greater than zero");
        } else if duration > MAX_DURATION {
            self.problem(
                key,
                Some(value.span()),
                format!(
                    "must be at most {} (366 days), got {}",
                    humantime::format_duration(MAX_DURATION),
                    humantime::format_duration(duration)
                ),
            );
        } else {
            return duration;
        }
        default
    }

    /// A socket address such as `127.0.0.1:8080`, or `default` when absent.
    fn socket_addr(
        &mut self,
        key: &str,
        value: &Option<Spanned<String>>,
        default: SocketAddr,
    ) -> Option<SocketAddr> {
        let Some(value) = value else {
            return Some(default);
        };
        match value.get_ref().trim().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.problem(
                    key,
                    Some(value.span()),
                    format!(
                        "{:?} is not an IP address and port such as \"127.0.0.1:8080\", \
                         \"0.0.0.0:8080\" or \"[::1]:8080\" (host names are not accepted)",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn server(&mut self, raw: RawServer) -> ServerConfig {
        let default = ServerConfig::default();
        let listen = self.socket_addr("server.listen", &raw.listen, default.listen);
        let admin_listen = self.socket_addr(
            "server.admin_listen",
            &raw.admin_listen,
            default.admin_listen,
        );
        if let (Some(listen), Some(admin)) = (listen, admin_listen) {
            if listeners_clash(listen, admin) {
                let span = raw
                    .admin_listen
                    .as_ref()
                    .or(raw.listen.as_ref())
                    .map(Spanned::span);
                let key = if raw.admin_listen.is_some() {
                    "server.admin_listen"
                } else {
                    "server.listen"
                };
                self.problem(
                    key,
                    span,
                    format!(
                        "`listen` ({listen}) and `admin_listen` ({admin}) would bind the same \
                         port; give them different ports"
                    ),
                );
            }
        }
        ServerConfig {
            listen: listen.unwrap_or(default.listen),
            admin_listen: admin_listen.unwrap_or(default.admin_listen),
            drain_timeout: self.duration(
                "server.drain_timeout",
                &raw.drain_timeout,
                default.drain_timeout,
            ),
            idle_timeout: self.duration(
                "server.idle_timeout",
                &raw.idle_timeout,
                default.idle_timeout,
            ),
            keepalive_timeout: self.duration(
                "server.keepalive_timeout",
                &raw.keepalive_timeout,
                default.keepalive_timeout,
            ),
            header_read_timeout: self.duration(
                "server.header_read_timeout",
                &raw.header_read_timeout,
                default.header_read_timeout,
            ),
            max_request_body: self.int(
                "server.max_request_body",
                &raw.max_request_body,
                1..=i64::MAX,
                default.max_request_body,
            ),
            max_header_bytes: self.int(
                "server.max_header_bytes",
                &raw.max_header_bytes,
                HEADER_BYTES,
                default.max_header_bytes,
            ),
            workers: self.int("server.workers", &raw.workers, 0..=256, default.workers),
        }
    }

    fn store(&mut self, raw: RawStore) -> Option<StoreConfig> {
        let value = self.required("store.redis_url", &raw.redis_url)?;
        let text = value.get_ref();
        let nodes: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        let problem = if nodes.is_empty() {
            Some(format!("{text:?} names no Redis node"))
        } else {
            nodes.iter().find_map(|node| redis_url_problem(node))
        };
        let several = nodes.len() > 1;
        if several {
            if let Some(node) = nodes.iter().find(|n| n.starts_with("unix:")) {
                self.problem(
                    "store.redis_url",
                    Some(value.span()),
                    format!("{node:?}: a cluster's nodes are `redis://` or `rediss://` URLs"),
                );
                return None;
            }
        }
        let key_prefix = match &raw.key_prefix {
            None => "headroom".to_owned(),
            Some(prefix) => {
                let text = prefix.get_ref();
                let ok = !text.is_empty()
                    && text.len() <= 64
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-:.".contains(&b));
                if !ok {
                    self.problem(
                        "store.key_prefix",
                        Some(prefix.span()),
                        format!("{text:?}: 1 to 64 characters of `A-Z a-z 0-9 _ - : .`"),
                    );
                }
                text.clone()
            }
        };
        let timeout = self.duration("store.timeout", &raw.timeout, Duration::from_millis(100));
        if timeout > Duration::from_secs(10) {
            self.problem(
                "store.timeout",
                raw.timeout.as_ref().map(Spanned::span),
                "must be at most 10s: a Redis call holds a request while it waits",
            );
        }
        let reservation_ttl = self.duration(
            "store.reservation_ttl",
            &raw.reservation_ttl,
            Duration::from_secs(60),
        );
        if reservation_ttl < Duration::from_secs(1) {
            self.problem(
                "store.reservation_ttl",
                raw.reservation_ttl.as_ref().map(Spanned::span),
                "must be at least 1s",
            );
        }
        let cluster = raw.cluster.as_ref().map_or(several, |c| *c.get_ref());
        match problem {
            Some(message) => {
                self.problem("store.redis_url", Some(value.span()), message);
                None
            }
            None => Some(StoreConfig {
                redis_url: text.clone(),
                nodes,
                cluster,
                key_prefix,
                timeout,
                reservation_ttl,
            }),
        }
    }
}

/// What is wrong with one Redis node URL, if anything.
fn redis_url_problem(text: &str) -> Option<String> {
    match url::Url::parse(text) {
        Err(err) => Some(format!("{text:?} is not a valid URL: {err}")),
        Ok(url) => match url.scheme() {
            "redis" | "rediss" if url.host_str().is_none_or(str::is_empty) => {
                Some(format!("{text:?} has no host"))
            }
            "redis" | "rediss" => None,
            "unix" if url.path().is_empty() || url.path() == "/" => {
                Some(format!("{text:?} has no socket path"))
            }
            "unix" => None,
            other => Some(format!(
                "scheme must be `redis`, `rediss` or `unix`, not `{other}`"
            )),
        },
    }
}

/// Whether two listeners would fight over one port: same port (not 0, which picks a free
/// one) on the same address, or on a wildcard address that covers the other (`[::]` also
/// covers IPv4 on a dual-stack host).
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let (a, b) = (a.ip(), b.ip());
    if a.is_ipv4() == b.is_ipv4() {
        a == b || a.is_unspecified() || b.is_unspecified()
    } else {
        (a.is_ipv6() && a.is_unspecified()) || (b.is_ipv6() && b.is_unspecified())
    }
}
