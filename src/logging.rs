//! Log output: JSON lines when stdout is not a terminal (containers, files), human-readable
//! when it is. `RUST_LOG` filters (default `info`).
//!
//! Lines are written by a background thread (`tracing-appender`'s non-blocking writer): a
//! request never waits for stdout. The queue between them is bounded
//! ([`BUFFERED_LINES`]); when stdout cannot keep up, lines are dropped rather than requests
//! slowed, and counted (`headroom_log_dropped_total`). [`flush`] writes out what is queued
//! before the process exits.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines queued for the writer thread at most (a few MiB of JSON).
pub const BUFFERED_LINES: usize = 16_384;

static WRITER: OnceLock<(Mutex<Option<WorkerGuard>>, ErrorCounter)> = OnceLock::new();

/// Installs the global subscriber. Calling it again is harmless.
pub fn init() {
    install("info");
}

/// Like [`init`] but only warnings and errors by default (for `headroom demo`, which prints
/// its own report).
pub fn init_quiet() {
    install("warn");
}

/// Log lines dropped so far because the writer could not keep up.
pub fn dropped_lines() -> u64 {
    WRITER
        .get()
        .map_or(0, |(_, dropped)| dropped.dropped_lines() as u64)
}

/// Writes out every queued line (call before the process exits).
pub fn flush() {
    if let Some((guard, _)) = WRITER.get() {
        drop(crate::lock(guard).take());
    }
}

fn install(default_level: &str) {
    if WRITER.get().is_some() {
        return;
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .thread_name("headroom-log")
        .finish(std::io::stdout());
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = if std::io::stdout().is_terminal() {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    };
    // An already installed subscriber (tests, embedding) is fine: this writer is unused then.
    if result.is_ok() {
        let _ = WRITER.set((Mutex::new(Some(guard)), dropped));
    }
}
