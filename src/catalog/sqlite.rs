//! SQLite catalog (the embedded default). WAL journal with `synchronous = FULL`, so a committed
//! row survives power loss; writers serialise on SQLite's lock with a busy timeout.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{BlobRef, Catalog, CatalogError, Cursor, FilePage, FileRecord, ListQuery, PendingUpload, SortOrder};
use crate::domain::{BlobKey, BucketName, ObjectKey, TenantId};

#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
}

const COLUMNS: &str = "key, original_filename, bucket, blob_key, content_type, size, sha256, created_at";

impl SqliteCatalog {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> Result<DateTime<Utc>, CatalogError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| CatalogError::Corrupt(format!("timestamp {us}")))
}

fn corrupt(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Corrupt(e.to_string())
}

fn row_to_record(row: &SqliteRow) -> Result<FileRecord, CatalogError> {
    let key = ObjectKey::parse(row.try_get("key")?).map_err(corrupt)?;
    let blob = BlobKey::parse(row.try_get("blob_key")?).map_err(corrupt)?;
    let size: i64 = row.try_get("size")?;
    Ok(FileRecord {
        key,
        original_filename: row.try_get("original_filename")?,
        bucket: BucketName::parse(row.try_get("bucket")?).map_err(corrupt)?,
        blob,
        content_type: row.try_get("content_type")?,
        size: u64::try_from(size).map_err(corrupt)?,
        sha256: row.try_get("sha256")?,
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

fn blob_ref(row: &SqliteRow) -> Result<BlobRef, CatalogError> {
    Ok(BlobRef {
        bucket: BucketName::parse(row.try_get("bucket")?).map_err(corrupt)?,
        blob: BlobKey::parse(row.try_get("blob_key")?).map_err(corrupt)?,
    })
}

async fn select_by_key<'e>(exec: impl sqlx::SqliteExecutor<'e>, key: &str) -> Result<Option<FileRecord>, CatalogError> {
    let sql = format!("SELECT {COLUMNS} FROM files WHERE key = ?");
    let row = sqlx::query(&sql).bind(key).fetch_optional(exec).await?;
    row.as_ref().map(row_to_record).transpose()
}

async fn insert_file<'e>(exec: impl sqlx::SqliteExecutor<'e>, r: &FileRecord) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO files (key, tenant_id, category, filename, original_filename, bucket, blob_key,
                            content_type, size, sha256, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.key.to_string())
    .bind(r.key.tenant().as_str())
    .bind(r.key.category().as_str())
    .bind(r.key.filename().as_str())
    .bind(&r.original_filename)
    .bind(r.bucket.as_str())
    .bind(r.blob.to_string())
    .bind(&r.content_type)
    .bind(r.size as i64)
    .bind(&r.sha256)
    .bind(micros(&r.created_at))
    .execute(exec)
    .await?;
    Ok(())
}

async fn delete_file_row<'e>(exec: impl sqlx::SqliteExecutor<'e>, key: &str) -> Result<u64, CatalogError> {
    let done = sqlx::query("DELETE FROM files WHERE key = ?").bind(key).execute(exec).await?;
    Ok(done.rows_affected())
}

async fn enqueue_deletion<'e>(exec: impl sqlx::SqliteExecutor<'e>, blob: &BlobRef) -> Result<(), CatalogError> {
    sqlx::query("INSERT OR IGNORE INTO blob_deletions (bucket, blob_key, enqueued_at) VALUES (?, ?, ?)")
        .bind(blob.bucket.as_str())
        .bind(blob.blob.to_string())
        .bind(micros(&crate::util::now_micros()))
        .execute(exec)
        .await?;
    Ok(())
}

async fn delete_intent<'e>(exec: impl sqlx::SqliteExecutor<'e>, blob: &BlobRef) -> Result<(), CatalogError> {
    sqlx::query("DELETE FROM pending_uploads WHERE bucket = ? AND blob_key = ?")
        .bind(blob.bucket.as_str())
        .bind(blob.blob.to_string())
        .execute(exec)
        .await?;
    Ok(())
}

/// Builds the keyset-paginated listing query for one page (plus one row to detect more).
fn list_query<'a>(tenant: &'a TenantId, q: &'a ListQuery) -> QueryBuilder<'a, Sqlite> {
    let mut b = QueryBuilder::new(format!("SELECT {COLUMNS}, filename FROM files WHERE tenant_id = "));
    b.push_bind(tenant.as_str());
    if let Some(c) = &q.category {
        b.push(" AND category = ").push_bind(c.as_str());
    }
    if let Some(p) = &q.prefix {
        // A range on the index instead of LIKE: all names starting with `p`.
        b.push(" AND filename >= ").push_bind(p.as_str());
        b.push(" AND filename < ").push_bind(format!("{p}\u{10FFFF}"));
    }
    match &q.cursor {
        Some(Cursor::Newest { t, k }) => {
            b.push(" AND (created_at, key) < (").push_bind(*t).push(", ").push_bind(k.as_str()).push(")");
        }
        Some(Cursor::Name { f, k }) => {
            b.push(" AND (filename, key) > (").push_bind(f.as_str()).push(", ").push_bind(k.as_str()).push(")");
        }
        None => {}
    }
    b.push(match q.sort {
        SortOrder::Newest => " ORDER BY created_at DESC, key DESC",
        SortOrder::Name => " ORDER BY filename ASC, key ASC",
    });
    b.push(" LIMIT ").push_bind(i64::from(q.limit) + 1);
    b
}

pub(super) fn cursor_after(sort: SortOrder, last: &FileRecord) -> Cursor {
    match sort {
        SortOrder::Newest => Cursor::Newest { t: last.created_at.timestamp_micros(), k: last.key.to_string() },
        SortOrder::Name => Cursor::Name { f: last.key.filename().to_string(), k: last.key.to_string() },
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

    #[tracing::instrument(skip(self), fields(blob = %pending.blob.blob))]
    async fn record_intent(&self, pending: &PendingUpload) -> Result<(), CatalogError> {
        sqlx::query("INSERT INTO pending_uploads (bucket, blob_key, started_at) VALUES (?, ?, ?)")
            .bind(pending.blob.bucket.as_str())
            .bind(pending.blob.blob.to_string())
            .bind(micros(&pending.started_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn abandon_intent(&self, blob: &BlobRef) -> Result<(), CatalogError> {
        delete_intent(&self.pool, blob).await
    }

    #[tracing::instrument(skip(self, record), fields(tenant = %record.key.tenant(), key = %record.key))]
    async fn commit_upload(&self, record: &FileRecord, overwrite: bool) -> Result<Option<FileRecord>, CatalogError> {
        // BEGIN IMMEDIATE: take the write lock first so the read below cannot go stale.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let key = record.key.to_string();
        let previous = select_by_key(&mut *tx, &key).await?;
        if let Some(prev) = &previous {
            if !overwrite {
                return Err(CatalogError::AlreadyExists);
            }
            delete_file_row(&mut *tx, &key).await?;
            enqueue_deletion(&mut *tx, &prev.blob_ref()).await?;
        }
        insert_file(&mut *tx, record).await?;
        delete_intent(&mut *tx, &record.blob_ref()).await?;
        tx.commit().await?;
        Ok(previous)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<FileRecord>, CatalogError> {
        select_by_key(&self.pool, &key.to_string()).await
    }

    #[tracing::instrument(skip(self, query), fields(tenant = %tenant))]
    async fn list(&self, tenant: &TenantId, query: &ListQuery) -> Result<FilePage, CatalogError> {
        if query.cursor.as_ref().is_some_and(|c| c.sort() != query.sort) {
            return Err(CatalogError::InvalidCursor);
        }
        let rows = list_query(tenant, query).build().fetch_all(&self.pool).await?;
        let mut files = rows.iter().map(row_to_record).collect::<Result<Vec<_>, _>>()?;
        let next = if files.len() > query.limit as usize {
            files.truncate(query.limit as usize);
            files.last().map(|last| cursor_after(query.sort, last))
        } else {
            None
        };
        Ok(FilePage { files, next })
    }

    #[tracing::instrument(skip(self), fields(tenant = %key.tenant()))]
    async fn delete(&self, key: &ObjectKey) -> Result<FileRecord, CatalogError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let text = key.to_string();
        let record = select_by_key(&mut *tx, &text).await?.ok_or(CatalogError::NotFound)?;
        delete_file_row(&mut *tx, &text).await?;
        enqueue_deletion(&mut *tx, &record.blob_ref()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn queued_deletions(&self, limit: u32) -> Result<Vec<BlobRef>, CatalogError> {
        let rows = sqlx::query("SELECT bucket, blob_key FROM blob_deletions ORDER BY enqueued_at LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(blob_ref).collect()
    }

    async fn deletion_done(&self, blob: &BlobRef) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM blob_deletions WHERE bucket = ? AND blob_key = ?")
            .bind(blob.bucket.as_str())
            .bind(blob.blob.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
