//! Shared by the fuzz targets: arbitrary bytes as `name: value` lines of a header map.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The header lines of `data` (split on `\n`, then on the first `:`) that are a valid name
/// and value; the first line is returned apart (a request line or a status).
pub fn lines(data: &[u8]) -> (&[u8], HeaderMap) {
    let mut parts = data.split(|b| *b == b'\n');
    let first = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in parts {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    (first, headers)
}
