//! Response headers of a download, and the conditional / range decisions.

use std::ops::RangeInclusive;

pub use coffer_core::range::{Unsatisfiable, byte_range};

use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Utc};

use crate::catalog::FileRecord;
use crate::service::{content_disposition, serving};

/// Sets the headers every download response carries (also 304 and 416).
/// Only types on the inline allow-list ([`crate::domain::MediaType::serves_inline`]) are ever
/// served inline; every response but an inline PDF is sandboxed.
pub fn describe(h: &mut HeaderMap, record: &FileRecord, attachment: bool) {
    let serve = serving(&record.content_type, attachment);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(serve.content_type.as_str()).expect("validated media type"));
    h.insert(header::ETAG, HeaderValue::from_str(&record.etag()).expect("hex etag"));
    h.insert(header::LAST_MODIFIED, http_date(record.created_at));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let disposition = content_disposition(&record.original_filename, !serve.inline);
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ASCII disposition"));
    if serve.sandbox {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    }
}

/// A header's value when it is sent at most once (`None`: absent); `Err(Repeated)` when it is
/// sent more than once, for a header where which value the client meant is not ours to guess.
pub fn at_most_once<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h HeaderValue>, Repeated> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() { Err(Repeated) } else { Ok(first) }
}

/// A header sent more than once where one value is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

/// Formats a time as an HTTP date.
pub fn http_date(t: DateTime<Utc>) -> HeaderValue {
    let system: std::time::SystemTime = t.into();
    HeaderValue::from_str(&httpdate::fmt_http_date(system)).expect("http dates are ASCII")
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// Whether the request's validators say the client's copy is current (RFC 9110 §13.2.2:
/// `If-None-Match` wins over `If-Modified-Since`).
pub fn not_modified(req: &HeaderMap, record: &FileRecord) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return etag_matches(inm, &record.etag());
    }
    let Some(since) = req
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return false;
    };
    let modified = record.created_at.timestamp();
    let since = since.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    modified <= since
}

/// The byte range to serve: `Ok(None)` for the whole file (no `Range`, a malformed one, a
/// multi-range, or a stale `If-Range`), `Ok(Some)` for one satisfiable range, `Err` when the
/// range cannot be satisfied (416).
pub fn range(req: &HeaderMap, record: &FileRecord) -> Result<Option<RangeInclusive<u64>>, Unsatisfiable> {
    let Some(value) = req.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(if_range) = req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        let current = match httpdate::parse_http_date(if_range) {
            Ok(t) => {
                t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).ok()
                    == Some(record.created_at.timestamp())
            }
            Err(_) => if_range == record.etag(),
        };
        if !current {
            return Ok(None);
        }
    }
    byte_range(value, record.size)
}
