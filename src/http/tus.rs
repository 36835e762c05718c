//! tus 1.0.0 at `/v1/uploads`: the core protocol with the creation, creation-with-upload,
//! creation-defer-length, termination, expiration and checksum extensions. The tenant comes
//! from the bearer token as everywhere; the service does the rest (`service::resumable`).
//! Every answer, errors included, carries `Tus-Resumable`; errors carry coffer's JSON body
//! (HEAD's, as HTTP wants, none).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::TryStreamExt;

use super::body_guard::{BodyGuard, Tripped};
use super::{ApiError, AppState, ErrorCode};
use crate::blob::ByteStream;
use crate::catalog::UploadSession;
use crate::domain::{Category, Filename};
use crate::service::{Admitted, Append, Appended, Checksum, ChecksumAlgorithm, NewUpload, ServiceError};

pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
const OFFSET_TYPE: &str = "application/offset+octet-stream";
/// The longest `Upload-Metadata` taken (names and values of a few fields).
const MAX_METADATA: usize = 4096;

/// Headers a browser client of another origin must be allowed to send and to read.
pub const REQUEST_HEADERS: [&str; 7] = [
    "tus-resumable",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-defer-length",
    "upload-checksum",
    "x-requested-with",
];
pub const RESPONSE_HEADERS: [&str; 13] = [
    "location",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-expires",
    "upload-metadata",
    "upload-defer-length",
    "coffer-file-key",
    "coffer-file-sha256",
];

fn h(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidUpload, message)
}

/// Adds `Tus-Resumable` to every answer.
pub async fn protocol(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    response.headers_mut().insert(h("tus-resumable"), HeaderValue::from_static(VERSION));
    response
}

/// A request that speaks this server's protocol version (`Tus-Resumable: 1.0.0`); any other,
/// or none, is answered 412 with the version this server speaks. Extracted after the caller,
/// so a request without a token is a 401 first.
pub struct Speaks;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Speaks {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        if parts.headers.get("tus-resumable").map(|v| v.as_bytes()) == Some(VERSION.as_bytes()) {
            return Ok(Self);
        }
        let mut r = ApiError::new(
            ErrorCode::TusVersionUnsupported,
            format!("send Tus-Resumable: {VERSION} (the only version this server speaks)"),
        )
        .into_response();
        r.headers_mut().insert(h("tus-version"), HeaderValue::from_static(VERSION));
        Err(r)
    }
}

/// tus discovery: the protocol version, extensions, largest upload and checksum algorithms.
#[utoipa::path(options, path = "/v1/uploads", tag = "uploads", security(()),
    responses((status = 204, description = "What this server supports", headers(
        ("Tus-Resumable" = String), ("Tus-Version" = String), ("Tus-Extension" = String),
        ("Tus-Max-Size" = u64), ("Tus-Checksum-Algorithm" = String),
    ))))]
pub async fn options(State(state): State<AppState>) -> Response {
    let max = state.service.categories().iter().map(|(_, p)| p.max_size).max().unwrap_or(0);
    let mut headers = HeaderMap::new();
    headers.insert(h("tus-version"), HeaderValue::from_static(VERSION));
    headers.insert(h("tus-extension"), HeaderValue::from_static(EXTENSIONS));
    headers.insert(h("tus-max-size"), HeaderValue::from(max));
    headers.insert(h("tus-checksum-algorithm"), HeaderValue::from_static("sha1,sha256"));
    (StatusCode::NO_CONTENT, headers).into_response()
}

/// The body's announced length (`Content-Length`; hyper holds the body to it).
fn body_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A header that carries one value; `None` when absent. Sent twice, it is refused.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h HeaderValue>, ApiError> {
    super::headers::at_most_once(headers, name).map_err(|_| invalid(format!("{name} is sent more than once")))
}

/// A header as a non-negative integer; `None` when absent.
fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = single(headers, name)? else { return Ok(None) };
    let text = value.to_str().map_err(|_| invalid(format!("{name} is not ASCII")))?;
    // Digits only: no sign, no spaces, no leading plus; at most 19 of them (fits i64).
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("{name} must be a non-negative integer, not {text:?}")));
    }
    text.parse().map(Some).map_err(|_| invalid(format!("{name} is out of range")))
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent).
pub fn parse_metadata(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    if text.len() > MAX_METADATA {
        return Err(format!("Upload-Metadata is longer than {MAX_METADATA} bytes"));
    }
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let mut parts = item.split(' ');
        let key = parts.next().unwrap_or_default();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("Upload-Metadata key {key:?} is not a token"));
        }
        let value = match (parts.next(), parts.next()) {
            (None, _) => None,
            (Some(v), None) => {
                let raw = B64.decode(v).map_err(|_| format!("Upload-Metadata value of {key} is not base64"))?;
                Some(String::from_utf8(raw).map_err(|_| format!("Upload-Metadata value of {key} is not UTF-8"))?)
            }
            _ => return Err(format!("Upload-Metadata item {item:?} has more than a key and a value")),
        };
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(format!("Upload-Metadata names {key} twice"));
        }
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn new_upload(headers: &HeaderMap) -> Result<NewUpload, ApiError> {
    let length = number(headers, "upload-length")?;
    let defer = single(headers, "upload-defer-length")?.map(|v| v.as_bytes() == b"1");
    let length = match (length, defer) {
        (Some(l), None) => Some(l),
        (None, Some(true)) => None,
        (Some(_), Some(_)) => return Err(invalid("send Upload-Length or Upload-Defer-Length, not both")),
        (None, Some(false)) => return Err(invalid("Upload-Defer-Length must be 1")),
        (None, None) => return Err(invalid("Upload-Length (or Upload-Defer-Length: 1) is required")),
    };
    let raw =
        single(headers, "upload-metadata")?.map(|v| v.to_str().map_err(|_| invalid("Upload-Metadata is not ASCII")));
    let raw = raw.transpose()?.unwrap_or_default().to_owned();
    let pairs = parse_metadata(&raw).map_err(invalid)?;
    let field = |name: &str| pairs.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone());
    let (Some(category), Some(filename)) = (field("category"), field("filename")) else {
        return Err(invalid("Upload-Metadata must carry category and filename"));
    };
    let overwrite = match field("overwrite").as_deref() {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => return Err(invalid(format!("overwrite must be true or false, not {other:?}"))),
    };
    let content_type = field("content_type").or_else(|| field("filetype")).filter(|t| !t.is_empty());
    Ok(NewUpload {
        category: Category::parse(&category)?,
        filename: Filename::parse(&filename)?,
        original_filename: filename,
        content_type,
        overwrite,
        length,
        metadata: raw,
    })
}

fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    let Some(value) = single(headers, "upload-checksum")? else { return Ok(None) };
    let text = value.to_str().map_err(|_| invalid("Upload-Checksum is not ASCII"))?;
    let (algorithm, digest) = text.split_once(' ').ok_or_else(|| invalid("Upload-Checksum is `algorithm base64`"))?;
    let (algorithm, len) = match algorithm {
        "sha1" => (ChecksumAlgorithm::Sha1, 20),
        "sha256" => (ChecksumAlgorithm::Sha256, 32),
        other => {
            return Err(ApiError::new(
                ErrorCode::ChecksumUnsupported,
                format!("checksum algorithm {other:?} is not supported (sha1, sha256)"),
            ));
        }
    };
    let digest = B64.decode(digest.trim()).map_err(|_| invalid("the Upload-Checksum digest is not base64"))?;
    if digest.len() != len {
        return Err(invalid("the Upload-Checksum digest has the wrong length"));
    }
    Ok(Some(Checksum { algorithm, digest }))
}

/// The body, under the same idle timeout and minimum rate as a plain upload.
fn guarded(state: &AppState, body: Body) -> ByteStream {
    Box::pin(BodyGuard::new(
        Box::pin(body.into_data_stream().map_err(std::io::Error::other)),
        state.limits.body_idle_timeout,
        state.limits.upload_min_rate,
        Tripped::default(),
    ))
}

fn offset_body(headers: &HeaderMap) -> Result<bool, ApiError> {
    match single(headers, header::CONTENT_TYPE.as_str())? {
        None => Ok(false),
        Some(v) if v.as_bytes() == OFFSET_TYPE.as_bytes() => Ok(true),
        Some(_) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("the bytes of an upload are sent as {OFFSET_TYPE}"),
        )),
    }
}

/// Runs an append in a task of its own, holding `slot` until it ends. When the client goes
/// away, hyper drops the request's future; the append must not be cancelled with it, or the
/// bytes that arrived would be lost and the upload stay locked until its lease runs out. On
/// its own, it sees the body end, keeps what arrived and releases the upload.
async fn detached<S: Send + 'static>(
    state: &AppState,
    who: Admitted,
    id: String,
    append: Append,
    slot: S,
) -> Result<Appended, ServiceError> {
    let service = state.service.clone();
    let task = tokio::spawn(async move {
        let out = service.append_resumable(&who, &id, append).await;
        drop(slot);
        out
    });
    match task.await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only when the runtime shuts down.
        Err(_) => Err(ServiceError::Storage(crate::blob::BlobError::Unavailable("the server is shutting down".into()))),
    }
}

/// The headers describing `session` (HEAD, and the answers of POST and PATCH).
fn describe(session: &UploadSession, headers: &mut HeaderMap) {
    headers.insert(h("upload-offset"), HeaderValue::from(session.offset));
    match session.length {
        Some(l) => headers.insert(h("upload-length"), HeaderValue::from(l)),
        None => headers.insert(h("upload-defer-length"), HeaderValue::from_static("1")),
    };
    let expires = httpdate::fmt_http_date(session.expires_at.into());
    if let Ok(v) = HeaderValue::from_str(&expires) {
        headers.insert(h("upload-expires"), v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if session.completed_at.is_some() {
        let key = session.blob.blob.object_key().to_string();
        let path = format!("/v1/files/{}", crate::service::encode_key(session.blob.blob.object_key()));
        if let Ok(v) = HeaderValue::from_str(&path) {
            headers.insert(header::CONTENT_LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&key) {
            headers.insert(h("coffer-file-key"), v);
        }
        if let Ok(v) = HeaderValue::from_str(&session.hasher) {
            headers.insert(h("coffer-file-sha256"), v);
        }
    }
}

/// Create a resumable upload (tus creation, creation-with-upload, creation-defer-length).
/// `Upload-Metadata` carries `filename`, `category`, and optionally `content_type` and
/// `overwrite`, each value base64.
#[utoipa::path(post, path = "/v1/uploads", tag = "uploads",
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = Option<u64>, Header, description = "The upload's size in bytes"),
        ("Upload-Defer-Length" = Option<String>, Header, description = "1: the length comes with a later PATCH"),
        ("Upload-Metadata" = String, Header, description = "filename and category (base64), optionally content_type and overwrite"),
        ("Upload-Checksum" = Option<String>, Header, description = "sha1 or sha256 of a body sent with the creation"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream", description = "Optional: the first bytes"),
    responses(
        (status = 201, description = "Created", headers(("Location" = String), ("Upload-Offset" = u64), ("Upload-Expires" = String))),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 409, body = super::view::ErrorView), (status = 412, body = super::view::ErrorView), (status = 413, body = super::view::ErrorView),
        (status = 414, body = super::view::ErrorView), (status = 415, body = super::view::ErrorView), (status = 429, body = super::view::ErrorView),
        (status = 503, body = super::view::ErrorView),
    ))]
pub async fn create(
    State(state): State<AppState>,
    who: Admitted,
    _: Speaks,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let with_bytes = offset_body(&headers)?;
    let request = new_upload(&headers)?;
    let slot = if with_bytes { Some(state.uploads.acquire(who.tenant())?) } else { None };
    let session = state.service.create_resumable(&who, request).await?;
    let location = format!("/v1/uploads/{}", session.id);
    let mut out = HeaderMap::new();
    out.insert(header::LOCATION, HeaderValue::from_str(&location).expect("hex id"));
    // An empty upload is complete at once; otherwise the first bytes, if sent.
    let session = if with_bytes || session.length == Some(0) {
        let append = Append {
            offset: 0,
            length: None,
            checksum: checksum(&headers)?,
            body: guarded(&state, body),
            body_length: body_length(&headers),
        };
        match detached(&state, who.clone(), session.id.clone(), append, slot).await {
            Ok(Appended { session, .. }) => session,
            // Bytes of a type the category refuses end the upload: the refusal is the answer.
            Err(e @ ServiceError::UnsupportedMediaType { .. }) => return Err(e.into()),
            // Otherwise the upload exists; the client resumes it from the offset HEAD reports.
            Err(e) => {
                tracing::info!(upload = session.id, error = %e, "the first bytes of a new upload were not all taken");
                state.service.resumable(&who, &session.id).await.unwrap_or(session)
            }
        }
    } else {
        session
    };
    describe(&session, &mut out);
    Ok((StatusCode::CREATED, out).into_response())
}

/// Where a resumable upload stands (tus HEAD); a completed one names its file. An upload that
/// received every byte but whose completion a failed server left unrecorded is completed now
/// (its refusal, such as 409 `already-exists`, is the answer); 423 while another request
/// still holds it.
#[utoipa::path(head, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses(
        (status = 200, description = "The upload", headers(
            ("Upload-Offset" = u64), ("Upload-Length" = u64), ("Upload-Metadata" = String), ("Upload-Expires" = String),
            ("Coffer-File-Key" = String, description = "Once completed"), ("Coffer-File-Sha256" = String, description = "Once completed"),
        )),
        (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 412), (status = 413),
        (status = 414), (status = 415), (status = 423), (status = 503),
    ))]
pub async fn head(
    State(state): State<AppState>,
    who: Admitted,
    _: Speaks,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let session = state.service.resumable(&who, &id).await?;
    let mut out = HeaderMap::new();
    if !session.metadata.is_empty()
        && let Ok(v) = HeaderValue::from_str(&session.metadata)
    {
        out.insert(h("upload-metadata"), v);
    }
    describe(&session, &mut out);
    Ok((StatusCode::OK, out).into_response())
}

/// Append bytes at `Upload-Offset` (tus PATCH); the last ones complete the upload into its file.
/// A request reaching the instance that is writing to the upload waits its turn (up to the
/// lock's lease; 423 `upload-busy` past it, or from another instance).
#[utoipa::path(patch, path = "/v1/uploads/{id}", tag = "uploads",
    params(
        ("id" = String, Path),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header, description = "Where these bytes go: the upload's offset"),
        ("Upload-Length" = Option<u64>, Header, description = "For an upload whose length was deferred"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1 <base64>` or `sha256 <base64>` of this body"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Taken", headers(("Upload-Offset" = u64), ("Upload-Expires" = String),
            ("Coffer-File-Key" = String, description = "When this completed the upload"),
            ("Coffer-File-Sha256" = String, description = "When this completed the upload"))),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 404, body = super::view::ErrorView), (status = 408, body = super::view::ErrorView),
        (status = 409, body = super::view::ErrorView, headers(("Upload-Offset" = u64, description = "With offset-mismatch: the upload's offset"))),
        (status = 412, body = super::view::ErrorView), (status = 413, body = super::view::ErrorView), (status = 414, body = super::view::ErrorView),
        (status = 415, body = super::view::ErrorView), (status = 423, body = super::view::ErrorView), (status = 429, body = super::view::ErrorView),
        (status = 460, body = super::view::ErrorView, description = "Checksum mismatch"), (status = 503, body = super::view::ErrorView),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    who: Admitted,
    _: Speaks,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !offset_body(&headers)? {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("the bytes of an upload are sent as {OFFSET_TYPE}"),
        ));
    }
    let offset = number(&headers, "upload-offset")?.ok_or_else(|| invalid("Upload-Offset is required"))?;
    let length = number(&headers, "upload-length")?;
    let checksum = checksum(&headers)?;
    let slot = state.uploads.acquire(who.tenant())?;
    let append = Append { offset, length, checksum, body: guarded(&state, body), body_length: body_length(&headers) };
    let appended = match detached(&state, who, id, append, slot).await {
        Ok(appended) => appended,
        // The upload's offset goes with the refusal, so a client needs no HEAD to resume.
        Err(ServiceError::OffsetMismatch { offset }) => {
            let mut res = ApiError::from(ServiceError::OffsetMismatch { offset }).into_response();
            res.headers_mut().insert(h("upload-offset"), HeaderValue::from(offset));
            return Ok(res);
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = HeaderMap::new();
    describe(&appended.session, &mut out);
    Ok((StatusCode::NO_CONTENT, out).into_response())
}

/// Terminate a resumable upload (tus termination): its bytes go.
#[utoipa::path(delete, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses(
        (status = 204, description = "Terminated"),
        (status = 400, body = super::view::ErrorView), (status = 401, body = super::view::ErrorView), (status = 403, body = super::view::ErrorView),
        (status = 404, body = super::view::ErrorView), (status = 412, body = super::view::ErrorView), (status = 414, body = super::view::ErrorView),
        (status = 423, body = super::view::ErrorView), (status = 503, body = super::view::ErrorView),
    ))]
pub async fn terminate(
    State(state): State<AppState>,
    who: Admitted,
    _: Speaks,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.service.terminate_resumable(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::parse_metadata;

    #[test]
    fn metadata_pairs() {
        let parsed = parse_metadata("filename cmVwb3J0LnBkZg==,category ZG9jcw==, flag").unwrap();
        assert_eq!(parsed[0], ("filename".into(), Some("report.pdf".into())));
        assert_eq!(parsed[1], ("category".into(), Some("docs".into())));
        assert_eq!(parsed[2], ("flag".into(), None));
        for bad in ["filename !!!", "a b c", "k v,k v", "filename /w==", "é dg=="] {
            assert!(parse_metadata(bad).is_err(), "{bad:?}");
        }
        assert!(parse_metadata(&"a ".repeat(3000)).is_err());
    }

    proptest! {
        #[test]
        fn metadata_never_panics(s in ".{0,300}") {
            let _ = parse_metadata(&s);
        }

        #[test]
        fn metadata_round_trips(pairs in proptest::collection::btree_map("[a-z_]{1,12}", ".{0,40}", 0..6)) {
            use base64::Engine;
            let text: Vec<String> = pairs.iter()
                .map(|(k, v)| format!("{k} {}", base64::engine::general_purpose::STANDARD.encode(v)))
                .collect();
            let parsed = parse_metadata(&text.join(",")).unwrap();
            let back: std::collections::BTreeMap<String, String> =
                parsed.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
            prop_assert_eq!(back, pairs);
        }
    }
}
