//! The header names the parser reads, lowercase, as statics so lookups skip name parsing.

use http::{HeaderMap, HeaderName};

macro_rules! names {
    ($($(#[$doc:meta])* $id:ident = $s:literal;)+) => {
        $($(#[$doc])* pub static $id: HeaderName = HeaderName::from_static($s);)+
    };
}

names! {
    /// The time the response was produced (RFC 9110), the reference for epochs and dates.
    DATE = "date";
    /// RFC 9110 `Retry-After`.
    RETRY_AFTER = "retry-after";
    /// Milliseconds variant some AI vendors send beside `Retry-After`.
    RETRY_AFTER_MS = "retry-after-ms";

    /// IETF -07 Dictionary / -08+ List.
    RATELIMIT = "ratelimit";
    /// IETF -02+ policies.
    RATELIMIT_POLICY = "ratelimit-policy";
    /// Jira's prefixed IETF field.
    BETA_RATELIMIT = "beta-ratelimit";
    /// Jira's prefixed IETF policies.
    BETA_RATELIMIT_POLICY = "beta-ratelimit-policy";
    /// IETF -00..-06, GitLab, Zendesk.
    RATELIMIT_LIMIT = "ratelimit-limit";
    /// IETF -00..-06, GitLab, Zendesk.
    RATELIMIT_REMAINING = "ratelimit-remaining";
    /// IETF -00..-06 (delta), GitLab (epoch), Zendesk (delta).
    RATELIMIT_RESET = "ratelimit-reset";
    /// GitLab: the reset as an HTTP-date.
    RATELIMIT_RESETTIME = "ratelimit-resettime";
    /// GitLab: requests counted so far.
    RATELIMIT_OBSERVED = "ratelimit-observed";
    /// GitLab: the throttle's name.
    RATELIMIT_NAME = "ratelimit-name";

    /// GitHub, Discord, Reddit, Jira and many others.
    X_RATELIMIT_LIMIT = "x-ratelimit-limit";
    /// GitHub, Discord, Reddit, Jira and many others.
    X_RATELIMIT_REMAINING = "x-ratelimit-remaining";
    /// Epoch (GitHub, Discord), delta (Reddit), ISO 8601 (Jira).
    X_RATELIMIT_RESET = "x-ratelimit-reset";
    /// GitHub, Reddit.
    X_RATELIMIT_USED = "x-ratelimit-used";
    /// GitHub's limit family (`core`, `search`, ...).
    X_RATELIMIT_RESOURCE = "x-ratelimit-resource";
    /// Discord: seconds until the bucket resets, with decimals.
    X_RATELIMIT_RESET_AFTER = "x-ratelimit-reset-after";
    /// Discord's bucket id.
    X_RATELIMIT_BUCKET = "x-ratelimit-bucket";
    /// Discord: the 429 is the global limit.
    X_RATELIMIT_GLOBAL = "x-ratelimit-global";
    /// Discord: `user`, `global` or `shared`.
    X_RATELIMIT_SCOPE = "x-ratelimit-scope";
    /// Present on every GitHub API response.
    X_GITHUB_REQUEST_ID = "x-github-request-id";

    /// Zendesk's limit.
    X_RATE_LIMIT = "x-rate-limit";
    /// X (Twitter), Okta.
    X_RATE_LIMIT_LIMIT = "x-rate-limit-limit";
    /// X (Twitter), Okta, Zendesk.
    X_RATE_LIMIT_REMAINING = "x-rate-limit-remaining";
    /// X (Twitter), Okta: epoch seconds.
    X_RATE_LIMIT_RESET = "x-rate-limit-reset";

    /// Shopify's leaky bucket, `used/size`.
    X_SHOPIFY_SHOP_API_CALL_LIMIT = "x-shopify-shop-api-call-limit";
    /// Salesforce, `api-usage=used/limit`.
    SFORCE_LIMIT_INFO = "sforce-limit-info";
    /// HubSpot: requests per interval.
    X_HUBSPOT_RATELIMIT_MAX = "x-hubspot-ratelimit-max";
    /// HubSpot: requests left in the interval.
    X_HUBSPOT_RATELIMIT_REMAINING = "x-hubspot-ratelimit-remaining";
    /// HubSpot: the interval, in milliseconds.
    X_HUBSPOT_RATELIMIT_INTERVAL_MILLISECONDS = "x-hubspot-ratelimit-interval-milliseconds";
    /// HubSpot: requests per day.
    X_HUBSPOT_RATELIMIT_DAILY = "x-hubspot-ratelimit-daily";
    /// HubSpot: requests left today.
    X_HUBSPOT_RATELIMIT_DAILY_REMAINING = "x-hubspot-ratelimit-daily-remaining";
    /// HubSpot: requests per second.
    X_HUBSPOT_RATELIMIT_SECONDLY = "x-hubspot-ratelimit-secondly";
    /// HubSpot: requests left this second.
    X_HUBSPOT_RATELIMIT_SECONDLY_REMAINING = "x-hubspot-ratelimit-secondly-remaining";
    /// Stripe, on a 429.
    STRIPE_SHOULD_RETRY = "stripe-should-retry";
    /// Stripe, on a 429.
    STRIPE_RATE_LIMITED_REASON = "stripe-rate-limited-reason";
}

/// The header families a response carries, one bit each, found in one pass over its names
/// (lowercase in a `HeaderMap`): the cheap test that lets a response without any rate-limit
/// header skip the parser, and lets [`crate::quota::headers::parse`] try only the
/// conventions whose headers are there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Families(u8);

impl Families {
    /// `ratelimit*`, `beta-ratelimit*`: the IETF drafts, GitLab, Zendesk.
    pub const IETF: Self = Self(1);
    /// `retry-after`, `retry-after-ms`.
    pub const RETRY_AFTER: Self = Self(1 << 1);
    /// `x-ratelimit-*`: GitHub, Discord, Reddit, Jira, ...
    pub const X_RATELIMIT: Self = Self(1 << 2);
    /// `x-rate-limit*`: X, Okta, Zendesk.
    pub const X_RATE_LIMIT: Self = Self(1 << 3);
    /// `x-hubspot-ratelimit-*`.
    pub const HUBSPOT: Self = Self(1 << 4);
    /// `x-shopify-shop-api-call-limit`.
    pub const SHOPIFY: Self = Self(1 << 5);
    /// `sforce-limit-info`.
    pub const SALESFORCE: Self = Self(1 << 6);

    /// The families of every header in `headers`.
    #[must_use]
    pub fn of(headers: &HeaderMap) -> Self {
        headers.keys().fold(Self::default(), |acc, name| {
            Self(acc.0 | Self::of_name(name.as_str()).0)
        })
    }

    /// The family of one lowercase header name (empty for any other header).
    #[must_use]
    pub fn of_name(name: &str) -> Self {
        match name.as_bytes().first() {
            Some(b'r') if name.starts_with("ratelimit") => Self::IETF,
            Some(b'r') if name.starts_with("retry-after") => Self::RETRY_AFTER,
            Some(b'b') if name.starts_with("beta-ratelimit") => Self::IETF,
            Some(b'x') if name.starts_with("x-ratelimit") => Self::X_RATELIMIT,
            Some(b'x') if name.starts_with("x-rate-limit") => Self::X_RATE_LIMIT,
            Some(b'x') if name.starts_with("x-hubspot-ratelimit") => Self::HUBSPOT,
            Some(b'x') if name == "x-shopify-shop-api-call-limit" => Self::SHOPIFY,
            Some(b's') if name == "sforce-limit-info" => Self::SALESFORCE,
            _ => Self::default(),
        }
    }

    /// Whether every family of `other` is present.
    #[must_use]
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no rate-limit header is present.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}
