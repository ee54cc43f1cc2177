//! [`ResponseHeaders`]: one response's headers with the clock and options needed to read
//! them, collecting a [`HeaderWarning`] for every value it ignores.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::names;
use super::values::{self, Number};
use crate::quota::observation::{HeaderWarning, Ignored, ParseOptions, ResetFormat};

/// One response's headers, read by the per-convention parsers. A value that cannot be used
/// reads as absent and leaves a warning.
#[derive(Debug)]
pub struct ResponseHeaders<'a> {
    headers: &'a HeaderMap,
    now: SystemTime,
    opts: &'a ParseOptions,
    date_ref: Option<SystemTime>,
    warnings: Vec<HeaderWarning>,
}

impl<'a> ResponseHeaders<'a> {
    /// Wraps `headers` of a response that arrived at `now` (wall clock).
    #[must_use]
    pub fn new(headers: &'a HeaderMap, now: SystemTime, opts: &'a ParseOptions) -> Self {
        Self {
            headers,
            now,
            opts,
            date_ref: None,
            warnings: Vec::new(),
        }
    }

    /// The parse options.
    #[must_use]
    pub fn options(&self) -> &'a ParseOptions {
        self.opts
    }

    /// Whether the response carries `name` at all (usable or not).
    #[must_use]
    pub fn has(&self, name: &HeaderName) -> bool {
        self.headers.contains_key(name)
    }

    /// Every line of `name`, in order (a field may repeat over several lines).
    pub fn lines(&self, name: &HeaderName) -> impl Iterator<Item = &'a HeaderValue> {
        self.headers.get_all(name).iter()
    }

    /// Records that the value `raw` of `name` was ignored.
    pub fn warn(&mut self, name: &'static HeaderName, raw: &[u8], reason: Ignored) {
        self.warnings
            .push(HeaderWarning::new(name.as_str(), raw, reason));
    }

    /// The warnings collected so far.
    #[must_use]
    pub fn into_warnings(self) -> Vec<HeaderWarning> {
        self.warnings
    }

    /// When the response was produced: its `Date` header if present and valid (this corrects
    /// the supplier's clock skew for epochs and dates), else the arrival time.
    pub fn date_ref(&mut self) -> SystemTime {
        if let Some(at) = self.date_ref {
            return at;
        }
        let at = self
            .read(&names::DATE, |s| {
                httpdate::parse_http_date(s).map_err(|_| Ignored::InvalidDate)
            })
            .unwrap_or(self.now);
        self.date_ref = Some(at);
        at
    }

    /// The first line of `name` as text; non-text bytes leave a warning.
    pub fn text(&mut self, name: &'static HeaderName) -> Option<&'a str> {
        let value = self.headers.get(name)?;
        match value.to_str() {
            Ok(s) => Some(s),
            Err(_) => {
                self.warn(name, value.as_bytes(), Ignored::NotAscii);
                None
            }
        }
    }

    /// The first line of `name` read by `parse`; an error leaves a warning.
    pub fn read<T>(
        &mut self,
        name: &'static HeaderName,
        parse: impl FnOnce(&str) -> Result<T, Ignored>,
    ) -> Option<T> {
        let s = self.text(name)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.warn(name, s.as_bytes(), reason);
                None
            }
        }
    }

    /// A count (floored).
    pub fn count(&mut self, name: &'static HeaderName) -> Option<u64> {
        self.read(name, values::parse_count)
    }

    /// Delta seconds, at most `max_wait`.
    pub fn seconds(&mut self, name: &'static HeaderName) -> Option<Duration> {
        let cap = self.opts.max_wait;
        self.read(name, |s| capped(values::parse_seconds(s)?, cap))
    }

    /// Delta milliseconds, at most `max_wait`.
    pub fn millis(&mut self, name: &'static HeaderName) -> Option<Duration> {
        let cap = self.opts.max_wait;
        self.read(name, |s| capped(values::parse_millis(s)?, cap))
    }

    /// A reset value under the configured [`ResetFormat`], at most `max_wait`.
    pub fn reset(&mut self, name: &'static HeaderName) -> Option<Duration> {
        self.text(name)?;
        let (format, cap, date_ref) = (self.opts.reset_format, self.opts.max_wait, self.date_ref());
        self.read(name, |s| {
            capped(values::parse_reset(s, format, date_ref)?, cap)
        })
    }

    /// An absolute date (HTTP-date, ISO 8601, JavaScript) as a delay, at most `max_wait`.
    pub fn date(&mut self, name: &'static HeaderName) -> Option<Duration> {
        self.text(name)?;
        let (cap, date_ref) = (self.opts.max_wait, self.date_ref());
        self.read(name, |s| {
            capped(values::until(values::parse_date(s)?, date_ref), cap)
        })
    }

    /// `Retry-After`: delay seconds or a date, at most `max_wait`.
    pub fn retry_after(&mut self, name: &'static HeaderName) -> Option<Duration> {
        self.text(name)?;
        let (cap, date_ref) = (self.opts.max_wait, self.date_ref());
        self.read(name, |s| {
            capped(values::parse_retry_after(s, date_ref)?, cap)
        })
    }

    /// A reset number from a Structured Field (IETF `reset`/`t`): delta seconds unless
    /// `reset_format` says otherwise; `Err` when longer than `max_wait`.
    pub fn sf_reset(&mut self, n: Number) -> Result<Duration, Ignored> {
        let format = match self.opts.reset_format {
            ResetFormat::Auto => ResetFormat::Delta,
            other => other,
        };
        let date_ref = if format == ResetFormat::Epoch {
            self.date_ref()
        } else {
            self.now
        };
        capped(
            values::reset_from_number(n, format, date_ref),
            self.opts.max_wait,
        )
    }

    /// `d` if it is at most `max_wait`.
    pub fn cap(&self, d: Duration) -> Result<Duration, Ignored> {
        capped(d, self.opts.max_wait)
    }
}

fn capped(d: Duration, cap: Duration) -> Result<Duration, Ignored> {
    if d > cap {
        Err(Ignored::Huge)
    } else {
        Ok(d)
    }
}
