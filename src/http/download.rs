//! `GET` and `HEAD /v1/files/{key}`: streamed download with a bearer token or a presigned
//! URL; conditional requests (304), single ranges (206/416), safe serving headers.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Access;
use super::view::FileView;
use super::{ApiError, AppState, ErrorCode, headers, query};
use crate::service::StorageService;

#[derive(Debug, Default, Deserialize)]
struct DownloadParams {
    download: Option<String>,
    metadata: Option<String>,
}

/// Download a file (streamed), with a bearer token or as a presigned URL.
#[utoipa::path(method(get, head), path = "/v1/files/{key}", tag = "files",
    security(("bearer" = []), ("presigned" = [])),
    params(
        ("key" = String, Path, description = "tenant-{tenant_id}/{category}/{filename}"),
        ("download" = Option<bool>, Query, description = "Serve as an attachment"),
        ("metadata" = Option<bool>, Query, description = "Answer with the file's metadata and storage state as JSON"),
        ("expires" = Option<i64>, Query, description = "Presigned URLs"),
        ("kid" = Option<String>, Query, description = "Presigned URLs"),
        ("sig" = Option<String>, Query, description = "Presigned URLs"),
    ),
    responses(
        (status = 200, description = "The file's bytes (its own content type), or metadata JSON", content_type = "*/*"),
        (status = 206, description = "One byte range", content_type = "*/*"),
        (status = 304, description = "Not modified"),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 404, body = super::view::ErrorView), (status = 409, body = super::view::ErrorView), (status = 414, body = super::view::ErrorView),
        (status = 416, body = super::view::ErrorView), (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn download(
    State(state): State<AppState>,
    method: Method,
    access: Access,
    RawQuery(raw): RawQuery,
    req_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let Access { who, key, bound } = access;
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
        .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.to_string()))?;
    let param = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let params = DownloadParams { download: param("download"), metadata: param("metadata") };
    let attachment = query::flag(params.download.as_deref(), "download")?;

    let record = state.service.stat(&who, &key).await?;
    if let Some(version) = &bound {
        StorageService::linked_version(&record, version)?;
    }
    if query::flag(params.metadata.as_deref(), "metadata")? {
        let storage = state.service.archive_state(&record).await?;
        let view = serde_json::json!({"file": FileView::from(&record), "storage": storage});
        return Ok((StatusCode::OK, axum::Json(view)).into_response());
    }
    let mut response = Response::builder();
    let h = response.headers_mut().expect("fresh builder");
    headers::describe(h, &record, attachment);
    if method == Method::HEAD
        && let Some(state) = state.service.archive_state(&record).await?
    {
        let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("unknown"));
        h.insert("x-coffer-storage-class", value(&state.storage_class));
        if let Some(restore) = &state.restore {
            h.insert("x-coffer-restore", value(restore));
        }
    }

    if headers::not_modified(&req_headers, &record) {
        return Ok(response.status(StatusCode::NOT_MODIFIED).body(Body::empty()).expect("valid response"));
    }
    let range = match headers::range(&req_headers, &record) {
        Ok(r) => r,
        Err(headers::Unsatisfiable) => {
            let mut res = ApiError::new(ErrorCode::RangeNotSatisfiable, format!("the file has {} bytes", record.size))
                .into_response();
            let h = res.headers_mut();
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{}", record.size)).expect("ASCII"));
            return Ok(res);
        }
    };
    let (status, length) = match &range {
        Some(r) => {
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", r.start(), r.end(), record.size));
            (StatusCode::PARTIAL_CONTENT, r.end() - r.start() + 1)
        }
        None => (StatusCode::OK, record.size),
    };
    response = response.status(status).header(header::CONTENT_LENGTH, length);
    let body = if method == Method::HEAD || length == 0 {
        Body::empty()
    } else {
        Body::from_stream(state.service.read(&record, range).await?)
    };
    Ok(response.body(body).expect("valid response"))
}
