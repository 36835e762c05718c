//! Resumable uploads on the filesystem store. A partial object lives in the directory of the
//! version it will become: `.tus-data` holds its bytes, and is renamed to the object's name
//! when the upload completes (a rename, not a copy: 1 GiB finishes as fast as 1 KiB).
//!
//! Plaintext stores append to `.tus-data` and cut it back to the acknowledged offset before
//! each append. Sealed stores write `.tus-data` in the sealed-object format from the start:
//! the header, then every segment known not to be the last. The rest — 1 to 65,536 bytes once
//! anything arrived — is sealed on its own, with a fresh header (so a fresh derived key), in
//! `.tus-tail-{offset}`, which an append reads back and the finishing append seals as the last
//! segment. So no plaintext byte reaches the disk, and the nonce of a segment is used only for
//! the bytes that segment finally holds — unless a client resends *different* bytes for a
//! range it never got acknowledged (the segments past the acknowledged offset are rewritten
//! under the same nonces; ARCHITECTURE.md discusses this).

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::super::{BlobError, ByteStream};
use super::{FsBlobStore, WRITE_BUFFER, create_dirs_durably, sealed, sync_dir};
use crate::crypt::{HEADER_LEN, Header, Keyring, Sealer, TAG_LEN};
use crate::domain::{BlobKey, BucketName};

pub const DATA: &str = ".tus-data";
pub const TAIL_PREFIX: &str = ".tus-tail-";

impl FsBlobStore {
    pub(super) async fn begin_partial(&self, bucket: &BucketName, key: &BlobKey) -> Result<String, BlobError> {
        let base = self.bucket_exists(bucket).await?;
        let dir = self.version_dir(bucket, key);
        create_dirs_durably(&base, &dir).await?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(DATA))
            .await?;
        if let Some(keyring) = &self.keyring {
            let data_key = sealed::current_key(keyring, key.object_key().tenant()).await?;
            file.write_all(&Header::generate(data_key.id).encode()).await?;
        }
        file.sync_all().await?;
        sync_dir(&dir).await?;
        Ok(String::new())
    }

    pub(super) async fn append_partial(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        offset: u64,
        body: ByteStream,
    ) -> Result<u64, BlobError> {
        let dir = self.version_dir(bucket, key);
        let file = open_data(&dir).await?;
        match &self.keyring {
            None => {
                file.set_len(offset).await?;
                let mut file = file;
                file.seek(SeekFrom::Start(offset)).await?;
                append_plain(file, body).await
            }
            Some(keyring) => append_sealed(keyring, &dir, key, file, offset, body).await,
        }
    }

    pub(super) async fn finish_partial(&self, bucket: &BucketName, key: &BlobKey, offset: u64) -> Result<(), BlobError> {
        let dir = self.version_dir(bucket, key);
        let file = open_data(&dir).await?;
        match &self.keyring {
            None => {
                file.set_len(offset).await?;
                file.sync_all().await?;
            }
            Some(keyring) => seal_last(keyring, &dir, key, file, offset).await?,
        }
        tokio::fs::rename(dir.join(DATA), self.path(bucket, key)).await?;
        sync_dir(&dir).await?;
        self.release_partial(bucket, key, None).await;
        Ok(())
    }

    /// Removes the tail files other than the current one (`offset`).
    pub(super) async fn release_partial(&self, bucket: &BucketName, key: &BlobKey, offset: Option<u64>) {
        let dir = self.version_dir(bucket, key);
        let keep = offset.map(|o| format!("{TAIL_PREFIX}{o}"));
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else { return };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TAIL_PREFIX) && Some(&name) != keep.as_ref() {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }

    pub(super) async fn abort_partial(&self, bucket: &BucketName, key: &BlobKey) -> Result<(), BlobError> {
        let dir = self.version_dir(bucket, key);
        self.release_partial(bucket, key, None).await;
        match tokio::fs::remove_file(dir.join(DATA)).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        // The version directory held only the partial object.
        if tokio::fs::remove_dir(&dir).await.is_ok()
            && let Some(parent) = dir.parent()
        {
            sync_dir(parent).await?;
        }
        Ok(())
    }

    fn version_dir(&self, bucket: &BucketName, key: &BlobKey) -> PathBuf {
        self.path(bucket, key).parent().expect("blob path has a parent").to_owned()
    }
}

async fn append_plain(file: tokio::fs::File, mut body: ByteStream) -> Result<u64, BlobError> {
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BlobError::Body)?;
        out.write_all(&chunk).await?;
        size += chunk.len() as u64;
    }
    out.flush().await?;
    out.into_inner().sync_all().await?;
    Ok(size)
}

fn corrupt(key: &BlobKey, e: impl std::fmt::Display) -> BlobError {
    BlobError::Corrupt(format!("{key} (partial): {e}"))
}

/// The sealer of a partial object's tail file (its own header, its own derived key).
fn tail_identity(key: &BlobKey) -> String {
    format!("{key}#tail")
}

async fn open_data(dir: &Path) -> Result<tokio::fs::File, BlobError> {
    match tokio::fs::OpenOptions::new().read(true).write(true).open(dir.join(DATA)).await {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(BlobError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// A sealed partial object opened at `offset`: its sealer, the index of the segment the tail
/// will become, and the tail's plaintext. The file is cut after the sealed segments.
async fn resume_sealed(
    keyring: &Arc<Keyring>,
    dir: &Path,
    key: &BlobKey,
    file: &mut tokio::fs::File,
    offset: u64,
) -> Result<(Sealer, u64, BytesMut), BlobError> {
    let mut head = [0u8; HEADER_LEN];
    file.read_exact(&mut head).await.map_err(|e| corrupt(key, e))?;
    let header = Header::decode(&head).ok_or_else(|| corrupt(key, "no header"))?.map_err(|e| corrupt(key, e))?;
    let data_key = sealed::find_key(keyring, key.object_key().tenant(), header.key_id).await?;
    let sealer = Sealer::new(&data_key, header.clone(), &key.to_string());
    let segment = u64::from(header.segment);
    // Segments sealed so far: all but the tail, which holds 1..=S bytes once anything arrived.
    let full = if offset == 0 { 0 } else { (offset - 1) / segment };
    let tail_len = (offset - full * segment) as usize;
    let mut buf = BytesMut::with_capacity(WRITE_BUFFER + segment as usize);
    if tail_len > 0 {
        let tail = read_tail(keyring, dir, key, offset).await?;
        if tail.len() != tail_len {
            return Err(corrupt(key, format!("tail holds {} bytes, {tail_len} expected", tail.len())));
        }
        buf.extend_from_slice(&tail);
    }
    let on_disk = HEADER_LEN as u64 + full * header.sealed_segment();
    file.set_len(on_disk).await?;
    file.seek(SeekFrom::Start(on_disk)).await?;
    Ok((sealer, full, buf))
}

async fn append_sealed(
    keyring: &Arc<Keyring>,
    dir: &Path,
    key: &BlobKey,
    mut file: tokio::fs::File,
    offset: u64,
    mut body: ByteStream,
) -> Result<u64, BlobError> {
    let (sealer, mut index, mut buf) = resume_sealed(keyring, dir, key, &mut file, offset).await?;
    let segment = sealer.header().segment as usize;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut appended = 0u64;
    let mut sealed_out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BlobError::Body)?;
        appended += chunk.len() as u64;
        buf.extend_from_slice(&chunk);
        // Seal every segment that more bytes follow; the last one waits in the tail.
        while buf.len() > segment {
            let mut seg = buf.split_to(segment);
            let tag = sealer.seal_detached(index, false, &mut seg);
            index += 1;
            sealed_out.extend_from_slice(&seg);
            sealed_out.extend_from_slice(tag.as_ref());
        }
        if !sealed_out.is_empty() {
            out.write_all(&sealed_out).await?;
            sealed_out.clear();
        }
    }
    out.flush().await?;
    out.into_inner().sync_all().await?;
    if appended > 0 {
        write_tail(keyring, dir, key, offset + appended, &buf).await?;
    }
    Ok(appended)
}

/// Seals the tail of a partial object complete at `offset` as its last segment.
async fn seal_last(
    keyring: &Arc<Keyring>,
    dir: &Path,
    key: &BlobKey,
    mut file: tokio::fs::File,
    offset: u64,
) -> Result<(), BlobError> {
    let (sealer, index, mut last) = resume_sealed(keyring, dir, key, &mut file, offset).await?;
    let tag = sealer.seal_detached(index, true, &mut last);
    file.write_all(&last).await?;
    file.write_all(tag.as_ref()).await?;
    file.sync_all().await?;
    Ok(())
}

async fn read_tail(keyring: &Arc<Keyring>, dir: &Path, key: &BlobKey, offset: u64) -> Result<Vec<u8>, BlobError> {
    let sealed = match tokio::fs::read(dir.join(format!("{TAIL_PREFIX}{offset}"))).await {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(corrupt(key, "its tail is missing")),
        Err(e) => return Err(e.into()),
    };
    let header = Header::decode(&sealed).ok_or_else(|| corrupt(key, "tail without header"))?.map_err(|e| corrupt(key, e))?;
    let data_key = sealed::find_key(keyring, key.object_key().tenant(), header.key_id).await?;
    let sealer = Sealer::new(&data_key, header, &tail_identity(key));
    let mut body = sealed[HEADER_LEN..].to_vec();
    let len = sealer.open(0, true, &mut body).map_err(|e| corrupt(key, e))?;
    body.truncate(len);
    Ok(body)
}

/// Writes the tail durably under its offset's name (a new file; the previous tail stays until
/// the catalog has recorded the new offset).
async fn write_tail(keyring: &Arc<Keyring>, dir: &Path, key: &BlobKey, offset: u64, tail: &[u8]) -> Result<(), BlobError> {
    let data_key = sealed::current_key(keyring, key.object_key().tenant()).await?;
    let header = Header::generate(data_key.id);
    let sealer = Sealer::new(&data_key, header.clone(), &tail_identity(key));
    let mut out = Vec::with_capacity(HEADER_LEN + tail.len() + TAG_LEN);
    out.extend_from_slice(&header.encode());
    let mut body = tail.to_vec();
    let tag = sealer.seal_detached(0, true, &mut body);
    out.extend_from_slice(&body);
    out.extend_from_slice(tag.as_ref());
    let path = dir.join(format!("{TAIL_PREFIX}{offset}"));
    let temp = dir.join(format!("{TAIL_PREFIX}{offset}.new"));
    let mut file =
        tokio::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp).await?;
    file.write_all(&out).await?;
    file.sync_all().await?;
    tokio::fs::rename(&temp, &path).await?;
    sync_dir(dir).await?;
    Ok(())
}
