//! Rules for single upstream values: pure functions from the text in the file to the value
//! the gateway uses, or a message saying what is wrong.

use std::path::Path;

use super::super::super::{PartitionBy, ResetFormat};

/// `name`: `[a-z0-9_-]+`.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    match name.chars().find(|&c| !valid(c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{name:?} contains {c:?}: use only lowercase letters, digits, `_` and `-`"
        )),
    }
}

/// `prefix`: starts with `/`, one trailing `/` dropped (`"/"` alone stays: catch-all), no
/// `?`, `#`, `%`, no `.`, `..` or empty segments, only characters a URL path may hold as
/// they are.
pub(super) fn normalize_prefix(prefix: &str) -> Result<String, String> {
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?} must start with `/`"));
    }
    if let Some(c) = prefix.chars().find(|c| matches!(c, '?' | '#' | '%')) {
        return Err(format!(
            "{prefix:?} must not contain `{c}` (a prefix is a plain path, not percent-encoded)"
        ));
    }
    let path_char = |c: char| c.is_ascii_alphanumeric() || "/-._~!$&'()*+,;=:@".contains(c);
    if let Some(c) = prefix.chars().find(|&c| !path_char(c)) {
        return Err(format!(
            "{prefix:?} contains {c:?}: use only letters, digits, `/` and -._~!$&'()*+,;=:@"
        ));
    }
    if prefix == "/" {
        return Ok(prefix.to_owned());
    }
    let normal = prefix.strip_suffix('/').unwrap_or(prefix);
    for segment in normal.split('/').skip(1) {
        match segment {
            "" => {
                return Err(format!(
                    "{prefix:?} must not contain an empty segment (`//`)"
                ))
            }
            "." | ".." => return Err(format!("{prefix:?} must not contain a `{segment}` segment")),
            _ => {}
        }
    }
    Ok(normal.to_owned())
}

/// `url`: http or https, a host, no user info, query or fragment. Returns the URL if it
/// parses and every message about it.
pub(super) fn check_url(text: &str) -> (Option<url::Url>, Vec<String>) {
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(err) => return (None, vec![format!("{text:?} is not a valid URL: {err}")]),
    };
    let mut problems = Vec::new();
    if !matches!(url.scheme(), "http" | "https") {
        problems.push(format!(
            "scheme must be `http` or `https`, not `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        problems.push(format!("{text:?} has no host"));
    }
    if url.port() == Some(0) {
        problems.push(format!("{text:?} has port 0"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        problems.push(
            "must not contain user info (`user:password@`): credentials do not belong in the \
             configuration URL"
                .to_owned(),
        );
    }
    if url.query().is_some() {
        problems.push(format!("{text:?} must not have a query (`?...`)"));
    }
    if url.fragment().is_some() {
        problems.push(format!("{text:?} must not have a fragment (`#...`)"));
    }
    (problems.is_empty().then_some(url), problems)
}

/// `ca_file`: readable, with at least one PEM certificate, every one of them usable.
/// `written` is the path as in the file, `path` the path resolved against its directory.
pub(super) fn check_ca_file(written: &str, path: &Path) -> Result<(), String> {
    if written.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let bytes =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{} is not a valid PEM file: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    let total = certs.len();
    let (_, unusable) = rustls::RootCertStore::empty().add_parsable_certificates(certs);
    if unusable > 0 {
        return Err(format!(
            "{} of the {total} certificates in {} cannot be parsed",
            unusable,
            path.display()
        ));
    }
    Ok(())
}

/// `quota.reset_format`: `"auto"`, `"delta"`, `"delta_ms"` or `"epoch"`.
pub(super) fn parse_reset_format(text: &str) -> Result<ResetFormat, String> {
    match text {
        "auto" => Ok(ResetFormat::Auto),
        "delta" => Ok(ResetFormat::Delta),
        "delta_ms" => Ok(ResetFormat::DeltaMs),
        "epoch" => Ok(ResetFormat::Epoch),
        _ => Err(format!(
            "must be \"auto\", \"delta\", \"delta_ms\" or \"epoch\", not {text:?}"
        )),
    }
}

/// `quota.partition_by`: `"header:<Header-Name>"`, a valid header name that is neither
/// hop-by-hop (the proxy drops those) nor `host` (the proxy sets it).
pub(super) fn parse_partition_by(text: &str) -> Result<PartitionBy, String> {
    let Some(name) = text.strip_prefix("header:") else {
        return Err(format!(
            "{text:?} must be \"header:<Header-Name>\", e.g. \"header:X-Api-Key\""
        ));
    };
    if name.is_empty() {
        return Err(format!(
            "{text:?} names no header: write e.g. \"header:X-Api-Key\""
        ));
    }
    let header = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!(
            "{name:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~, no \
             spaces)"
        )
    })?;
    let lower = header.as_str();
    let hop_by_hop = matches!(
        lower,
        "connection" | "te" | "transfer-encoding" | "upgrade" | "keep-alive" | "trailer"
    ) || lower.starts_with("proxy-");
    if hop_by_hop {
        return Err(format!(
            "`{lower}` is a hop-by-hop header, not forwarded: partition by an end-to-end \
             header such as `X-Api-Key`"
        ));
    }
    if lower == "host" {
        return Err(
            "`host` is set by Headroom for the upstream: partition by an end-to-end header \
             such as `X-Api-Key`"
                .to_owned(),
        );
    }
    Ok(PartitionBy::Header(header))
}

/// `breaker.failure_rate`: a share of failures, greater than 0 and at most 1 (`nan` and
/// `inf` are refused too).
pub(super) fn check_failure_rate(rate: f64) -> Result<f64, String> {
    if rate > 0.0 && rate <= 1.0 {
        return Ok(rate);
    }
    // 2 to 100 reads like a percentage; 1.0001 more like a typo.
    let hint = if (2.0..=100.0).contains(&rate) {
        format!(
            " (a share, not a percentage: write {} for {rate}%)",
            rate / 100.0
        )
    } else {
        String::new()
    };
    Err(format!(
        "must be greater than 0 and at most 1, got {rate}{hint}"
    ))
}
