use tracing::Instrument;

use super::body::{BodyError, Metered, peek};
use super::content_type::{SNIFF_LEN, decide};
use super::{Admitted, ServiceError, StorageService};
use crate::blob::ByteStream;
use crate::catalog::{BlobRef, CatalogError, FileRecord, PendingUpload};
use crate::domain::{BlobKey, BlobVersion, Category, Filename, ObjectKey, TenantId};

/// One upload, as the HTTP layer or a library caller hands it over; the tenant is the admitted
/// caller's.
pub struct UploadRequest {
    pub category: Category,
    pub filename: Filename,
    /// The name exactly as sent, kept for Content-Disposition; defaults to `filename`.
    pub original_filename: Option<String>,
    /// The type the client declared, if any (checked against the bytes).
    pub content_type: Option<String>,
    pub overwrite: bool,
    /// The body's exact length, if announced (`Content-Length`): refused early when over the
    /// category's limit; a body of another length fails (`BodyIncomplete`), nothing stored.
    pub size_hint: Option<u64>,
    /// A limit below the category's (an upload link's), if any.
    pub max_size: Option<u64>,
    pub body: ByteStream,
}

impl StorageService {
    /// The seed's `upload_file`: stores `content` at `tenant-{tenant}/{category}/{filename}`
    /// and returns the key. Refuses an existing key (`AlreadyExists`).
    pub async fn upload_file(
        &self,
        tenant: &TenantId,
        category: &Category,
        filename: &Filename,
        content: ByteStream,
        content_type: Option<&str>,
    ) -> Result<ObjectKey, ServiceError> {
        let who = self.admit_tenant(tenant).await?;
        let request = UploadRequest {
            category: category.clone(),
            filename: filename.clone(),
            original_filename: None,
            content_type: content_type.map(str::to_owned),
            overwrite: false,
            size_hint: None,
            max_size: None,
            body: content,
        };
        Ok(self.upload(&who, request).await?.key)
    }

    /// Streams an upload to storage and records it. Order: intent recorded, bytes written
    /// durably under a fresh version, row committed (switching an overwritten key in the same
    /// transaction), then replaced bytes removed. Returns `UnknownCategory`, `AlreadyExists`,
    /// `TooLarge`, `UnsupportedMediaType`, `BodyIncomplete` with nothing stored; `ReadOnly`
    /// before reading any byte for a read-only caller.
    #[tracing::instrument(skip_all, fields(tenant = %who.tenant(), category = %req.category))]
    pub async fn upload(&self, who: &Admitted, req: UploadRequest) -> Result<FileRecord, ServiceError> {
        who.require_write()?;
        let tenant = who.tenant();
        let policy = self.policy(&req.category)?.clone();
        let UploadRequest { category, filename, original_filename, content_type, overwrite, size_hint, max_size, body } =
            req;
        let key = ObjectKey::new(tenant.clone(), category.clone(), filename.clone());
        let max_size = max_size.map_or(policy.max_size, |m| m.min(policy.max_size));
        if size_hint.is_some_and(|n| n > max_size) {
            return Err(ServiceError::TooLarge { limit: max_size });
        }
        let blob = BlobRef {
            bucket: self.bucket(policy.bucket).clone(),
            blob: BlobKey::new(key.clone(), BlobVersion::generate()),
        };
        // The key's row, and the intent recorded (one round trip where the engine can); an
        // existing key without `overwrite` is refused here, before any byte is read.
        let existing = self.inner.catalog.begin_upload(&self.intent_mark(&blob), overwrite).await?;
        let received = async {
            let (limit, over) = self.stream_limit(tenant, max_size, existing.as_ref().map(|e| e.size)).await?;
            if size_hint.is_some_and(|n| n > limit) {
                return Err(match over {
                    BodyError::TooLarge { limit } => ServiceError::TooLarge { limit },
                    _ => ServiceError::QuotaExceeded,
                });
            }
            let (head, body) = peek(body, SNIFF_LEN).await.map_err(ServiceError::from_body)?;
            let content_type = decide(&filename, content_type.as_deref(), &head).to_string();
            if !policy.allows(&content_type) {
                return Err(ServiceError::UnsupportedMediaType { content_type, category: category.to_string() });
            }
            let (metered, meter) = Metered::new(body, limit, over, size_hint);
            self.inner.blobs.put(&blob.bucket, &blob.blob, &content_type, Box::pin(metered), size_hint).await?;
            let (sha256, size) = meter.finish().await;
            Ok((content_type, sha256, size))
        };
        let (content_type, sha256, size) = match self.keeping_intent_alive(&blob, received).await {
            Ok(received) => received,
            Err(e) => {
                // Refused or cut: the store removed what it wrote; the intent goes too.
                self.forget_intent(&blob).await;
                return Err(e);
            }
        };
        let record = FileRecord {
            key,
            original_filename: original_filename.unwrap_or_else(|| filename.to_string()),
            bucket: blob.bucket.clone(),
            blob: blob.blob.clone(),
            content_type,
            size,
            sha256,
            created_at: crate::util::now_micros(),
        };
        let quota = self.quota(tenant);
        match self.inner.catalog.commit_upload(&record, overwrite, &quota).await {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    let _ = self.purge(&old.blob_ref()).await;
                }
                tracing::info!(key = %record.key, size, "uploaded");
                Ok(record)
            }
            Err(e) if !matches!(e, CatalogError::Database(_) | CatalogError::Timeout(_)) => {
                // The row did not commit (the catalog said why): these bytes belong to nobody.
                if let Err(del) = self.inner.blobs.delete(&blob.bucket, &blob.blob).in_current_span().await {
                    tracing::warn!(error = %del, blob = %blob.blob, "could not remove bytes of a failed upload; reconcile will");
                } else {
                    self.forget_intent(&blob).await;
                }
                Err(e.into())
            }
            Err(e) => {
                // Whether the row committed is unknown (the connection failed during COMMIT, or
                // the catalog timeout fired). The intent decides, as it does against reconcile:
                // whoever removes it owns the bytes. Claimed here, the commit did not happen and
                // the bytes belong to nobody; already gone, a committed row (or a reconcile)
                // owns them; unreachable, reconcile decides later.
                match self.inner.catalog.abandon_intent(&blob).await {
                    Ok(true) => {
                        if let Err(del) = self.inner.blobs.delete(&blob.bucket, &blob.blob).in_current_span().await {
                            tracing::warn!(error = %del, blob = %blob.blob, "could not remove bytes of a failed upload; reconcile will");
                        }
                    }
                    Ok(false) => {
                        tracing::warn!(blob = %blob.blob, error = %e, "a commit of unknown outcome whose intent is gone: its bytes stay with their owner");
                    }
                    Err(claim) => {
                        tracing::warn!(blob = %blob.blob, error = %claim, "could not settle a failed upload; reconcile will");
                    }
                }
                Err(e.into())
            }
        }
    }

    /// How many bytes this upload may stream, and the error past that: the category's maximum,
    /// or less when the tenant's byte quota leaves less room (counting the bytes an overwrite
    /// frees). `QuotaExceeded` up front when the file-count quota is already reached.
    pub(super) async fn stream_limit(
        &self,
        tenant: &TenantId,
        max_size: u64,
        replaced: Option<u64>,
    ) -> Result<(u64, BodyError), ServiceError> {
        let quota = self.quota(tenant);
        let too_large = (max_size, BodyError::TooLarge { limit: max_size });
        if quota == crate::catalog::Quota::default() {
            return Ok(too_large);
        }
        let usage = self.inner.catalog.usage(tenant).await?;
        let files: u64 = usage.iter().map(|u| u.files).sum();
        // Unfinished resumable uploads hold their room until they complete or expire.
        let reserved = match quota.max_bytes {
            Some(_) => self.inner.catalog.reserved_bytes(tenant).await?,
            None => 0,
        };
        let bytes: u64 = usage.iter().map(|u| u.bytes).sum::<u64>() + reserved;
        if replaced.is_none() && quota.max_files.is_some_and(|m| files >= m) {
            return Err(ServiceError::QuotaExceeded);
        }
        match quota.max_bytes {
            Some(max) => {
                let room = max.saturating_sub(bytes) + replaced.unwrap_or(0);
                Ok(if room < max_size { (room, BodyError::QuotaExceeded) } else { too_large })
            }
            None => Ok(too_large),
        }
    }

    /// Runs `work` (the upload's write) while marking its intent alive every heartbeat, so that
    /// a reconcile leaves an upload that is still streaming alone however long it takes and
    /// whatever grace it runs with. Should the intent be gone anyway, the commit says so.
    async fn keeping_intent_alive<T>(&self, blob: &BlobRef, work: impl Future<Output = T>) -> T {
        let heartbeat = async {
            let mut tick = tokio::time::interval(self.inner.intent_heartbeat);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match self.inner.catalog.touch_intent(&self.intent_mark(blob)).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => tracing::warn!(error = %e, blob = %blob.blob, "could not mark an upload as alive"),
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            out = work => out,
            () = heartbeat => unreachable!("the heartbeat never ends"),
        }
    }

    /// The intent of `blob` marked now, vouched alive for three heartbeats: so a reconcile,
    /// whatever grace it is given, leaves an upload alone while its heartbeat runs, and rolls
    /// it back once three heartbeats in a row are missed (its writer died).
    fn intent_mark(&self, blob: &BlobRef) -> PendingUpload {
        let started_at = crate::util::now_micros();
        let lease = chrono::Duration::from_std(self.inner.intent_heartbeat * 3).expect("short lease");
        PendingUpload { blob: blob.clone(), started_at, alive_until: started_at + lease }
    }

    async fn forget_intent(&self, blob: &BlobRef) {
        if let Err(e) = self.inner.catalog.abandon_intent(blob).await.map(drop) {
            tracing::warn!(error = %e, blob = %blob.blob, "could not clear an upload intent; reconcile will");
        }
    }
}
