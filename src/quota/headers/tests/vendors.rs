//! Section 3: the other vendors (GitLab, Reddit, Jira, Shopify, Salesforce, HubSpot, Stripe,
//! Microsoft Graph) and the JavaScript date seen in the wild.

use super::support::{case, check, secs, want, Expect, NOW_DATE};
use crate::quota::observation::ParseOptions;
use crate::quota::observation::Source::{
    Gitlab, Hubspot, Reddit, RetryAfter, Salesforce, Shopify, Stripe, XRateLimit,
};

const HUGE: &str = "longer than max_wait";

#[test]
fn gitlab_reddit_jira() {
    check(vec![
        case(
            "GitLab: RateLimit-Reset is an epoch",
            200,
            &[
                ("Date", NOW_DATE),
                ("RateLimit-Limit", "600"),
                ("RateLimit-Observed", "1"),
                ("RateLimit-Remaining", "599"),
                ("RateLimit-Reset", "1774537260"),
                ("RateLimit-ResetTime", "Thu, 26 Mar 2026 15:01:00 GMT"),
                ("RateLimit-Name", "throttle_authenticated_api"),
            ],
            Some(want(Gitlab).limit(600).remaining(599).reset(secs(60))),
        ),
        case(
            "GitLab: RateLimit-ResetTime when Reset is missing",
            200,
            &[
                ("RateLimit-Limit", "600"),
                ("RateLimit-ResetTime", "Thu, 26 Mar 2026 15:01:00 GMT"),
            ],
            Some(want(Gitlab).limit(600).reset(secs(60))),
        ),
        case(
            "GitLab 429 with Retry-After",
            429,
            &[
                ("RateLimit-Observed", "601"),
                ("RateLimit-Remaining", "0"),
                ("Retry-After", "60"),
            ],
            Some(want(Gitlab).remaining(0).limited().retry(secs(60))),
        ),
        case(
            "Reddit: fractional remaining, delta reset, limit = used + remaining",
            200,
            &[
                ("X-Ratelimit-Used", "1"),
                ("X-Ratelimit-Remaining", "599.0"),
                ("X-Ratelimit-Reset", "540"),
            ],
            Some(want(Reddit).limit(600).remaining(599).reset(secs(540))),
        ),
        case(
            "Jira: ISO 8601 without seconds",
            200,
            &[
                ("X-RateLimit-Limit", "350"),
                ("X-RateLimit-Remaining", "349"),
                ("X-RateLimit-Reset", "2026-03-26T16:00Z"),
                ("X-RateLimit-NearLimit", "false"),
            ],
            Some(want(XRateLimit).limit(350).remaining(349).reset(secs(3600))),
        ),
        case(
            "Jira: ISO 8601 with seconds",
            200,
            &[
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "2026-03-26T16:00:00Z"),
            ],
            Some(want(XRateLimit).remaining(0).reset(secs(3600))),
        ),
        case(
            "Jira 429 with Retry-After and RateLimit-Ignored",
            429,
            &[
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "2026-03-26T16:00Z"),
                ("RateLimit-Ignored", "jira-quota-global-based"),
                ("Retry-After", "5"),
            ],
            Some(
                want(XRateLimit)
                    .remaining(0)
                    .reset(secs(3600))
                    .limited()
                    .retry(secs(5)),
            ),
        ),
    ]);
}

#[test]
fn shopify_salesforce_hubspot_stripe() {
    check(vec![
        case(
            "Shopify bucket",
            200,
            &[("X-Shopify-Shop-Api-Call-Limit", "32/40")],
            Some(want(Shopify).bucket(32, 40).limit(40).remaining(8)),
        ),
        case(
            "Shopify 429 with Retry-After: 2.0",
            429,
            &[
                ("X-Shopify-Shop-Api-Call-Limit", "40/40"),
                ("Retry-After", "2.0"),
            ],
            Some(
                want(Shopify)
                    .bucket(40, 40)
                    .limit(40)
                    .remaining(0)
                    .limited()
                    .retry(secs(2)),
            ),
        ),
        case(
            "Shopify malformed",
            200,
            &[("X-Shopify-Shop-Api-Call-Limit", "32-40")],
            None,
        )
        .warns(&[("x-shopify-shop-api-call-limit", "malformed")]),
        case(
            "Shopify zero size",
            200,
            &[("X-Shopify-Shop-Api-Call-Limit", "0/0")],
            None,
        )
        .warns(&[("x-shopify-shop-api-call-limit", "malformed")]),
        case(
            "Salesforce api-usage",
            200,
            &[("Sforce-Limit-Info", "api-usage=25/5000")],
            Some(
                want(Salesforce)
                    .limit(5000)
                    .remaining(4975)
                    .window(secs(86_400)),
            ),
        ),
        case(
            "Salesforce per-app usage is tighter",
            200,
            &[(
                "Sforce-Limit-Info",
                "api-usage=25/5000, per-app-api-usage=17/250(appName=sample-app)",
            )],
            Some(
                want(Salesforce)
                    .limit(250)
                    .remaining(233)
                    .window(secs(86_400)),
            ),
        ),
        case(
            "Salesforce malformed",
            200,
            &[("Sforce-Limit-Info", "api-usage=lots")],
            None,
        )
        .warns(&[("sforce-limit-info", "malformed")]),
        case(
            "HubSpot: secondly is tightest",
            200,
            &[
                ("X-HubSpot-RateLimit-Max", "100"),
                ("X-HubSpot-RateLimit-Remaining", "90"),
                ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
                ("X-HubSpot-RateLimit-Daily", "250000"),
                ("X-HubSpot-RateLimit-Daily-Remaining", "249000"),
                ("X-HubSpot-RateLimit-Secondly", "10"),
                ("X-HubSpot-RateLimit-Secondly-Remaining", "9"),
            ],
            Some(want(Hubspot).limit(10).remaining(9).window(secs(1))),
        ),
        case(
            "HubSpot: interval only",
            200,
            &[
                ("X-HubSpot-RateLimit-Max", "100"),
                ("X-HubSpot-RateLimit-Remaining", "50"),
                ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ],
            Some(want(Hubspot).limit(100).remaining(50).window(secs(10))),
        ),
        case(
            "HubSpot: daily nearly spent governs",
            200,
            &[
                ("X-HubSpot-RateLimit-Max", "100"),
                ("X-HubSpot-RateLimit-Remaining", "90"),
                ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
                ("X-HubSpot-RateLimit-Daily", "250000"),
                ("X-HubSpot-RateLimit-Daily-Remaining", "5"),
            ],
            Some(
                want(Hubspot)
                    .limit(250_000)
                    .remaining(5)
                    .window(secs(86_400)),
            ),
        ),
        case(
            "Stripe 429: rate limited, no wait",
            429,
            &[
                ("Stripe-Should-Retry", "true"),
                ("Stripe-Rate-Limited-Reason", "global-rate"),
            ],
            Some(want(Stripe).limited()),
        ),
        case(
            "Stripe 409 with Stripe-Should-Retry: not a rate limit",
            409,
            &[("Stripe-Should-Retry", "true")],
            None,
        ),
        case(
            "Microsoft Graph 503 with Retry-After",
            503,
            &[("Retry-After", "30")],
            Some(want(RetryAfter).limited().retry(secs(30))),
        ),
    ]);
}

#[test]
fn javascript_date_to_string() {
    let year = ParseOptions {
        max_wait: secs(366 * 86_400),
        ..ParseOptions::default()
    };
    check(vec![
        case(
            "JavaScript Date.toString(): parsed",
            200,
            &[
                ("X-RateLimit-Remaining", "3"),
                (
                    "X-RateLimit-Reset",
                    "Thu Mar 26 2026 15:30:00 GMT+0000 (Coordinated Universal Time)",
                ),
            ],
            Some(want(XRateLimit).remaining(3).reset(secs(1800))),
        ),
        case(
            "JavaScript Date.toString() in another zone",
            200,
            &[
                ("X-RateLimit-Remaining", "3"),
                (
                    "X-RateLimit-Reset",
                    "Thu Mar 26 2026 10:30:00 GMT-0500 (Eastern Standard Time)",
                ),
            ],
            Some(want(XRateLimit).remaining(3).reset(secs(1800))),
        ),
        case(
            "the spec's example is months away: longer than max_wait",
            200,
            &[
                ("X-RateLimit-Remaining", "3"),
                (
                    "X-RateLimit-Reset",
                    "Wed Nov 25 2026 16:00:00 GMT+0000 (Coordinated Universal Time)",
                ),
            ],
            Some(want(XRateLimit).remaining(3)),
        )
        .warns(&[("x-ratelimit-reset", HUGE)]),
        case(
            "the spec's example with a one-year max_wait",
            200,
            &[
                ("X-RateLimit-Remaining", "3"),
                (
                    "X-RateLimit-Reset",
                    "Wed Nov 25 2026 16:00:00 GMT+0000 (Coordinated Universal Time)",
                ),
            ],
            Some(
                want(XRateLimit)
                    .remaining(3)
                    .reset(secs(1_795_622_400 - 1_774_537_200)),
            ),
        )
        .opts(year),
        case(
            "wrong weekday refused",
            200,
            &[
                ("X-RateLimit-Remaining", "3"),
                (
                    "X-RateLimit-Reset",
                    "Mon Mar 26 2026 15:30:00 GMT+0000 (UTC)",
                ),
            ],
            Some(want(XRateLimit).remaining(3)),
        )
        .warns(&[("x-ratelimit-reset", "invalid date")]),
    ]);
}
