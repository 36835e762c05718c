//! A body of a known length streamed into one S3 request (a `PutObject` of a whole object, no
//! buffering): the length is announced up front, as S3 requires, and held to. The stream's
//! own error (the client went away, a size limit) is kept aside, so that the request failing
//! because of it reports the body, not the storage, as the cause.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::blob::ByteStream;

/// Where the body's own failure is kept for the caller.
pub type BodyFailure = Arc<Mutex<Option<std::io::Error>>>;

pub struct ExactBody {
    /// In a mutex only to be `Sync`, as the SDK's body must be; never contended (`get_mut`).
    stream: Mutex<ByteStream>,
    remaining: u64,
    failure: BodyFailure,
}

impl ExactBody {
    pub fn new(stream: ByteStream, length: u64) -> (Self, BodyFailure) {
        let failure = BodyFailure::default();
        (Self { stream: Mutex::new(stream), remaining: length, failure: failure.clone() }, failure)
    }

    fn fail(&mut self, e: std::io::Error) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let message = e.to_string();
        *self.failure.lock().expect("body failure lock") = Some(e);
        Poll::Ready(Some(Err(std::io::Error::other(message))))
    }
}

impl http_body::Body for ExactBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let stream = self.stream.get_mut().expect("body stream lock");
        match stream.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                if n > self.remaining {
                    let announced = self.remaining;
                    return self.fail(std::io::Error::other(format!(
                        "the body is longer than announced ({n} more bytes where {announced} remained)"
                    )));
                }
                self.remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => self.fail(e),
            Poll::Ready(None) if self.remaining > 0 => {
                let missing = self.remaining;
                self.fail(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the body ended {missing} bytes short of its announced length"),
                ))
            }
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
