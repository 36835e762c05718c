//! Decorators that time every blob-store and catalog operation, count its errors and give it
//! its span.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::blob::{
    ArchiveState, BlobError, BlobPage, BlobRead, BlobStore, ByteStream, Lengths, PartialAt, PartialWrite, PutResult,
    UnfinishedWrite,
};
use crate::catalog::{
    BlobRef, Catalog, CatalogError, CategoryUsage, FilePage, FileRecord, ListQuery, LockRefusal, PendingUpload,
    PurgedRows, Quota, TenantInfo, TenantStatus, UploadSession,
};
use crate::domain::{BlobKey, BucketName, ObjectKey, TenantId};

fn observe<T, E>(kind: &'static str, engine: &'static str, op: &'static str, started: Instant, r: &Result<T, E>) {
    metrics::histogram!(format!("coffer_{kind}_operation_duration_seconds"), "engine" => engine, "op" => op)
        .record(started.elapsed().as_secs_f64());
    if r.is_err() {
        metrics::counter!(format!("coffer_{kind}_operation_errors_total"), "engine" => engine, "op" => op).increment(1);
    }
}

/// Times `$call`, counts its error, and runs it in a span naming the store kind, the engine and
/// the operation: the one place every blob-store and catalog operation gets its span.
macro_rules! timed {
    ($kind:literal, $self:ident, $op:literal, $call:expr) => {{
        use tracing::Instrument;
        let started = Instant::now();
        let span = tracing::debug_span!($kind, engine = $self.0.engine(), op = $op);
        let r = $call.instrument(span).await;
        observe($kind, $self.0.engine(), $op, started, &r);
        r
    }};
}

/// A blob store whose operations are measured.
pub struct MeteredBlobStore(pub Arc<dyn BlobStore>);

#[async_trait]
impl BlobStore for MeteredBlobStore {
    fn engine(&self) -> &'static str {
        self.0.engine()
    }
    async fn put(
        &self,
        b: &BucketName,
        k: &BlobKey,
        ct: &str,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<PutResult, BlobError> {
        let r = timed!("blob", self, "put", self.0.put(b, k, ct, body, length));
        if let Ok(p) = &r {
            metrics::counter!("coffer_stored_bytes_total").increment(p.size);
        }
        r
    }
    async fn get(
        &self,
        b: &BucketName,
        k: &BlobKey,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<BlobRead, BlobError> {
        timed!("blob", self, "get", self.0.get(b, k, range))
    }
    async fn delete(&self, b: &BucketName, k: &BlobKey) -> Result<(), BlobError> {
        timed!("blob", self, "delete", self.0.delete(b, k))
    }
    async fn list(&self, b: &BucketName, after: Option<&str>, limit: usize) -> Result<BlobPage, BlobError> {
        timed!("blob", self, "list", self.0.list(b, after, limit))
    }
    async fn exists(&self, b: &BucketName, k: &BlobKey) -> Result<bool, BlobError> {
        timed!("blob", self, "exists", self.0.exists(b, k))
    }
    async fn stray_age(&self, b: &BucketName, key: &str) -> Option<Duration> {
        self.0.stray_age(b, key).await
    }
    async fn remove_stray(&self, b: &BucketName, key: &str) -> Result<(), BlobError> {
        timed!("blob", self, "remove_stray", self.0.remove_stray(b, key))
    }
    async fn unfinished_writes(&self, b: &BucketName, older_than: Duration) -> Result<Vec<UnfinishedWrite>, BlobError> {
        timed!("blob", self, "unfinished_writes", self.0.unfinished_writes(b, older_than))
    }
    async fn abandon_write(&self, b: &BucketName, w: &UnfinishedWrite) -> Result<bool, BlobError> {
        timed!("blob", self, "abandon_write", self.0.abandon_write(b, w))
    }
    async fn check(&self, b: &BucketName) -> Result<(), BlobError> {
        timed!("blob", self, "check", self.0.check(b))
    }
    async fn ensure_bucket(&self, b: &BucketName) -> Result<bool, BlobError> {
        timed!("blob", self, "ensure_bucket", self.0.ensure_bucket(b))
    }
    async fn presign_get(
        &self,
        b: &BucketName,
        k: &BlobKey,
        expires_in: Duration,
        disposition: &str,
        content_type: &str,
    ) -> Option<Result<String, BlobError>> {
        self.0.presign_get(b, k, expires_in, disposition, content_type).await
    }
    fn presign_origin(&self) -> Option<String> {
        self.0.presign_origin()
    }
    async fn archive_state(&self, b: &BucketName, k: &BlobKey) -> Result<Option<ArchiveState>, BlobError> {
        timed!("blob", self, "archive_state", self.0.archive_state(b, k))
    }
    async fn restore(&self, b: &BucketName, k: &BlobKey, days: i32, tier: &str) -> Result<(), BlobError> {
        timed!("blob", self, "restore", self.0.restore(b, k, days, tier))
    }
    async fn destroy_tenant_key(&self, t: &TenantId) -> Result<bool, BlobError> {
        timed!("blob", self, "destroy_tenant_key", self.0.destroy_tenant_key(t))
    }
    async fn partial_begin(&self, b: &BucketName, k: &BlobKey, content_type: &str) -> Result<String, BlobError> {
        timed!("blob", self, "partial_begin", self.0.partial_begin(b, k, content_type))
    }
    async fn partial_append(
        &self,
        b: &BucketName,
        k: &BlobKey,
        state: &str,
        offset: u64,
        body: ByteStream,
        lengths: Lengths,
    ) -> Result<(String, u64), BlobError> {
        timed!("blob", self, "partial_append", self.0.partial_append(b, k, state, offset, body, lengths))
    }
    async fn partial_write(
        &self,
        b: &BucketName,
        k: &BlobKey,
        at: PartialAt<'_>,
        body: ByteStream,
        lengths: Lengths,
    ) -> Result<PartialWrite, BlobError> {
        let mut written = timed!("blob", self, "partial_write", self.0.partial_write(b, k, at, body, lengths))?;
        // The wait for durability, from the moment the bytes are written.
        let (engine, started, durable) = (self.0.engine(), Instant::now(), written.durable);
        written.durable = Box::pin(async move {
            let r = durable.await;
            observe("blob", engine, "partial_durable", started, &r);
            r
        });
        Ok(written)
    }
    async fn partial_finish(&self, b: &BucketName, k: &BlobKey, state: &str, offset: u64) -> Result<(), BlobError> {
        timed!("blob", self, "partial_finish", self.0.partial_finish(b, k, state, offset))
    }
    async fn partial_release(&self, b: &BucketName, k: &BlobKey, old: &str, new: &str) {
        self.0.partial_release(b, k, old, new).await
    }
    async fn partial_abort(&self, b: &BucketName, k: &BlobKey, state: &str) -> Result<(), BlobError> {
        timed!("blob", self, "partial_abort", self.0.partial_abort(b, k, state))
    }
    async fn delete_tenant(&self, b: &BucketName, t: &TenantId) -> Result<u64, BlobError> {
        timed!("blob", self, "delete_tenant", self.0.delete_tenant(b, t))
    }
}

/// Like `timed!`, and the operation gets at most `$self.1` (COFFER_CATALOG_TIMEOUT): the
/// operations on a request's path, so that a catalog that stops answering costs a request a
/// bounded wait and a 503, never a hang.
macro_rules! bounded {
    ($kind:literal, $self:ident, $op:literal, $call:expr) => {{
        let limit = $self.1;
        timed!($kind, $self, $op, async {
            tokio::time::timeout(limit, $call).await.unwrap_or(Err(CatalogError::Timeout(limit)))
        })
    }};
}

/// Like `bounded!`, for a read on a request's path: a transient failure is retried (twice at
/// most, after 25 and 50 ms: `retry.rs`) within the same bound.
macro_rules! bounded_read {
    ($kind:literal, $self:ident, $op:literal, $call:expr) => {{ bounded!($kind, $self, $op, super::retry::read($op, || $call)) }};
}

/// A catalog whose operations are measured, those on a request's path bounded in time.
pub struct MeteredCatalog(pub Arc<dyn Catalog>, pub Duration);

impl MeteredCatalog {
    pub fn new(inner: Arc<dyn Catalog>, timeout: Duration) -> Self {
        Self(inner, timeout)
    }
}

#[async_trait]
impl Catalog for MeteredCatalog {
    fn engine(&self) -> &'static str {
        self.0.engine()
    }
    async fn ping(&self) -> Result<(), CatalogError> {
        bounded!("catalog", self, "ping", self.0.ping())
    }
    async fn record_intent(&self, p: &PendingUpload) -> Result<(), CatalogError> {
        bounded!("catalog", self, "record_intent", self.0.record_intent(p))
    }
    async fn begin_upload(&self, p: &PendingUpload, overwrite: bool) -> Result<Option<FileRecord>, CatalogError> {
        bounded!("catalog", self, "begin_upload", self.0.begin_upload(p, overwrite))
    }
    async fn touch_intent(&self, p: &PendingUpload) -> Result<bool, CatalogError> {
        bounded!("catalog", self, "touch_intent", self.0.touch_intent(p))
    }
    async fn abandon_intent(&self, b: &BlobRef) -> Result<bool, CatalogError> {
        bounded!("catalog", self, "abandon_intent", self.0.abandon_intent(b))
    }
    async fn commit_upload(
        &self,
        r: &FileRecord,
        overwrite: bool,
        q: &Quota,
    ) -> Result<Option<FileRecord>, CatalogError> {
        bounded!("catalog", self, "commit_upload", self.0.commit_upload(r, overwrite, q))
    }
    async fn get(&self, k: &ObjectKey) -> Result<Option<FileRecord>, CatalogError> {
        bounded_read!("catalog", self, "get", self.0.get(k))
    }
    async fn list(&self, t: &TenantId, q: &ListQuery) -> Result<FilePage, CatalogError> {
        bounded_read!("catalog", self, "list", self.0.list(t, q))
    }
    async fn delete(&self, k: &ObjectKey) -> Result<FileRecord, CatalogError> {
        bounded!("catalog", self, "delete", self.0.delete(k))
    }
    async fn queued_deletions(&self, limit: u32) -> Result<Vec<BlobRef>, CatalogError> {
        timed!("catalog", self, "queued_deletions", self.0.queued_deletions(limit))
    }
    async fn deletion_done(&self, b: &BlobRef) -> Result<(), CatalogError> {
        timed!("catalog", self, "deletion_done", self.0.deletion_done(b))
    }
    async fn usage(&self, t: &TenantId) -> Result<Vec<CategoryUsage>, CatalogError> {
        bounded_read!("catalog", self, "usage", self.0.usage(t))
    }
    async fn tenant_status(&self, t: &TenantId) -> Result<Option<TenantStatus>, CatalogError> {
        bounded_read!("catalog", self, "tenant_status", self.0.tenant_status(t))
    }
    async fn add_tenant(&self, t: &TenantId) -> Result<bool, CatalogError> {
        bounded!("catalog", self, "add_tenant", self.0.add_tenant(t))
    }
    async fn set_tenant_status(&self, t: &TenantId, s: TenantStatus) -> Result<(), CatalogError> {
        timed!("catalog", self, "set_tenant_status", self.0.set_tenant_status(t, s))
    }
    async fn list_tenants(&self) -> Result<Vec<TenantInfo>, CatalogError> {
        timed!("catalog", self, "list_tenants", self.0.list_tenants())
    }
    async fn purge_tenant_rows(&self, t: &TenantId) -> Result<PurgedRows, CatalogError> {
        timed!("catalog", self, "purge_tenant_rows", self.0.purge_tenant_rows(t))
    }
    async fn remove_tenant(&self, t: &TenantId) -> Result<bool, CatalogError> {
        timed!("catalog", self, "remove_tenant", self.0.remove_tenant(t))
    }
    async fn stale_intents(
        &self,
        before: DateTime<Utc>,
        after: Option<&PendingUpload>,
        limit: u32,
    ) -> Result<Vec<PendingUpload>, CatalogError> {
        timed!("catalog", self, "stale_intents", self.0.stale_intents(before, after, limit))
    }
    async fn intent_under(&self, b: &BucketName, prefix: &str) -> Result<bool, CatalogError> {
        timed!("catalog", self, "intent_under", self.0.intent_under(b, prefix))
    }
    async fn referenced(&self, b: &BucketName, keys: &[String]) -> Result<HashSet<String>, CatalogError> {
        timed!("catalog", self, "referenced", self.0.referenced(b, keys))
    }
    async fn scan_files(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileRecord>, CatalogError> {
        timed!("catalog", self, "scan_files", self.0.scan_files(after, limit))
    }
    async fn create_session(&self, s: &UploadSession) -> Result<(), CatalogError> {
        bounded!("catalog", self, "create_session", self.0.create_session(s))
    }
    async fn session(&self, t: &TenantId, id: &str) -> Result<Option<UploadSession>, CatalogError> {
        bounded_read!("catalog", self, "session", self.0.session(t, id))
    }
    async fn lock_session(
        &self,
        t: &TenantId,
        id: &str,
        offset: u64,
        token: &str,
        lease: Duration,
    ) -> Result<Result<UploadSession, LockRefusal>, CatalogError> {
        bounded!("catalog", self, "lock_session", self.0.lock_session(t, id, offset, token, lease))
    }
    async fn renew_session_lock(
        &self,
        t: &TenantId,
        id: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, CatalogError> {
        bounded!("catalog", self, "renew_session_lock", self.0.renew_session_lock(t, id, token, lease))
    }
    async fn save_session(&self, s: &UploadSession, token: &str, release: bool) -> Result<bool, CatalogError> {
        bounded!("catalog", self, "save_session", self.0.save_session(s, token, release))
    }
    async fn remove_session(
        &self,
        t: &TenantId,
        id: &str,
        token: Option<&str>,
    ) -> Result<Option<UploadSession>, CatalogError> {
        bounded!("catalog", self, "remove_session", self.0.remove_session(t, id, token))
    }
    async fn expired_sessions(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<UploadSession>, CatalogError> {
        timed!("catalog", self, "expired_sessions", self.0.expired_sessions(before, limit))
    }
    async fn reserved_bytes(&self, t: &TenantId) -> Result<u64, CatalogError> {
        bounded_read!("catalog", self, "reserved_bytes", self.0.reserved_bytes(t))
    }
    async fn claim_upload_link(
        &self,
        t: &TenantId,
        link: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, CatalogError> {
        bounded!("catalog", self, "claim_upload_link", self.0.claim_upload_link(t, link, expires_at))
    }
    async fn release_upload_link(&self, t: &TenantId, link: &str) -> Result<(), CatalogError> {
        bounded!("catalog", self, "release_upload_link", self.0.release_upload_link(t, link))
    }
}
