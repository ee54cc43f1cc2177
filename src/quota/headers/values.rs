//! Pure parsers for the values inside rate-limit headers: counts, delta seconds, resets (the
//! epoch-or-delta rule) and absolute dates. No header names, no warnings: callers attach those.
//!
//! Numbers are read exactly (integer part and up to nine fractional digits), never through
//! `f64`, so `64.57` seconds is exactly 64 570 ms and no value can overflow or be non-finite.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::quota::observation::{Ignored, ResetFormat};

/// Numeric resets from this value on are epoch seconds (2001-09-09), below it delta seconds.
pub const EPOCH_SECONDS_FROM: u64 = 1_000_000_000;
/// Numeric resets from this value on are epoch milliseconds (1973-03-03 in milliseconds;
/// year 5138 in seconds).
pub const EPOCH_MILLIS_FROM: u64 = 100_000_000_000;

/// A non-negative decimal number: `whole` and a fraction in nanoseconds (units of 1e-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number {
    /// The integer part.
    pub whole: u64,
    /// The fractional part, in units of 1e-9 (digits past the ninth are dropped).
    pub nanos: u32,
}

impl Number {
    /// `whole.nanos` read as seconds.
    #[must_use]
    pub fn as_secs(self) -> Duration {
        Duration::new(self.whole, self.nanos)
    }

    /// `whole.nanos` read as milliseconds.
    #[must_use]
    pub fn as_millis(self) -> Duration {
        Duration::from_millis(self.whole)
            .saturating_add(Duration::from_nanos(u64::from(self.nanos / 1_000)))
    }

    /// A Structured Field Integer or Decimal as a number (negative values refused).
    pub fn from_sfv(item: &sfv::BareItem) -> Result<Self, Ignored> {
        match item {
            sfv::BareItem::Integer(i) => {
                let v = i64::from(*i);
                let whole = u64::try_from(v).map_err(|_| Ignored::Negative)?;
                Ok(Self { whole, nanos: 0 })
            }
            sfv::BareItem::Decimal(d) => {
                let milli = i64::from(d.as_integer_scaled_1000());
                let milli = u64::try_from(milli).map_err(|_| Ignored::Negative)?;
                let frac = u32::try_from(milli % 1000).map_err(|_| Ignored::OutOfRange)?;
                Ok(Self {
                    whole: milli / 1000,
                    nanos: frac * 1_000_000,
                })
            }
            _ => Err(Ignored::Malformed),
        }
    }
}

/// Parses `digits[.digits]` (surrounding spaces and tabs allowed). A leading `-` gives
/// [`Ignored::Negative`]; `inf`/`nan` words give [`Ignored::NonFinite`].
pub fn parse_number(value: &str) -> Result<Number, Ignored> {
    let s = value.trim_matches([' ', '\t']);
    if s.is_empty() {
        return Err(Ignored::Empty);
    }
    if let Some(rest) = s.strip_prefix('-') {
        return match parse_number(rest) {
            Ok(_) => Err(Ignored::Negative),
            Err(Ignored::NonFinite) => Err(Ignored::NonFinite),
            Err(_) => Err(Ignored::Malformed),
        };
    }
    let word = s.trim_start_matches('+');
    if ["inf", "infinity", "nan"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
    {
        return Err(Ignored::NonFinite);
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || (s.contains('.') && !all_digits(frac)) {
        return Err(Ignored::Malformed);
    }
    let whole: u64 = whole.parse().map_err(|_| Ignored::OutOfRange)?;
    let mut nanos: u32 = 0;
    for i in 0..9 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u32::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    Ok(Number { whole, nanos })
}

/// A count (limit, remaining, used): a non-negative number, floored (`599.0` is 599).
pub fn parse_count(value: &str) -> Result<u64, Ignored> {
    parse_number(value).map(|n| n.whole)
}

/// Delta seconds, decimals allowed (`64.57`).
pub fn parse_seconds(value: &str) -> Result<Duration, Ignored> {
    parse_number(value).map(Number::as_secs)
}

/// Delta milliseconds, decimals allowed (`retry-after-ms: 1500`).
pub fn parse_millis(value: &str) -> Result<Duration, Ignored> {
    parse_number(value).map(Number::as_millis)
}

/// The time until the window resets, from a reset header value and the moment the response
/// was produced (`date_ref`). Numbers follow `format` ([`ResetFormat::Auto`]: by magnitude,
/// see [`EPOCH_SECONDS_FROM`]); letters are an absolute date ([`parse_date`]). A reset in the
/// past is zero.
pub fn parse_reset(
    value: &str,
    format: ResetFormat,
    date_ref: SystemTime,
) -> Result<Duration, Ignored> {
    match parse_number(value) {
        Ok(n) => Ok(reset_from_number(n, format, date_ref)),
        Err(Ignored::Malformed) if has_letters(value) => {
            parse_date(value).map(|at| until(at, date_ref))
        }
        Err(reason) => Err(reason),
    }
}

/// The time until the window resets, from a number read under `format`.
#[must_use]
pub fn reset_from_number(n: Number, format: ResetFormat, date_ref: SystemTime) -> Duration {
    let epoch = |d: Duration| {
        UNIX_EPOCH
            .checked_add(d)
            .map_or(Duration::MAX, |at| until(at, date_ref))
    };
    match format {
        ResetFormat::Delta => n.as_secs(),
        ResetFormat::DeltaMs => n.as_millis(),
        ResetFormat::Auto if n.whole < EPOCH_SECONDS_FROM => n.as_secs(),
        ResetFormat::Auto | ResetFormat::Epoch if n.whole < EPOCH_MILLIS_FROM => epoch(n.as_secs()),
        ResetFormat::Auto | ResetFormat::Epoch => epoch(n.as_millis()),
    }
}

/// `Retry-After` (RFC 9110): delay seconds (decimals tolerated: Shopify's `2.0`) or an
/// absolute date, relative to `date_ref`; a date in the past is zero.
pub fn parse_retry_after(value: &str, date_ref: SystemTime) -> Result<Duration, Ignored> {
    parse_reset(value, ResetFormat::Delta, date_ref)
}

/// How long from `date_ref` until `at`; zero when `at` is not after it.
#[must_use]
pub fn until(at: SystemTime, date_ref: SystemTime) -> Duration {
    at.duration_since(date_ref).unwrap_or(Duration::ZERO)
}

fn has_letters(value: &str) -> bool {
    value.bytes().any(|b| b.is_ascii_alphabetic())
}

/// An absolute date: an HTTP-date (IMF-fixdate, RFC 850, asctime), then ISO 8601 with a zone
/// and optional seconds (`2026-03-26T16:00Z`), then JavaScript's `Date.toString()`
/// (`Wed Nov 25 2026 16:00:00 GMT+0000 (Coordinated Universal Time)`). An HTTP-date whose
/// weekday does not match its date is refused ([`Ignored::InvalidDate`]), as `httpdate` does.
pub fn parse_date(value: &str) -> Result<SystemTime, Ignored> {
    let s = value.trim_matches([' ', '\t']);
    if s.is_empty() {
        return Err(Ignored::Empty);
    }
    if let Ok(at) = httpdate::parse_http_date(s) {
        return Ok(at);
    }
    if let Some(at) = parse_iso8601(s).or_else(|| parse_js_date(s)) {
        return Ok(at);
    }
    if starts_with_weekday(s) {
        Err(Ignored::InvalidDate)
    } else {
        Err(Ignored::Malformed)
    }
}

const ISO_UTC: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
);
const ISO_OFFSET: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]][offset_hour sign:mandatory][optional [:]][offset_minute]"
);
const JS_DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short] [month repr:short] [day] [year] [hour]:[minute]:[second] GMT[offset_hour sign:mandatory][offset_minute]"
);

/// ISO 8601 / RFC 3339 with a zone; seconds optional (Jira sends `2026-03-26T16:00Z`).
#[must_use]
pub fn parse_iso8601(s: &str) -> Option<SystemTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(to_system_time(t));
    }
    if let Some(local) = s.strip_suffix(['Z', 'z']) {
        return PrimitiveDateTime::parse(local, ISO_UTC)
            .ok()
            .map(|t| to_system_time(t.assume_utc()));
    }
    OffsetDateTime::parse(s, ISO_OFFSET)
        .ok()
        .map(to_system_time)
}

/// JavaScript `Date.prototype.toString()`; the parenthesised zone name is ignored, the
/// weekday must match the date.
#[must_use]
pub fn parse_js_date(s: &str) -> Option<SystemTime> {
    let s = match s.split_once(" (") {
        Some((date, zone)) if zone.ends_with(')') => date,
        Some(_) => return None,
        None => s,
    };
    let t = OffsetDateTime::parse(s, JS_DATE).ok()?;
    // `time` does not check the weekday against the date: do it here, as `httpdate` does.
    let weekday = t.weekday().to_string();
    let named = s.get(..3)?;
    weekday
        .get(..3)
        .is_some_and(|w| w.eq_ignore_ascii_case(named))
        .then(|| to_system_time(t))
}

/// A time before the Unix epoch is the epoch (both are "in the past" for a reset).
fn to_system_time(t: OffsetDateTime) -> SystemTime {
    u64::try_from(t.unix_timestamp())
        .ok()
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::new(secs, t.nanosecond())))
        .unwrap_or(UNIX_EPOCH)
}

fn starts_with_weekday(s: &str) -> bool {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    s.get(..3)
        .is_some_and(|p| DAYS.iter().any(|d| p.eq_ignore_ascii_case(d)))
}
