//! Resumable uploads (the service half of tus): created with their length (or deferred),
//! appended to by any instance in any number of requests, completed into a file exactly as a
//! plain upload is. Every rule of a plain upload holds: category, filename, declared type and
//! size checked at creation, quota counted while the upload lives, the type sniffed from the
//! first bytes, the intent recorded before any byte is written and claimed by the commit.
//!
//! Concurrency: an append first takes the upload's lock in the catalog at the offset it claims
//! (one writer per upload across every instance, and only at the upload's offset), renews it
//! while the bytes stream, and releases it with the new offset in one statement. Appends that
//! reach one instance while another runs wait their turn (`queue.rs`) before they try the lock;
//! an append whose bytes are written while another waits hands the lock over at once, with the
//! upload as it will record it, and makes its bytes durable and records them while the next one
//! writes (a pipeline one append deep: the next is recorded, and answered, only after it; if it
//! is not, neither is the next). The disk's and the catalog's commits then overlap the next
//! append's bytes instead of coming between them.

mod hash;
mod intake;
mod queue;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ring::rand::SecureRandom;

use super::body::{BodyError, peek};
use super::content_type::{SNIFF_LEN, decide};
use super::{Admitted, ServiceError, StorageService};
use crate::blob::{BlobStore, ByteStream, Lengths, PartialAt};
use crate::catalog::{BlobRef, Catalog, CatalogError, FileRecord, LockRefusal, UploadSession};
use crate::domain::{BlobKey, BlobVersion, Category, Filename, ObjectKey, TenantId};
pub use hash::ResumableSha256;
use intake::Intake;
use queue::Turn;

/// The lease reconcile takes an expired upload's lock for (it only removes it).
const REMOVAL_LEASE: Duration = Duration::from_secs(30);

/// An upload's lock in the catalog, handed by an append whose bytes are written to the next one
/// waiting on this instance (see `queue.rs`).
#[derive(Debug)]
pub(super) struct Held {
    token: String,
    /// The upload as the append that handed it over records it.
    session: UploadSession,
    /// No later than the lock's lease last began: it holds for at least a lease from then.
    leased_at: Instant,
    /// Whether that append's record committed.
    prior: Prior,
    /// The engine state the catalog records until it does.
    acknowledged: String,
}

/// Whether the append that handed the lock over got its bytes recorded. Nothing written on top
/// of them is recorded or answered before that is known, nor the lock released.
#[derive(Debug)]
pub(super) struct Prior {
    pending: Option<tokio::sync::oneshot::Receiver<bool>>,
    recorded: bool,
}

impl Prior {
    /// No append before this one is waiting to be recorded.
    fn recorded() -> Self {
        Self { pending: None, recorded: true }
    }

    /// A prior whose append reports through the returned sender (dropped unsent: not recorded).
    fn waiting() -> (tokio::sync::oneshot::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (tx, Self { pending: Some(rx), recorded: false })
    }

    /// Whether the append before is still being made durable and recorded.
    fn pending(&mut self) -> bool {
        use tokio::sync::oneshot::error::TryRecvError;
        let Some(pending) = self.pending.as_mut() else { return false };
        match pending.try_recv() {
            Err(TryRecvError::Empty) => return true,
            Ok(recorded) => self.recorded = recorded,
            Err(TryRecvError::Closed) => self.recorded = false,
        }
        self.pending = None;
        false
    }

    /// Waits until the append before is recorded or has failed; whether it was recorded.
    async fn wait(&mut self) -> bool {
        if let Some(pending) = self.pending.take() {
            self.recorded = pending.await.unwrap_or(false);
        }
        self.recorded
    }
}

/// The appends running or waiting on this instance, by upload.
pub(super) type Appends = queue::Queues<Held>;

/// The appends' lines; a lock handed over to nobody (the waiting request went away first) is
/// released.
pub(super) fn appends(catalog: Arc<dyn Catalog>) -> Appends {
    queue::Queues::new(move |held: Held| {
        let catalog = catalog.clone();
        // Without a runtime (the process is ending) the lease runs out on its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut held = held;
                // Not before the append that handed it over has recorded its bytes (or failed to).
                held.prior.wait().await;
                release(catalog.as_ref(), &held.session, &held.token).await;
            });
        }
    })
}

/// Frees `session`'s lock held as `token` (best effort: otherwise its lease runs out).
async fn release(catalog: &dyn Catalog, session: &UploadSession, token: &str) {
    let _ = catalog.renew_session_lock(session.tenant(), &session.id, token, Duration::ZERO).await;
}

/// The upload's lock as an append holds it, the turn it may hand the lock over to, and the
/// append before it when that one is not recorded yet.
struct Lock {
    token: String,
    leased_at: Instant,
    turn: Option<Turn<Held>>,
    prior: Prior,
    /// The engine state the catalog records while `prior` is pending.
    acknowledged: Option<String>,
    /// Handed over to the next append: no longer this one's to release.
    handed: bool,
}

/// A resumable upload to create.
pub struct NewUpload {
    pub category: Category,
    pub filename: Filename,
    /// The name exactly as sent, kept for Content-Disposition.
    pub original_filename: String,
    pub content_type: Option<String>,
    pub overwrite: bool,
    /// `None`: deferred, announced by a later append.
    pub length: Option<u64>,
    /// `Upload-Metadata` as sent, echoed on HEAD.
    pub metadata: String,
}

/// The checksum algorithms of tus's checksum extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

/// `Upload-Checksum`: the digest the bytes of one append must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

/// One append.
pub struct Append {
    pub offset: u64,
    /// The length, for an upload created with its length deferred.
    pub length: Option<u64>,
    pub checksum: Option<Checksum>,
    pub body: ByteStream,
    /// The body's announced length (`Content-Length`), if any.
    pub body_length: Option<u64>,
}

/// An upload after an append, and the file when that append completed it.
#[derive(Debug)]
pub struct Appended {
    pub session: UploadSession,
    pub file: Option<FileRecord>,
}

/// Removes the partial bytes of `session`, then its row and intent (as `token`, its lock
/// holder).
async fn discard(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
    session: &UploadSession,
    token: &str,
) -> Result<(), ServiceError> {
    let blob = &session.blob;
    if finishing(session) {
        // Its bytes may be a committed file already (the process that committed them died
        // before recording it here): those stay.
        if matches!(catalog.get(blob.blob.object_key()).await?, Some(row) if row.blob == blob.blob) {
            catalog.remove_session(session.tenant(), &session.id, Some(token)).await?;
            return Ok(());
        }
    }
    // Best effort: what an abort misses, reconcile's sweep (a partial file or staging object
    // no intent covers) or the bucket's lifecycle rule (an incomplete multipart upload) removes.
    if let Err(e) = blobs.partial_abort(&blob.bucket, &blob.blob, &session.engine_state).await {
        tracing::warn!(error = %e, upload = session.id, blob = %blob.blob, "could not remove an upload's partial bytes; reconcile will");
    }
    if finishing(session)
        && let Err(e) = blobs.delete(&blob.bucket, &blob.blob).await
    {
        tracing::warn!(error = %e, upload = session.id, blob = %blob.blob, "could not remove an upload's finished bytes; reconcile will");
    }
    catalog.remove_session(session.tenant(), &session.id, Some(token)).await?;
    Ok(())
}

/// Whether every byte of an unfinished upload arrived: its completion was started (and may
/// have gone any part of the way) by a request whose process died or whose commit's outcome
/// was unknown.
fn finishing(session: &UploadSession) -> bool {
    session.completed_at.is_none() && session.length == Some(session.offset)
}

/// Removes an upload that expired (reconcile): a completed one's row, an unfinished one's
/// partial bytes, row and intent. `false` when it is being written to or already gone.
pub async fn expire(
    catalog: &dyn Catalog,
    blobs: &dyn BlobStore,
    session: &UploadSession,
) -> Result<bool, ServiceError> {
    let tenant = session.tenant();
    if session.completed_at.is_some() {
        return Ok(catalog.remove_session(tenant, &session.id, None).await?.is_some());
    }
    let token = new_id();
    match catalog.lock_session(tenant, &session.id, session.offset, &token, REMOVAL_LEASE).await? {
        Ok(locked) => discard(catalog, blobs, &locked, &token).await.map(|()| true),
        Err(_) => Ok(false),
    }
}

/// An upload id: 128 random bits, hex.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("system randomness");
    hex::encode(bytes)
}

fn well_formed(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl StorageService {
    /// Creates a resumable upload (tus `POST`). Refuses what a plain upload would refuse up
    /// front: unknown category, a length over the category's limit or the tenant's quota
    /// (counting its other unfinished uploads), a declared type the category does not take,
    /// an existing key without `overwrite`.
    pub async fn create_resumable(&self, who: &Admitted, req: NewUpload) -> Result<UploadSession, ServiceError> {
        who.require_write()?;
        let tenant = who.tenant();
        let policy = self.policy(&req.category)?.clone();
        let key = ObjectKey::new(tenant.clone(), req.category.clone(), req.filename.clone());
        if req.length.is_some_and(|n| n > policy.max_size) {
            return Err(ServiceError::TooLarge { limit: policy.max_size });
        }
        if let Some(declared) = &req.content_type {
            let declared = decide(&req.filename, Some(declared), b"").to_string();
            if !policy.allows(&declared) {
                return Err(ServiceError::UnsupportedMediaType {
                    content_type: declared,
                    category: req.category.to_string(),
                });
            }
        }
        let existing = self.inner.catalog.get(&key).await?;
        if !req.overwrite && existing.is_some() {
            return Err(ServiceError::AlreadyExists);
        }
        let (limit, over) = self.stream_limit(tenant, policy.max_size, existing.as_ref().map(|e| e.size)).await?;
        if req.length.is_some_and(|n| n > limit) {
            return Err(match over {
                BodyError::TooLarge { limit } => ServiceError::TooLarge { limit },
                _ => ServiceError::QuotaExceeded,
            });
        }
        let blob =
            BlobRef { bucket: self.bucket(policy.bucket).clone(), blob: BlobKey::new(key, BlobVersion::generate()) };
        let declared_type = req.content_type.clone();
        let guess = decide(&req.filename, declared_type.as_deref(), b"").to_string();
        let engine_state = self.inner.blobs.partial_begin(&blob.bucket, &blob.blob, &guess).await?;
        let now = Utc::now();
        let session = UploadSession {
            id: new_id(),
            blob,
            original_filename: req.original_filename,
            declared_type,
            content_type: None,
            overwrite: req.overwrite,
            length: req.length,
            offset: 0,
            hasher: ResumableSha256::default().encode(),
            head: Vec::new(),
            engine_state,
            metadata: req.metadata,
            created_at: now,
            expires_at: now + self.upload_expiry(),
            completed_at: None,
        };
        if let Err(e) = self.inner.catalog.create_session(&session).await {
            let _ =
                self.inner.blobs.partial_abort(&session.blob.bucket, &session.blob.blob, &session.engine_state).await;
            return Err(e.into());
        }
        tracing::info!(upload = session.id, key = %session.blob.blob.object_key(), length = ?session.length, "resumable upload created");
        Ok(session)
    }

    /// The caller's resumable upload `id` (tus `HEAD`); `UploadNotFound` for another tenant's,
    /// an expired one, or none.
    pub async fn resumable(&self, who: &Admitted, id: &str) -> Result<UploadSession, ServiceError> {
        if !well_formed(id) {
            return Err(ServiceError::UploadNotFound);
        }
        let session = match self.inner.catalog.session(who.tenant(), id).await? {
            Some(s) if s.expires_at > Utc::now() => s,
            _ => return Err(ServiceError::UploadNotFound),
        };
        if !finishing(&session) {
            return Ok(session);
        }
        // Every byte is in but the upload is not complete: whoever completes it answers.
        let token = new_id();
        let mut session = match self.lock(who.tenant(), id, session.offset, &token).await {
            Ok(locked) => locked,
            // Completed meanwhile.
            Err(ServiceError::UploadCompleted) => return Box::pin(self.resumable(who, id)).await,
            Err(e) => return Err(e),
        };
        if !finishing(&session) {
            self.release(&session, &token).await;
            return Ok(session);
        }
        let settled = self.settle(&mut session, &token).await;
        if settled.is_err() && session.completed_at.is_none() {
            self.release(&session, &token).await;
        }
        settled.map(|done| done.session)
    }

    /// Appends bytes at `req.offset` (tus `PATCH`); completes the upload into its file when
    /// they reach its length.
    #[tracing::instrument(skip_all, fields(tenant = %who.tenant(), upload = id))]
    pub async fn append_resumable(&self, who: &Admitted, id: &str, req: Append) -> Result<Appended, ServiceError> {
        who.require_write()?;
        // Behind the appends to this upload that this instance runs or has waiting. If the turn
        // does not come within the lease, the catalog's lock decides (423 while still held).
        let mut turn = self.inner.appends.turn(who.tenant(), id, self.inner.upload_lock_lease).await;
        let (mut session, mut lock) = match self.take_over(turn.as_mut(), req.offset).await? {
            Some(held) => {
                let lock = Lock {
                    token: held.token,
                    leased_at: held.leased_at,
                    turn,
                    prior: held.prior,
                    acknowledged: Some(held.acknowledged),
                    handed: false,
                };
                (held.session, lock)
            }
            None => {
                let (token, leased_at) = (new_id(), Instant::now());
                let session = self.lock(who.tenant(), id, req.offset, &token).await?;
                let lock = Lock { token, leased_at, turn, prior: Prior::recorded(), acknowledged: None, handed: false };
                (session, lock)
            }
        };
        let result = if finishing(&session) {
            // Nothing more to append: complete what arrived before.
            match self.prior_recorded(&session, &mut lock, req.offset).await {
                Ok(()) => self.settle(&mut session, &lock.token).await,
                Err(e) => Err(e),
            }
        } else {
            self.locked_append(&mut session, &mut lock, req).await
        };
        // No answer, and no release, before the append this one wrote on top of is recorded.
        lock.prior.wait().await;
        if result.is_err() && session.completed_at.is_none() && !lock.handed {
            // Free the upload for the client's retry (nothing changed: the offset stays).
            self.release(&session, &lock.token).await;
        }
        result
    }

    /// The lock the append before this one on this instance handed over, when it did and
    /// `offset` is the upload's; its lease renewed when a sixth of it may have passed.
    async fn take_over(&self, turn: Option<&mut Turn<Held>>, offset: u64) -> Result<Option<Held>, ServiceError> {
        let Some(mut held) = turn.and_then(Turn::take_over) else { return Ok(None) };
        let lease = self.inner.upload_lock_lease;
        let renew = held.leased_at.elapsed() >= lease / 6;
        // Neither refused nor renewed on the strength of an append not yet recorded; one that
        // never is leaves the upload to the catalog's lock, as for any append.
        if (held.session.offset != offset || renew) && !held.prior.wait().await {
            self.release(&held.session, &held.token).await;
            return Ok(None);
        }
        if held.session.offset != offset {
            self.release(&held.session, &held.token).await;
            return Err(ServiceError::OffsetMismatch { offset: held.session.offset });
        }
        if renew {
            let (s, now) = (&held.session, Instant::now());
            match self.inner.catalog.renew_session_lock(s.tenant(), &s.id, &held.token, lease).await {
                Ok(true) => held.leased_at = now,
                // Not held any more: the catalog's lock decides, as for any append.
                Ok(false) => return Ok(None),
                Err(e) => {
                    self.release(&held.session, &held.token).await;
                    return Err(e.into());
                }
            }
        }
        Ok(Some(held))
    }

    /// Waits for the append this one writes on top of (if any) to be recorded; when it was
    /// not, this append fails with what the catalog says of the upload (409 with its offset,
    /// or 423 while that is unknown).
    async fn prior_recorded(&self, session: &UploadSession, lock: &mut Lock, claimed: u64) -> Result<(), ServiceError> {
        if lock.prior.wait().await {
            return Ok(());
        }
        Err(match self.inner.catalog.session(session.tenant(), &session.id).await {
            Ok(Some(recorded)) if recorded.offset != claimed => {
                ServiceError::OffsetMismatch { offset: recorded.offset }
            }
            _ => ServiceError::UploadBusy,
        })
    }

    async fn release(&self, session: &UploadSession, token: &str) {
        release(self.inner.catalog.as_ref(), session, token).await;
    }

    /// Terminates an unfinished upload (tus `DELETE`): its bytes go, its id is forgotten. A
    /// completed one is forgotten; its file stays.
    pub async fn terminate_resumable(&self, who: &Admitted, id: &str) -> Result<(), ServiceError> {
        who.require_write()?;
        let session = self.resumable(who, id).await?;
        if session.completed_at.is_some() {
            self.inner.catalog.remove_session(who.tenant(), id, None).await?;
            return Ok(());
        }
        let token = new_id();
        let session = self.lock(who.tenant(), id, session.offset, &token).await?;
        self.discard(&session, &token).await?;
        tracing::info!(upload = id, "resumable upload terminated");
        Ok(())
    }

    fn upload_expiry(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.inner.upload_expiry).unwrap_or(chrono::Duration::days(1))
    }

    async fn lock(&self, tenant: &TenantId, id: &str, offset: u64, token: &str) -> Result<UploadSession, ServiceError> {
        if !well_formed(id) {
            return Err(ServiceError::UploadNotFound);
        }
        match self.inner.catalog.lock_session(tenant, id, offset, token, self.inner.upload_lock_lease).await? {
            Ok(s) => Ok(s),
            Err(LockRefusal::Missing) => Err(ServiceError::UploadNotFound),
            Err(LockRefusal::Completed) => Err(ServiceError::UploadCompleted),
            Err(LockRefusal::Busy) => Err(ServiceError::UploadBusy),
            Err(LockRefusal::Offset(offset)) => Err(ServiceError::OffsetMismatch { offset }),
        }
    }

    async fn discard(&self, session: &UploadSession, token: &str) -> Result<(), ServiceError> {
        discard(self.inner.catalog.as_ref(), self.inner.blobs.as_ref(), session, token).await
    }

    async fn locked_append(
        &self,
        session: &mut UploadSession,
        lock: &mut Lock,
        req: Append,
    ) -> Result<Appended, ServiceError> {
        let claimed = req.offset;
        // Only the bytes of an upload whose length and type are known go on top of an append
        // not yet recorded: anything else (discarding it, sniffing it, counting its quota by
        // its offset) waits for that record.
        if session.expires_at <= Utc::now() || session.content_type.is_none() || session.length.is_none() {
            self.prior_recorded(session, lock, claimed).await?;
        }
        let token = lock.token.clone();
        let token = token.as_str();
        if session.expires_at <= Utc::now() {
            self.discard(session, token).await?;
            return Err(ServiceError::UploadNotFound);
        }
        let policy = self.policy(session.blob.blob.object_key().category())?.clone();
        match (session.length, req.length) {
            (Some(have), Some(sent)) if have != sent => {
                return Err(ServiceError::InvalidUpload(format!("Upload-Length is {have}, not {sent}")));
            }
            (None, Some(sent)) => {
                if sent < session.offset {
                    return Err(ServiceError::InvalidUpload(format!(
                        "Upload-Length {sent} is less than the {} bytes received",
                        session.offset
                    )));
                }
                if sent > policy.max_size {
                    return Err(ServiceError::TooLarge { limit: policy.max_size });
                }
                session.length = Some(sent);
            }
            _ => {}
        }
        // Bytes this append may bring: up to the length, or (deferred) the category's limit;
        // within the quota's room either way.
        let (room, over) = self.room_for(session, policy.max_size).await?;
        let (limit, over) = match session.length {
            Some(length) if length - session.offset <= room => {
                (length - session.offset, BodyError::BeyondLength { length })
            }
            _ => (room, over),
        };

        let mut body = req.body;
        let mut head = std::mem::take(&mut session.head);
        if session.content_type.is_none() {
            let want = SNIFF_LEN.saturating_sub(head.len());
            let (peeked, rest) = peek(body, want).await.map_err(ServiceError::from_body)?;
            body = rest;
            head.extend_from_slice(&peeked[..peeked.len().min(want)]);
            let all = session.length.is_some_and(|l| session.offset + peeked.len() as u64 >= l);
            if head.len() >= SNIFF_LEN || all {
                self.decide_type(session, token, &head).await?;
                head.clear();
            }
        }

        let hasher = ResumableSha256::decode(&session.hasher).ok_or_else(|| {
            ServiceError::Catalog(CatalogError::Corrupt(format!("hash state of upload {}", session.id)))
        })?;
        let checksum = req.checksum.as_ref().map(|c| {
            ring::digest::Context::new(match c.algorithm {
                ChecksumAlgorithm::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                ChecksumAlgorithm::Sha256 => &ring::digest::SHA256,
            })
        });
        let (intake, taken) = Intake::new(body, hasher, checksum, limit, over, req.body_length);
        let blob = session.blob.clone();
        // An announced length the intake will cut short is no length to stream by.
        let body_length = req.body_length.filter(|&n| n <= limit);
        let at = PartialAt {
            state: &session.engine_state,
            acknowledged: lock.acknowledged.as_deref().unwrap_or(&session.engine_state),
            offset: session.offset,
        };
        let lengths = Lengths { body: body_length, object: session.length };
        if lock.prior.pending() {
            // Written while the append below is made durable and recorded: the pipeline at work.
            metrics::counter!("coffer_tus_appends_overlapped_total").increment(1);
        }
        let append = self.inner.blobs.partial_write(&blob.bucket, &blob.blob, at, Box::pin(intake), lengths);
        let written = self.keeping_lock(session.tenant(), &session.id, token, append).await??;
        let (state, appended, durable) = (written.state, written.appended, written.durable);
        let taken = intake::finish(&taken).await;
        let hasher = taken.digests.hasher;
        if let (Some(expected), Some(ctx)) = (&req.checksum, taken.digests.checksum)
            && ctx.finish().as_ref() != expected.digest.as_slice()
        {
            self.inner.blobs.partial_release(&blob.bucket, &blob.blob, &state, &session.engine_state).await;
            return Err(ServiceError::ChecksumMismatch);
        }
        debug_assert_eq!(appended, taken.bytes);
        let old_state = std::mem::replace(&mut session.engine_state, state);
        session.offset += appended;
        session.hasher = hasher.encode();
        session.head = head;
        session.expires_at = Utc::now() + self.upload_expiry();
        // Recorded after the append this one wrote on top of, or not at all.
        self.prior_recorded(session, lock, claimed).await?;
        if session.length == Some(session.offset) && taken.interrupted.is_none() {
            self.keeping_lock(session.tenant(), &session.id, token, durable).await??;
            let done = self.complete(session, token, &hasher).await;
            if done.is_ok() {
                self.inner.blobs.partial_release(&blob.bucket, &blob.blob, &old_state, &session.engine_state).await;
            }
            return done;
        }
        // With another append to this upload waiting here, the lock goes to it now, with the
        // upload as this append will record it: it writes while these bytes are made durable
        // and recorded, and learns through `recorded` whether they were.
        let keep = taken.interrupted.is_none() && lock.turn.as_ref().is_some_and(|turn| turn.someone_waits());
        let recorded = match lock.turn.take() {
            Some(mut turn) if keep => {
                let (recorded, prior) = Prior::waiting();
                let held = Held {
                    token: token.to_owned(),
                    session: session.clone(),
                    leased_at: lock.leased_at,
                    prior,
                    acknowledged: old_state.clone(),
                };
                turn.hand_over(held);
                lock.handed = true;
                Some(recorded)
            }
            turn => {
                lock.turn = turn;
                None
            }
        };
        self.keeping_lock(session.tenant(), &session.id, token, durable).await??;
        if !self.inner.catalog.save_session(session, token, !keep).await? {
            return Err(ServiceError::UploadBusy);
        }
        if let Some(recorded) = recorded {
            let _ = recorded.send(true);
        }
        self.inner.blobs.partial_release(&blob.bucket, &blob.blob, &old_state, &session.engine_state).await;
        match taken.interrupted {
            Some(e) => Err(ServiceError::from_body(e)),
            None => Ok(Appended { session: session.clone(), file: None }),
        }
    }

    /// Decides the type from the first bytes; a type the category refuses ends the upload.
    async fn decide_type(&self, session: &mut UploadSession, token: &str, head: &[u8]) -> Result<(), ServiceError> {
        let key = session.blob.blob.object_key();
        let content_type = decide(key.filename(), session.declared_type.as_deref(), head).to_string();
        if !self.policy(key.category())?.allows(&content_type) {
            self.discard(session, token).await?;
            session.completed_at = Some(Utc::now()); // gone: nothing to unlock
            return Err(ServiceError::UnsupportedMediaType { content_type, category: key.category().to_string() });
        }
        session.content_type = Some(content_type);
        Ok(())
    }

    /// How many more bytes the upload may take within the tenant's quota (the other unfinished
    /// uploads and this one's bytes so far counted), and the error past that.
    async fn room_for(&self, session: &UploadSession, max_size: u64) -> Result<(u64, BodyError), ServiceError> {
        let by_size = (max_size.saturating_sub(session.offset), BodyError::TooLarge { limit: max_size });
        let quota = self.quota(session.tenant());
        let Some(max_bytes) = quota.max_bytes else { return Ok(by_size) };
        let usage = self.inner.catalog.usage(session.tenant()).await?;
        let used: u64 = usage.iter().map(|u| u.bytes).sum();
        let reserved = self.inner.catalog.reserved_bytes(session.tenant()).await?;
        // `reserved` counts this upload too (its length, or its offset when deferred).
        let own = session.length.unwrap_or(session.offset).max(session.offset);
        let others = reserved.saturating_sub(own);
        let room = max_bytes.saturating_sub(used + others).saturating_sub(session.offset);
        Ok(if room < by_size.0 { (room, BodyError::QuotaExceeded) } else { by_size })
    }

    /// Runs `work` (the upload's write) while renewing the upload's lock every third of its
    /// lease. Fails with `UploadBusy`, dropping the write, when the lock is lost or when no
    /// renewal succeeded for two thirds of the lease (the catalog is unreachable): the write
    /// stops before another writer could take the upload over.
    async fn keeping_lock<T>(
        &self,
        tenant: &TenantId,
        id: &str,
        token: &str,
        work: impl Future<Output = T>,
    ) -> Result<T, ServiceError> {
        let lease = self.inner.upload_lock_lease;
        let renew = async {
            let mut renewed = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let attempt = self.inner.catalog.renew_session_lock(tenant, id, token, lease);
                match tokio::time::timeout(lease / 3, attempt).await {
                    Ok(Ok(true)) => renewed = tokio::time::Instant::now(),
                    Ok(Ok(false)) => return,
                    Ok(Err(e)) => tracing::warn!(error = %e, upload = id, "could not renew an upload's lock"),
                    Err(_) => tracing::warn!(upload = id, "renewing an upload's lock timed out"),
                }
                if renewed.elapsed() >= lease * 2 / 3 {
                    return;
                }
            }
        };
        tokio::select! {
            out = work => Ok(out),
            () = renew => Err(ServiceError::UploadBusy),
        }
    }

    /// The last bytes are in: the partial object becomes the file's bytes, and the file row is
    /// committed (claiming the upload's intent), as for a plain upload. The upload's state is
    /// recorded first, lock kept: should this process die on the way, the next request to the
    /// upload finishes the job (`settle`) instead of finding it half done.
    async fn complete(
        &self,
        session: &mut UploadSession,
        token: &str,
        hasher: &ResumableSha256,
    ) -> Result<Appended, ServiceError> {
        if session.content_type.is_none() {
            let head = std::mem::take(&mut session.head);
            self.decide_type(session, token, &head).await?;
        }
        if !self.inner.catalog.save_session(session, token, false).await? {
            return Err(ServiceError::UploadBusy);
        }
        let (tenant, id) = (session.tenant().clone(), session.id.clone());
        // Finishing a large object on S3 can outlast the lease: it is renewed meanwhile.
        self.keeping_lock(&tenant, &id, token, self.finish(session, token, hasher)).await?
    }

    /// Completes an upload whose bytes all arrived but whose completion was not recorded: its
    /// file was committed (only the upload's own record missed it), or it is completed now.
    async fn settle(&self, session: &mut UploadSession, token: &str) -> Result<Appended, ServiceError> {
        if let Some(row) = self.committed(&session.blob).await? {
            tracing::info!(upload = session.id, key = %row.key, "an upload's completion was recorded after its process died");
            return self.mark_completed(session, token, row).await;
        }
        tracing::info!(upload = session.id, "completing an upload whose process died while completing it");
        let hasher = ResumableSha256::decode(&session.hasher).ok_or_else(|| {
            ServiceError::Catalog(CatalogError::Corrupt(format!("hash state of upload {}", session.id)))
        })?;
        self.complete(session, token, &hasher).await
    }

    /// The file row pointing at `blob`, if one was committed.
    async fn committed(&self, blob: &BlobRef) -> Result<Option<FileRecord>, ServiceError> {
        Ok(self.inner.catalog.get(blob.blob.object_key()).await?.filter(|row| row.blob == blob.blob))
    }

    async fn finish(
        &self,
        session: &mut UploadSession,
        token: &str,
        hasher: &ResumableSha256,
    ) -> Result<Appended, ServiceError> {
        let blob = session.blob.clone();
        self.inner.blobs.partial_finish(&blob.bucket, &blob.blob, &session.engine_state, session.offset).await?;
        let record = FileRecord {
            key: blob.blob.object_key().clone(),
            original_filename: session.original_filename.clone(),
            bucket: blob.bucket.clone(),
            blob: blob.blob.clone(),
            content_type: session.content_type.clone().unwrap_or_default(),
            size: session.offset,
            sha256: hasher.finish(),
            created_at: crate::util::now_micros(),
        };
        let quota = self.quota(session.tenant());
        match self.inner.catalog.commit_upload(&record, session.overwrite, &quota).await {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    let _ = self.purge(&old.blob_ref()).await;
                }
            }
            Err(e) if !matches!(e, CatalogError::Database(_) | CatalogError::Timeout(_)) => {
                // Committed by another request that settled this upload while this one's lock
                // had run out: the file is there.
                if matches!(e, CatalogError::IntentLost)
                    && let Some(row) = self.committed(&blob).await?
                {
                    return self.mark_completed(session, token, row).await;
                }
                // The row did not commit: these bytes belong to nobody, and the upload is over.
                if let Err(del) = self.inner.blobs.delete(&blob.bucket, &blob.blob).await {
                    tracing::warn!(error = %del, blob = %blob.blob, "could not remove bytes of a failed upload; reconcile will");
                }
                let _ = self.inner.catalog.remove_session(session.tenant(), &session.id, Some(token)).await;
                session.completed_at = Some(Utc::now());
                return Err(e.into());
            }
            // Unknown outcome: the upload stays as recorded (every byte in, not completed)
            // and its lock runs out; the next request to it settles it.
            Err(e) => return Err(e.into()),
        }
        tracing::info!(key = %record.key, size = record.size, upload = session.id, "resumable upload completed");
        self.mark_completed(session, token, record).await
    }

    /// Records that the upload ended as the file `row`, releasing its lock. Its file exists
    /// whatever this records: a failure is logged, and the next request settles it again.
    async fn mark_completed(
        &self,
        session: &mut UploadSession,
        token: &str,
        row: FileRecord,
    ) -> Result<Appended, ServiceError> {
        session.completed_at = Some(Utc::now());
        session.offset = row.size;
        session.hasher = row.sha256.clone();
        session.head.clear();
        if let Err(e) = self.inner.catalog.save_session(session, token, true).await {
            tracing::warn!(error = %e, upload = session.id, "the file is stored, but its upload could not be marked complete");
        }
        Ok(Appended { session: session.clone(), file: Some(row) })
    }
}
