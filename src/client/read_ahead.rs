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

/// `len` bytes of `file` from `offset` (fewer if the file ends first: the server then sees a
/// body shorter than announced and refuses it). The thread stops when the body is dropped.
pub fn file_body(mut file: std::fs::File, offset: u64, len: u64) -> impl Stream<Item = std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(offset)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; READ.min(usize::try_from(left).unwrap_or(READ))];
            let read = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            buf.truncate(read);
            left -= read as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
