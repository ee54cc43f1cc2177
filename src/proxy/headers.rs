//! Header rules of a reverse proxy: hop-by-hop headers dropped, `X-Forwarded-*` added, the
//! request id kept or made.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `Headroom-Attempts`: attempts made upstream.
pub static HEADROOM_ATTEMPTS: HeaderName = HeaderName::from_static("headroom-attempts");
/// `Headroom-Queue-Ms`: time spent waiting for quota or a concurrency slot.
pub static HEADROOM_QUEUE_MS: HeaderName = HeaderName::from_static("headroom-queue-ms");

/// Longest client-supplied request id kept as is.
const MAX_REQUEST_ID_LEN: usize = 200;

/// Headers that describe one connection, never forwarded (RFC 9110 7.6.1), plus the
/// non-standard ones proxies are known to receive. `Trailer` is not among them: it is
/// end-to-end, and a trailer is only sent when it is declared.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// `Via`.
pub static VIA: HeaderName = HeaderName::from_static("via");
/// What Headroom adds to `Via` (RFC 9110 7.6.3): protocol version and a pseudonym.
const VIA_HEADROOM: &str = "1.1 headroom";

/// Removes hop-by-hop headers and every header the `Connection` header names (each
/// comma-separated token that is a valid field name, whatever other bytes the value holds).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = tokens(headers, &header::CONNECTION)
            .filter_map(|token| HeaderName::from_bytes(token).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    // A message framed by `Transfer-Encoding` loses any `Content-Length` (RFC 9112 6.3):
    // forwarded with a length of its own, the body would be cut at the stale one.
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether the `Connection` header holds the `close` token (read byte-wise, so a value with
/// non-ASCII bytes in it still counts).
pub fn asks_to_close(headers: &HeaderMap) -> bool {
    tokens(headers, &header::CONNECTION).any(|token| token.eq_ignore_ascii_case(b"close"))
}

/// The comma-separated tokens of every `name` field, trimmed, read byte-wise (a value with
/// non-ASCII bytes in it still yields its valid tokens).
fn tokens<'h>(headers: &'h HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'h [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
}

/// Appends Headroom to the `Via` header (one value, after those already there).
pub fn add_via(headers: &mut HeaderMap) {
    if !headers.contains_key(&VIA) {
        headers.insert(&VIA, HeaderValue::from_static(VIA_HEADROOM));
        return;
    }
    let mut via: Vec<u8> = Vec::new();
    for value in headers.get_all(&VIA) {
        via.extend_from_slice(value.as_bytes());
        via.extend_from_slice(b", ");
    }
    via.extend_from_slice(VIA_HEADROOM.as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&via) {
        headers.insert(&VIA, value);
    }
}

/// Prepares a client's request headers for the upstream: hop-by-hop headers and `Host` go
/// (the client sets `Host` from the upstream URL), `Expect` goes (Headroom already answered
/// `100 Continue` itself), the client address is appended to `X-Forwarded-For`, and
/// `X-Forwarded-Proto` and `X-Request-Id` are set.
pub fn prepare_upstream_request(
    headers: &mut HeaderMap,
    client_ip: IpAddr,
    request_id: &HeaderValue,
) {
    // `TE: trailers` says the client takes trailers: the one `TE` a proxy passes on.
    let trailers =
        tokens(headers, &header::TE).any(|token| token.eq_ignore_ascii_case(b"trailers"));
    strip_hop_by_hop(headers);
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    add_via(headers);
    headers.remove(header::HOST);
    headers.remove(header::EXPECT);
    let forwarded_for = match headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
    {
        previous if previous.is_empty() => client_ip.to_string(),
        previous => format!("{}, {client_ip}", previous.join(", ")),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(&X_FORWARDED_FOR, value);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.insert(&X_REQUEST_ID, request_id.clone());
}

/// The client's `X-Request-Id` when it is a sane token (1 to 200 visible ASCII characters),
/// otherwise a new random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&X_REQUEST_ID)
        .filter(|v| {
            let bytes = v.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_LEN
                && bytes.iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(new_request_id)
}

/// A new random request id (UUID v4, simple form).
pub fn new_request_id() -> HeaderValue {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().simple().encode_lower(&mut buffer);
    HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Size of a request head as it came on the wire, near enough: request line plus each
/// `name: value\r\n`.
pub fn head_size(method: &http::Method, uri: &http::Uri, headers: &HeaderMap) -> usize {
    let line = method.as_str().len() + uri.path_and_query().map_or(1, |pq| pq.as_str().len()) + 12;
    line + headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn drops_hop_by_hop_and_connection_named_headers() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("x-other", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("authorization", "Bearer kept"),
            ("accept", "application/json"),
        ]);
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "authorization"]);
    }

    #[test]
    fn forwarded_for_is_appended_and_host_removed() {
        let mut headers = map(&[
            ("host", "headroom:8080"),
            ("x-forwarded-for", "10.1.1.1"),
            ("x-forwarded-proto", "https"),
            ("expect", "100-continue"),
        ]);
        let id = HeaderValue::from_static("req-1");
        prepare_upstream_request(&mut headers, "127.0.0.9".parse().expect("ip"), &id);
        assert_eq!(headers["x-forwarded-for"], "10.1.1.1, 127.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-request-id"], "req-1");
        assert!(headers.get("host").is_none());
        assert!(headers.get("expect").is_none());
    }

    #[test]
    fn request_id_kept_when_sane_else_generated() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc-123")])), "abc-123");
        for bad in ["", "has space", &"x".repeat(201)] {
            let got = request_id(&map(&[("x-request-id", bad)]));
            assert_ne!(got, bad);
            assert_eq!(got.len(), 32);
        }
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }
}
