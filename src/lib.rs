//! Headroom: an HTTP gateway that keeps data-ingestion workers inside their suppliers' API
//! quotas. See `README.md` for the user guide and `CONTRACT.md` for the public interface.

/// Locks `mutex`, going on with its data if a panicking holder poisoned it: every lock here
/// guards counters and queues that stay usable, and a gateway keeps serving.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub mod admin;
pub mod breaker;
pub mod config;
pub mod demo;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod quota;
pub mod retry;
pub mod scheduler;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod upstream;
pub mod workers;
