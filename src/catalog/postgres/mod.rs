//! PostgreSQL catalog: several coffer instances share one database.
//!
//! Every tenant query runs in a transaction that first sets `app.tenant_id` (`SET LOCAL`
//! semantics), as role `coffer_app`, on which row-level security applies to every table that
//! names a tenant: a query without the setting sees no rows. Maintenance (reconcile, the
//! deletion queue, tenant administration) runs on its own pool as role `coffer_maintenance`,
//! whose policies see every tenant; with `COFFER_MAINTENANCE_DATABASE_URL` that pool logs in
//! separately, so the tenant pool's login need not be able to reach it at all. Migrations run
//! on a separate connection as the connecting (owner) role.

mod one_trip;
mod sql;

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use self::one_trip::CommitNew;
use super::query::{self, micros};
use super::{
    BlobRef, Catalog, CatalogError, CategoryUsage, FilePage, FileRecord, ListQuery, LockRefusal, PendingUpload,
    PurgedRows, Quota, TenantInfo, TenantStatus, UploadSession,
};
use crate::domain::{BucketName, ObjectKey, TenantId};

#[derive(Debug, Clone)]
pub struct PostgresCatalog {
    /// Tenant work, as `coffer_app`.
    pool: PgPool,
    /// Maintenance, as `coffer_maintenance`.
    maintenance: PgPool,
}

impl PostgresCatalog {
    /// Applies pending migrations (`migrations/postgres`), then opens the tenant pool (as role
    /// `coffer_app`) and the maintenance pool (as `coffer_maintenance`, logging in with
    /// `maintenance_url` when given), each taking its role where the login may.
    pub async fn connect(url: &str, maintenance_url: Option<&str>) -> Result<Self, CatalogError> {
        Self::connect_waiting(url, maintenance_url, DEFAULT_WAIT).await
    }

    /// [`Self::connect`] with pools that wait at most `wait` for a connection.
    pub async fn connect_waiting(
        url: &str,
        maintenance_url: Option<&str>,
        wait: Duration,
    ) -> Result<Self, CatalogError> {
        Self::ensure_schema(url).await?;
        let pool = pool_as(url, "coffer_app", 16, wait).await?;
        let maintenance = pool_as(maintenance_url.unwrap_or(url), "coffer_maintenance", 4, wait).await?;
        Ok(Self { pool, maintenance })
    }

    /// Applies pending migrations only (`coffer migrate`).
    pub async fn migrate(url: &str) -> Result<(), CatalogError> {
        let mut conn = PgConnection::connect(url).await?;
        sqlx::migrate!("migrations/postgres").run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    /// Migrates when the login may change the schema (the owner, as in a single-login setup);
    /// a login that may not (a tenant login of a hardened setup) only checks that every
    /// migration has been applied, or returns `SchemaBehind`.
    async fn ensure_schema(url: &str) -> Result<(), CatalogError> {
        let mut conn = PgConnection::connect(url).await?;
        let may_migrate: bool =
            sqlx::query_scalar("SELECT has_schema_privilege(current_user, current_schema(), 'CREATE')")
                .fetch_one(&mut conn)
                .await?;
        if may_migrate {
            conn.close().await?;
            return Self::migrate(url).await;
        }
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
        conn.close().await?;
        match sqlx::migrate!("migrations/postgres").iter().find(|m| !applied.contains(&m.version)) {
            Some(missing) => Err(CatalogError::SchemaBehind(missing.version)),
            None => Ok(()),
        }
    }

    /// A transaction in which row-level security shows `tenant`'s rows only.
    async fn tenant_tx(&self, tenant: &TenantId) -> Result<Transaction<'static, Postgres>, CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)").bind(tenant.as_str()).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// [`Self::tenant_tx`] for a lease (a resumable upload's lock or its renewal): its commit
    /// does not wait for the WAL flush. A lease lost in a server crash frees the upload, and
    /// its holder is gone with the connection; a crash loses no other commit for it.
    async fn lease_tx(&self, tenant: &TenantId) -> Result<Transaction<'static, Postgres>, CatalogError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true), set_config('synchronous_commit', 'off', true)")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// A transaction in which `blob`'s tenant's rows are visible.
    async fn blob_tx(&self, blob: &BlobRef) -> Result<Transaction<'static, Postgres>, CatalogError> {
        self.tenant_tx(blob.blob.object_key().tenant()).await
    }
}

/// How long a pool waits for a connection unless told otherwise (`COFFER_CATALOG_TIMEOUT`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// A pooled connection idle for longer than this is pinged before it is used.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A pool whose connections act as `role` where the login role is a member of it.
async fn pool_as(url: &str, role: &'static str, size: u32, wait: Duration) -> Result<PgPool, CatalogError> {
    let pool = PgPoolOptions::new()
        .max_connections(size)
        // A connection (new or pooled) within `wait`, or PoolTimedOut: while the database is
        // unreachable, requests fail fast and the pool reconnects once it is back.
        .acquire_timeout(wait)
        // sqlx pings every connection it hands out by default: a round trip to the database
        // before each statement, one more than a one-trip statement needs. Only a connection
        // that sat idle long enough to have been cut while idle (a restart, a proxy's idle
        // timeout) is pinged; one that was busy a moment ago went back to the pool after the
        // check sqlx runs on every release. A connection that breaks anyway fails its
        // statement with an I/O error, which reads retry on another connection
        // (`telemetry/retry.rs`) and which closes it.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                let member: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
                    .bind(role)
                    .fetch_one(&mut *conn)
                    .await?;
                if member {
                    sqlx::query(&format!("SET ROLE {role}")).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    Ok(pool)
}

#[async_trait]
impl Catalog for PostgresCatalog {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn record_intent(&self, pending: &PendingUpload) -> Result<(), CatalogError> {
        let mut tx = self.blob_tx(&pending.blob).await?;
        sql::insert_intent(&mut *tx, pending).await?;
        Ok(tx.commit().await?)
    }

    async fn begin_upload(&self, pending: &PendingUpload, overwrite: bool) -> Result<Option<FileRecord>, CatalogError> {
        // The intent is recorded only when the key is free or `overwrite` is on.
        let existing = one_trip::begin_upload(&self.pool, pending, overwrite).await?;
        if existing.is_some() && !overwrite {
            return Err(CatalogError::AlreadyExists);
        }
        Ok(existing)
    }

    async fn touch_intent(&self, pending: &PendingUpload) -> Result<bool, CatalogError> {
        let mut tx = self.blob_tx(&pending.blob).await?;
        let touched = sql::touch_intent(&mut *tx, pending).await?;
        tx.commit().await?;
        Ok(touched)
    }

    async fn abandon_intent(&self, blob: &BlobRef) -> Result<bool, CatalogError> {
        let mut tx = self.blob_tx(blob).await?;
        let removed = sql::delete_intent(&mut *tx, blob).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn commit_upload(
        &self,
        record: &FileRecord,
        overwrite: bool,
        quota: &Quota,
    ) -> Result<Option<FileRecord>, CatalogError> {
        let tenant = record.key.tenant();
        let key = record.key.to_string();
        if *quota == Quota::default() {
            // The common case in one round trip; an existing key changes nothing there and goes
            // on below (overwrite).
            match one_trip::commit_new(&self.pool, record).await? {
                CommitNew::Lost => return Err(CatalogError::IntentLost),
                CommitNew::Committed => return Ok(None),
                CommitNew::Exists if !overwrite => return Err(CatalogError::AlreadyExists),
                CommitNew::Exists => {}
            }
        }
        let mut tx = self.tenant_tx(tenant).await?;
        // Claims the intent: once reconcile has rolled it back, the bytes may be gone.
        if !sql::delete_intent(&mut *tx, &record.blob_ref()).await? {
            return Err(CatalogError::IntentLost);
        }
        if *quota != Quota::default() {
            // Serialises this tenant's commits while its totals are checked.
            sql::lock_tenant_quota(&mut tx, tenant).await?;
        }
        // Two rounds at most: a concurrent first insert of the key turns into an overwrite.
        let previous = loop {
            let previous = sql::select_file_for_update(&mut *tx, &key).await?;
            match &previous {
                Some(_) if !overwrite => return Err(CatalogError::AlreadyExists),
                Some(_) => break previous,
                None if sql::insert_file(&mut *tx, record).await? => break None,
                None if !overwrite => return Err(CatalogError::AlreadyExists),
                None => continue,
            }
        };
        let (files_delta, bytes_delta) = match &previous {
            Some(prev) => (0, record.size as i64 - prev.size as i64),
            None => (1, record.size as i64),
        };
        if *quota != Quota::default() && (files_delta > 0 || bytes_delta > 0) {
            let (files, bytes) = sql::tenant_totals(&mut *tx, tenant).await?;
            if !quota.allows((files + files_delta).max(0) as u64, (bytes + bytes_delta).max(0) as u64) {
                return Err(CatalogError::QuotaExceeded);
            }
        }
        if let Some(prev) = &previous {
            sql::replace_file(&mut *tx, record).await?;
            sql::enqueue_deletion(&mut *tx, &prev.blob_ref()).await?;
        }
        sql::add_usage(&mut *tx, &record.key, files_delta, bytes_delta).await?;
        tx.commit().await?;
        Ok(previous)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<FileRecord>, CatalogError> {
        one_trip::file(&self.pool, key).await
    }

    async fn list(&self, tenant: &TenantId, q: &ListQuery) -> Result<FilePage, CatalogError> {
        query::check_cursor(q)?;
        query::page(one_trip::list(&self.pool, tenant, q).await?, q)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<FileRecord, CatalogError> {
        let mut tx = self.tenant_tx(key.tenant()).await?;
        let record = sql::delete_file_returning(&mut *tx, &key.to_string()).await?.ok_or(CatalogError::NotFound)?;
        sql::enqueue_deletion(&mut *tx, &record.blob_ref()).await?;
        sql::add_usage(&mut *tx, key, -1, -(record.size as i64)).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn queued_deletions(&self, limit: u32) -> Result<Vec<BlobRef>, CatalogError> {
        sql::queued_deletions(&self.maintenance, limit).await
    }

    async fn deletion_done(&self, blob: &BlobRef) -> Result<(), CatalogError> {
        sql::dequeue_deletion(&self.maintenance, blob).await
    }

    async fn usage(&self, tenant: &TenantId) -> Result<Vec<CategoryUsage>, CatalogError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let usage = sql::usage(&mut *tx, tenant).await?;
        tx.commit().await?;
        Ok(usage)
    }

    async fn tenant_status(&self, tenant: &TenantId) -> Result<Option<TenantStatus>, CatalogError> {
        one_trip::tenant_status(&self.pool, tenant).await
    }

    async fn add_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let added = sql::add_tenant(&mut *tx, tenant, micros(&crate::util::now_micros())).await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn set_tenant_status(&self, tenant: &TenantId, status: TenantStatus) -> Result<(), CatalogError> {
        sql::set_tenant_status(&self.maintenance, tenant, status).await
    }

    async fn list_tenants(&self) -> Result<Vec<TenantInfo>, CatalogError> {
        sql::list_tenants(&self.maintenance).await
    }

    async fn stale_intents(
        &self,
        before: DateTime<Utc>,
        after: Option<&PendingUpload>,
        limit: u32,
    ) -> Result<Vec<PendingUpload>, CatalogError> {
        sql::stale_intents(&self.maintenance, before, after, limit).await
    }

    async fn intent_under(&self, bucket: &BucketName, prefix: &str) -> Result<bool, CatalogError> {
        sql::intent_under(&self.maintenance, bucket, prefix).await
    }

    async fn referenced(&self, bucket: &BucketName, blob_keys: &[String]) -> Result<HashSet<String>, CatalogError> {
        sql::referenced(&self.maintenance, bucket, blob_keys).await
    }

    async fn purge_tenant_rows(&self, tenant: &TenantId) -> Result<PurgedRows, CatalogError> {
        // As the tenant, under row-level security: the tenant's own rows are all it can reach.
        let mut tx = self.tenant_tx(tenant).await?;
        let purged = sql::purge_tenant_rows(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(purged)
    }

    async fn remove_tenant(&self, tenant: &TenantId) -> Result<bool, CatalogError> {
        sql::remove_tenant(&self.maintenance, tenant).await
    }

    async fn scan_files(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileRecord>, CatalogError> {
        sql::scan_files(&self.maintenance, after.unwrap_or(""), limit).await
    }

    async fn create_session(&self, session: &UploadSession) -> Result<(), CatalogError> {
        let mut tx = self.tenant_tx(session.tenant()).await?;
        sql::session::create_with_intent(&mut tx, session).await?;
        Ok(tx.commit().await?)
    }

    async fn session(&self, tenant: &TenantId, id: &str) -> Result<Option<UploadSession>, CatalogError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let found = sql::session::select(&mut *tx, tenant, id).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn lock_session(
        &self,
        tenant: &TenantId,
        id: &str,
        offset: u64,
        token: &str,
        lease: Duration,
    ) -> Result<Result<UploadSession, LockRefusal>, CatalogError> {
        let mut tx = self.lease_tx(tenant).await?;
        let (now, until) = query::lease_window(lease);
        // The UPDATE takes the row lock: of two instances racing for one offset, the second
        // waits, then finds the lock taken and matches no row.
        let outcome = match sql::session::lock(&mut *tx, tenant, id, offset, token, until, now).await? {
            Some(locked) => Ok(locked),
            None => Err(query::lock_refusal(sql::session::select(&mut *tx, tenant, id).await?, offset)),
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn renew_session_lock(
        &self,
        tenant: &TenantId,
        id: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, CatalogError> {
        // A release (no lease left) is durable, as in SQLite.
        let mut tx = if lease.is_zero() { self.tenant_tx(tenant).await? } else { self.lease_tx(tenant).await? };
        let renewed = sql::session::renew(&mut *tx, tenant, id, token, query::lease_window(lease).1).await?;
        tx.commit().await?;
        Ok(renewed)
    }

    async fn save_session(&self, session: &UploadSession, token: &str, release: bool) -> Result<bool, CatalogError> {
        let mut tx = self.tenant_tx(session.tenant()).await?;
        let saved = sql::save_session(&mut tx, session, token, release).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn remove_session(
        &self,
        tenant: &TenantId,
        id: &str,
        token: Option<&str>,
    ) -> Result<Option<UploadSession>, CatalogError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let removed = sql::session::delete_with_intent(&mut tx, tenant, id, token).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn expired_sessions(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<UploadSession>, CatalogError> {
        sql::session::expired(&self.maintenance, micros(&before), limit).await
    }

    async fn reserved_bytes(&self, tenant: &TenantId) -> Result<u64, CatalogError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let reserved = sql::session::reserved(&mut *tx, tenant).await?;
        tx.commit().await?;
        Ok(reserved)
    }

    async fn claim_upload_link(
        &self,
        tenant: &TenantId,
        link: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let now = micros(&Utc::now());
        let claimed = sql::session::claim_link(&mut tx, tenant, link, micros(&expires_at), now).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn release_upload_link(&self, tenant: &TenantId, link: &str) -> Result<(), CatalogError> {
        let mut tx = self.tenant_tx(tenant).await?;
        sql::session::release_link(&mut *tx, tenant, link).await?;
        Ok(tx.commit().await?)
    }
}
