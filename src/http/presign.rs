//! `POST /v1/presign`: a time-limited link to one of the caller's files.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;

use super::{ApiError, AppState, ErrorCode};
use crate::domain::{Expiry, ObjectKey};
use crate::service::{Admitted, PresignedUrl};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresignBody {
    /// `tenant-{tenant_id}/{category}/{filename}`
    /// `tenant-{tenant_id}/{category}/{filename}` (the pattern is [`super::openapi::KEY_PATTERN`]).
    key: String,
    /// Seconds, 1 to 604800; default S3_PRESIGNED_URL_EXPIRY.
    #[schema(minimum = 1, maximum = 604800)]
    expires_in: Option<i64>,
    #[serde(default)]
    download: bool,
}

/// A time-limited link to one of the caller's files.
#[utoipa::path(post, path = "/v1/presign", tag = "files",
    request_body(content = PresignBody, content_type = "application/json"),
    responses(
        (status = 200, body = crate::service::PresignedUrl),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 404, body = super::view::ErrorView), (status = 409, body = super::view::ErrorView), (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn presign(
    State(state): State<AppState>,
    who: Admitted,
    body: Bytes,
) -> Result<Json<PresignedUrl>, ApiError> {
    let req: PresignBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    let key = ObjectKey::parse(&req.key)?;
    let expires_in = req.expires_in.map(Expiry::parse).transpose()?;
    Ok(Json(state.service.presign(&who, &key, expires_in, req.download).await?))
}
