//! Writing a body to a file while the rest of it arrives: each piece is written from the memory
//! it arrived in (a sealed piece, or the socket's read) while the next one is received and
//! sealed; the kernel is asked to write back as it goes, and the end is fsynced. Whole objects
//! and plaintext appends go through [`write_body`]; a sealed append drives [`Writes`] itself,
//! since it keeps its last, unsealed segment back.
//!
//! A `tokio::fs::File` copies every write into a buffer of its own first: a second copy of every
//! byte. Small pieces are gathered here too, so that a body trickling in a few KiB at a time is
//! still written in large writes.

use std::io::Write;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::{WRITE_BUFFER, WRITEBACK_EVERY, start_writeback};
use crate::blob::{BlobError, ByteStream};

/// A piece at least this large is written as it is; smaller ones are gathered into
/// [`WRITE_BUFFER`]-sized writes.
const GATHER_BELOW: usize = 64 * 1024;

/// Pieces written to a file one after another, each in a trip to the blocking pool made while
/// the caller prepares the next piece (receives it, seals it): a slow body holds no thread
/// while it waits. Every `writeback_every` bytes the kernel is asked to start writing back, so
/// the fsync that follows has little left to wait for.
pub(super) struct Writes {
    /// The file, when no write is running.
    idle: Option<std::fs::File>,
    /// The write running (or the file being opened), which gives the file back.
    running: Option<JoinHandle<Result<std::fs::File, BlobError>>>,
    since_writeback: usize,
    writeback_every: usize,
}

impl Writes {
    pub(super) fn new(file: std::fs::File, writeback_every: usize) -> Self {
        Self { idle: Some(file), running: None, since_writeback: 0, writeback_every }
    }

    /// The file that `open` opens, on the blocking pool while the first piece is prepared.
    pub(super) fn opening(
        open: impl FnOnce() -> Result<std::fs::File, BlobError> + Send + 'static,
        writeback_every: usize,
    ) -> Self {
        let running = Some(tokio::task::spawn_blocking(open));
        Self { idle: None, running, since_writeback: 0, writeback_every }
    }

    /// Starts writing `piece` once the write before it is done (one at a time, in order); the
    /// error of that earlier write, if it failed.
    pub(super) async fn write(&mut self, piece: Bytes) -> Result<(), BlobError> {
        let mut file = self.take_file().await?;
        self.since_writeback += piece.len();
        let writeback = self.since_writeback >= self.writeback_every;
        if writeback {
            self.since_writeback = 0;
        }
        self.running = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&piece)?;
            if writeback {
                start_writeback(file.as_raw_fd());
            }
            Ok(file)
        }));
        Ok(())
    }

    /// Waits for the last write; the file, for the caller to make durable.
    pub(super) async fn finish(mut self) -> Result<std::fs::File, BlobError> {
        self.take_file().await
    }

    async fn take_file(&mut self) -> Result<std::fs::File, BlobError> {
        match self.running.take() {
            Some(running) => running.await.map_err(std::io::Error::other)?,
            None => self.idle.take().ok_or_else(|| BlobError::Io(std::io::Error::other("an earlier write failed"))),
        }
    }
}

/// Writes `body` to `file` (positioned where it goes) and makes it durable; the bytes written.
/// Small pieces are gathered into writes of [`WRITE_BUFFER`].
pub(super) async fn write_body(file: tokio::fs::File, body: ByteStream) -> Result<u64, BlobError> {
    let (file, size) = write_body_unsynced(file, body).await?;
    tokio::task::spawn_blocking(move || file.sync_all()).await.map_err(std::io::Error::other)??;
    Ok(size)
}

/// Writes `body` as [`write_body`] does, short of the fsync; the file and the bytes written.
pub(super) async fn write_body_unsynced(
    file: tokio::fs::File,
    mut body: ByteStream,
) -> Result<(std::fs::File, u64), BlobError> {
    let mut writes = Writes::new(file.into_std().await, WRITEBACK_EVERY);
    let mut size = 0u64;
    let mut gathered = BytesMut::new();
    let mut ended = false;
    while !ended {
        let piece = match body.next().await {
            Some(chunk) => {
                let chunk = chunk.map_err(BlobError::Body)?;
                size += chunk.len() as u64;
                if chunk.len() >= GATHER_BELOW && gathered.is_empty() {
                    chunk
                } else {
                    if gathered.is_empty() {
                        gathered.reserve(WRITE_BUFFER);
                    }
                    gathered.extend_from_slice(&chunk);
                    if gathered.len() < WRITE_BUFFER {
                        continue;
                    }
                    gathered.split().freeze()
                }
            }
            None => {
                ended = true;
                if gathered.is_empty() {
                    continue;
                }
                gathered.split().freeze()
            }
        };
        writes.write(piece).await?;
    }
    Ok((writes.finish().await?, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: Vec<Vec<u8>>) -> ByteStream {
        Box::pin(futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))))
    }

    async fn written(chunks: Vec<Vec<u8>>) -> (Result<u64, BlobError>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = tokio::fs::File::create(&path).await.unwrap();
        let result = write_body(file, body(chunks)).await;
        (result, std::fs::read(&path).unwrap())
    }

    #[tokio::test]
    async fn small_and_large_pieces_arrive_in_order() {
        let mut chunks = Vec::new();
        for i in 0..300u32 {
            // A few bytes, then a large piece now and then, crossing the gathering size.
            let len = if i % 37 == 0 { 200_000 } else { (i as usize * 131) % 9_000 };
            chunks.push((0..len).map(|j| (i as usize * 7 + j) as u8).collect::<Vec<u8>>());
        }
        let expected: Vec<u8> = chunks.concat();
        let (result, on_disk) = written(chunks).await;
        assert_eq!(result.unwrap(), expected.len() as u64);
        assert!(on_disk == expected, "the file holds the body, in order");
    }

    #[tokio::test]
    async fn an_empty_body_writes_nothing() {
        let (result, on_disk) = written(vec![]).await;
        assert_eq!(result.unwrap(), 0);
        assert!(on_disk.is_empty());
    }

    #[tokio::test]
    async fn a_failing_body_is_the_error() {
        let chunks: Vec<std::io::Result<Bytes>> =
            vec![Ok(Bytes::from(vec![1u8; 100_000])), Err(std::io::Error::other("client went away"))];
        let dir = tempfile::tempdir().unwrap();
        let file = tokio::fs::File::create(dir.path().join("f")).await.unwrap();
        let err = write_body(file, Box::pin(futures::stream::iter(chunks))).await.unwrap_err();
        assert!(matches!(err, BlobError::Body(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_failing_disk_is_the_error() {
        // A file opened for reading only: the first write fails, whatever the body.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let chunks = (0..20).map(|_| vec![0u8; 300_000]).collect();
        let err = write_body(file, body(chunks)).await.unwrap_err();
        assert!(matches!(err, BlobError::Io(_)), "{err:?}");
    }

    /// A file opened while the first piece is prepared: the pieces land in order, and a file
    /// that cannot be opened is the error of the first write after it, and of the end.
    #[tokio::test]
    async fn writes_to_a_file_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let opened = path.clone();
        let mut writes = Writes::opening(move || Ok(std::fs::File::create(opened)?), 1000);
        for i in 0..50u8 {
            writes.write(Bytes::from(vec![i; 999])).await.unwrap();
        }
        writes.finish().await.unwrap().sync_all().unwrap();
        let expected: Vec<u8> = (0..50u8).flat_map(|i| vec![i; 999]).collect();
        assert!(std::fs::read(&path).unwrap() == expected);

        let mut writes = Writes::opening(|| Err(BlobError::NotFound), 1000);
        let first = writes.write(Bytes::from_static(b"lost")).await;
        assert!(matches!(first, Err(BlobError::NotFound)), "{first:?}");
        assert!(matches!(writes.finish().await, Err(BlobError::Io(_))));
    }
}
