//! Resumable uploads as the catalog keeps them (`resumable_uploads`): the state any instance
//! needs to continue an upload another one began.

use chrono::{DateTime, Utc};

use super::CatalogError;
use super::record::corrupt;
use super::{BlobRef, PendingUpload};
use crate::domain::{BlobKey, BucketName, TenantId};

/// One resumable upload, in progress or (until it expires) completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// Unguessable; meaningful only together with the tenant.
    pub id: String,
    /// Where the finished file's bytes will be (its key names tenant, category and filename).
    pub blob: BlobRef,
    pub original_filename: String,
    /// The type the client declared, checked against the bytes once the first ones arrive.
    pub declared_type: Option<String>,
    /// The type decided from the first bytes; `None` until enough have arrived.
    pub content_type: Option<String>,
    pub overwrite: bool,
    /// `Upload-Length`; `None` while deferred.
    pub length: Option<u64>,
    pub offset: u64,
    /// The running SHA-256 state (the final digest once completed).
    pub hasher: String,
    /// The first bytes, while too few have arrived to decide the type.
    pub head: Vec<u8>,
    /// The blob store's state of the partial object.
    pub engine_state: String,
    /// `Upload-Metadata` as sent, echoed on HEAD.
    pub metadata: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl UploadSession {
    pub fn tenant(&self) -> &TenantId {
        self.blob.blob.object_key().tenant()
    }

    /// The pending intent that covers this upload's bytes until it completes or expires.
    pub fn intent(&self) -> PendingUpload {
        PendingUpload { blob: self.blob.clone(), started_at: Utc::now(), alive_until: self.expires_at }
    }
}

/// Columns of [`RawSession`], from [`SESSION_FROM`].
pub const SESSION_COLUMNS: &str = "u.id, u.bucket, u.blob_key, u.original_filename, u.declared_type, \
     u.content_type, u.overwrite, u.length, u.upload_offset, u.hasher, u.head, st.engine_state, u.metadata, \
     u.created_at, u.expires_at, u.completed_at";

/// An upload's row and, in a row of its own, its engine state: SQLite rewrites a whole record on
/// each UPDATE, and the state (on S3 the parts so far, which grow with the upload) changes only
/// with an append, not with each lock and lease renewal.
pub const SESSION_FROM: &str = "resumable_uploads u JOIN resumable_upload_states st ON st.id = u.id";

/// [`SESSION_COLUMNS`] of a `resumable_uploads` row alone (its state is read apart).
pub const ROW_COLUMNS: &str = "id, bucket, blob_key, original_filename, declared_type, content_type, overwrite, \
     length, upload_offset, hasher, head, '' AS engine_state, metadata, created_at, expires_at, completed_at";

/// [`SESSION_COLUMNS`] as an UPDATE of a `resumable_uploads` row returns them: its state read
/// by a subquery (SQLite's RETURNING cannot name another table of the statement).
pub const LOCKED_COLUMNS: &str = "id, bucket, blob_key, original_filename, declared_type, content_type, overwrite, \
     length, upload_offset, hasher, head, \
     (SELECT st.engine_state FROM resumable_upload_states st WHERE st.id = resumable_uploads.id) AS engine_state, \
     metadata, created_at, expires_at, completed_at";

/// A `resumable_uploads` row with its state, as both engines store them.
#[derive(Debug, sqlx::FromRow)]
pub struct RawSession {
    pub id: String,
    pub bucket: String,
    pub blob_key: String,
    pub original_filename: String,
    pub declared_type: Option<String>,
    pub content_type: Option<String>,
    pub overwrite: bool,
    pub length: Option<i64>,
    pub upload_offset: i64,
    pub hasher: String,
    pub head: Vec<u8>,
    pub engine_state: String,
    pub metadata: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub completed_at: Option<i64>,
}

impl RawSession {
    pub fn into_session(self) -> Result<UploadSession, CatalogError> {
        let from = super::query::from_micros;
        Ok(UploadSession {
            id: self.id,
            blob: BlobRef {
                bucket: BucketName::parse(&self.bucket).map_err(corrupt)?,
                blob: BlobKey::parse(&self.blob_key).map_err(corrupt)?,
            },
            original_filename: self.original_filename,
            declared_type: self.declared_type,
            content_type: self.content_type,
            overwrite: self.overwrite,
            length: self.length.map(u64::try_from).transpose().map_err(corrupt)?,
            offset: u64::try_from(self.upload_offset).map_err(corrupt)?,
            hasher: self.hasher,
            head: self.head,
            engine_state: self.engine_state,
            metadata: self.metadata,
            created_at: from(self.created_at)?,
            expires_at: from(self.expires_at)?,
            completed_at: self.completed_at.map(from).transpose()?,
        })
    }
}

/// Why a resumable upload could not be locked for a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockRefusal {
    /// No such upload for this tenant (or it expired and was removed).
    Missing,
    /// It completed already.
    Completed,
    /// Another request is writing to it now.
    Busy,
    /// The client's offset is not the upload's.
    Offset(u64),
}
