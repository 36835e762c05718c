//! Time and size bounds on every byte of an upload body, applied to the raw request body
//! before anything parses it (so a multipart preamble is bounded like the file data):
//! - an idle timeout between chunks (408 `body-timeout`), counted from the first time the
//!   server asks for the body (a tus append waiting its turn has not started reading it);
//! - a minimum rate over each idle-timeout window (408 `body-too-slow`), so that a trickle of
//!   one byte just inside the idle timeout cannot hold an upload slot either;
//! - for multipart bodies, a cap on the bytes before the file part's data starts
//!   ([`Preamble`], 413 `multipart-preamble-too-large`), so form fields, part headers and
//!   junk before the first boundary cost bounded memory and time.
//!
//! Parsers wrap the errors they read (multer reports a failed stream as its own error), so the
//! guard also records what tripped in a [`Tripped`] cell the handler consults.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::blob::ByteStream;
use crate::service::BodyError;

/// Most bytes a multipart body may carry before its file part's data: the boundary, up to
/// three small form fields and the part headers fit many times over.
pub const MAX_PREAMBLE: usize = 16 * 1024;

/// Pieces the preamble is fed to the parser in, so that no more than this is read past the
/// cap before it trips.
const PREAMBLE_PIECE: usize = 2048;

/// What tripped a guard, if anything; shared with the handler.
#[derive(Clone, Default)]
pub struct Tripped(Arc<OnceLock<Trip>>);

/// Why a guarded body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trip {
    Body(BodyError),
    PreambleTooLarge,
}

impl Tripped {
    pub fn get(&self) -> Option<Trip> {
        self.0.get().copied()
    }

    fn set(&self, trip: Trip) -> std::io::Error {
        let _ = self.0.set(trip);
        match trip {
            Trip::Body(e) => std::io::Error::other(e),
            Trip::PreambleTooLarge => std::io::Error::other("multipart preamble too large"),
        }
    }
}

/// Enforces the idle timeout and the minimum rate on `inner`.
pub struct BodyGuard {
    inner: ByteStream,
    idle: Duration,
    min_rate: u64,
    idle_timer: Pin<Box<Sleep>>,
    window_start: Instant,
    window_bytes: u64,
    tripped: Tripped,
    /// Whether the body was asked for yet: the clocks start then.
    started: bool,
    done: bool,
}

impl BodyGuard {
    pub fn new(inner: ByteStream, idle: Duration, min_rate: u64, tripped: Tripped) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            min_rate,
            idle_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            window_start: now,
            window_bytes: 0,
            tripped,
            started: false,
            done: false,
        }
    }

    fn trip(&mut self, e: BodyError) -> Poll<Option<std::io::Result<Bytes>>> {
        self.done = true;
        Poll::Ready(Some(Err(self.tripped.set(Trip::Body(e)))))
    }
}

impl Stream for BodyGuard {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.started {
            self.started = true;
            let now = Instant::now();
            self.window_start = now;
            let deadline = now + self.idle;
            self.idle_timer.as_mut().reset(deadline);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let now = Instant::now();
                self.window_bytes += chunk.len() as u64;
                let window = now - self.window_start;
                if window >= self.idle {
                    // Whole windows only: a fast start does not excuse a stall later.
                    let needed = (self.min_rate as f64 * window.as_secs_f64()) as u64;
                    if self.window_bytes < needed {
                        let min_rate = self.min_rate;
                        return self.trip(BodyError::TooSlow { min_rate });
                    }
                    self.window_start = now;
                    self.window_bytes = 0;
                }
                let deadline = now + self.idle;
                self.idle_timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                self.done = other.is_none();
                Poll::Ready(other)
            }
            Poll::Pending => match self.idle_timer.as_mut().poll(cx) {
                Poll::Ready(()) => self.trip(BodyError::IdleTimeout),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Caps the bytes a multipart parser may read before the file part starts
/// ([`Preamble::file_started`]); feeds them in small pieces so the cap is exact to a piece.
pub struct Preamble {
    inner: ByteStream,
    seen: usize,
    pending: Bytes,
    started: Arc<AtomicBool>,
    tripped: Tripped,
    /// Whether the last poll handed over a piece (the next one pauses).
    handed: bool,
}

impl Preamble {
    /// The wrapped stream and the switch that lifts the cap once the file part's data begins.
    pub fn new(inner: ByteStream, tripped: Tripped) -> (Self, Arc<AtomicBool>) {
        let started = Arc::new(AtomicBool::new(false));
        (Self { inner, seen: 0, pending: Bytes::new(), started: started.clone(), tripped, handed: false }, started)
    }
}

impl Stream for Preamble {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.started.load(Ordering::Relaxed) {
            if !this.pending.is_empty() {
                return Poll::Ready(Some(Ok(std::mem::take(&mut this.pending))));
            }
            return this.inner.poll_next_unpin(cx);
        }
        // One piece per turn: a parser that drains whatever is ready (multer does) would
        // otherwise take a whole read of the body (up to 256 KiB) before it could see that the
        // file part has begun, and trip the cap on an ordinary form.
        if std::mem::take(&mut this.handed) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.pending.is_empty() {
            match futures::ready!(this.inner.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => this.pending = chunk,
                other => return Poll::Ready(other),
            }
        }
        if this.seen >= MAX_PREAMBLE {
            return Poll::Ready(Some(Err(this.tripped.set(Trip::PreambleTooLarge))));
        }
        let n = this.pending.len().min(PREAMBLE_PIECE);
        this.seen += n;
        this.handed = true;
        Poll::Ready(Some(Ok(this.pending.split_to(n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<&'static [u8]>) -> ByteStream {
        Box::pin(futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))))
    }

    #[tokio::test]
    async fn preamble_is_cut_at_the_cap_and_lifted_when_the_file_starts() {
        let big: &'static [u8] = Box::leak(vec![b'x'; MAX_PREAMBLE + 10 * PREAMBLE_PIECE].into_boxed_slice());
        let tripped = Tripped::default();
        let (mut s, _) = Preamble::new(chunks(vec![big]), tripped.clone());
        let mut read = 0;
        let err = loop {
            match s.next().await.unwrap() {
                Ok(b) => read += b.len(),
                Err(e) => break e,
            }
        };
        assert!(read <= MAX_PREAMBLE, "{read}");
        assert!(err.to_string().contains("preamble"));
        assert_eq!(tripped.get(), Some(Trip::PreambleTooLarge));

        let (mut s, started) = Preamble::new(chunks(vec![b"head", big]), Tripped::default());
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"head");
        started.store(true, Ordering::Relaxed);
        assert_eq!(s.next().await.unwrap().unwrap().len(), big.len());
    }

    #[tokio::test]
    async fn a_form_arriving_in_one_read_is_not_taken_for_a_long_preamble() {
        // multer takes every piece that is ready before it parses: the whole form, a field and
        // 128 KiB of file, arrives as one chunk (one 256 KiB read of the connection).
        let mut form = b"--B\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\nreports\r\n--B\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"m.bin\"\r\n\r\n"
            .to_vec();
        form.extend(vec![7u8; 128 * 1024]);
        form.extend_from_slice(b"\r\n--B--\r\n");
        let body: ByteStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from(form))]));
        let tripped = Tripped::default();
        let (preamble, started) = Preamble::new(body, tripped.clone());
        let mut parts = multer::Multipart::new(preamble, "B");
        let field = parts.next_field().await.unwrap().unwrap();
        assert_eq!(field.name(), Some("category"));
        assert_eq!(field.text().await.unwrap(), "reports");
        let file = parts.next_field().await.unwrap().unwrap();
        assert_eq!(file.file_name(), Some("m.bin"));
        started.store(true, Ordering::Relaxed);
        assert_eq!(file.bytes().await.unwrap().len(), 128 * 1024);
        assert_eq!(tripped.get(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_inside_the_idle_timeout_is_too_slow() {
        let trickle = futures::stream::unfold(0, |i| async move {
            tokio::time::sleep(Duration::from_secs(29)).await;
            (i < 10).then(|| (Ok(Bytes::from_static(b"x")), i + 1))
        });
        let tripped = Tripped::default();
        let mut s = BodyGuard::new(Box::pin(trickle), Duration::from_secs(30), 1024, tripped.clone());
        assert!(s.next().await.unwrap().is_ok());
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(BodyError::from_io(&err), Some(BodyError::TooSlow { min_rate: 1024 }));
        assert_eq!(tripped.get(), Some(Trip::Body(BodyError::TooSlow { min_rate: 1024 })));
        assert!(s.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn stalls_hit_the_idle_timeout_and_steady_bodies_pass() {
        let stalled = futures::stream::pending::<std::io::Result<Bytes>>();
        let mut s = BodyGuard::new(Box::pin(stalled), Duration::from_secs(30), 0, Tripped::default());
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(BodyError::from_io(&err), Some(BodyError::IdleTimeout));

        let steady = futures::stream::unfold(0, |i| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            (i < 100).then(|| (Ok(Bytes::from(vec![0u8; 2048])), i + 1))
        });
        let s = BodyGuard::new(Box::pin(steady), Duration::from_secs(30), 1024, Tripped::default());
        let all: Vec<_> = s.collect().await;
        assert_eq!(all.len(), 100);
        assert!(all.iter().all(Result::is_ok));
    }

    #[tokio::test(start_paused = true)]
    async fn the_clocks_start_when_the_body_is_first_asked_for() {
        // A tus append waits its turn for a minute before it reads its body, which comes at
        // once: neither the idle timeout nor the rate counts the wait.
        let ready = futures::stream::iter((0..4).map(|_| Ok(Bytes::from(vec![1u8; 4096]))));
        let s = BodyGuard::new(Box::pin(ready), Duration::from_secs(30), 1024 * 1024, Tripped::default());
        tokio::time::sleep(Duration::from_secs(60)).await;
        let all: Vec<_> = s.collect().await;
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(Result::is_ok));
    }
}
