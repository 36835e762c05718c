//! PostgreSQL statements: the shared ones ([`crate::catalog::statements`]) and PostgreSQL's
//! own (row locks, the per-tenant advisory lock, array binding).

use std::collections::HashSet;

use sqlx::{PgExecutor, Postgres, Transaction};

crate::catalog::session_statements::session_statements!(PgExecutor, sqlx::Postgres);
crate::catalog::statements::shared_statements!(PgExecutor, sqlx::Postgres);

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
