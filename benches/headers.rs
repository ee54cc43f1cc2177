//! `quota::headers::parse` on the responses a gateway sees most: a GitHub response, an IETF
//! -11 response with three policies, a bare 429 with `Retry-After`, and (the common case) a
//! response without any rate-limit header.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use headroom::quota::{parse, ParseOptions};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    map
}

/// Headers every response carries, rate-limited or not.
const COMMON: &[(&str, &str)] = &[
    ("date", "Thu, 26 Mar 2026 15:00:00 GMT"),
    ("content-type", "application/json; charset=utf-8"),
    ("content-length", "1234"),
    ("cache-control", "private, max-age=60"),
    ("etag", "\"abc123\""),
    ("vary", "Accept, Authorization"),
    ("x-request-id", "6f1d0c1e-4c7b-4e7e-9f1a-1b2c3d4e5f60"),
    ("server", "nginx"),
];

fn with_common(extra: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut pairs = COMMON.to_vec();
    pairs.extend_from_slice(extra);
    headers(&pairs)
}

fn bench(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_secs(1_774_537_200);
    let opts = ParseOptions::default();
    let github = with_common(&[
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4999"),
        ("x-ratelimit-reset", "1774540800"),
        ("x-ratelimit-used", "1"),
        ("x-ratelimit-resource", "core"),
        ("x-github-request-id", "CAFE:1234:5678"),
    ]);
    let ietf = with_common(&[
        (
            "ratelimit-policy",
            r#""burst";q=100;w=60, "hourly";q=1000;w=3600, "daily";q=10000;w=86400"#,
        ),
        (
            "ratelimit",
            r#""burst";r=50;t=30, "hourly";r=900;t=1800, "daily";r=9000;t=40000"#,
        ),
    ]);
    let retry = with_common(&[("retry-after", "30")]);
    let plain = with_common(&[]);

    let mut run = |name: &str, status: StatusCode, map: &HeaderMap| {
        let at: SystemTime = now;
        c.bench_function(name, |b| {
            b.iter(|| parse(black_box(status), black_box(map), at, &opts))
        });
    };
    run("github", StatusCode::OK, &github);
    run("ietf_11_three_policies", StatusCode::OK, &ietf);
    run("retry_after_429", StatusCode::TOO_MANY_REQUESTS, &retry);
    run("no_rate_limit_headers", StatusCode::OK, &plain);
}

criterion_group!(benches, bench);
criterion_main!(benches);
