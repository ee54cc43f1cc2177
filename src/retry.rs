//! Which attempts are retried: pure decisions on a method, its headers and an outcome.

use http::{HeaderMap, Method, StatusCode};

/// `Idempotency-Key`: a client's promise that the request may be repeated.
pub static IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

/// Why an attempt is retried (the `reason` label of `headroom_retries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 429, or a 503/403 that announces a rate limit.
    RateLimited,
    /// Any other 5xx.
    ServerError,
    /// No connection (refused, reset, TLS failure, closed before the response).
    ConnectError,
    /// No response headers within `timeout`.
    Timeout,
}

impl Reason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::ConnectError => "connect_error",
            Self::Timeout => "timeout",
        }
    }
}

/// Whether repeating the request is safe: an idempotent method (RFC 9110 9.2.2) or an
/// `Idempotency-Key` header.
pub fn is_safe_to_repeat(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    ) || headers.contains_key(&IDEMPOTENCY_KEY)
}

/// Why a response would be retried, if it would: rate limits and 5xx; never other 4xx.
pub fn reason_for_status(status: StatusCode, rate_limited: bool) -> Option<Reason> {
    if status == StatusCode::TOO_MANY_REQUESTS || rate_limited {
        Some(Reason::RateLimited)
    } else if status.is_server_error() {
        Some(Reason::ServerError)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_methods_or_keyed_requests_repeat() {
        let none = HeaderMap::new();
        let mut keyed = HeaderMap::new();
        keyed.insert(&IDEMPOTENCY_KEY, http::HeaderValue::from_static("k-1"));
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(is_safe_to_repeat(&method, &none), "{method}");
        }
        for method in [Method::POST, Method::PATCH] {
            assert!(!is_safe_to_repeat(&method, &none), "{method}");
            assert!(is_safe_to_repeat(&method, &keyed), "{method} with a key");
        }
    }

    #[test]
    fn statuses() {
        let cases = [
            (429, false, Some(Reason::RateLimited)),
            (503, true, Some(Reason::RateLimited)),
            (403, true, Some(Reason::RateLimited)),
            (403, false, None),
            (500, false, Some(Reason::ServerError)),
            (502, false, Some(Reason::ServerError)),
            (503, false, Some(Reason::ServerError)),
            (404, false, None),
            (409, false, None),
            (200, false, None),
            (304, false, None),
        ];
        for (code, limited, want) in cases {
            let status = StatusCode::from_u16(code).expect("status");
            assert_eq!(reason_for_status(status, limited), want, "{code} {limited}");
        }
    }
}
