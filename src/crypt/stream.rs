//! Sealing a body stream and opening a sealed file, segment by segment, in bounded memory.

use std::io::SeekFrom;
use std::ops::RangeInclusive;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Header, SealError, Sealer};

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<Bytes>> + Send>>;

/// `body` sealed: the header, then each segment as soon as it is full and known not to be the
/// last. Memory: one segment of plaintext plus what the body hands over at once.
pub fn seal(sealer: Sealer, body: Body) -> Body {
    struct State {
        sealer: Sealer,
        body: Body,
        buf: BytesMut,
        index: u64,
        header_sent: bool,
        finished: bool,
    }
    let state = State { sealer, body, buf: BytesMut::new(), index: 0, header_sent: false, finished: false };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        if s.finished {
            return None;
        }
        if !s.header_sent {
            s.header_sent = true;
            let header = Bytes::copy_from_slice(&s.sealer.header().encode());
            return Some((Ok(header), s));
        }
        let segment = s.sealer.header().segment as usize;
        loop {
            if s.buf.len() > segment {
                let mut out = s.buf.split_to(segment).to_vec();
                s.sealer.seal(s.index, false, &mut out);
                s.index += 1;
                return Some((Ok(Bytes::from(out)), s));
            }
            match s.body.next().await {
                Some(Ok(chunk)) => s.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    s.finished = true;
                    return Some((Err(e), s));
                }
                None => {
                    let mut out = s.buf.split().to_vec();
                    s.sealer.seal(s.index, true, &mut out);
                    s.finished = true;
                    return Some((Ok(Bytes::from(out)), s));
                }
            }
        }
    }))
}

/// Segments read (and opened) per read from disk.
const BATCH: u64 = 8;

/// Reads the plaintext `range` of a sealed file, opening only the segments it touches.
pub struct Opener {
    file: tokio::fs::File,
    sealer: Sealer,
    /// Segments of the object, and the next and last ones to read.
    count: u64,
    next: u64,
    last: u64,
    stored: u64,
    range: RangeInclusive<u64>,
    /// Segments to read next time: one for the first piece (so that it comes quickly and a bad
    /// first segment fails before any response), then [`BATCH`].
    batch: u64,
}

impl Opener {
    /// Positions `file` (whose header was read already, `stored` bytes long) at the first
    /// segment of `range` (`None`: the whole object). Returns the plaintext size too.
    pub async fn new(
        mut file: tokio::fs::File,
        sealer: Sealer,
        stored: u64,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<(u64, Self), OpenError> {
        let header = sealer.header().clone();
        let size = header.plaintext_len(stored)?;
        let count = header.segments(size);
        // An empty object is one empty final segment: it is still read and authenticated.
        let range = range.unwrap_or(0..=size.saturating_sub(1));
        let (segments, offset) = header.span(&range);
        file.seek(SeekFrom::Start(offset)).await?;
        let (next, last) = (*segments.start(), *segments.end());
        let opener = Self { file, sealer, count, next, last, stored, range, batch: 1 };
        Ok((size, opener))
    }

    /// The next plaintext piece of the range (one segment first, then up to [`BATCH`]), `None`
    /// at its end.
    pub async fn next_piece(&mut self) -> Result<Option<Bytes>, OpenError> {
        if self.next > self.last {
            return Ok(None);
        }
        let header = self.sealer.header();
        let full = header.sealed_segment();
        let plain = u64::from(header.segment);
        let upto = (self.next + self.batch - 1).min(self.last);
        self.batch = BATCH;
        let start_on_disk = super::HEADER_LEN as u64 + self.next * full;
        let end_on_disk = (super::HEADER_LEN as u64 + (upto + 1) * full).min(self.stored);
        let mut buf = vec![0u8; (end_on_disk - start_on_disk) as usize];
        self.file.read_exact(&mut buf).await?;
        let mut out = BytesMut::with_capacity(buf.len());
        for (i, sealed) in (self.next..=upto).zip(buf.chunks_mut(full as usize)) {
            let is_last = i + 1 == self.count;
            let len = self.sealer.open(i, is_last, sealed)?;
            let seg_start = i * plain;
            let from = self.range.start().saturating_sub(seg_start).min(len as u64) as usize;
            let to = (self.range.end() + 1 - seg_start).min(len as u64) as usize;
            out.extend_from_slice(&sealed[from..to.max(from)]);
        }
        self.next = upto + 1;
        Ok(Some(out.freeze()))
    }
}

/// Why a sealed read failed: the bytes (tampered, truncated) or the disk.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl OpenError {
    /// A truncated file shows up as an early end of file: that is the bytes' fault, not the disk's.
    pub fn is_corruption(&self) -> bool {
        match self {
            Self::Seal(_) => true,
            Self::Io(e) => e.kind() == std::io::ErrorKind::UnexpectedEof,
        }
    }
}

/// The header at the front of `file`: `Ok(None)` when the file is not sealed (plaintext).
pub async fn read_header(file: &mut tokio::fs::File) -> Result<Option<Header>, OpenError> {
    let mut head = [0u8; super::HEADER_LEN];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]).await? {
            0 => break,
            n => got += n,
        }
    }
    let header = Header::decode(&head[..got]).transpose()?;
    if header.is_none() {
        file.seek(SeekFrom::Start(0)).await?;
    }
    Ok(header)
}
