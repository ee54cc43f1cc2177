//! TODO
/// Runs the demo.
pub async fn run() -> anyhow::Result<()> { todo!() }
