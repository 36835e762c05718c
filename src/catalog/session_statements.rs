//! The SQL of resumable uploads, written once for both engines (see `statements.rs`).

/// Expands to the resumable-upload statement functions for `$executor`.
macro_rules! session_statements {
    ($executor:ident, $db:ty) => {
        pub mod session {
            type Db = $db;
            use crate::catalog::CatalogError;
            use crate::catalog::query::micros;
            use crate::catalog::session::{
                LOCKED_COLUMNS, ROW_COLUMNS, RawSession, SESSION_COLUMNS, SESSION_FROM, UploadSession,
            };
            use crate::domain::TenantId;
            use sqlx::$executor;

            pub async fn insert(
                tx: &mut <Db as sqlx::Database>::Connection,
                s: &UploadSession,
            ) -> Result<(), CatalogError> {
                sqlx::query(
                    "INSERT INTO resumable_uploads (id, tenant_id, bucket, blob_key, original_filename, declared_type,
                         content_type, overwrite, length, upload_offset, hasher, head, metadata,
                         created_at, expires_at, completed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL)",
                )
                .bind(&s.id)
                .bind(s.tenant().as_str())
                .bind(s.blob.bucket.as_str())
                .bind(s.blob.blob.to_string())
                .bind(&s.original_filename)
                .bind(&s.declared_type)
                .bind(&s.content_type)
                .bind(s.overwrite)
                .bind(s.length.map(|l| l as i64))
                .bind(s.offset as i64)
                .bind(&s.hasher)
                .bind(&s.head)
                .bind(&s.metadata)
                .bind(micros(&s.created_at))
                .bind(micros(&s.expires_at))
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO resumable_upload_states (id, tenant_id, engine_state) VALUES ($1, $2, $3)")
                    .bind(&s.id)
                    .bind(s.tenant().as_str())
                    .bind(&s.engine_state)
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            }

            pub async fn select<'e>(
                db: impl $executor<'e>,
                tenant: &TenantId,
                id: &str,
            ) -> Result<Option<UploadSession>, CatalogError> {
                let sql = format!("SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} WHERE u.tenant_id = $1 AND u.id = $2");
                let row: Option<RawSession> =
                    sqlx::query_as(&sql).bind(tenant.as_str()).bind(id).fetch_optional(db).await?;
                row.map(RawSession::into_session).transpose()
            }

            /// Takes the write lock of an unfinished upload at `offset` (free, or its holder's
            /// lease run out); `false` otherwise.
            pub async fn lock<'e>(
                db: impl $executor<'e>,
                tenant: &TenantId,
                id: &str,
                offset: u64,
                token: &str,
                until: i64,
                now: i64,
            ) -> Result<Option<UploadSession>, CatalogError> {
                let sql = format!(
                    "UPDATE resumable_uploads SET lock_token = $1, locked_until = $2
                     WHERE tenant_id = $3 AND id = $4 AND upload_offset = $5 AND completed_at IS NULL
                       AND (lock_token IS NULL OR locked_until < $6)
                     RETURNING {LOCKED_COLUMNS}"
                );
                let row: Option<RawSession> = sqlx::query_as(&sql)
                    .bind(token)
                    .bind(until)
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(offset as i64)
                    .bind(now)
                    .fetch_optional(db)
                    .await?;
                row.map(RawSession::into_session).transpose()
            }

            /// Extends the holder's lease; `false` when `token` no longer holds the lock.
            pub async fn renew<'e>(
                db: impl $executor<'e>,
                tenant: &TenantId,
                id: &str,
                token: &str,
                until: i64,
            ) -> Result<bool, CatalogError> {
                let done = sqlx::query(
                    "UPDATE resumable_uploads SET locked_until = $1
                     WHERE tenant_id = $2 AND id = $3 AND lock_token = $4",
                )
                .bind(until)
                .bind(tenant.as_str())
                .bind(id)
                .bind(token)
                .execute(db)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Removes the row, when it is completed or `token` holds its lock, and returns it.
            pub async fn delete(
                tx: &mut <Db as sqlx::Database>::Connection,
                tenant: &TenantId,
                id: &str,
                token: Option<&str>,
            ) -> Result<Option<UploadSession>, CatalogError> {
                let sql = format!(
                    "DELETE FROM resumable_uploads WHERE tenant_id = $1 AND id = $2
                       AND (completed_at IS NOT NULL OR lock_token = $3) RETURNING {ROW_COLUMNS}"
                );
                let row: Option<RawSession> =
                    sqlx::query_as(&sql).bind(tenant.as_str()).bind(id).bind(token).fetch_optional(&mut *tx).await?;
                let Some(mut row) = row else { return Ok(None) };
                let state: Option<String> = sqlx::query_scalar(
                    "DELETE FROM resumable_upload_states WHERE tenant_id = $1 AND id = $2 RETURNING engine_state",
                )
                .bind(tenant.as_str())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                row.engine_state =
                    state.ok_or_else(|| CatalogError::Corrupt(format!("upload {id} has no state row")))?;
                row.into_session().map(Some)
            }

            /// Uploads (of every tenant) that expired before `before`, oldest first.
            pub async fn expired<'e>(
                db: impl $executor<'e>,
                before: i64,
                limit: u32,
            ) -> Result<Vec<UploadSession>, CatalogError> {
                let sql = format!(
                    "SELECT {SESSION_COLUMNS} FROM {SESSION_FROM} WHERE u.expires_at < $1
                     ORDER BY u.expires_at, u.id LIMIT $2"
                );
                let rows: Vec<RawSession> =
                    sqlx::query_as(&sql).bind(before).bind(i64::from(limit)).fetch_all(db).await?;
                rows.into_iter().map(RawSession::into_session).collect()
            }

            /// Bytes `tenant`'s unfinished uploads hold or announced (the larger of the two).
            pub async fn reserved<'e>(db: impl $executor<'e>, tenant: &TenantId) -> Result<u64, CatalogError> {
                let total: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(SUM(CASE WHEN length IS NULL OR length < upload_offset THEN upload_offset
                                          ELSE length END) AS BIGINT)
                     FROM resumable_uploads WHERE tenant_id = $1 AND completed_at IS NULL",
                )
                .bind(tenant.as_str())
                .fetch_one(db)
                .await?;
                Ok(total.unwrap_or(0).max(0) as u64)
            }

            /// Records that upload link `link` of `tenant` is used; `false` when it was already.
            /// Forgets the tenant's used links that expired before `now` on the way.
            pub async fn claim_link(
                tx: &mut <Db as sqlx::Database>::Connection,
                tenant: &TenantId,
                link: &str,
                expires_at: i64,
                now: i64,
            ) -> Result<bool, CatalogError> {
                sqlx::query("DELETE FROM used_upload_links WHERE tenant_id = $1 AND expires_at < $2")
                    .bind(tenant.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query(
                    "INSERT INTO used_upload_links (link, tenant_id, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (link) DO NOTHING",
                )
                .bind(link)
                .bind(tenant.as_str())
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            /// Makes a claimed link usable again (its upload failed before storing anything).
            pub async fn release_link<'e>(
                db: impl $executor<'e>,
                tenant: &TenantId,
                link: &str,
            ) -> Result<(), CatalogError> {
                sqlx::query("DELETE FROM used_upload_links WHERE tenant_id = $1 AND link = $2")
                    .bind(tenant.as_str())
                    .bind(link)
                    .execute(db)
                    .await?;
                Ok(())
            }

            /// The row and its blob's intent, in the caller's transaction.
            pub async fn create_with_intent(
                tx: &mut <Db as sqlx::Database>::Connection,
                s: &UploadSession,
            ) -> Result<(), CatalogError> {
                super::insert_intent(&mut *tx, &s.intent()).await?;
                insert(&mut *tx, s).await
            }

            /// [`delete`], and the intent of an unfinished upload with it.
            pub async fn delete_with_intent(
                tx: &mut <Db as sqlx::Database>::Connection,
                tenant: &TenantId,
                id: &str,
                token: Option<&str>,
            ) -> Result<Option<UploadSession>, CatalogError> {
                let removed = delete(&mut *tx, tenant, id, token).await?;
                if let Some(s) = removed.as_ref().filter(|s| s.completed_at.is_none()) {
                    super::delete_intent(&mut *tx, &s.blob).await?;
                }
                Ok(removed)
            }

            /// Removes every upload of `tenant`; how many.
            pub async fn purge(
                tx: &mut <Db as sqlx::Database>::Connection,
                tenant: &TenantId,
            ) -> Result<u64, CatalogError> {
                sqlx::query("DELETE FROM resumable_upload_states WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM resumable_uploads WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .execute(&mut *tx)
                    .await?;
                Ok(done.rows_affected())
            }

            pub async fn purge_links<'e>(db: impl $executor<'e>, tenant: &TenantId) -> Result<(), CatalogError> {
                sqlx::query("DELETE FROM used_upload_links WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .execute(db)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use session_statements;

/// The statement with which the holder of an upload's lock records its progress (a completed
/// upload with `completed_at`) and, with `$11`, releases the lock; it changes nothing unless
/// `$10` holds the lock. Its arguments are bound by [`bind_progress!`]. Both engines run it:
/// PostgreSQL in a transaction of its statements (`postgres/sql.rs`), SQLite as the first
/// statement of a one-trip script (`sqlite/sql.rs`).
macro_rules! save_progress_sql {
    () => {
        "UPDATE resumable_uploads SET content_type = $1, length = $2, upload_offset = $3, hasher = $4,
             head = $5, expires_at = $6, completed_at = $7,
             lock_token = CASE WHEN $11 THEN NULL ELSE lock_token END,
             locked_until = CASE WHEN $11 THEN 0 ELSE locked_until END
         WHERE tenant_id = $8 AND id = $9 AND lock_token = $10"
    };
}
pub(crate) use save_progress_sql;

/// Binds `$1`…`$11` of [`save_progress_sql!`] to `$query`: the progress of upload `$s` (an
/// `UploadSession`, taken), saved as `$token` (a `String`), releasing the lock when
/// `$release`.
macro_rules! bind_progress {
    ($query:expr, $s:expr, $token:expr, $release:expr) => {{
        let s: $crate::catalog::UploadSession = $s;
        let tenant = s.tenant().as_str().to_owned();
        let expires_at = $crate::catalog::query::micros(&s.expires_at);
        let completed_at = s.completed_at.as_ref().map($crate::catalog::query::micros);
        $query
            .bind(s.content_type)
            .bind(s.length.map(|l| l as i64))
            .bind(s.offset as i64)
            .bind(s.hasher)
            .bind(s.head)
            .bind(expires_at)
            .bind(completed_at)
            .bind(tenant)
            .bind(s.id)
            .bind($token)
            .bind($release)
    }};
}
pub(crate) use bind_progress;
