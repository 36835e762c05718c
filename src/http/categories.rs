//! `GET /v1/categories`: the configured categories with their limits (for clients and the
//! console).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::auth::Caller;

pub async fn categories(State(state): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    let list: Vec<Value> = state
        .service
        .categories()
        .iter()
        .map(|(name, p)| {
            json!({"name": name.as_str(), "bucket": p.bucket.to_string(), "max_size": p.max_size, "allowed_types": p.allowed_types})
        })
        .collect();
    Ok(Json(json!({"categories": list})))
}
