//! `POST /v1/files`: raw body with `?category=&filename=`, or `multipart/form-data` with a
//! `category` field before a `file` part. The body streams to storage.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::Deserialize;

use std::sync::atomic::Ordering;

use multer::{Constraints, SizeLimit};

use super::body_guard::{self, BodyGuard, Preamble, Trip, Tripped};
use super::view::FileView;
use super::{ApiError, AppState, ErrorCode, query};
use crate::blob::ByteStream;
use crate::domain::{Category, Filename};
use crate::service::{Admitted, ServiceError, UploadRequest};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadParams {
    category: Option<String>,
    filename: Option<String>,
    overwrite: Option<String>,
    content_type: Option<String>,
}

/// The form of a browser upload: the `category` field must come before the `file` part.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    category: String,
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    filename: Option<String>,
    overwrite: Option<bool>,
}

/// Upload a file, streamed to storage.
#[utoipa::path(post, path = "/v1/files", tag = "files",
    params(
        ("category" = Option<String>, Query, description = "Required for raw bodies; a form field for multipart"),
        ("filename" = Option<String>, Query, description = "Required for raw bodies; multipart takes the part's file name"),
        ("overwrite" = Option<bool>, Query, description = "Replace an existing file"),
        ("content_type" = Option<String>, Query, description = "Declared type, checked against the bytes"),
    ),
    request_body(content(
        (Vec<u8> = "application/octet-stream"),
        (UploadForm = "multipart/form-data"),
    )),
    responses(
        (status = 201, body = super::view::FileView, headers(("location" = String))),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 408, body = super::view::ErrorView), (status = 409, body = super::view::ErrorView), (status = 413, body = super::view::ErrorView),
        (status = 414, body = super::view::ErrorView), (status = 415, body = super::view::ErrorView), (status = 429, body = super::view::ErrorView),
        (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn upload(
    State(state): State<AppState>,
    who: Admitted,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let _slot = state.uploads.acquire(who.tenant())?;
    let params: UploadParams = query::parse(raw.as_deref())?;
    let overwrite = query::flag(params.overwrite.as_deref(), "overwrite")?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Every byte of the body, a multipart preamble included, is under the idle timeout and
    // the minimum rate, so a stalled client cannot hold its upload slot.
    let tripped = Tripped::default();
    let limits = &state.limits;
    let body: ByteStream = Box::pin(BodyGuard::new(
        Box::pin(body.into_data_stream().map_err(std::io::Error::other)),
        limits.body_idle_timeout,
        limits.upload_min_rate,
        tripped.clone(),
    ));
    let request = if let Ok(boundary) = multer::parse_boundary(content_type) {
        from_multipart(params, overwrite, body, boundary, tripped).await?
    } else {
        let declared = params.content_type.clone().or_else(|| {
            (!content_type.is_empty() && !content_type.starts_with("application/x-www-form-urlencoded"))
                .then(|| content_type.to_owned())
        });
        let size_hint = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let (category, raw_name) = match (params.category, params.filename) {
            (Some(c), Some(f)) => (c, f),
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    "query parameters category and filename are required",
                ));
            }
        };
        UploadRequest {
            category: Category::parse(&category)?,
            filename: Filename::parse(&raw_name)?,
            original_filename: Some(raw_name),
            content_type: declared,
            overwrite,
            size_hint,
            max_size: None,
            body,
        }
    };
    let record = state.service.upload(&who, request).await?;
    let location = format!("/v1/files/{}", crate::service::encode_key(&record.key));
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(FileView::from(&record))).into_response())
}

/// The fields a form may carry before its file part, each at most this long.
const FIELDS: [&str; 3] = ["category", "filename", "overwrite"];
const MAX_FIELD: u64 = 1024;

/// Reads form fields up to the `file` part and returns an upload that streams that part.
/// Fields after the file part are not read. Everything before the file part's data is capped
/// at [`body_guard::MAX_PREAMBLE`] bytes, each field at [`MAX_FIELD`].
async fn from_multipart(
    params: UploadParams,
    overwrite: bool,
    body: ByteStream,
    boundary: String,
    tripped: Tripped,
) -> Result<UploadRequest, ApiError> {
    let (preamble, file_started) = Preamble::new(body, tripped.clone());
    let mut allowed: Vec<&str> = FIELDS.to_vec();
    allowed.push("file");
    let mut limit = SizeLimit::new();
    for name in FIELDS {
        limit = limit.for_field(name, MAX_FIELD);
    }
    let constraints = Constraints::new().allowed_fields(allowed).size_limit(limit);
    let mut form = multer::Multipart::with_constraints(preamble, boundary, constraints);
    let fail = |e: multer::Error| multipart_error(e, &tripped);
    let mut category = params.category;
    let mut filename = params.filename;
    let mut overwrite = overwrite;
    while let Some(field) = form.next_field().await.map_err(fail)? {
        match field.name() {
            Some("file") => {
                file_started.store(true, Ordering::Relaxed);
                let bad = |m: &str| ApiError::new(ErrorCode::InvalidMultipart, m);
                let raw_name = filename
                    .or_else(|| field.file_name().map(str::to_owned))
                    .ok_or_else(|| bad("the file part has no filename"))?;
                let category = category.ok_or_else(|| bad("the category field must come before the file part"))?;
                let declared = field.content_type().map(|m| m.essence_str().to_owned());
                let cause = tripped.clone();
                let stream: ByteStream = Box::pin(field.map_err(move |e| match cause.get() {
                    Some(Trip::Body(b)) => std::io::Error::other(b),
                    _ => std::io::Error::other(e),
                }));
                // The rest of the form is dropped with `form` once the file part is read.
                let body = Box::pin(futures::stream::unfold((stream, form), |(mut s, form)| async move {
                    use futures::StreamExt;
                    s.next().await.map(|item| (item, (s, form)))
                }));
                return Ok(UploadRequest {
                    category: Category::parse(&category)?,
                    filename: Filename::parse(&raw_name)?,
                    original_filename: Some(raw_name),
                    content_type: declared,
                    overwrite,
                    size_hint: None,
                    max_size: None,
                    body,
                });
            }
            Some(name) => {
                let name = name.to_owned();
                let value = field.text().await.map_err(fail)?;
                match name.as_str() {
                    "category" => category = Some(value),
                    "filename" => filename = Some(value),
                    _ => overwrite = query::flag(Some(&value), "overwrite")?,
                }
            }
            None => return Err(ApiError::new(ErrorCode::InvalidMultipart, "a form part has no name")),
        }
    }
    Err(ApiError::new(ErrorCode::InvalidMultipart, "the form has no file part"))
}

/// A multipart parse failure as the client should hear it: what the body guard tripped on
/// (408, 413), an over-long field (413), or a malformed form (400).
fn multipart_error(e: multer::Error, tripped: &Tripped) -> ApiError {
    match tripped.get() {
        Some(Trip::Body(b)) => ServiceError::from_body(std::io::Error::other(b)).into(),
        Some(Trip::PreambleTooLarge) => ApiError::new(
            ErrorCode::MultipartPreambleTooLarge,
            format!("a form may carry at most {} bytes before the file part's data", body_guard::MAX_PREAMBLE),
        ),
        None => match e {
            multer::Error::FieldSizeExceeded { field_name, .. } => ApiError::new(
                ErrorCode::FormFieldTooLarge,
                format!("form field {} is longer than {MAX_FIELD} bytes", field_name.unwrap_or_default()),
            ),
            other => ApiError::new(ErrorCode::InvalidMultipart, other.to_string()),
        },
    }
}
