//! JSON request bodies with API errors instead of framework rejections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use serde::de::DeserializeOwned;

use super::{ApiError, ErrorCode};

/// The largest JSON request body (`DefaultBodyLimit` on the routes that take one): the API's
/// JSON requests are a key and a few options.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Parses a JSON request body that axum's `Bytes` extractor read: a body over
/// [`MAX_JSON_BODY`] is a 413 `json-too-large`, one that could not be read or does not parse
/// a 400 `invalid-json`.
pub fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
            ApiError::new(ErrorCode::JsonTooLarge, format!("a JSON request body is at most {MAX_JSON_BODY} bytes"))
        }
        other => ApiError::new(ErrorCode::InvalidJson, format!("the request body could not be read: {other}")),
    })?;
    serde_json::from_slice(&body).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))
}
