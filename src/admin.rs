//! The admin listener: `/healthz`, `/metrics`, the admin API and the operator status page.
//!
//! `/admin/*` needs `Authorization: Bearer $HEADROOM_ADMIN_TOKEN` (compared in constant
//! time): a wrong or missing token is 401; no token configured is 403 with how to set one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::error::json_error;
use crate::proxy::Proxy;
use crate::upstream::Upstream;

/// The environment variable that holds the admin token.
pub const TOKEN_ENV: &str = "HEADROOM_ADMIN_TOKEN";

/// The operator status page (self-contained HTML).
const STATUS_PAGE: &str = include_str!("admin/status.html");

#[derive(Clone)]
struct Admin {
    proxy: Arc<Proxy>,
    token: Option<Arc<str>>,
}

/// The admin routes.
pub fn router(proxy: Arc<Proxy>, token: Option<String>) -> Router {
    let state = Admin {
        proxy,
        token: token.map(Arc::from),
    };
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/admin/upstreams", get(list))
        .route("/admin/upstreams/{name}/breaker/trip", post(trip))
        .route("/admin/upstreams/{name}/breaker/reset", post(reset))
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn status_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        STATUS_PAGE,
    )
        .into_response()
}

async fn metrics(State(admin): State<Admin>) -> Response {
    for upstream in admin.proxy.router().upstreams() {
        upstream.refresh_gauges();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.proxy.metrics().render(),
    )
        .into_response()
}

async fn list(State(admin): State<Admin>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorize(&admin, &headers) {
        return *refused;
    }
    let all: Vec<Value> = admin
        .proxy
        .router()
        .upstreams()
        .map(|u| describe(u))
        .collect();
    Json(all).into_response()
}

async fn trip(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    operate(&admin, &headers, &name, true).await
}

async fn reset(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    operate(&admin, &headers, &name, false).await
}

/// An operator's trip (`true`) or reset: here, then on every replica of the fleet.
async fn operate(admin: &Admin, headers: &HeaderMap, name: &str, trip: bool) -> Response {
    if let Err(refused) = authorize(admin, headers) {
        return *refused;
    }
    match admin.proxy.router().by_name(name) {
        Some(upstream) => {
            if trip {
                upstream.trip();
            } else {
                upstream.reset();
            }
            let fleet = upstream.publish_breaker(trip).await;
            let mut body = describe(upstream);
            if let Some(reached) = fleet {
                body["breaker"]["fleet"] = json!(if reached { "published" } else { "local_only" });
            }
            Json(body).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            "no_such_upstream",
            &format!("no upstream is named {name:?}"),
        ),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
}

/// One upstream as the admin API shows it.
fn describe(upstream: &Upstream) -> Value {
    let quota = upstream.scheduler().quota();
    json!({
        "name": upstream.name(),
        "breaker": { "state": upstream.breaker_state().as_str() },
        "quota": {
            "limit": quota.limit,
            "remaining": quota.remaining,
            "reset_in_ms": quota.reset_in.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            "source": quota.source,
        },
        "queue_depth": upstream.scheduler().queue_depth(),
        "in_flight": upstream.scheduler().in_flight(),
        "store": upstream.store_mode(),
    })
}

fn authorize(admin: &Admin, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(expected) = &admin.token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            &format!("the admin API is off: start Headroom with the environment variable {TOKEN_ENV} set to a secret token, then send it as `Authorization: Bearer <token>`"),
        )));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Ok(());
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong bearer token",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    Err(Box::new(response))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_error(status, code, message, None, None)
}

/// The admin router in process, with `tower::ServiceExt::oneshot`: no sockets. The end-to-end
/// tests (`tests/admin.rs`) cover the same routes over a real listener.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ServerConfig, UpstreamConfig};
    use crate::metrics::Metrics;
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn admin(token: Option<&str>) -> Router {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let url = url::Url::parse("http://127.0.0.1:9").expect("url");
        let upstream = Upstream::new(
            UpstreamConfig::with_defaults("github", "/github", url),
            &rustls::RootCertStore::empty(),
            Arc::clone(&metrics),
        )
        .expect("upstream");
        let proxy = Proxy::new(
            crate::proxy::Router::new([Arc::new(upstream)]),
            &ServerConfig::default(),
            metrics,
        );
        router(Arc::new(proxy), token.map(str::to_owned))
    }

    async fn call(
        router: Router,
        method: &str,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = router
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    #[tokio::test]
    async fn the_admin_api_needs_its_token() {
        let (status, body) = call(admin(None), "GET", "/admin/upstreams", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"], "admin_disabled");
        let (status, body) = call(
            admin(Some("s3cret")),
            "GET",
            "/admin/upstreams",
            Some("wrong"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, body) = call(
            admin(Some("s3cret")),
            "GET",
            "/admin/upstreams",
            Some("s3cret"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body[0]["name"], "github", "{body}");
    }

    #[tokio::test]
    async fn a_trip_opens_the_breaker_and_a_reset_closes_it() {
        let router = admin(Some("t"));
        let (status, body) = call(
            router.clone(),
            "POST",
            "/admin/upstreams/github/breaker/trip",
            Some("t"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["breaker"]["state"], "forced_open", "{body}");
        let (_, body) = call(
            router.clone(),
            "POST",
            "/admin/upstreams/github/breaker/reset",
            Some("t"),
        )
        .await;
        assert_eq!(body["breaker"]["state"], "closed", "{body}");
        let (status, body) = call(
            router,
            "POST",
            "/admin/upstreams/nope/breaker/trip",
            Some("t"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no_such_upstream");
    }

    #[tokio::test]
    async fn health_metrics_and_unknown_paths() {
        let (status, _) = call(admin(None), "GET", "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
        let response = admin(None)
            .oneshot(
                Request::get("/metrics")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let text = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("headroom_breaker_state"), "{text}");
        let (status, body) = call(admin(None), "GET", "/nowhere", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
    }
}
