//! Learning the quota from one response's headers: [`parse`], one pure function per header
//! convention, tried in a fixed order.
//!
//! # Order
//! The first convention that yields a quota fact supplies `limit`, `remaining`,
//! `reset_after`, `window` and `bucket`:
//!
//! 1. IETF -07 / -08..-11 `RateLimit` (+ `RateLimit-Policy`), then Jira's `Beta-RateLimit`
//!    ([`parse_ietf`]): the standard, and the most precise when a supplier sends several.
//! 2. GitLab ([`parse_gitlab`]), before 3 because it reuses the -06 names with an epoch.
//! 3. IETF -00..-06 `RateLimit-Limit/Remaining/Reset` ([`parse_ietf_06`]).
//! 4. GitHub ([`parse_github`]), 5. Discord ([`parse_discord`]), 6. Reddit
//!    ([`parse_reddit`]), 7. any other `X-RateLimit-*` ([`parse_x_ratelimit`]),
//!    8. `X-Rate-Limit-*` ([`parse_x_rate_limit`]): vendors before the generic reading.
//! 9. HubSpot, 10. Shopify, 11. Salesforce; on a 429 only, 12. Stripe.
//!
//! A convention whose every value is unusable yields nothing (with warnings) and the next
//! one is tried: an ignored value behaves exactly as an absent one.
//!
//! # The wait
//! On a 403, 429 or 503, `retry-after-ms` then `Retry-After` give `retry_after`
//! ([`parse_retry_after_headers`]); they win over every other header for the wait. Discord's
//! reset (`X-RateLimit-Reset-After`) stands in on a rate-limited Discord response without
//! them. `rate_limited` is set for a 429, a 503 or 403 with a usable wait, and a GitHub 403
//! with `x-ratelimit-remaining: 0` (a plain 403 is a permission error).
//!
//! # Resets
//! See [`values::parse_reset`]: numbers by `quota.reset_format` (`auto`: below 1e9 delta
//! seconds, to 1e11 epoch seconds, beyond epoch milliseconds; the IETF `reset`/`t` are delta
//! seconds), letters as an HTTP-date, ISO 8601 or JavaScript date. Epochs and dates are
//! measured from the response's `Date` (correcting the supplier's clock skew), else from its
//! arrival; a reset in the past is zero. `X-Rate-Limit-Reset: 600000` (milliseconds) reads as
//! 6.9 days in `auto`, longer than a one-day `max_wait`, so it is ignored with a warning:
//! reading long deltas as milliseconds would make a genuine 25-hour reset look like 90
//! seconds and send into a closed window. `reset_format = "delta_ms"` reads it right.

pub mod governing;
mod ietf;
mod ietf_legacy;
mod ietf_policy;
pub mod names;
pub mod reader;
mod retry_after;
mod structured;
pub mod values;
mod vendors;
mod x_ratelimit;

#[cfg(test)]
mod tests;

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};

pub use ietf::parse_ietf;
pub use ietf_legacy::{parse_gitlab, parse_ietf_06};
pub use ietf_policy::Policy;
pub use names::Families;
pub use reader::ResponseHeaders;
pub use retry_after::parse_retry_after_headers;
pub use values::{parse_date, parse_reset, parse_retry_after};
pub use vendors::{parse_hubspot, parse_salesforce, parse_shopify, parse_stripe};
pub use x_ratelimit::{
    is_github, parse_discord, parse_github, parse_reddit, parse_x_rate_limit, parse_x_ratelimit,
};

use crate::quota::observation::{HeaderWarning, ParseOptions, QuotaObservation, Source};

/// A per-convention parser.
pub type Convention = fn(&mut ResponseHeaders<'_>) -> Option<QuotaObservation>;

/// The conventions in the order [`parse`] tries them, each with the header family it needs
/// (Stripe, 429-only, comes after).
pub const CONVENTIONS: [(Families, Convention); 11] = [
    (Families::IETF, parse_ietf),
    (Families::IETF, parse_gitlab),
    (Families::IETF, parse_ietf_06),
    (Families::X_RATELIMIT, parse_github),
    (Families::X_RATELIMIT, parse_discord),
    (Families::X_RATELIMIT, parse_reddit),
    (Families::X_RATELIMIT, parse_x_ratelimit),
    (Families::X_RATE_LIMIT, parse_x_rate_limit),
    (Families::HUBSPOT, parse_hubspot),
    (Families::SHOPIFY, parse_shopify),
    (Families::SALESFORCE, parse_salesforce),
];

/// What the response with `status` and `headers`, which arrived at `now` (wall clock), says
/// about the quota, and the header values it had to ignore. `None` when it says nothing: no
/// rate-limit header and not a 429. Never panics; every duration is at most
/// `opts.max_wait`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use headroom::quota::{parse, ParseOptions, Source};
/// use http::{HeaderMap, StatusCode};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ratelimit-policy", r#""burst";q=100;w=60,"daily";q=1000;w=86400"#.parse().unwrap());
/// headers.insert("ratelimit", r#""burst";r=40;t=30, "daily";r=20;t=3600"#.parse().unwrap());
/// let (obs, warnings) = parse(StatusCode::OK, &headers, SystemTime::UNIX_EPOCH, &ParseOptions::default());
/// let obs = obs.unwrap();
/// assert_eq!((obs.source, obs.limit, obs.remaining), (Source::Ietf, Some(1000), Some(20)));
/// assert_eq!(obs.reset_after, Some(Duration::from_secs(3600)));
/// assert!(warnings.is_empty());
/// ```
#[must_use]
pub fn parse(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
    opts: &ParseOptions,
) -> (Option<QuotaObservation>, Vec<HeaderWarning>) {
    let families = Families::of(headers);
    let too_many = status == StatusCode::TOO_MANY_REQUESTS;
    if families.is_empty() && !too_many {
        return (None, Vec::new());
    }
    let mut r = ResponseHeaders::new(headers, now, opts);
    let mut obs = CONVENTIONS
        .iter()
        .filter(|(family, _)| families.contains(*family))
        .find_map(|(_, convention)| convention(&mut r));
    if obs.is_none() && too_many {
        obs = parse_stripe(&mut r);
    }

    let may_wait = matches!(status.as_u16(), 403 | 429 | 503);
    let mut wait = if may_wait && families.contains(Families::RETRY_AFTER) {
        parse_retry_after_headers(&mut r)
    } else {
        None
    };
    let exhausted = obs.as_ref().is_some_and(|o| o.remaining == Some(0));
    let rate_limited = too_many
        || (matches!(status.as_u16(), 403 | 503) && wait.is_some())
        || (status == StatusCode::FORBIDDEN && exhausted && is_github(&r));
    if rate_limited && wait.is_none() {
        wait = obs
            .as_ref()
            .filter(|o| o.source == Source::Discord)
            .and_then(|o| o.reset_after);
    }

    let obs = match obs {
        Some(o) => Some(o),
        None if wait.is_some() => Some(QuotaObservation::new(Source::RetryAfter)),
        None if rate_limited => Some(QuotaObservation::new(Source::Status)),
        None => None,
    }
    .map(|o| QuotaObservation {
        retry_after: wait.filter(|_| rate_limited),
        rate_limited,
        ..o
    });
    (obs, dedup(r.into_warnings()))
}

/// Drops repeated warnings (two conventions may read the same header).
fn dedup(mut warnings: Vec<HeaderWarning>) -> Vec<HeaderWarning> {
    let mut i = 0;
    while i < warnings.len() {
        if warnings[..i].contains(&warnings[i]) {
            warnings.remove(i);
        } else {
            i += 1;
        }
    }
    warnings
}
