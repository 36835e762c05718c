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

/// An upload's start in one statement: the key's row, and the intent recorded when the key is
/// free or `overwrite` is on.
pub async fn begin_upload<'e>(
    db: impl PgExecutor<'e>,
    p: &PendingUpload,
    overwrite: bool,
) -> Result<Option<FileRecord>, CatalogError> {
    let sql = format!(
        "WITH existing AS (
             SELECT {FILE_COLUMNS} FROM files WHERE key = $1
         ), recorded AS (
             INSERT INTO pending_uploads (bucket, blob_key, started_at, alive_until)
             SELECT $2, $3, $4, $5 WHERE $6 OR NOT EXISTS (SELECT 1 FROM existing)
         )
         SELECT {FILE_COLUMNS} FROM existing"
    );
    let row: Option<RawRecord> = sqlx::query_as(&sql)
        .bind(p.blob.blob.object_key().to_string())
        .bind(p.blob.bucket.as_str())
        .bind(p.blob.blob.to_string())
        .bind(micros(&p.started_at))
        .bind(micros(&p.alive_until))
        .bind(overwrite)
        .fetch_optional(db)
        .await?;
    row.map(RawRecord::into_record).transpose()
}

/// An upload's commit in one statement, for the common case (no quota to check): claims the
/// intent, inserts the row when the claim succeeded and the key is free, and counts the new
/// file in the usage when the row went in. Returns (claimed, inserted). Claimed but not
/// inserted means the key exists: the caller refuses, or overwrites on the general path.
pub async fn claim_and_insert<'e>(db: impl PgExecutor<'e>, r: &FileRecord) -> Result<(bool, bool), CatalogError> {
    let row: (bool, bool) = sqlx::query_as(
        "WITH claimed AS (
             DELETE FROM pending_uploads WHERE bucket = $1 AND blob_key = $2 RETURNING 1
         ), inserted AS (
             INSERT INTO files (key, tenant_id, category, filename, original_filename, bucket, blob_key,
                                content_type, size, sha256, created_at)
             SELECT $3, $4, $5, $6, $7, $1, $2, $8, $9, $10, $11 WHERE EXISTS (SELECT 1 FROM claimed)
             ON CONFLICT (key) DO NOTHING
             RETURNING 1
         ), counted AS (
             INSERT INTO tenant_usage (tenant_id, category, files, bytes)
             SELECT $4, $5, 1, $9 WHERE EXISTS (SELECT 1 FROM inserted)
             ON CONFLICT (tenant_id, category)
             DO UPDATE SET files = tenant_usage.files + excluded.files, bytes = tenant_usage.bytes + excluded.bytes
         )
         SELECT EXISTS (SELECT 1 FROM claimed), EXISTS (SELECT 1 FROM inserted)",
    )
    .bind(r.bucket.as_str())
    .bind(r.blob.to_string())
    .bind(r.key.to_string())
    .bind(r.key.tenant().as_str())
    .bind(r.key.category().as_str())
    .bind(r.key.filename().as_str())
    .bind(&r.original_filename)
    .bind(&r.content_type)
    .bind(r.size as i64)
    .bind(&r.sha256)
    .bind(micros(&r.created_at))
    .fetch_one(db)
    .await?;
    Ok(row)
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
