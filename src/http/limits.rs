//! Request limits enforced in the HTTP layer: URL length (414), whole-request time on
//! non-streaming routes (503 `request-timeout`), concurrent uploads per instance and per tenant
//! (429 with Retry-After). Upload bodies are bounded in `body_guard`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState, ErrorCode};
use crate::domain::TenantId;

/// Slots for uploads in progress.
pub struct UploadSlots {
    instance: Arc<Semaphore>,
    per_tenant: Mutex<HashMap<TenantId, usize>>,
    max_per_tenant: usize,
}

/// Holds an upload slot until dropped.
pub struct UploadSlot {
    _permit: OwnedSemaphorePermit,
    slots: Arc<UploadSlots>,
    tenant: TenantId,
}

impl UploadSlots {
    pub fn new(max: usize, max_per_tenant: usize) -> Arc<Self> {
        Arc::new(Self { instance: Arc::new(Semaphore::new(max)), per_tenant: Mutex::default(), max_per_tenant })
    }

    /// A slot for one of `tenant`'s uploads, or 429 `too-many-requests`.
    pub fn acquire(self: &Arc<Self>, tenant: &TenantId) -> Result<UploadSlot, ApiError> {
        let busy = || too_many("too many uploads in progress; retry shortly");
        let permit = self.instance.clone().try_acquire_owned().map_err(|_| busy())?;
        let mut map = self.per_tenant.lock().expect("upload slots");
        let n = map.entry(tenant.clone()).or_insert(0);
        if *n >= self.max_per_tenant {
            return Err(too_many("too many uploads in progress for this tenant; retry shortly"));
        }
        *n += 1;
        metrics::gauge!("coffer_uploads_in_flight").increment(1.0);
        Ok(UploadSlot { _permit: permit, slots: self.clone(), tenant: tenant.clone() })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut map = self.slots.per_tenant.lock().expect("upload slots");
        if let Some(n) = map.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.tenant);
            }
        }
        metrics::gauge!("coffer_uploads_in_flight").decrement(1.0);
    }
}

fn too_many(message: &str) -> ApiError {
    ApiError::new(ErrorCode::TooManyRequests, message)
}

/// 429 answers carry `Retry-After: 1`.
pub fn retry_after(mut res: Response) -> Response {
    if res.status() == StatusCode::TOO_MANY_REQUESTS {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

/// Refuses request targets longer than the configured maximum (414) and header fields that add
/// up to more than theirs (431; HTTP/1's read buffer is larger than that limit so that bodies
/// arrive in large reads: see `server::READ_BUFFER`).
pub async fn request_head(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > state.limits.max_url_bytes {
        let message = format!("the URL is longer than {} bytes", state.limits.max_url_bytes);
        return ApiError::new(ErrorCode::UrlTooLong, message).into_response();
    }
    if header_bytes(req.headers()) > state.limits.max_header_bytes {
        let message = format!("the header fields are larger than {} bytes", state.limits.max_header_bytes);
        return ApiError::new(ErrorCode::HeadersTooLarge, message).into_response();
    }
    retry_after(next.run(req).await)
}

/// The header fields' size as sent on HTTP/1: `name: value` and a line break each.
fn header_bytes(headers: &axum::http::HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum()
}

/// Bounds the whole request on routes whose answers are small.
pub async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.limits.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(ErrorCode::RequestTimeout, "the request took too long").into_response(),
    }
}
