//! Opening what a [`Config`] describes, in one place: the blob store, the catalog, the signing
//! secrets, the token verifier and the URL signer. `coffer serve`, `provision`, `reconcile`,
//! the admin commands and the library's `get_storage_service` all start here, so the engine
//! choices (`COFFER_STORAGE`, the catalog engine of `DATABASE_URL`) are made nowhere else.

use std::sync::Arc;

use crate::auth::{TokenVerifier, UrlSigner};
use crate::blob::{BlobError, BlobStore, FsBlobStore, S3BlobStore};
use crate::catalog::Catalog;
use crate::config::{CatalogEngine, Config, EncryptionMode, S3Settings, Secret, StorageEngine};
use crate::crypt::{KeyWrap, Keyring, MASTER_KEY_FILE, MasterKey};
use crate::http::AppState;
use crate::service::{StartError, StorageService};

/// The master key `config` names (COFFER_MASTER_KEY), else the data dir's, if any.
pub fn master_key(config: &Config) -> Result<Option<MasterKey>, StartError> {
    match &config.master_key {
        Some(k) => {
            MasterKey::parse(k.expose()).map(Some).map_err(|m| StartError::Keys(format!("COFFER_MASTER_KEY: {m}")))
        }
        None => MasterKey::load(&config.data_dir).map_err(StartError::Keys),
    }
}

/// The filesystem store of `config`'s data dir, sealing objects unless COFFER_ENCRYPTION=off:
/// its key store opened (the master key checked against it), or created — for a data dir
/// that already holds plaintext objects, with the note that objects older than now may be
/// plaintext. A master key is generated into the data dir (0600) when none is configured.
pub async fn fs_store(config: &Config) -> Result<FsBlobStore, StartError> {
    let root = config.data_dir.join("objects");
    let dir = &config.data_dir;
    let sealed = Keyring::exists(dir);
    let keys = |e: crate::crypt::KeyError| StartError::Keys(e.to_string());
    let master = match (config.encryption, sealed) {
        (EncryptionMode::Off, false) => return Ok(FsBlobStore::new(root)),
        (EncryptionMode::Off, true) => {
            return Err(StartError::Keys(
                "COFFER_ENCRYPTION=off, but this data dir's objects are sealed (keys/store.json)".into(),
            ));
        }
        (EncryptionMode::Auto, true) => master_key(config)?.ok_or_else(|| {
            StartError::Keys(format!(
                "keys/store.json expects master key {} but none is configured: set COFFER_MASTER_KEY",
                Keyring::expected_master(dir).unwrap_or_default()
            ))
        })?,
        (EncryptionMode::Auto, false) => match master_key(config)? {
            Some(m) => m,
            None => {
                crate::util::create_private_dir_all(dir)
                    .map_err(|source| StartError::DataDir { path: dir.display().to_string(), source })?;
                match MasterKey::create_file(&dir.join(MASTER_KEY_FILE)) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        MasterKey::load(dir).map_err(StartError::Keys)?.expect("the file exists")
                    }
                    Err(e) => return Err(StartError::Keys(format!("{}: {e}", dir.join(MASTER_KEY_FILE).display()))),
                }
            }
        },
    };
    let wrap: Arc<dyn KeyWrap> = Arc::new(master);
    let keyring = if sealed {
        Keyring::open(dir, wrap).map_err(keys)?
    } else {
        let legacy = FsBlobStore::new(&root).has_objects().await;
        let since = legacy.then(|| chrono::Utc::now().timestamp_millis() as u64);
        if legacy {
            tracing::warn!(
                "this data dir holds plaintext objects: new objects are sealed; run `coffer keys encrypt-existing` to seal the older ones"
            );
        }
        Keyring::open_or_create(dir, wrap, since).map_err(keys)?
    };
    Ok(FsBlobStore::sealed(root, Arc::new(keyring)))
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
            let store = fs_store(config).await?;
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
            let wait = config.limits.catalog_timeout;
            crate::catalog::PostgresCatalog::connect_waiting(url, maintenance, wait).await.map(|c| Arc::new(c) as _)
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
    let catalog: Arc<dyn Catalog> =
        Arc::new(crate::telemetry::stores::MeteredCatalog::new(catalog(config).await?, config.limits.catalog_timeout));
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
        StorageEngine::Filesystem => match fs_store(config).await {
            Ok(store) => crate::provision::provision_fs(&store, config, dry_run).await,
            Err(e) => crate::provision::Report::failed(e.to_string()),
        },
        StorageEngine::S3(settings) => {
            crate::provision::provision_s3(&s3_store(settings).await, config, dry_run, versioning).await
        }
    }
}
