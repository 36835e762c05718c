//! `POST /v1/restore`: start restoring an archived file (202).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::domain::{ObjectKey, Restore};
use crate::service::Admitted;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// `tenant-{tenant_id}/{category}/{filename}` (the pattern is [`super::openapi::KEY_PATTERN`]).
    key: String,
    #[serde(default = "default_days")]
    #[schema(minimum = 1, maximum = 365)]
    days: i32,
    #[serde(default = "default_tier")]
    #[schema(pattern = "^(Standard|Bulk|Expedited)$")]
    tier: String,
}

fn default_days() -> i32 {
    7
}

fn default_tier() -> String {
    "Standard".into()
}

/// Start restoring an archived file (S3 store).
#[utoipa::path(post, path = "/v1/restore", tag = "files",
    request_body(content = RestoreBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Restore started"),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 404, body = super::view::ErrorView), (status = 409, body = super::view::ErrorView), (status = 413, body = super::view::ErrorView),
        (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn restore(
    State(state): State<AppState>,
    who: Admitted,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let req: RestoreBody = super::json::parse(body)?;
    let key = ObjectKey::parse(&req.key)?;
    let restore = Restore::parse(req.days, &req.tier)?;
    state.service.restore(&who, &key, restore).await?;
    Ok(StatusCode::ACCEPTED)
}
