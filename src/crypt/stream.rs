//! Sealing a body stream and opening a sealed file, segment by segment, in bounded memory.

use std::collections::VecDeque;
use std::io::SeekFrom;
use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::pieces::Pieces;
use super::{Header, SealError, Sealer};

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Segments sealed into one piece handed to the writer (about 1 MiB at 64 KiB): a piece as
/// large as the store's write buffer is written straight through, without another copy.
const GROUP: usize = 16;
/// Pieces a sealer watches for their return to it (the one the writer writes, the one it
/// holds ready, and one more for an old piece the writer has not dropped yet).
const RECYCLED: usize = 3;

/// `body` sealed: the header, then segments with their tags, each sealed as soon as it is full
/// and known not to be the last. Plaintext is copied once, into the buffer where it is
/// encrypted in place. Sealing happens as the stream is polled, by whoever writes it: the
/// writer seals the next piece while the previous one is being written (on its blocking
/// thread), and no piece waits in a channel between them. Memory: the piece being filled and
/// the pieces the writer holds, in buffers used again once written ([`Pieces`]).
pub fn seal(sealer: Sealer, body: Body) -> Body {
    let sealing = Sealing::whole(sealer, body);
    Box::pin(futures::stream::unfold(sealing, |mut sealing| async move {
        let piece = sealing.next_piece().await?;
        Some((piece, sealing))
    }))
}

/// What a sealing does when its body ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Seals the segment being filled as the last one: the object is complete.
    Last,
    /// An append ([`Sealing::resume`]): seals the segment being filled as the last one when
    /// the object's length is known and reached; as one more (not the last) when it is full and
    /// the known length lies beyond; else leaves it unsealed, the tail of an object that goes on
    /// ([`Sealing::into_end`]).
    Append { length: Option<u64> },
}

/// Where an append left its object ([`Sealing::into_end`]).
#[derive(Debug, PartialEq, Eq)]
pub enum AppendEnd {
    /// The plaintext of the segment left unsealed: 1 to a segment's bytes (none when the body
    /// brought none after a boundary).
    Tail(BytesMut),
    /// Every segment so far sealed, none the last: the append ended at a segment's end, short
    /// of the object's known length.
    Boundary,
    /// The object is complete: its last segment is sealed as the last.
    Last,
}

/// A body being sealed segment by segment, as its pieces are asked for ([`Self::next_piece`]):
/// the buffer being filled (`out[sealed..]` is the plaintext of the segment being filled) and
/// the part of the last chunk not yet taken. One loop for a whole object ([`seal`]) and for an
/// append to a partial one ([`Self::resume`]).
pub struct Sealing {
    sealer: Sealer,
    body: Body,
    pieces: Pieces,
    out: BytesMut,
    sealed: usize,
    index: u64,
    rest: Bytes,
    ending: Ending,
    done: bool,
    /// Bytes taken from the body so far.
    taken: u64,
    /// How an append's body ended, once it has.
    end: Option<AppendEnd>,
}

impl Sealing {
    fn new(sealer: Sealer, body: Body, index: u64, ending: Ending) -> Self {
        let segment = sealer.header().segment as usize;
        let pieces = Pieces::new(GROUP * (segment + super::TAG_LEN) + segment, RECYCLED);
        let out = pieces.buffer();
        let rest = Bytes::new();
        Self { sealer, body, pieces, out, sealed: 0, index, rest, ending, done: false, taken: 0, end: None }
    }

    /// A whole object: its header, then every segment, the last sealed as the last.
    fn whole(sealer: Sealer, body: Body) -> Self {
        let mut sealing = Self::new(sealer, body, 0, Ending::Last);
        sealing.out.extend_from_slice(&sealing.sealer.header().encode());
        sealing.sealed = sealing.out.len();
        sealing
    }

    /// An append to a partial object whose segments before `index` are sealed and whose
    /// segment `index` holds the plaintext `tail` so far (at most a segment): the segments
    /// that `tail` + `body` fill and more bytes follow, sealed. `length` is the whole object's
    /// plaintext length when known: a body ending there ends the object (its last segment
    /// sealed as the last), and one ending at a segment's end short of it leaves no tail. Else
    /// the rest stays unsealed, the new tail ([`Self::into_end`]).
    pub fn resume(sealer: Sealer, index: u64, tail: &[u8], body: Body, length: Option<u64>) -> Self {
        let mut sealing = Self::new(sealer, body, index, Ending::Append { length });
        sealing.out.extend_from_slice(tail);
        sealing
    }

    /// The next piece: the segments sealed once a piece's worth is full and more follows, or
    /// once the body ends, the rest (with the last segment, for a whole object); `None` after
    /// that.
    pub async fn next_piece(&mut self) -> Option<std::io::Result<Bytes>> {
        let segment = self.sealer.header().segment as usize;
        loop {
            if self.done {
                return None;
            }
            while !self.rest.is_empty() {
                if self.out.len() - self.sealed == segment {
                    // Full, and more follows: not the last segment.
                    let tag = self.sealer.seal_detached(self.index, false, &mut self.out[self.sealed..]);
                    self.out.extend_from_slice(tag.as_ref());
                    self.index += 1;
                    self.sealed = self.out.len();
                    if self.sealed >= GROUP * (segment + super::TAG_LEN) {
                        let ready = self.pieces.split(&mut self.out, self.sealed);
                        self.sealed = 0;
                        return Some(Ok(ready));
                    }
                }
                let take = (segment - (self.out.len() - self.sealed)).min(self.rest.len());
                self.out.extend_from_slice(&self.rest.split_to(take));
            }
            match self.body.next().await {
                Some(Ok(data)) => {
                    self.taken += data.len() as u64;
                    self.rest = data;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    let filled = self.out.len() - self.sealed;
                    let at = self.index * segment as u64 + filled as u64;
                    let end = match self.ending {
                        Ending::Last => AppendEnd::Last,
                        // An empty segment is the last only of an empty object.
                        Ending::Append { length: Some(length) } if length == at && (filled > 0 || at == 0) => {
                            AppendEnd::Last
                        }
                        Ending::Append { length: Some(length) } if filled == segment && at < length => {
                            AppendEnd::Boundary
                        }
                        Ending::Append { .. } => AppendEnd::Tail(BytesMut::new()),
                    };
                    let last = match end {
                        AppendEnd::Last => Some(true),
                        AppendEnd::Boundary => Some(false),
                        AppendEnd::Tail(_) => None,
                    };
                    if let Some(last) = last {
                        let tag = self.sealer.seal_detached(self.index, last, &mut self.out[self.sealed..]);
                        self.out.extend_from_slice(tag.as_ref());
                        self.index += 1;
                        self.sealed = self.out.len();
                    }
                    self.end = Some(end);
                    if self.sealed == 0 {
                        return None;
                    }
                    let ready = self.out.split_to(self.sealed).freeze();
                    self.sealed = 0;
                    return Some(Ok(ready));
                }
            }
        }
    }

    /// Once [`Self::next_piece`] answered `None` after an append ([`Self::resume`]): where
    /// the append left the object (with the plaintext of a segment left unsealed, the new
    /// tail) and the bytes the body brought.
    pub fn into_end(self) -> (AppendEnd, u64) {
        debug_assert!(self.done && self.sealed == 0);
        let end = match self.end {
            Some(AppendEnd::Tail(_)) | None => AppendEnd::Tail(self.out),
            Some(end) => end,
        };
        (end, self.taken)
    }
}

/// `plaintext` sealed whole, exactly as [`seal`] seals it as a stream: for a small body
/// already in memory, without a task or a pipeline.
pub fn seal_all(sealer: &Sealer, plaintext: &[u8]) -> Vec<u8> {
    let segment = sealer.header().segment as usize;
    let count = plaintext.len().div_ceil(segment).max(1);
    let mut out = Vec::with_capacity(super::HEADER_LEN + plaintext.len() + count * super::TAG_LEN);
    out.extend_from_slice(&sealer.header().encode());
    // An empty body is one empty final segment, as in the stream.
    let mut chunks: Vec<&[u8]> = plaintext.chunks(segment).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (index, chunk) in chunks.into_iter().enumerate() {
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = sealer.seal_detached(index as u64, index + 1 == count, &mut out[start..]);
        out.extend_from_slice(tag.as_ref());
    }
    out
}

/// Segments read (and opened) per read from disk.
const BATCH: u64 = 8;

/// The plaintext of segments opened together, in order, each a slice of the buffer they were
/// read into and opened in place.
type Opened = VecDeque<Bytes>;

/// Reads the plaintext `range` of a sealed file, opening only the segments it touches. Each
/// batch of segments is read and opened on a blocking thread, into one buffer, while the batch
/// before it is sent: the plaintext is handed on as slices of that buffer (no copy), and the
/// next batch is under way as soon as one is taken.
pub struct Opener {
    file: Arc<std::fs::File>,
    sealer: Arc<Sealer>,
    /// Segments of the object, and the next and last ones to read.
    count: u64,
    next: u64,
    last: u64,
    stored: u64,
    range: RangeInclusive<u64>,
    /// Segments to read next time: one for the first piece (so that it comes quickly and a bad
    /// first segment fails before any response), then [`BATCH`].
    batch: u64,
    /// The batch being handed on.
    ready: Opened,
    /// The next batch, being read and opened.
    ahead: Option<tokio::task::JoinHandle<Result<(Opened, BytesMut), OpenError>>>,
    /// The buffers of batches handed on (emptied, their memory shared with the slices sent),
    /// oldest first: a later batch is read into one again once its slices are gone, so a long
    /// read goes through a few buffers instead of one new one per batch.
    spent: VecDeque<BytesMut>,
}

impl Opener {
    /// Reads from `file` (whose header was read already, `stored` bytes long) the segments of
    /// `range` (`None`: the whole object). Returns the plaintext size too.
    pub async fn new(
        file: tokio::fs::File,
        sealer: Sealer,
        stored: u64,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<(u64, Self), OpenError> {
        let header = sealer.header().clone();
        let size = header.plaintext_len(stored)?;
        let count = header.segments(size);
        // An empty object is one empty final segment: it is still read and authenticated.
        let range = range.unwrap_or(0..=size.saturating_sub(1));
        let (segments, _) = header.span(&range);
        let (next, last) = (*segments.start(), *segments.end());
        let file = Arc::new(file.into_std().await);
        let (sealer, ready, ahead, spent) = (Arc::new(sealer), Opened::new(), None, VecDeque::new());
        let opener = Self { file, sealer, count, next, last, stored, range, batch: 1, ready, ahead, spent };
        Ok((size, opener))
    }

    /// The next plaintext piece of the range (a segment's, or the part of it in the range),
    /// `None` at its end.
    pub async fn next_piece(&mut self) -> Result<Option<Bytes>, OpenError> {
        loop {
            if let Some(piece) = self.ready.pop_front() {
                return Ok(Some(piece));
            }
            let (batch, spent) = match self.ahead.take().or_else(|| self.start_batch()) {
                Some(reading) => reading.await.map_err(std::io::Error::other)??,
                None => return Ok(None),
            };
            self.ready = batch;
            self.spent.push_back(spent);
            self.ahead = self.start_batch();
        }
    }

    /// Starts reading and opening the next batch; `None` past the range's last segment.
    fn start_batch(&mut self) -> Option<tokio::task::JoinHandle<Result<(Opened, BytesMut), OpenError>>> {
        if self.next > self.last {
            return None;
        }
        let header = self.sealer.header();
        let full = header.sealed_segment();
        let upto = (self.next + self.batch - 1).min(self.last);
        self.batch = BATCH;
        let start = super::HEADER_LEN as u64 + self.next * full;
        let end = (super::HEADER_LEN as u64 + (upto + 1) * full).min(self.stored);
        // The older of two spent buffers: the batch handed on just before the one being sent,
        // whose slices the response has most likely written by now.
        let mut buf = if self.spent.len() >= 2 { self.spent.pop_front().unwrap_or_default() } else { BytesMut::new() };
        // Reuses the memory when the slices cut from it are all gone (`reserve` reclaims a
        // buffer held only here), else takes new memory — here, on the request's thread: from
        // a blocking thread, it came from (and went back to) the malloc arena of whichever
        // thread read the batch, and those arenas kept megabytes each.
        buf.reserve((end - start) as usize);
        let batch = Batch {
            buf,
            segments: self.next..=upto,
            at: start,
            len: (end - start) as usize,
            count: self.count,
            range: self.range.clone(),
        };
        self.next = upto + 1;
        let (file, sealer) = (self.file.clone(), self.sealer.clone());
        Some(tokio::task::spawn_blocking(move || batch.open(&file, &sealer)))
    }
}

/// Segments to read from `at` (`len` bytes on disk) and open, into `buf` (room for them
/// reserved already).
struct Batch {
    buf: BytesMut,
    segments: RangeInclusive<u64>,
    at: u64,
    len: usize,
    count: u64,
    range: RangeInclusive<u64>,
}

impl Batch {
    /// The plaintext slices, and the buffer they were cut from (empty now) to read into again.
    fn open(self, file: &std::fs::File, sealer: &Sealer) -> Result<(Opened, BytesMut), OpenError> {
        use std::os::unix::fs::FileExt;
        let header = sealer.header();
        let (full, plain) = (header.sealed_segment() as usize, u64::from(header.segment));
        let mut buf = self.buf;
        buf.resize(self.len, 0);
        file.read_exact_at(&mut buf, self.at)?;
        let mut opened = Opened::with_capacity(BATCH as usize);
        for i in self.segments {
            let mut sealed = buf.split_to(full.min(buf.len()));
            let len = sealer.open(i, i + 1 == self.count, &mut sealed)?;
            let seg_start = i * plain;
            let from = self.range.start().saturating_sub(seg_start).min(len as u64) as usize;
            let to = (self.range.end() + 1 - seg_start).min(len as u64) as usize;
            if to > from {
                opened.push_back(sealed.freeze().slice(from..to));
            }
        }
        Ok((opened, buf))
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
    /// The disk's failure, when it is one; `Err(self)` when the bytes are at fault (tampered,
    /// or truncated: an early end of file).
    pub fn disk_failure(self) -> Result<std::io::Error, Self> {
        match self {
            Self::Io(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => Ok(e),
            other => Err(other),
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
