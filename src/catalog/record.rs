use chrono::{DateTime, Utc};
use serde::Serialize;

use super::CatalogError;
use super::{Cursor, SortOrder};
use crate::domain::{BlobKey, BucketName, Category, ObjectKey};

/// One stored file, as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub key: ObjectKey,
    /// The name as the uploader sent it (before NFC normalisation), for Content-Disposition.
    pub original_filename: String,
    pub bucket: BucketName,
    /// Where the bytes of the current version are.
    pub blob: BlobKey,
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// When this version was uploaded (microsecond precision).
    pub created_at: DateTime<Utc>,
}

impl FileRecord {
    /// The strong entity tag served for this version.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.sha256)
    }

    pub fn blob_ref(&self) -> BlobRef {
        BlobRef { bucket: self.bucket.clone(), blob: self.blob.clone() }
    }
}

/// A physical object: bucket and blob key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct BlobRef {
    #[serde(serialize_with = "crate::util::display")]
    pub bucket: BucketName,
    #[serde(serialize_with = "crate::util::display")]
    pub blob: BlobKey,
}

/// An upload whose bytes are being written: since `started_at` (its latest mark), and vouched
/// alive by its writer until `alive_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub blob: BlobRef,
    pub started_at: DateTime<Utc>,
    pub alive_until: DateTime<Utc>,
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub category: Option<Category>,
    /// Only file names starting with this (already NFC-normalised) string.
    pub prefix: Option<String>,
    pub sort: SortOrder,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// One page of files; `next` is `None` on the last page.
#[derive(Debug, Clone)]
pub struct FilePage {
    pub files: Vec<FileRecord>,
    pub next: Option<Cursor>,
}

/// A tenant's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub max_bytes: Option<u64>,
    pub max_files: Option<u64>,
}

impl Quota {
    /// Whether usage of `files` and `bytes` stays within the quota.
    pub fn allows(&self, files: u64, bytes: u64) -> bool {
        self.max_bytes.is_none_or(|m| bytes <= m) && self.max_files.is_none_or(|m| files <= m)
    }
}

/// One category's share of a tenant's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CategoryUsage {
    pub category: String,
    pub files: u64,
    pub bytes: u64,
}

/// What `purge_tenant_rows` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgedRows {
    pub files: u64,
    pub pending_uploads: u64,
    pub queued_deletions: u64,
    pub resumable_uploads: u64,
}

/// A files row as both engines store it; `into_record` parses it back into domain types.
#[derive(Debug, sqlx::FromRow)]
pub struct RawRecord {
    pub key: String,
    pub original_filename: String,
    pub bucket: String,
    pub blob_key: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: i64,
}

pub(super) fn corrupt(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Corrupt(e.to_string())
}

impl RawRecord {
    pub fn into_record(self) -> Result<FileRecord, CatalogError> {
        let key = ObjectKey::parse(&self.key).map_err(corrupt)?;
        Ok(FileRecord {
            blob: BlobKey::parse_of(&key, &self.blob_key).map_err(corrupt)?,
            key,
            original_filename: self.original_filename,
            bucket: BucketName::parse(&self.bucket).map_err(corrupt)?,
            content_type: self.content_type,
            size: u64::try_from(self.size).map_err(corrupt)?,
            sha256: self.sha256,
            created_at: super::query::from_micros(self.created_at)?,
        })
    }
}

/// A pending-intent or deletion-queue row as both engines store it.
#[derive(Debug, sqlx::FromRow)]
pub struct RawBlobRef {
    pub bucket: String,
    pub blob_key: String,
    #[sqlx(default)]
    pub at: i64,
    #[sqlx(default)]
    pub alive_until: i64,
}

impl RawBlobRef {
    pub fn into_ref(self) -> Result<BlobRef, CatalogError> {
        Ok(BlobRef {
            bucket: BucketName::parse(&self.bucket).map_err(corrupt)?,
            blob: BlobKey::parse(&self.blob_key).map_err(corrupt)?,
        })
    }

    pub fn into_pending(self) -> Result<PendingUpload, CatalogError> {
        let started_at = super::query::from_micros(self.at)?;
        let alive_until = super::query::from_micros(self.alive_until)?;
        Ok(PendingUpload { blob: self.into_ref()?, started_at, alive_until })
    }
}
