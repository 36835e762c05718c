//! Upload links: a coffer-signed URL that accepts one upload of one key, without a token, up
//! to a stated size and of a stated type, until it expires (`PUT` with the body, as `curl -T`
//! and a browser's `fetch` send it). Every rule of a token upload holds — category, type by
//! magic bytes, size, quota, the intent → bytes → commit order, `already-exists` unless the
//! link allows an overwrite — because the upload runs the same path.
//!
//! Why coffer signs the link rather than S3: a direct S3 presigned PUT lands bytes in the
//! bucket before coffer sees them, so type sniffing, the size limit, the quota, the sha256 and
//! "one use" could only be checked after the fact by a completion call the client might never
//! make (leaving bytes no row points to), and a suspended tenant's link would keep working.
//! Through coffer, nothing is stored that would be refused, and the link dies at suspension.
//! The cost is that the bytes pass through coffer, as every other upload does.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ServiceError, StorageService, UploadRequest, encode_key};
use crate::auth::Caller;
use crate::blob::ByteStream;
use crate::catalog::FileRecord;
use crate::domain::{BlobVersion, Expiry, ObjectKey};

const MAX_SIZE: &str = "max_size";
const TYPE: &str = "type";
const OVERWRITE: &str = "overwrite";

/// An upload link, as `POST /v1/presign` with `"method": "PUT"` returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UploadLink {
    pub url: String,
    pub method: &'static str,
    pub expires_at: DateTime<Utc>,
    /// The largest body the link accepts.
    pub max_size: u64,
    /// The type the body must be, when the link names one.
    pub content_type: Option<String>,
    pub overwrite: bool,
}

/// What an upload link allows, as signed into it.
pub struct LinkTerms {
    pub max_size: Option<u64>,
    /// When the link expires (Unix seconds); read back from a verified link.
    pub expires: i64,
    pub content_type: Option<String>,
    pub overwrite: bool,
}

impl StorageService {
    /// An upload link for `key` (the caller's tenant, a configured category): at most
    /// `max_size` bytes (default and ceiling: the category's limit), of `content_type` when
    /// given (it must be one the category takes).
    pub async fn presign_upload(
        &self,
        who: &super::Admitted,
        key: &ObjectKey,
        expires_in: Option<Expiry>,
        terms: LinkTerms,
    ) -> Result<UploadLink, ServiceError> {
        Self::authorize(who.tenant(), key)?;
        who.require_write()?;
        let policy = self.policy(key.category())?;
        let max_size = terms.max_size.unwrap_or(policy.max_size);
        if max_size > policy.max_size {
            return Err(ServiceError::TooLarge { limit: policy.max_size });
        }
        if let Some(t) = &terms.content_type
            && !policy.allows(t)
        {
            return Err(ServiceError::UnsupportedMediaType {
                content_type: t.clone(),
                category: key.category().to_string(),
            });
        }
        let ttl = expires_in.map_or(self.inner.default_expiry, |e| e.duration());
        let expires_at = Utc::now() + ttl;
        let size = max_size.to_string();
        let mut options = vec![(MAX_SIZE, size.as_str())];
        if let Some(t) = &terms.content_type {
            options.push((TYPE, t.as_str()));
        }
        if terms.overwrite {
            options.push((OVERWRITE, "1"));
        }
        // The version the upload will get names the link (and makes it single-use).
        let version = BlobVersion::generate();
        let query = self.inner.signer.sign_method("PUT", key, &version, expires_at.timestamp(), &options);
        let mut url = self.inner.public_url.clone();
        url.set_path(&format!("/v1/files/{}", encode_key(key)));
        url.set_query(Some(&query));
        Ok(UploadLink {
            url: url.to_string(),
            method: "PUT",
            expires_at,
            max_size,
            content_type: terms.content_type,
            overwrite: terms.overwrite,
        })
    }

    /// An upload through a link: verified (`BadSignature`, `Expired`), the tenant admitted as
    /// a writer, the link claimed (`LinkUsed` the second time), then a plain upload within the
    /// link's terms. A failed upload frees the link again.
    pub async fn upload_by_link(
        &self,
        key: &ObjectKey,
        raw_query: &str,
        declared_type: Option<String>,
        size_hint: Option<u64>,
        body: ByteStream,
    ) -> Result<FileRecord, ServiceError> {
        let version = self.verify_presigned("PUT", key, raw_query)?;
        let terms = link_terms(raw_query);
        let who = self.admit(&Caller { tenant: key.tenant().clone(), read_only: false }).await?;
        let max_size = terms.max_size.unwrap_or(0);
        let content_type = match (&terms.content_type, declared_type) {
            (Some(bound), Some(sent)) if !same_type(bound, &sent) => {
                return Err(ServiceError::UnsupportedMediaType {
                    content_type: sent,
                    category: format!("{} (this link takes {bound})", key.category()),
                });
            }
            (Some(bound), _) => Some(bound.clone()),
            (None, sent) => sent,
        };
        let link = version.to_string();
        let expires = DateTime::from_timestamp(terms.expires, 0).unwrap_or_else(Utc::now);
        if !self.inner.catalog.claim_upload_link(key.tenant(), &link, expires).await? {
            return Err(ServiceError::LinkUsed);
        }
        let request = UploadRequest {
            category: key.category().clone(),
            filename: key.filename().clone(),
            original_filename: None,
            content_type,
            overwrite: terms.overwrite,
            size_hint,
            max_size: Some(max_size),
            body,
        };
        let result = self.upload(&who, request).await;
        if result.is_err()
            && let Err(e) = self.inner.catalog.release_upload_link(key.tenant(), &link).await
        {
            tracing::warn!(error = %e, "could not free an upload link whose upload failed");
        }
        result
    }
}

/// The terms signed into a verified link's query.
fn link_terms(raw_query: &str) -> LinkTerms {
    let mut terms = LinkTerms { max_size: None, expires: 0, content_type: None, overwrite: false };
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match k.as_ref() {
            "expires" => terms.expires = v.parse().unwrap_or(0),
            MAX_SIZE => terms.max_size = v.parse().ok(),
            TYPE => terms.content_type = Some(v.into_owned()),
            OVERWRITE => terms.overwrite = v == "1",
            _ => {}
        }
    }
    terms
}

/// Whether a sent `Content-Type` names the link's type (parameters such as a charset aside).
fn same_type(bound: &str, sent: &str) -> bool {
    let essence = |t: &str| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence(bound) == essence(sent)
}
