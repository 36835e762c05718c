use thiserror::Error;

/// Why a raw value was refused by a domain `parse` function. Each variant maps to a stable
/// `400` code in the HTTP layer; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("invalid tenant id: {0}")]
    InvalidTenantId(&'static str),
    #[error("invalid category: {0}")]
    InvalidCategory(&'static str),
    #[error("invalid filename: {0}")]
    InvalidFilename(&'static str),
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    #[error("invalid bucket name: {0}")]
    InvalidBucket(&'static str),
    #[error("invalid expiry: {0}")]
    InvalidExpiry(&'static str),
    #[error("invalid restore: {0}")]
    InvalidRestore(&'static str),
}
