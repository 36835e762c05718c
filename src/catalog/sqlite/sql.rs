//! SQLite statements: the shared ones ([`crate::catalog::statements`]) and SQLite's own.

use std::collections::HashSet;

use sqlx::SqliteExecutor;
use sqlx::sqlite::SqliteRow;

use super::writer::{Bind, Script, script};
use crate::catalog::UploadSession;
use crate::catalog::session_statements::{bind_progress, save_progress_sql};

crate::catalog::session_statements::session_statements!(SqliteExecutor, sqlx::Sqlite);
crate::catalog::statements::shared_statements!(SqliteExecutor, sqlx::Sqlite);

pub async fn select_file<'e>(db: impl SqliteExecutor<'e>, key: &str) -> Result<Option<FileRecord>, CatalogError> {
    let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE key = $1");
    let row: Option<RawRecord> = sqlx::query_as(&sql).bind(key).fetch_optional(db).await?;
    row.map(RawRecord::into_record).transpose()
}

pub async fn tenant_status<'e>(
    db: impl SqliteExecutor<'e>,
    t: &TenantId,
) -> Result<Option<TenantStatus>, CatalogError> {
    let s: Option<String> = sqlx::query_scalar("SELECT status FROM tenants WHERE tenant_id = $1")
        .bind(t.as_str())
        .fetch_optional(db)
        .await?;
    s.as_deref().map(TenantStatus::parse).transpose()
}

/// Which of `keys` a file row or a pending intent of `bucket` points to, in one query (the keys
/// travel as a JSON array).
pub async fn referenced<'e>(
    db: impl SqliteExecutor<'e>,
    bucket: &BucketName,
    keys: &[String],
) -> Result<HashSet<String>, CatalogError> {
    let keys = serde_json::to_string(keys).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT k.value FROM json_each($2) AS k
         WHERE EXISTS (SELECT 1 FROM files f WHERE f.bucket = $1 AND f.blob_key = k.value)
            OR EXISTS (SELECT 1 FROM pending_uploads p WHERE p.bucket = $1 AND p.blob_key = k.value)",
    )
    .bind(bucket.as_str())
    .bind(keys)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Whether an upload's intent is still recorded.
pub async fn intent_exists<'e>(db: impl SqliteExecutor<'e>, blob: &BlobRef) -> Result<bool, CatalogError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM pending_uploads WHERE bucket = $1 AND blob_key = $2")
        .bind(blob.bucket.as_str())
        .bind(blob.blob.to_string())
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

/// The progress of an upload saved by the holder of its lock, in one round trip (see
/// `writer.rs`): the row ([`save_progress_sql!`]), returning one row when `$10` held the lock;
/// then, only if it did (`changes()` of the statement before), the engine state and, while
/// unfinished (`$17`), the intent's mark and lease.
const SAVE_SESSION: Script = script!(
    save_progress_sql!(),
    " RETURNING 1;
     UPDATE resumable_upload_states SET engine_state = $12
     WHERE tenant_id = $8 AND id = $9 AND changes() = 1;
     UPDATE pending_uploads SET started_at = $13, alive_until = $14
     WHERE bucket = $15 AND blob_key = $16 AND $17 AND changes() = 1"
);

/// What [`SAVE_SESSION`]'s rows answer: whether the lock's holder saved.
pub type Saved = fn(&[SqliteRow]) -> bool;

/// [`SAVE_SESSION`] for `s`, as `token`, with its arguments.
pub fn save_session(s: &UploadSession, token: &str, release: bool) -> (Script, Bind, Saved) {
    let intent = s.intent();
    let (mut s, token, unfinished) = (s.clone(), token.to_owned(), s.completed_at.is_none());
    let engine_state = std::mem::take(&mut s.engine_state);
    let bind: Bind = Box::new(move |q| {
        bind_progress!(q, s, token, release)
            .bind(engine_state)
            .bind(micros(&intent.started_at))
            .bind(micros(&intent.alive_until))
            .bind(intent.blob.bucket.as_str().to_owned())
            .bind(intent.blob.blob.to_string())
            .bind(unfinished)
    });
    (SAVE_SESSION, bind, |rows| !rows.is_empty())
}
