use thiserror::Error;

/// Errors of a [`super::Catalog`]. The service maps them; the HTTP layer never sees them.
#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("no such file")]
    NotFound,
    #[error("a file with this key already exists")]
    AlreadyExists,
    #[error("the tenant's quota would be exceeded")]
    QuotaExceeded,
    /// The upload's pending intent was rolled back (by reconcile) before its commit.
    #[error("the upload's pending intent was rolled back before it could commit")]
    IntentLost,
    #[error("invalid cursor")]
    InvalidCursor,
    /// A stored row no longer parses into domain types (someone edited the database).
    #[error("corrupt catalog row: {0}")]
    Corrupt(String),
    #[error("catalog database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The catalog did not answer within `COFFER_CATALOG_TIMEOUT`.
    #[error("the catalog did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The login may not change the schema and the schema lacks migrations it needs.
    #[error("the catalog schema lacks migration {0}: run `coffer migrate` with the owner's DATABASE_URL")]
    SchemaBehind(i64),
    #[error("catalog migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl CatalogError {
    /// A refusal of the request itself (the key exists, is missing, the quota is reached, the
    /// intent is gone), as opposed to a failure of the catalog. A write refuses only before it
    /// has changed anything.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::NotFound | Self::AlreadyExists | Self::QuotaExceeded | Self::IntentLost | Self::InvalidCursor
        )
    }
}
