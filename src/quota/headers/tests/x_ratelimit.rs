//! Section 3: the `X-RateLimit-*` / `X-Rate-Limit-*` vendors (GitHub, X, Okta, Zendesk,
//! Discord).

use super::support::{case, check, ms, secs, want, Expect, NOW_DATE};
use crate::quota::observation::ParseOptions;
use crate::quota::observation::ResetFormat::DeltaMs;
use crate::quota::observation::Source::{
    Discord, Github, Ietf06, RetryAfter, XRateLimit, XRateLimitDashed,
};

const HUGE: &str = "longer than max_wait";

type Pairs = Vec<(&'static str, &'static str)>;

/// A GitHub response: limit 5000, reset in one hour.
fn gh_headers(remaining: &'static str, extra: &[(&'static str, &'static str)]) -> Pairs {
    let mut h = vec![
        ("Date", NOW_DATE),
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", remaining),
        ("x-ratelimit-used", "1"),
        ("x-ratelimit-reset", "1774540800"),
        ("x-ratelimit-resource", "core"),
    ];
    h.extend_from_slice(extra);
    h
}

#[test]
fn github() {
    let gh = || want(Github).limit(5000).reset(secs(3600)).resource("core");
    check(vec![
        case(
            "epoch reset",
            200,
            &gh_headers("4999", &[]),
            Some(gh().remaining(4999)),
        ),
        case(
            "epoch reset against the supplier's Date (clock 10 s behind ours)",
            200,
            &[
                ("Date", "Thu, 26 Mar 2026 14:59:50 GMT"),
                ("x-ratelimit-limit", "60"),
                ("x-ratelimit-reset", "1774540800"),
                ("x-github-request-id", "CAFE:1"),
            ],
            Some(want(Github).limit(60).reset(secs(3610))),
        ),
        case(
            "primary limit: 403 with remaining 0 is a rate limit",
            403,
            &gh_headers("0", &[]),
            Some(gh().remaining(0).limited()),
        ),
        case(
            "primary limit: 429 with remaining 0",
            429,
            &gh_headers("0", &[]),
            Some(gh().remaining(0).limited()),
        ),
        case(
            "secondary limit: 403 with retry-after",
            403,
            &gh_headers("4000", &[("retry-after", "60")]),
            Some(gh().remaining(4000).limited().retry(secs(60))),
        ),
        case(
            "secondary limit without x-ratelimit headers (x-github-request-id)",
            403,
            &[("x-github-request-id", "CAFE:1"), ("retry-after", "60")],
            Some(want(RetryAfter).limited().retry(secs(60))),
        ),
        case(
            "plain 403 is a permission error",
            403,
            &gh_headers("4000", &[]),
            Some(gh().remaining(4000)),
        ),
        case(
            "plain 403 without quota headers",
            403,
            &[("x-github-request-id", "CAFE:1")],
            None,
        ),
        case(
            "remaining from limit - used",
            200,
            &[
                ("x-ratelimit-limit", "60"),
                ("x-ratelimit-used", "45"),
                ("x-ratelimit-resource", "core"),
            ],
            Some(want(Github).limit(60).remaining(15).resource("core")),
        ),
        case(
            "search is its own resource",
            200,
            &[
                ("x-ratelimit-limit", "30"),
                ("x-ratelimit-remaining", "29"),
                ("x-ratelimit-resource", "search"),
            ],
            Some(want(Github).limit(30).remaining(29).resource("search")),
        ),
        case(
            "an odd resource name is ignored and counted",
            200,
            &[
                ("x-ratelimit-limit", "30"),
                ("x-ratelimit-remaining", "29"),
                ("x-ratelimit-resource", "se arch/../x"),
            ],
            Some(want(Github).limit(30).remaining(29)),
        )
        .warns(&[("x-ratelimit-resource", "malformed")]),
        case(
            "304 still reports the quota",
            304,
            &gh_headers("4999", &[]),
            Some(gh().remaining(4999)),
        ),
        case(
            "403 with remaining 0 elsewhere is not GitHub's rule",
            403,
            &[("x-ratelimit-limit", "60"), ("x-ratelimit-remaining", "0")],
            Some(want(XRateLimit).limit(60).remaining(0)),
        ),
    ]);
}

#[test]
fn x_twitter_okta_zendesk() {
    check(vec![
        case(
            "X (Twitter): epoch seconds, 15-min window",
            200,
            &[
                ("Date", NOW_DATE),
                ("x-rate-limit-limit", "900"),
                ("x-rate-limit-remaining", "899"),
                ("x-rate-limit-reset", "1774538100"),
            ],
            Some(
                want(XRateLimitDashed)
                    .limit(900)
                    .remaining(899)
                    .reset(secs(900)),
            ),
        ),
        case(
            "Okta: epoch seconds",
            429,
            &[
                ("X-Rate-Limit-Limit", "600"),
                ("X-Rate-Limit-Remaining", "0"),
                ("X-Rate-Limit-Reset", "1774537260"),
            ],
            Some(
                want(XRateLimitDashed)
                    .limit(600)
                    .remaining(0)
                    .reset(secs(60))
                    .limited(),
            ),
        ),
        case(
            "Zendesk X-Rate-Limit",
            200,
            &[("X-Rate-Limit", "700"), ("X-Rate-Limit-Remaining", "699")],
            Some(want(XRateLimitDashed).limit(700).remaining(699)),
        ),
        case(
            "Zendesk with ratelimit-* too: the IETF names win",
            200,
            &[
                ("X-Rate-Limit", "700"),
                ("X-Rate-Limit-Remaining", "699"),
                ("ratelimit-limit", "700"),
                ("ratelimit-remaining", "699"),
                ("ratelimit-reset", "41"),
            ],
            Some(want(Ietf06).limit(700).remaining(699).reset(secs(41))),
        ),
        case(
            "X-Rate-Limit-Reset: 600000 (ms delta): 6.9 days in auto, ignored",
            200,
            &[
                ("X-Rate-Limit-Remaining", "10"),
                ("X-Rate-Limit-Reset", "600000"),
            ],
            Some(want(XRateLimitDashed).remaining(10)),
        )
        .warns(&[("x-rate-limit-reset", HUGE)]),
        case(
            "X-Rate-Limit-Reset: 600000 with reset_format delta_ms",
            200,
            &[
                ("X-Rate-Limit-Remaining", "10"),
                ("X-Rate-Limit-Reset", "600000"),
            ],
            Some(want(XRateLimitDashed).remaining(10).reset(secs(600))),
        )
        .opts(ParseOptions {
            reset_format: DeltaMs,
            ..ParseOptions::default()
        }),
    ]);
}

#[test]
fn discord() {
    check(vec![
        case(
            "Reset-After preferred over Reset",
            200,
            &[
                ("X-RateLimit-Limit", "5"),
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "1774537300.000"),
                ("X-RateLimit-Reset-After", "64.57"),
                ("X-RateLimit-Bucket", "abcd1234"),
            ],
            Some(
                want(Discord)
                    .limit(5)
                    .remaining(1)
                    .reset(ms(64_570))
                    .resource("abcd1234"),
            ),
        ),
        case(
            "Reset (epoch with decimals) when Reset-After is unusable",
            200,
            &[
                ("X-RateLimit-Limit", "5"),
                ("X-RateLimit-Reset", "1774537264.570"),
                ("X-RateLimit-Reset-After", "soon"),
                ("X-RateLimit-Bucket", "abcd1234"),
            ],
            Some(
                want(Discord)
                    .limit(5)
                    .reset(ms(64_570))
                    .resource("abcd1234"),
            ),
        )
        .warns(&[("x-ratelimit-reset-after", "malformed")]),
        case(
            "429 global: Retry-After",
            429,
            &[
                ("X-RateLimit-Global", "true"),
                ("X-RateLimit-Scope", "global"),
                ("Retry-After", "3"),
            ],
            Some(want(Discord).limited().retry(secs(3))),
        ),
        case(
            "429 shared scope names its bucket: the bucket's own limit",
            429,
            &[
                ("X-RateLimit-Limit", "1"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset-After", "2.5"),
                ("X-RateLimit-Bucket", "b2"),
                ("X-RateLimit-Scope", "shared"),
            ],
            Some(
                want(Discord)
                    .limit(1)
                    .remaining(0)
                    .reset(ms(2500))
                    .limited()
                    .retry(ms(2500))
                    .resource("b2"),
            ),
        ),
        case(
            "429 user scope: Reset-After is the wait",
            429,
            &[
                ("X-RateLimit-Limit", "5"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset-After", "2.5"),
                ("X-RateLimit-Scope", "user"),
            ],
            Some(
                want(Discord)
                    .limit(5)
                    .remaining(0)
                    .reset(ms(2500))
                    .limited()
                    .retry(ms(2500)),
            ),
        ),
    ]);
}
