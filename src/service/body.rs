//! The upload body as the service sees it: size-limited and hashed while it streams.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::task::AtomicWaker;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::blob::ByteStream;

/// A limit tripped while streaming; travels inside an `io::Error` through the blob store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BodyError {
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("body exceeds the tenant's remaining quota")]
    QuotaExceeded,
    #[error("no data arrived for too long")]
    IdleTimeout,
    #[error("the body arrives slower than {min_rate} bytes per second")]
    TooSlow { min_rate: u64 },
    #[error("body goes past the upload's length of {length} bytes")]
    BeyondLength { length: u64 },
}

impl BodyError {
    /// Recovers a `BodyError` from the `io::Error` it was wrapped in.
    pub fn from_io(e: &std::io::Error) -> Option<Self> {
        e.get_ref()?.downcast_ref::<BodyError>().copied()
    }
}

/// A body longer than this is hashed on a thread of its own from here on, so that hashing
/// overlaps with receiving and writing instead of adding to them on the request's task.
const OFFLOAD_AFTER: u64 = 4 << 20;
/// At most this much of the body waits for the hashing thread; then the body waits for it.
const MAX_QUEUED: usize = 2 << 20;

/// The SHA-256 and size of everything that passed through a [`Metered`] stream.
#[derive(Clone, Default)]
pub struct Meter(Arc<Mutex<MeterState>>);

#[derive(Default)]
struct MeterState {
    /// `None` once the hash moved to its thread.
    sha: Option<Sha256>,
    size: u64,
    offload: Option<Offload>,
}

/// The hashing thread of a long body: the bytes sent to it, how many wait, whom to wake when
/// they drain, and the hash once the sender is gone.
struct Offload {
    tx: std::sync::mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    waker: Arc<AtomicWaker>,
    done: tokio::sync::oneshot::Receiver<Sha256>,
}

impl Offload {
    fn start(sha: Sha256) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Bytes>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let waker = Arc::new(AtomicWaker::new());
        let (q, w) = (queued.clone(), waker.clone());
        tokio::task::spawn_blocking(move || {
            let mut sha = sha;
            while let Ok(chunk) = rx.recv() {
                sha.update(&chunk);
                q.fetch_sub(chunk.len(), Ordering::AcqRel);
                w.wake();
            }
            let _ = done_tx.send(sha);
        });
        Self { tx, queued, waker, done }
    }
}

impl Meter {
    /// The hex SHA-256 and the size, once the body has ended.
    pub async fn finish(&self) -> (String, u64) {
        let (sha, size, offload) = {
            let mut guard = self.0.lock().expect("meter lock");
            let state = &mut *guard;
            (state.sha.clone(), state.size, state.offload.take())
        };
        let sha = match offload {
            Some(Offload { tx, done, .. }) => {
                drop(tx);
                done.await.expect("the hashing thread ends with its hash")
            }
            None => sha.unwrap_or_default(),
        };
        (hex::encode(sha.finalize()), size)
    }
}

/// Passes bytes through, hashing them, and fails with `over` as soon as more than `limit`
/// bytes have been seen (before the excess reaches storage).
pub struct Metered {
    inner: ByteStream,
    limit: u64,
    over: BodyError,
    meter: Meter,
}

impl Metered {
    pub fn new(inner: ByteStream, limit: u64, over: BodyError) -> (Self, Meter) {
        let meter = Meter(Arc::new(Mutex::new(MeterState { sha: Some(Sha256::new()), ..MeterState::default() })));
        (Self { inner, limit, over, meter: meter.clone() }, meter)
    }
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The hashing thread is behind: wait for it (memory stays bounded).
        if let Some(off) = &self.meter.0.lock().expect("meter lock").offload
            && off.queued.load(Ordering::Acquire) > MAX_QUEUED
        {
            off.waker.register(cx.waker());
            if off.queued.load(Ordering::Acquire) > MAX_QUEUED {
                return Poll::Pending;
            }
        }
        let item = futures::ready!(self.inner.poll_next_unpin(cx));
        if let Some(Ok(chunk)) = &item {
            let mut guard = self.meter.0.lock().expect("meter lock");
            let state = &mut *guard;
            state.size += chunk.len() as u64;
            if state.size > self.limit {
                return Poll::Ready(Some(Err(std::io::Error::other(self.over))));
            }
            match (&state.offload, state.sha.as_mut()) {
                (Some(off), _) => {
                    off.queued.fetch_add(chunk.len(), Ordering::AcqRel);
                    let _ = off.tx.send(chunk.clone());
                }
                (None, Some(sha)) => {
                    sha.update(chunk);
                    if state.size > OFFLOAD_AFTER {
                        state.offload = state.sha.take().map(Offload::start);
                    }
                }
                (None, None) => unreachable!("the hash is here or on its thread"),
            }
        }
        Poll::Ready(item)
    }
}

/// Reads chunks from `body` until at least `want` bytes (or the end) are buffered; returns
/// those bytes and a stream that yields them again followed by the rest.
pub async fn peek(mut body: ByteStream, want: usize) -> std::io::Result<(Bytes, ByteStream)> {
    let mut chunks = Vec::new();
    let mut len = 0;
    let mut ended = false;
    while len < want {
        match body.next().await {
            Some(chunk) => {
                let chunk = chunk?;
                len += chunk.len();
                chunks.push(chunk);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let head: Bytes = match chunks.as_slice() {
        [one] => one.clone(),
        many => many.concat().into(),
    };
    let replay = futures::stream::iter(chunks.into_iter().map(Ok));
    // An ended stream must not be polled again.
    let rest: ByteStream = if ended { Box::pin(replay) } else { Box::pin(replay.chain(body)) };
    Ok((head, rest))
}

/// A body stream from bytes already in memory.
pub fn from_bytes(content: impl Into<Bytes>) -> ByteStream {
    let content = content.into();
    Box::pin(futures::stream::once(async move { Ok(content) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        Box::pin(futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn hashes_and_counts() {
        let (mut m, meter) = Metered::new(chunks(&[b"ab", b"c"]), 3, BodyError::TooLarge { limit: 3 });
        while m.next().await.is_some() {}
        let (sha, size) = meter.finish().await;
        assert_eq!(size, 3);
        assert_eq!(sha, hex::encode(Sha256::digest(b"abc")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_bodies_are_hashed_on_their_own_thread_exactly() {
        let data: Vec<u8> = (0..(OFFLOAD_AFTER as usize) * 3 + 12_345).map(|i| (i * 7 % 251) as u8).collect();
        let pieces: Vec<std::io::Result<Bytes>> = data.chunks(65_536).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let (mut m, meter) =
            Metered::new(Box::pin(futures::stream::iter(pieces)), u64::MAX, BodyError::TooLarge { limit: 0 });
        let mut seen = 0;
        while let Some(chunk) = m.next().await {
            seen += chunk.unwrap().len();
        }
        assert_eq!(seen, data.len());
        let (sha, size) = meter.finish().await;
        assert_eq!(size, data.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&data)));

        // The limit still trips past the hand-over.
        let limit = OFFLOAD_AFTER * 2;
        let pieces: Vec<std::io::Result<Bytes>> = data.chunks(65_536).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let (mut m, _) = Metered::new(Box::pin(futures::stream::iter(pieces)), limit, BodyError::TooLarge { limit });
        let mut passed = 0u64;
        let err = loop {
            match m.next().await.expect("trips before the end") {
                Ok(chunk) => passed += chunk.len() as u64,
                Err(e) => break e,
            }
        };
        assert!(passed <= limit);
        assert_eq!(BodyError::from_io(&err), Some(BodyError::TooLarge { limit }));
    }

    #[tokio::test]
    async fn trips_over_the_limit() {
        let (mut m, _) = Metered::new(chunks(&[b"ab", b"cd"]), 3, BodyError::TooLarge { limit: 3 });
        assert!(m.next().await.unwrap().is_ok());
        let err = m.next().await.unwrap().unwrap_err();
        assert_eq!(BodyError::from_io(&err), Some(BodyError::TooLarge { limit: 3 }));
    }

    #[tokio::test]
    async fn peek_replays() {
        let (head, rest) = peek(chunks(&[b"ab", b"cd", b"ef"]), 3).await.unwrap();
        assert_eq!(&head[..], b"abcd");
        let all: Vec<Bytes> = rest.map(|c| c.unwrap()).collect().await;
        assert_eq!(all.concat(), b"abcdef");
    }
}
