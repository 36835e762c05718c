//! SQLite catalog (the embedded default). WAL journal with `synchronous = FULL`, so a committed
//! row survives power loss. Every write goes through this process's writer task
//! (`writer.rs`), which runs the writes waiting at that moment in one `BEGIN IMMEDIATE`
//! transaction and answers them once it has committed: one WAL fsync per
//! batch instead of one per write, and no writer of this process waits in SQLite's busy handler
//! (whose sleeps in growing steps, up to 100 ms, once turned a 20 ms median into a 600 ms tail).
//! Reads use the pool beside it. The busy timeout remains for other processes on the same file
//! (a `coffer reconcile` beside a running server).

mod sql;
mod writer;

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqliteConnection, SqlitePool};

use super::query::{self, micros};
use super::{
    BlobRef, Catalog, CatalogError, CategoryUsage, FilePage, FileRecord, ListQuery, LockRefusal, PendingUpload,
    PurgedRows, Quota, TenantInfo, TenantStatus, UploadSession,
};
use crate::domain::{BucketName, ObjectKey, TenantId};

#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
    /// Runs every write, in batches (see the module doc).
    writer: writer::Writer,
}

impl SqliteCatalog {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        without_memory_statistics();
        let options = SqliteConnectOptions::from_str(url)?;
        create_private_file(options.get_filename());
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        // A connection to a local file does not go stale: no ping (a round trip to the
        // connection's worker thread) each time one is taken from the pool. Four connections:
        // each keeps its own page cache (up to 2 MiB) and worker thread, and more readers than
        // that bought no throughput on two cores while the caches grew the memory (peak RSS
        // 74 MiB with eight under deep listing of 10,000 files, 40 MiB with four).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let writer = writer::Writer::start(pool.clone(), &options);
        Ok(Self { pool, writer })
    }
}

/// Turns off SQLite's memory statistics, once per process, before its first connection opens.
/// They are on by default, and every allocation inside SQLite then takes one global mutex:
/// with the pool's connections reading on their own threads (a list decodes hundreds of values,
/// each an allocation), that mutex was the hottest lock of the process under concurrent
/// lists. Coffer never reads those statistics.
fn without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. `sqlite3_config` may only run while no
        // other thread uses SQLite: this runs before the process's first connection (coffer
        // opens SQLite nowhere else), and once SQLite is initialised it changes nothing and
        // returns SQLITE_MISUSE, leaving the statistics on.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int)
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(rc, "SQLite was initialised already; its memory statistics stay on");
        }
    });
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
        let pending = pending.clone();
        self.writer.write(move |db| async move { sql::insert_intent(db, &pending).await }.boxed()).await
    }

    async fn touch_intent(&self, pending: &PendingUpload) -> Result<bool, CatalogError> {
        let pending = pending.clone();
        self.writer.write(move |db| async move { sql::touch_intent(db, &pending).await }.boxed()).await
    }

    async fn abandon_intent(&self, blob: &BlobRef) -> Result<bool, CatalogError> {
        let blob = blob.clone();
        self.writer.write(move |db| async move { sql::delete_intent(db, &blob).await }.boxed()).await
    }

    async fn commit_upload(
        &self,
        record: &FileRecord,
        overwrite: bool,
        quota: &Quota,
    ) -> Result<Option<FileRecord>, CatalogError> {
        let (record, quota) = (record.clone(), *quota);
        self.writer.write(move |db| async move { commit_upload(db, &record, overwrite, &quota).await }.boxed()).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<FileRecord>, CatalogError> {
        sql::select_file(&self.pool, &key.to_string()).await
    }

    async fn list(&self, tenant: &TenantId, q: &ListQuery) -> Result<FilePage, CatalogError> {
        query::check_cursor(q)?;
        let json: String = query::list_files(tenant, q).build_query_scalar().fetch_one(&self.pool).await?;
        query::page(query::rows_from_json(&json)?, q)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<FileRecord, CatalogError> {
        let key = key.clone();
        self.writer
            .write(move |db| {
                async move {
                    let record =
                        sql::delete_file_returning(&mut *db, &key.to_string()).await?.ok_or(CatalogError::NotFound)?;
                    sql::enqueue_deletion(&mut *db, &record.blob_ref()).await?;
                    sql::add_usage(&mut *db, &key, -1, -(record.size as i64)).await?;
                    Ok(record)
                }
                .boxed()
            })
            .await
    }

    async fn queued_deletions(&self, limit: u32) -> Result<Vec<BlobRef>, CatalogError> {
        sql::queued_deletions(&self.pool, limit).await
    }

    async fn deletion_done(&self, blob: &BlobRef) -> Result<(), CatalogError> {
        let blob = blob.clone();
        self.writer.write(move |db| async move { sql::dequeue_deletion(db, &blob).await }.boxed()).await
    }

    async fn usage(&self, tenant: &TenantId) -> Result<Vec<CategoryUsage>, CatalogError> {
        sql::usage(&self.pool, tenant).await
    }

    async fn tenant_status(&self, tenant: &TenantId) -> Result<Option<TenantStatus>, CatalogError> {
        sql::tenant_status(&self.pool, tenant).await
    }

    async fn add_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError> {
        let tenant = tenant.clone();
        let now = micros(&crate::util::now_micros());
        self.writer.write(move |db| async move { sql::add_tenant(db, &tenant, now).await }.boxed()).await
    }

    async fn set_tenant_status(&self, tenant: &TenantId, status: TenantStatus) -> Result<(), CatalogError> {
        let tenant = tenant.clone();
        self.writer.write(move |db| async move { sql::set_tenant_status(db, &tenant, status).await }.boxed()).await
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
        let tenant = tenant.clone();
        self.writer.write(move |db| async move { sql::purge_tenant_rows(db, &tenant).await }.boxed()).await
    }

    async fn remove_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError> {
        let tenant = tenant.clone();
        self.writer.write(move |db| async move { sql::remove_tenant(db, &tenant).await }.boxed()).await
    }

    async fn scan_files(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileRecord>, CatalogError> {
        sql::scan_files(&self.pool, after.unwrap_or(""), limit).await
    }

    async fn create_session(&self, session: &UploadSession) -> Result<(), CatalogError> {
        let session = session.clone();
        self.writer.write(move |db| async move { sql::session::create_with_intent(db, &session).await }.boxed()).await
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
        let (tenant, id, token) = (tenant.clone(), id.to_owned(), token.to_owned());
        let (now, until) = query::lease_window(lease);
        self.writer
            .write_lease(move |db| {
                async move {
                    Ok(match sql::session::lock(&mut *db, &tenant, &id, offset, &token, until, now).await? {
                        Some(locked) => Ok(locked),
                        None => Err(query::lock_refusal(sql::session::select(&mut *db, &tenant, &id).await?, offset)),
                    })
                }
                .boxed()
            })
            .await
    }

    async fn renew_session_lock(
        &self,
        tenant: &TenantId,
        id: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, CatalogError> {
        let (tenant, id, token) = (tenant.clone(), id.to_owned(), token.to_owned());
        let until = query::lease_window(lease).1;
        // A release (no lease left) is durable: after a power loss the upload must not stay
        // locked until its old lease runs out.
        self.writer
            .submit(
                move |db| async move { sql::session::renew(db, &tenant, &id, &token, until).await }.boxed(),
                lease.is_zero(),
            )
            .await
    }

    async fn save_session(&self, session: &UploadSession, token: &str, release: bool) -> Result<bool, CatalogError> {
        let (script, bind, read) = sql::save_session(session, token, release);
        self.writer.write_script(script, bind, read).await
    }

    async fn remove_session(
        &self,
        tenant: &TenantId,
        id: &str,
        token: Option<&str>,
    ) -> Result<Option<UploadSession>, CatalogError> {
        let (tenant, id, token) = (tenant.clone(), id.to_owned(), token.map(str::to_owned));
        self.writer
            .write(move |db| {
                async move { sql::session::delete_with_intent(db, &tenant, &id, token.as_deref()).await }.boxed()
            })
            .await
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
        let (tenant, link) = (tenant.clone(), link.to_owned());
        let (expires_at, now) = (micros(&expires_at), micros(&Utc::now()));
        self.writer
            .write(move |db| async move { sql::session::claim_link(db, &tenant, &link, expires_at, now).await }.boxed())
            .await
    }

    async fn release_upload_link(&self, tenant: &TenantId, link: &str) -> Result<(), CatalogError> {
        let (tenant, link) = (tenant.clone(), link.to_owned());
        self.writer.write(move |db| async move { sql::session::release_link(db, &tenant, &link).await }.boxed()).await
    }
}

/// `commit_upload` in the writer's transaction: checks the key and the quota, claims the
/// intent, inserts or replaces the row, queues replaced bytes, counts the usage. Every refusal
/// comes before the first change (the writer does not roll a refused write back).
async fn commit_upload(
    db: &mut SqliteConnection,
    record: &FileRecord,
    overwrite: bool,
    quota: &Quota,
) -> Result<Option<FileRecord>, CatalogError> {
    let key = record.key.to_string();
    let previous = sql::select_file(&mut *db, &key).await?;
    let (files_delta, bytes_delta) = match &previous {
        Some(_) if !overwrite => return refuse(db, record, CatalogError::AlreadyExists).await,
        Some(prev) => (0, record.size as i64 - prev.size as i64),
        None => (1, record.size as i64),
    };
    if *quota != Quota::default() {
        let (files, bytes) = sql::tenant_totals(&mut *db, record.key.tenant()).await?;
        let after = ((files + files_delta).max(0) as u64, (bytes + bytes_delta).max(0) as u64);
        if (files_delta > 0 || bytes_delta > 0) && !quota.allows(after.0, after.1) {
            return refuse(db, record, CatalogError::QuotaExceeded).await;
        }
    }
    // Claims the intent: once reconcile has rolled it back, the bytes may be gone.
    if !sql::delete_intent(&mut *db, &record.blob_ref()).await? {
        return Err(CatalogError::IntentLost);
    }
    match &previous {
        Some(prev) => {
            sql::replace_file(&mut *db, record).await?;
            sql::enqueue_deletion(&mut *db, &prev.blob_ref()).await?;
        }
        // The writer holds SQLite's write lock: the key cannot have appeared.
        None => {
            sql::insert_file(&mut *db, record).await?;
        }
    }
    sql::add_usage(&mut *db, &record.key, files_delta, bytes_delta).await?;
    Ok(previous)
}

/// `refusal`, unless the upload's intent is gone: a rolled-back upload is told so first, as
/// PostgreSQL's commit (which claims the intent first) tells it.
async fn refuse(
    db: &mut SqliteConnection,
    record: &FileRecord,
    refusal: CatalogError,
) -> Result<Option<FileRecord>, CatalogError> {
    match sql::intent_exists(db, &record.blob_ref()).await? {
        true => Err(refusal),
        false => Err(CatalogError::IntentLost),
    }
}
