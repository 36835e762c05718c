//! The metadata catalog: which files exist, who owns them, where their bytes are. One trait,
//! one implementation per engine (SQLite here, PostgreSQL beside it), each with its own
//! `migrations/` folder, and one conformance suite (`tests/catalog.rs`) run against all.
//!
//! Contract shared by every implementation:
//! - `commit_upload` is one transaction: it inserts (or, with `overwrite`, replaces) the file
//!   row, clears the upload's pending intent, and queues the replaced version's bytes for
//!   deletion. Without `overwrite`, an existing key gives `AlreadyExists` and changes nothing.
//! - `delete` removes the row and queues its bytes for deletion in one transaction.
//! - Listing reads only the catalog, with keyset pagination.

mod cursor;
mod error;
mod record;
mod sqlite;

use async_trait::async_trait;

pub use cursor::{Cursor, SortOrder};
pub use error::CatalogError;
pub use record::{BlobRef, FilePage, FileRecord, ListQuery, PendingUpload};
pub use sqlite::SqliteCatalog;

use crate::domain::{ObjectKey, TenantId};

#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// A short name of the engine, for logs and `/readyz`.
    fn engine(&self) -> &'static str;

    /// Succeeds when the catalog answers a trivial query.
    async fn ping(&self) -> Result<(), CatalogError>;

    /// Records that bytes are about to be written to `pending.blob`, before they are.
    async fn record_intent(&self, pending: &PendingUpload) -> Result<(), CatalogError>;

    /// Forgets a pending intent whose bytes were not (or no longer) kept.
    async fn abandon_intent(&self, blob: &BlobRef) -> Result<(), CatalogError>;

    /// Makes `record` visible (see the module contract). Returns the replaced record when an
    /// overwrite replaced one; `AlreadyExists` when the key exists and `overwrite` is false.
    async fn commit_upload(&self, record: &FileRecord, overwrite: bool) -> Result<Option<FileRecord>, CatalogError>;

    /// The record for `key`, if any.
    async fn get(&self, key: &ObjectKey) -> Result<Option<FileRecord>, CatalogError>;

    /// One page of `tenant`'s files. Returns `InvalidCursor` when the cursor's sort order is
    /// not the query's.
    async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<FilePage, CatalogError>;

    /// Removes the row for `key` and queues its bytes for deletion; `NotFound` when absent.
    async fn delete(&self, key: &ObjectKey) -> Result<FileRecord, CatalogError>;

    /// Up to `limit` blobs queued for deletion (oldest first).
    async fn queued_deletions(&self, limit: u32) -> Result<Vec<BlobRef>, CatalogError>;

    /// Marks a queued deletion done (its bytes are gone).
    async fn deletion_done(&self, blob: &BlobRef) -> Result<(), CatalogError>;
}
