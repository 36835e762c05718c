//! The metadata catalog: which files exist, who owns them, where their bytes are. One trait,
//! one implementation per engine (SQLite here, PostgreSQL beside it), each with its own
//! `migrations/` folder, and one conformance suite (`tests/catalog.rs`) run against all.
//!
//! Contract shared by every implementation:
//! - `commit_upload` is one transaction: it claims (removes) the upload's pending intent,
//!   inserts (or, with `overwrite`, replaces) the file row, and queues the replaced version's
//!   bytes for deletion. Without `overwrite`, an existing key gives `AlreadyExists` and changes
//!   nothing; an intent that is gone (rolled back by reconcile) gives `IntentLost`.
//! - `abandon_intent` and `commit_upload` race for the intent and exactly one wins: the
//!   loser of a rollback knows the row now owns the bytes, the loser of a commit knows the
//!   bytes may already be gone.
//! - `delete` removes the row and queues its bytes for deletion in one transaction.
//! - Listing reads only the catalog, with keyset pagination.

mod cursor;
mod error;
mod postgres;
mod query;
mod record;
mod session;
mod session_statements;
mod sqlite;
mod statements;
mod tenant;

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use cursor::{Cursor, SortOrder};
pub use error::CatalogError;
pub use postgres::PostgresCatalog;
pub use record::{
    BlobRef, CategoryUsage, FilePage, FileRecord, ListQuery, PendingUpload, PurgedRows, Quota, RawRecord,
};
pub use session::{LockRefusal, UploadSession};
pub use sqlite::SqliteCatalog;
pub use tenant::{TenantInfo, TenantStatus};

use crate::domain::{BucketName, ObjectKey, TenantId};

/// Which engine holds the catalog, from `DATABASE_URL`'s scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogEngine {
    /// `sqlite:` (the embedded default).
    Sqlite,
    /// `postgres:` or `postgresql:`.
    Postgres,
}

impl CatalogEngine {
    /// The engine a database URL names, or `None` for any other scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Some(Self::Sqlite),
            Some("postgres" | "postgresql") => Some(Self::Postgres),
            _ => None,
        }
    }
}

/// Opens the catalog a database URL names (`sqlite:` or `postgres:`), for tools and tests;
/// coffer itself opens its catalog in [`crate::startup::catalog`].
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Catalog>, CatalogError> {
    match CatalogEngine::of_url(url) {
        Some(CatalogEngine::Postgres) => Ok(std::sync::Arc::new(PostgresCatalog::connect(url, None).await?)),
        _ => Ok(std::sync::Arc::new(SqliteCatalog::connect(url).await?)),
    }
}

#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// A short name of the engine, for logs and `/readyz`.
    fn engine(&self) -> &'static str;

    /// Succeeds when the catalog answers a trivial query.
    async fn ping(&self) -> Result<(), CatalogError>;

    /// Records that bytes are about to be written to `pending.blob`, before they are.
    async fn record_intent(&self, pending: &PendingUpload) -> Result<(), CatalogError>;

    /// An upload's start: the current row of its key, and its intent recorded — unless the key
    /// exists and `overwrite` is off: `AlreadyExists`, nothing recorded. An engine may do it in
    /// one round trip (PostgreSQL does).
    async fn begin_upload(&self, pending: &PendingUpload, overwrite: bool) -> Result<Option<FileRecord>, CatalogError> {
        let existing = self.get(pending.blob.blob.object_key()).await?;
        if existing.is_some() && !overwrite {
            return Err(CatalogError::AlreadyExists);
        }
        self.record_intent(pending).await?;
        Ok(existing)
    }

    /// Marks a pending intent as still in progress: its new mark (`started_at`) and the time
    /// its writer vouches for (`alive_until`); `false` when the intent is gone.
    async fn touch_intent(&self, pending: &PendingUpload) -> Result<bool, CatalogError>;

    /// Forgets a pending intent whose bytes were not (or no longer) kept; `true` when this
    /// call removed it, `false` when it was already gone (committed or abandoned before).
    async fn abandon_intent(&self, blob: &BlobRef) -> Result<bool, CatalogError>;

    /// Makes `record` visible (see the module contract) and updates the tenant's usage in the
    /// same transaction. Returns the replaced record when an overwrite replaced one;
    /// `IntentLost` when the upload's intent is no longer there;
    /// `AlreadyExists` when the key exists and `overwrite` is false; `QuotaExceeded` when the
    /// tenant's usage after the change would exceed `quota` (checked under the write lock, so
    /// concurrent commits cannot overshoot it).
    async fn commit_upload(
        &self,
        record: &FileRecord,
        overwrite: bool,
        quota: &Quota,
    ) -> Result<Option<FileRecord>, CatalogError>;

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

    /// `tenant`'s file count and bytes per category (only categories with files).
    async fn usage(&self, tenant: &TenantId) -> Result<Vec<CategoryUsage>, CatalogError>;

    /// The registered status of `tenant`, if registered.
    async fn tenant_status(&self, tenant: &TenantId) -> Result<Option<TenantStatus>, CatalogError>;

    /// Registers `tenant` as active; `false` when it was already registered (unchanged).
    async fn add_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError>;

    /// Sets a registered tenant's status; `NotFound` when it is not registered.
    async fn set_tenant_status(&self, tenant: &TenantId, status: TenantStatus) -> Result<(), CatalogError>;

    /// Every registered tenant, by id.
    async fn list_tenants(&self) -> Result<Vec<TenantInfo>, CatalogError>;

    /// Pending intents whose latest mark and lease both lie before `before`, oldest first, at
    /// most `limit`, after `after` (the last one of the previous page).
    async fn stale_intents(
        &self,
        before: DateTime<Utc>,
        after: Option<&PendingUpload>,
        limit: u32,
    ) -> Result<Vec<PendingUpload>, CatalogError>;

    /// Whether a pending intent in `bucket` points under `prefix` (a live upload may still be
    /// writing there).
    async fn intent_under(&self, bucket: &BucketName, prefix: &str) -> Result<bool, CatalogError>;

    /// Which of `blob_keys` in `bucket` a file row or a pending intent points to.
    async fn referenced(&self, bucket: &BucketName, blob_keys: &[String]) -> Result<HashSet<String>, CatalogError>;

    /// Removes every row of `tenant` except its registration — files, usage, pending intents
    /// and queued deletions of its bytes — in one transaction (`coffer tenant purge`).
    async fn purge_tenant_rows(&self, tenant: &TenantId) -> Result<PurgedRows, CatalogError>;

    /// Forgets a registered tenant (the last step of a purge); `false` when not registered.
    async fn remove_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError>;

    /// All tenants' files in key order after `after`, at most `limit` (maintenance scans).
    async fn scan_files(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileRecord>, CatalogError>;

    /// Records a new resumable upload and the pending intent of its blob, in one transaction.
    async fn create_session(&self, session: &UploadSession) -> Result<(), CatalogError>;

    /// `tenant`'s resumable upload `id`, if any.
    async fn session(&self, tenant: &TenantId, id: &str) -> Result<Option<UploadSession>, CatalogError>;

    /// Takes the write lock of `tenant`'s unfinished upload `id` at `offset` for `lease`, as
    /// `token`: one writer at a time across every instance, and only at the upload's offset.
    async fn lock_session(
        &self,
        tenant: &TenantId,
        id: &str,
        offset: u64,
        token: &str,
        lease: std::time::Duration,
    ) -> Result<Result<UploadSession, LockRefusal>, CatalogError>;

    /// Extends the lease of `token`'s lock; `false` when it no longer holds it.
    async fn renew_session_lock(
        &self,
        tenant: &TenantId,
        id: &str,
        token: &str,
        lease: std::time::Duration,
    ) -> Result<bool, CatalogError>;

    /// Records the lock holder's progress (offset, hash state, engine state, expiry, completion)
    /// and, with `release`, releases the lock, moving the intent's lease to the new expiry in
    /// the same transaction; `false` when `token` no longer holds the lock (nothing changed).
    async fn save_session(&self, session: &UploadSession, token: &str, release: bool) -> Result<bool, CatalogError>;

    /// Removes an upload and its intent in one transaction: a completed one, or an unfinished
    /// one whose lock `token` holds. Returns it; `None` when it was not removed.
    async fn remove_session(
        &self,
        tenant: &TenantId,
        id: &str,
        token: Option<&str>,
    ) -> Result<Option<UploadSession>, CatalogError>;

    /// Uploads of every tenant that expired before `before`, oldest first, at most `limit`.
    async fn expired_sessions(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<UploadSession>, CatalogError>;

    /// Bytes `tenant`'s unfinished uploads announced or hold, which count toward its quota.
    async fn reserved_bytes(&self, tenant: &TenantId) -> Result<u64, CatalogError>;

    /// Records that upload link `link` (a presigned PUT, valid until `expires_at`) of `tenant`
    /// has been used: `true` the first time, `false` ever after (until it expired).
    async fn claim_upload_link(
        &self,
        tenant: &TenantId,
        link: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, CatalogError>;

    /// Makes a claimed upload link usable again: its upload stored nothing.
    async fn release_upload_link(&self, tenant: &TenantId, link: &str) -> Result<(), CatalogError>;
}
