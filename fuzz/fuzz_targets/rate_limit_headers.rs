//! Every header convention's parser, then the tracker, on arbitrary response headers: no
//! input may panic (no unchecked arithmetic on values from outside).
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use headroom::quota::tracker::{Answer, Tracker, TrackerConfig};
use headroom::quota::{parse, ParseOptions, ResetFormat};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (first, headers) = common::lines(data);
    let status = first
        .get(..2)
        .map(|b| 100 + u16::from_le_bytes([b[0], b[1]]) % 500)
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for reset_format in [ResetFormat::Auto, ResetFormat::Delta, ResetFormat::DeltaMs, ResetFormat::Epoch] {
        let options = ParseOptions {
            reset_format,
            max_wait: Duration::from_secs(2 * 24 * 3600),
        };
        let (observation, _warnings) = parse(status, &headers, now, &options);
        let mut tracker = Tracker::new(TrackerConfig {
            probes: 2,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            share: 1 + u64::from(first.len() as u8 % 3),
        });
        let start = Instant::now();
        let _ = tracker.check(start);
        tracker.reserve(start);
        tracker.observe(&Answer {
            sent_at: start,
            received_at: start + Duration::from_millis(5),
            status,
            observation: observation.as_ref(),
            // The backoff's random number, from the input too: 0 to 1 (beyond, it is clamped).
            jitter: f64::from(first.get(2).copied().unwrap_or(0)) / 200.0,
        });
        for step in 1..4u64 {
            let at = start + Duration::from_secs(step * 3600);
            if tracker.check(at).is_ok() {
                tracker.reserve(at);
                tracker.spend(at);
            }
            let _ = tracker.snapshot(at);
        }
    }
});
