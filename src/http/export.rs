//! `GET /v1/export`: all of the caller's files (or one category's) as a tar archive.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState, query};
use crate::domain::Category;
use crate::service::Admitted;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    category: Option<String>,
}

/// Export the caller's files as a tar stream: entries named by key in file-name order, then
/// `manifest.jsonl` (key, size, sha256, content type, upload time, included or why not). Every
/// file is verified against its sha256 while it streams; a mismatch cuts the archive short.
#[utoipa::path(get, path = "/v1/export", tag = "files",
    params(("category" = Option<String>, Query, description = "Only this category")),
    responses(
        (status = 200, description = "A tar archive", content_type = "application/x-tar"),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn export(
    State(state): State<AppState>,
    who: Admitted,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p: ExportParams = query::parse(raw.as_deref())?;
    let category = p.category.as_deref().map(Category::parse).transpose()?;
    let name = match &category {
        Some(c) => format!("tenant-{}-{c}-export.tar", who.tenant()),
        None => format!("tenant-{}-export.tar", who.tenant()),
    };
    let body = state.service.export_files(&who, category)?;
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    let disposition = format!("attachment; filename=\"{name}\"");
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ASCII tenant id"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
