use thiserror::Error;

use crate::blob::BlobError;
use crate::catalog::CatalogError;
use crate::domain::DomainError;

/// Errors of the service layer: what a caller of [`super::StorageService`] may get. The HTTP
/// layer maps each to a status and a stable code (`http::error`).
#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// A presigned link that does not verify or has expired.
    #[error(transparent)]
    Link(#[from] crate::auth::PresignError),
    #[error("unknown category {0:?}")]
    UnknownCategory(String),
    #[error("the key belongs to another tenant")]
    TenantMismatch,
    #[error("no such file")]
    NotFound,
    #[error("a file with this key already exists; upload with overwrite=true to replace it")]
    AlreadyExists,
    #[error("the file is larger than the {limit} bytes allowed in this category")]
    TooLarge { limit: u64 },
    #[error("the upload would exceed the tenant's storage quota")]
    QuotaExceeded,
    #[error("the tenant is not active")]
    TenantInactive,
    #[error("content type {content_type} is not accepted in category {category}")]
    UnsupportedMediaType { content_type: String, category: String },
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("the request body stalled: no data arrived for too long")]
    BodyTimeout,
    #[error("this token is read-only")]
    ReadOnly,
    #[error("the file this link was issued for has been replaced or deleted")]
    LinkSuperseded,
    #[error("the request body arrives too slowly: under {min_rate} bytes per second")]
    BodyTooSlow { min_rate: u64 },
    #[error("the request body ended early or could not be read")]
    BodyIncomplete(#[source] std::io::Error),
    #[error("the upload was rolled back by a reconcile before it could commit; nothing was stored, send it again")]
    UploadAbandoned,
    #[error("the file is in an archive storage class; restore it first (POST /v1/restore)")]
    Archived,
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("the stored file failed its integrity check; it is not served")]
    Corrupt(#[source] BlobError),
    #[error("the file's encryption key is not available")]
    KeyUnavailable(#[source] BlobError),
    #[error("this upload link has been used; ask for a new one")]
    LinkUsed,
    #[error("no such upload")]
    UploadNotFound,
    #[error("the upload is at offset {offset}, not at the offset sent")]
    OffsetMismatch { offset: u64 },
    #[error("another request is writing to this upload; try again when it ends")]
    UploadBusy,
    #[error("the upload is complete; it takes no more bytes")]
    UploadCompleted,
    #[error("the bytes do not match the Upload-Checksum sent; they were discarded")]
    ChecksumMismatch,
    #[error("the bytes go past the upload's length of {length} bytes")]
    BeyondLength { length: u64 },
    #[error("{0}")]
    InvalidUpload(String),
    #[error("storage is unavailable")]
    Storage(#[source] BlobError),
    #[error("the catalog is unavailable")]
    Catalog(#[source] CatalogError),
}

impl ServiceError {
    /// Classifies a failure of the request body: a limit the service set, or the client.
    pub fn from_body(io: std::io::Error) -> Self {
        match super::body::BodyError::from_io(&io) {
            Some(super::body::BodyError::TooLarge { limit }) => ServiceError::TooLarge { limit },
            Some(super::body::BodyError::QuotaExceeded) => ServiceError::QuotaExceeded,
            Some(super::body::BodyError::IdleTimeout) => ServiceError::BodyTimeout,
            Some(super::body::BodyError::TooSlow { min_rate }) => ServiceError::BodyTooSlow { min_rate },
            Some(super::body::BodyError::BeyondLength { length }) => ServiceError::BeyondLength { length },
            None => ServiceError::BodyIncomplete(io),
        }
    }
}

impl From<CatalogError> for ServiceError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound => ServiceError::NotFound,
            CatalogError::AlreadyExists => ServiceError::AlreadyExists,
            CatalogError::InvalidCursor => ServiceError::InvalidCursor,
            CatalogError::QuotaExceeded => ServiceError::QuotaExceeded,
            CatalogError::IntentLost => ServiceError::UploadAbandoned,
            other => ServiceError::Catalog(other),
        }
    }
}

impl From<BlobError> for ServiceError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Body(io) => ServiceError::from_body(io),
            BlobError::Archived => ServiceError::Archived,
            BlobError::Unsupported(what) => ServiceError::Unsupported(what),
            e @ BlobError::Corrupt(_) => ServiceError::Corrupt(e),
            e @ BlobError::Key(_) => ServiceError::KeyUnavailable(e),
            other => ServiceError::Storage(other),
        }
    }
}
