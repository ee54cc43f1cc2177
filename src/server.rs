//! TODO
/// Runs the gateway.
pub async fn run(config: crate::config::Config, shutdown: impl std::future::Future<Output = ()>) -> std::io::Result<()> { let _ = (config, shutdown); todo!() }
