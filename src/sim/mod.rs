//! The supplier simulator: an HTTP/1.1 server with a quota, a rate-limit header convention and
//! injectable faults. It is the upstream for `headroom demo`, the tests and the benchmarks.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use headroom::sim::{start, Convention, SimArgs};
//! let sim = start(SimArgs { limit: 5, convention: Convention::Ietf, ..SimArgs::default() }).await?;
//! println!("supplier at {}", sim.url());
//! // ... send traffic ...
//! println!("{} requests, {} rate limited", sim.stats().requests, sim.stats().rate_limited);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Each supplier request (every path but `/__stats*`) goes through, in order:
//! 1. `--reset-rate`: its TCP connection is reset (RST), unanswered; not counted in the quota.
//! 2. The quota: fixed windows of `--window` aligned to the Unix epoch, `--limit` requests
//!    each (0: no quota); beyond it, `429 {"error":"rate_limited"}`.
//! 3. `--latency`: a delay before the response (429s included).
//! 4. `--fail-rate`: admitted requests answered 500, 502, 503 in turn (no `Retry-After`).
//! 5. The endpoint:
//!    - `GET /bytes/<n>`: `n` bytes (up to 64 GiB), byte `i` being `i % 251`, streamed in
//!      64 KiB chunks with `Content-Length`;
//!    - `POST|PUT /upload`: reads the body streaming, `{"bytes": n, "fnv1a64": "<hex>"}`;
//!    - `* /echo`: method, path, raw query, headers (name -> values), `body_len`, and `body`
//!      (UTF-8 lossy) when shorter than 64 KiB;
//!    - `GET /status/<code>` (200..=599): that status with `{"status": code}`;
//!    - anything else: `{"method", "path", "query", "window_admitted", "record"}` with a
//!      small FSMA 204 traceability record.
//!
//! Every response carries the convention's rate-limit headers (see [`headers`]) and echoes
//! the request's `x-request-id` headers. `GET /__stats` serves [`Stats`];
//! `POST /__stats/reset` zeroes them; neither is counted, limited, delayed nor faulty.

mod args;
mod body;
pub mod clock;
mod faults;
pub mod fnv;
pub mod headers;
pub mod quota;
mod routes;
mod server;
mod service;
mod stats;

pub use args::{Convention, SimArgs, MAX_WINDOW, MIN_WINDOW};
pub use body::{pattern_byte, CHUNK, PATTERN_PERIOD};
pub use fnv::Fnv1a64;
pub use routes::{ECHO_BODY_LIMIT, MAX_BYTES};
pub use server::{run, start, SimHandle, DRAIN_TIMEOUT};
pub use service::{STATS_PATH, STATS_RESET_PATH};
pub use stats::{Stats, WindowStats, MAX_WINDOWS};
