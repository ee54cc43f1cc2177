//! Where a request goes upstream: the base URL joined with the rest of the path, the query
//! kept byte for byte, and dot segments refused so no path escapes the base path.

use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;
use percent_encoding::percent_decode_str;

use crate::error::ProxyError;

/// An upstream's `url`, split into the parts a request URI is built from.
#[derive(Debug, Clone)]
pub struct TargetBase {
    scheme: Scheme,
    authority: Authority,
    /// Percent-encoded, without a trailing `/`; empty for the root.
    base_path: String,
}

impl TargetBase {
    /// Splits a validated upstream URL.
    pub fn from_url(url: &url::Url) -> Result<Self, String> {
        let scheme = match url.scheme() {
            "http" => Scheme::HTTP,
            "https" => Scheme::HTTPS,
            other => return Err(format!("unsupported scheme {other:?}")),
        };
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let authority = authority
            .parse::<Authority>()
            .map_err(|e| format!("bad host {authority:?}: {e}"))?;
        let base_path = url.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            base_path,
        })
    }

    /// `true` for `https` upstreams.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// The request URI for `rest` (what followed the prefix: empty or starting with `/`) and
    /// the client's raw query, if it sent a `?`.
    pub fn uri(&self, rest: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
        check_dot_segments(rest)?;
        let mut pq = String::with_capacity(self.base_path.len() + rest.len() + 64);
        pq.push_str(&self.base_path);
        pq.push_str(rest);
        if pq.is_empty() {
            pq.push('/');
        }
        if let Some(query) = query {
            pq.push('?');
            pq.push_str(query);
        }
        let pq = PathAndQuery::from_maybe_shared(pq)
            .map_err(|e| ProxyError::BadRequest(format!("invalid request target: {e}")))?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| ProxyError::BadRequest(format!("invalid request target: {e}")))
    }
}

/// Refuses `.` and `..` segments, literal or percent-encoded (`%2e%2e`, `.%2E`, and `..%2f`
/// hidden behind an encoded slash or backslash): upstreams that normalise them would let a
/// client climb out of the base path.
fn check_dot_segments(path: &str) -> Result<(), ProxyError> {
    for segment in path.split('/') {
        // The usual segment: no escape, no backslash, not a dot segment; nothing to decode.
        if !segment.contains(['%', '\\']) && segment != "." && segment != ".." {
            continue;
        }
        let decoded = percent_decode_str(segment).collect::<Vec<u8>>();
        let escapes = decoded
            .split(|b| *b == b'/' || *b == b'\\')
            .any(|part| part == b"." || part == b"..");
        if escapes {
            return Err(ProxyError::BadRequest(
                "dot segments (`.`, `..`, also percent-encoded) are not allowed in the path".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(url: &str) -> TargetBase {
        TargetBase::from_url(&url::Url::parse(url).expect("url")).expect("base")
    }

    #[test]
    fn joins_base_path_rest_and_raw_query() {
        let cases = [
            ("http://h:1", "", None, "http://h:1/"),
            ("http://h:1", "/x", None, "http://h:1/x"),
            ("http://h:1/", "/x", Some("a=1"), "http://h:1/x?a=1"),
            ("https://h/base/v1", "", None, "https://h/base/v1"),
            (
                "https://h/base/v1/",
                "/items",
                None,
                "https://h/base/v1/items",
            ),
            ("https://h/base", "/", None, "https://h/base/"),
            ("http://h:8/b", "/i", Some(""), "http://h:8/b/i?"),
            (
                "http://h:8/b",
                "/i",
                Some("q=%2F&x=a+b&y='&z"),
                "http://h:8/b/i?q=%2F&x=a+b&y='&z",
            ),
            ("http://[::1]:9/b", "/i", None, "http://[::1]:9/b/i"),
        ];
        for (url, rest, query, want) in cases {
            let got = base(url).uri(rest, query).expect("uri");
            assert_eq!(got.to_string(), want, "{url} + {rest} ? {query:?}");
        }
    }

    #[test]
    fn refuses_dot_segments_in_any_spelling() {
        for rest in [
            "/..",
            "/../x",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/.%2e/x",
            "/%2e/x",
            "/./x",
            "/a/..%2f../x",
            "/a/..%5c..%5cx",
            "/a\\..\\x",
            "/a/..\\x",
        ] {
            assert!(base("http://h/b").uri(rest, None).is_err(), "{rest}");
        }
        for rest in ["/...", "/a..b", "/.hidden", "/%2e%2e%2e", "/v1.2/x"] {
            assert!(base("http://h/b").uri(rest, None).is_ok(), "{rest}");
        }
    }
}
