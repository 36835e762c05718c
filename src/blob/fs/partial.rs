//! Resumable uploads on the filesystem store. A partial object lives in the directory of the
//! version it will become: `.tus-data` holds its bytes, and is renamed to the object's name
//! when the upload completes (a rename, not a copy: 1 GiB finishes as fast as 1 KiB).
//!
//! Plaintext stores append to `.tus-data` and cut it back to the acknowledged offset before
//! each append. Sealed stores write `.tus-data` in the sealed-object format from the start:
//! the header, then every segment known not to be the last. The rest — 1 to 65,536 bytes once
//! anything arrived — is sealed on its own, with a fresh header (so a fresh derived key), into
//! one of three slots of `.tus-tail`: one that neither the state appended to nor the
//! acknowledged one names (they differ when the append before is written but not yet recorded:
//! `BlobStore::partial_write`), so a crash before the catalog records the new offset leaves
//! the acknowledged tail whole, whichever of the two it is. Uploads begun with two slots get
//! the third when they first need it. The engine
//! state the catalog records names the slot and tags the tail in it (`tail-slot:N:T`, T from
//! the tail header's random salt, so no two appends' states are equal); states from before
//! tags (`tail-slot:N`) and from before slots (the sealed tail itself, base64) are still read.
//! The next append opens the tail — or, on the instance that made it, starts from what
//! `resume.rs` kept in memory for exactly that state — and the finishing one seals it as the
//! last segment. So an acknowledged append costs an fsync of `.tus-data`, an fdatasync of
//! `.tus-tail` (written in place: no metadata) and the catalog's small commit; the next append
//! may write while they run.
//!
//! When the upload announced its length, two appends need no tail: one that ends at a
//! segment's end short of the length seals that segment too (state `boundary`: every segment
//! sealed, none the last, nothing in a slot), and the one that reaches the length seals the
//! last segment as it arrives (state `whole`: finishing checks the file's length and renames
//! it). A segment is the last exactly when the length ends in it, so no segment is ever sealed
//! both as the last and not. No plaintext byte reaches the disk or the catalog, and the nonce
//! of a segment is used only for the bytes that segment finally holds — unless a client
//! resends *different* bytes for a range it never got acknowledged (the segments past the
//! acknowledged offset are rewritten under the same nonces; ARCHITECTURE.md discusses this).

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::super::{BlobError, ByteStream, PartialAt, PartialWrite};
use super::resume::{Resume, Resumes};
use super::writer::Writes;
use super::writer::write_body_unsynced;
use super::{FsBlobStore, WRITE_BUFFER, create_dirs_durably, sealed, sync_dir};
use crate::crypt::stream::{AppendEnd, Sealing};
use crate::crypt::{DataKey, HEADER_LEN, Header, Keyring, Sealer, TAG_LEN};
use crate::domain::{BlobKey, BucketName};

pub const DATA: &str = ".tus-data";
/// The slots of a sealed partial object's tail.
pub const TAIL: &str = ".tus-tail";
/// How many tails `.tus-tail` holds: the acknowledged one, the one of an append written but not
/// yet recorded, and the one of the append written on top of it.
const SLOTS: u64 = 3;
/// An engine state naming the slot of `.tus-tail` that holds the acknowledged tail.
const SLOT: &str = "tail-slot:";
/// The engine state of a sealed partial object whose acknowledged bytes end at a segment's
/// end short of its announced length: every segment is sealed, none is the last, no tail.
const BOUNDARY: &str = "boundary";
/// The engine state of a sealed partial object whose last append reached its announced
/// length: `.tus-data` is the whole sealed object, its last segment sealed as the last.
const WHOLE: &str = "whole";

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
            let header = Header::generate(data_key.id);
            file.write_all(&header.encode()).await?;
            // Every slot written once now: later tails overwrite blocks in place, so their
            // fdatasync has no metadata to commit.
            let slots = vec![0u8; (SLOTS * slot_len(&header)) as usize];
            let mut tail = tokio::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(dir.join(TAIL))
                .await?;
            tail.write_all(&slots).await?;
            tail.sync_all().await?;
        }
        file.sync_all().await?;
        sync_dir(&dir).await?;
        Ok(String::new())
    }

    /// Appends, short of making it durable; the new state (the slot of the sealed tail; empty
    /// for plaintext), the bytes appended, and the fsyncs (already running).
    pub(super) async fn write_partial(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        at: PartialAt<'_>,
        body: ByteStream,
        object_length: Option<u64>,
    ) -> Result<PartialWrite, BlobError> {
        let dir = self.version_dir(bucket, key);
        match &self.keyring {
            None => {
                let mut file = open_data(&dir).await?;
                file.set_len(at.offset).await?;
                file.seek(SeekFrom::Start(at.offset)).await?;
                let (file, appended) = write_body_unsynced(file, body).await?;
                let synced = tokio::task::spawn_blocking(move || file.sync_all());
                let durable = Box::pin(async move { Ok(synced.await.map_err(std::io::Error::other)??) });
                Ok(PartialWrite { state: String::new(), appended, durable })
            }
            Some(keyring) => {
                let PartialAt { state, acknowledged, offset } = at;
                let at = At { state, acknowledged, offset, object_length };
                append_sealed(keyring, &self.resumes, key, &dir, at, body).await
            }
        }
    }

    pub(super) async fn finish_partial(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
    ) -> Result<(), BlobError> {
        let dir = self.version_dir(bucket, key);
        self.resumes.forget(&dir);
        let finished = match &self.keyring {
            None => match open_data(&dir).await {
                Ok(file) => {
                    file.set_len(offset).await?;
                    file.sync_all().await.map_err(BlobError::from)
                }
                Err(e) => Err(e),
            },
            Some(_) if state == WHOLE => whole_there(key, &dir, offset).await,
            Some(keyring) => seal_last(keyring, key, &dir, state, offset).await,
        };
        match finished {
            Ok(()) => {}
            // Finished before (the process died before the catalog recorded it): done.
            Err(BlobError::NotFound) if tokio::fs::try_exists(self.path(bucket, key)).await.unwrap_or(false) => {
                remove_if_there(&dir.join(TAIL)).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        tokio::fs::rename(dir.join(DATA), self.path(bucket, key)).await?;
        remove_if_there(&dir.join(TAIL)).await?;
        sync_dir(&dir).await?;
        Ok(())
    }

    pub(super) async fn abort_partial(&self, bucket: &BucketName, key: &BlobKey) -> Result<(), BlobError> {
        let dir = self.version_dir(bucket, key);
        self.resumes.forget(&dir);
        remove_if_there(&dir.join(DATA)).await?;
        remove_if_there(&dir.join(TAIL)).await?;
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

fn corrupt(key: &BlobKey, e: impl std::fmt::Display) -> BlobError {
    BlobError::Corrupt(format!("{key} (partial): {e}"))
}

async fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The bytes of one slot of `.tus-tail`: a tail sealed on its own, at most a segment.
fn slot_len(header: &Header) -> u64 {
    (HEADER_LEN + TAG_LEN) as u64 + u64::from(header.segment)
}

/// A state's slot and tag as written (`tail-slot:N:T`, or `tail-slot:N` from before tags);
/// `None` for a state naming no slot.
fn state_parts(state: &str) -> Option<(&str, Option<&str>)> {
    let named = state.strip_prefix(SLOT)?;
    Some(match named.split_once(':') {
        Some((slot, tag)) => (slot, Some(tag)),
        None => (named, None),
    })
}

/// The slot an append writes its tail to: the first that neither the state it appends to nor
/// the acknowledged one names.
fn free_slot(state: &str, acknowledged: &str) -> u64 {
    let named = |s: &str, n: u64| state_parts(s).is_some_and(|(slot, _)| slot.parse() == Ok(n));
    (0..SLOTS).find(|&n| !named(state, n) && !named(acknowledged, n)).expect("two states name two slots at most")
}

/// The slot `state` names and the tag of the tail's header it was saved with (none in states
/// saved before tags); `None` for a state naming no slot.
fn named_slot<'s>(key: &BlobKey, state: &'s str) -> Result<Option<(u64, Option<&'s str>)>, BlobError> {
    let Some((slot, tag)) = state_parts(state) else { return Ok(None) };
    let slot = slot.parse::<u64>().ok().filter(|&n| n < SLOTS).ok_or_else(|| corrupt(key, "unknown tail slot"))?;
    Ok(Some((slot, tag)))
}

/// The state naming `slot` once it holds a tail sealed under `header`: the tag (part of the
/// header's random salt) tells this append's tail from any other written to the same slot.
fn slot_state(slot: u64, header: &Header) -> String {
    format!("{SLOT}{slot}:{}", tail_tag(header))
}

fn tail_tag(header: &Header) -> String {
    hex::encode(&header.salt[..8])
}

/// The sealer of a partial object's tail (its own header, its own derived key).
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

/// A sealed partial object opened at `offset`.
struct Resumed {
    /// `.tus-data`, cut after the sealed segments and positioned there (or to be).
    file: Opening,
    sealer: Sealer,
    /// The index of the segment the tail will become.
    index: u64,
    /// The tail's plaintext.
    tail: BytesMut,
    header: Header,
    /// The tenant's data key, which sealed the file (and seals its new tails).
    data_key: DataKey,
}

/// Opens the sealed partial object at `offset`. The file's part and the data key's lookup are
/// one trip to the blocking pool.
async fn resume_sealed(
    keyring: &Arc<Keyring>,
    key: &BlobKey,
    dir: &Path,
    state: &str,
    offset: u64,
) -> Result<Resumed, BlobError> {
    if state == WHOLE {
        return Err(corrupt(key, "it is complete: its last segment is sealed"));
    }
    let slot = named_slot(key, state)?.map(|(slot, tag)| (slot, tag.map(str::to_owned)));
    let (dir_owned, key_owned, keys, state_owned) = (dir.to_owned(), key.clone(), keyring.clone(), state.to_owned());
    let reopened =
        tokio::task::spawn_blocking(move || reopen(&dir_owned, &key_owned, &keys, &state_owned, slot, offset));
    let Reopened { file, header, data_key, record } = reopened.await.map_err(std::io::Error::other)??;
    let sealer = Sealer::new(&data_key, header.clone(), &key.to_string());
    let (index, tail_len) = split(state, offset, &header);
    let mut tail = BytesMut::with_capacity(header.segment as usize);
    if tail_len > 0 {
        let record = match record {
            Some(record) => record,
            None => {
                use base64::Engine;
                let old = base64::engine::general_purpose::STANDARD.decode(state);
                old.map_err(|_| corrupt(key, "its tail is missing"))?
            }
        };
        let plain = open_tail(keyring, key, &data_key, record).await?;
        if plain.len() != tail_len {
            return Err(corrupt(key, format!("tail holds {} bytes, {tail_len} expected", plain.len())));
        }
        tail.extend_from_slice(&plain);
    }
    Ok(Resumed { file: Opening::Opened(file), sealer, index, tail, header, data_key })
}

/// The sealed partial object at `offset` as its last append on this instance left it; the
/// blocking pool opens, checks and cuts the file while the first piece is sealed.
fn resume_kept(keyring: &Arc<Keyring>, key: &BlobKey, dir: &Path, offset: u64, kept: Resume) -> Resumed {
    let Resume { header, data_key, tail: plain, state, .. } = kept;
    let sealer = Sealer::new(&data_key, header.clone(), &key.to_string());
    let (index, _) = split(&state, offset, &header);
    let mut tail = BytesMut::with_capacity(header.segment as usize);
    tail.extend_from_slice(&plain);
    let on_disk = sealed_len(index, &header);
    let (dir, key, keyring) = (dir.to_owned(), key.clone(), keyring.clone());
    let file = Opening::Check { dir, key, keyring, header: header.clone(), on_disk };
    Resumed { file, sealer, index, tail, header, data_key }
}

/// The bytes `.tus-data` holds with `full` segments sealed: the header and those segments.
fn sealed_len(full: u64, header: &Header) -> u64 {
    HEADER_LEN as u64 + full * header.sealed_segment()
}

/// Segments sealed so far at `offset` under `state` and the tail's length: at a boundary
/// every segment and no tail; else all but the tail, which holds 1..=S bytes once anything
/// arrived.
fn split(state: &str, offset: u64, header: &Header) -> (u64, usize) {
    let segment = u64::from(header.segment);
    if state == BOUNDARY {
        return (offset / segment, 0);
    }
    let full = if offset == 0 { 0 } else { (offset - 1) / segment };
    (full, (offset - full * segment) as usize)
}

/// The bytes the whole sealed object of `length` plaintext bytes takes.
fn whole_len(length: u64, header: &Header) -> u64 {
    let segments = length.div_ceil(u64::from(header.segment)).max(1);
    HEADER_LEN as u64 + length + segments * TAG_LEN as u64
}

/// Finishing a partial object its last append sealed whole (state `whole`): `.tus-data` must
/// hold exactly the sealed object of `offset` bytes (that append synced it).
async fn whole_there(key: &BlobKey, dir: &Path, offset: u64) -> Result<(), BlobError> {
    let (dir, key) = (dir.to_owned(), key.clone());
    tokio::task::spawn_blocking(move || {
        let (file, head) = open_data_blocking(&dir, &key)?;
        let header = Header::decode(&head).ok_or_else(|| corrupt(&key, "no header"))?.map_err(|e| corrupt(&key, e))?;
        let (want, have) = (whole_len(offset, &header), file.metadata()?.len());
        if have != want {
            return Err(corrupt(&key, format!("holds {have} bytes where the sealed object takes {want}")));
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// What [`reopen`] found: the file, its header, the key that sealed it, and the tail's slot
/// as read (`None` for a state without a slot, or no tail).
struct Reopened {
    file: std::fs::File,
    header: Header,
    data_key: DataKey,
    record: Option<Vec<u8>>,
}

/// The blocking part of [`resume_sealed`]: opens `.tus-data`, reads its header, finds the key
/// it names, reads (for a state naming a slot) the sealed tail, and cuts the file after the
/// sealed segments.
fn reopen(
    dir: &Path,
    key: &BlobKey,
    keyring: &Keyring,
    state: &str,
    slot: Option<(u64, Option<String>)>,
    offset: u64,
) -> Result<Reopened, BlobError> {
    use std::os::unix::fs::FileExt;
    let (file, head) = open_data_blocking(dir, key)?;
    let header = Header::decode(&head).ok_or_else(|| corrupt(key, "no header"))?.map_err(|e| corrupt(key, e))?;
    let data_key = keyring.find(key.object_key().tenant(), &header.key_id).map_err(BlobError::Key)?;
    if state == BOUNDARY && !offset.is_multiple_of(u64::from(header.segment)) {
        return Err(corrupt(key, "a boundary state at an offset within a segment"));
    }
    let (full, tail_len) = split(state, offset, &header);
    let record = match slot {
        Some((slot, tag)) if tail_len > 0 => {
            let mut record = vec![0u8; HEADER_LEN + tail_len + TAG_LEN];
            std::fs::File::open(dir.join(TAIL))
                .and_then(|t| t.read_exact_at(&mut record, slot * slot_len(&header)))
                .map_err(|e| corrupt(key, format!("its tail: {e}")))?;
            let found = Header::decode(&record).and_then(Result::ok);
            if let (Some(tag), Some(found)) = (tag, found)
                && tail_tag(&found) != tag
            {
                return Err(corrupt(key, "its tail slot holds another append's tail"));
            }
            Some(record)
        }
        _ => None,
    };
    let file = cut(file, sealed_len(full, &header))?;
    Ok(Reopened { file, header, data_key, record })
}

/// `.tus-data`, opened for reading and writing, and its first [`HEADER_LEN`] bytes.
fn open_data_blocking(dir: &Path, key: &BlobKey) -> Result<(std::fs::File, [u8; HEADER_LEN]), BlobError> {
    use std::os::unix::fs::FileExt;
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(dir.join(DATA)) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(BlobError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let mut head = [0u8; HEADER_LEN];
    file.read_exact_at(&mut head, 0).map_err(|e| corrupt(key, e))?;
    Ok((file, head))
}

/// `file` cut to `on_disk` bytes (what the acknowledged segments take) and positioned there.
fn cut(mut file: std::fs::File, on_disk: u64) -> Result<std::fs::File, BlobError> {
    use std::io::Seek;
    file.set_len(on_disk)?;
    file.seek(SeekFrom::Start(on_disk))?;
    Ok(file)
}

/// How an append's writes get `.tus-data`: opened and cut already, or (resuming from
/// memory, `resume.rs`) to open, check and cut itself before its first write.
enum Opening {
    Opened(std::fs::File),
    Check { dir: PathBuf, key: BlobKey, keyring: Arc<Keyring>, header: Header, on_disk: u64 },
}

impl Opening {
    fn open(self) -> Result<std::fs::File, BlobError> {
        match self {
            Self::Opened(file) => Ok(file),
            Self::Check { dir, key, keyring, header, on_disk } => {
                let (file, head) = open_data_blocking(&dir, &key)?;
                if head != header.encode() {
                    return Err(corrupt(&key, "its data file changed under it"));
                }
                // Read again, as every append does: a key destroyed meanwhile stops the append.
                keyring.find(key.object_key().tenant(), &header.key_id).map_err(BlobError::Key)?;
                cut(file, on_disk)
            }
        }
    }
}

/// Where an append starts: the state it appends to and its offset, the state the catalog
/// records (the same unless the append before is not yet recorded), and the object's announced
/// length when known.
struct At<'s> {
    state: &'s str,
    acknowledged: &'s str,
    offset: u64,
    object_length: Option<u64>,
}

async fn append_sealed(
    keyring: &Arc<Keyring>,
    resumes: &Resumes,
    key: &BlobKey,
    dir: &Path,
    at: At<'_>,
    body: ByteStream,
) -> Result<PartialWrite, BlobError> {
    let At { state, acknowledged, offset, object_length } = at;
    let kept = resumes.take(dir, state, offset).filter(|r| split(state, offset, &r.header).1 == r.tail.len());
    let Resumed { file: opening, sealer, index, tail, header, data_key } = match kept {
        Some(kept) => resume_kept(keyring, key, dir, offset, kept),
        None => resume_sealed(keyring, key, dir, state, offset).await?,
    };
    // Sealing (and the hashing that polling the body does) as the pieces are asked for, each
    // written on the blocking pool while the next is sealed; the file is opened there while
    // the first piece is sealed. Writeback after every piece: the fsync at the end of each
    // append waits for little more than the last one.
    let mut writes = Writes::opening(move || opening.open(), WRITE_BUFFER);
    let mut sealing = Sealing::resume(sealer, index, &tail, body, object_length);
    let sealed = async {
        while let Some(piece) = sealing.next_piece().await {
            writes.write(piece.map_err(BlobError::Body)?).await?;
        }
        Ok::<(), BlobError>(())
    }
    .await;
    // Whatever happened, no write of this append runs on once it returns (the next append
    // cuts the file). A failed open or write is the cause, even of a body that failed after it.
    let finished = writes.finish().await;
    let file = match (sealed, finished) {
        (Ok(()) | Err(BlobError::Body(_)), Err(disk)) => return Err(disk),
        (Err(e), _) => return Err(e),
        (Ok(()), Ok(file)) => file,
    };
    let (end, appended) = sealing.into_end();
    if appended == 0 {
        // Nothing arrived: the acknowledged state stands (a segment sealed at its end lies past
        // what it names, and the next append cuts it).
        if let AppendEnd::Tail(tail) = end {
            let tail = tail.freeze();
            resumes.keep(dir.to_owned(), Resume { state: state.to_owned(), offset, header, data_key, tail });
        }
        return Ok(PartialWrite::durable_already(state.to_owned(), 0));
    }
    let synced = tokio::task::spawn_blocking(move || file.sync_all());
    let offset = offset + appended;
    let (state, tail_synced) = match end {
        AppendEnd::Tail(tail) => {
            let slot = free_slot(state, acknowledged);
            let tail_header = Header::generate(data_key.id);
            let record = seal_tail(&data_key, key, &tail_header, &tail);
            let tail_synced = write_slot(dir, &header, slot, record).await?;
            let state = slot_state(slot, &tail_header);
            let tail = tail.freeze();
            resumes.keep(dir.to_owned(), Resume { state: state.clone(), offset, header, data_key, tail });
            (state, Some(tail_synced))
        }
        AppendEnd::Boundary => {
            let tail = bytes::Bytes::new();
            resumes.keep(dir.to_owned(), Resume { state: BOUNDARY.to_owned(), offset, header, data_key, tail });
            (BOUNDARY.to_owned(), None)
        }
        AppendEnd::Last => (WHOLE.to_owned(), None),
    };
    let durable = Box::pin(async move {
        let synced = synced.await.map_err(std::io::Error::other)?;
        let tail_synced = match tail_synced {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        };
        synced?;
        Ok(tail_synced?)
    });
    Ok(PartialWrite { state, appended, durable })
}

/// Writes a sealed tail into slot `slot` of `.tus-tail`; returns once it is written, with the
/// task making it durable (one trip to the blocking pool for both). The file is there for
/// uploads begun since slots exist; one begun before gets it now (and its directory entry
/// made durable).
async fn write_slot(
    dir: &Path,
    header: &Header,
    slot: u64,
    record: Vec<u8>,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let (path, dir, at) = (dir.join(TAIL), dir.to_owned(), slot * slot_len(header));
    let (written_tx, written) = tokio::sync::oneshot::channel();
    let task = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let write = || -> std::io::Result<(std::fs::File, bool)> {
            let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(&path)?;
            let created = file.metadata()?.len() == 0;
            file.write_all_at(&record, at)?;
            Ok((file, created))
        };
        let (file, created) = match write() {
            Ok(done) => {
                let _ = written_tx.send(Ok(()));
                done
            }
            Err(e) => {
                let _ = written_tx.send(Err(e));
                return Ok(());
            }
        };
        file.sync_data()?;
        if created {
            std::fs::File::open(&dir)?.sync_all()?;
        }
        Ok(())
    });
    written.await.map_err(std::io::Error::other)??;
    Ok(task)
}

/// Seals the tail of a partial object complete at `offset` as its last segment.
async fn seal_last(
    keyring: &Arc<Keyring>,
    key: &BlobKey,
    dir: &Path,
    state: &str,
    offset: u64,
) -> Result<(), BlobError> {
    if state == BOUNDARY {
        // Reached only short of the announced length, so never at the end.
        return Err(corrupt(key, "its last segment was sealed as not the last"));
    }
    let Resumed { file, sealer, index, tail: mut last, .. } = resume_sealed(keyring, key, dir, state, offset).await?;
    let tag = sealer.seal_detached(index, true, &mut last);
    let written = tokio::task::spawn_blocking(move || -> Result<(), BlobError> {
        use std::io::Write;
        let mut file = file.open()?;
        file.write_all(&last)?;
        file.write_all(tag.as_ref())?;
        Ok(file.sync_all()?)
    });
    written.await.map_err(std::io::Error::other)??;
    Ok(())
}

/// Opens a tail sealed on its own (`record`: its header, the sealed bytes, the tag). Its key is
/// the data file's unless the tenant's key rotated in between.
async fn open_tail(
    keyring: &Arc<Keyring>,
    key: &BlobKey,
    data_key: &DataKey,
    mut record: Vec<u8>,
) -> Result<Vec<u8>, BlobError> {
    let header =
        Header::decode(&record).ok_or_else(|| corrupt(key, "tail without header"))?.map_err(|e| corrupt(key, e))?;
    let tail_key = if header.key_id == data_key.id {
        data_key.clone()
    } else {
        sealed::find_key(keyring, key.object_key().tenant(), header.key_id).await?
    };
    let sealer = Sealer::new(&tail_key, header, &tail_identity(key));
    let mut body = record.split_off(HEADER_LEN);
    let len = sealer.open(0, true, &mut body).map_err(|e| corrupt(key, e))?;
    body.truncate(len);
    Ok(body)
}

/// The tail sealed on its own with the data file's key (the tenant's only key: a tenant's key
/// is destroyed, never replaced while objects sealed with it live), under a fresh header, so a
/// fresh derived key.
fn seal_tail(data_key: &DataKey, key: &BlobKey, header: &Header, tail: &[u8]) -> Vec<u8> {
    let sealer = Sealer::new(data_key, header.clone(), &tail_identity(key));
    let mut out = Vec::with_capacity(HEADER_LEN + tail.len() + TAG_LEN);
    out.extend_from_slice(&header.encode());
    let start = out.len();
    out.extend_from_slice(tail);
    let tag = sealer.seal_detached(0, true, &mut out[start..]);
    out.extend_from_slice(tag.as_ref());
    out
}
