//! The simulator's request handling, independent of sockets: stats endpoints, then the reset
//! fault, the quota, the latency, the failure fault and the supplier endpoints.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use serde_json::json;

use super::body::SimBody;
use super::clock::SimClock;
use super::faults::{Dice, FailureRotation};
use super::fnv::Fnv1a64;
use super::headers;
use super::quota::{Decision, FixedWindow};
use super::routes;
use super::stats::{Counters, Stats, WindowLog};
use super::{Convention, SimArgs};

/// `GET`: the stats as JSON. Not counted, not rate limited, never faulty.
pub const STATS_PATH: &str = "/__stats";
/// `POST`: zeroes the counters (not the quota).
pub const STATS_RESET_PATH: &str = "/__stats/reset";
/// `POST /__limit?limit=N`: the quota's limit becomes N from the next window on (a supplier
/// tightening its quota). Not counted, not rate limited.
pub const LIMIT_PATH: &str = "/__limit";

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What to do with a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this response.
    Respond(Response<SimBody>),
    /// Reset the connection without answering.
    Reset,
}

/// The simulator's shared state.
#[derive(Debug)]
pub struct Sim {
    convention: Convention,
    latency: Duration,
    fail_rate: f64,
    reset_rate: f64,
    seed: u64,
    clock: SimClock,
    quota: Mutex<QuotaBook>,
    counters: Arc<Counters>,
    reset_dice: Dice,
    fail_dice: Dice,
    failures: FailureRotation,
    /// The Discord bucket id: a hash of the quota's shape.
    bucket: HeaderValue,
}

/// The quota and the log of its windows, under one short lock.
#[derive(Debug)]
struct QuotaBook {
    window: FixedWindow,
    log: WindowLog,
}

impl Sim {
    /// A simulator for `args` (assumed valid) reading time from `clock`.
    pub fn new(args: &SimArgs, clock: SimClock) -> Self {
        let seed = args.seed.unwrap_or_else(rand::random);
        let mut bucket = Fnv1a64::default();
        bucket
            .update(format!("headroom-sim:{}:{}", args.limit, args.window.as_millis()).as_bytes());
        Self {
            convention: args.convention,
            latency: args.latency,
            fail_rate: args.fail_rate,
            reset_rate: args.reset_rate,
            seed,
            clock,
            quota: Mutex::new(QuotaBook {
                window: FixedWindow::new(args.limit, args.window),
                log: WindowLog::default(),
            }),
            counters: Arc::new(Counters::default()),
            reset_dice: Dice::new(seed),
            fail_dice: Dice::new(seed ^ 0x5eed_fa11_0000_0000),
            failures: FailureRotation::default(),
            bucket: HeaderValue::try_from(bucket.hex())
                .unwrap_or_else(|_| HeaderValue::from_static("default")),
        }
    }

    /// The seed of the fault dice.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A snapshot of the counters and windows.
    pub fn stats(&self) -> Stats {
        let mut stats = self.counters.snapshot();
        stats.windows = self.book().log.to_vec();
        stats
    }

    /// Zeroes the counters and forgets the windows; the quota itself is untouched.
    pub fn reset_stats(&self) {
        self.counters.reset();
        self.book().log.clear();
    }

    /// Changes the quota's limit from the next window on.
    pub fn set_limit(&self, limit: u32) {
        self.book().window.set_limit(limit);
    }

    fn book(&self) -> std::sync::MutexGuard<'_, QuotaBook> {
        self.quota.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides on one request arriving now.
    fn decide(&self) -> Decision {
        let now = self.clock.now();
        let mut book = self.book();
        let decision = book.window.admit(now);
        book.log.record(decision.window_start, decision.allowed);
        decision
    }

    /// Handles one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Reply
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let path = req.uri().path();
        if path == STATS_PATH || path == STATS_RESET_PATH {
            return Reply::Respond(self.stats_endpoint(req.method(), path));
        }
        if path == LIMIT_PATH {
            return Reply::Respond(self.limit_endpoint(req.method(), req.uri().query()));
        }
        let (guard, seq) = self.counters.arrive();
        if self.reset_dice.hits(self.reset_rate) {
            self.counters.reset_connection();
            return Reply::Reset;
        }
        let decision = self.decide();
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let request_ids: Vec<HeaderValue> = req
            .headers()
            .get_all(X_REQUEST_ID)
            .iter()
            .cloned()
            .collect();
        let mut response = if !decision.allowed {
            routes::json(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"error": "rate_limited"}),
            )
        } else if self.fail_dice.hits(self.fail_rate) {
            let status = self.failures.next();
            routes::json(
                status,
                &json!({"error": "simulated_failure", "status": status.as_u16()}),
            )
        } else {
            let context = routes::Context {
                window_admitted: decision.used,
                seq,
                now: self.clock.now(),
            };
            routes::route(req, &context).await
        };
        let headers = response.headers_mut();
        for (name, value) in headers::render(self.convention, &decision, &self.bucket) {
            headers.insert(name, value);
        }
        for id in request_ids {
            headers.append(X_REQUEST_ID, id);
        }
        self.counters.respond(response.status());
        Reply::Respond(response.map(|body| body.with_guard(guard)))
    }

    fn limit_endpoint(&self, method: &Method, query: Option<&str>) -> Response<SimBody> {
        if method != Method::POST {
            let mut response = routes::json(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method_not_allowed", "allow": "POST"}),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let limit = query
            .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("limit=")))
            .and_then(|v| v.parse::<u32>().ok());
        match limit {
            Some(limit) => {
                self.set_limit(limit);
                routes::json(StatusCode::OK, &json!({"limit_from_next_window": limit}))
            }
            None => routes::json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "bad_request", "message": "POST /__limit?limit=N"}),
            ),
        }
    }

    fn stats_endpoint(&self, method: &Method, path: &str) -> Response<SimBody> {
        let (allowed, allow) = if path == STATS_PATH {
            (method == Method::GET || method == Method::HEAD, "GET, HEAD")
        } else {
            (method == Method::POST, "POST")
        };
        if !allowed {
            let mut response = routes::json(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method_not_allowed", "allow": allow}),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return response;
        }
        if path == STATS_RESET_PATH {
            self.reset_stats();
        }
        routes::json(StatusCode::OK, &self.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use tokio::time::Instant;

    /// A simulator whose clock reads exactly `epoch_secs` now (under a paused runtime).
    fn sim(args: SimArgs, epoch_secs: u64) -> Sim {
        Sim::new(
            &args,
            SimClock::anchored(Instant::now(), Duration::from_secs(epoch_secs)),
        )
    }

    fn get(path: &str) -> Request<Full<Bytes>> {
        Request::get(path)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    }

    async fn respond(
        sim: &Sim,
        req: Request<Full<Bytes>>,
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        match sim.handle(req).await {
            Reply::Respond(response) => {
                let (parts, body) = response.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                (parts.status, parts.headers, bytes.to_vec())
            }
            Reply::Reset => panic!("unexpected reset"),
        }
    }

    fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("<missing>")
    }

    #[tokio::test(start_paused = true)]
    async fn quota_rolls_over_with_the_paused_clock() {
        let args = SimArgs {
            limit: 2,
            window: Duration::from_secs(10),
            convention: Convention::Delta,
            ..SimArgs::default()
        };
        // 3 s into the window [1_800_000_000, 1_800_000_010).
        let sim = sim(args, 1_800_000_003);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (status, headers, _) = respond(&sim, get("/items")).await;
            seen.push((
                status.as_u16(),
                header(&headers, "x-ratelimit-remaining").to_owned(),
                header(&headers, "x-ratelimit-reset").to_owned(),
            ));
        }
        let expected = [(200, "1", "7"), (200, "0", "7"), (429, "0", "7")];
        assert_eq!(
            seen,
            expected.map(|(s, r, t)| (s, r.to_owned(), t.to_owned()))
        );
        tokio::time::advance(Duration::from_millis(6_500)).await;
        let (status, headers, _) = respond(&sim, get("/items")).await;
        assert_eq!(
            (status.as_u16(), header(&headers, "x-ratelimit-reset")),
            (429, "1")
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        let (status, headers, _) = respond(&sim, get("/items")).await;
        assert_eq!(
            (
                status.as_u16(),
                header(&headers, "x-ratelimit-remaining"),
                header(&headers, "x-ratelimit-reset")
            ),
            (200, "1", "10")
        );
        let stats = sim.stats();
        assert_eq!((stats.requests, stats.ok, stats.rate_limited), (5, 3, 2));
        let windows: Vec<_> = stats
            .windows
            .iter()
            .map(|w| (w.start_ms, w.admitted, w.rejected))
            .collect();
        assert_eq!(
            windows,
            [(1_800_000_000_000, 2, 2), (1_800_000_010_000, 1, 0)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_every_response_on_the_paused_clock() {
        let args = SimArgs {
            limit: 1,
            window: Duration::from_secs(3600),
            latency: Duration::from_secs(90),
            ..SimArgs::default()
        };
        let sim = sim(args, 1_800_000_000);
        for expected in [200, 429] {
            let start = Instant::now();
            let (status, _, _) = respond(&sim, get("/x")).await;
            assert_eq!(status.as_u16(), expected);
            assert_eq!(start.elapsed(), Duration::from_secs(90));
        }
        // The stats endpoint is not delayed.
        let start = Instant::now();
        let (status, _, _) = respond(&sim, get(STATS_PATH)).await;
        assert_eq!((status.as_u16(), start.elapsed()), (200, Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_count_against_the_quota_without_retry_after() {
        let args = SimArgs {
            limit: 3,
            window: Duration::from_secs(60),
            convention: Convention::RetryAfter,
            fail_rate: 1.0,
            ..SimArgs::default()
        };
        let sim = sim(args, 1_800_000_000);
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let (status, headers, body) = respond(&sim, get("/x")).await;
            statuses.push(status.as_u16());
            if status.is_server_error() {
                assert!(headers.get("retry-after").is_none());
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                assert_eq!(body["error"], "simulated_failure");
            } else {
                assert_eq!(header(&headers, "retry-after"), "60");
            }
        }
        assert_eq!(statuses, [500, 502, 503, 429]);
        let stats = sim.stats();
        assert_eq!((stats.server_errors, stats.rate_limited), (3, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_outcome_is_counted_and_spares_the_quota() {
        let args = SimArgs {
            limit: 1,
            reset_rate: 1.0,
            ..SimArgs::default()
        };
        let sim = sim(args, 1_800_000_000);
        assert!(matches!(sim.handle(get("/x")).await, Reply::Reset));
        let stats = sim.stats();
        assert_eq!((stats.requests, stats.resets, stats.in_flight), (1, 1, 0));
        assert!(stats.windows.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_lasts_until_the_body_is_over() {
        let sim = sim(
            SimArgs {
                limit: 0,
                ..SimArgs::default()
            },
            1_800_000_000,
        );
        let Reply::Respond(response) = sim.handle(get("/bytes/200000")).await else {
            panic!("reset");
        };
        assert_eq!(sim.stats().in_flight, 1);
        let mut body = response.into_body();
        let mut received = 0;
        while let Some(Ok(frame)) = body.frame().await {
            received += frame.into_data().map_or(0, |d| d.len());
            let expected = u64::from(received < 200_000);
            assert_eq!(sim.stats().in_flight, expected, "after {received} bytes");
        }
        assert_eq!(received, 200_000);
        assert_eq!(sim.stats().max_in_flight, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_endpoint_tightens_the_quota_from_the_next_window() {
        let sim = sim(
            SimArgs {
                limit: 3,
                window: Duration::from_secs(60),
                ..SimArgs::default()
            },
            1_800_000_000,
        );
        assert_eq!(respond(&sim, get("/a")).await.0, StatusCode::OK);
        let set = Request::post("/__limit?limit=1")
            .body(Full::new(Bytes::new()))
            .unwrap_or_default();
        assert_eq!(respond(&sim, set).await.0, StatusCode::OK);
        assert_eq!(
            respond(&sim, get(LIMIT_PATH)).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        let bad = Request::post("/__limit?limit=x")
            .body(Full::new(Bytes::new()))
            .unwrap_or_default();
        assert_eq!(respond(&sim, bad).await.0, StatusCode::BAD_REQUEST);
        assert_eq!(
            respond(&sim, get("/a")).await.0,
            StatusCode::OK,
            "this window: 3"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        let (status, headers, _) = respond(&sim, get("/a")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-ratelimit-limit"), "1");
        assert_eq!(
            respond(&sim, get("/a")).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stats_endpoints_are_not_counted_and_reset_keeps_the_quota() {
        let sim = sim(
            SimArgs {
                limit: 1,
                window: Duration::from_secs(60),
                ..SimArgs::default()
            },
            1_800_000_000,
        );
        assert_eq!(respond(&sim, get("/a")).await.0, StatusCode::OK);
        let (status, _, body) = respond(&sim, get(STATS_PATH)).await;
        assert_eq!(status, StatusCode::OK);
        let stats: Stats = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!((stats.requests, stats.ok, stats.windows.len()), (1, 1, 1));
        assert_eq!(
            respond(&sim, get(STATS_RESET_PATH)).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        let reset = Request::post(STATS_RESET_PATH)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default();
        let (status, _, body) = respond(&sim, reset).await;
        assert_eq!(status, StatusCode::OK);
        let stats: Stats = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(stats, Stats::default());
        // The quota still remembers the admitted request.
        assert_eq!(
            respond(&sim, get("/a")).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    #[tokio::test(start_paused = true)]
    async fn request_ids_are_echoed_on_every_supplier_response() {
        let sim = sim(
            SimArgs {
                limit: 1,
                ..SimArgs::default()
            },
            1_800_000_000,
        );
        for expected in [200, 429] {
            let req = Request::get("/a")
                .header("x-request-id", "abc")
                .body(Full::new(Bytes::new()))
                .unwrap_or_default();
            let (status, headers, _) = respond(&sim, req).await;
            assert_eq!(
                (status.as_u16(), header(&headers, "x-request-id")),
                (expected, "abc")
            );
        }
    }
}
