//! TODO
/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {}
