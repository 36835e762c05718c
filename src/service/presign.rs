use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Admitted, ServiceError, StorageService, content_disposition, serving};
use crate::auth::PresignError;
use crate::catalog::FileRecord;
use crate::domain::{BlobVersion, Expiry, ObjectKey, TenantId};

/// A time-limited link to one file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PresignedUrl {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl StorageService {
    /// The seed's `get_presigned_url`: a URL for `GET key` that needs no token until it
    /// expires, `expires_in` seconds from now (default `S3_PRESIGNED_URL_EXPIRY`, at most 7
    /// days). With the S3 store in direct mode and a lifetime within
    /// `COFFER_PRESIGN_DIRECT_MAX_TTL`, a SigV4 URL to S3 itself carrying the original filename
    /// and the served type as response headers (it dies with the stored version it names, but
    /// not at suspension); else a coffer-signed URL, which stops serving at suspension,
    /// replacement or deletion. `download` makes the link serve an attachment.
    /// `TenantMismatch` / `NotFound` as for reads.
    #[tracing::instrument(skip(self, who, key), fields(tenant = %who.tenant(), key = %key))]
    pub async fn presign(
        &self,
        who: &Admitted,
        key: &ObjectKey,
        expires_in: Option<Expiry>,
        download: bool,
    ) -> Result<PresignedUrl, ServiceError> {
        Self::authorize(who.tenant(), key)?;
        let ttl = expires_in.map_or(self.inner.default_expiry, |e| e.duration());
        let record = self.stat(who, key).await?;
        if self.archive_state(&record).await?.is_some_and(|s| !s.readable) {
            return Err(ServiceError::Archived);
        }
        let expires_at = Utc::now() + ttl;
        // The store decides whether it gives a direct link for this lifetime (S3 in direct mode,
        // within its bound: a direct link cannot be revoked at suspension).
        let serve = serving(&record.content_type, download);
        let disposition = content_disposition(&record.original_filename, !serve.inline);
        let direct = self
            .inner
            .blobs
            .presign_get(&record.bucket, &record.blob, ttl, &disposition, serve.content_type.as_str())
            .await;
        if let Some(url) = direct {
            return Ok(PresignedUrl { url: url?, expires_at });
        }
        let options: &[(&str, &str)] = if download { &[("download", "1")] } else { &[] };
        let query = self.inner.signer.sign(key, &record.blob.version(), expires_at.timestamp(), options);
        let mut url = self.inner.public_url.clone();
        url.set_path(&format!("/v1/files/{}", encode_key(key)));
        url.set_query(Some(&query));
        Ok(PresignedUrl { url: url.to_string(), expires_at })
    }

    /// Seed-shaped alias of [`Self::presign`] without options.
    pub async fn get_presigned_url(
        &self,
        tenant: &TenantId,
        key: &ObjectKey,
        expiration: Option<i64>,
    ) -> Result<PresignedUrl, ServiceError> {
        let expiry = expiration.map(Expiry::parse).transpose()?;
        self.presign(&self.admit_tenant(tenant).await?, key, expiry, false).await
    }

    /// Checks a presigned request (`method`, the request's raw query) for `key`; returns the
    /// stored version the link was issued for. Front ends call [`Self::admit_link`].
    pub(super) fn verify_presigned(
        &self,
        method: &str,
        key: &ObjectKey,
        raw_query: &str,
    ) -> Result<BlobVersion, PresignError> {
        self.inner.signer.verify(method, key, raw_query, Utc::now().timestamp())
    }

    /// The file a verified link may serve: `LinkSuperseded` once the version it was issued for
    /// has been replaced (a deleted file is `NotFound` already).
    pub fn linked_version(record: &FileRecord, bound: &BlobVersion) -> Result<(), ServiceError> {
        if record.blob.version() == *bound { Ok(()) } else { Err(ServiceError::LinkSuperseded) }
    }
}

/// Percent-encodes each segment of a key for a URL path, keeping the `/` separators.
pub fn encode_key(key: &ObjectKey) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    key.to_string()
        .split('/')
        .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}
