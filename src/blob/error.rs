use thiserror::Error;

/// Errors of a [`super::BlobStore`]. The service maps them to its own errors; the HTTP layer
/// never sees these directly.
#[derive(Debug, Error)]
pub enum BlobError {
    #[error("object not found")]
    NotFound,
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    /// Reading the request body failed (client went away, or a service limit tripped).
    #[error("reading the body failed: {0}")]
    Body(#[source] std::io::Error),
    /// The storage engine itself failed.
    #[error("storage failure: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The object is in an archive storage class and must be restored before it is read.
    #[error("the object is archived")]
    Archived,
    #[error("{0}")]
    Unsupported(&'static str),
    /// Stored bytes failed verification (tampered, truncated, or not sealed when they must be).
    #[error("stored object is corrupt: {0}")]
    Corrupt(String),
    /// The data key an object needs is not available.
    #[error("{0}")]
    Key(#[from] crate::crypt::KeyError),
}
