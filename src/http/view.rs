//! JSON shapes of the API.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::FileRecord;

/// A file's metadata as the API shows it.
#[derive(Debug, Serialize)]
pub struct FileView {
    pub key: String,
    pub tenant_id: String,
    pub category: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub etag: String,
    pub created_at: DateTime<Utc>,
}

impl From<&FileRecord> for FileView {
    fn from(r: &FileRecord) -> Self {
        Self {
            key: r.key.to_string(),
            tenant_id: r.key.tenant().to_string(),
            category: r.key.category().to_string(),
            filename: r.original_filename.clone(),
            content_type: r.content_type.clone(),
            size: r.size,
            sha256: r.sha256.clone(),
            etag: r.etag(),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ListView {
    pub files: Vec<FileView>,
    pub next_cursor: Option<String>,
}
