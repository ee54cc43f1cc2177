//! The `X-RateLimit-*` family (GitHub, Discord, Reddit, Jira and many others) and the dashed
//! `X-Rate-Limit-*` family (X/Twitter, Okta, Zendesk). These share names but not meanings;
//! each vendor is told apart by a header only it sends, and every reset is read by the reset
//! rule of `quota.reset_format` (epoch, delta and ISO 8601 all occur).

use super::names;
use super::reader::ResponseHeaders;
use crate::quota::observation::{Ignored, QuotaObservation, Source};

/// Whether the response comes from GitHub (`x-ratelimit-resource` or `x-github-request-id`).
#[must_use]
pub fn is_github(r: &ResponseHeaders<'_>) -> bool {
    r.has(&names::X_RATELIMIT_RESOURCE) || r.has(&names::X_GITHUB_REQUEST_ID)
}

/// GitHub: `x-ratelimit-limit/remaining/used/reset` (reset in epoch seconds) when the
/// response is GitHub's ([`is_github`]). A missing remaining is `limit - used`.
pub fn parse_github(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    if !is_github(r) || !has_x_ratelimit(r) {
        return None;
    }
    let mut obs = QuotaObservation::new(Source::Github);
    obs.limit = r.count(&names::X_RATELIMIT_LIMIT);
    obs.remaining = r.count(&names::X_RATELIMIT_REMAINING);
    if obs.remaining.is_none() {
        let used = r.count(&names::X_RATELIMIT_USED);
        obs.remaining = obs.limit.zip(used).map(|(l, u)| l.saturating_sub(u));
    }
    obs.reset_after = r.reset(&names::X_RATELIMIT_RESET);
    obs.resource = r.read(&names::X_RATELIMIT_RESOURCE, parse_resource);
    obs.has_quota().then_some(obs)
}

/// A resource or bucket name: 1 to [`QuotaObservation::MAX_RESOURCE_LEN`] characters of
/// `[A-Za-z0-9_.:-]` (GitHub's `core`, `code_search`; Discord's hex bucket ids).
pub fn parse_resource(value: &str) -> Result<String, Ignored> {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return Err(Ignored::Empty);
    }
    let fits = value.len() <= QuotaObservation::MAX_RESOURCE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if fits {
        Ok(value.to_owned())
    } else {
        Err(Ignored::Malformed)
    }
}

/// Whether the response is Discord's (`Reset-After`, `Bucket`, `Global` or `Scope`).
#[must_use]
pub fn is_discord(r: &ResponseHeaders<'_>) -> bool {
    r.has(&names::X_RATELIMIT_RESET_AFTER)
        || r.has(&names::X_RATELIMIT_BUCKET)
        || r.has(&names::X_RATELIMIT_GLOBAL)
        || r.has(&names::X_RATELIMIT_SCOPE)
}

/// Discord: limit, remaining, and the reset from `X-RateLimit-Reset-After` (delta seconds
/// with decimals, preferred: no clock involved), else `X-RateLimit-Reset` (epoch seconds with
/// decimals). A global 429 (`X-RateLimit-Global`) may carry no count at all: then only the
/// wait is known, which [`crate::quota::headers::parse`] takes from `Retry-After` or
/// `Reset-After`.
pub fn parse_discord(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    if !is_discord(r) {
        return None;
    }
    let mut obs = QuotaObservation::new(Source::Discord);
    obs.limit = r.count(&names::X_RATELIMIT_LIMIT);
    obs.remaining = r.count(&names::X_RATELIMIT_REMAINING);
    obs.reset_after = r.seconds(&names::X_RATELIMIT_RESET_AFTER);
    if obs.reset_after.is_none() {
        obs.reset_after = r.reset(&names::X_RATELIMIT_RESET);
    }
    let scope = r
        .text(&names::X_RATELIMIT_SCOPE)
        .map(|s| s.trim_matches([' ', '\t']).to_ascii_lowercase());
    let flagged = r
        .text(&names::X_RATELIMIT_GLOBAL)
        .is_some_and(|g| g.trim_matches([' ', '\t']).eq_ignore_ascii_case("true"));
    let global = flagged || scope.as_deref() == Some("global");
    // A global limit covers every bucket: it belongs to the upstream as a whole. A `user` or
    // `shared` scope is the bucket's own limit.
    if !global {
        obs.resource = r.read(&names::X_RATELIMIT_BUCKET, parse_resource);
    }
    (obs.has_quota() || global || scope.is_some()).then_some(obs)
}

/// Reddit: `X-Ratelimit-Used/Remaining/Reset` without a limit header; the limit is
/// `used + remaining`, remaining may be fractional (`599.0`, floored), reset is delta seconds.
pub fn parse_reddit(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    if !r.has(&names::X_RATELIMIT_USED) || r.has(&names::X_RATELIMIT_LIMIT) {
        return None;
    }
    let mut obs = QuotaObservation::new(Source::Reddit);
    let used = r.count(&names::X_RATELIMIT_USED);
    obs.remaining = r.count(&names::X_RATELIMIT_REMAINING);
    obs.limit = used
        .zip(obs.remaining)
        .map(|(u, rem)| u.saturating_add(rem));
    obs.reset_after = r.reset(&names::X_RATELIMIT_RESET);
    obs.has_quota().then_some(obs)
}

/// Any other `X-RateLimit-Limit/Remaining/Reset` (Jira's reset is ISO 8601,
/// `2026-03-26T16:00Z`).
pub fn parse_x_ratelimit(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    if !has_x_ratelimit(r) {
        return None;
    }
    let mut obs = QuotaObservation::new(Source::XRateLimit);
    obs.limit = r.count(&names::X_RATELIMIT_LIMIT);
    obs.remaining = r.count(&names::X_RATELIMIT_REMAINING);
    obs.reset_after = r.reset(&names::X_RATELIMIT_RESET);
    obs.has_quota().then_some(obs)
}

/// `X-Rate-Limit-Limit/Remaining/Reset` (X/Twitter, Okta: epoch seconds) and Zendesk's
/// `X-Rate-Limit` (the limit) with `X-Rate-Limit-Remaining`.
pub fn parse_x_rate_limit(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    let present = r.has(&names::X_RATE_LIMIT_LIMIT)
        || r.has(&names::X_RATE_LIMIT)
        || r.has(&names::X_RATE_LIMIT_REMAINING)
        || r.has(&names::X_RATE_LIMIT_RESET);
    if !present {
        return None;
    }
    let mut obs = QuotaObservation::new(Source::XRateLimitDashed);
    obs.limit = r.count(&names::X_RATE_LIMIT_LIMIT);
    if obs.limit.is_none() {
        obs.limit = r.count(&names::X_RATE_LIMIT);
    }
    obs.remaining = r.count(&names::X_RATE_LIMIT_REMAINING);
    obs.reset_after = r.reset(&names::X_RATE_LIMIT_RESET);
    obs.has_quota().then_some(obs)
}

fn has_x_ratelimit(r: &ResponseHeaders<'_>) -> bool {
    r.has(&names::X_RATELIMIT_LIMIT)
        || r.has(&names::X_RATELIMIT_REMAINING)
        || r.has(&names::X_RATELIMIT_RESET)
}
