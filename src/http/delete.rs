//! `DELETE /v1/files/{key}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiError, AppState};
use crate::domain::ObjectKey;
use crate::service::Admitted;

/// Delete a file.
#[utoipa::path(delete, path = "/v1/files/{key}", tag = "files",
    params(("key" = String, Path, description = "tenant-{tenant_id}/{category}/{filename}")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 404, body = super::view::ErrorView), (status = 414, body = super::view::ErrorView), (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn delete(
    State(state): State<AppState>,
    who: Admitted,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = ObjectKey::parse(&key)?;
    state.service.delete(&who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
