//! Liveness, readiness and metrics.

use crate::{ApiError, AppState, Caller, ErrorKind};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

/// Liveness and version.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    status: &'static str,
    version: &'static str,
    uptime_secs: u64,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.uptime().as_secs(),
    })
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    status: &'static str,
}

/// Readiness: the store answers queries.
#[utoipa::path(get, path = "/ready", tag = "system", responses((status = 200, body = Ready), (status = 503, body = crate::ProblemDetails)))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state.identity().store().user_count().await.map_err(|e| {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("the store is not ready: {e}"),
        )
    })?;
    Ok(Json(Ready { status: "ready" }))
}

fn prometheus_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}

/// Prometheus metrics (public because `http.metrics_public` is set).
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format")))]
pub(crate) async fn metrics_public() -> impl IntoResponse {
    prometheus_text()
}

/// Prometheus metrics (platform administrators; set `http.metrics_public` for an open scraper).
#[utoipa::path(get, path = "/metrics", tag = "system", security(("bearer" = [])), responses((status = 200, description = "Prometheus text format"), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn metrics_protected(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<impl IntoResponse, ApiError> {
    if let Err(denied) = caller.authorize_platform() {
        state
            .identity()
            .audit_denied(&caller, None, "metrics", &denied)
            .await;
        return Err(ApiError::from(identity::AuthError::Denied(denied)));
    }
    Ok(prometheus_text())
}
