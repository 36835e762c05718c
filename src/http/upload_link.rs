//! `PUT /v1/files/{key}?…&sig=…`: an upload through an upload link, without a token (the link
//! is the credential: `POST /v1/presign` with `"method": "PUT"` makes one).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use super::body_guard::{BodyGuard, Tripped};
use super::view::FileView;
use super::{ApiError, AppState};
use crate::auth::PresignError;
use crate::blob::ByteStream;
use crate::domain::ObjectKey;

/// Upload one file through an upload link (no token: the link's signature is the credential).
#[utoipa::path(put, path = "/v1/files/{key}", tag = "files",
    security(("presigned" = [])),
    params(
        ("key" = String, Path, description = "tenant-{tenant_id}/{category}/{filename}"),
        ("expires" = i64, Query, description = "From the link"),
        ("kid" = String, Query, description = "From the link"),
        ("version" = String, Query, description = "From the link"),
        ("max_size" = u64, Query, description = "From the link"),
        ("sig" = String, Query, description = "From the link"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = super::view::FileView, headers(("location" = String))),
        (status = 400, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 408, body = super::view::ErrorView), (status = 409, body = super::view::ErrorView),
        (status = 413, body = super::view::ErrorView), (status = 415, body = super::view::ErrorView),
        (status = 429, body = super::view::ErrorView), (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn put(
    State(state): State<AppState>,
    Path(raw_key): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // No signature can cover a key that does not parse, nor a query that is missing.
    let key = ObjectKey::parse(&raw_key).map_err(|_| PresignError::BadSignature)?;
    let raw = raw.ok_or(PresignError::BadSignature)?;
    tracing::Span::current().record("tenant", key.tenant().as_str());
    let _slot = state.uploads.acquire(key.tenant())?;
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty() && !t.starts_with("application/x-www-form-urlencoded"))
        .map(str::to_owned);
    let size_hint = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body: ByteStream = Box::pin(BodyGuard::new(
        Box::pin(body.into_data_stream().map_err(std::io::Error::other)),
        state.limits.body_idle_timeout,
        state.limits.upload_min_rate,
        Tripped::default(),
    ));
    let record = state.service.upload_by_link(&key, &raw, declared, size_hint, body).await?;
    let location = format!("/v1/files/{}", crate::service::encode_key(&record.key));
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(FileView::from(&record))).into_response())
}
