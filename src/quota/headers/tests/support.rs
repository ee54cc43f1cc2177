//! Shared helpers: a fixed clock, header maps from pairs, expected observations, and a table
//! runner that reports every failing case at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::quota::headers::parse;
use crate::quota::observation::{
    HeaderWarning, LeakyBucket, ParseOptions, QuotaObservation, Source,
};

/// 2026-03-26T15:00:00Z, when every test response arrives.
pub const NOW_SECS: u64 = 1_774_537_200;
/// `NOW_SECS` as an HTTP-date.
pub const NOW_DATE: &str = "Thu, 26 Mar 2026 15:00:00 GMT";

pub fn now() -> SystemTime {
    UNIX_EPOCH + secs(NOW_SECS)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A header map; a repeated name becomes several lines of one field.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
        let value = HeaderValue::from_str(value).expect("test header value");
        map.append(name, value);
    }
    map
}

pub fn run_with(
    opts: &ParseOptions,
    status: u16,
    pairs: &[(&str, &str)],
) -> (Option<QuotaObservation>, Vec<HeaderWarning>) {
    let status = StatusCode::from_u16(status).expect("test status");
    parse(status, &headers(pairs), now(), opts)
}

pub fn run(status: u16, pairs: &[(&str, &str)]) -> (Option<QuotaObservation>, Vec<HeaderWarning>) {
    run_with(&ParseOptions::default(), status, pairs)
}

/// Builder for expected observations: `want(Source::Github).limit(60).reset(secs(5))`.
pub fn want(source: Source) -> QuotaObservation {
    QuotaObservation::new(source)
}

pub trait Expect {
    fn limit(self, v: u64) -> Self;
    fn remaining(self, v: u64) -> Self;
    fn reset(self, d: Duration) -> Self;
    fn window(self, d: Duration) -> Self;
    fn retry(self, d: Duration) -> Self;
    fn bucket(self, used: u64, size: u64) -> Self;
    fn limited(self) -> Self;
    fn resource(self, name: &str) -> Self;
}

impl Expect for QuotaObservation {
    fn resource(self, name: &str) -> Self {
        Self {
            resource: Some(name.to_owned()),
            ..self
        }
    }

    fn limit(self, v: u64) -> Self {
        Self {
            limit: Some(v),
            ..self
        }
    }
    fn remaining(self, v: u64) -> Self {
        Self {
            remaining: Some(v),
            ..self
        }
    }
    fn reset(self, d: Duration) -> Self {
        Self {
            reset_after: Some(d),
            ..self
        }
    }
    fn window(self, d: Duration) -> Self {
        Self {
            window: Some(d),
            ..self
        }
    }
    fn retry(self, d: Duration) -> Self {
        Self {
            retry_after: Some(d),
            ..self
        }
    }
    fn bucket(self, used: u64, size: u64) -> Self {
        Self {
            bucket: Some(LeakyBucket { used, size }),
            ..self
        }
    }
    fn limited(self) -> Self {
        Self {
            rate_limited: true,
            ..self
        }
    }
}

/// One row: a response, the observation it must give and the warnings (header, reason).
pub struct Case {
    pub name: &'static str,
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub want: Option<QuotaObservation>,
    pub warnings: Vec<(&'static str, &'static str)>,
    pub opts: ParseOptions,
}

/// A row with the default options and no warning expected.
pub fn case(
    name: &'static str,
    status: u16,
    headers: &[(&'static str, &'static str)],
    want: Option<QuotaObservation>,
) -> Case {
    Case {
        name,
        status,
        headers: headers.to_vec(),
        want,
        warnings: Vec::new(),
        opts: ParseOptions::default(),
    }
}

impl Case {
    /// Expects these warnings, in order.
    pub fn warns(mut self, warnings: &[(&'static str, &'static str)]) -> Self {
        self.warnings = warnings.to_vec();
        self
    }

    /// Parses with these options.
    pub fn opts(mut self, opts: ParseOptions) -> Self {
        self.opts = opts;
        self
    }
}

/// Runs every row and panics listing all the rows that failed.
pub fn check(cases: Vec<Case>) {
    let total = cases.len();
    let mut failures = Vec::new();
    for c in cases {
        let (got, warnings) = run_with(&c.opts, c.status, &c.headers);
        let got_warnings: Vec<_> = warnings.iter().map(|w| (w.header, w.reason)).collect();
        if got != c.want || got_warnings != c.warnings {
            failures.push(format!(
                "{}:\n   got  {got:?}\n   want {:?}\n   warnings got  {warnings:?}\n   warnings want {:?}",
                c.name, c.want, c.warnings
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
