//! Section 4: epoch or delta, the value parsers, and `reset_format` overrides.

use std::time::Duration;

use super::support::{case, check, ms, now, secs, want, Expect, NOW_DATE};
use crate::quota::headers::values::{parse_count, parse_date, parse_number, parse_reset, Number};
use crate::quota::observation::ResetFormat::{self, Auto, Delta, DeltaMs, Epoch};
use crate::quota::observation::Source::{Ietf, XRateLimit};
use crate::quota::observation::{Ignored, ParseOptions};

/// `parse_reset` with the arrival time as the reference.
fn reset(value: &str, format: ResetFormat) -> Result<Duration, Ignored> {
    parse_reset(value, format, now())
}

#[test]
fn magnitude_rule() {
    let rows: &[(&str, ResetFormat, Result<Duration, Ignored>)] = &[
        ("50", Auto, Ok(secs(50))),
        ("0", Auto, Ok(secs(0))),
        ("2.5", Auto, Ok(ms(2500))),
        ("999999999", Auto, Ok(secs(999_999_999))),
        ("1000000000", Auto, Ok(secs(0))),
        ("1774537260", Auto, Ok(secs(60))),
        ("1774537260.5", Auto, Ok(ms(60_500))),
        ("1774537199", Auto, Ok(secs(0))),
        (
            "99999999999",
            Auto,
            Ok(secs(99_999_999_999 - 1_774_537_200)),
        ),
        ("100000000000", Auto, Ok(secs(0))),
        ("1774537260000", Auto, Ok(secs(60))),
        ("1774537260500", Auto, Ok(ms(60_500))),
        ("1774537260500.9", Auto, Ok(Duration::new(60, 500_900_000))),
        ("Thu, 26 Mar 2026 15:01:00 GMT", Auto, Ok(secs(60))),
        ("Thursday, 26-Mar-26 15:01:00 GMT", Auto, Ok(secs(60))),
        ("Thu Mar 26 15:01:00 2026", Auto, Ok(secs(60))),
        ("2026-03-26T15:01Z", Auto, Ok(secs(60))),
        ("2026-03-26T15:01:00Z", Auto, Ok(secs(60))),
        ("2026-03-26T15:01:00.250Z", Auto, Ok(ms(60_250))),
        ("2026-03-26T16:01:00+01:00", Auto, Ok(secs(60))),
        ("2026-03-26T16:01+01:00", Auto, Ok(secs(60))),
        ("2026-03-26T16:01+0100", Auto, Ok(secs(60))),
        ("2026-03-26t15:01:00z", Auto, Ok(secs(60))),
        ("2026-03-26T15:01", Auto, Err(Ignored::Malformed)),
        ("2026-02-30T15:01Z", Auto, Err(Ignored::Malformed)),
        (
            "Thu Mar 26 2026 15:01:00 GMT+0000 (Coordinated Universal Time)",
            Auto,
            Ok(secs(60)),
        ),
        ("Thu Mar 26 2026 15:01:00 GMT+0000", Auto, Ok(secs(60))),
        (
            "Thu Mar 26 2026 15:01:00 GMT+0000 (UTC",
            Auto,
            Err(Ignored::InvalidDate),
        ),
        (
            "Mon, 26 Mar 2026 15:01:00 GMT",
            Auto,
            Err(Ignored::InvalidDate),
        ),
        // Overrides.
        ("50", Delta, Ok(secs(50))),
        ("1774537260", Delta, Ok(secs(1_774_537_260))),
        ("50", Epoch, Ok(secs(0))),
        ("1774537260", Epoch, Ok(secs(60))),
        ("1774537260000", Epoch, Ok(secs(60))),
        ("600000", DeltaMs, Ok(secs(600))),
        ("1500.5", DeltaMs, Ok(Duration::from_micros(1_500_500))),
        ("2026-03-26T15:01Z", Delta, Ok(secs(60))),
        ("2026-03-26T15:01Z", Epoch, Ok(secs(60))),
        // Refused.
        ("", Auto, Err(Ignored::Empty)),
        ("  ", Auto, Err(Ignored::Empty)),
        ("-5", Auto, Err(Ignored::Negative)),
        ("-1774537260", Epoch, Err(Ignored::Negative)),
        ("-inf", Auto, Err(Ignored::NonFinite)),
        ("Infinity", Auto, Err(Ignored::NonFinite)),
        ("1e3", Auto, Err(Ignored::Malformed)),
        ("0x10", Auto, Err(Ignored::Malformed)),
        ("+5", Auto, Err(Ignored::Malformed)),
        ("5.", Auto, Err(Ignored::Malformed)),
        (".5", Auto, Err(Ignored::Malformed)),
        ("1.2.3", Auto, Err(Ignored::Malformed)),
        ("soon", Auto, Err(Ignored::Malformed)),
        ("99999999999999999999999", Auto, Err(Ignored::OutOfRange)),
        (
            "18446744073709551615",
            Epoch,
            Ok(Duration::from_millis(u64::MAX) - secs(NOW_SECS_)),
        ),
    ];
    let failures: Vec<String> = rows
        .iter()
        .filter(|(value, format, expected)| reset(value, *format) != *expected)
        .map(|(value, format, expected)| {
            format!(
                "{value:?} {format:?}: got {:?}, want {expected:?}",
                reset(value, *format)
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const NOW_SECS_: u64 = super::support::NOW_SECS;

#[test]
fn numbers_and_counts() {
    assert_eq!(
        parse_number("64.57"),
        Ok(Number {
            whole: 64,
            nanos: 570_000_000
        })
    );
    assert_eq!(
        parse_number("1.1234567891"),
        Ok(Number {
            whole: 1,
            nanos: 123_456_789
        })
    );
    assert_eq!(parse_number("\t7 "), Ok(Number { whole: 7, nanos: 0 }));
    assert_eq!(parse_count("599.0"), Ok(599));
    assert_eq!(parse_count("599.99"), Ok(599));
    assert_eq!(parse_count("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(
        parse_count("18446744073709551616"),
        Err(Ignored::OutOfRange)
    );
    assert_eq!(parse_count("-0"), Err(Ignored::Negative));
    assert_eq!(parse_count("NaN"), Err(Ignored::NonFinite));
    assert_eq!(
        parse_date("Sun, 06 Nov 1994 08:49:37 GMT").map(|_| ()),
        Ok(())
    );
}

#[test]
fn overrides_and_clock_skew_through_parse() {
    let with = |reset_format| ParseOptions {
        reset_format,
        ..ParseOptions::default()
    };
    check(vec![
        case(
            "auto: epoch seconds",
            200,
            &[
                ("Date", NOW_DATE),
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "1774537260"),
            ],
            Some(want(XRateLimit).remaining(1).reset(secs(60))),
        ),
        case(
            "epoch against a Date 30 s ahead of our clock",
            200,
            &[
                ("Date", "Thu, 26 Mar 2026 15:00:30 GMT"),
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "1774537260"),
            ],
            Some(want(XRateLimit).remaining(1).reset(secs(30))),
        ),
        case(
            "unparseable Date: the arrival time, with a warning",
            200,
            &[
                ("Date", "yesterday"),
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "1774537260"),
            ],
            Some(want(XRateLimit).remaining(1).reset(secs(60))),
        )
        .warns(&[("date", "invalid date")]),
        case(
            "delta override makes an epoch huge",
            200,
            &[
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "1774537260"),
            ],
            Some(want(XRateLimit).remaining(1)),
        )
        .warns(&[("x-ratelimit-reset", "longer than max_wait")])
        .opts(with(Delta)),
        case(
            "epoch override makes a small value past",
            200,
            &[("X-RateLimit-Remaining", "1"), ("X-RateLimit-Reset", "60")],
            Some(want(XRateLimit).remaining(1).reset(secs(0))),
        )
        .opts(with(Epoch)),
        case(
            "epoch override applies to IETF t as well",
            200,
            &[("RateLimit", r#""d";r=1;t=1774537260"#)],
            Some(want(Ietf).remaining(1).reset(secs(60))),
        )
        .opts(with(Epoch)),
        case(
            "auto keeps IETF t as delta seconds",
            200,
            &[("RateLimit", r#""d";r=1;t=1774537260"#)],
            Some(want(Ietf).remaining(1)),
        )
        .warns(&[("ratelimit", "longer than max_wait")]),
        case(
            "delta_ms override on IETF t",
            200,
            &[("RateLimit", r#""d";r=1;t=1500"#)],
            Some(want(Ietf).remaining(1).reset(ms(1500))),
        )
        .opts(with(DeltaMs)),
    ]);
}

#[test]
fn reset_format_config_names() {
    let names = [
        ("\"auto\"", Auto),
        ("\"delta\"", Delta),
        ("\"epoch\"", Epoch),
        ("\"delta_ms\"", DeltaMs),
    ];
    for (json, format) in names {
        assert_eq!(
            serde_json::from_str::<ResetFormat>(json).ok(),
            Some(format),
            "{json}"
        );
    }
    assert!(serde_json::from_str::<ResetFormat>("\"Epoch\"").is_err());
    assert_eq!(ResetFormat::default(), Auto);
}
