//! `coffer reconcile`: brings catalog and blob store back into agreement after crashes.
//!
//! Walks everything in pages, never all in memory:
//! 0. resumable uploads past their expiry are removed (partial bytes, row, intent);
//! 1. pending upload intents older than the grace period are rolled back (their bytes
//!    removed, the intent dropped) — the client never received a 201 for them;
//! 2. the deletion queue is drained; multipart uploads older than the grace period that no
//!    live intent owns (a writer died mid-upload, an abort failed) are aborted;
//! 3. every bucket is listed: bytes that no row or live intent points to, older than the
//!    grace period, are removed; leftovers of interrupted writes likewise; anything else
//!    unrecognised is reported and left alone;
//! 4. every row is checked for its bytes; rows whose bytes are missing are reported.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::blob::BlobStore;
use crate::catalog::{BlobRef, Catalog};
use crate::domain::{BlobKey, BucketName};

const PAGE: usize = 500;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub expired_uploads: u64,
    pub intents_rolled_back: u64,
    pub queued_deletions_done: u64,
    pub orphans_removed: u64,
    pub leftovers_removed: u64,
    /// Multipart uploads (S3) nobody would complete, aborted.
    pub multipart_aborted: u64,
    pub objects_checked: u64,
    pub rows_checked: u64,
    /// Rows whose bytes are missing (their keys).
    pub missing_bytes: Vec<String>,
    /// Objects in a bucket that are neither blobs nor coffer's leftovers.
    pub unrecognised: Vec<String>,
    pub errors: Vec<String>,
}

impl Report {
    /// Whether the run found a problem it could not fix or failed somewhere.
    pub fn failed(&self) -> bool {
        !self.errors.is_empty() || !self.missing_bytes.is_empty()
    }

    pub fn summary(&self) -> String {
        let verb = if self.dry_run { "would remove" } else { "removed" };
        format!(
            "reconcile{}: {} expired resumable uploads removed, {} stale uploads rolled back, {} queued deletions, {verb} {} orphaned objects and {} leftovers, aborted {} multipart uploads; \
             checked {} objects and {} rows; {} rows missing bytes, {} unrecognised objects, {} errors",
            if self.dry_run { " (dry run)" } else { "" },
            self.expired_uploads,
            self.intents_rolled_back,
            self.queued_deletions_done,
            self.orphans_removed,
            self.leftovers_removed,
            self.multipart_aborted,
            self.objects_checked,
            self.rows_checked,
            self.missing_bytes.len(),
            self.unrecognised.len(),
            self.errors.len()
        )
    }
}

pub struct Reconciler {
    pub catalog: Arc<dyn Catalog>,
    pub blobs: Arc<dyn BlobStore>,
    pub buckets: Vec<BucketName>,
    pub grace: Duration,
    pub dry_run: bool,
}

impl Reconciler {
    pub async fn run(&self) -> Report {
        let mut report = Report { dry_run: self.dry_run, ..Report::default() };
        self.expire_uploads(&mut report).await;
        self.roll_back_stale_intents(&mut report).await;
        self.abort_unfinished_writes(&mut report).await;
        self.drain_deletions(&mut report).await;
        for bucket in &self.buckets {
            self.sweep_bucket(bucket, &mut report).await;
        }
        self.check_rows(&mut report).await;
        tracing::info!(summary = %report.summary(), "reconciled");
        report
    }

    async fn remove(&self, blob: &BlobRef) -> Result<(), String> {
        if self.dry_run {
            return Ok(());
        }
        self.blobs.delete(&blob.bucket, &blob.blob).await.map_err(|e| format!("removing {}: {e}", blob.blob))
    }

    async fn expire_uploads(&self, report: &mut Report) {
        loop {
            let page = match self.catalog.expired_sessions(chrono::Utc::now(), PAGE as u32).await {
                Ok(p) => p,
                Err(e) => return report.errors.push(format!("reading expired uploads: {e}")),
            };
            if self.dry_run {
                report.expired_uploads += page.len() as u64;
                return;
            }
            let mut progressed = false;
            for session in &page {
                match super::resumable::expire(self.catalog.as_ref(), self.blobs.as_ref(), session).await {
                    Ok(true) => {
                        report.expired_uploads += 1;
                        progressed = true;
                    }
                    Ok(false) => {}
                    Err(e) => report.errors.push(format!("removing expired upload {}: {e}", session.id)),
                }
            }
            if page.len() < PAGE || !progressed {
                return;
            }
        }
    }

    /// Aborts the multipart uploads older than the grace period that no pending intent owns.
    /// An upload in progress (plain or resumable) keeps its intent alive, and stale intents were
    /// rolled back just before, so what is left has no writer.
    async fn abort_unfinished_writes(&self, report: &mut Report) {
        for bucket in &self.buckets {
            let writes = match self.blobs.unfinished_writes(bucket, self.grace).await {
                Ok(w) => w,
                Err(e) => {
                    report.errors.push(format!("listing unfinished writes in {bucket}: {e}"));
                    continue;
                }
            };
            for write in &writes {
                // Only an upload in progress owns a multipart upload. A file row does not: its
                // bytes are complete, so one on its key is a leftover (the SDK retrying a
                // CreateMultipartUpload whose first answer was lost leaves exactly that).
                match self.catalog.intent_under(bucket, &write.key).await {
                    Ok(false) => {}
                    Ok(true) => continue,
                    Err(e) => {
                        report.errors.push(format!("checking the upload of {}: {e}", write.key));
                        continue;
                    }
                }
                let aborted = if self.dry_run { Ok(true) } else { self.blobs.abandon_write(bucket, write).await };
                match aborted {
                    Ok(true) => report.multipart_aborted += 1,
                    Ok(false) => {}
                    Err(e) => report.errors.push(format!("aborting the multipart upload of {}: {e}", write.key)),
                }
            }
        }
    }

    async fn roll_back_stale_intents(&self, report: &mut Report) {
        let before = chrono::Utc::now() - self.grace;
        let mut after = None;
        loop {
            let page = match self.catalog.stale_intents(before, after.as_ref(), PAGE as u32).await {
                Ok(p) => p,
                Err(e) => return report.errors.push(format!("reading pending uploads: {e}")),
            };
            for pending in &page {
                match self.roll_back(&pending.blob).await {
                    Ok(true) => report.intents_rolled_back += 1,
                    Ok(false) => {}
                    Err(e) => report.errors.push(e),
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.clone()),
                _ => return,
            }
        }
    }

    /// Rolls one intent back; `false` when its upload committed first. The intent is claimed
    /// before the bytes go: a commit racing this one then fails (`IntentLost`) instead of
    /// pointing a row at removed bytes. Should removing the bytes fail, they are orphans that
    /// a later sweep removes.
    async fn roll_back(&self, blob: &BlobRef) -> Result<bool, String> {
        if self.dry_run {
            return Ok(!self.row_points_to(blob).await);
        }
        if !self.catalog.abandon_intent(blob).await.map_err(|e| format!("rolling back {}: {e}", blob.blob))? {
            return Ok(false);
        }
        // A row points to the bytes only if an older coffer committed without claiming.
        if !self.row_points_to(blob).await {
            self.remove(blob).await?;
        }
        Ok(true)
    }

    async fn row_points_to(&self, blob: &BlobRef) -> bool {
        matches!(self.catalog.get(blob.blob.object_key()).await, Ok(Some(r)) if r.blob == blob.blob)
    }

    async fn drain_deletions(&self, report: &mut Report) {
        if self.dry_run {
            if let Ok(q) = self.catalog.queued_deletions(PAGE as u32).await {
                report.queued_deletions_done = q.len() as u64;
            }
            return;
        }
        loop {
            let batch = match self.catalog.queued_deletions(PAGE as u32).await {
                Ok(b) => b,
                Err(e) => return report.errors.push(format!("reading the deletion queue: {e}")),
            };
            let mut progressed = false;
            for blob in &batch {
                let result = match self.blobs.delete(&blob.bucket, &blob.blob).await {
                    Ok(()) => self.catalog.deletion_done(blob).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match result {
                    Ok(()) => {
                        report.queued_deletions_done += 1;
                        progressed = true;
                    }
                    Err(e) => report.errors.push(format!("queued deletion of {}: {e}", blob.blob)),
                }
            }
            if batch.len() < PAGE || !progressed {
                return;
            }
        }
    }

    async fn sweep_bucket(&self, bucket: &BucketName, report: &mut Report) {
        let mut after: Option<String> = None;
        loop {
            let page = match self.blobs.list(bucket, after.as_deref(), PAGE).await {
                Ok(p) => p,
                Err(e) => return report.errors.push(format!("listing {bucket}: {e}")),
            };
            report.objects_checked += page.keys.len() as u64;
            match self.catalog.referenced(bucket, &page.keys).await {
                Ok(referenced) => self.sweep_page(bucket, &page.keys, &referenced, report).await,
                Err(e) => report.errors.push(format!("checking references in {bucket}: {e}")),
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return,
            }
        }
    }

    /// Removes what on one listed page nothing points to, once older than the grace period.
    async fn sweep_page(
        &self,
        bucket: &BucketName,
        keys: &[String],
        referenced: &HashSet<String>,
        report: &mut Report,
    ) {
        for key in keys.iter().filter(|k| !referenced.contains(*k)) {
            // A temporary file of a write is judged by its last write (it may be a long
            // upload still streaming), whatever its name looks like; a blob by its version.
            if let Some(age) = self.blobs.stray_age(bucket, key).await {
                self.remove_leftover(bucket, key, age, report).await;
                continue;
            }
            let Ok(blob) = BlobKey::parse(key) else {
                report.unrecognised.push(format!("{bucket}/{key}"));
                continue;
            };
            if !self.older_than_grace(&blob) {
                continue;
            }
            match self.remove(&BlobRef { bucket: bucket.clone(), blob }).await {
                Ok(()) => report.orphans_removed += 1,
                Err(e) => report.errors.push(e),
            }
        }
    }

    fn older_than_grace(&self, blob: &BlobKey) -> bool {
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        blob.version().timestamp_millis().is_some_and(|t| now.saturating_sub(t) >= self.grace.as_millis() as u64)
    }

    /// A temporary file goes once it has not been written to for the grace period and no
    /// pending upload owns its directory (a slow upload may write rarely; its intent is kept
    /// alive, and a stale one was rolled back before the sweep).
    async fn remove_leftover(&self, bucket: &BucketName, key: &str, age: Duration, report: &mut Report) {
        if age < self.grace {
            return;
        }
        let dir = key.rsplit_once('/').map_or("", |(dir, _)| dir);
        match self.catalog.intent_under(bucket, &format!("{dir}/")).await {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => return report.errors.push(format!("checking uploads under {dir}: {e}")),
        }
        let removed = if self.dry_run { Ok(()) } else { self.blobs.remove_stray(bucket, key).await };
        match removed {
            Ok(()) => report.leftovers_removed += 1,
            Err(e) => report.errors.push(format!("removing leftover {key}: {e}")),
        }
    }

    async fn check_rows(&self, report: &mut Report) {
        let mut after: Option<String> = None;
        loop {
            let page = match self.catalog.scan_files(after.as_deref(), PAGE as u32).await {
                Ok(p) => p,
                Err(e) => return report.errors.push(format!("scanning the catalog: {e}")),
            };
            for row in &page {
                report.rows_checked += 1;
                match self.blobs.exists(&row.bucket, &row.blob).await {
                    Ok(true) => {}
                    Ok(false) => report.missing_bytes.push(row.key.to_string()),
                    Err(e) => report.errors.push(format!("checking bytes of {}: {e}", row.key)),
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.key.to_string()),
                _ => return,
            }
        }
    }
}
