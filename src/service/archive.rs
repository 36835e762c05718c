//! Archive storage classes (S3 Glacier, Deep Archive, Intelligent-Tiering archive tiers).

use super::{Admitted, ServiceError, StorageService};
use crate::blob::ArchiveState;
use crate::catalog::FileRecord;
use crate::domain::{ObjectKey, Restore};

impl StorageService {
    /// The storage class and restore status of a file's bytes; `None` on stores without
    /// archive tiers.
    pub async fn archive_state(&self, record: &FileRecord) -> Result<Option<ArchiveState>, ServiceError> {
        Ok(self.inner.blobs.archive_state(&record.bucket, &record.blob).await?)
    }

    /// Starts restoring an archived file as `restore` asks. `ReadOnly` for a read-only caller;
    /// `TenantMismatch` / `NotFound` as for reads.
    pub async fn restore(&self, who: &Admitted, key: &ObjectKey, restore: Restore) -> Result<(), ServiceError> {
        who.require_write()?;
        Self::authorize(who.tenant(), key)?;
        let record = self.stat(who, key).await?;
        let tier = restore.tier.to_string();
        Ok(self.inner.blobs.restore(&record.bucket, &record.blob, restore.days, &tier).await?)
    }
}
