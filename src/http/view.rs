//! JSON shapes of the API.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::FileRecord;

/// A file's metadata as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileView {
    pub key: String,
    pub tenant_id: String,
    pub category: String,
    pub filename: String,
    pub content_type: String,
    /// Whether coffer serves this file inline (an allow-list of image, PDF, plain-text, audio
    /// and video types); everything else goes out as a sandboxed attachment.
    pub inline: bool,
    pub size: u64,
    pub sha256: String,
    pub etag: String,
    pub created_at: DateTime<Utc>,
}

impl From<&FileRecord> for FileView {
    fn from(r: &FileRecord) -> Self {
        Self {
            key: r.key.to_string(),
            tenant_id: r.key.tenant().as_str().to_owned(),
            category: r.key.category().as_str().to_owned(),
            filename: r.original_filename.clone(),
            content_type: r.content_type.clone(),
            inline: crate::service::serving(&r.content_type, false).inline,
            size: r.size,
            sha256: r.sha256.clone(),
            etag: r.etag(),
            created_at: r.created_at,
        }
    }
}

/// One page of the caller's files; `next_cursor` is null on the last page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListView {
    pub files: Vec<FileView>,
    pub next_cursor: Option<String>,
}

/// Every error response: a stable kebab-case code and a message safe to show.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorView {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, kebab-case (e.g. `tenant-mismatch`).
    pub code: String,
    pub message: String,
}

/// A configured category.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryView {
    pub name: String,
    /// `documents` or `media`.
    pub bucket: String,
    pub max_size: u64,
    pub allowed_types: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoriesView {
    pub categories: Vec<CategoryView>,
}

/// Health and readiness answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
