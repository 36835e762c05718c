//! JSON shapes of the API.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::FileRecord;
use crate::domain::ObjectKey;

/// A file's metadata as the API shows it, borrowed from its record: a page of the list
/// serialises its rows without copying their strings first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileView<'a> {
    #[serde(serialize_with = "crate::util::display")]
    #[schema(value_type = String)]
    pub key: &'a ObjectKey,
    pub tenant_id: &'a str,
    pub category: &'a str,
    pub filename: &'a str,
    pub content_type: &'a str,
    /// Whether coffer serves this file inline (an allow-list of image, PDF, plain-text, audio
    /// and video types); everything else goes out as a sandboxed attachment.
    pub inline: bool,
    pub size: u64,
    pub sha256: &'a str,
    /// The file's strong entity tag: its sha256 in double quotes.
    #[serde(serialize_with = "crate::util::quoted")]
    pub etag: &'a str,
    #[serde(serialize_with = "crate::util::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl<'a> From<&'a FileRecord> for FileView<'a> {
    fn from(r: &'a FileRecord) -> Self {
        Self {
            key: &r.key,
            tenant_id: r.key.tenant().as_str(),
            category: r.key.category().as_str(),
            filename: &r.original_filename,
            content_type: &r.content_type,
            inline: crate::service::serving(&r.content_type, false).inline,
            size: r.size,
            sha256: &r.sha256,
            etag: &r.sha256,
            created_at: r.created_at,
        }
    }
}

/// One page of the caller's files; `next_cursor` is null on the last page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListView<'a> {
    pub files: Vec<FileView<'a>>,
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
