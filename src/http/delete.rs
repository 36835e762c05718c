//! `DELETE /v1/files/{key}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::domain::ObjectKey;

#[tracing::instrument(skip_all, fields(tenant))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = ObjectKey::parse(&key)?;
    caller.require_write()?;
    state.service.delete_file(&caller.tenant, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
