//! Checks of each `[[upstream]]` and its sections, and of what must be unique across them.

use std::collections::HashMap;
use std::path::Path;

use super::super::defaults;
use super::super::raw::{RawBreaker, RawLimit, RawQueue, RawRetry, RawUpstream};
use super::super::{BreakerConfig, LimitConfig, QueueConfig, RetryConfig, UpstreamConfig};
use super::Checker;

mod rules;

/// `max_concurrency` bounds: beyond 65536, one host runs out of ports to one upstream anyway.
const MAX_CONCURRENCY: std::ops::RangeInclusive<i64> = 1..=65_536;
/// `queue.max_depth` bounds.
const QUEUE_DEPTH: std::ops::RangeInclusive<i64> = 1..=1_000_000;
/// `retry.max_attempts` bounds.
const MAX_ATTEMPTS: std::ops::RangeInclusive<i64> = 1..=100;
const U32: std::ops::RangeInclusive<i64> = 1..=u32::MAX as i64;

/// Checks every upstream; `None` in place of one that lacks a required key.
pub(super) fn check_all(
    checker: &mut Checker<'_, '_, '_>,
    raws: Vec<RawUpstream>,
    base_dir: &Path,
) -> Vec<Option<UpstreamConfig>> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut prefixes: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raws.len());
    for (index, raw) in raws.into_iter().enumerate() {
        let at = format!("upstream[{index}]");
        let name = checker
            .required(&format!("{at}.name"), &raw.name)
            .and_then(|name| {
                let key = format!("{at}.name");
                let text = name.get_ref();
                if let Err(message) = rules::check_name(text) {
                    checker.problem(&key, Some(name.span()), message);
                } else if let Some(first) = names.get(text) {
                    let message = format!("duplicate name {text:?}: upstream[{first}] has it too");
                    checker.problem(&key, Some(name.span()), message);
                } else {
                    names.insert(text.clone(), index);
                    return Some(text.clone());
                }
                None
            });
        let prefix = checker
            .required(&format!("{at}.prefix"), &raw.prefix)
            .and_then(|prefix| {
                let key = format!("{at}.prefix");
                match rules::normalize_prefix(prefix.get_ref()) {
                    Err(message) => checker.problem(&key, Some(prefix.span()), message),
                    Ok(normal) => match prefixes.get(&normal) {
                        Some(first) => {
                            let message = format!(
                                "duplicate prefix {normal:?}: upstream[{first}] has it too \
                             (trailing `/` ignored)"
                            );
                            checker.problem(&key, Some(prefix.span()), message);
                        }
                        None => {
                            prefixes.insert(normal.clone(), index);
                            return Some(normal);
                        }
                    },
                }
                None
            });
        let url = checker
            .required(&format!("{at}.url"), &raw.url)
            .and_then(|url| {
                let problems = rules::check_url(url.get_ref());
                let key = format!("{at}.url");
                for message in &problems.1 {
                    checker.problem(&key, Some(url.span()), message.clone());
                }
                problems.0
            });
        let ca_file = raw.ca_file.as_ref().and_then(|file| {
            let key = format!("{at}.ca_file");
            let path = base_dir.join(file.get_ref());
            let plain_http = url.as_ref().is_some_and(|url| url.scheme() == "http");
            let result = if plain_http {
                Err("is only used for https upstreams, and this url is http".to_owned())
            } else {
                rules::check_ca_file(file.get_ref(), &path)
            };
            match result {
                Ok(()) => Some(path),
                Err(message) => {
                    checker.problem(&key, Some(file.span()), message);
                    None
                }
            }
        });
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
        let limit = raw.limit.map(|limit| check_limit(checker, &at, limit));
        let queue = check_queue(checker, &at, raw.queue.unwrap_or_default());
        let retry = check_retry(checker, &at, raw.retry.unwrap_or_default());
        let breaker = check_breaker(checker, &at, raw.breaker.unwrap_or_default());
        let complete = raw.ca_file.is_none() || ca_file.is_some();
        out.push(match (name, prefix, url, limit) {
            (Some(name), Some(prefix), Some(url), limit)
                if complete && !matches!(limit, Some(None)) =>
            {
                Some(UpstreamConfig {
                    name,
                    prefix,
                    url,
                    max_concurrency,
                    connect_timeout,
                    timeout,
                    ca_file,
                    limit: limit.flatten(),
                    queue,
                    retry,
                    breaker,
                })
            }
            _ => None,
        });
    }
    out
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
    }
}
