//! Rewriting the supplier's own URLs in `Location`, `Content-Location` and `Link` to the
//! upstream's prefix on Headroom (what nginx's `proxy_redirect` does for `Location`), so a
//! poller that follows a pagination link or a redirect stays behind Headroom and its quota.

use http::header::{CONTENT_LOCATION, LINK, LOCATION};
use http::{HeaderMap, HeaderValue};

/// Rewrites URLs under `base` (the upstream's `url`: scheme, authority and base path, no
/// trailing `/`) to `prefix` (the upstream's prefix, `/` or without a trailing `/`). URLs
/// elsewhere, and values that are not visible ASCII, are left alone.
pub fn rewrite(headers: &mut HeaderMap, base: &str, prefix: &str) {
    for name in [LOCATION, CONTENT_LOCATION] {
        if let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) {
            if let Some(rewritten) = rewrite_url(value, base, prefix) {
                if let Ok(value) = HeaderValue::try_from(rewritten) {
                    headers.insert(name, value);
                }
            }
        }
    }
    if !headers.contains_key(LINK) {
        return;
    }
    let links: Vec<HeaderValue> = headers
        .get_all(LINK)
        .iter()
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| rewrite_link(text, base, prefix))
                .and_then(|text| HeaderValue::try_from(text).ok())
                .unwrap_or_else(|| value.clone())
        })
        .collect();
    headers.remove(LINK);
    for value in links {
        headers.append(LINK, value);
    }
}

/// `url` with `base` replaced by `prefix`, if it lies under `base` (on a path boundary):
/// an absolute URL (scheme and host compared without case, the path exactly), or an
/// absolute path under `base`'s path (`Location: /v2/items/2`).
fn rewrite_url(url: &str, base: &str, prefix: &str) -> Option<String> {
    // `scheme://authority` and the base path.
    let origin_end = base
        .find("://")
        .map(|at| at + 3)
        .map(|from| base[from..].find('/').map_or(base.len(), |i| from + i))?;
    let (origin, base_path) = base.split_at(origin_end);
    let rest = if url.starts_with('/') && !url.starts_with("//") {
        url.strip_prefix(base_path)?
    } else {
        let head = url.get(..origin.len())?;
        if !head.eq_ignore_ascii_case(origin) {
            return None;
        }
        url[origin.len()..].strip_prefix(base_path)?
    };
    if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
        return None;
    }
    let prefix = prefix.trim_end_matches('/');
    let rest = if rest.is_empty() || !rest.starts_with('/') {
        format!("/{rest}")
    } else {
        rest.to_owned()
    };
    Some(format!("{prefix}{rest}"))
}

/// A `Link` value (RFC 8288: `<uri>; params, <uri>; params`) with each target under `base`
/// rewritten; `None` when nothing changed.
fn rewrite_link(value: &str, base: &str, prefix: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut changed = false;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..=open]);
        let target = &rest[open + 1..close];
        match rewrite_url(target, base, prefix) {
            Some(rewritten) => {
                out.push_str(&rewritten);
                changed = true;
            }
            None => out.push_str(target),
        }
        out.push('>');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_under_the_base_move_to_the_prefix() {
        let base = "https://api.supplier.example/v2";
        let cases = [
            (
                "https://api.supplier.example/v2/items?page=2",
                "/a",
                Some("/a/items?page=2"),
            ),
            (
                "HTTPS://API.supplier.example/v2/items",
                "/a",
                Some("/a/items"),
            ),
            ("https://api.supplier.example/v2", "/a", Some("/a/")),
            ("https://api.supplier.example/v2?x=1", "/a", Some("/a/?x=1")),
            ("https://api.supplier.example/v2/items", "/", Some("/items")),
            ("https://api.supplier.example/v20/items", "/a", None),
            ("https://api.supplier.example.evil/v2/items", "/a", None),
            ("https://api.supplier.example:8443/v2/items", "/a", None),
            ("https://other.example/v2/items", "/a", None),
            ("https://api.supplier.example/V2/items", "/a", None),
            ("/v2/items?page=3", "/a", Some("/a/items?page=3")),
            ("/v20/items", "/a", None),
            ("/other/items", "/a", None),
            ("//other.example/v2/items", "/a", None),
            ("items", "/a", None),
        ];
        for (url, prefix, want) in cases {
            assert_eq!(rewrite_url(url, base, prefix).as_deref(), want, "{url}");
        }
        // A base at the root: every absolute path is the supplier's.
        let base = "http://s.example";
        let cases = [
            ("http://s.example", "/s", Some("/s/")),
            ("/items/2", "/s", Some("/s/items/2")),
            ("http://s.example/items/2", "/", Some("/items/2")),
        ];
        for (url, prefix, want) in cases {
            assert_eq!(rewrite_url(url, base, prefix).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn link_headers_keep_their_parameters_and_other_hosts() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(
                "<http://s.example/p?c=2>; rel=\"next\", <http://x.example/p>; rel=\"alt\"",
            ),
        );
        headers.append(
            LINK,
            HeaderValue::from_static("<http://s.example/last>; rel=last"),
        );
        headers.insert(LOCATION, HeaderValue::from_static("http://s.example/p?c=2"));
        rewrite(&mut headers, "http://s.example", "/s");
        let links: Vec<_> = headers.get_all(LINK).iter().collect();
        assert_eq!(
            links,
            [
                "</s/p?c=2>; rel=\"next\", <http://x.example/p>; rel=\"alt\"",
                "</s/last>; rel=last"
            ]
        );
        assert_eq!(headers[LOCATION], "/s/p?c=2");
    }
}
