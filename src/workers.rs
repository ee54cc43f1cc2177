//! Worker threads, nginx-style: each serves client connections on its own single-threaded
//! event loop, so a request's tasks (its client connection, its upstream connection, its
//! timers) stay on one thread and never wake another. The multi-threaded alternative
//! measured slower here: with two cores shared by clients and suppliers, tokio's work
//! stealing spent its time parking and waking threads across cores.
//!
//! Worker 0 is the thread that started the gateway; it also runs the admin API, the
//! dispatchers and the fleet link.

use std::cell::Cell;
use std::future::Future;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker this thread is (0 on any thread that is not a worker).
#[must_use]
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// Starts worker `index` on its own thread with its own single-threaded runtime, running
/// `serve()` to completion; `done` resolves when it has.
pub fn spawn<F, Fut>(index: usize, serve: F) -> std::io::Result<tokio::sync::oneshot::Receiver<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("headroom-worker-{index}"))
        .spawn(move || {
            INDEX.with(|i| i.set(index));
            runtime.block_on(serve());
            // Tasks still alive (connections cut at the drain's end) are dropped here.
            drop(runtime);
            let _ = done_tx.send(());
        })?;
    Ok(done_rx)
}
