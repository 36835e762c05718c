//! S3 blob store (AWS S3 or an S3-compatible server) on the official AWS SDK.
//!
//! Uploads under one part size go in one `PutObject`; larger ones (and bodies of unknown length)
//! as a multipart upload with a fixed part size and a bounded number of parts in flight, so
//! memory stays at `part_size × (parts_in_flight + 1)` whatever the size. Every write carries the
//! configured server-side encryption.

mod errors;
pub mod iam;
pub(crate) mod multipart;
mod partial;
pub mod provision;
mod streamed;
mod upload;

use std::ops::RangeInclusive;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, ServerSideEncryption, Tier};
use futures::TryStreamExt;
use tokio_util::io::ReaderStream;

use super::{ArchiveState, BlobError, BlobPage, BlobRead, BlobStore, ByteStream, Lengths, PutResult, UnfinishedWrite};
use crate::config::{PresignMode, S3Settings, Sse};
use crate::domain::{BlobKey, BucketName, TenantId};

pub use errors::{classify, classify_streamed};

#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    settings: S3Settings,
}

impl S3BlobStore {
    /// A client for `settings`: region, endpoint (path-style addressing when set), credentials
    /// from the settings or else the standard AWS chain (environment, profile, ECS task role,
    /// web identity), the SDK's standard retries with backoff.
    pub async fn new(settings: S3Settings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(settings.max_attempts));
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret.expose(), None, None, "coffer-config"));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.path_style);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.endpoint_url(endpoint.as_str().trim_end_matches('/'));
        }
        if settings.checksum_when_required {
            builder = builder
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Self { client: Client::from_conf(builder.build()), settings }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    fn sse(&self) -> Option<(ServerSideEncryption, Option<String>)> {
        match &self.settings.sse {
            Sse::None => None,
            Sse::Aes256 => Some((ServerSideEncryption::Aes256, None)),
            Sse::Kms(key) => Some((ServerSideEncryption::AwsKms, key.clone())),
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn engine(&self) -> &'static str {
        "s3"
    }

    async fn put(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        content_type: &str,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<PutResult, BlobError> {
        upload::put(self, bucket.as_str(), &key.to_string(), content_type, body, length).await
    }

    async fn get(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let mut req = self.client.get_object().bucket(bucket.as_str()).key(key.to_string());
        if let Some(r) = &range {
            req = req.range(format!("bytes={}-{}", r.start(), r.end()));
        }
        let out = req.send().await.map_err(|e| classify(e, bucket))?;
        let size = match (out.content_range(), out.content_length()) {
            (Some(cr), _) => cr.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or_default(),
            (None, Some(len)) => len as u64,
            _ => 0,
        };
        let reader = out.body.into_async_read();
        let body: ByteStream = Box::pin(ReaderStream::with_capacity(reader, 256 * 1024).map_err(std::io::Error::other));
        Ok(BlobRead { size, body })
    }

    async fn delete(&self, bucket: &BucketName, key: &BlobKey) -> Result<(), BlobError> {
        match self.client.delete_object().bucket(bucket.as_str()).key(key.to_string()).send().await {
            Ok(_) => Ok(()),
            Err(e) => match classify(e, bucket) {
                BlobError::NotFound => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list(&self, bucket: &BucketName, after: Option<&str>, limit: usize) -> Result<BlobPage, BlobError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket.as_str())
            .set_start_after(after.map(str::to_owned))
            .max_keys(limit.min(1000) as i32)
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        let keys: Vec<String> = out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        let next = if out.is_truncated().unwrap_or(false) { keys.last().cloned() } else { None };
        Ok(BlobPage { keys, next })
    }

    async fn delete_tenant(&self, bucket: &BucketName, tenant: &TenantId) -> Result<u64, BlobError> {
        use futures::{StreamExt, TryStreamExt};
        let prefix = format!("tenant-{tenant}/");
        // Unfinished multipart uploads first (servers without the API have none to list).
        if let Ok(out) = self.client.list_multipart_uploads().bucket(bucket.as_str()).prefix(&prefix).send().await {
            for upload in out.uploads() {
                if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                    let abort = self.client.abort_multipart_upload().bucket(bucket.as_str()).key(key).upload_id(id);
                    abort.send().await.map_err(|e| classify(e, bucket))?;
                }
            }
        }
        let mut removed = 0u64;
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket.as_str())
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify(e, bucket))?;
            let keys: Vec<String> = out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
            removed += keys.len() as u64;
            futures::stream::iter(keys)
                .map(|key| async move {
                    match self.client.delete_object().bucket(bucket.as_str()).key(key).send().await {
                        Ok(_) => Ok(()),
                        Err(e) => match classify(e, bucket) {
                            BlobError::NotFound => Ok(()),
                            other => Err(other),
                        },
                    }
                })
                .buffer_unordered(16)
                .try_collect::<()>()
                .await?;
            token = out.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(removed);
            }
        }
    }

    async fn exists(&self, bucket: &BucketName, key: &BlobKey) -> Result<bool, BlobError> {
        match self.client.head_object().bucket(bucket.as_str()).key(key.to_string()).send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(e, bucket) {
                BlobError::NotFound => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn stray_age(&self, bucket: &BucketName, key: &str) -> Option<Duration> {
        // A plain write leaves no temporary objects: an interrupted multipart upload is
        // aborted, and the lifecycle rule of `coffer provision` removes any that an abort
        // missed. Resumable uploads leave staging objects, judged by when they were written.
        if !partial::is_stage(key) {
            return None;
        }
        let out = self.client.head_object().bucket(bucket.as_str()).key(key).send().await.ok()?;
        let written = out.last_modified()?.secs();
        Some(Duration::from_secs((chrono::Utc::now().timestamp() - written).max(0) as u64))
    }

    async fn remove_stray(&self, bucket: &BucketName, key: &str) -> Result<(), BlobError> {
        Err(BlobError::Unavailable(format!("{bucket}/{key} is not coffer's to remove")))
    }

    async fn unfinished_writes(
        &self,
        bucket: &BucketName,
        older_than: Duration,
    ) -> Result<Vec<UnfinishedWrite>, BlobError> {
        multipart::unfinished(&self.client, bucket, older_than).await
    }

    async fn abandon_write(&self, bucket: &BucketName, write: &UnfinishedWrite) -> Result<bool, BlobError> {
        multipart::abort(&self.client, bucket, write).await
    }

    async fn partial_begin(&self, bucket: &BucketName, key: &BlobKey, content_type: &str) -> Result<String, BlobError> {
        self.begin_partial(bucket, key, content_type).await
    }

    async fn partial_append(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
        body: ByteStream,
        lengths: Lengths,
    ) -> Result<(String, u64), BlobError> {
        self.append_partial(bucket, key, state, offset, body, lengths.body).await
    }

    async fn partial_finish(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
    ) -> Result<(), BlobError> {
        self.finish_partial(bucket, key, state, offset).await
    }

    async fn partial_release(&self, bucket: &BucketName, key: &BlobKey, old: &str, new: &str) {
        self.release_partial(bucket, key, old, new).await;
    }

    async fn partial_abort(&self, bucket: &BucketName, key: &BlobKey, state: &str) -> Result<(), BlobError> {
        self.abort_partial(bucket, key, state).await
    }

    async fn check(&self, bucket: &BucketName) -> Result<(), BlobError> {
        match self.client.head_bucket().bucket(bucket.as_str()).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(match classify(e, bucket) {
                BlobError::NotFound => BlobError::NoSuchBucket(bucket.to_string()),
                other => other,
            }),
        }
    }

    async fn ensure_bucket(&self, bucket: &BucketName) -> Result<bool, BlobError> {
        match self.check(bucket).await {
            Ok(()) => Ok(false),
            Err(BlobError::NoSuchBucket(_)) => {
                provision::create_bucket(&self.client, bucket.as_str(), &self.settings.region)
                    .await
                    .map_err(BlobError::Unavailable)?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    async fn presign_get(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        expires_in: Duration,
        content_disposition: &str,
        content_type: &str,
    ) -> Option<Result<String, BlobError>> {
        // Direct links only in direct mode, and no longer than the bound a suspension waits for.
        if self.settings.presign != PresignMode::Direct || expires_in > self.settings.direct_max_ttl {
            return None;
        }
        let config = match PresigningConfig::expires_in(expires_in) {
            Ok(c) => c,
            Err(e) => return Some(Err(BlobError::Unavailable(e.to_string()))),
        };
        let presigned = self
            .client
            .get_object()
            .bucket(bucket.as_str())
            .key(key.to_string())
            .response_content_disposition(content_disposition)
            .response_content_type(content_type)
            .presigned(config)
            .await;
        Some(presigned.map(|p| p.uri().to_owned()).map_err(|e| BlobError::Unavailable(e.to_string())))
    }

    fn presign_origin(&self) -> Option<String> {
        (self.settings.presign == PresignMode::Direct).then(|| {
            self.settings
                .endpoint
                .as_ref()
                .map_or_else(|| "https://*.amazonaws.com".to_owned(), |u| u.origin().ascii_serialization())
        })
    }

    async fn archive_state(&self, bucket: &BucketName, key: &BlobKey) -> Result<Option<ArchiveState>, BlobError> {
        let out = self
            .client
            .head_object()
            .bucket(bucket.as_str())
            .key(key.to_string())
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        let storage_class = out.storage_class().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "STANDARD".into());
        let archived = matches!(storage_class.as_str(), "GLACIER" | "DEEP_ARCHIVE") || out.archive_status().is_some();
        let restore = out.restore().map(str::to_owned);
        // `ongoing-request="false"` means a restored copy is readable until its expiry date.
        let readable = !archived || restore.as_deref().is_some_and(|r| r.contains("ongoing-request=\"false\""));
        Ok(Some(ArchiveState { storage_class, restore, readable }))
    }

    async fn restore(&self, bucket: &BucketName, key: &BlobKey, days: i32, tier: &str) -> Result<(), BlobError> {
        let tier = Tier::from(tier);
        let job =
            GlacierJobParameters::builder().tier(tier).build().map_err(|e| BlobError::Unavailable(e.to_string()))?;
        let request = RestoreRequest::builder().days(days).glacier_job_parameters(job).build();
        self.client
            .restore_object()
            .bucket(bucket.as_str())
            .key(key.to_string())
            .restore_request(request)
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(())
    }
}
