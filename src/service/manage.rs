use super::{Admitted, ServiceError, StorageService};
use crate::catalog::{BlobRef, FilePage, FileRecord, ListQuery, SortOrder};
use crate::domain::{Category, ObjectKey, TenantId};

impl StorageService {
    /// One page of `tenant`'s files, from the catalog. `UnknownCategory` for a category that is
    /// not configured; `InvalidCursor` for a cursor of another sort order.
    #[tracing::instrument(skip(self, who, query), fields(tenant = %who.tenant()))]
    pub async fn list(&self, who: &Admitted, query: &ListQuery) -> Result<FilePage, ServiceError> {
        if let Some(c) = &query.category {
            self.policy(c)?;
        }
        Ok(self.inner.catalog.list(who.tenant(), query).await?)
    }

    /// The seed's `list_files`: every file of `tenant` (in `category`, when given), newest
    /// first. Reads all pages; use [`Self::list`] to page.
    pub async fn list_files(
        &self,
        tenant: &TenantId,
        category: Option<&Category>,
    ) -> Result<Vec<FileRecord>, ServiceError> {
        let who = self.admit_tenant(tenant).await?;
        let mut query =
            ListQuery { category: category.cloned(), prefix: None, sort: SortOrder::Newest, limit: 1000, cursor: None };
        let mut all = Vec::new();
        loop {
            let page = self.list(&who, &query).await?;
            all.extend(page.files);
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// The seed's `delete_file`, for `tenant` (admitted first).
    pub async fn delete_file(&self, tenant: &TenantId, key: &ObjectKey) -> Result<(), ServiceError> {
        self.delete(&self.admit_tenant(tenant).await?, key).await
    }

    /// Removes the row, then the bytes. `ReadOnly` for a read-only caller; `TenantMismatch` or
    /// `NotFound` as for reads. If removing the bytes fails they stay queued and are retried.
    #[tracing::instrument(skip(self, who, key), fields(tenant = %who.tenant(), key = %key))]
    pub async fn delete(&self, who: &Admitted, key: &ObjectKey) -> Result<(), ServiceError> {
        who.require_write()?;
        Self::authorize(who.tenant(), key)?;
        let record = self.inner.catalog.delete(key).await?;
        // Bytes that cannot go now stay queued; the delete itself has happened.
        let _ = self.purge(&record.blob_ref()).await;
        tracing::info!("deleted");
        Ok(())
    }

    /// Removes queued bytes and marks them done; `false` when they stay queued for a later pass.
    pub(super) async fn purge(&self, blob: &BlobRef) -> bool {
        let result = match self.inner.blobs.delete(&blob.bucket, &blob.blob).await {
            Ok(()) => self.inner.catalog.deletion_done(blob).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, blob = %blob.blob, "bytes not removed yet; they stay queued");
        }
        result.is_ok()
    }

    /// Works through the queue of bytes awaiting deletion (at start-up and periodically).
    /// Returns how many were removed.
    pub async fn purge_queued(&self) -> usize {
        let mut done = 0;
        loop {
            let batch = match self.inner.catalog.queued_deletions(100).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the deletion queue");
                    return done;
                }
            };
            let mut removed = 0;
            for blob in &batch {
                if self.purge(blob).await {
                    removed += 1;
                }
            }
            done += removed;
            // A short batch was the last; one in which nothing could be removed (the store is
            // failing) ends this pass.
            if batch.len() < 100 || removed == 0 {
                return done;
            }
        }
    }
}
