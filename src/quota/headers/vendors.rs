//! Single-vendor conventions: Shopify's leaky bucket, Salesforce's daily usage, HubSpot's
//! interval/daily/secondly limits and Stripe's 429 markers.

use std::time::Duration;

use super::governing::{governing, PolicyState};
use super::names;
use super::reader::ResponseHeaders;
use super::values::parse_count;
use crate::quota::observation::{Ignored, LeakyBucket, QuotaObservation, Source};

/// Salesforce counts API usage over a rolling 24 hours.
pub const SALESFORCE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// HubSpot's daily limit window.
pub const HUBSPOT_DAILY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// HubSpot's secondly limit window.
pub const HUBSPOT_SECONDLY_WINDOW: Duration = Duration::from_secs(1);

/// Shopify `X-Shopify-Shop-Api-Call-Limit: 32/40`: a bucket of 40 holding 32 (it leaks about
/// 2 per second). `limit` and `remaining` mirror it as 40 and 8; no reset, no window.
pub fn parse_shopify(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    let bucket = r.read(&names::X_SHOPIFY_SHOP_API_CALL_LIMIT, |value| {
        let bucket = parse_used_of(value)?;
        // A bucket cannot hold more than its size: such a level is garbage, not a wait.
        if bucket.used > bucket.size {
            return Err(Ignored::OutOfRange);
        }
        Ok(bucket)
    })?;
    Some(QuotaObservation {
        limit: Some(bucket.size),
        remaining: Some(bucket.size.saturating_sub(bucket.used)),
        bucket: Some(bucket),
        ..QuotaObservation::new(Source::Shopify)
    })
}

/// `used/size` with a non-zero size.
pub fn parse_used_of(value: &str) -> Result<LeakyBucket, Ignored> {
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return Err(Ignored::Empty);
    }
    let (used, size) = value.split_once('/').ok_or(Ignored::Malformed)?;
    let bucket = LeakyBucket {
        used: parse_count(used)?,
        size: parse_count(size)?,
    };
    if bucket.size == 0 {
        return Err(Ignored::Malformed);
    }
    Ok(bucket)
}

/// Salesforce `Sforce-Limit-Info: api-usage=25/5000` (limit 5000, remaining 4975) over a
/// rolling 24 h window, no reset. A `per-app-api-usage=17/250(appName=x)` member is a second
/// policy; the tightest governs.
pub fn parse_salesforce(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    let window = r.cap(SALESFORCE_WINDOW).ok();
    let policies = r.read(&names::SFORCE_LIMIT_INFO, |value| {
        let mut policies = Vec::new();
        for member in value.split(',') {
            let Some((key, usage)) = member.trim_matches([' ', '\t']).split_once('=') else {
                continue;
            };
            if key != "api-usage" && key != "per-app-api-usage" {
                continue;
            }
            let usage = usage.split_once('(').map_or(usage, |(u, _)| u);
            let usage = parse_used_of(usage)?;
            policies.push(PolicyState {
                limit: Some(usage.size),
                remaining: Some(usage.size.saturating_sub(usage.used)),
                reset_after: None,
                window,
            });
        }
        if policies.is_empty() {
            return Err(Ignored::Malformed);
        }
        Ok(policies)
    })?;
    governing(policies).map(|s| s.into_observation(Source::Salesforce))
}

/// HubSpot: `X-HubSpot-RateLimit-Max/Remaining` per `-Interval-Milliseconds`, `-Daily` and
/// `-Daily-Remaining` per day, `-Secondly` and `-Secondly-Remaining` per second; the tightest
/// of the three governs. No reset is announced.
pub fn parse_hubspot(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    let interval = PolicyState {
        limit: r.count(&names::X_HUBSPOT_RATELIMIT_MAX),
        remaining: r.count(&names::X_HUBSPOT_RATELIMIT_REMAINING),
        reset_after: None,
        window: r.millis(&names::X_HUBSPOT_RATELIMIT_INTERVAL_MILLISECONDS),
    };
    let daily = PolicyState {
        limit: r.count(&names::X_HUBSPOT_RATELIMIT_DAILY),
        remaining: r.count(&names::X_HUBSPOT_RATELIMIT_DAILY_REMAINING),
        reset_after: None,
        window: r.cap(HUBSPOT_DAILY_WINDOW).ok(),
    };
    let secondly = PolicyState {
        limit: r.count(&names::X_HUBSPOT_RATELIMIT_SECONDLY),
        remaining: r.count(&names::X_HUBSPOT_RATELIMIT_SECONDLY_REMAINING),
        reset_after: None,
        window: r.cap(HUBSPOT_SECONDLY_WINDOW).ok(),
    };
    let announced = |p: &PolicyState| p.limit.is_some() || p.remaining.is_some();
    let policies = [interval, daily, secondly].into_iter().filter(announced);
    governing(policies).map(|s| s.into_observation(Source::Hubspot))
}

/// Stripe sends no quota headers; a 429 with `Stripe-Should-Retry` or
/// `Stripe-Rate-Limited-Reason` is a rate limit without a known wait (back off). Only
/// meaningful on a 429, which the caller checks.
pub fn parse_stripe(r: &mut ResponseHeaders<'_>) -> Option<QuotaObservation> {
    let present = r.has(&names::STRIPE_SHOULD_RETRY) || r.has(&names::STRIPE_RATE_LIMITED_REASON);
    present.then(|| QuotaObservation::new(Source::Stripe))
}
