//! `headroom demo`.

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    Ok(())
}
