//! The admin listener: health today; metrics and the admin API arrive with the breaker.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::proxy::Proxy;

/// The admin routes.
pub fn router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(proxy)
}

async fn healthz() -> &'static str {
    "ok\n"
}
