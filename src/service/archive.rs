//! Archive storage classes (S3 Glacier, Deep Archive, Intelligent-Tiering archive tiers).

use super::{ServiceError, StorageService};
use crate::blob::ArchiveState;
use crate::catalog::FileRecord;
use crate::domain::{ObjectKey, TenantId};

/// Retrieval tiers S3 accepts for a restore.
pub const RESTORE_TIERS: &[&str] = &["Standard", "Bulk", "Expedited"];

impl StorageService {
    /// The storage class and restore status of a file's bytes; `None` on stores without
    /// archive tiers.
    pub async fn archive_state(&self, record: &FileRecord) -> Result<Option<ArchiveState>, ServiceError> {
        Ok(self.inner.blobs.archive_state(&record.bucket, &record.blob).await?)
    }

    /// Starts restoring an archived file for `days` (1-365) at retrieval `tier`.
    /// `InvalidRestore` for bad arguments; `TenantMismatch` / `NotFound` as for reads.
    pub async fn restore(&self, tenant: &TenantId, key: &ObjectKey, days: i32, tier: &str) -> Result<(), ServiceError> {
        Self::authorize(tenant, key)?;
        if !(1..=365).contains(&days) {
            return Err(ServiceError::InvalidRestore("days must be 1 to 365".into()));
        }
        if !RESTORE_TIERS.contains(&tier) {
            return Err(ServiceError::InvalidRestore("tier must be Standard, Bulk or Expedited".into()));
        }
        let record = self.stat(tenant, key).await?;
        Ok(self.inner.blobs.restore(&record.bucket, &record.blob, days, tier).await?)
    }
}
