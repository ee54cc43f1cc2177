//! Checks of each `[[upstream]]` and its sections, and of what must be unique across them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::super::defaults;
use super::super::raw::{RawBreaker, RawLimit, RawQueue, RawQuota, RawRetry, RawUpstream};
use super::super::{
    BreakerConfig, LimitConfig, QueueConfig, QuotaConfig, RetryConfig, UpstreamConfig,
};
use super::Checker;

mod rules;

/// `max_concurrency` bounds: beyond 65536, one host runs out of ports to one upstream anyway.
const MAX_CONCURRENCY: std::ops::RangeInclusive<i64> = 1..=65_536;
/// `queue.max_depth` bounds.
const QUEUE_DEPTH: std::ops::RangeInclusive<i64> = 1..=1_000_000;
/// `retry.max_attempts` bounds.
const MAX_ATTEMPTS: std::ops::RangeInclusive<i64> = 1..=100;
const U32: std::ops::RangeInclusive<i64> = 1..=u32::MAX as i64;
/// `retry.max_body` bounds: 0 (never buffer) to 1 GiB, held in memory per request.
const RETRY_MAX_BODY: std::ops::RangeInclusive<i64> = 0..=1024 * 1024 * 1024;
/// `quota.probes` bounds.
const QUOTA_PROBES: std::ops::RangeInclusive<i64> = 1..=1000;
/// `quota.max_partitions` bounds.
const QUOTA_MAX_PARTITIONS: std::ops::RangeInclusive<i64> = 1..=1_000_000;
/// `breaker.min_calls` bounds.
const BREAKER_MIN_CALLS: std::ops::RangeInclusive<i64> = 1..=100_000;
/// `breaker.half_open_probes` bounds.
const BREAKER_HALF_OPEN_PROBES: std::ops::RangeInclusive<i64> = 1..=1000;

/// Checks every upstream; `None` in place of one whose name, prefix or url is unusable.
/// (Any problem makes the whole check fail; the `None`s only spare inventing values.)
pub(super) fn check_all(
    checker: &mut Checker<'_, '_, '_>,
    raws: Vec<RawUpstream>,
    base_dir: &Path,
) -> Vec<Option<UpstreamConfig>> {
    let mut seen = Seen::default();
    raws.into_iter()
        .enumerate()
        .map(|(index, raw)| check_one(checker, &mut seen, index, raw, base_dir))
        .collect()
}

/// What earlier upstreams use already: value -> index of the first one.
#[derive(Default)]
struct Seen {
    names: HashMap<String, usize>,
    prefixes: HashMap<String, usize>,
}

fn check_one(
    checker: &mut Checker<'_, '_, '_>,
    seen: &mut Seen,
    index: usize,
    raw: RawUpstream,
    base_dir: &Path,
) -> Option<UpstreamConfig> {
    let at = format!("upstream[{index}]");
    let name = check_name(checker, &mut seen.names, index, &at, &raw.name);
    let prefix = check_prefix(checker, &mut seen.prefixes, index, &at, &raw.prefix);
    let url = check_url(checker, &at, &raw.url);
    let ca_file = check_ca_file(checker, &at, &raw.ca_file, url.as_ref(), base_dir);
    let max_concurrency = checker.int(
        &format!("{at}.max_concurrency"),
        &raw.max_concurrency,
        MAX_CONCURRENCY,
        defaults::MAX_CONCURRENCY,
    );
    let connect_timeout = checker.duration(
        &format!("{at}.connect_timeout"),
        &raw.connect_timeout,
        defaults::CONNECT_TIMEOUT,
    );
    let timeout = checker.duration(&format!("{at}.timeout"), &raw.timeout, defaults::TIMEOUT);
    let limit = raw.limit.and_then(|limit| check_limit(checker, &at, limit));
    let quota = check_quota(checker, &at, raw.quota.unwrap_or_default());
    let queue = check_queue(checker, &at, raw.queue.unwrap_or_default());
    let retry = check_retry(checker, &at, raw.retry.unwrap_or_default());
    let breaker = check_breaker(checker, &at, raw.breaker.unwrap_or_default());
    Some(UpstreamConfig {
        name: name?,
        prefix: prefix?,
        url: url?,
        max_concurrency,
        connect_timeout,
        timeout,
        ca_file,
        rewrite_links: raw
            .rewrite_links
            .map_or(defaults::REWRITE_LINKS, |v| *v.get_ref()),
        limit,
        quota,
        queue,
        retry,
        breaker,
    })
}

/// `name`: valid and not used by an earlier upstream.
fn check_name(
    checker: &mut Checker<'_, '_, '_>,
    seen: &mut HashMap<String, usize>,
    index: usize,
    at: &str,
    raw: &Option<Spanned<String>>,
) -> Option<String> {
    let key = format!("{at}.name");
    let name = checker.required(&key, raw)?;
    let message = match rules::check_name(name.get_ref()) {
        Err(message) => message,
        Ok(()) => match seen.get(name.get_ref()) {
            Some(first) => format!(
                "duplicate name {:?}: upstream[{first}] has it too",
                name.get_ref()
            ),
            None => {
                seen.insert(name.get_ref().clone(), index);
                return Some(name.get_ref().clone());
            }
        },
    };
    checker.problem(&key, Some(name.span()), message);
    None
}

/// `prefix`: valid and, normalised, not used by an earlier upstream.
fn check_prefix(
    checker: &mut Checker<'_, '_, '_>,
    seen: &mut HashMap<String, usize>,
    index: usize,
    at: &str,
    raw: &Option<Spanned<String>>,
) -> Option<String> {
    let key = format!("{at}.prefix");
    let prefix = checker.required(&key, raw)?;
    let message = match rules::normalize_prefix(prefix.get_ref()) {
        Err(message) => message,
        Ok(normal) => match seen.get(&normal) {
            Some(first) => format!(
                "duplicate prefix {normal:?}: upstream[{first}] has it too (a trailing `/` \
                 does not count)"
            ),
            None => {
                seen.insert(normal.clone(), index);
                return Some(normal);
            }
        },
    };
    checker.problem(&key, Some(prefix.span()), message);
    None
}

fn check_url(
    checker: &mut Checker<'_, '_, '_>,
    at: &str,
    raw: &Option<Spanned<String>>,
) -> Option<url::Url> {
    let key = format!("{at}.url");
    let url = checker.required(&key, raw)?;
    let (parsed, problems) = rules::check_url(url.get_ref());
    for message in problems {
        checker.problem(&key, Some(url.span()), message);
    }
    parsed
}

/// `ca_file`, resolved against `base_dir`: `None` when absent or unusable.
fn check_ca_file(
    checker: &mut Checker<'_, '_, '_>,
    at: &str,
    raw: &Option<Spanned<String>>,
    url: Option<&url::Url>,
    base_dir: &Path,
) -> Option<PathBuf> {
    let file = raw.as_ref()?;
    let path = base_dir.join(file.get_ref());
    let result = match url {
        Some(url) if url.scheme() == "http" => {
            Err("is only used for https upstreams, and this url is http".to_owned())
        }
        _ => rules::check_ca_file(file.get_ref(), &path),
    };
    match result {
        Ok(()) => Some(path),
        Err(message) => {
            checker.problem(&format!("{at}.ca_file"), Some(file.span()), message);
            None
        }
    }
}

fn check_limit(checker: &mut Checker<'_, '_, '_>, at: &str, raw: RawLimit) -> Option<LimitConfig> {
    let requests_key = format!("{at}.limit.requests");
    let per_key = format!("{at}.limit.per");
    let requests = checker
        .required(&requests_key, &raw.requests)
        .map(|_| checker.int(&requests_key, &raw.requests, U32, 0u32));
    let per = checker
        .required(&per_key, &raw.per)
        .map(|_| checker.duration(&per_key, &raw.per, std::time::Duration::ZERO));
    let (requests, per) = (requests.filter(|&r| r > 0)?, per.filter(|p| !p.is_zero())?);
    if per.as_nanos() < u128::from(requests) {
        let span = raw.requests.as_ref().map(|r| r.span());
        checker.problem(
            &requests_key,
            span,
            "more than one request per nanosecond: lower `requests` or raise `per`",
        );
        return None;
    }
    Some(LimitConfig { requests, per })
}

fn check_quota(checker: &mut Checker<'_, '_, '_>, at: &str, raw: RawQuota) -> QuotaConfig {
    let default = QuotaConfig::default();
    let reset_format = raw
        .reset_format
        .as_ref()
        .map_or(default.reset_format, |value| {
            rules::parse_reset_format(value.get_ref()).unwrap_or_else(|message| {
                let key = format!("{at}.quota.reset_format");
                checker.problem(&key, Some(value.span()), message);
                default.reset_format
            })
        });
    let partition_by = raw.partition_by.as_ref().and_then(|value| {
        rules::parse_partition_by(value.get_ref())
            .map_err(|message| {
                let key = format!("{at}.quota.partition_by");
                checker.problem(&key, Some(value.span()), message);
            })
            .ok()
    });
    QuotaConfig {
        reset_format,
        partition_by,
        probes: checker.int(
            &format!("{at}.quota.probes"),
            &raw.probes,
            QUOTA_PROBES,
            default.probes,
        ),
        max_partitions: checker.int(
            &format!("{at}.quota.max_partitions"),
            &raw.max_partitions,
            QUOTA_MAX_PARTITIONS,
            default.max_partitions,
        ),
    }
}

fn check_queue(checker: &mut Checker<'_, '_, '_>, at: &str, raw: RawQueue) -> QueueConfig {
    let default = QueueConfig::default();
    QueueConfig {
        max_depth: checker.int(
            &format!("{at}.queue.max_depth"),
            &raw.max_depth,
            QUEUE_DEPTH,
            default.max_depth,
        ),
        max_wait: checker.duration(
            &format!("{at}.queue.max_wait"),
            &raw.max_wait,
            default.max_wait,
        ),
    }
}

fn check_retry(checker: &mut Checker<'_, '_, '_>, at: &str, raw: RawRetry) -> RetryConfig {
    let default = RetryConfig::default();
    let retry = RetryConfig {
        max_attempts: checker.int(
            &format!("{at}.retry.max_attempts"),
            &raw.max_attempts,
            MAX_ATTEMPTS,
            default.max_attempts,
        ),
        base_delay: checker.duration(
            &format!("{at}.retry.base_delay"),
            &raw.base_delay,
            default.base_delay,
        ),
        max_delay: checker.duration(
            &format!("{at}.retry.max_delay"),
            &raw.max_delay,
            default.max_delay,
        ),
        max_body: checker.int(
            &format!("{at}.retry.max_body"),
            &raw.max_body,
            RETRY_MAX_BODY,
            default.max_body,
        ),
    };
    if retry.base_delay > retry.max_delay {
        // Blame the one the file sets; `max_delay` when it sets both.
        let (key, value) = match (&raw.max_delay, &raw.base_delay) {
            (None, Some(base)) => ("base_delay", base),
            (Some(max), _) => ("max_delay", max),
            (None, None) => return retry,
        };
        checker.problem(
            &format!("{at}.retry.{key}"),
            Some(value.span()),
            format!(
                "`base_delay` ({}) must not be longer than `max_delay` ({})",
                humantime::format_duration(retry.base_delay),
                humantime::format_duration(retry.max_delay)
            ),
        );
    }
    retry
}

fn check_breaker(checker: &mut Checker<'_, '_, '_>, at: &str, raw: RawBreaker) -> BreakerConfig {
    let default = BreakerConfig::default();
    BreakerConfig {
        failure_threshold: checker.int(
            &format!("{at}.breaker.failure_threshold"),
            &raw.failure_threshold,
            U32,
            default.failure_threshold,
        ),
        open_for: checker.duration(
            &format!("{at}.breaker.open_for"),
            &raw.open_for,
            default.open_for,
        ),
        failure_rate: raw.failure_rate.as_ref().and_then(|value| {
            rules::check_failure_rate(*value.get_ref())
                .map_err(|message| {
                    let key = format!("{at}.breaker.failure_rate");
                    checker.problem(&key, Some(value.span()), message);
                })
                .ok()
        }),
        window: checker.duration(&format!("{at}.breaker.window"), &raw.window, default.window),
        min_calls: checker.int(
            &format!("{at}.breaker.min_calls"),
            &raw.min_calls,
            BREAKER_MIN_CALLS,
            default.min_calls,
        ),
        half_open_probes: checker.int(
            &format!("{at}.breaker.half_open_probes"),
            &raw.half_open_probes,
            BREAKER_HALF_OPEN_PROBES,
            default.half_open_probes,
        ),
    }
}
