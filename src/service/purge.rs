//! `coffer tenant purge`: everything of one tenant removed, its data key destroyed first.
//!
//! Steps, each idempotent, so that a purge interrupted anywhere (even by SIGKILL) completes
//! when run again:
//! 1. the tenant is registered if needed and suspended, so every instance refuses it (after
//!    its status cache, `wait`);
//! 2. its data key is destroyed (filesystem store): from here on no byte of the tenant's, left
//!    anywhere — a crash before step 4, a copy of the data dir taken before the purge — can be
//!    decrypted with what the data dir holds;
//! 3. its catalog rows go: files, usage, pending uploads, queued deletions, one transaction;
//! 4. its bytes go, in both buckets (and unfinished S3 multipart uploads);
//! 5. its registration goes, so the tenant can be created again (with a new key).

use std::time::Duration;

use serde::Serialize;

use super::{ServiceError, StorageService};
use crate::catalog::{PurgedRows, TenantStatus};
use crate::domain::TenantId;

/// What a purge removed.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct PurgeReport {
    pub tenant: String,
    /// Whether a data key was destroyed by this run (`false`: none left, or no encryption).
    pub key_destroyed: bool,
    pub rows: PurgedRows,
    /// Objects (and partial writes) removed from the blob store.
    pub objects_removed: u64,
    pub registration_removed: bool,
}

impl StorageService {
    /// Purges `tenant` (see the module doc); `wait` lets running instances see the suspension.
    pub async fn purge_tenant(&self, tenant: &TenantId, wait: Duration) -> Result<PurgeReport, ServiceError> {
        let catalog = &self.inner.catalog;
        catalog.add_tenant(tenant).await?;
        catalog.set_tenant_status(tenant, TenantStatus::Suspended).await?;
        tokio::time::sleep(wait).await;
        let key_destroyed = self.inner.blobs.destroy_tenant_key(tenant).await?;
        let rows = catalog.purge_tenant_rows(tenant).await?;
        let mut objects_removed = 0;
        for bucket in [&self.inner.documents_bucket, &self.inner.media_bucket] {
            objects_removed += self.inner.blobs.delete_tenant(bucket, tenant).await?;
        }
        let registration_removed = catalog.remove_tenant(tenant).await?;
        self.inner.tenant_cache.forget(tenant);
        Ok(PurgeReport { tenant: tenant.to_string(), key_destroyed, rows, objects_removed, registration_removed })
    }
}
