//! Retries: which attempts may be repeated and what follows each ([`policy`]), and how long
//! to wait in between ([`backoff`]). Pure: the clock and the random numbers are passed in.

pub mod backoff;
pub mod policy;

pub use policy::IDEMPOTENCY_KEY;
pub use policy::{decide, is_safe_to_repeat, reason_for_status, Ended, Next, Reason, Tries};
