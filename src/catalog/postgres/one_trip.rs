//! The request path's hottest statements in one round trip each: calls of the functions of
//! migration `0007_one_trip_tenant_statements.sql`, which set the tenant for their own implicit
//! transaction and then run under row-level security like any tenant transaction. Run them on
//! the pool, never inside a transaction.

use std::sync::LazyLock;

use sqlx::PgPool;

use crate::catalog::cursor::Cursor;
use crate::catalog::query::{FILE_COLUMNS, bind_file_row, micros, prefix_end};
use crate::catalog::record::RawRecord;
use crate::catalog::{CatalogError, FileRecord, ListQuery, PendingUpload, SortOrder, TenantStatus};
use crate::domain::{ObjectKey, TenantId};

/// `SELECT {FILE_COLUMNS} FROM $function(...)`, made once.
macro_rules! rows_of {
    ($name:ident, $call:literal) => {
        static $name: LazyLock<String> = LazyLock::new(|| format!("SELECT {FILE_COLUMNS} FROM {}", $call));
    };
}
rows_of!(COFFER_FILE, "coffer_file($1, $2)");
rows_of!(COFFER_LIST, "coffer_list($1, $2, $3, $4, $5, $6, $7, $8, $9)");
rows_of!(COFFER_BEGIN_UPLOAD, "coffer_begin_upload($1, $2, $3, $4, $5, $6, $7)");

pub async fn file(pool: &PgPool, key: &ObjectKey) -> Result<Option<FileRecord>, CatalogError> {
    let row: Option<RawRecord> =
        sqlx::query_as(&COFFER_FILE).bind(key.tenant().as_str()).bind(key.to_string()).fetch_optional(pool).await?;
    row.map(RawRecord::into_record).transpose()
}

/// The rows of one page (one more than its limit, as `query::page` expects).
pub async fn list(pool: &PgPool, tenant: &TenantId, q: &ListQuery) -> Result<Vec<RawRecord>, CatalogError> {
    let (t, f, k) = match &q.cursor {
        Some(Cursor::Newest { t, k }) => (Some(*t), None, Some(k.as_str())),
        Some(Cursor::Name { f, k }) => (None, Some(f.as_str()), Some(k.as_str())),
        None => (None, None, None),
    };
    let rows = sqlx::query_as(&COFFER_LIST)
        .bind(tenant.as_str())
        .bind(q.category.as_ref().map(|c| c.as_str()))
        .bind(q.sort == SortOrder::Name)
        .bind(q.prefix.as_deref())
        .bind(q.prefix.as_deref().map(prefix_end))
        .bind(t)
        .bind(f)
        .bind(k)
        .bind(i64::from(q.limit) + 1)
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

pub async fn begin_upload(
    pool: &PgPool,
    p: &PendingUpload,
    overwrite: bool,
) -> Result<Option<FileRecord>, CatalogError> {
    let key = p.blob.blob.object_key();
    let row: Option<RawRecord> = sqlx::query_as(&COFFER_BEGIN_UPLOAD)
        .bind(key.tenant().as_str())
        .bind(key.to_string())
        .bind(p.blob.bucket.as_str())
        .bind(p.blob.blob.to_string())
        .bind(micros(&p.started_at))
        .bind(micros(&p.alive_until))
        .bind(overwrite)
        .fetch_optional(pool)
        .await?;
    row.map(RawRecord::into_record).transpose()
}

/// What [`commit_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitNew {
    Committed,
    /// The intent was gone: nothing changed.
    Lost,
    /// The key has a row: nothing changed (the intent is still there).
    Exists,
}

/// Commits a new key's row without a quota check: claims the intent, inserts the row, counts it.
pub async fn commit_new(pool: &PgPool, r: &FileRecord) -> Result<CommitNew, CatalogError> {
    let call = sqlx::query_scalar("SELECT coffer_commit_new($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
    let outcome: String = bind_file_row!(call, r).fetch_one(pool).await?;
    match outcome.as_str() {
        "committed" => Ok(CommitNew::Committed),
        "lost" => Ok(CommitNew::Lost),
        "exists" => Ok(CommitNew::Exists),
        other => Err(CatalogError::Corrupt(format!("coffer_commit_new answered {other:?}"))),
    }
}

pub async fn tenant_status(pool: &PgPool, tenant: &TenantId) -> Result<Option<TenantStatus>, CatalogError> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT coffer_tenant_status($1)").bind(tenant.as_str()).fetch_optional(pool).await?;
    status.as_deref().map(TenantStatus::parse).transpose()
}
