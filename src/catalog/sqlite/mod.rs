//! SQLite catalog (the embedded default). WAL journal with `synchronous = FULL`, so a committed
//! row survives power loss. Writes take the lock up front (`BEGIN IMMEDIATE`), so a transaction
//! never reads a state another writer is about to change. Within one process, writers queue on
//! a fair async lock before they reach SQLite's: SQLite has one writer at a time anyway, and its
//! busy handler makes waiting writers sleep in growing steps (up to 100 ms each), which under
//! concurrent uploads turned a 20 ms median into a 600 ms tail. The busy timeout remains for
//! other processes on the same file.

mod sql;

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::query::{self, micros};
use super::{
    BlobRef, Catalog, CatalogError, CategoryUsage, FilePage, FileRecord, ListQuery, LockRefusal, PendingUpload,
    PurgedRows, Quota, RawRecord, TenantInfo, TenantStatus, UploadSession,
};
use crate::domain::{BucketName, ObjectKey, TenantId};

#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
    /// This process's writers, in arrival order (see the module doc).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteCatalog {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        let options = SqliteConnectOptions::from_str(url)?;
        create_private_file(options.get_filename());
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool, writer: Default::default() })
    }

    /// Waits for this process's turn to write.
    async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }
}

/// Creates the database file owner-only (0600) before SQLite does (it would use 0644); SQLite
/// gives its `-wal` and `-shm` files the database file's mode.
/// An existing file is left as it is; any other failure (a missing directory, say) SQLite
/// reports in its own words when it opens the file.
fn create_private_file(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if !path.as_os_str().is_empty() && path.as_os_str() != ":memory:" {
        let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    }
}

#[async_trait]
impl Catalog for SqliteCatalog {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn record_intent(&self, pending: &PendingUpload) -> Result<(), CatalogError> {
        let _turn = self.turn().await;
        sql::insert_intent(&self.pool, pending).await
    }

    async fn touch_intent(&self, pending: &PendingUpload) -> Result<bool, CatalogError> {
        let _turn = self.turn().await;
        sql::touch_intent(&self.pool, pending).await
    }

    async fn abandon_intent(&self, blob: &BlobRef) -> Result<bool, CatalogError> {
        let _turn = self.turn().await;
        sql::delete_intent(&self.pool, blob).await
    }

    async fn commit_upload(
        &self,
        record: &FileRecord,
        overwrite: bool,
        quota: &Quota,
    ) -> Result<Option<FileRecord>, CatalogError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !sql::delete_intent(&mut *tx, &record.blob_ref()).await? {
            return Err(CatalogError::IntentLost);
        }
        let key = record.key.to_string();
        let previous = sql::select_file(&mut *tx, &key).await?;
        let (files_delta, bytes_delta) = match &previous {
            Some(_) if !overwrite => return Err(CatalogError::AlreadyExists),
            Some(prev) => (0, record.size as i64 - prev.size as i64),
            None => (1, record.size as i64),
        };
        if *quota != Quota::default() {
            let (files, bytes) = sql::tenant_totals(&mut *tx, record.key.tenant()).await?;
            let after = ((files + files_delta).max(0) as u64, (bytes + bytes_delta).max(0) as u64);
            if (files_delta > 0 || bytes_delta > 0) && !quota.allows(after.0, after.1) {
                return Err(CatalogError::QuotaExceeded);
            }
        }
        match &previous {
            Some(prev) => {
                sql::replace_file(&mut *tx, record).await?;
                sql::enqueue_deletion(&mut *tx, &prev.blob_ref()).await?;
            }
            // The write lock is held since BEGIN IMMEDIATE: the key cannot have appeared.
            None => {
                sql::insert_file(&mut *tx, record).await?;
            }
        }
        sql::add_usage(&mut *tx, &record.key, files_delta, bytes_delta).await?;
        tx.commit().await?;
        Ok(previous)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<FileRecord>, CatalogError> {
        sql::select_file(&self.pool, &key.to_string()).await
    }

    async fn list(&self, tenant: &TenantId, q: &ListQuery) -> Result<FilePage, CatalogError> {
        query::check_cursor(q)?;
        let rows: Vec<RawRecord> = query::list_files(tenant, q).build_query_as().fetch_all(&self.pool).await?;
        query::page(rows, q)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<FileRecord, CatalogError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let record = sql::delete_file_returning(&mut *tx, &key.to_string()).await?.ok_or(CatalogError::NotFound)?;
        sql::enqueue_deletion(&mut *tx, &record.blob_ref()).await?;
        sql::add_usage(&mut *tx, key, -1, -(record.size as i64)).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn queued_deletions(&self, limit: u32) -> Result<Vec<BlobRef>, CatalogError> {
        sql::queued_deletions(&self.pool, limit).await
    }

    async fn deletion_done(&self, blob: &BlobRef) -> Result<(), CatalogError> {
        let _turn = self.turn().await;
        sql::dequeue_deletion(&self.pool, blob).await
    }

    async fn usage(&self, tenant: &TenantId) -> Result<Vec<CategoryUsage>, CatalogError> {
        sql::usage(&self.pool, tenant).await
    }

    async fn tenant_status(&self, tenant: &TenantId) -> Result<Option<TenantStatus>, CatalogError> {
        sql::tenant_status(&self.pool, tenant).await
    }

    async fn add_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError> {
        let _turn = self.turn().await;
        sql::add_tenant(&self.pool, tenant, micros(&crate::util::now_micros())).await
    }

    async fn set_tenant_status(&self, tenant: &TenantId, status: TenantStatus) -> Result<(), CatalogError> {
        let _turn = self.turn().await;
        sql::set_tenant_status(&self.pool, tenant, status).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantInfo>, CatalogError> {
        sql::list_tenants(&self.pool).await
    }

    async fn stale_intents(
        &self,
        before: DateTime<Utc>,
        after: Option<&PendingUpload>,
        limit: u32,
    ) -> Result<Vec<PendingUpload>, CatalogError> {
        sql::stale_intents(&self.pool, before, after, limit).await
    }

    async fn intent_under(&self, bucket: &BucketName, prefix: &str) -> Result<bool, CatalogError> {
        sql::intent_under(&self.pool, bucket, prefix).await
    }

    async fn referenced(&self, bucket: &BucketName, blob_keys: &[String]) -> Result<HashSet<String>, CatalogError> {
        sql::referenced(&self.pool, bucket, blob_keys).await
    }

    async fn purge_tenant_rows(&self, tenant: &TenantId) -> Result<PurgedRows, CatalogError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let purged = sql::purge_tenant_rows(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(purged)
    }

    async fn remove_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError> {
        let _turn = self.turn().await;
        sql::remove_tenant(&self.pool, tenant).await
    }

    async fn scan_files(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileRecord>, CatalogError> {
        sql::scan_files(&self.pool, after.unwrap_or(""), limit).await
    }

    async fn create_session(&self, session: &UploadSession) -> Result<(), CatalogError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sql::session::create_with_intent(&mut tx, session).await?;
        Ok(tx.commit().await?)
    }

    async fn session(&self, tenant: &TenantId, id: &str) -> Result<Option<UploadSession>, CatalogError> {
        sql::session::select(&self.pool, tenant, id).await
    }

    async fn lock_session(
        &self,
        tenant: &TenantId,
        id: &str,
        offset: u64,
        token: &str,
        lease: Duration,
    ) -> Result<Result<UploadSession, LockRefusal>, CatalogError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (now, until) = query::lease_window(lease);
        let locked = sql::session::lock(&mut *tx, tenant, id, offset, token, until, now).await?;
        let current = sql::session::select(&mut *tx, tenant, id).await?;
        tx.commit().await?;
        Ok(query::lock_outcome(locked, current, offset))
    }

    async fn renew_session_lock(
        &self,
        tenant: &TenantId,
        id: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, CatalogError> {
        let _turn = self.turn().await;
        sql::session::renew(&self.pool, tenant, id, token, query::lease_window(lease).1).await
    }

    async fn save_session(&self, session: &UploadSession, token: &str, release: bool) -> Result<bool, CatalogError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let saved = sql::session::save_with_intent(&mut tx, session, token, release).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn remove_session(
        &self,
        tenant: &TenantId,
        id: &str,
        token: Option<&str>,
    ) -> Result<Option<UploadSession>, CatalogError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let removed = sql::session::delete_with_intent(&mut tx, tenant, id, token).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn expired_sessions(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<UploadSession>, CatalogError> {
        sql::session::expired(&self.pool, micros(&before), limit).await
    }

    async fn reserved_bytes(&self, tenant: &TenantId) -> Result<u64, CatalogError> {
        sql::session::reserved(&self.pool, tenant).await
    }

    async fn claim_upload_link(
        &self,
        tenant: &TenantId,
        link: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        let _turn = self.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = micros(&Utc::now());
        let claimed = sql::session::claim_link(&mut tx, tenant, link, micros(&expires_at), now).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn release_upload_link(&self, tenant: &TenantId, link: &str) -> Result<(), CatalogError> {
        let _turn = self.turn().await;
        sql::session::release_link(&self.pool, tenant, link).await
    }
}
