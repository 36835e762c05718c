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

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let code = match e {
            DomainError::InvalidTenantId(_) => "invalid-tenant-id",
            DomainError::InvalidCategory(_) => "invalid-category",
            DomainError::InvalidFilename(_) => "invalid-filename",
            DomainError::InvalidKey(_) => "invalid-key",
            DomainError::InvalidBucket(_) => "invalid-bucket",
        };
        Self::bad_request(code, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::MissingToken => "missing-token",
            AuthError::MalformedToken => "malformed-token",
            AuthError::TokenExpired => "token-expired",
            AuthError::TokenNotYetValid => "token-not-yet-valid",
            AuthError::BadTokenSignature => "bad-token-signature",
            AuthError::UnsupportedAlgorithm => "unsupported-token-algorithm",
            AuthError::WrongIssuer => "wrong-token-issuer",
            AuthError::WrongAudience => "wrong-token-audience",
            AuthError::InvalidClaims(_) => "invalid-token-claims",
            AuthError::TokenLifetimeTooLong(_) => "token-lifetime-too-long",
            AuthError::UnsupportedCriticalHeader => "unsupported-token-crit",
            AuthError::ReadOnly => return Self::new(StatusCode::FORBIDDEN, "read-only", e.to_string()),
        };
        Self::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

impl From<PresignError> for ApiError {
    fn from(e: PresignError) -> Self {
        let code = match e {
            PresignError::BadSignature => "bad-signature",
            PresignError::Expired => "url-expired",
        };
        Self::new(StatusCode::FORBIDDEN, code, e.to_string())
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            ServiceError::Invalid(d) => return d.clone().into(),
            ServiceError::UnknownCategory(_) => (S::BAD_REQUEST, "unknown-category"),
            ServiceError::TenantMismatch => (S::FORBIDDEN, "tenant-mismatch"),
            ServiceError::NotFound => (S::NOT_FOUND, "not-found"),
            ServiceError::AlreadyExists => (S::CONFLICT, "already-exists"),
            ServiceError::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "too-large"),
            ServiceError::QuotaExceeded => (S::PAYLOAD_TOO_LARGE, "quota-exceeded"),
            ServiceError::TenantInactive => (S::FORBIDDEN, "tenant-inactive"),
            ServiceError::UnsupportedMediaType { .. } => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type"),
            ServiceError::InvalidExpiry(_) => (S::BAD_REQUEST, "invalid-expiry"),
            ServiceError::InvalidRestore(_) => (S::BAD_REQUEST, "invalid-restore"),
            ServiceError::InvalidCursor => (S::BAD_REQUEST, "invalid-cursor"),
            ServiceError::BodyIncomplete(_) => (S::BAD_REQUEST, "body-incomplete"),
            ServiceError::BodyTimeout => (S::REQUEST_TIMEOUT, "body-timeout"),
            ServiceError::BodyTooSlow { .. } => (S::REQUEST_TIMEOUT, "body-too-slow"),
            ServiceError::LinkSuperseded => (S::GONE, "link-superseded"),
            ServiceError::Archived => (S::CONFLICT, "object-archived"),
            ServiceError::UploadAbandoned => (S::CONFLICT, "upload-abandoned"),
            ServiceError::Unsupported(_) => (S::BAD_REQUEST, "unsupported"),
            ServiceError::Storage(_) => (S::SERVICE_UNAVAILABLE, "storage-unavailable"),
            ServiceError::Catalog(crate::catalog::CatalogError::Corrupt(_)) => {
                (S::INTERNAL_SERVER_ERROR, "internal-error")
            }
            ServiceError::Catalog(_) => (S::SERVICE_UNAVAILABLE, "catalog-unavailable"),
        };
        if status.is_server_error() {
            tracing::error!(error = ?e, "request failed");
        }
        Self::new(status, code, e.to_string())
    }
}
