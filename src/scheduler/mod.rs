//! Per-upstream scheduling: a bounded queue with deadlines and priorities; a request leaves
//! it holding both a concurrency slot and a unit of quota.

mod dispatch;
mod grant;
pub mod queue;

pub use dispatch::{Rejected, Scheduler, SchedulerConfig};
pub use grant::{Grant, Reservation};
pub use queue::Priority;

#[cfg(test)]
mod tests;
