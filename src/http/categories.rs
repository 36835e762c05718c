//! `GET /v1/categories`: the configured categories with their limits (for clients and the
//! console).

use axum::Json;
use axum::extract::State;

use super::view::{CategoriesView, CategoryView};
use super::{ApiError, AppState};
use crate::service::Admitted;

#[utoipa::path(get, path = "/v1/categories", tag = "files",
    responses((status = 200, body = CategoriesView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView)))]
pub async fn categories(State(state): State<AppState>, _who: Admitted) -> Result<Json<CategoriesView>, ApiError> {
    let categories = state
        .service
        .categories()
        .iter()
        .map(|(name, p)| CategoryView {
            name: name.to_string(),
            bucket: p.bucket.to_string(),
            max_size: p.max_size,
            allowed_types: p.allowed_types.clone(),
        })
        .collect();
    Ok(Json(CategoriesView { categories }))
}
