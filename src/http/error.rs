//! Which error type to use where:
//! - domain parsing returns [`crate::domain::DomainError`];
//! - blob stores return [`crate::blob::BlobError`], catalogs [`crate::catalog::CatalogError`];
//!   only the service sees those;
//! - the service returns [`crate::service::ServiceError`];
//! - credentials give [`crate::auth::AuthError`] or [`crate::auth::PresignError`];
//! - handlers return [`ApiError`], which every error above converts into. It alone decides the
//!   HTTP status and the stable kebab-case code. Its message is safe to show; causes go to
//!   the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::{AuthError, PresignError};
use crate::domain::DomainError;
use crate::service::ServiceError;

/// Declares [`ErrorCode`]: every stable code coffer answers with, its HTTP status, in one list.
macro_rules! error_codes {
    ($($variant:ident = $code:literal => $status:expr,)*) => {
        /// Every error code of the API. The list is the contract: codes are never renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the list.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The kebab-case code clients match on.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status every answer with this code carries.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidTenantId = "invalid-tenant-id" => StatusCode::BAD_REQUEST,
    InvalidCategory = "invalid-category" => StatusCode::BAD_REQUEST,
    InvalidFilename = "invalid-filename" => StatusCode::BAD_REQUEST,
    InvalidKey = "invalid-key" => StatusCode::BAD_REQUEST,
    InvalidBucket = "invalid-bucket" => StatusCode::BAD_REQUEST,
    InvalidQuery = "invalid-query" => StatusCode::BAD_REQUEST,
    InvalidCursor = "invalid-cursor" => StatusCode::BAD_REQUEST,
    InvalidJson = "invalid-json" => StatusCode::BAD_REQUEST,
    InvalidMultipart = "invalid-multipart" => StatusCode::BAD_REQUEST,
    InvalidExpiry = "invalid-expiry" => StatusCode::BAD_REQUEST,
    InvalidRestore = "invalid-restore" => StatusCode::BAD_REQUEST,
    UnknownCategory = "unknown-category" => StatusCode::BAD_REQUEST,
    BodyIncomplete = "body-incomplete" => StatusCode::BAD_REQUEST,
    Unsupported = "unsupported" => StatusCode::BAD_REQUEST,
    MissingToken = "missing-token" => StatusCode::UNAUTHORIZED,
    MalformedToken = "malformed-token" => StatusCode::UNAUTHORIZED,
    TokenExpired = "token-expired" => StatusCode::UNAUTHORIZED,
    TokenNotYetValid = "token-not-yet-valid" => StatusCode::UNAUTHORIZED,
    BadTokenSignature = "bad-token-signature" => StatusCode::UNAUTHORIZED,
    UnsupportedTokenAlgorithm = "unsupported-token-algorithm" => StatusCode::UNAUTHORIZED,
    WrongTokenIssuer = "wrong-token-issuer" => StatusCode::UNAUTHORIZED,
    WrongTokenAudience = "wrong-token-audience" => StatusCode::UNAUTHORIZED,
    InvalidTokenClaims = "invalid-token-claims" => StatusCode::UNAUTHORIZED,
    TokenLifetimeTooLong = "token-lifetime-too-long" => StatusCode::UNAUTHORIZED,
    UnsupportedTokenCrit = "unsupported-token-crit" => StatusCode::UNAUTHORIZED,
    MetricsTokenRequired = "metrics-token-required" => StatusCode::UNAUTHORIZED,
    TenantMismatch = "tenant-mismatch" => StatusCode::FORBIDDEN,
    ReadOnly = "read-only" => StatusCode::FORBIDDEN,
    BadSignature = "bad-signature" => StatusCode::FORBIDDEN,
    UrlExpired = "url-expired" => StatusCode::FORBIDDEN,
    TenantInactive = "tenant-inactive" => StatusCode::FORBIDDEN,
    NotFound = "not-found" => StatusCode::NOT_FOUND,
    MethodNotAllowed = "method-not-allowed" => StatusCode::METHOD_NOT_ALLOWED,
    BodyTimeout = "body-timeout" => StatusCode::REQUEST_TIMEOUT,
    BodyTooSlow = "body-too-slow" => StatusCode::REQUEST_TIMEOUT,
    AlreadyExists = "already-exists" => StatusCode::CONFLICT,
    ObjectArchived = "object-archived" => StatusCode::CONFLICT,
    UploadAbandoned = "upload-abandoned" => StatusCode::CONFLICT,
    OffsetMismatch = "offset-mismatch" => StatusCode::CONFLICT,
    LinkUsed = "link-used" => StatusCode::CONFLICT,
    UploadCompleted = "upload-completed" => StatusCode::CONFLICT,
    UploadNotFound = "upload-not-found" => StatusCode::NOT_FOUND,
    UploadBusy = "upload-busy" => StatusCode::LOCKED,
    InvalidUpload = "invalid-upload" => StatusCode::BAD_REQUEST,
    UploadLengthExceeded = "upload-length-exceeded" => StatusCode::PAYLOAD_TOO_LARGE,
    TusVersionUnsupported = "tus-version-unsupported" => StatusCode::PRECONDITION_FAILED,
    ChecksumUnsupported = "checksum-unsupported" => StatusCode::BAD_REQUEST,
    // tus's checksum extension gives a mismatch its own status.
    ChecksumMismatch = "checksum-mismatch" => CHECKSUM_MISMATCH,
    LinkSuperseded = "link-superseded" => StatusCode::GONE,
    TooLarge = "too-large" => StatusCode::PAYLOAD_TOO_LARGE,
    QuotaExceeded = "quota-exceeded" => StatusCode::PAYLOAD_TOO_LARGE,
    MultipartPreambleTooLarge = "multipart-preamble-too-large" => StatusCode::PAYLOAD_TOO_LARGE,
    FormFieldTooLarge = "form-field-too-large" => StatusCode::PAYLOAD_TOO_LARGE,
    JsonTooLarge = "json-too-large" => StatusCode::PAYLOAD_TOO_LARGE,
    UrlTooLong = "url-too-long" => StatusCode::URI_TOO_LONG,
    HeadersTooLarge = "headers-too-large" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    UnsupportedMediaType = "unsupported-media-type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
    RangeNotSatisfiable = "range-not-satisfiable" => StatusCode::RANGE_NOT_SATISFIABLE,
    TooManyRequests = "too-many-requests" => StatusCode::TOO_MANY_REQUESTS,
    InternalError = "internal-error" => StatusCode::INTERNAL_SERVER_ERROR,
    ObjectCorrupt = "object-corrupt" => StatusCode::INTERNAL_SERVER_ERROR,
    KeyUnavailable = "key-unavailable" => StatusCode::INTERNAL_SERVER_ERROR,
    StorageUnavailable = "storage-unavailable" => StatusCode::SERVICE_UNAVAILABLE,
    CatalogUnavailable = "catalog-unavailable" => StatusCode::SERVICE_UNAVAILABLE,
    RequestTimeout = "request-timeout" => StatusCode::SERVICE_UNAVAILABLE,
}

/// 460 Checksum Mismatch (tus checksum extension).
const CHECKSUM_MISMATCH: StatusCode = match StatusCode::from_u16(460) {
    Ok(s) => s,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// An error answer: its code (which fixes the status) and a message safe to show.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(json!({"error": {"code": self.code.as_str(), "message": self.message}}));
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A dependency is down or slow: worth retrying shortly.
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let code = match e {
            DomainError::InvalidTenantId(_) => ErrorCode::InvalidTenantId,
            DomainError::InvalidCategory(_) => ErrorCode::InvalidCategory,
            DomainError::InvalidFilename(_) => ErrorCode::InvalidFilename,
            DomainError::InvalidKey(_) => ErrorCode::InvalidKey,
            DomainError::InvalidBucket(_) => ErrorCode::InvalidBucket,
            DomainError::InvalidExpiry(_) => ErrorCode::InvalidExpiry,
            DomainError::InvalidRestore(_) => ErrorCode::InvalidRestore,
        };
        Self::new(code, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use ErrorCode as C;
        let code = match e {
            AuthError::MissingToken => C::MissingToken,
            AuthError::MalformedToken => C::MalformedToken,
            AuthError::TokenExpired => C::TokenExpired,
            AuthError::TokenNotYetValid => C::TokenNotYetValid,
            AuthError::BadTokenSignature => C::BadTokenSignature,
            AuthError::UnsupportedAlgorithm => C::UnsupportedTokenAlgorithm,
            AuthError::WrongIssuer => C::WrongTokenIssuer,
            AuthError::WrongAudience => C::WrongTokenAudience,
            AuthError::InvalidClaims(_) => C::InvalidTokenClaims,
            AuthError::TokenLifetimeTooLong(_) => C::TokenLifetimeTooLong,
            AuthError::UnsupportedCriticalHeader => C::UnsupportedTokenCrit,
        };
        Self::new(code, e.to_string())
    }
}

impl From<PresignError> for ApiError {
    fn from(e: PresignError) -> Self {
        let code = match e {
            PresignError::BadSignature => ErrorCode::BadSignature,
            PresignError::Expired => ErrorCode::UrlExpired,
        };
        Self::new(code, e.to_string())
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ErrorCode as C;
        let code = match &e {
            ServiceError::Invalid(d) => return d.clone().into(),
            ServiceError::Link(p) => return (*p).into(),
            ServiceError::UnknownCategory(_) => C::UnknownCategory,
            ServiceError::TenantMismatch => C::TenantMismatch,
            ServiceError::NotFound => C::NotFound,
            ServiceError::AlreadyExists => C::AlreadyExists,
            ServiceError::TooLarge { .. } => C::TooLarge,
            ServiceError::QuotaExceeded => C::QuotaExceeded,
            ServiceError::TenantInactive => C::TenantInactive,
            ServiceError::UnsupportedMediaType { .. } => C::UnsupportedMediaType,
            ServiceError::InvalidCursor => C::InvalidCursor,
            ServiceError::BodyIncomplete(_) => C::BodyIncomplete,
            ServiceError::BodyTimeout => C::BodyTimeout,
            ServiceError::BodyTooSlow { .. } => C::BodyTooSlow,
            ServiceError::LinkSuperseded => C::LinkSuperseded,
            ServiceError::ReadOnly => C::ReadOnly,
            ServiceError::Archived => C::ObjectArchived,
            ServiceError::UploadAbandoned => C::UploadAbandoned,
            ServiceError::Unsupported(_) => C::Unsupported,
            ServiceError::Corrupt(_) => C::ObjectCorrupt,
            ServiceError::KeyUnavailable(_) => C::KeyUnavailable,
            ServiceError::LinkUsed => C::LinkUsed,
            ServiceError::UploadNotFound => C::UploadNotFound,
            ServiceError::OffsetMismatch { .. } => C::OffsetMismatch,
            ServiceError::UploadBusy => C::UploadBusy,
            ServiceError::UploadCompleted => C::UploadCompleted,
            ServiceError::ChecksumMismatch => C::ChecksumMismatch,
            ServiceError::BeyondLength { .. } => C::UploadLengthExceeded,
            ServiceError::InvalidUpload(_) => C::InvalidUpload,
            ServiceError::Storage(_) => C::StorageUnavailable,
            ServiceError::Catalog(crate::catalog::CatalogError::Corrupt(_)) => C::InternalError,
            ServiceError::Catalog(_) => C::CatalogUnavailable,
        };
        if code.status().is_server_error() {
            tracing::error!(error = ?e, "request failed");
        }
        Self::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} listed twice");
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{s}");
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{s}");
        }
    }
}
