//! One attempt upstream: send the request, wait for the response headers within `timeout`.

use std::error::Error as _;

use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::error::ProxyError;
use crate::upstream::Upstream;

/// An attempt that got no response.
#[derive(Debug)]
pub struct Failed {
    /// What the client is answered if no other attempt does better.
    pub error: ProxyError,
    /// Whether the request may have reached the supplier (and been counted): false only when
    /// no connection was made at all.
    pub written: bool,
}

/// Sends `request` (its URI already pointing at the upstream) and returns the response as
/// soon as its headers arrive; the body streams afterwards.
pub async fn send(
    upstream: &Upstream,
    request: Request<Body>,
) -> Result<Response<Incoming>, Failed> {
    let timeout = upstream.config().timeout;
    match tokio::time::timeout(timeout, upstream.client().request(request)).await {
        Err(_elapsed) => Err(Failed {
            error: ProxyError::UpstreamTimeout(timeout),
            written: true,
        }),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(err)) => Err(Failed {
            error: classify(&err, timeout),
            written: !err.is_connect(),
        }),
    }
}

/// Maps a client error to what the contract answers: a connect timeout is a timeout, the
/// rest (refused, reset, TLS, closed early) is "unavailable".
fn classify(err: &hyper_util::client::legacy::Error, timeout: std::time::Duration) -> ProxyError {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ProxyError::UpstreamTimeout(timeout);
            }
        }
        source = cause.source();
    }
    ProxyError::UpstreamUnavailable(error_chain(err))
}

/// `outer: inner: innermost`, without repeating identical messages.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
