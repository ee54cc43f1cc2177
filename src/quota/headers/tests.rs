//! Table-driven tests, one case per row of `RATE-LIMIT-HEADERS.md`, and property tests.

mod ietf;
mod ietf_legacy;
mod props;
mod resets;
mod retry_after;
mod rules;
mod support;
mod vendors;
mod x_ratelimit;
