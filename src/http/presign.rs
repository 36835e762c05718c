//! `POST /v1/presign`: a time-limited link to one of the caller's files.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::domain::ObjectKey;
use crate::service::PresignedUrl;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresignBody {
    key: String,
    expires_in: Option<i64>,
    #[serde(default)]
    download: bool,
}

#[tracing::instrument(skip_all, fields(tenant))]
pub async fn presign(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<PresignedUrl>, ApiError> {
    let req: PresignBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid-json", e.to_string()))?;
    let key = ObjectKey::parse(&req.key)?;
    Ok(Json(state.service.presign(&caller.tenant, &key, req.expires_in, req.download).await?))
}
