//! Section 1: `Retry-After` (RFC 9110 10.2.3) and its off-spec variants.

use super::support::{case, check, ms, secs, want, Expect, NOW_DATE};
use crate::quota::observation::Source::{RetryAfter, Status};

const MALFORMED: &str = "malformed";
const HUGE: &str = "longer than max_wait";

#[test]
fn retry_after_forms() {
    let ra = || want(RetryAfter).limited();
    check(vec![
        case(
            "delay-seconds",
            429,
            &[("Retry-After", "120")],
            Some(ra().retry(secs(120))),
        ),
        case(
            "zero",
            429,
            &[("Retry-After", "0")],
            Some(ra().retry(secs(0))),
        ),
        case(
            "fractional (Shopify)",
            429,
            &[("Retry-After", "2.0")],
            Some(ra().retry(secs(2))),
        ),
        case(
            "fractional ms",
            429,
            &[("Retry-After", "1.25")],
            Some(ra().retry(ms(1250))),
        ),
        case(
            "spaces around",
            429,
            &[("Retry-After", " 7 ")],
            Some(ra().retry(secs(7))),
        ),
        case(
            "retry-after-ms (AI vendors)",
            429,
            &[("retry-after-ms", "1500")],
            Some(ra().retry(ms(1500))),
        ),
        case(
            "retry-after-ms wins, more precise",
            429,
            &[("retry-after-ms", "1500"), ("Retry-After", "2")],
            Some(ra().retry(ms(1500))),
        ),
        case(
            "bad retry-after-ms falls back to Retry-After",
            429,
            &[("retry-after-ms", "soon"), ("Retry-After", "2")],
            Some(ra().retry(secs(2))),
        )
        .warns(&[("retry-after-ms", MALFORMED)]),
        case(
            "IMF-fixdate, relative to Date",
            429,
            &[
                ("Date", NOW_DATE),
                ("Retry-After", "Thu, 26 Mar 2026 15:02:00 GMT"),
            ],
            Some(ra().retry(secs(120))),
        ),
        case(
            "IMF-fixdate without Date: relative to arrival",
            429,
            &[("Retry-After", "Thu, 26 Mar 2026 15:00:30 GMT")],
            Some(ra().retry(secs(30))),
        ),
        case(
            "RFC 850, two-digit year",
            503,
            &[
                ("Date", NOW_DATE),
                ("Retry-After", "Thursday, 26-Mar-26 15:01:00 GMT"),
            ],
            Some(ra().retry(secs(60))),
        ),
        case(
            "RFC 850 from 1994 is in the past: zero",
            503,
            &[("Retry-After", "Sunday, 06-Nov-94 08:49:37 GMT")],
            Some(ra().retry(secs(0))),
        ),
        case(
            "asctime, space-padded day",
            429,
            &[
                ("Date", "Fri, 06 Mar 2026 08:49:00 GMT"),
                ("Retry-After", "Fri Mar  6 08:49:37 2026"),
            ],
            Some(ra().retry(secs(37))),
        ),
        case(
            "asctime from 1994 (RFC example): past, zero",
            429,
            &[("Retry-After", "Sun Nov  6 08:49:37 1994")],
            Some(ra().retry(secs(0))),
        ),
        case(
            "IMF-fixdate in the past: zero",
            429,
            &[("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")],
            Some(ra().retry(secs(0))),
        ),
        case(
            "weekday mismatch: ignored (httpdate refuses it)",
            429,
            &[("Retry-After", "Mon, 26 Mar 2026 15:02:00 GMT")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", "invalid date")]),
        case(
            "garbage",
            429,
            &[("Retry-After", "soon")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", MALFORMED)]),
        case(
            "empty",
            429,
            &[("Retry-After", "")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", "empty")]),
        case(
            "negative",
            429,
            &[("Retry-After", "-5")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", "negative")]),
        case(
            "NaN",
            429,
            &[("Retry-After", "NaN")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", "non-finite")]),
        case(
            "inf",
            429,
            &[("Retry-After", "inf")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", "non-finite")]),
        case(
            "huge (over one day)",
            429,
            &[("Retry-After", "86401")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", HUGE)]),
        case(
            "exactly max_wait is kept",
            429,
            &[("Retry-After", "86400")],
            Some(ra().retry(secs(86_400))),
        ),
        case(
            "beyond u64",
            429,
            &[("Retry-After", "99999999999999999999999")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", "out of range")]),
        case(
            "list (proxy-combined)",
            429,
            &[("Retry-After", "120, 120")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", MALFORMED)]),
        case(
            "date beyond max_wait",
            429,
            &[("Retry-After", "Fri, 27 Mar 2026 15:00:01 GMT")],
            Some(want(Status).limited()),
        )
        .warns(&[("retry-after", HUGE)]),
    ]);
}

#[test]
fn status_and_retry_after() {
    check(vec![
        case(
            "429 without any header (Graph sometimes): rate limited, back off",
            429,
            &[],
            Some(want(Status).limited()),
        ),
        case("503 without Retry-After: a server error", 503, &[], None),
        case(
            "503 with Retry-After (Graph)",
            503,
            &[("Retry-After", "10")],
            Some(want(RetryAfter).limited().retry(secs(10))),
        ),
        case(
            "503 with garbage Retry-After: a server error",
            503,
            &[("Retry-After", "x")],
            None,
        )
        .warns(&[("retry-after", MALFORMED)]),
        case(
            "200 with Retry-After: nothing to wait for",
            200,
            &[("Retry-After", "10")],
            None,
        ),
        case(
            "301 with Retry-After: a redirect",
            301,
            &[("Retry-After", "10")],
            None,
        ),
        case(
            "500 with Retry-After: a server error",
            500,
            &[("Retry-After", "10")],
            None,
        ),
        case(
            "403 with Retry-After: a throttle, not a permission error",
            403,
            &[("Retry-After", "60")],
            Some(want(RetryAfter).limited().retry(secs(60))),
        ),
        case(
            "Spotify / Slack 429",
            429,
            &[("Retry-After", "3")],
            Some(want(RetryAfter).limited().retry(secs(3))),
        ),
    ]);
}
