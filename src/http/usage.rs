//! `GET /v1/usage`: the caller's file count and bytes, per category and in total, and quota.

use axum::Json;
use axum::extract::State;

use super::{ApiError, AppState};
use crate::service::{Admitted, UsageReport};

/// The caller's file count and bytes, per category and in total, and its quota.
#[utoipa::path(get, path = "/v1/usage", tag = "files",
    responses(
        (status = 200, body = UsageReport),
        (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView), (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn usage(State(state): State<AppState>, who: Admitted) -> Result<Json<UsageReport>, ApiError> {
    Ok(Json(state.service.usage(&who).await?))
}
