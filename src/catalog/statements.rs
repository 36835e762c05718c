//! The catalog's SQL, written once for both engines.
//!
//! Each statement is one small function whose text both SQLite and PostgreSQL accept: `$N`
//! placeholders (sqlx's SQLite driver binds `$N` by number), `ON CONFLICT … DO NOTHING`,
//! `RETURNING`, row-value comparisons, `CAST(… AS BIGINT)`. [`shared_statements!`] stamps the
//! functions out for one engine's executor type, so each engine's `sql.rs` holds only its true
//! dialect differences (array binding, row locks, advisory locks). A macro rather than generic
//! functions: sqlx's generic executor bounds (every bound type's `Encode` and `Type` for the
//! database, its arguments' `IntoArguments`) would outweigh the statements themselves.

/// Expands to the shared statement functions for `$executor` (`SqliteExecutor`, `PgExecutor`).
macro_rules! shared_statements {
    ($executor:ident, $db:ty) => {
        type Db = $db;
        use crate::catalog::query::{FILE_COLUMNS, micros};
        use crate::catalog::record::RawBlobRef;
        use crate::catalog::{
            BlobRef, CatalogError, CategoryUsage, FileRecord, PendingUpload, RawRecord, TenantInfo, TenantStatus,
        };
        use crate::domain::{BucketName, ObjectKey, TenantId};

        /// Inserts the row; `false` when the key exists (possibly committed meanwhile by another
        /// instance).
        pub async fn insert_file<'e>(db: impl $executor<'e>, r: &FileRecord) -> Result<bool, CatalogError> {
            let insert = sqlx::query(
                "INSERT INTO files (key, tenant_id, category, filename, original_filename, bucket, blob_key,
                                    content_type, size, sha256, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (key) DO NOTHING",
            );
            let done = crate::catalog::query::bind_file_row!(insert, r).execute(db).await?;
            Ok(done.rows_affected() == 1)
        }

        /// Points an existing key at a new version.
        pub async fn replace_file<'e>(db: impl $executor<'e>, r: &FileRecord) -> Result<(), CatalogError> {
            sqlx::query(
                "UPDATE files SET original_filename = $2, bucket = $3, blob_key = $4, content_type = $5, size = $6,
                                  sha256 = $7, created_at = $8
                 WHERE key = $1",
            )
            .bind(r.key.to_string())
            .bind(&r.original_filename)
            .bind(r.bucket.as_str())
            .bind(r.blob.to_string())
            .bind(&r.content_type)
            .bind(r.size as i64)
            .bind(&r.sha256)
            .bind(micros(&r.created_at))
            .execute(db)
            .await?;
            Ok(())
        }

        pub async fn delete_file_returning<'e>(
            db: impl $executor<'e>,
            key: &str,
        ) -> Result<Option<FileRecord>, CatalogError> {
            let sql = format!("DELETE FROM files WHERE key = $1 RETURNING {FILE_COLUMNS}");
            let row: Option<RawRecord> = sqlx::query_as(&sql).bind(key).fetch_optional(db).await?;
            row.map(RawRecord::into_record).transpose()
        }

        /// Adds the deltas to the key's tenant and category (creating the row when growing; the
        /// CHECK constraints reject an insert of negative values even when it would conflict).
        pub async fn add_usage<'e>(
            db: impl $executor<'e>,
            key: &ObjectKey,
            files: i64,
            bytes: i64,
        ) -> Result<(), CatalogError> {
            let sql = if files < 0 || bytes < 0 {
                "UPDATE tenant_usage SET files = files + $3, bytes = bytes + $4 WHERE tenant_id = $1 AND category = $2"
            } else {
                "INSERT INTO tenant_usage (tenant_id, category, files, bytes) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, category)
                 DO UPDATE SET files = tenant_usage.files + excluded.files, bytes = tenant_usage.bytes + excluded.bytes"
            };
            sqlx::query(sql)
                .bind(key.tenant().as_str())
                .bind(key.category().as_str())
                .bind(files)
                .bind(bytes)
                .execute(db)
                .await?;
            Ok(())
        }

        pub async fn tenant_totals<'e>(db: impl $executor<'e>, tenant: &TenantId) -> Result<(i64, i64), CatalogError> {
            let row: (i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(files), 0) AS BIGINT), CAST(COALESCE(SUM(bytes), 0) AS BIGINT)
                 FROM tenant_usage WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .fetch_one(db)
            .await?;
            Ok(row)
        }

        pub async fn usage<'e>(db: impl $executor<'e>, tenant: &TenantId) -> Result<Vec<CategoryUsage>, CatalogError> {
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT category, files, bytes FROM tenant_usage WHERE tenant_id = $1 AND files > 0 ORDER BY category",
            )
            .bind(tenant.as_str())
            .fetch_all(db)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(category, f, b)| CategoryUsage { category, files: f as u64, bytes: b as u64 })
                .collect())
        }

        pub async fn insert_intent<'e>(db: impl $executor<'e>, p: &PendingUpload) -> Result<(), CatalogError> {
            sqlx::query(
                "INSERT INTO pending_uploads (bucket, blob_key, started_at, alive_until) VALUES ($1, $2, $3, $4)",
            )
            .bind(p.blob.bucket.as_str())
            .bind(p.blob.blob.to_string())
            .bind(micros(&p.started_at))
            .bind(micros(&p.alive_until))
            .execute(db)
            .await?;
            Ok(())
        }

        /// Moves an upload's intent to its new mark and lease (it is still being written);
        /// `false` when it is gone.
        pub async fn touch_intent<'e>(db: impl $executor<'e>, p: &PendingUpload) -> Result<bool, CatalogError> {
            let done = sqlx::query(
                "UPDATE pending_uploads SET started_at = $1, alive_until = $2 WHERE bucket = $3 AND blob_key = $4",
            )
            .bind(micros(&p.started_at))
            .bind(micros(&p.alive_until))
            .bind(p.blob.bucket.as_str())
            .bind(p.blob.blob.to_string())
            .execute(db)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// Removes an upload's intent; `true` when this call removed it.
        pub async fn delete_intent<'e>(db: impl $executor<'e>, blob: &BlobRef) -> Result<bool, CatalogError> {
            let done = sqlx::query("DELETE FROM pending_uploads WHERE bucket = $1 AND blob_key = $2")
                .bind(blob.bucket.as_str())
                .bind(blob.blob.to_string())
                .execute(db)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        /// Intents whose last mark and lease both lie before `before`, in keyset order after
        /// `after` (`started_at`, bucket, blob key).
        pub async fn stale_intents<'e>(
            db: impl $executor<'e>,
            before: chrono::DateTime<chrono::Utc>,
            after: Option<&PendingUpload>,
            limit: u32,
        ) -> Result<Vec<PendingUpload>, CatalogError> {
            let after = after.map(|p| (micros(&p.started_at), p.blob.bucket.to_string(), p.blob.blob.to_string()));
            let after = after.unwrap_or((i64::MIN, String::new(), String::new()));
            let rows: Vec<RawBlobRef> = sqlx::query_as(
                "SELECT bucket, blob_key, started_at AS at, alive_until FROM pending_uploads
                 WHERE started_at < $1 AND alive_until < $1 AND (started_at, bucket, blob_key) > ($2, $3, $4)
                 ORDER BY started_at, bucket, blob_key LIMIT $5",
            )
            .bind(micros(&before))
            .bind(after.0)
            .bind(after.1)
            .bind(after.2)
            .bind(i64::from(limit))
            .fetch_all(db)
            .await?;
            rows.into_iter().map(RawBlobRef::into_pending).collect()
        }

        /// Whether a pending intent in `bucket` points under `prefix`.
        pub async fn intent_under<'e>(
            db: impl $executor<'e>,
            bucket: &BucketName,
            prefix: &str,
        ) -> Result<bool, CatalogError> {
            let found: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pending_uploads
                                WHERE bucket = $1 AND substr(blob_key, 1, length($2)) = $2)",
            )
            .bind(bucket.as_str())
            .bind(prefix)
            .fetch_one(db)
            .await?;
            Ok(found)
        }

        pub async fn enqueue_deletion<'e>(db: impl $executor<'e>, blob: &BlobRef) -> Result<(), CatalogError> {
            sqlx::query(
                "INSERT INTO blob_deletions (bucket, blob_key, enqueued_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(blob.bucket.as_str())
            .bind(blob.blob.to_string())
            .bind(micros(&crate::util::now_micros()))
            .execute(db)
            .await?;
            Ok(())
        }

        pub async fn queued_deletions<'e>(db: impl $executor<'e>, limit: u32) -> Result<Vec<BlobRef>, CatalogError> {
            let rows: Vec<RawBlobRef> = sqlx::query_as(
                "SELECT bucket, blob_key, enqueued_at AS at FROM blob_deletions ORDER BY enqueued_at LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(db)
            .await?;
            rows.into_iter().map(RawBlobRef::into_ref).collect()
        }

        pub async fn dequeue_deletion<'e>(db: impl $executor<'e>, blob: &BlobRef) -> Result<(), CatalogError> {
            sqlx::query("DELETE FROM blob_deletions WHERE bucket = $1 AND blob_key = $2")
                .bind(blob.bucket.as_str())
                .bind(blob.blob.to_string())
                .execute(db)
                .await?;
            Ok(())
        }

        pub async fn scan_files<'e>(
            db: impl $executor<'e>,
            after: &str,
            limit: u32,
        ) -> Result<Vec<FileRecord>, CatalogError> {
            let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE key > $1 ORDER BY key LIMIT $2");
            let rows: Vec<RawRecord> = sqlx::query_as(&sql).bind(after).bind(i64::from(limit)).fetch_all(db).await?;
            rows.into_iter().map(RawRecord::into_record).collect()
        }

        /// Registers `t` as active; `false` when it was known already.
        pub async fn add_tenant<'e>(db: impl $executor<'e>, t: &TenantId, now: i64) -> Result<bool, CatalogError> {
            let done = sqlx::query(
                "INSERT INTO tenants (tenant_id, status, created_at) VALUES ($1, 'active', $2) ON CONFLICT DO NOTHING",
            )
            .bind(t.as_str())
            .bind(now)
            .execute(db)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        pub async fn set_tenant_status<'e>(
            db: impl $executor<'e>,
            t: &TenantId,
            s: TenantStatus,
        ) -> Result<(), CatalogError> {
            let done = sqlx::query("UPDATE tenants SET status = $1 WHERE tenant_id = $2")
                .bind(s.as_str())
                .bind(t.as_str())
                .execute(db)
                .await?;
            if done.rows_affected() == 0 { Err(CatalogError::NotFound) } else { Ok(()) }
        }

        pub async fn list_tenants<'e>(db: impl $executor<'e>) -> Result<Vec<TenantInfo>, CatalogError> {
            let rows: Vec<(String, String, i64)> =
                sqlx::query_as("SELECT tenant_id, status, created_at FROM tenants ORDER BY tenant_id")
                    .fetch_all(db)
                    .await?;
            crate::catalog::tenant::tenant_infos(rows)
        }

        /// Removes every row of `t` but its registration (`coffer tenant purge`).
        pub async fn purge_tenant_rows(
            tx: &mut <Db as sqlx::Database>::Connection,
            t: &TenantId,
        ) -> Result<crate::catalog::PurgedRows, CatalogError> {
            let prefix = format!("tenant-{t}/");
            let by_blob = |table: &str| format!("DELETE FROM {table} WHERE substr(blob_key, 1, length($1)) = $1");
            let files = sqlx::query("DELETE FROM files WHERE tenant_id = $1").bind(t.as_str()).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM tenant_usage WHERE tenant_id = $1").bind(t.as_str()).execute(&mut *tx).await?;
            let pending = sqlx::query(&by_blob("pending_uploads")).bind(&prefix).execute(&mut *tx).await?;
            let queued = sqlx::query(&by_blob("blob_deletions")).bind(&prefix).execute(&mut *tx).await?;
            let resumable = session::purge(&mut *tx, t).await?;
            session::purge_links(&mut *tx, t).await?;
            Ok(crate::catalog::PurgedRows {
                resumable_uploads: resumable,
                files: files.rows_affected(),
                pending_uploads: pending.rows_affected(),
                queued_deletions: queued.rows_affected(),
            })
        }

        pub async fn remove_tenant<'e>(db: impl $executor<'e>, t: &TenantId) -> Result<bool, CatalogError> {
            let done = sqlx::query("DELETE FROM tenants WHERE tenant_id = $1").bind(t.as_str()).execute(db).await?;
            Ok(done.rows_affected() == 1)
        }
    };
}

pub(crate) use shared_statements;
