//! TODO
/// Installs the subscriber.
pub fn init() {}
/// Installs a quiet subscriber.
pub fn init_quiet() {}
