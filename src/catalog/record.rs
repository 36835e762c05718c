use chrono::{DateTime, Utc};
use serde::Serialize;

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

/// An upload whose bytes are being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub blob: BlobRef,
    pub started_at: DateTime<Utc>,
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
