//! The quota engine: what each supplier's headers say, what that leaves to send, and when.

pub mod backoff;
pub mod clock;
pub mod state;
pub mod tracker;
