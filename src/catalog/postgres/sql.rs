//! PostgreSQL statements: the shared ones ([`crate::catalog::statements`]) and PostgreSQL's
//! own (row locks, the per-tenant advisory lock, array binding).

use std::collections::HashSet;

use sqlx::{PgExecutor, Postgres, Transaction};

use crate::catalog::UploadSession;
use crate::catalog::session_statements::{bind_progress, save_progress_sql};

crate::catalog::session_statements::session_statements!(PgExecutor, sqlx::Postgres);
crate::catalog::statements::shared_statements!(PgExecutor, sqlx::Postgres);

/// Records the progress of the holder of an upload's lock ([`save_progress_sql!`]), then its
/// engine state and, while it is unfinished, its intent's mark and lease (moved to the new
/// expiry); `false` when `token` no longer holds the lock (nothing changed).
pub async fn save_session(
    tx: &mut sqlx::PgConnection,
    s: &UploadSession,
    token: &str,
    release: bool,
) -> Result<bool, CatalogError> {
    let done = bind_progress!(sqlx::query(save_progress_sql!()), s.clone(), token.to_owned(), release)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE resumable_upload_states SET engine_state = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(&s.engine_state)
        .bind(s.tenant().as_str())
        .bind(&s.id)
        .execute(&mut *tx)
        .await?;
    if s.completed_at.is_none() {
        touch_intent(&mut *tx, &s.intent()).await?;
    }
    Ok(true)
}

pub async fn select_file_for_update<'e>(
    db: impl PgExecutor<'e>,
    key: &str,
) -> Result<Option<FileRecord>, CatalogError> {
    let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE key = $1 FOR UPDATE");
    let row: Option<RawRecord> = sqlx::query_as(&sql).bind(key).fetch_optional(db).await?;
    row.map(RawRecord::into_record).transpose()
}

/// Serialises `tenant`'s quota-checked commits until the transaction ends, on every instance:
/// one transaction-scoped advisory lock per tenant. (Locking the tenant's usage rows would not:
/// a new tenant's first commits in different categories each insert a row the others cannot
/// see yet.) The first key names coffer's lock class, so other users of advisory locks on the
/// same database do not collide with it.
pub async fn lock_tenant_quota(tx: &mut Transaction<'static, Postgres>, tenant: &TenantId) -> Result<(), CatalogError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(QUOTA_LOCK_CLASS)
        .bind(tenant.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn referenced<'e>(
    db: impl PgExecutor<'e>,
    bucket: &BucketName,
    keys: &[String],
) -> Result<HashSet<String>, CatalogError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT blob_key FROM files WHERE bucket = $1 AND blob_key = ANY($2)
         UNION SELECT blob_key FROM pending_uploads WHERE bucket = $1 AND blob_key = ANY($2)",
    )
    .bind(bucket.as_str())
    .bind(keys)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The advisory-lock class of per-tenant quota locks ("cofq").
const QUOTA_LOCK_CLASS: i32 = 0x636f_6671;
