//! The pooled HTTP(S) client of one upstream: TLS settings (system roots and `ca_file`), a
//! connect bounded by `connect_timeout` as a whole, and one pool per worker thread.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;

use crate::config::UpstreamConfig;

/// The pooled HTTP(S) client of one upstream.
pub type HttpClient = Client<Connector, Body>;

/// A connector whose whole connect, TCP and TLS handshake together, is bounded by
/// `connect_timeout` (hyper-util's own timeout covers the TCP connect only, so a supplier
/// that accepts and never finishes its handshake would hold an attempt until `timeout`).
/// Hand-written: neither hyper-util nor hyper-rustls offers it, and tower's `Timeout` changes
/// the error type the client needs.
#[derive(Debug, Clone)]
pub struct ConnectTimeout<C> {
    inner: C,
    limit: Duration,
}

impl<C> tower::Service<http::Uri> for ConnectTimeout<C>
where
    C: tower::Service<http::Uri> + Send,
    C::Future: Send + 'static,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = C::Response;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let limit = self.limit;
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "connect (TCP and TLS) took longer than connect_timeout ({})",
                        humantime::format_duration(limit)
                    ),
                ))
                    as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Why an upstream's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file cannot be used.
    #[error("upstream {name}: ca_file {path}: {reason}")]
    CaFile {
        /// Upstream name.
        name: String,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the TLS settings.
    #[error("upstream {name}: TLS setup: {reason}")]
    Tls {
        /// Upstream name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// One client (pool) for each of `workers` worker threads (see [`crate::workers`]): a pooled
/// connection is driven by the thread that opened it. `system_roots` are the platform's
/// trusted CA certificates, loaded once for all upstreams.
pub fn build(
    config: &UpstreamConfig,
    system_roots: &RootCertStore,
    workers: usize,
) -> Result<Box<[HttpClient]>, ClientError> {
    let connector = build_connector(config, system_roots)?;
    Ok((0..workers.max(1))
        .map(|_| build_client(config, connector.clone()))
        .collect())
}

/// The platform's trusted roots; problems with single certificates are logged and skipped.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    for err in &loaded.errors {
        tracing::warn!(error = %err, "could not load some system CA certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    tracing::debug!(added, ignored, "system CA certificates loaded");
    roots
}

type Connector = ConnectTimeout<HttpsConnector<HttpConnector>>;

fn build_connector(
    config: &UpstreamConfig,
    system_roots: &RootCertStore,
) -> Result<Connector, ClientError> {
    let mut roots = system_roots.clone();
    if let Some(path) = &config.ca_file {
        let ca_error = |reason: String| ClientError::CaFile {
            name: config.name.clone(),
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("no PEM certificate in the file".into()));
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ClientError::Tls {
        name: config.name.clone(),
        reason: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(ConnectTimeout {
        inner: connector,
        limit: config.connect_timeout,
    })
}

fn build_client(config: &UpstreamConfig, connector: Connector) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(config.max_concurrency.max(1) * 2)
        .build(connector)
}
