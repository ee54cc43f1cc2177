//! Log output: JSON lines when stdout is not a terminal (containers, files), human-readable
//! when it is. `RUST_LOG` filters (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Calling it again is harmless.
pub fn init() {
    install("info");
}

/// Like [`init`] but only warnings and errors by default (for `headroom demo`, which prints
/// its own report).
pub fn init_quiet() {
    install("warn");
}

fn install(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
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
    // An already installed subscriber (tests, embedding) is fine.
    drop(result);
}
