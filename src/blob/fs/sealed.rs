//! The filesystem store's encryption at rest: sealing what `put` writes, opening what `get`
//! reads (a sealed object or, in a data dir converted from plaintext, a legacy plaintext one),
//! and converting plaintext objects in place (`coffer keys encrypt-existing`).

use std::io::ErrorKind;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;

use tokio_util::io::ReaderStream;

use super::super::{BlobError, BlobRead, ByteStream};
use crate::crypt::stream::{OpenError, Opener, read_header};
use crate::crypt::{DataKey, Header, KeyError, Keyring, Sealer};
use crate::domain::{BlobKey, TenantId};

const READ_CHUNK: usize = 512 * 1024;

async fn key_op<T: Send + 'static>(
    keyring: &Arc<Keyring>,
    op: impl FnOnce(&Keyring) -> Result<T, KeyError> + Send + 'static,
) -> Result<T, BlobError> {
    let keyring = keyring.clone();
    tokio::task::spawn_blocking(move || op(&keyring)).await.map_err(std::io::Error::other)?.map_err(BlobError::Key)
}

/// The tenant's current data key (created on first use).
pub async fn current_key(keyring: &Arc<Keyring>, tenant: &TenantId) -> Result<DataKey, BlobError> {
    let tenant = tenant.clone();
    key_op(keyring, move |k| k.current(&tenant)).await
}

/// The tenant's data key whose id is `id` (for an object sealed with it).
pub async fn find_key(keyring: &Arc<Keyring>, tenant: &TenantId, id: [u8; 16]) -> Result<DataKey, BlobError> {
    let tenant = tenant.clone();
    key_op(keyring, move |k| k.find(&tenant, &id)).await
}

/// `body` sealed for `key` under the tenant's current data key, and the header it gets (which
/// turns the stored size back into the plaintext size).
pub async fn seal_body(
    keyring: &Arc<Keyring>,
    key: &BlobKey,
    body: ByteStream,
) -> Result<(ByteStream, Header), BlobError> {
    let data_key = current_key(keyring, key.object_key().tenant()).await?;
    let header = Header::generate(data_key.id);
    let sealer = Sealer::new(&data_key, header.clone(), &key.to_string());
    Ok((crate::crypt::stream::seal(sealer, body), header))
}

/// `plaintext` sealed whole for `key` under the tenant's current data key, on the calling
/// (blocking) thread: a small upload's body, already in memory.
pub fn seal_whole(keyring: &Keyring, key: &BlobKey, plaintext: &[u8]) -> Result<Vec<u8>, BlobError> {
    let data_key = keyring.current(key.object_key().tenant()).map_err(BlobError::Key)?;
    let sealer = Sealer::new(&data_key, Header::generate(data_key.id), &key.to_string());
    Ok(crate::crypt::stream::seal_all(&sealer, plaintext))
}

fn corrupt(bucket: &str, key: &BlobKey, e: &dyn std::fmt::Display) -> BlobError {
    tracing::error!(bucket, key = %key, error = %e, "stored object failed verification; refusing to serve it");
    BlobError::Corrupt(format!("{key}: {e}"))
}

/// A failed read as the store reports it: the disk's error, or corrupt bytes (logged).
fn failed(bucket: &str, key: &BlobKey, e: OpenError) -> BlobError {
    match e.disk_failure() {
        Ok(io) => io.into(),
        Err(e) => corrupt(bucket, key, &e),
    }
}

/// Opens `file` (the object `key`) for reading through the keyring: a sealed object is
/// authenticated segment by segment (the first one before this returns); an unsealed one is
/// served only when the key store says it may be a legacy plaintext object.
pub async fn open(
    keyring: &Arc<Keyring>,
    bucket: &str,
    key: &BlobKey,
    mut file: tokio::fs::File,
    range: Option<RangeInclusive<u64>>,
) -> Result<BlobRead, BlobError> {
    let stored = file.metadata().await?.len();
    let header = match read_header(&mut file).await {
        Ok(Some(h)) => h,
        Ok(None) if keyring.may_be_plaintext(key.version().timestamp_millis()) => {
            return super::plain_read(file, stored, range).await;
        }
        Ok(None) => return Err(corrupt(bucket, key, &"not sealed, though written after encryption was enabled")),
        Err(e) => return Err(failed(bucket, key, e)),
    };
    let tenant = key.object_key().tenant().clone();
    let id = header.key_id;
    let data_key = match key_op(keyring, move |k| k.find(&tenant, &id)).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(bucket, key = %key, error = %e, "no data key for a stored object");
            return Err(e);
        }
    };
    let sealer = Sealer::new(&data_key, header, &key.to_string());
    let (size, mut opener) = Opener::new(file, sealer, stored, range).await.map_err(|e| failed(bucket, key, e))?;
    let first = opener.next_piece().await.map_err(|e| failed(bucket, key, e))?;
    let (bucket, name) = (bucket.to_owned(), key.to_string());
    let rest = futures::stream::try_unfold(opener, move |mut opener| {
        let (bucket, name) = (bucket.clone(), name.clone());
        async move {
            match opener.next_piece().await {
                Ok(Some(piece)) => Ok(Some((piece, opener))),
                Ok(None) => Ok(None),
                Err(e) => {
                    // Mid-stream: the response is cut, so the client sees an incomplete body.
                    tracing::error!(bucket, key = name, error = %e, "stored object failed verification mid-stream");
                    Err(std::io::Error::new(ErrorKind::InvalidData, format!("{name}: {e}")))
                }
            }
        }
    });
    let first = futures::stream::iter(first.map(Ok));
    Ok(BlobRead { size, body: Box::pin(futures::StreamExt::chain(first, rest)) })
}

/// Outcome of sealing one stored object in place.
#[derive(Debug, PartialEq, Eq)]
pub enum Conversion {
    Sealed,
    AlreadySealed,
    /// Starts like a sealed object but is not a valid one: left alone and reported.
    Suspect(String),
}

/// Seals the plaintext object at `path` (blob `key`) in place: a sealed copy is written beside
/// it, synced, and renamed over it, so a crash leaves either the plaintext or the sealed object
/// (and at worst a `.seal-` temporary file, which the next run, or reconcile, removes).
pub async fn seal_in_place(keyring: &Arc<Keyring>, path: &Path, key: &BlobKey) -> Result<Conversion, BlobError> {
    let mut file = tokio::fs::File::open(path).await?;
    match read_header(&mut file).await {
        Ok(Some(_)) => return Ok(Conversion::AlreadySealed),
        Ok(None) => {}
        Err(e) => {
            return match e.disk_failure() {
                Ok(io) => Err(io.into()),
                Err(bad) => Ok(Conversion::Suspect(bad.to_string())),
            };
        }
    }
    let dir = path.parent().expect("object path has a parent");
    let plain: ByteStream = Box::pin(ReaderStream::with_capacity(file, READ_CHUNK));
    let (sealed, _) = seal_body(keyring, key, plain).await?;
    let temp = dir.join(format!("{}{}", super::SEAL_PREFIX, uuid::Uuid::now_v7().simple()));
    let out = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp).await?;
    let result = async {
        super::write_body(out, sealed).await?;
        tokio::fs::rename(&temp, path).await?;
        super::sync_dir(dir).await?;
        Ok::<_, BlobError>(())
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result.map(|()| Conversion::Sealed)
}
