//! Digests of a body while it streams: fed on the request's task for the first few megabytes,
//! then on a thread of their own, so that hashing a long body overlaps with receiving, sealing
//! and writing it instead of adding to them (a plain upload and a resumable append alike).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::task::AtomicWaker;

/// A body longer than this is hashed on a thread of its own from here on.
pub(super) const OFFLOAD_AFTER: u64 = 4 << 20;
/// At most this much of the body waits for the hashing thread; then the body waits for it.
const MAX_QUEUED: usize = 2 << 20;

/// What a body is fed through.
pub trait Feed: Send + 'static {
    fn feed(&mut self, data: &[u8]);
}

/// SHA-256 as ring computes it: its assembly (of OpenSSL lineage) is chosen at run time, and
/// on a CPU without SHA extensions it hashed 2–2.7× as fast as sha2's portable code
/// (BENCHMARKS.md).
impl Feed for ring::digest::Context {
    fn feed(&mut self, data: &[u8]) {
        self.update(data);
    }
}

/// A digest being fed: here, or on its thread once the body is long.
pub struct Hashing<H> {
    here: Option<H>,
    thread: Option<Offload<H>>,
    fed: u64,
}

/// The hashing thread: the bytes sent to it, how many wait, whom to wake when they drain, and
/// the digest once the sender is gone.
struct Offload<H> {
    tx: std::sync::mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
    waker: Arc<AtomicWaker>,
    done: tokio::sync::oneshot::Receiver<H>,
}

impl<H: Feed> Offload<H> {
    fn start(mut digest: H) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Bytes>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let waker = Arc::new(AtomicWaker::new());
        let (q, w) = (queued.clone(), waker.clone());
        tokio::task::spawn_blocking(move || {
            while let Ok(chunk) = rx.recv() {
                digest.feed(&chunk);
                q.fetch_sub(chunk.len(), Ordering::AcqRel);
                w.wake();
            }
            let _ = done_tx.send(digest);
        });
        Self { tx, queued, waker, done }
    }
}

impl<H: Feed> Hashing<H> {
    /// A digest fed here until the body passes a few megabytes; on its thread from the start
    /// when the body `announced` it will be longer than that.
    pub fn new(digest: H, announced: Option<u64>) -> Self {
        if announced.is_some_and(|n| n > OFFLOAD_AFTER) {
            return Self { here: None, thread: Some(Offload::start(digest)), fed: 0 };
        }
        Self { here: Some(digest), thread: None, fed: 0 }
    }

    /// Pending while the thread is too far behind (memory stays bounded); wakes `cx` when it
    /// catches up.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(off) = &self.thread
            && off.queued.load(Ordering::Acquire) > MAX_QUEUED
        {
            off.waker.register(cx.waker());
            if off.queued.load(Ordering::Acquire) > MAX_QUEUED {
                return Poll::Pending;
            }
        }
        Poll::Ready(())
    }

    pub fn feed(&mut self, chunk: &Bytes) {
        self.fed += chunk.len() as u64;
        match (&self.thread, self.here.as_mut()) {
            (Some(off), _) => {
                off.queued.fetch_add(chunk.len(), Ordering::AcqRel);
                let _ = off.tx.send(chunk.clone());
            }
            (None, Some(digest)) => {
                digest.feed(chunk);
                if self.fed > OFFLOAD_AFTER {
                    self.thread = self.here.take().map(Offload::start);
                }
            }
            (None, None) => unreachable!("the digest is here or on its thread"),
        }
    }

    /// The digest of everything fed.
    pub async fn finish(self) -> H {
        match self.thread {
            Some(Offload { tx, done, .. }) => {
                drop(tx);
                done.await.expect("the hashing thread ends with its digest")
            }
            None => self.here.expect("the digest is here or on its thread"),
        }
    }
}
