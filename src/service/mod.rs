//! The service layer: every operation of coffer, with its tenant check and its write ordering.
//! The HTTP layer and the CLI are thin clients of [`StorageService`].
//!
//! Invariants held here:
//! - every operation on a key first checks that the key's tenant is the caller's
//!   (`TenantMismatch`), before any catalog or blob-store access;
//! - bytes are durable before their catalog row is committed; bytes no row points to are
//!   queued for deletion in the same transaction that unlinks them.

mod admission;
mod archive;
mod body;
mod content_type;
mod error;
pub mod export;
mod hashing;
mod manage;
mod presign;
pub mod purge;
mod read;
pub mod reconcile;
pub mod resumable;
mod tenants;
mod upload;
mod upload_link;

use std::sync::Arc;

pub use admission::Admitted;
pub use body::{BodyError, from_bytes};
pub use content_type::{Serving, content_disposition, serving};
pub use error::ServiceError;
pub use presign::{PresignedUrl, encode_key};
pub use resumable::{Append, Appended, Checksum, ChecksumAlgorithm, NewUpload};
pub use tenants::{TENANT_CACHE_TTL, UsageReport};
pub use upload::UploadRequest;
pub use upload_link::{LinkTerms, UploadLink};

use crate::auth::UrlSigner;
use crate::blob::BlobStore;
use crate::catalog::{Catalog, Quota};
use crate::config::{BucketKind, Categories, CategoryPolicy, Config, TenantsMode};
use crate::domain::{BucketName, Category, ObjectKey, TenantId};

/// The tenant-scoped storage service (the seed's `StorageService`).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use coffer::domain::{Category, Filename, TenantId};
/// use coffer::service::from_bytes;
///
/// let storage = coffer::get_storage_service().await?;
/// let tenant = TenantId::parse("abc123")?;
/// let key = storage
///     .upload_file(&tenant, &Category::parse("applications")?, &Filename::parse("proposal.pdf")?,
///                  from_bytes(&b"%PDF-1.7 ..."[..]), Some("application/pdf"))
///     .await?;
/// let url = storage.get_presigned_url(&tenant, &key, Some(3600)).await?;
/// let (_record, _content) = storage.download_file(&tenant, &key).await?;
/// let files = storage.list_files(&tenant, Some(&Category::parse("applications")?)).await?;
/// storage.delete_file(&tenant, &key).await?;
/// # let _ = (url, files); Ok(()) }
/// ```
#[derive(Clone)]
pub struct StorageService {
    inner: Arc<Inner>,
}

struct Inner {
    blobs: Arc<dyn BlobStore>,
    catalog: Arc<dyn Catalog>,
    categories: Categories,
    documents_bucket: BucketName,
    media_bucket: BucketName,
    signer: UrlSigner,
    public_url: url::Url,
    default_expiry: std::time::Duration,
    tenants_mode: TenantsMode,
    default_quota: Quota,
    quota_overrides: std::collections::BTreeMap<TenantId, Quota>,
    tenant_cache: tenants::TenantCache,
    /// How often a running upload marks its intent as alive (a quarter of reconcile's grace,
    /// between 100 ms and 20 s); each mark vouches for three of these.
    intent_heartbeat: std::time::Duration,
    /// How long a resumable upload lives after its last write.
    upload_expiry: std::time::Duration,
    /// How long a write holds a resumable upload without renewing its lock.
    upload_lock_lease: std::time::Duration,
    /// The appends running or waiting on this instance, by upload.
    appends: resumable::Appends,
}

/// Why the service could not start; `Display` is one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("signing secret: {0}")]
    Secret(String),
    #[error("data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("catalog ({url}): {source}")]
    Catalog { url: String, source: crate::catalog::CatalogError },
    #[error("blob store: {0}")]
    Blobs(#[from] crate::blob::BlobError),
    #[error("bucket {0} does not exist: run `coffer provision` to create and configure both buckets")]
    MissingBucket(String),
    #[error("encryption at rest: {0}")]
    Keys(String),
}

/// The longest `/readyz` waits for the catalog and the store together.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

impl StorageService {
    /// Assembles a service from its parts; [`crate::startup::service`] opens them from a
    /// configuration.
    pub fn new(blobs: Arc<dyn BlobStore>, catalog: Arc<dyn Catalog>, config: &Config, signer: UrlSigner) -> Self {
        let appends = resumable::appends(catalog.clone());
        Self {
            inner: Arc::new(Inner {
                blobs,
                catalog,
                categories: config.categories.clone(),
                documents_bucket: config.documents_bucket.clone(),
                media_bucket: config.media_bucket.clone(),
                signer,
                public_url: config.public_url.clone(),
                default_expiry: config.presign_expiry,
                tenants_mode: config.tenants,
                default_quota: config.default_quota,
                quota_overrides: config.quota_overrides.clone(),
                tenant_cache: tenants::TenantCache::default(),
                intent_heartbeat: (config.reconcile_grace / 4)
                    .clamp(std::time::Duration::from_millis(100), std::time::Duration::from_secs(20)),
                upload_expiry: config.upload_expiry,
                upload_lock_lease: config.upload_lock_lease,
                appends,
            }),
        }
    }

    /// The configured policy of `category`, or `UnknownCategory`.
    pub fn policy(&self, category: &Category) -> Result<&CategoryPolicy, ServiceError> {
        self.inner.categories.get(category).ok_or_else(|| ServiceError::UnknownCategory(category.to_string()))
    }

    pub fn categories(&self) -> &Categories {
        &self.inner.categories
    }

    /// The catalog and blob store this service runs on (for maintenance commands).
    pub fn parts(&self) -> (Arc<dyn Catalog>, Arc<dyn BlobStore>) {
        (self.inner.catalog.clone(), self.inner.blobs.clone())
    }

    /// Both buckets.
    pub fn buckets(&self) -> [&BucketName; 2] {
        [&self.inner.documents_bucket, &self.inner.media_bucket]
    }

    /// A reconciler over this service's catalog, blob store and buckets.
    pub fn reconciler(&self, grace: std::time::Duration, dry_run: bool) -> reconcile::Reconciler {
        reconcile::Reconciler {
            catalog: self.inner.catalog.clone(),
            blobs: self.inner.blobs.clone(),
            buckets: vec![self.inner.documents_bucket.clone(), self.inner.media_bucket.clone()],
            grace,
            dry_run,
        }
    }

    /// The origin presigned URLs point at when it is not coffer itself (direct S3 links).
    pub fn presign_origin(&self) -> Option<String> {
        self.inner.blobs.presign_origin()
    }

    /// The quota that applies to `tenant`.
    pub fn quota(&self, tenant: &TenantId) -> Quota {
        self.inner.quota_overrides.get(tenant).copied().unwrap_or(self.inner.default_quota)
    }

    fn bucket(&self, kind: BucketKind) -> &BucketName {
        match kind {
            BucketKind::Documents => &self.inner.documents_bucket,
            BucketKind::Media => &self.inner.media_bucket,
        }
    }

    /// `TenantMismatch` unless `key` lies under `tenant`'s prefix. Called first, before any I/O.
    fn authorize(tenant: &TenantId, key: &ObjectKey) -> Result<(), ServiceError> {
        if key.tenant() == tenant { Ok(()) } else { Err(ServiceError::TenantMismatch) }
    }

    /// Whether the catalog and every bucket answer (for `/readyz`).
    pub async fn ready(&self) -> Result<(), ServiceError> {
        let checks = async {
            self.inner.catalog.ping().await?;
            for bucket in [&self.inner.documents_bucket, &self.inner.media_bucket] {
                self.inner.blobs.check(bucket).await?;
            }
            Ok(())
        };
        // A load balancer's health check wants its answer quickly: a dependency that does not
        // answer within READY_TIMEOUT counts as down.
        match tokio::time::timeout(READY_TIMEOUT, checks).await {
            Ok(result) => result,
            Err(_) => Err(ServiceError::Catalog(crate::catalog::CatalogError::Timeout(READY_TIMEOUT))),
        }
    }
}
