//! Maps SDK errors onto [`BlobError`].

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::blob::BlobError;
use crate::domain::BucketName;

/// Classifies the error of a request whose body was streamed as it arrived: S3 giving up
/// waiting for the body (`RequestTimeout`; AWS allows about 20 s without a byte) means the
/// client paused, so it is the body's failure, not the storage's.
pub fn classify_streamed<E>(err: SdkError<E, HttpResponse>, bucket: &BucketName) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if err.code() == Some("RequestTimeout") {
        return BlobError::Body(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the storage stopped waiting for the body: the client paused too long",
        ));
    }
    classify(err, bucket)
}

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

#[cfg(test)]
mod tests {
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::{ErrorMetadata, SdkError};
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn s3_error(code: &str, status: u16) -> SdkError<PutObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("from the server").build();
        let response = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(PutObjectError::generic(meta), response)
    }

    #[test]
    fn a_streamed_body_the_storage_stopped_waiting_for_is_the_bodys_failure() {
        let bucket = BucketName::parse("some-bucket").unwrap();
        match classify_streamed(s3_error("RequestTimeout", 400), &bucket) {
            BlobError::Body(e) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify_streamed(s3_error("SlowDown", 503), &bucket), BlobError::Unavailable(_)));
        assert!(matches!(classify_streamed(s3_error("NoSuchBucket", 404), &bucket), BlobError::NoSuchBucket(_)));
        assert!(matches!(classify(s3_error("RequestTimeout", 400), &bucket), BlobError::Unavailable(_)));
    }
}
