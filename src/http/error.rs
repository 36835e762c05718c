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
    ($($variant:ident = $code:literal => $status:ident,)*) => {
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
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidTenantId = "invalid-tenant-id" => BAD_REQUEST,
    InvalidCategory = "invalid-category" => BAD_REQUEST,
    InvalidFilename = "invalid-filename" => BAD_REQUEST,
    InvalidKey = "invalid-key" => BAD_REQUEST,
    InvalidBucket = "invalid-bucket" => BAD_REQUEST,
    InvalidQuery = "invalid-query" => BAD_REQUEST,
    InvalidCursor = "invalid-cursor" => BAD_REQUEST,
    InvalidJson = "invalid-json" => BAD_REQUEST,
    InvalidMultipart = "invalid-multipart" => BAD_REQUEST,
    InvalidExpiry = "invalid-expiry" => BAD_REQUEST,
    InvalidRestore = "invalid-restore" => BAD_REQUEST,
    UnknownCategory = "unknown-category" => BAD_REQUEST,
    BodyIncomplete = "body-incomplete" => BAD_REQUEST,
    Unsupported = "unsupported" => BAD_REQUEST,
    MissingToken = "missing-token" => UNAUTHORIZED,
    MalformedToken = "malformed-token" => UNAUTHORIZED,
    TokenExpired = "token-expired" => UNAUTHORIZED,
    TokenNotYetValid = "token-not-yet-valid" => UNAUTHORIZED,
    BadTokenSignature = "bad-token-signature" => UNAUTHORIZED,
    UnsupportedTokenAlgorithm = "unsupported-token-algorithm" => UNAUTHORIZED,
    WrongTokenIssuer = "wrong-token-issuer" => UNAUTHORIZED,
    WrongTokenAudience = "wrong-token-audience" => UNAUTHORIZED,
    InvalidTokenClaims = "invalid-token-claims" => UNAUTHORIZED,
    TokenLifetimeTooLong = "token-lifetime-too-long" => UNAUTHORIZED,
    UnsupportedTokenCrit = "unsupported-token-crit" => UNAUTHORIZED,
    MetricsTokenRequired = "metrics-token-required" => UNAUTHORIZED,
    TenantMismatch = "tenant-mismatch" => FORBIDDEN,
    ReadOnly = "read-only" => FORBIDDEN,
    BadSignature = "bad-signature" => FORBIDDEN,
    UrlExpired = "url-expired" => FORBIDDEN,
    TenantInactive = "tenant-inactive" => FORBIDDEN,
    NotFound = "not-found" => NOT_FOUND,
    MethodNotAllowed = "method-not-allowed" => METHOD_NOT_ALLOWED,
    BodyTimeout = "body-timeout" => REQUEST_TIMEOUT,
    BodyTooSlow = "body-too-slow" => REQUEST_TIMEOUT,
    AlreadyExists = "already-exists" => CONFLICT,
    ObjectArchived = "object-archived" => CONFLICT,
    UploadAbandoned = "upload-abandoned" => CONFLICT,
    LinkSuperseded = "link-superseded" => GONE,
    TooLarge = "too-large" => PAYLOAD_TOO_LARGE,
    QuotaExceeded = "quota-exceeded" => PAYLOAD_TOO_LARGE,
    MultipartPreambleTooLarge = "multipart-preamble-too-large" => PAYLOAD_TOO_LARGE,
    FormFieldTooLarge = "form-field-too-large" => PAYLOAD_TOO_LARGE,
    UrlTooLong = "url-too-long" => URI_TOO_LONG,
    UnsupportedMediaType = "unsupported-media-type" => UNSUPPORTED_MEDIA_TYPE,
    RangeNotSatisfiable = "range-not-satisfiable" => RANGE_NOT_SATISFIABLE,
    TooManyRequests = "too-many-requests" => TOO_MANY_REQUESTS,
    InternalError = "internal-error" => INTERNAL_SERVER_ERROR,
    ObjectCorrupt = "object-corrupt" => INTERNAL_SERVER_ERROR,
    KeyUnavailable = "key-unavailable" => INTERNAL_SERVER_ERROR,
    StorageUnavailable = "storage-unavailable" => SERVICE_UNAVAILABLE,
    CatalogUnavailable = "catalog-unavailable" => SERVICE_UNAVAILABLE,
    RequestTimeout = "request-timeout" => SERVICE_UNAVAILABLE,
}

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
