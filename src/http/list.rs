//! `GET /v1/files`: the caller's files from the catalog, keyset-paginated.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::view::{FileView, ListView};
use super::{ApiError, AppState, ErrorCode, query};
use crate::catalog::{Cursor, ListQuery, SortOrder};
use crate::domain::Category;
use crate::service::Admitted;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    category: Option<String>,
    prefix: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    sort: Option<String>,
}

/// List the caller's files (from the catalog), keyset-paginated.
#[utoipa::path(get, path = "/v1/files", tag = "files",
    params(
        ("category" = Option<String>, Query),
        ("prefix" = Option<String>, Query, description = "File names starting with this"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("sort" = Option<String>, Query, description = "newest (default) or name"),
    ),
    responses(
        (status = 200, body = super::view::ListView),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 414, body = super::view::ErrorView), (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn list(State(state): State<AppState>, who: Admitted, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let p: ListParams = query::parse(raw.as_deref())?;
    let invalid = |m: &str| ApiError::new(ErrorCode::InvalidQuery, m);
    let limit = match p.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => l.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or(invalid("limit must be 1 to 1000"))?,
    };
    let sort = match p.sort.as_deref() {
        None => SortOrder::default(),
        Some(s) => SortOrder::parse(s).ok_or(invalid("sort must be newest or name"))?,
    };
    let prefix = p.prefix.filter(|s| !s.is_empty()).map(|s| s.nfc().collect::<String>());
    if prefix.as_ref().is_some_and(|s| s.len() > 255 || s.chars().any(char::is_control)) {
        return Err(invalid("prefix must be at most 255 bytes without control characters"));
    }
    let cursor = match p.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            Some(Cursor::parse(c).map_err(|_| ApiError::new(ErrorCode::InvalidCursor, "the cursor is not valid"))?)
        }
    };
    let query =
        ListQuery { category: p.category.as_deref().map(Category::parse).transpose()?, prefix, sort, limit, cursor };
    let page = state.service.list(&who, &query).await?;
    let view =
        ListView { files: page.files.iter().map(FileView::from).collect(), next_cursor: page.next.map(|c| c.encode()) };
    Ok(Json(view).into_response())
}
