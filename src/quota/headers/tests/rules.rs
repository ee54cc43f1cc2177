//! `parse` as a whole: the fast path, precedence, warnings.

use std::collections::HashSet;

use http::{HeaderMap, HeaderValue, StatusCode};

use super::support::{case, check, now, run, secs, want, Expect};
use crate::quota::headers::parse;
use crate::quota::observation::Source::{self, Github, Gitlab, Ietf, Ietf06, XRateLimit};
use crate::quota::observation::{HeaderWarning, ParseOptions};

#[test]
fn no_rate_limit_headers_is_none_without_warnings() {
    let plain = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("x-request-id", "abc"),
        ("server", "nginx"),
    ];
    for status in [200, 201, 204, 304, 400, 401, 403, 404, 500, 502, 503] {
        assert_eq!(run(status, &plain), (None, Vec::new()), "status {status}");
    }
    assert_eq!(run(200, &[]), (None, Vec::new()));
}

#[test]
fn precedence() {
    check(vec![
        case(
            "IETF -08 over GitHub's headers",
            200,
            &[
                ("RateLimit", r#""d";r=3;t=4"#),
                ("x-ratelimit-limit", "60"),
                ("x-ratelimit-resource", "core"),
            ],
            Some(want(Ietf).remaining(3).reset(secs(4))),
        ),
        case(
            "GitLab before the -06 reading of the same names",
            200,
            &[("RateLimit-Limit", "60"), ("RateLimit-Name", "throttle")],
            Some(want(Gitlab).limit(60)),
        ),
        case(
            "-06 over X-RateLimit",
            200,
            &[("RateLimit-Limit", "60"), ("X-RateLimit-Limit", "100")],
            Some(want(Ietf06).limit(60)),
        ),
        case(
            "GitHub over the generic X-RateLimit reading",
            200,
            &[("x-ratelimit-limit", "60"), ("x-github-request-id", "1")],
            Some(want(Github).limit(60)),
        ),
        case(
            "Retry-After wins for the wait over a reset",
            429,
            &[
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "30"),
                ("Retry-After", "5"),
            ],
            Some(
                want(XRateLimit)
                    .remaining(0)
                    .reset(secs(30))
                    .limited()
                    .retry(secs(5)),
            ),
        ),
        case(
            "429 with remaining 0 and no Retry-After: no wait (the reset is the tracker's)",
            429,
            &[("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "30")],
            Some(want(XRateLimit).remaining(0).reset(secs(30)).limited()),
        ),
    ]);
}

#[test]
fn a_value_read_twice_warns_once() {
    check(vec![case(
        "GitHub and the generic reading both see the bad limit",
        200,
        &[
            ("x-ratelimit-limit", "lots"),
            ("x-ratelimit-resource", "core"),
        ],
        None,
    )
    .warns(&[("x-ratelimit-limit", "malformed")])]);
}

#[test]
fn warnings_keep_64_characters_and_non_ascii_values() {
    let long = "9".repeat(30) + &"x".repeat(100);
    let (_, warnings) = run(200, &[("x-ratelimit-limit", &long)]);
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].value.chars().count(),
        HeaderWarning::MAX_VALUE_CHARS
    );
    assert!(long.starts_with(&warnings[0].value));

    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_bytes(b"12\xff").expect("obs-text is a valid header value");
    headers.insert("x-ratelimit-remaining", value);
    let (obs, warnings) = parse(StatusCode::OK, &headers, now(), &ParseOptions::default());
    assert_eq!(obs, None);
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        (warnings[0].header, warnings[0].reason),
        ("x-ratelimit-remaining", "not visible ASCII")
    );
    assert_eq!(warnings[0].value, "12\u{fffd}");
    assert_eq!(
        warnings[0].to_string(),
        "ignored x-ratelimit-remaining: \"12\u{fffd}\" (not visible ASCII)"
    );
}

#[test]
fn source_labels_are_distinct() {
    let all = Source::ALL;
    let labels: HashSet<&str> = all.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels.len(), all.len());
    assert_eq!(Source::Ietf07.to_string(), "ietf-07");
}
