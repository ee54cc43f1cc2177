//! Rate-limit header rendering, one pure function per [`Convention`].
//!
//! Names are written lowercase (HTTP/1 names are case-insensitive; hyper sends them
//! lowercase). Every rounding goes up, so a client is never told the window reopens before it
//! does: a delta is never 0 while the window is closed.

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};

use super::quota::Decision;
use super::Convention;

/// Headers to add to a response, in order.
pub type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// The last second `httpdate` can format (`Fri, 31 Dec 9999 23:59:59 GMT`).
const MAX_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// The rate-limit headers of `decision` under `convention`; none without a quota.
/// `bucket` is the Discord bucket id.
pub fn render(convention: Convention, decision: &Decision, bucket: &HeaderValue) -> HeaderList {
    if decision.unlimited() {
        return Vec::new();
    }
    match convention {
        Convention::Github => github(decision),
        Convention::Delta => delta(decision),
        Convention::Ietf => ietf(decision),
        Convention::Ietf07 => ietf_07(decision),
        Convention::Discord => discord(decision, bucket),
        Convention::RetryAfter => retry_after(decision),
        Convention::RetryAfterDate => retry_after_date(decision),
    }
}

/// GitHub: limit, remaining, used, reset (epoch seconds of the window end), resource `core`.
pub fn github(d: &Decision) -> HeaderList {
    vec![
        (name("x-ratelimit-limit"), HeaderValue::from(d.limit)),
        (
            name("x-ratelimit-remaining"),
            HeaderValue::from(d.remaining),
        ),
        (name("x-ratelimit-used"), HeaderValue::from(d.used)),
        (
            name("x-ratelimit-reset"),
            HeaderValue::from(ceil_secs(d.reset_at)),
        ),
        (
            name("x-ratelimit-resource"),
            HeaderValue::from_static("core"),
        ),
    ]
}

/// `X-RateLimit-Limit/Remaining/Reset`, the reset in delta seconds (rounded up, so at least 1).
pub fn delta(d: &Decision) -> HeaderList {
    vec![
        (name("x-ratelimit-limit"), HeaderValue::from(d.limit)),
        (
            name("x-ratelimit-remaining"),
            HeaderValue::from(d.remaining),
        ),
        (
            name("x-ratelimit-reset"),
            HeaderValue::from(ceil_secs(d.reset_after)),
        ),
    ]
}

/// IETF draft -08..-11: `RateLimit-Policy: "default";q=N;w=W`, `RateLimit: "default";r=R;t=T`.
pub fn ietf(d: &Decision) -> HeaderList {
    vec![
        (
            name("ratelimit-policy"),
            text(format!(
                "\"default\";q={};w={}",
                d.limit,
                ceil_secs(d.window)
            )),
        ),
        (
            name("ratelimit"),
            text(format!(
                "\"default\";r={};t={}",
                d.remaining,
                ceil_secs(d.reset_after)
            )),
        ),
    ]
}

/// IETF draft -07: `RateLimit: limit=N, remaining=R, reset=T`, `RateLimit-Policy: N;w=W`.
pub fn ietf_07(d: &Decision) -> HeaderList {
    vec![
        (
            name("ratelimit"),
            text(format!(
                "limit={}, remaining={}, reset={}",
                d.limit,
                d.remaining,
                ceil_secs(d.reset_after)
            )),
        ),
        (
            name("ratelimit-policy"),
            text(format!("{};w={}", d.limit, ceil_secs(d.window))),
        ),
    ]
}

/// Discord: limit, remaining, reset (epoch seconds, 3 decimals), reset-after (seconds,
/// 3 decimals), bucket; `X-RateLimit-Scope: user` on a 429.
pub fn discord(d: &Decision, bucket: &HeaderValue) -> HeaderList {
    let mut headers = vec![
        (name("x-ratelimit-limit"), HeaderValue::from(d.limit)),
        (
            name("x-ratelimit-remaining"),
            HeaderValue::from(d.remaining),
        ),
        (name("x-ratelimit-reset"), text(millis_decimal(d.reset_at))),
        (
            name("x-ratelimit-reset-after"),
            text(millis_decimal(d.reset_after)),
        ),
        (name("x-ratelimit-bucket"), bucket.clone()),
    ];
    if !d.allowed {
        headers.push((name("x-ratelimit-scope"), HeaderValue::from_static("user")));
    }
    headers
}

/// Nothing on success; `Retry-After: <seconds until the window end, rounded up>` on a 429.
pub fn retry_after(d: &Decision) -> HeaderList {
    if d.allowed {
        return Vec::new();
    }
    vec![(
        http::header::RETRY_AFTER,
        HeaderValue::from(ceil_secs(d.reset_after)),
    )]
}

/// Nothing on success; `Retry-After: <IMF-fixdate of the window end, rounded up to the next
/// whole second>` on a 429.
pub fn retry_after_date(d: &Decision) -> HeaderList {
    if d.allowed {
        return Vec::new();
    }
    let secs = ceil_secs(d.reset_at).min(MAX_HTTP_DATE_SECS);
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    vec![(http::header::RETRY_AFTER, text(date))]
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Seconds with 3 decimals, rounded up to the millisecond: `1800000000.001`.
fn millis_decimal(d: Duration) -> String {
    let millis = d.as_nanos().div_ceil(1_000_000);
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

const fn name(lowercase: &'static str) -> HeaderName {
    HeaderName::from_static(lowercase)
}

/// A header value from text this module produced (digits, punctuation, ASCII letters).
fn text(value: String) -> HeaderValue {
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    /// A 100-per-minute window `[T0, T0 + 60)`, seen at `T0 + elapsed`.
    fn decision(allowed: bool, remaining: u32, elapsed: Duration) -> Decision {
        let start = Duration::from_secs(T0);
        let reset_at = start + Duration::from_secs(60);
        Decision {
            allowed,
            limit: 100,
            remaining,
            used: 100 - remaining,
            window: Duration::from_secs(60),
            window_start: start,
            reset_at,
            reset_after: reset_at - (start + elapsed),
        }
    }

    fn pairs(headers: &HeaderList) -> Vec<(&str, &str)> {
        headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or("<binary>")))
            .collect()
    }

    fn bucket() -> HeaderValue {
        HeaderValue::from_static("abc123")
    }

    fn rendered(convention: Convention, d: &Decision) -> Vec<(String, String)> {
        pairs(&render(convention, d, &bucket()))
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    fn expect(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn github() {
        let ok = decision(true, 58, Duration::from_millis(20_250));
        assert_eq!(
            rendered(Convention::Github, &ok),
            expect(&[
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "58"),
                ("x-ratelimit-used", "42"),
                ("x-ratelimit-reset", "1800000060"),
                ("x-ratelimit-resource", "core"),
            ])
        );
        let limited = decision(false, 0, Duration::from_millis(59_999));
        assert_eq!(
            rendered(Convention::Github, &limited),
            expect(&[
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-used", "100"),
                ("x-ratelimit-reset", "1800000060"),
                ("x-ratelimit-resource", "core"),
            ])
        );
    }

    #[test]
    fn github_rounds_a_fractional_window_end_up() {
        let mut d = decision(true, 1, Duration::ZERO);
        d.reset_at = Duration::from_millis(1_800_000_000_500);
        assert_eq!(
            pairs(&super::github(&d))[3],
            ("x-ratelimit-reset", "1800000001")
        );
    }

    #[test]
    fn delta() {
        let cases = [
            (Duration::ZERO, "60"),
            (Duration::from_millis(20_250), "40"), // 39.75 s left
            (Duration::from_secs(20), "40"),
            (Duration::from_millis(59_999), "1"), // 1 ms left: never 0
            (Duration::from_secs(60) - Duration::from_nanos(1), "1"),
        ];
        for (elapsed, reset) in cases {
            let d = decision(false, 0, elapsed);
            assert_eq!(
                rendered(Convention::Delta, &d),
                expect(&[
                    ("x-ratelimit-limit", "100"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", reset),
                ]),
                "elapsed {elapsed:?}"
            );
        }
    }

    #[test]
    fn ietf() {
        let d = decision(true, 50, Duration::from_millis(29_500));
        assert_eq!(
            rendered(Convention::Ietf, &d),
            expect(&[
                ("ratelimit-policy", "\"default\";q=100;w=60"),
                ("ratelimit", "\"default\";r=50;t=31"),
            ])
        );
        let d = decision(false, 0, Duration::from_millis(59_999));
        assert_eq!(
            rendered(Convention::Ietf, &d),
            expect(&[
                ("ratelimit-policy", "\"default\";q=100;w=60"),
                ("ratelimit", "\"default\";r=0;t=1"),
            ])
        );
    }

    #[test]
    fn ietf_07() {
        let d = decision(true, 50, Duration::from_secs(30));
        assert_eq!(
            rendered(Convention::Ietf07, &d),
            expect(&[
                ("ratelimit", "limit=100, remaining=50, reset=30"),
                ("ratelimit-policy", "100;w=60"),
            ])
        );
        let d = decision(false, 0, Duration::from_millis(59_001));
        assert_eq!(
            rendered(Convention::Ietf07, &d),
            expect(&[
                ("ratelimit", "limit=100, remaining=0, reset=1"),
                ("ratelimit-policy", "100;w=60"),
            ])
        );
    }

    #[test]
    fn ietf_window_of_a_fraction_of_a_second_rounds_up() {
        let mut d = decision(true, 1, Duration::ZERO);
        d.window = Duration::from_millis(250);
        assert_eq!(pairs(&super::ietf(&d))[0].1, "\"default\";q=100;w=1");
        assert_eq!(pairs(&super::ietf_07(&d))[1].1, "100;w=1");
    }

    #[test]
    fn discord() {
        let d = decision(true, 99, Duration::from_millis(4_321));
        assert_eq!(
            rendered(Convention::Discord, &d),
            expect(&[
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "99"),
                ("x-ratelimit-reset", "1800000060.000"),
                ("x-ratelimit-reset-after", "55.679"),
                ("x-ratelimit-bucket", "abc123"),
            ])
        );
        // 0.5 ms left rounds up to 0.001, never 0.000; a 429 names the scope.
        let mut d = decision(false, 0, Duration::from_micros(59_999_500));
        d.reset_at += Duration::from_micros(1_250);
        d.reset_after += Duration::from_micros(1_250);
        assert_eq!(
            rendered(Convention::Discord, &d),
            expect(&[
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1800000060.002"),
                ("x-ratelimit-reset-after", "0.002"),
                ("x-ratelimit-bucket", "abc123"),
                ("x-ratelimit-scope", "user"),
            ])
        );
        let d = decision(false, 0, Duration::from_micros(59_999_500));
        assert_eq!(
            pairs(&super::discord(&d, &bucket()))[3],
            ("x-ratelimit-reset-after", "0.001")
        );
    }

    #[test]
    fn retry_after() {
        assert_eq!(
            rendered(Convention::RetryAfter, &decision(true, 3, Duration::ZERO)),
            expect(&[])
        );
        let cases = [
            (Duration::ZERO, "60"),
            (Duration::from_millis(15_100), "45"),
            (Duration::from_millis(59_999), "1"),
        ];
        for (elapsed, value) in cases {
            assert_eq!(
                rendered(Convention::RetryAfter, &decision(false, 0, elapsed)),
                expect(&[("retry-after", value)])
            );
        }
    }

    #[test]
    fn retry_after_date() {
        assert_eq!(
            rendered(
                Convention::RetryAfterDate,
                &decision(true, 3, Duration::ZERO)
            ),
            expect(&[])
        );
        // 1800000060 = Fri, 15 Jan 2027 08:01:00 GMT.
        let d = decision(false, 0, Duration::from_secs(10));
        assert_eq!(
            rendered(Convention::RetryAfterDate, &d),
            expect(&[("retry-after", "Fri, 15 Jan 2027 08:01:00 GMT")])
        );
        // A window end between two seconds rounds up.
        let mut d = decision(false, 0, Duration::from_secs(10));
        d.reset_at += Duration::from_millis(1);
        assert_eq!(
            pairs(&super::retry_after_date(&d)),
            [("retry-after", "Fri, 15 Jan 2027 08:01:01 GMT")]
        );
        // Beyond what an HTTP-date can say: clamped, no panic.
        d.reset_at = Duration::from_secs(u64::MAX / 2);
        assert_eq!(
            pairs(&super::retry_after_date(&d)),
            [("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")]
        );
    }

    #[test]
    fn no_quota_no_headers() {
        let mut d = decision(true, 0, Duration::ZERO);
        d.limit = 0;
        d.used = 7;
        for convention in [
            Convention::Github,
            Convention::Delta,
            Convention::Ietf,
            Convention::Ietf07,
            Convention::Discord,
            Convention::RetryAfter,
            Convention::RetryAfterDate,
        ] {
            assert!(
                render(convention, &d, &bucket()).is_empty(),
                "{convention:?}"
            );
        }
    }
}
