//! `POST /v1/presign`: a time-limited link to one of the caller's files, or (`"method": "PUT"`)
//! an upload link that accepts one upload of one key without a token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde::Deserialize;

use super::{ApiError, AppState, ErrorCode};
use crate::domain::{Expiry, ObjectKey};
use crate::service::{Admitted, LinkTerms, PresignedUrl, UploadLink};

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
    /// `GET` (default): a link to read the file. `PUT`: an upload link that accepts one upload
    /// of this key, without a token.
    #[schema(pattern = "^(GET|PUT)$")]
    method: Option<String>,
    /// Upload links: the largest body accepted (default and ceiling: the category's limit).
    max_size: Option<u64>,
    /// Upload links: the type the body must be.
    content_type: Option<String>,
    /// Upload links: whether the upload may replace an existing file.
    #[serde(default)]
    overwrite: bool,
}

/// A link to read a file, or an upload link.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PresignAnswer {
    Get(PresignedUrl),
    Put(UploadLink),
}

/// A time-limited link to one of the caller's files.
#[utoipa::path(post, path = "/v1/presign", tag = "files",
    request_body(content = PresignBody, content_type = "application/json"),
    responses(
        (status = 200, body = PresignAnswer),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 404, body = super::view::ErrorView), (status = 409, body = super::view::ErrorView), (status = 413, body = super::view::ErrorView),
        (status = 415, body = super::view::ErrorView), (status = 503, body = super::view::ErrorView),
    ))]
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn presign(
    State(state): State<AppState>,
    who: Admitted,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PresignAnswer>, ApiError> {
    let req: PresignBody = super::json::parse(body)?;
    let key = ObjectKey::parse(&req.key)?;
    let expires_in = req.expires_in.map(Expiry::parse).transpose()?;
    let upload_only = req.max_size.is_some() || req.content_type.is_some() || req.overwrite;
    match req.method.as_deref().unwrap_or("GET") {
        "GET" if upload_only => Err(ApiError::new(
            ErrorCode::InvalidJson,
            "max_size, content_type and overwrite are for upload links (\"method\": \"PUT\")",
        )),
        "GET" => Ok(Json(PresignAnswer::Get(state.service.presign(&who, &key, expires_in, req.download).await?))),
        "PUT" if req.download => Err(ApiError::new(ErrorCode::InvalidJson, "download is for links that read")),
        "PUT" => {
            let terms = LinkTerms {
                max_size: req.max_size,
                expires: 0,
                content_type: req.content_type,
                overwrite: req.overwrite,
            };
            Ok(Json(PresignAnswer::Put(state.service.presign_upload(&who, &key, expires_in, terms).await?)))
        }
        other => Err(ApiError::new(ErrorCode::InvalidJson, format!("method must be GET or PUT, not {other:?}"))),
    }
}
