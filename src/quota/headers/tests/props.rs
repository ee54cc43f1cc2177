//! Property tests: whatever the headers and status, `parse` never panics and every duration
//! it returns is at most `max_wait`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use proptest::prelude::*;

use crate::quota::headers::parse;
use crate::quota::headers::values::{parse_count, parse_reset};
use crate::quota::observation::{HeaderWarning, ParseOptions, ResetFormat};

/// Every header name the parser reads, and a few it must not trip on.
const NAMES: &[&str] = &[
    "date",
    "retry-after",
    "retry-after-ms",
    "ratelimit",
    "ratelimit-policy",
    "beta-ratelimit",
    "beta-ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-resettime",
    "ratelimit-observed",
    "ratelimit-name",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-used",
    "x-ratelimit-resource",
    "x-ratelimit-reset-after",
    "x-ratelimit-bucket",
    "x-ratelimit-global",
    "x-ratelimit-scope",
    "x-github-request-id",
    "x-rate-limit",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
    "x-shopify-shop-api-call-limit",
    "sforce-limit-info",
    "x-hubspot-ratelimit-max",
    "x-hubspot-ratelimit-remaining",
    "x-hubspot-ratelimit-interval-milliseconds",
    "x-hubspot-ratelimit-daily",
    "x-hubspot-ratelimit-daily-remaining",
    "x-hubspot-ratelimit-secondly",
    "x-hubspot-ratelimit-secondly-remaining",
    "stripe-should-retry",
    "stripe-rate-limited-reason",
    "content-type",
];

/// Any bytes a header value may hold: tab, visible ASCII, space, obs-text.
fn any_value_bytes() -> impl Strategy<Value = HeaderValue> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff];
    proptest::collection::vec(byte, 0..48)
        .prop_filter_map("valid header value", |b| HeaderValue::from_bytes(&b).ok())
}

/// Any string that is a valid header value.
fn any_value_string() -> impl Strategy<Value = HeaderValue> {
    any::<String>().prop_filter_map("valid header value", |s| HeaderValue::from_str(&s).ok())
}

/// Values shaped like the real ones, to reach past the first syntax check.
fn plausible_value() -> impl Strategy<Value = HeaderValue> {
    let text = prop_oneof![
        r"-?[0-9]{0,22}(\.[0-9]{0,12})?",
        r"(inf|NaN|-inf|1e9|0x1f|[0-9]{1,4}/[0-9]{1,4}|api-usage=[0-9]{1,6}/[0-9]{0,6})",
        r#"(("[a-z]{0,3}"|[a-z]{1,3}|-?[0-9]{1,16}(\.[0-9]{1,3})?)(;(q|qu|r|t|w|pk|x)=(-?[0-9]{1,16}(\.[0-9]{1,3})?|"[a-z-]*"|:[A-Za-z0-9+/=]*:|\?[01]))*(, ?)?){0,4}"#,
        r"((limit|remaining|reset|x)=-?[0-9]{1,16}(, )?){0,4}",
        r"(Mon|Thu|Sun|Wed)(day)?, [0-9]{2}[ -](Nov|Mar|Feb)[ -][0-9]{2,4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        r"(Sun|Thu) (Nov|Mar) [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}",
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,12})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})",
        r"(Wed|Thu|Mon) (Nov|Mar) [0-9]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT[+-][0-9]{4}( \([A-Za-z ]*\)?)?",
    ];
    text.prop_filter_map("valid header value", |s| HeaderValue::from_str(&s).ok())
}

fn any_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![any_value_bytes(), any_value_string(), plausible_value()]
}

fn any_headers() -> impl Strategy<Value = HeaderMap> {
    proptest::collection::vec((0..NAMES.len(), any_value()), 0..10).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (i, value) in pairs {
            map.append(HeaderName::from_static(NAMES[i]), value);
        }
        map
    })
}

fn any_options() -> impl Strategy<Value = ParseOptions> {
    let format = prop_oneof![
        Just(ResetFormat::Auto),
        Just(ResetFormat::Delta),
        Just(ResetFormat::Epoch),
        Just(ResetFormat::DeltaMs),
    ];
    let max_wait = prop_oneof![
        Just(Duration::from_secs(86_400)),
        Just(Duration::ZERO),
        any::<u64>().prop_map(Duration::from_secs),
        (0u64..100_000).prop_map(Duration::from_millis),
    ];
    (format, max_wait).prop_map(|(reset_format, max_wait)| ParseOptions {
        reset_format,
        max_wait,
    })
}

fn any_now() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        Just(UNIX_EPOCH + Duration::from_secs(1_774_537_200)),
        (0u64..253_402_300_799).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
    ]
}

fn any_status() -> impl Strategy<Value = StatusCode> {
    prop_oneof![
        Just(StatusCode::TOO_MANY_REQUESTS),
        Just(StatusCode::FORBIDDEN),
        Just(StatusCode::SERVICE_UNAVAILABLE),
        Just(StatusCode::OK),
        (100u16..=999).prop_filter_map("status", |s| StatusCode::from_u16(s).ok()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics_and_caps_every_duration(
        status in any_status(),
        headers in any_headers(),
        now in any_now(),
        opts in any_options(),
    ) {
        let (obs, warnings) = parse(status, &headers, now, &opts);
        for w in &warnings {
            prop_assert!(w.value.chars().count() <= HeaderWarning::MAX_VALUE_CHARS);
        }
        if let Some(o) = obs {
            for d in [o.reset_after, o.window, o.retry_after].into_iter().flatten() {
                prop_assert!(d <= opts.max_wait, "{d:?} > {:?} in {o:?}", opts.max_wait);
            }
            prop_assert!(!o.rate_limited || matches!(status.as_u16(), 403 | 429 | 503));
            prop_assert!(o.retry_after.is_none() || o.rate_limited);
            if let Some(b) = o.bucket {
                prop_assert!(b.size > 0);
            }
        } else {
            prop_assert!(status != StatusCode::TOO_MANY_REQUESTS);
        }
    }

    #[test]
    fn reset_values_never_panic(value in any::<String>(), secs in any::<u64>()) {
        let date_ref = UNIX_EPOCH + Duration::from_secs(secs % 253_402_300_799);
        for format in [ResetFormat::Auto, ResetFormat::Delta, ResetFormat::Epoch, ResetFormat::DeltaMs] {
            let _ = parse_reset(&value, format, date_ref);
        }
    }

    #[test]
    fn counts_round_trip(n in any::<u64>(), frac in "[0-9]{0,12}") {
        prop_assert_eq!(parse_count(&n.to_string()), Ok(n));
        if !frac.is_empty() {
            prop_assert_eq!(parse_count(&format!("{n}.{frac}")), Ok(n));
        }
    }
}
