//! `POST /v1/restore`: start restoring an archived file (202).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::domain::ObjectKey;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    key: String,
    #[serde(default = "default_days")]
    days: i32,
    #[serde(default = "default_tier")]
    tier: String,
}

fn default_days() -> i32 {
    7
}

fn default_tier() -> String {
    "Standard".into()
}

#[tracing::instrument(skip_all, fields(tenant))]
pub async fn restore(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<StatusCode, ApiError> {
    let req: RestoreBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid-json", e.to_string()))?;
    let key = ObjectKey::parse(&req.key)?;
    caller.require_write()?;
    state.service.restore(&caller.tenant, &key, req.days, &req.tier).await?;
    Ok(StatusCode::ACCEPTED)
}
