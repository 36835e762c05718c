//! Filesystem blob store (the embedded default): a bucket is a directory under the data dir
//! and a blob key is a relative path inside it. With a [`Keyring`] (the default for new data
//! dirs) every object is sealed with its tenant's data key (`sealed.rs`, `crate::crypt`).

use std::io::{ErrorKind, SeekFrom};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{BlobError, BlobPage, BlobRead, BlobStore, ByteStream, Lengths, PartialAt, PartialWrite, PutResult};
use crate::crypt::Keyring;
use crate::domain::{BlobKey, BucketName, TenantId};

pub use sealed::Conversion;

const TEMP_PREFIX: &str = ".part-";
/// Temporary files of `coffer keys encrypt-existing` (sealed copies not yet renamed).
const SEAL_PREFIX: &str = ".seal-";
const READ_CHUNK: usize = 512 * 1024;

#[derive(Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    keyring: Option<Arc<Keyring>>,
    resumes: Arc<resume::Resumes>,
}

impl std::fmt::Debug for FsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsBlobStore").field("root", &self.root).field("sealed", &self.keyring.is_some()).finish()
    }
}

impl FsBlobStore {
    /// A store whose buckets are directories under `root`, objects in plaintext.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), keyring: None, resumes: Arc::default() }
    }

    /// A store that seals every object it writes with `keyring`'s tenant keys.
    pub fn sealed(root: impl Into<PathBuf>, keyring: Arc<Keyring>) -> Self {
        Self { root: root.into(), keyring: Some(keyring), resumes: Arc::default() }
    }

    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.keyring.as_ref()
    }

    /// Whether any bucket holds any object (a data dir written before encryption existed).
    pub async fn has_objects(&self) -> bool {
        let Ok(mut buckets) = tokio::fs::read_dir(&self.root).await else { return false };
        while let Ok(Some(entry)) = buckets.next_entry().await {
            let base = entry.path();
            let found = tokio::task::spawn_blocking(move || walk::page(&base, &[], 1).map(|p| !p.keys.is_empty()))
                .await
                .ok()
                .and_then(Result::ok);
            if found == Some(true) {
                return true;
            }
        }
        false
    }

    /// Removes a sealed copy an interrupted `encrypt-existing` left behind under the listed
    /// physical `key`; `false` when `key` is not one.
    pub async fn remove_seal_leftover(&self, bucket: &BucketName, key: &str) -> Result<bool, BlobError> {
        if !key.rsplit('/').next().is_some_and(|n| n.starts_with(SEAL_PREFIX)) {
            return Ok(false);
        }
        self.remove_stray(bucket, key).await.map(|()| true)
    }

    /// Seals the object stored under the physical `key` of `bucket` in place, when it is
    /// plaintext (`coffer keys encrypt-existing`).
    pub async fn seal_existing(&self, bucket: &BucketName, key: &BlobKey) -> Result<Conversion, BlobError> {
        let keyring = self.keyring.as_ref().ok_or(BlobError::Unsupported("this data dir has no key store"))?;
        match sealed::seal_in_place(keyring, &self.path(bucket, key), key).await {
            Err(BlobError::Io(e)) if e.kind() == ErrorKind::NotFound => Ok(Conversion::AlreadySealed),
            other => other,
        }
    }

    fn bucket_dir(&self, bucket: &BucketName) -> PathBuf {
        self.root.join(bucket.as_str())
    }

    fn path(&self, bucket: &BucketName, key: &BlobKey) -> PathBuf {
        // Every component of a blob key is a validated single path segment.
        let mut path = self.bucket_dir(bucket);
        path.extend(key.to_string().split('/'));
        path
    }

    /// `put` of a body already in memory: sealing, the bucket check and every file operation
    /// in one blocking task.
    async fn put_small(&self, bucket: &BucketName, key: &BlobKey, plain: bytes::Bytes) -> Result<PutResult, BlobError> {
        let (base, path) = (self.bucket_dir(bucket), self.path(bucket, key));
        let (keyring, key, bucket) = (self.keyring.clone(), key.clone(), bucket.clone());
        let size = plain.len() as u64;
        tokio::task::spawn_blocking(move || {
            let stored = match &keyring {
                Some(keyring) => std::borrow::Cow::Owned(sealed::seal_whole(keyring, &key, &plain)?),
                None => std::borrow::Cow::Borrowed(&plain[..]),
            };
            bucket_dir_found(std::fs::metadata(&base), &bucket)?;
            let dir = path.parent().expect("blob path has a parent");
            write_file_durably(&base, dir, &path, &stored)?;
            Ok(PutResult { size })
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn bucket_exists(&self, bucket: &BucketName) -> Result<PathBuf, BlobError> {
        let dir = self.bucket_dir(bucket);
        bucket_dir_found(tokio::fs::metadata(&dir).await, bucket).map(|()| dir)
    }
}

/// A bucket's directory as its metadata lookup found it: `NoSuchBucket` when it is missing or
/// not a directory.
fn bucket_dir_found(found: std::io::Result<std::fs::Metadata>, bucket: &BucketName) -> Result<(), BlobError> {
    match found {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(BlobError::NoSuchBucket(bucket.to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(BlobError::NoSuchBucket(bucket.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// A body whose length is not the one it announced (`Content-Length`): refused, nothing kept.
fn wrong_length(size: u64, announced: u64) -> BlobError {
    BlobError::Body(std::io::Error::other(format!("the body held {size} bytes, not the {announced} announced")))
}

/// fsync a directory so that a rename or a newly created entry in it is durable.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(std::io::Error::other)?
}

/// Creates every missing directory from `base` down to `dir`, syncing each parent whose
/// entries changed so that the new directories survive a crash.
async fn create_dirs_durably(base: &Path, dir: &Path) -> std::io::Result<()> {
    let (base, dir) = (base.to_owned(), dir.to_owned());
    tokio::task::spawn_blocking(move || create_dirs_durably_blocking(&base, &dir))
        .await
        .map_err(std::io::Error::other)?
}

fn create_dirs_durably_blocking(base: &Path, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let rel = dir.strip_prefix(base).map_err(std::io::Error::other)?;
    let mut current = base.to_owned();
    for part in rel.components() {
        let parent = current.clone();
        current.push(part);
        match std::fs::DirBuilder::new().mode(0o700).create(&current) {
            Ok(()) => std::fs::File::open(&parent)?.sync_all()?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bodies announced at this size or less are gathered in memory and written (sealed, synced,
/// renamed into place) in one trip to the blocking pool instead of one per file operation.
const SMALL_BODY: u64 = 256 * 1024;

/// Reads all of `body`, which announced `announced` bytes (at most [`SMALL_BODY`]); a body of
/// another length is refused, as a streamed one is.
async fn gather(mut body: ByteStream, announced: u64) -> Result<bytes::Bytes, BlobError> {
    let mut buf = bytes::BytesMut::with_capacity(announced as usize);
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BlobError::Body)?;
        size += chunk.len() as u64;
        if size <= announced {
            buf.extend_from_slice(&chunk);
        }
    }
    if size != announced {
        return Err(wrong_length(size, announced));
    }
    Ok(buf.freeze())
}

/// Writes `bytes` as the new file `path` in `dir` (created under `base` as needed): a temporary
/// file written and synced, renamed into place, its directory synced. On failure nothing of it
/// is left.
fn write_file_durably(base: &Path, dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    create_dirs_durably_blocking(base, dir)?;
    let temp = dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::now_v7().simple()));
    let written = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
        let _ = std::fs::remove_dir(dir);
    }
    written
}

/// The size of a write: small pieces of a body are gathered into writes this large, and a
/// sealed piece is about this large.
const WRITE_BUFFER: usize = 1024 * 1024;

/// How much a body writes before it asks the kernel to start writing it back.
pub(super) const WRITEBACK_EVERY: usize = 4 * WRITE_BUFFER;

/// Starts writing back what the file holds so far, without waiting (Linux's `sync_file_range`
/// with `SYNC_FILE_RANGE_WRITE`): the disk works while the rest of the body arrives, and the
/// fsync that acknowledges the upload or append has little left to wait for. The kernel's own
/// writeback would not start before a tenth of memory is dirty (gigabytes), so without this a
/// 1 GiB upload's whole flush waited behind its last byte. A hint only: its failure changes
/// nothing (the fsync decides).
pub(super) fn start_writeback(fd: std::os::fd::RawFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: `fd` is the open file of the writer calling this; the call only reads its flags.
    unsafe {
        libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Reads a plaintext object of `size` bytes (optionally a range of it).
async fn plain_read(
    mut file: tokio::fs::File,
    size: u64,
    range: Option<RangeInclusive<u64>>,
) -> Result<BlobRead, BlobError> {
    let body: ByteStream = match range {
        Some(r) => {
            file.seek(SeekFrom::Start(*r.start())).await?;
            let len = r.end().saturating_sub(*r.start()) + 1;
            Box::pin(ReaderStream::with_capacity(file.take(len), READ_CHUNK))
        }
        None => Box::pin(ReaderStream::with_capacity(file, READ_CHUNK)),
    };
    Ok(BlobRead { size, body })
}

#[async_trait]
impl BlobStore for FsBlobStore {
    fn engine(&self) -> &'static str {
        "filesystem"
    }

    async fn put(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        _content_type: &str,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<PutResult, BlobError> {
        if let Some(announced) = length.filter(|&n| n <= SMALL_BODY) {
            let plain = gather(body, announced).await?;
            return self.put_small(bucket, key, plain).await;
        }
        let base = self.bucket_exists(bucket).await?;
        let path = self.path(bucket, key);
        let dir = path.parent().expect("blob path has a parent").to_owned();
        create_dirs_durably(&base, &dir).await?;
        // A name no blob has (`stray_age` recognises it); reconcile removes it once it is
        // neither written to nor owned by a pending upload.
        let temp = dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::now_v7().simple()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).await?;
        let written = match &self.keyring {
            None => write_body(file, body).await,
            Some(keyring) => match sealed::seal_body(keyring, key, body).await {
                Ok((sealed, header)) => write_body(file, sealed).await.and_then(|stored| {
                    header.plaintext_len(stored).map_err(|e| BlobError::Corrupt(format!("{key}: {e}")))
                }),
                Err(e) => Err(e),
            },
        };
        let written = written.and_then(|size| match length {
            Some(announced) if announced != size => Err(wrong_length(size, announced)),
            _ => Ok(size),
        });
        let result = match written {
            Ok(size) => match tokio::fs::rename(&temp, &path).await {
                Ok(()) => sync_dir(&dir).await.map(|()| size).map_err(BlobError::from),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
            let _ = tokio::fs::remove_dir(&dir).await;
        }
        result.map(|size| PutResult { size })
    }

    async fn get(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let file = match tokio::fs::File::open(self.path(bucket, key)).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        };
        match &self.keyring {
            Some(keyring) => sealed::open(keyring, bucket.as_str(), key, file, range).await,
            None => {
                let size = file.metadata().await?.len();
                plain_read(file, size, range).await
            }
        }
    }

    async fn delete(&self, bucket: &BucketName, key: &BlobKey) -> Result<(), BlobError> {
        let path = self.path(bucket, key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let dir = path.parent().expect("blob path has a parent");
        // The version directory held only this object; leave it if anything else is there.
        let _ = tokio::fs::remove_dir(dir).await;
        if let Some(parent) = dir.parent() {
            sync_dir(parent).await?;
        }
        Ok(())
    }

    async fn list(&self, bucket: &BucketName, after: Option<&str>, limit: usize) -> Result<BlobPage, BlobError> {
        let base = self.bucket_exists(bucket).await?;
        let after: Vec<String> = after.map(|a| a.split('/').map(str::to_owned).collect()).unwrap_or_default();
        tokio::task::spawn_blocking(move || walk::page(&base, &after, limit))
            .await
            .map_err(std::io::Error::other)?
            .map_err(BlobError::from)
    }

    async fn exists(&self, bucket: &BucketName, key: &BlobKey) -> Result<bool, BlobError> {
        match tokio::fs::metadata(self.path(bucket, key)).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn stray_age(&self, bucket: &BucketName, key: &str) -> Option<std::time::Duration> {
        let last = key.rsplit('/').next()?;
        if last != partial::DATA && last != partial::TAIL {
            let name = last.strip_prefix(TEMP_PREFIX).or_else(|| last.strip_prefix(SEAL_PREFIX))?;
            uuid::Uuid::try_parse(name).ok()?;
        }
        // Age since the last write, not since creation: a long upload still being written is
        // live however old its file is.
        let mut path = self.bucket_dir(bucket);
        path.extend(key.split('/'));
        let written = match tokio::fs::metadata(&path).await.and_then(|m| m.modified()) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Some(std::time::Duration::ZERO),
            Err(_) => return None,
        };
        Some(std::time::SystemTime::now().duration_since(written).unwrap_or_default())
    }

    async fn remove_stray(&self, bucket: &BucketName, key: &str) -> Result<(), BlobError> {
        let mut path = self.bucket_dir(bucket);
        if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(BlobError::Io(std::io::Error::other(format!("refusing odd path {key:?}"))));
        }
        path.extend(key.split('/'));
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }

    async fn check(&self, bucket: &BucketName) -> Result<(), BlobError> {
        self.bucket_exists(bucket).await.map(|_| ())
    }

    async fn partial_begin(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        _content_type: &str,
    ) -> Result<String, BlobError> {
        self.begin_partial(bucket, key).await
    }

    async fn partial_append(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
        body: ByteStream,
        lengths: Lengths,
    ) -> Result<(String, u64), BlobError> {
        let at = PartialAt { state, acknowledged: state, offset };
        let written = self.partial_write(bucket, key, at, body, lengths).await?;
        written.durable.await?;
        Ok((written.state, written.appended))
    }

    async fn partial_write(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        at: PartialAt<'_>,
        body: ByteStream,
        lengths: Lengths,
    ) -> Result<PartialWrite, BlobError> {
        let written = self.write_partial(bucket, key, at, body, lengths.object).await?;
        match lengths.body {
            // Not acknowledged: the next append from `offset` replaces what this one wrote.
            Some(announced) if written.appended > announced => Err(BlobError::Body(std::io::Error::other(format!(
                "the body held {} bytes, more than the {announced} announced",
                written.appended
            )))),
            _ => Ok(written),
        }
    }

    async fn partial_finish(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
    ) -> Result<(), BlobError> {
        self.finish_partial(bucket, key, state, offset).await
    }

    async fn partial_release(&self, _bucket: &BucketName, _key: &BlobKey, _old: &str, _new: &str) {
        // A state names one of three slots that every append reuses: nothing to release.
    }

    async fn partial_abort(&self, bucket: &BucketName, key: &BlobKey, _state: &str) -> Result<(), BlobError> {
        self.abort_partial(bucket, key).await
    }

    async fn destroy_tenant_key(&self, tenant: &TenantId) -> Result<bool, BlobError> {
        let Some(keyring) = &self.keyring else { return Ok(false) };
        let (keyring, tenant) = (keyring.clone(), tenant.clone());
        tokio::task::spawn_blocking(move || keyring.destroy(&tenant))
            .await
            .map_err(std::io::Error::other)?
            .map_err(BlobError::Key)
    }

    async fn delete_tenant(&self, bucket: &BucketName, tenant: &TenantId) -> Result<u64, BlobError> {
        let dir = self.bucket_dir(bucket).join(format!("tenant-{tenant}"));
        let removed =
            tokio::task::spawn_blocking(move || walk::remove_tree(&dir)).await.map_err(std::io::Error::other)??;
        sync_dir(&self.bucket_dir(bucket))
            .await
            .or_else(|e| if e.kind() == ErrorKind::NotFound { Ok(()) } else { Err(e) })?;
        Ok(removed)
    }

    async fn ensure_bucket(&self, bucket: &BucketName) -> Result<bool, BlobError> {
        let dir = self.bucket_dir(bucket);
        if tokio::fs::metadata(&dir).await.is_ok() {
            return Ok(false);
        }
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || crate::util::create_private_dir_all(&root))
            .await
            .map_err(std::io::Error::other)??;
        create_dirs_durably(&self.root, &dir).await?;
        Ok(true)
    }
}

mod partial;
mod resume;
mod sealed;
mod walk;
mod writer;

use writer::write_body;
