//! Prometheus metrics for HTTP requests, and logging of internal errors.

use crate::error::InternalErrorDetail;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// One recorder per process (the `metrics` facade is global).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // If another recorder was installed first, our handle simply stays empty.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub(crate) fn render() -> String {
    handle().render()
}

/// Counts requests and their latency per method, route template and status.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let _ = handle();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("citybrain_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("citybrain_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Logs the real message of internal errors (the client saw a generic one).
pub(crate) async fn log_internal_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(InternalErrorDetail(message)) = response.extensions().get::<InternalErrorDetail>() {
        tracing::error!(status = response.status().as_u16(), error = %message, "internal error");
    }
    response
}
