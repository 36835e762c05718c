//! Writing a body to a file while the rest of it arrives: each piece is written from the memory
//! it arrived in (a sealed piece, or the socket's read) while the next one is received and
//! sealed; the kernel is asked to write back as it goes, and the end is fsynced.
//!
//! A `tokio::fs::File` copies every write into a buffer of its own first: a second copy of every
//! byte. Small pieces are gathered here too, so that a body trickling in a few KiB at a time is
//! still written in large writes.

use std::io::Write;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{WRITE_BUFFER, start_writeback};
use crate::blob::{BlobError, ByteStream};

/// What a writing thread ([`write_pieces`]) is sent: pieces, then `End` to make them durable. A
/// channel that closes without `End` means the write was given up: nothing is synced.
pub(super) enum Piece {
    Bytes(Bytes),
    End,
}

/// Pieces waiting for the writing thread.
pub(super) const PIPELINE: usize = 4;

/// A piece at least this large is written as it is; smaller ones are gathered into
/// [`WRITE_BUFFER`]-sized writes.
const GATHER_BELOW: usize = 64 * 1024;

/// Writes the pieces as they come, on the thread that calls it (for the duration of one append),
/// asking the kernel to start writing back every `writeback_every` bytes (a fsync follows, and
/// its caller waits for it), and fsyncs at `End`.
pub(super) fn write_pieces(
    mut file: std::fs::File,
    mut pieces: mpsc::Receiver<Piece>,
    writeback_every: usize,
) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    let mut since_writeback = 0;
    while let Some(piece) = pieces.blocking_recv() {
        match piece {
            Piece::Bytes(bytes) => {
                file.write_all(&bytes)?;
                since_writeback += bytes.len();
                if since_writeback >= writeback_every {
                    since_writeback = 0;
                    start_writeback(fd);
                }
            }
            Piece::End => return file.sync_all(),
        }
    }
    Ok(())
}

/// Writes `body` to `file` (positioned where it goes) and makes it durable; the bytes written.
/// Each write is one trip to the blocking pool, made while the next piece is received, so a
/// slow body holds no thread while it waits.
pub(super) async fn write_body(file: tokio::fs::File, mut body: ByteStream) -> Result<u64, BlobError> {
    let mut file = Some(file.into_std().await);
    let mut writing: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>> = None;
    let (mut size, mut since_writeback) = (0u64, 0usize);
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
        // The previous write is done before this one starts: one at a time, in order.
        let mut f = match writing.take() {
            Some(previous) => previous.await.map_err(std::io::Error::other)??,
            None => file.take().expect("the file is here when no write is running"),
        };
        since_writeback += piece.len();
        let writeback = since_writeback >= super::WRITEBACK_EVERY;
        if writeback {
            since_writeback = 0;
        }
        writing = Some(tokio::task::spawn_blocking(move || {
            f.write_all(&piece)?;
            if writeback {
                start_writeback(f.as_raw_fd());
            }
            Ok(f)
        }));
    }
    let f = match writing {
        Some(last) => last.await.map_err(std::io::Error::other)??,
        None => file.take().expect("the file is here when no write ran"),
    };
    tokio::task::spawn_blocking(move || f.sync_all()).await.map_err(std::io::Error::other)??;
    Ok(size)
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
}
