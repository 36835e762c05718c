//! The upload body as the service sees it: size-limited and hashed while it streams.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use thiserror::Error;

use super::hashing::Hashing;
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

/// The SHA-256 and size of everything that passed through a [`Metered`] stream.
#[derive(Clone)]
pub struct Meter(Arc<Mutex<MeterState>>);

struct MeterState {
    /// `None` once finished.
    sha: Option<Hashing<ring::digest::Context>>,
    size: u64,
}

impl Meter {
    /// The hex SHA-256 and the size, once the body has ended.
    pub async fn finish(&self) -> (String, u64) {
        let (sha, size) = {
            let mut state = self.0.lock().expect("meter lock");
            (state.sha.take(), state.size)
        };
        let sha = match sha {
            Some(hashing) => hashing.finish().await,
            None => ring::digest::Context::new(&ring::digest::SHA256),
        };
        (hex::encode(sha.finish()), size)
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
    /// `announced`: the body's length when known in advance (Content-Length).
    pub fn new(inner: ByteStream, limit: u64, over: BodyError, announced: Option<u64>) -> (Self, Meter) {
        let sha = Hashing::new(ring::digest::Context::new(&ring::digest::SHA256), announced);
        let meter = Meter(Arc::new(Mutex::new(MeterState { sha: Some(sha), size: 0 })));
        (Self { inner, limit, over, meter: meter.clone() }, meter)
    }
}

impl Stream for Metered {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(sha) = &self.meter.0.lock().expect("meter lock").sha {
            futures::ready!(sha.poll_ready(cx));
        }
        let item = futures::ready!(self.inner.poll_next_unpin(cx));
        if let Some(Ok(chunk)) = &item {
            let mut state = self.meter.0.lock().expect("meter lock");
            state.size += chunk.len() as u64;
            if state.size > self.limit {
                return Poll::Ready(Some(Err(std::io::Error::other(self.over))));
            }
            if let Some(sha) = state.sha.as_mut() {
                sha.feed(chunk);
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
    use super::super::hashing::OFFLOAD_AFTER;
    use super::*;
    use sha2::{Digest, Sha256};

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        Box::pin(futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn hashes_and_counts() {
        let (mut m, meter) = Metered::new(chunks(&[b"ab", b"c"]), 3, BodyError::TooLarge { limit: 3 }, None);
        while m.next().await.is_some() {}
        let (sha, size) = meter.finish().await;
        assert_eq!(size, 3);
        assert_eq!(sha, hex::encode(Sha256::digest(b"abc")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_bodies_are_hashed_on_their_own_thread_exactly() {
        let data: Vec<u8> = (0..(OFFLOAD_AFTER as usize) * 3 + 12_345).map(|i| (i * 7 % 251) as u8).collect();
        // Handed over past OFFLOAD_AFTER, or on the thread from the start when announced.
        for announced in [None, Some(data.len() as u64)] {
            let pieces: Vec<std::io::Result<Bytes>> =
                data.chunks(65_536).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            let (mut m, meter) = Metered::new(
                Box::pin(futures::stream::iter(pieces)),
                u64::MAX,
                BodyError::TooLarge { limit: 0 },
                announced,
            );
            let mut seen = 0;
            while let Some(chunk) = m.next().await {
                seen += chunk.unwrap().len();
            }
            assert_eq!(seen, data.len());
            let (sha, size) = meter.finish().await;
            assert_eq!(size, data.len() as u64);
            assert_eq!(sha, hex::encode(Sha256::digest(&data)));
        }

        // The limit still trips past the hand-over.
        let limit = OFFLOAD_AFTER * 2;
        let pieces: Vec<std::io::Result<Bytes>> = data.chunks(65_536).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let (mut m, _) =
            Metered::new(Box::pin(futures::stream::iter(pieces)), limit, BodyError::TooLarge { limit }, None);
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
        let (mut m, _) = Metered::new(chunks(&[b"ab", b"cd"]), 3, BodyError::TooLarge { limit: 3 }, None);
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
