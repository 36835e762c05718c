//! `GET /metrics`: on the API's address, or on its own (`COFFER_METRICS_ADDR`), behind a bearer
//! token when `COFFER_METRICS_TOKEN` is set.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, ErrorCode};
use crate::config::Secret;

/// Who may read `/metrics`.
pub struct MetricsAccess {
    /// The bearer token asked for, if any.
    pub token: Option<Secret>,
    /// Served on a separate listener, not on the API's.
    pub separate: bool,
}

/// The `/metrics` route, unrouted state (for merging into the API router).
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

/// The router of the separate metrics listener.
pub fn metrics_router(state: AppState) -> Router {
    routes()
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "only /metrics is served here") })
        .layer(middleware::from_fn(crate::telemetry::track))
        .with_state(state)
}

/// Prometheus text format; 401 `metrics-token-required` without the configured token.
async fn render(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.metrics.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
            return ApiError::new(ErrorCode::MetricsTokenRequired, "send the metrics bearer token").into_response();
        }
    }
    crate::telemetry::render().await
}
