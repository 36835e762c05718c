//! The blob store: where object bytes live. One trait, one implementation per engine
//! (`fs` here; S3 beside it), one conformance suite (`tests/blob_store.rs`) run against all.
//!
//! Contract shared by every implementation:
//! - `put` is atomic: readers see either nothing or the complete object under its key, never a
//!   prefix; when the body stream fails, nothing remains under the key.
//! - `put` never replaces an existing key (each upload writes a fresh [`BlobKey`] version).
//! - `delete` is idempotent: deleting a missing key succeeds.

mod error;
mod fs;
mod s3;

use std::ops::RangeInclusive;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use error::BlobError;
pub use fs::{Conversion, FsBlobStore};
pub use s3::{S3BlobStore, iam, provision};

use crate::domain::{BlobKey, BucketName, TenantId};

/// A stream of body bytes. Errors of kind `Other` carrying a
/// [`crate::service::BodyError`] come from the service's own limits, and are passed back
/// unchanged inside [`BlobError::Body`].
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What an append to a partial object knows of lengths before its bytes arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lengths {
    /// The body's announced length (an engine may stream by it): a longer body fails with
    /// `Body`; a shorter one (its client went away) keeps what arrived, as any append does.
    pub body: Option<u64>,
    /// The whole object's length, when the upload announced it: a body ending there ends the
    /// object, and an engine may finish its last bytes as they arrive.
    pub object: Option<u64>,
}

/// An append to a partial object whose bytes are written but not yet durable
/// ([`BlobStore::partial_write`]).
pub struct PartialWrite {
    /// The state after the append.
    pub state: String,
    /// The bytes appended.
    pub appended: u64,
    /// Resolves once the bytes are durable (already running: it need not be polled to progress).
    pub durable: futures::future::BoxFuture<'static, Result<(), BlobError>>,
}

/// Where an append to a partial object starts.
#[derive(Debug, Clone, Copy)]
pub struct PartialAt<'s> {
    /// The state appended to: the catalog's, or that of an append written but not yet recorded.
    pub state: &'s str,
    /// The state the catalog records (`state` itself unless that is an unrecorded append's).
    pub acknowledged: &'s str,
    /// The bytes `state` holds.
    pub offset: u64,
}

impl PartialWrite {
    /// An append whose bytes were durable when it returned.
    pub fn durable_already(state: String, appended: u64) -> Self {
        Self { state, appended, durable: Box::pin(std::future::ready(Ok(()))) }
    }
}

impl Lengths {
    /// An announced body length only.
    pub fn body(length: u64) -> Self {
        Self { body: Some(length), object: None }
    }
}

/// What a successful `put` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub size: u64,
}

/// An object's bytes (possibly a range of them) being read.
pub struct BlobRead {
    /// Total size of the whole object.
    pub size: u64,
    /// The bytes of the requested range (or the whole object).
    pub body: ByteStream,
}

/// Where an object stands with respect to archive storage classes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ArchiveState {
    /// `STANDARD`, `INTELLIGENT_TIERING`, `GLACIER`, `DEEP_ARCHIVE`, …
    pub storage_class: String,
    /// The store's restore status (`ongoing-request="true"`, or `false` with an expiry).
    pub restore: Option<String>,
    /// Whether a GET would return the bytes now.
    pub readable: bool,
}

/// A page of physical keys, for reconciliation walks.
#[derive(Debug, Clone, Default)]
pub struct BlobPage {
    pub keys: Vec<String>,
    /// Pass back as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A write the store holds apart from its objects (an S3 multipart upload): the key it would
/// complete to and the engine's id for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedWrite {
    pub key: String,
    pub id: String,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A short name of the engine, for logs and `/readyz`.
    fn engine(&self) -> &'static str;

    /// Writes `body` under `key` atomically and durably. `content_type` is recorded where the
    /// engine keeps metadata; `length`, when known, is the body's exact length (a body that
    /// turns out longer or shorter fails with `Body`). Returns `Body` when the stream itself
    /// failed; nothing is left.
    async fn put(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        content_type: &str,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<PutResult, BlobError>;

    /// Opens `key` for reading, optionally only the inclusive byte `range` (already validated
    /// against the size recorded in the catalog). Returns `NotFound` when absent.
    async fn get(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<BlobRead, BlobError>;

    /// Removes `key`; succeeds when it is already gone.
    async fn delete(&self, bucket: &BucketName, key: &BlobKey) -> Result<(), BlobError>;

    /// Lists physical keys in `bucket` in ascending order, at most `limit`, strictly after
    /// `after`. Keys that are not well-formed blob keys are listed too (reconcile reports them).
    async fn list(&self, bucket: &BucketName, after: Option<&str>, limit: usize) -> Result<BlobPage, BlobError>;

    /// Whether `key` exists.
    async fn exists(&self, bucket: &BucketName, key: &BlobKey) -> Result<bool, BlobError>;

    /// For a listed key that is not a blob key: how old it is, when the engine recognises it
    /// as its own leftover (a temporary file of an interrupted write). `None` otherwise.
    async fn stray_age(&self, bucket: &BucketName, key: &str) -> Option<std::time::Duration>;

    /// Removes a leftover that `stray_age` recognised.
    async fn remove_stray(&self, bucket: &BucketName, key: &str) -> Result<(), BlobError>;

    /// Writes the engine keeps apart from objects until they complete (S3 multipart uploads)
    /// that were started more than `older_than` ago. Engines without such writes have none.
    async fn unfinished_writes(
        &self,
        _bucket: &BucketName,
        _older_than: std::time::Duration,
    ) -> Result<Vec<UnfinishedWrite>, BlobError> {
        Ok(Vec::new())
    }

    /// Abandons one of [`Self::unfinished_writes`], releasing what it holds: `true` when this
    /// call abandoned it, `false` when the store says it is already gone.
    async fn abandon_write(&self, _bucket: &BucketName, _write: &UnfinishedWrite) -> Result<bool, BlobError> {
        Ok(false)
    }

    /// Succeeds when the store can serve `bucket` (exists and is reachable).
    async fn check(&self, bucket: &BucketName) -> Result<(), BlobError>;

    /// Creates the bucket if it does not exist; `true` when it was created.
    async fn ensure_bucket(&self, bucket: &BucketName) -> Result<bool, BlobError>;

    /// A URL at the store itself that serves `GET key` until `expires_in` passes, with the given
    /// response headers; `None` when the engine gives no such URL for this lifetime (no such
    /// URLs at all, proxy mode, or longer than the engine's bound): coffer signs its own then.
    async fn presign_get(
        &self,
        _bucket: &BucketName,
        _key: &BlobKey,
        _expires_in: std::time::Duration,
        _content_disposition: &str,
        _content_type: &str,
    ) -> Option<Result<String, BlobError>> {
        None
    }

    /// The origin direct links point at (for the console's Content-Security-Policy); `None`
    /// when the store hands out none.
    fn presign_origin(&self) -> Option<String> {
        None
    }

    /// The object's storage class and restore status; `None` where archive tiers do not exist.
    async fn archive_state(&self, _bucket: &BucketName, _key: &BlobKey) -> Result<Option<ArchiveState>, BlobError> {
        Ok(None)
    }

    /// Destroys `tenant`'s data key, where the engine seals objects with one: everything sealed
    /// with it becomes unreadable. `false` when there was none (or the engine has no keys).
    async fn destroy_tenant_key(&self, _tenant: &TenantId) -> Result<bool, BlobError> {
        Ok(false)
    }

    /// Removes every object (and partial write) under `tenant-{tenant}/` in `bucket`; how many.
    async fn delete_tenant(&self, bucket: &BucketName, tenant: &TenantId) -> Result<u64, BlobError>;

    /// Starts the partial object of a resumable upload that will become `key`; returns the
    /// engine's state for it (kept by the catalog and handed back on every call).
    async fn partial_begin(&self, bucket: &BucketName, key: &BlobKey, content_type: &str) -> Result<String, BlobError>;

    /// Appends `body` to the partial object of `key`, which holds `offset` acknowledged bytes
    /// (anything an earlier, unacknowledged append left past them is discarded). Durable when
    /// it returns. Returns the new state and the bytes appended. `lengths` says what is known
    /// ahead of the bytes ([`Lengths`]).
    async fn partial_append(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
        body: ByteStream,
        lengths: Lengths,
    ) -> Result<(String, u64), BlobError>;

    /// Writes as [`BlobStore::partial_append`] does, but returns once the bytes are written,
    /// with a future that resolves once they are durable. The next append may start from the
    /// returned state before that (`at.state` the returned one, `at.acknowledged` the one the
    /// catalog still records): what it writes leaves both states readable, so after a crash
    /// whichever the catalog recorded stands. An engine whose writes are durable when they
    /// return keeps the default.
    async fn partial_write(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        at: PartialAt<'_>,
        body: ByteStream,
        lengths: Lengths,
    ) -> Result<PartialWrite, BlobError> {
        let (state, appended) = self.partial_append(bucket, key, at.state, at.offset, body, lengths).await?;
        Ok(PartialWrite::durable_already(state, appended))
    }

    /// Makes the partial object of `key`, complete at `offset` bytes, the object `key`:
    /// atomically and durably, as `put` would leave it. Finishing an object that was finished
    /// already succeeds (a retry after a process died before the catalog recorded it).
    async fn partial_finish(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
    ) -> Result<(), BlobError>;

    /// Removes what the partial object needed under `old` and no longer does under `new`
    /// (called once the catalog recorded `new`). Best effort: reconcile removes the rest.
    async fn partial_release(&self, bucket: &BucketName, key: &BlobKey, old: &str, new: &str);

    /// Removes the partial object of `key` (terminated or expired); succeeds when it is gone.
    async fn partial_abort(&self, bucket: &BucketName, key: &BlobKey, state: &str) -> Result<(), BlobError>;

    /// Starts restoring an archived object for `days` at retrieval `tier`.
    async fn restore(&self, _bucket: &BucketName, _key: &BlobKey, _days: i32, _tier: &str) -> Result<(), BlobError> {
        Err(BlobError::Unsupported("this storage engine has no archive tiers"))
    }
}
