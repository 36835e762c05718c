//! The body of one resumable append as the service sees it: counted, hashed into the upload's
//! running SHA-256 and the request's checksum, cut at the upload's length, and — unless the
//! client asked for a checksum — ended cleanly when the client goes away, so the bytes that did
//! arrive are kept (tus: a client resumes from the offset the server reports). The digests are
//! fed on a thread of their own past the first few megabytes (from the start when the append
//! announces more), as for a plain upload.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::hash::ResumableSha256;
use crate::blob::ByteStream;
use crate::service::BodyError;
use crate::service::hashing::{Feed, Hashing};

/// The upload's running SHA-256 and the request's own checksum, fed together.
pub struct Digests {
    pub hasher: ResumableSha256,
    pub checksum: Option<ring::digest::Context>,
}

impl Feed for Digests {
    fn feed(&mut self, data: &[u8]) {
        self.hasher.update(data);
        if let Some(c) = self.checksum.as_mut() {
            c.update(data);
        }
    }
}

/// What passed through an [`Intake`] so far.
pub struct Taken {
    /// `None` once finished.
    digests: Option<Hashing<Digests>>,
    bytes: u64,
    interrupted: Option<std::io::Error>,
}

/// What passed through an [`Intake`], once its body has ended.
pub struct Finished {
    pub digests: Digests,
    pub bytes: u64,
    /// The client's stream failed (it went away); what arrived before is kept.
    pub interrupted: Option<std::io::Error>,
}

/// The digests and count of what passed through the intake `taken` belongs to (call once, after
/// its body has ended).
pub async fn finish(taken: &Mutex<Taken>) -> Finished {
    let (digests, bytes, interrupted) = {
        let mut t = taken.lock().expect("intake lock");
        (t.digests.take().expect("an intake finishes once"), t.bytes, t.interrupted.take())
    };
    Finished { digests: digests.finish().await, bytes, interrupted }
}

pub struct Intake {
    inner: ByteStream,
    limit: u64,
    over: BodyError,
    keep_partial: bool,
    done: bool,
    taken: Arc<Mutex<Taken>>,
}

impl Intake {
    pub fn new(
        inner: ByteStream,
        hasher: ResumableSha256,
        checksum: Option<ring::digest::Context>,
        limit: u64,
        over: BodyError,
        announced: Option<u64>,
    ) -> (Self, Arc<Mutex<Taken>>) {
        let keep_partial = checksum.is_none();
        let digests = Hashing::new(Digests { hasher, checksum }, announced);
        let taken = Arc::new(Mutex::new(Taken { digests: Some(digests), bytes: 0, interrupted: None }));
        (Self { inner, limit, over, keep_partial, done: false, taken: taken.clone() }, taken)
    }
}

impl Stream for Intake {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(digests) = &self.taken.lock().expect("intake lock").digests {
            futures::ready!(digests.poll_ready(cx));
        }
        let item = futures::ready!(self.inner.poll_next_unpin(cx));
        let mut taken = self.taken.lock().expect("intake lock");
        match item {
            Some(Ok(chunk)) => {
                if taken.bytes + chunk.len() as u64 > self.limit {
                    drop(taken);
                    self.done = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(self.over))));
                }
                taken.bytes += chunk.len() as u64;
                if let Some(digests) = taken.digests.as_mut() {
                    digests.feed(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            // A limit of the service's own (idle, too slow) or a client that went away: keep what
            // came, unless a checksum must cover the whole body.
            Some(Err(e)) if self.keep_partial => {
                taken.interrupted = Some(e);
                drop(taken);
                self.done = true;
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                drop(taken);
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                drop(taken);
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}
