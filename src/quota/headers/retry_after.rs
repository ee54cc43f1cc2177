//! The wait a rate-limited response asks for: `retry-after-ms`, then `Retry-After`.

use std::time::Duration;

use super::names;
use super::reader::ResponseHeaders;

/// The announced wait: `retry-after-ms` (milliseconds, sent beside `Retry-After` by some AI
/// vendors' APIs, the more precise of the two), else `Retry-After` (RFC 9110 delay seconds,
/// fractional tolerated, or an HTTP-date relative to the response's `Date`). A past date is
/// zero; a wait longer than `max_wait` is ignored with a warning.
pub fn parse_retry_after_headers(r: &mut ResponseHeaders<'_>) -> Option<Duration> {
    r.millis(&names::RETRY_AFTER_MS)
        .or_else(|| r.retry_after(&names::RETRY_AFTER))
}
