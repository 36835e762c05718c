//! Maps SDK errors onto [`BlobError`].

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::blob::BlobError;
use crate::domain::BucketName;

/// Classifies any S3 operation error: missing key or bucket, archived object, or the store
/// being unavailable (what remains after the SDK's own retries with backoff).
pub fn classify<E>(err: SdkError<E, HttpResponse>, bucket: &BucketName) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), status) {
        (Some("NoSuchKey" | "NotFound"), _) => BlobError::NotFound,
        (Some("NoSuchBucket"), _) => BlobError::NoSuchBucket(bucket.to_string()),
        (Some("InvalidObjectState"), _) => BlobError::Archived,
        (_, Some(404)) => BlobError::NotFound,
        (code, status) => {
            let message = err.message().unwrap_or_default().to_owned();
            let detail = match (code, status) {
                (Some(code), Some(status)) => format!("{status} {code}: {message}"),
                _ => format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err)),
            };
            BlobError::Unavailable(detail)
        }
    }
}
