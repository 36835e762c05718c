//! `GET /healthz` (the process answers) and `GET /readyz` (catalog and blob store answer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::view::StatusView;

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, body = StatusView)))]
pub async fn healthz() -> Json<StatusView> {
    Json(StatusView { status: "ok".into(), reason: None })
}

#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = StatusView), (status = 503, body = StatusView)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<StatusView>) {
    match state.service.ready().await {
        Ok(()) => (StatusCode::OK, Json(StatusView { status: "ready".into(), reason: None })),
        Err(e) => {
            tracing::warn!(error = ?e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(StatusView { status: "unavailable".into(), reason: Some(e.to_string()) }),
            )
        }
    }
}
