//! The listing query (built per request, SQLite's; PostgreSQL's is a function of its
//! migrations), row binding and timestamp conversion; the fixed statements are in
//! `statements.rs`.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite};

use super::{CatalogError, Cursor, FileRecord, ListQuery, SortOrder};
use crate::domain::TenantId;

/// Columns of [`super::RawRecord`].
pub const FILE_COLUMNS: &str = "key, original_filename, bucket, blob_key, content_type, size, sha256, created_at";

/// Binds a file row's eleven columns to `$query`, in the order every statement that writes a
/// whole row names them: key, tenant_id, category, filename, original_filename, bucket,
/// blob_key, content_type, size, sha256, created_at.
macro_rules! bind_file_row {
    ($query:expr, $r:expr) => {
        $query
            .bind($r.key.to_string())
            .bind($r.key.tenant().as_str())
            .bind($r.key.category().as_str())
            .bind($r.key.filename().as_str())
            .bind(&$r.original_filename)
            .bind($r.bucket.as_str())
            .bind($r.blob.to_string())
            .bind(&$r.content_type)
            .bind($r.size as i64)
            .bind(&$r.sha256)
            .bind($crate::catalog::query::micros(&$r.created_at))
    };
}
pub(crate) use bind_file_row;

/// The bound every name starting with `prefix` sorts below (bytewise), for an index range
/// `prefix <= filename < prefix_end(prefix)` instead of LIKE.
pub fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

pub fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> Result<DateTime<Utc>, CatalogError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| CatalogError::Corrupt(format!("timestamp {us}")))
}

/// Now and `lease` from now, in microseconds since the epoch.
pub fn lease_window(lease: std::time::Duration) -> (i64, i64) {
    let now = Utc::now();
    (micros(&now), micros(&(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))))
}

/// Why an upload could not be locked at `offset`, from its row as it is (`None`: none).
pub fn lock_refusal(current: Option<super::UploadSession>, offset: u64) -> super::LockRefusal {
    use super::LockRefusal;
    match current {
        None => LockRefusal::Missing,
        Some(s) if s.completed_at.is_some() => LockRefusal::Completed,
        Some(s) if s.offset != offset => LockRefusal::Offset(s.offset),
        Some(_) => LockRefusal::Busy,
    }
}

/// One keyset page of `tenant`'s files (plus one row, to know whether there is more), on
/// SQLite, as one JSON array of rows (`[key, original_filename, …, created_at]`, in the page's
/// order); [`rows_from_json`] reads it. The tenant filter is always the first condition.
///
/// Why one value and not a row per file: sqlx copies every column of every row out of SQLite
/// (`sqlite3_value_dup`) on the connection's thread, and the copies are freed on the request's
/// thread. That pattern defeats glibc's per-thread caches, and `perf` put a third of a list's
/// server CPU in malloc and free. One text value per page is one copy.
pub fn list_files<'a>(tenant: &TenantId, q: &ListQuery) -> QueryBuilder<'a, Sqlite> {
    let order = match q.sort {
        SortOrder::Newest => " ORDER BY created_at DESC, key DESC",
        SortOrder::Name => " ORDER BY filename ASC, key ASC",
    };
    let mut b = QueryBuilder::new(format!(
        "SELECT json_group_array(json_array({FILE_COLUMNS}){order}) FROM \
         (SELECT {FILE_COLUMNS}, filename FROM files WHERE tenant_id = "
    ));
    b.push_bind(tenant.to_string());
    if let Some(c) = &q.category {
        b.push(" AND category = ").push_bind(c.to_string());
    }
    if let Some(p) = &q.prefix {
        // An index range instead of LIKE: every name that starts with `p`.
        b.push(" AND filename >= ").push_bind(p.clone());
        b.push(" AND filename < ").push_bind(prefix_end(p));
    }
    match &q.cursor {
        Some(Cursor::Newest { t, k }) => {
            b.push(" AND (created_at, key) < (").push_bind(*t).push(", ").push_bind(k.clone()).push(")");
        }
        Some(Cursor::Name { f, k }) => {
            b.push(" AND (filename, key) > (").push_bind(f.clone()).push(", ").push_bind(k.clone()).push(")");
        }
        None => {}
    }
    b.push(order);
    b.push(" LIMIT ").push_bind(i64::from(q.limit) + 1).push(")");
    b
}

/// The rows of a page [`list_files`] returned as JSON.
pub fn rows_from_json(json: &str) -> Result<Vec<super::RawRecord>, CatalogError> {
    type Row = (String, String, String, String, String, i64, String, i64);
    let rows: Vec<Row> =
        serde_json::from_str(json).map_err(|e| CatalogError::Corrupt(format!("a page of files: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|(key, original_filename, bucket, blob_key, content_type, size, sha256, created_at)| super::RawRecord {
            key,
            original_filename,
            bucket,
            blob_key,
            content_type,
            size,
            sha256,
            created_at,
        })
        .collect())
}

/// Turns the rows of [`list_files`] into a page with its next cursor. Returns
/// `InvalidCursor` up front (see [`check_cursor`]).
pub fn page(rows: Vec<super::RawRecord>, q: &ListQuery) -> Result<super::FilePage, CatalogError> {
    let mut files = rows.into_iter().map(super::RawRecord::into_record).collect::<Result<Vec<_>, _>>()?;
    let next = if files.len() > q.limit as usize {
        files.truncate(q.limit as usize);
        files.last().map(|last| cursor_after(q.sort, last))
    } else {
        None
    };
    Ok(super::FilePage { files, next })
}

/// `InvalidCursor` when the cursor was made for another sort order.
pub fn check_cursor(q: &ListQuery) -> Result<(), CatalogError> {
    match &q.cursor {
        Some(c) if c.sort() != q.sort => Err(CatalogError::InvalidCursor),
        _ => Ok(()),
    }
}

fn cursor_after(sort: SortOrder, last: &FileRecord) -> Cursor {
    match sort {
        SortOrder::Newest => Cursor::Newest { t: last.created_at.timestamp_micros(), k: last.key.to_string() },
        SortOrder::Name => Cursor::Name { f: last.key.filename().to_string(), k: last.key.to_string() },
    }
}
