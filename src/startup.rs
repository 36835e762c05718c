//! Opening what a [`Config`] describes, in one place: the blob store, the catalog, the signing
//! secrets, the token verifier and the URL signer. `coffer serve`, `provision`, `reconcile`,
//! the admin commands and the library's `get_storage_service` all start here, so the engine
//! choices (`COFFER_STORAGE`, the catalog engine of `DATABASE_URL`) are made nowhere else.

use std::sync::Arc;

use crate::auth::{TokenVerifier, UrlSigner};
use crate::blob::{BlobError, BlobStore, FsBlobStore, S3BlobStore};
use crate::catalog::Catalog;
use crate::config::{CatalogEngine, Config, S3Settings, Secret, StorageEngine};
use crate::http::AppState;
use crate::service::{StartError, StorageService};

/// The filesystem store of `config`'s data dir (nothing is created yet).
pub fn fs_store(config: &Config) -> FsBlobStore {
    FsBlobStore::new(config.data_dir.join("objects"))
}

/// The S3 store `settings` describe; it owns its presign mode and direct-link bound.
pub async fn s3_store(settings: &S3Settings) -> S3BlobStore {
    S3BlobStore::new(settings.clone()).await
}

/// The blob store `config` names, its buckets there: created on the filesystem, checked on S3
/// (`MissingBucket` names `coffer provision`).
pub async fn blob_store(config: &Config) -> Result<Arc<dyn BlobStore>, StartError> {
    let buckets = [&config.documents_bucket, &config.media_bucket];
    match &config.storage {
        StorageEngine::Filesystem => {
            let store = fs_store(config);
            for bucket in buckets {
                store.ensure_bucket(bucket).await?;
            }
            Ok(Arc::new(store))
        }
        StorageEngine::S3(settings) => {
            let store = s3_store(settings).await;
            for bucket in buckets {
                match store.check(bucket).await {
                    Ok(()) => {}
                    Err(BlobError::NoSuchBucket(b)) => return Err(StartError::MissingBucket(b)),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(Arc::new(store))
        }
    }
}

/// The catalog `config` names, migrated (or, for a login that may not migrate, checked).
pub async fn catalog(config: &Config) -> Result<Arc<dyn Catalog>, StartError> {
    let url = config.database_url.expose();
    let opened: Result<Arc<dyn Catalog>, _> = match config.catalog_engine {
        CatalogEngine::Sqlite => crate::catalog::SqliteCatalog::connect(url).await.map(|c| Arc::new(c) as _),
        CatalogEngine::Postgres => {
            let maintenance = config.maintenance_database_url.as_ref().map(Secret::expose);
            crate::catalog::PostgresCatalog::connect(url, maintenance).await.map(|c| Arc::new(c) as _)
        }
    };
    opened.map_err(|source| StartError::Catalog { url: crate::util::redact_url(url), source })
}

/// The signing secrets, each read (or generated) once.
pub struct Secrets {
    /// HS256 token secret (`COFFER_JWT_SECRET` or the data dir's).
    pub tokens: Secret,
    /// Root of presigned-URL keys (`COFFER_PRESIGN_SECRET`, else `tokens`).
    pub links: Secret,
}

pub fn secrets(config: &Config) -> Result<Secrets, StartError> {
    crate::util::create_private_dir_all(&config.data_dir)
        .map_err(|source| StartError::DataDir { path: config.data_dir.display().to_string(), source })?;
    let tokens = config.signing_secret().map_err(StartError::Secret)?;
    let links = config.presign_secret.clone().unwrap_or_else(|| tokens.clone());
    Ok(Secrets { tokens, links })
}

/// The token verifier: the configured PEM public key, else HS256 with the token secret.
pub fn token_verifier(config: &Config, secrets: &Secrets) -> Result<TokenVerifier, StartError> {
    match &config.jwt_public_key {
        Some(pem) => TokenVerifier::public_key(pem, &config.token_rules())
            .map_err(|m| StartError::Config(crate::config::ConfigError::new("COFFER_JWT_PUBLIC_KEY", m))),
        None => Ok(TokenVerifier::hs256(&secrets.tokens, &config.token_rules())),
    }
}

/// The service `config` describes, its stores measured (metrics and spans), its deletion queue
/// drained once.
pub async fn service(config: &Config) -> Result<StorageService, StartError> {
    let secrets = secrets(config)?;
    service_with(config, &secrets).await
}

async fn service_with(config: &Config, secrets: &Secrets) -> Result<StorageService, StartError> {
    let signer = UrlSigner::new(&secrets.links, &config.presign_previous_secrets);
    let blobs: Arc<dyn BlobStore> = Arc::new(crate::telemetry::stores::MeteredBlobStore(blob_store(config).await?));
    let catalog: Arc<dyn Catalog> = Arc::new(crate::telemetry::stores::MeteredCatalog(catalog(config).await?));
    let service = StorageService::new(blobs, catalog, config, signer);
    service.purge_queued().await;
    Ok(service)
}

/// Service and router state for `coffer serve`.
pub async fn app_state(config: &Config) -> Result<AppState, StartError> {
    let secrets = secrets(config)?;
    let verifier = token_verifier(config, &secrets)?;
    let service = service_with(config, &secrets).await?;
    crate::telemetry::handle();
    Ok(AppState::new(service, verifier, config))
}

/// `coffer provision`: the buckets of `config`'s storage engine, created or checked and
/// configured.
pub async fn provision(config: &Config, dry_run: bool, versioning: bool) -> crate::provision::Report {
    match &config.storage {
        StorageEngine::Filesystem => crate::provision::provision_fs(&fs_store(config), config, dry_run).await,
        StorageEngine::S3(settings) => {
            crate::provision::provision_s3(&s3_store(settings).await, config, dry_run, versioning).await
        }
    }
}
