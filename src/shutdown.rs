//! Process signals that start a graceful shutdown.

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C); a second one exits the process at once
/// (an operator who asks twice does not want to wait for the drain).
pub async fn signal() {
    first_signal().await;
    tokio::spawn(async {
        first_signal().await;
        tracing::warn!("second signal: exiting at once, without waiting for the drain");
        crate::logging::flush();
        std::process::exit(1);
    });
}

async fn first_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only SIGINT will stop Headroom");
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("SIGINT received, shutting down");
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received, shutting down");
    }
}
