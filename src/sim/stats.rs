//! What the simulator counts: atomic counters, an in-flight guard and a bounded log of windows.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// Windows kept in [`Stats::windows`].
pub const MAX_WINDOWS: usize = 1000;

/// A snapshot of the simulator's counters, as served by `GET /__stats`. Requests to `/__stats`
/// are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Supplier requests received (resets included).
    pub requests: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses with status 429 (quota rejections, and `/status/429`).
    pub rate_limited: u64,
    /// Responses with a 5xx status (simulated failures, and `/status/5xx`).
    pub server_errors: u64,
    /// Connections reset instead of answered.
    pub resets: u64,
    /// Requests being handled now: from their arrival until their response body has been
    /// handed over in full (or dropped).
    pub in_flight: u64,
    /// The highest `in_flight` seen since start or the last reset.
    pub max_in_flight: u64,
    /// The last windows (at most 1000) that saw requests, oldest first.
    pub windows: Vec<WindowStats>,
}

/// Requests decided in one quota window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Window start, milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// Requests admitted (simulated failures included: they count against the quota).
    pub admitted: u64,
    /// Requests rejected with a 429.
    pub rejected: u64,
}

/// The atomic counters behind [`Stats`].
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    ok: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    resets: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Counters {
    /// Counts an arriving request and returns its in-flight guard, and its sequence number
    /// (1-based, since start or the last reset).
    pub fn arrive(self: &Arc<Self>) -> (InFlightGuard, u64) {
        let seq = self.requests.fetch_add(1, Relaxed) + 1;
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Relaxed);
        (InFlightGuard(Arc::clone(self)), seq)
    }

    /// Counts a reset connection.
    pub fn reset_connection(&self) {
        self.resets.fetch_add(1, Relaxed);
    }

    /// Counts a response by its status.
    pub fn respond(&self, status: StatusCode) {
        let counter = match status.as_u16() {
            200..=299 => &self.ok,
            429 => &self.rate_limited,
            500..=599 => &self.server_errors,
            _ => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// A snapshot, with `windows` left empty.
    pub fn snapshot(&self) -> Stats {
        Stats {
            requests: self.requests.load(Relaxed),
            ok: self.ok.load(Relaxed),
            rate_limited: self.rate_limited.load(Relaxed),
            server_errors: self.server_errors.load(Relaxed),
            resets: self.resets.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            max_in_flight: self.max_in_flight.load(Relaxed),
            windows: Vec::new(),
        }
    }

    /// Zeroes the counters; `in_flight` is a gauge and stays, `max_in_flight` restarts from it.
    pub fn reset(&self) {
        for counter in [
            &self.requests,
            &self.ok,
            &self.rate_limited,
            &self.server_errors,
            &self.resets,
        ] {
            counter.store(0, Relaxed);
        }
        self.max_in_flight
            .store(self.in_flight.load(Relaxed), Relaxed);
    }
}

/// Keeps a request counted in `in_flight` until dropped.
#[derive(Debug)]
pub struct InFlightGuard(Arc<Counters>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// The last [`MAX_WINDOWS`] windows that saw requests.
#[derive(Debug, Default)]
pub struct WindowLog(VecDeque<WindowStats>);

impl WindowLog {
    /// Records one decision taken in the window starting at `start`.
    pub fn record(&mut self, start: Duration, admitted: bool) {
        let start_ms = u64::try_from(start.as_millis()).unwrap_or(u64::MAX);
        if self.0.back().is_none_or(|last| last.start_ms != start_ms) {
            if self.0.len() == MAX_WINDOWS {
                self.0.pop_front();
            }
            self.0.push_back(WindowStats {
                start_ms,
                ..WindowStats::default()
            });
        }
        if let Some(entry) = self.0.back_mut() {
            if admitted {
                entry.admitted += 1;
            } else {
                entry.rejected += 1;
            }
        }
    }

    /// The windows, oldest first.
    pub fn to_vec(&self) -> Vec<WindowStats> {
        self.0.iter().copied().collect()
    }

    /// Forgets every window.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_and_tracks_in_flight() {
        let counters = Arc::new(Counters::default());
        let (a, seq_a) = counters.arrive();
        let (b, seq_b) = counters.arrive();
        assert_eq!((seq_a, seq_b), (1, 2));
        drop(a);
        let (_c, _) = counters.arrive();
        for status in [200, 204, 429, 500, 503, 404, 302] {
            counters.respond(StatusCode::from_u16(status).unwrap_or_default());
        }
        counters.reset_connection();
        let s = counters.snapshot();
        assert_eq!(
            (s.requests, s.ok, s.rate_limited, s.server_errors, s.resets),
            (3, 2, 1, 2, 1)
        );
        assert_eq!((s.in_flight, s.max_in_flight), (2, 2));
        drop(b);
        counters.reset();
        let s = counters.snapshot();
        assert_eq!(
            (s.requests, s.ok, s.in_flight, s.max_in_flight),
            (0, 0, 1, 1)
        );
    }

    #[test]
    fn window_log_groups_and_is_bounded() {
        let mut log = WindowLog::default();
        log.record(Duration::from_secs(10), true);
        log.record(Duration::from_secs(10), true);
        log.record(Duration::from_secs(10), false);
        log.record(Duration::from_secs(12), true);
        assert_eq!(
            log.to_vec(),
            [
                WindowStats {
                    start_ms: 10_000,
                    admitted: 2,
                    rejected: 1
                },
                WindowStats {
                    start_ms: 12_000,
                    admitted: 1,
                    rejected: 0
                },
            ]
        );
        for i in 0..2000 {
            log.record(Duration::from_secs(100 + i), true);
        }
        let windows = log.to_vec();
        assert_eq!(windows.len(), MAX_WINDOWS);
        assert_eq!(windows[0].start_ms, 1_100_000);
        assert_eq!(windows[MAX_WINDOWS - 1].start_ms, 2_099_000);
        log.clear();
        assert!(log.to_vec().is_empty());
    }
}
