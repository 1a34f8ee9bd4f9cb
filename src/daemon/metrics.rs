//! `GET /metrics` on `metrics.listen`: the exposition of
//! [`crate::telemetry::metrics`], for Prometheus to scrape. Bound at start
//! (a taken port stops the start, naming it); served until the daemon stops.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// What Prometheus is told it reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr`.
///
/// # Errors
/// The port is taken or not ours to bind.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves until `stop`.
pub async fn serve(listener: tokio::net::TcpListener, stop: CancellationToken) {
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    tracing::info!(event = "metrics.listening", listen = %local, "serving /metrics");
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "lethe serves /metrics here\n") });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::warn!(event = "metrics.failed", error = %e, "the metrics server stopped");
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        crate::telemetry::metrics::metrics().render(),
    )
}
