//! A file's bytes as an upload body, read ahead on a blocking thread of their own. Reading
//! through `tokio::fs::File` costs a trip to the blocking pool per read, one after another,
//! and the request waited for each; here the thread keeps up to [`AHEAD`] reads ready.

use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

/// The size of each read (and each piece of the body).
const READ: usize = 256 * 1024;
/// Reads the thread may be ahead of the request.
const AHEAD: usize = 4;

/// `len` bytes of `file` from `offset`; an error (`UnexpectedEof`) ends the body if the file
/// ends first (it shrank while being uploaded), so the request fails at once and stores
/// nothing. `len` `None`: whatever the file gives until it ends (a pipe, a device), read from
/// where it is. The thread stops when the body is dropped.
pub fn file_body(mut file: std::fs::File, offset: u64, len: Option<u64>) -> impl Stream<Item = std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || {
        if offset > 0
            && let Err(e) = file.seek(SeekFrom::Start(offset))
        {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        loop {
            let want = match left {
                Some(0) => return,
                Some(left) => READ.min(usize::try_from(left).unwrap_or(READ)),
                None => READ,
            };
            let mut buf = vec![0u8; want];
            let read = match file.read(&mut buf) {
                Ok(0) => {
                    if let Some(left) = left {
                        let short = format!("the file ended {left} bytes before its announced length");
                        let _ = tx.blocking_send(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, short)));
                    }
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            buf.truncate(read);
            if let Some(left) = left.as_mut() {
                *left -= read as u64;
            }
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// The file at `path` no longer has the length and modification time it had (`stat`) when its
/// upload began.
pub fn changed(path: &std::path::Path, stat: &std::fs::Metadata) -> bool {
    std::fs::metadata(path).map_or(true, |now| now.len() != stat.len() || now.modified().ok() != stat.modified().ok())
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    /// A file shorter than the length asked for: its bytes, then an error, not a quiet end.
    #[tokio::test]
    async fn a_file_that_ends_early_ends_the_body_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![5u8; 300_000]).unwrap();
        let items: Vec<_> = file_body(std::fs::File::open(&path).unwrap(), 1000, Some(400_000)).collect().await;
        let bytes: usize = items.iter().filter_map(|i| i.as_ref().ok()).map(Bytes::len).sum();
        assert_eq!(bytes, 299_000);
        let last = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.kind(), std::io::ErrorKind::UnexpectedEof);
        // Exactly the bytes asked for, in reads of at most READ.
        let items: Vec<_> = file_body(std::fs::File::open(&path).unwrap(), 10, Some(299_990)).collect().await;
        assert!(items.iter().all(|i| i.as_ref().is_ok_and(|b| b.len() <= READ)));
        assert_eq!(items.iter().map(|i| i.as_ref().unwrap().len()).sum::<usize>(), 299_990);
    }

    /// Without a length: everything a pipe gives until its writer closes it.
    #[tokio::test]
    async fn a_pipe_is_read_to_its_end() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let writing = std::thread::spawn(move || {
            use std::io::Write;
            for i in 0..40u8 {
                writer.write_all(&[i; 100_000]).unwrap();
            }
        });
        let items: Vec<_> = file_body(std::fs::File::from(std::os::fd::OwnedFd::from(reader)), 0, None).collect().await;
        writing.join().unwrap();
        let bytes: Vec<u8> = items.into_iter().flat_map(|i| i.unwrap().to_vec()).collect();
        assert_eq!(bytes.len(), 4_000_000);
        assert!(bytes.chunks(100_000).enumerate().all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    }
}
