//! Lingering on refused uploads: when an upload is answered before its body was read to the
//! end (a bad token, an unknown category, too large, over quota), the rest of the body is read
//! and discarded for a while after the answer is sent, instead of the connection closing with
//! unread data. Closing at once makes the kernel reset the connection, and a client still
//! sending (curl, the CLI, a browser) may lose the answer: it reported "cannot reach the
//! server" instead of the refusal in about one upload of five. The same idea as nginx's
//! `lingering_close`, bounded in time.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::{Stream, StreamExt};

/// Longest time spent discarding a refused body.
const LINGER_TIME: Duration = Duration::from_secs(10);
/// Longest pause of the client while discarding.
const LINGER_IDLE: Duration = Duration::from_secs(2);

struct Slot {
    body: Option<BodyDataStream>,
    ended: bool,
}

/// The body as the handler reads it, while the middleware keeps a hold on what is left.
struct Borrowed(Arc<Mutex<Slot>>);

impl Stream for Borrowed {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut slot = self.0.lock().expect("body slot");
        let Some(body) = slot.body.as_mut() else { return Poll::Ready(None) };
        let next = body.poll_next_unpin(cx);
        if matches!(next, Poll::Ready(None)) {
            slot.ended = true;
        }
        next
    }
}

/// Middleware for upload routes: see the module doc.
pub async fn linger(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let slot = Arc::new(Mutex::new(Slot { body: Some(body.into_data_stream()), ended: false }));
    let response = next.run(Request::from_parts(parts, Body::from_stream(Borrowed(slot.clone())))).await;
    let rest = {
        let mut slot = slot.lock().expect("body slot");
        if slot.ended { None } else { slot.body.take() }
    };
    if let Some(mut rest) = rest {
        tokio::spawn(async move {
            let discard = async { while let Ok(Some(Ok(_))) = tokio::time::timeout(LINGER_IDLE, rest.next()).await {} };
            let _ = tokio::time::timeout(LINGER_TIME, discard).await;
        });
    }
    response
}
