//! Log output: JSON lines when stdout is not a terminal (containers, files), human-readable
//! when it is. `RUST_LOG` filters (default `info`).
//!
//! Lines are appended to one bounded in-memory buffer and written out by a background thread
//! in batches: at most every [`FLUSH_INTERVAL`], sooner once [`WAKE_BYTES`] are waiting. A
//! request never waits for stdout and never wakes another thread for its line. When stdout
//! cannot keep up and [`BUFFERED_BYTES`] are waiting, further lines are dropped whole rather
//! than requests slowed, and counted (`headroom_log_dropped_total`). [`flush`] writes out
//! what is buffered before the process exits.
//!
//! Written here rather than with `tracing-appender`'s non-blocking writer: that one hands each
//! line to its thread through a channel (a wake-up per line when the thread sleeps) and
//! writes each line with its own `write` call; under load both showed in profiles (about a
//! fifth of the gateway's CPU). Batching is what nginx's `access_log ... buffer= flush=` does.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// Bytes of log lines held for the writer at most (about ten thousand access lines).
pub const BUFFERED_BYTES: usize = 2 << 20;
/// Buffered bytes that wake the writer before its interval is up.
pub const WAKE_BYTES: usize = 64 << 10;
/// The longest a line waits in the buffer while stdout keeps up.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The buffer shared by every thread that logs and the writer thread.
#[derive(Default)]
struct LogBuffer {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    stopped: AtomicBool,
    dropped: AtomicU64,
}

impl LogBuffer {
    fn push(&self, line: &[u8]) {
        let mut pending = crate::lock(&self.pending);
        // Read under the lock the writer checks before it exits: a line is either in the
        // buffer it still writes, or written here.
        if self.stopped.load(Ordering::Acquire) {
            // After [`flush`] (process exit), lines go straight out.
            drop(pending);
            let _ = std::io::stdout().lock().write_all(line);
            return;
        }
        if pending.len().saturating_add(line.len()) > BUFFERED_BYTES {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = pending.len();
        pending.extend_from_slice(line);
        let crossed = before < WAKE_BYTES && pending.len() >= WAKE_BYTES;
        drop(pending);
        if crossed {
            self.wake.notify_one();
        }
    }

    /// The writer thread: swap the buffer out and write it, until stopped.
    fn run(&self) {
        let mut batch = Vec::with_capacity(WAKE_BYTES);
        loop {
            {
                let mut pending = crate::lock(&self.pending);
                if pending.len() < WAKE_BYTES && !self.stopped.load(Ordering::Acquire) {
                    pending = match self.wake.wait_timeout(pending, FLUSH_INTERVAL) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
                std::mem::swap(&mut *pending, &mut batch);
            }
            if !batch.is_empty() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&batch);
                let _ = out.flush();
                batch.clear();
                if batch.capacity() > BUFFERED_BYTES / 4 {
                    // Give back what a burst grew.
                    batch.shrink_to(WAKE_BYTES);
                }
            }
            if self.stopped.load(Ordering::Acquire) && crate::lock(&self.pending).is_empty() {
                return;
            }
        }
    }
}

/// What `tracing-subscriber` writes one event through.
struct LineWriter(Arc<LogBuffer>);

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        // The fmt layer formats a whole event and writes it with one `write_all`: one call is
        // one line, kept or dropped whole.
        self.0.push(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Installed {
    shared: Arc<LogBuffer>,
    /// Lines are JSON (stdout is not a terminal).
    json: bool,
    /// Told when the writer thread has written everything and stopped.
    finished: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

/// The longest [`flush`] waits for stdout: a stdout nobody reads must not hold the exit.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

static WRITER: OnceLock<Installed> = OnceLock::new();

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
    WRITER.get().map_or(0, |installed| {
        installed.shared.dropped.load(Ordering::Relaxed)
    })
}

/// Writes out every buffered line and stops the writer thread (call before the process
/// exits), waiting at most [`FLUSH_WAIT`] for a stdout that does not take them; later lines
/// are written directly.
pub fn flush() {
    if let Some(installed) = WRITER.get() {
        {
            let _pending = crate::lock(&installed.shared.pending);
            installed.shared.stopped.store(true, Ordering::Release);
        }
        installed.shared.wake.notify_one();
        if let Some(finished) = crate::lock(&installed.finished).take() {
            let _ = finished.recv_timeout(FLUSH_WAIT);
        }
    }
}

/// Whether lines written with [`write_line`] reach the log: this module's writer is the one
/// installed, writing JSON lines.
pub fn json_lines() -> bool {
    WRITER.get().is_some_and(|installed| installed.json)
}

thread_local! {
    /// Each thread's buffer for a line being formatted, and the last second it stamped.
    static FORMATTING: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static SECOND: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

/// Writes one line, formatted by `format` (ending in `\n`), as a `tracing` event's line
/// would be: buffered, or dropped and counted when the buffer is full. Only when
/// [`json_lines`].
pub fn write_line(format: impl FnOnce(&mut Vec<u8>)) {
    let Some(installed) = WRITER.get() else {
        return;
    };
    FORMATTING.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        format(&mut line);
        installed.shared.push(&line);
    });
}

/// `now` as RFC 3339 in UTC with microseconds (`2026-12-02T13:33:10.123456Z`), as the
/// `tracing` formatter stamps its lines; the date and time of day are formatted once a
/// second per thread.
pub fn write_timestamp(out: &mut Vec<u8>, now: std::time::SystemTime) {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let (cached, mut text) = SECOND.with(std::cell::Cell::get);
    if cached != seconds {
        let at = time::OffsetDateTime::from(now);
        let formatted = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        );
        if let Some(bytes) = formatted.as_bytes().get(..19) {
            text.copy_from_slice(bytes);
            SECOND.with(|second| second.set((seconds, text)));
        }
    }
    out.extend_from_slice(&text);
    out.push(b'.');
    write_padded(out, u64::from(since.subsec_micros()), 6);
    out.push(b'Z');
}

/// The last `width` decimal digits of `value`, zero-padded (`write_padded(out, 42, 3)`
/// writes `042`).
pub fn write_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    let mut rest = value;
    for digit in out[start..].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
}

fn install(default_level: &str) {
    if WRITER.get().is_some() {
        return;
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let shared = Arc::new(LogBuffer::default());
    let make_writer = {
        let shared = Arc::clone(&shared);
        move || LineWriter(Arc::clone(&shared))
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(make_writer);
    let json = !std::io::stdout().is_terminal();
    let result = if !json {
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
        let writer = Arc::clone(&shared);
        let (finished_tx, finished) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("headroom-log".into())
            .spawn(move || {
                writer.run();
                let _ = finished_tx.send(());
            });
        if spawned.is_err() {
            // No writer thread: every line is written directly.
            shared.stopped.store(true, Ordering::Release);
        }
        let _ = WRITER.set(Installed {
            shared,
            json,
            finished: Mutex::new(Some(finished)),
        });
    }
}
