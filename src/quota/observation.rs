//! What one upstream response says about the supplier's quota, and the options and warnings
//! of the parser that reads it ([`crate::quota::headers::parse`]).

use std::fmt;
use std::time::Duration;

pub use crate::config::ResetFormat;

/// The quota facts one response announced. Every field is what the supplier said, already
/// normalised (counts floored, durations relative to when the response was produced, every
/// duration at most [`ParseOptions::max_wait`]); `None` means "not announced" (or announced
/// in a form that was ignored, with a [`HeaderWarning`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaObservation {
    /// Requests per window of the governing (tightest) policy.
    pub limit: Option<u64>,
    /// Requests left in the current window of the governing policy, floored (Reddit sends
    /// `599.0`).
    pub remaining: Option<u64>,
    /// Until the governing window resets, measured from when the response was produced (its
    /// `Date` header); zero when the announced reset is already past.
    pub reset_after: Option<Duration>,
    /// Length of the governing window when announced (IETF `w=`, HubSpot's interval,
    /// Salesforce's rolling 24 hours).
    pub window: Option<Duration>,
    /// How long to wait before the next request, from `retry-after-ms`, `Retry-After` or
    /// Discord's `X-RateLimit-Reset-After`; only set when [`Self::rate_limited`] is true.
    pub retry_after: Option<Duration>,
    /// A leaky bucket's level (Shopify); `limit`/`remaining` then mirror `size`/`size - used`.
    pub bucket: Option<LeakyBucket>,
    /// The header convention that supplied the quota facts.
    pub source: Source,
    /// The response itself says "over quota": a 429; a 503 or 403 with a usable
    /// `Retry-After`; a GitHub 403 with `x-ratelimit-remaining: 0`.
    pub rate_limited: bool,
    /// Which of the supplier's separate quotas this is, when it names one: GitHub's
    /// `x-ratelimit-resource` (`core`, `search`, `graphql`...) or Discord's
    /// `X-RateLimit-Bucket`. At most [`QuotaObservation::MAX_RESOURCE_LEN`] visible ASCII
    /// characters; longer or odd values are ignored.
    pub resource: Option<String>,
}

impl QuotaObservation {
    /// An observation from `source` that announces nothing yet.
    #[must_use]
    pub fn new(source: Source) -> Self {
        Self {
            limit: None,
            remaining: None,
            reset_after: None,
            window: None,
            retry_after: None,
            bucket: None,
            source,
            rate_limited: false,
            resource: None,
        }
    }

    /// Longest resource name kept (GitHub's are words, Discord's bucket ids 32 hex digits).
    pub const MAX_RESOURCE_LEN: usize = 64;

    /// Whether any quota fact (limit, remaining, reset, window or bucket) is known.
    #[must_use]
    pub fn has_quota(&self) -> bool {
        self.limit.is_some()
            || self.remaining.is_some()
            || self.reset_after.is_some()
            || self.window.is_some()
            || self.bucket.is_some()
    }
}

/// A leaky bucket's level, as Shopify announces it (`X-Shopify-Shop-Api-Call-Limit: 32/40`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakyBucket {
    /// Units currently in the bucket (requests not yet leaked).
    pub used: u64,
    /// Capacity of the bucket.
    pub size: u64,
}

/// The header convention an observation came from; [`Source::as_str`] is the stable label
/// shown by the admin API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// IETF draft -08..-11: `RateLimit-Policy: "p";q=..;w=..` and `RateLimit: "p";r=..;t=..`.
    Ietf,
    /// IETF draft -07: the Dictionary `RateLimit: limit=.., remaining=.., reset=..`.
    Ietf07,
    /// IETF drafts -00..-06: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`.
    Ietf06,
    /// GitLab: the -06 names with an epoch `RateLimit-Reset` and `RateLimit-ResetTime`.
    Gitlab,
    /// GitHub: `x-ratelimit-*` with `x-ratelimit-resource` (or `x-github-request-id`).
    Github,
    /// Discord: `X-RateLimit-*` with `Reset-After`, `Bucket`, `Global` or `Scope`.
    Discord,
    /// Reddit: `X-Ratelimit-Used/Remaining/Reset` without a limit header.
    Reddit,
    /// Any other `X-RateLimit-Limit/Remaining/Reset` (Jira, many APIs).
    XRateLimit,
    /// `X-Rate-Limit-*` and `X-Rate-Limit` (X/Twitter, Okta, Zendesk).
    XRateLimitDashed,
    /// Shopify's `X-Shopify-Shop-Api-Call-Limit` leaky bucket.
    Shopify,
    /// Salesforce's `Sforce-Limit-Info`.
    Salesforce,
    /// HubSpot's `X-HubSpot-RateLimit-*`.
    Hubspot,
    /// Stripe: a 429 with `Stripe-Should-Retry` or `Stripe-Rate-Limited-Reason`.
    Stripe,
    /// Only `Retry-After` (or `retry-after-ms`): Microsoft Graph, Spotify, Slack.
    RetryAfter,
    /// Only the status code (a 429 without any usable header).
    Status,
}

impl Source {
    /// Every convention, in the parser's order.
    pub const ALL: [Source; 15] = [
        Self::Ietf,
        Self::Ietf07,
        Self::Ietf06,
        Self::Gitlab,
        Self::Github,
        Self::Discord,
        Self::Reddit,
        Self::XRateLimit,
        Self::XRateLimitDashed,
        Self::Shopify,
        Self::Salesforce,
        Self::Hubspot,
        Self::Stripe,
        Self::RetryAfter,
        Self::Status,
    ];

    /// The stable label of this convention.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ietf => "ietf",
            Self::Ietf07 => "ietf-07",
            Self::Ietf06 => "ietf-06",
            Self::Gitlab => "gitlab",
            Self::Github => "github",
            Self::Discord => "discord",
            Self::Reddit => "reddit",
            Self::XRateLimit => "x-ratelimit",
            Self::XRateLimitDashed => "x-rate-limit",
            Self::Shopify => "shopify",
            Self::Salesforce => "salesforce",
            Self::Hubspot => "hubspot",
            Self::Stripe => "stripe",
            Self::RetryAfter => "retry-after",
            Self::Status => "status",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of [`crate::quota::headers::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// How numeric reset values are read.
    pub reset_format: ResetFormat,
    /// Sanity cap: any duration longer than this is "huge", ignored with a warning. Choose it
    /// at least as long as the longest window to honour (a daily quota needs 1 day).
    pub max_wait: Duration,
}

impl Default for ParseOptions {
    /// `Auto`, and a cap of one day.
    fn default() -> Self {
        Self {
            reset_format: ResetFormat::Auto,
            max_wait: Duration::from_secs(86_400),
        }
    }
}

/// Why a header value was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// The value is empty (or only whitespace).
    #[error("empty")]
    Empty,
    /// The value has bytes outside visible ASCII.
    #[error("not visible ASCII")]
    NotAscii,
    /// The value does not follow the convention's grammar.
    #[error("malformed")]
    Malformed,
    /// A required member or parameter is missing (IETF `q` or `r`).
    #[error("missing required parameter")]
    MissingParameter,
    /// A count or duration is negative.
    #[error("negative")]
    Negative,
    /// A number too large to be finite.
    #[error("non-finite")]
    NonFinite,
    /// A number too large for a count or a duration.
    #[error("out of range")]
    OutOfRange,
    /// A duration longer than [`ParseOptions::max_wait`].
    #[error("longer than max_wait")]
    Huge,
    /// A date that does not exist or contradicts itself (wrong weekday).
    #[error("invalid date")]
    InvalidDate,
}

impl Ignored {
    /// The reason as a static label (bounded, usable as a metric label).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NotAscii => "not visible ASCII",
            Self::Malformed => "malformed",
            Self::MissingParameter => "missing required parameter",
            Self::Negative => "negative",
            Self::NonFinite => "non-finite",
            Self::OutOfRange => "out of range",
            Self::Huge => "longer than max_wait",
            Self::InvalidDate => "invalid date",
        }
    }
}

/// A header value the parser ignored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderWarning {
    /// The header name, lowercase.
    pub header: &'static str,
    /// The value as received (lossy UTF-8), cut to [`HeaderWarning::MAX_VALUE_CHARS`].
    pub value: String,
    /// Why it was ignored ([`Ignored::as_str`]).
    pub reason: &'static str,
}

impl HeaderWarning {
    /// Longest value kept in a warning, in characters.
    pub const MAX_VALUE_CHARS: usize = 64;

    /// A warning about `raw`, cut to [`Self::MAX_VALUE_CHARS`] characters.
    #[must_use]
    pub fn new(header: &'static str, raw: &[u8], reason: Ignored) -> Self {
        let value = String::from_utf8_lossy(raw)
            .chars()
            .take(Self::MAX_VALUE_CHARS)
            .collect();
        Self {
            header,
            value,
            reason: reason.as_str(),
        }
    }
}

impl fmt::Display for HeaderWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ignored {}: {:?} ({})",
            self.header, self.value, self.reason
        )
    }
}
