//! Coffer's configuration: one typed struct, built from defaults, then a TOML file
//! (`COFFER_CONFIG`, for category policies), then environment variables, then CLI flags.
//! A bad value fails at start with one line naming the variable.

mod categories;
mod file;
mod limits;
mod s3;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use url::Url;

pub use crate::auth::Secret;
pub use categories::{BucketKind, Categories, CategoryPolicy};
pub use file::ConfigFile;
pub use limits::Limits;
pub use s3::{PresignMode, S3Settings, Sse};

use std::collections::BTreeMap;

pub use crate::catalog::CatalogEngine;
use crate::catalog::Quota;
use crate::domain::{BucketName, TenantId};

/// S3's own limit on presigned URL lifetime, which coffer applies to its own links too.
pub const MAX_PRESIGN_EXPIRY: Duration = crate::domain::Expiry::MAX;

/// A configuration value that cannot be used; `Display` is the one line shown at start.
#[derive(Debug, Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &'static str, message: impl Into<String>) -> Self {
        Self { var, message: message.into() }
    }
}

/// Whether unknown tenants are created on first use or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantsMode {
    /// Tenants are registered on first use (default).
    Open,
    /// Only tenants added with `coffer tenant add` are served.
    Registered,
}

/// Whether the filesystem store seals objects (COFFER_ENCRYPTION).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionMode {
    /// Seal: in a new data dir, in one that already has a key store, and in an older plaintext
    /// one too (new objects sealed, old ones read as they are until `coffer keys
    /// encrypt-existing`). The default.
    Auto,
    /// Store plaintext; refused for a data dir that has a key store.
    Off,
}

/// Which blob store holds the bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageEngine {
    Filesystem,
    S3(Box<S3Settings>),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// Base of absolute URLs coffer hands out (presigned links).
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub environment: String,
    pub storage: StorageEngine,
    pub documents_bucket: BucketName,
    pub media_bucket: BucketName,
    pub region: String,
    /// Default lifetime of presigned URLs.
    pub presign_expiry: Duration,
    /// HS256 secret for tokens and the root of presigned-URL keys; generated in the data dir
    /// when unset.
    pub jwt_secret: Option<Secret>,
    /// PEM public key (RS256 or ES256) for verifying tokens from an identity provider.
    pub jwt_public_key: Option<String>,
    /// Clock leeway for `exp` and `nbf`.
    pub jwt_leeway: Duration,
    /// Longest token lifetime accepted (COFFER_JWT_MAX_TTL, default 24 h).
    pub jwt_max_ttl: Duration,
    /// Required `iss` claim (COFFER_JWT_ISSUER), when set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim (COFFER_JWT_AUDIENCE), when set.
    pub jwt_audience: Option<String>,
    /// Root of presigned-URL keys (`COFFER_PRESIGN_SECRET`), so that link keys and token keys
    /// rotate apart; when unset, derived from the signing secret as before.
    pub presign_secret: Option<Secret>,
    /// Earlier presign secrets whose presigned URLs still verify (rotation).
    pub presign_previous_secrets: Vec<Secret>,
    /// `sqlite://…` (default, in the data dir) or `postgres://…`.
    pub database_url: Secret,
    /// The engine `database_url` names.
    pub catalog_engine: CatalogEngine,
    /// A separate PostgreSQL login for maintenance (COFFER_MAINTENANCE_DATABASE_URL), so that
    /// the login serving tenants need not be able to see every tenant.
    pub maintenance_database_url: Option<Secret>,
    pub categories: Categories,
    pub tenants: TenantsMode,
    /// Quota of every tenant without an entry in `quota_overrides`.
    pub default_quota: Quota,
    pub quota_overrides: BTreeMap<TenantId, Quota>,
    /// How often `coffer serve` reconciles catalog and blob store; `None` disables it.
    pub reconcile_interval: Option<Duration>,
    /// Pending uploads younger than this are left alone by reconcile.
    pub reconcile_grace: Duration,
    /// How long a resumable upload lives after its last write (COFFER_UPLOAD_EXPIRY, 24 h).
    pub upload_expiry: Duration,
    /// How long a write to a resumable upload holds it without renewing its lock
    /// (COFFER_UPLOAD_LOCK_LEASE, 10 s): after an instance dies mid-write, its uploads can be
    /// continued this long after.
    pub upload_lock_lease: Duration,
    pub limits: Limits,
    /// Bearer token `/metrics` requires (COFFER_METRICS_TOKEN), when set.
    pub metrics_token: Option<Secret>,
    /// Encryption at rest on the filesystem store (COFFER_ENCRYPTION).
    pub encryption: EncryptionMode,
    /// The master key wrapping tenant data keys (COFFER_MASTER_KEY: 64 hex digits or base64);
    /// when unset, one generated into the data dir.
    pub master_key: Option<Secret>,
    /// A separate listen address for `/metrics` (COFFER_METRICS_ADDR); when set, the API's
    /// own address does not serve it.
    pub metrics_addr: Option<SocketAddr>,
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<Url>,
    pub database_url: Option<String>,
}

impl Config {
    /// Builds the configuration from the process environment and `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()), overrides)
    }

    /// Builds the configuration from `lookup` (an environment) and `overrides`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let addr = match overrides.addr {
            Some(a) => a,
            None => env.parse("COFFER_ADDR", "127.0.0.1:8080".parse().expect("valid"), |v| {
                v.parse::<SocketAddr>().map_err(|e| e.to_string())
            })?,
        };
        let public_url = match &overrides.public_url {
            Some(u) => u.clone(),
            None => match env.get("COFFER_PUBLIC_URL") {
                Some(v) => parse_public_url(&v).map_err(|m| ConfigError::new("COFFER_PUBLIC_URL", m))?,
                None => Url::parse(&format!("http://{addr}")).expect("socket address forms a URL"),
            },
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| env.get("COFFER_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./coffer-data"));
        let environment = env.get("ENVIRONMENT").unwrap_or_else(|| "dev".to_owned());
        let bucket = |var: &'static str, suffix: &str| {
            let name = env.get(var).unwrap_or_else(|| format!("carbon-connect-{environment}-{suffix}"));
            BucketName::parse(&name).map_err(|e| ConfigError::new(var, format!("{e} ({name:?})")))
        };
        let documents_bucket = bucket("AWS_S3_DOCUMENTS_BUCKET", "documents")?;
        let media_bucket = bucket("AWS_S3_MEDIA_BUCKET", "media")?;
        if documents_bucket == media_bucket {
            return Err(ConfigError::new("AWS_S3_MEDIA_BUCKET", "must differ from AWS_S3_DOCUMENTS_BUCKET"));
        }
        let presign_expiry = env.parse("S3_PRESIGNED_URL_EXPIRY", Duration::from_secs(3600), |v| {
            let secs: u64 = v.parse().map_err(|_| "must be a whole number of seconds".to_owned())?;
            let d = Duration::from_secs(secs);
            if secs == 0 || d > MAX_PRESIGN_EXPIRY {
                return Err("must be between 1 and 604800 seconds (7 days)".to_owned());
            }
            Ok(d)
        })?;
        let region = env.get("AWS_S3_REGION").unwrap_or_else(|| "eu-north-1".to_owned());
        let storage = match env.get("COFFER_STORAGE").as_deref() {
            None | Some("fs" | "filesystem") => StorageEngine::Filesystem,
            Some("s3") => StorageEngine::S3(Box::new(S3Settings::from_env(&|k| env.get(k), &region)?)),
            Some(other) => {
                return Err(ConfigError::new(
                    "COFFER_STORAGE",
                    format!("unknown engine {other:?} (expected fs or s3)"),
                ));
            }
        };
        let jwt_public_key =
            match env.get("COFFER_JWT_PUBLIC_KEY") {
                Some(v) if v.trim_start().starts_with("-----BEGIN") => Some(v),
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new("COFFER_JWT_PUBLIC_KEY", format!("cannot read PEM file {path}: {e}"))
                })?),
                None => None,
            };
        let jwt_secret = env.get("COFFER_JWT_SECRET").map(Secret::new);
        if jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            return Err(ConfigError::new("COFFER_JWT_SECRET", "must be at least 32 characters"));
        }
        let jwt_leeway = env.parse("COFFER_JWT_LEEWAY", Duration::from_secs(30), |v| {
            v.parse::<u64>().map(Duration::from_secs).map_err(|_| "must be a whole number of seconds".to_owned())
        })?;
        let jwt_max_ttl = env.parse("COFFER_JWT_MAX_TTL", crate::auth::DEFAULT_MAX_TTL, |v| {
            let d = humantime::parse_duration(v).map_err(|e| e.to_string())?;
            if d.is_zero() { Err("must be positive".into()) } else { Ok(d) }
        })?;
        let metrics_token = env.get("COFFER_METRICS_TOKEN").map(Secret::new);
        if metrics_token.as_ref().is_some_and(|s| s.expose().len() < 16) {
            return Err(ConfigError::new("COFFER_METRICS_TOKEN", "must be at least 16 characters"));
        }
        let metrics_addr =
            env.parse("COFFER_METRICS_ADDR", None, |v| v.parse::<SocketAddr>().map(Some).map_err(|e| e.to_string()))?;
        let presign_secret = env.get("COFFER_PRESIGN_SECRET").map(Secret::new);
        if presign_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            return Err(ConfigError::new("COFFER_PRESIGN_SECRET", "must be at least 32 characters"));
        }
        let presign_previous_secrets = env
            .get("COFFER_PRESIGN_PREVIOUS_SECRETS")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Secret::new).collect())
            .unwrap_or_default();
        let database_url = overrides
            .database_url
            .clone()
            .or_else(|| env.get("DATABASE_URL"))
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("catalog.db").display()));
        let catalog_engine = CatalogEngine::of_url(&database_url)
            .ok_or_else(|| ConfigError::new("DATABASE_URL", "must start with sqlite: or postgres:"))?;
        let maintenance_database_url = env.get("COFFER_MAINTENANCE_DATABASE_URL").map(Secret::new);
        if maintenance_database_url.is_some() && catalog_engine != CatalogEngine::Postgres {
            return Err(ConfigError::new(
                "COFFER_MAINTENANCE_DATABASE_URL",
                "only applies to a postgres: DATABASE_URL",
            ));
        }
        let file = match env.get("COFFER_CONFIG") {
            Some(path) => ConfigFile::load(&path).map_err(|m| ConfigError::new("COFFER_CONFIG", m))?,
            None => ConfigFile::default(),
        };
        let tenants = env.parse("COFFER_TENANTS", TenantsMode::Open, |v| match v {
            "open" => Ok(TenantsMode::Open),
            "registered" => Ok(TenantsMode::Registered),
            _ => Err("must be open or registered".into()),
        })?;
        let size = |v: &str| v.parse::<bytesize::ByteSize>().map(|b| Some(b.as_u64())).map_err(|e| e.to_string());
        let default_quota = Quota {
            max_bytes: env.parse("COFFER_QUOTA_BYTES", None, size)?,
            max_files: env.parse("COFFER_QUOTA_FILES", None, |v| {
                v.parse::<u64>().map(Some).map_err(|_| "must be a whole number".to_owned())
            })?,
        };
        let encryption = env.parse("COFFER_ENCRYPTION", EncryptionMode::Auto, |v| match v {
            "auto" | "on" => Ok(EncryptionMode::Auto),
            "off" => Ok(EncryptionMode::Off),
            _ => Err("must be auto (the default) or off".into()),
        })?;
        let master_key = env.get("COFFER_MASTER_KEY").map(Secret::new);
        if let Some(k) = &master_key {
            crate::crypt::MasterKey::parse(k.expose()).map_err(|m| ConfigError::new("COFFER_MASTER_KEY", m))?;
        }
        let duration = |v: &str| humantime::parse_duration(v).map_err(|e| e.to_string());
        let reconcile_interval = env.parse("COFFER_RECONCILE_INTERVAL", None, |v| duration(v).map(Some))?;
        let reconcile_grace = env.parse("COFFER_RECONCILE_GRACE", Duration::from_secs(3600), duration)?;
        let at_least_a_second = |v: &str| {
            duration(v).and_then(|d| {
                if d >= Duration::from_secs(1) { Ok(d) } else { Err("must be at least one second".into()) }
            })
        };
        let upload_expiry = env.parse("COFFER_UPLOAD_EXPIRY", Duration::from_secs(24 * 3600), at_least_a_second)?;
        let upload_lock_lease = env.parse("COFFER_UPLOAD_LOCK_LEASE", Duration::from_secs(10), at_least_a_second)?;
        Ok(Self {
            addr,
            public_url,
            data_dir,
            environment,
            storage,
            documents_bucket,
            media_bucket,
            region,
            presign_expiry,
            jwt_secret,
            jwt_public_key,
            jwt_leeway,
            jwt_max_ttl,
            jwt_issuer: env.get("COFFER_JWT_ISSUER"),
            jwt_audience: env.get("COFFER_JWT_AUDIENCE"),
            presign_secret,
            presign_previous_secrets,
            database_url: Secret::new(database_url),
            catalog_engine,
            maintenance_database_url,
            categories: file.categories.unwrap_or_default(),
            tenants,
            default_quota,
            quota_overrides: file.quotas,
            reconcile_interval,
            reconcile_grace,
            upload_expiry,
            upload_lock_lease,
            limits: Limits::from_env(&|k| env.get(k))?,
            metrics_token,
            metrics_addr,
            encryption,
            master_key,
        })
    }

    /// The bucket a category's objects live in.
    pub fn bucket(&self, kind: BucketKind) -> &BucketName {
        match kind {
            BucketKind::Documents => &self.documents_bucket,
            BucketKind::Media => &self.media_bucket,
        }
    }

    /// What tokens must satisfy besides their signature.
    pub fn token_rules(&self) -> crate::auth::TokenRules {
        crate::auth::TokenRules {
            leeway: self.jwt_leeway,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            max_ttl: self.jwt_max_ttl,
        }
    }

    /// The HS256 / presign root secret: `COFFER_JWT_SECRET`, else the one generated in the data
    /// dir on first use.
    pub fn signing_secret(&self) -> Result<Secret, String> {
        match &self.jwt_secret {
            Some(s) => Ok(s.clone()),
            None => crate::auth::load_or_create_secret(&self.data_dir),
        }
    }

    /// Human-readable effective configuration, secrets redacted (`coffer config`).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<32} {v}\n"));
        line("COFFER_ADDR", self.addr.to_string());
        line("COFFER_PUBLIC_URL", self.public_url.to_string());
        line("COFFER_DATA_DIR", self.data_dir.display().to_string());
        line("ENVIRONMENT", self.environment.clone());
        match &self.storage {
            StorageEngine::Filesystem => line("COFFER_STORAGE", "fs".into()),
            StorageEngine::S3(s) => {
                line("COFFER_STORAGE", "s3".into());
                line("AWS_ENDPOINT_URL", s.endpoint.as_ref().map_or("AWS".into(), |u| u.to_string()));
                line("COFFER_S3_PATH_STYLE", s.path_style.to_string());
                line(
                    "COFFER_S3_CHECKSUM",
                    if s.checksum_when_required { "when_required" } else { "when_supported" }.into(),
                );
                line("COFFER_SSE", format!("{:?}", s.sse));
                line("COFFER_S3_PART_SIZE", bytesize::ByteSize(s.part_size as u64).to_string());
                line("COFFER_S3_PARTS_IN_FLIGHT", s.parts_in_flight.to_string());
                line("COFFER_S3_SINGLE_PUT_MAX", bytesize::ByteSize(s.single_put_max).to_string());
                line("COFFER_PRESIGN", format!("{:?}", s.presign).to_lowercase());
                line("COFFER_PRESIGN_DIRECT_MAX_TTL", humantime::format_duration(s.direct_max_ttl).to_string());
                line(
                    "AWS credentials",
                    if s.static_credentials.is_some() { "environment" } else { "default chain" }.into(),
                );
            }
        }
        line("AWS_S3_DOCUMENTS_BUCKET", self.documents_bucket.to_string());
        line("AWS_S3_MEDIA_BUCKET", self.media_bucket.to_string());
        line("AWS_S3_REGION", self.region.clone());
        line("S3_PRESIGNED_URL_EXPIRY", self.presign_expiry.as_secs().to_string());
        line(
            "COFFER_JWT_SECRET",
            self.jwt_secret.as_ref().map_or("unset (generated in the data dir)".into(), |s| s.to_string()),
        );
        line(
            "COFFER_PRESIGN_SECRET",
            self.presign_secret.as_ref().map_or("unset (derived from the signing secret)".into(), |s| s.to_string()),
        );
        line("COFFER_JWT_PUBLIC_KEY", if self.jwt_public_key.is_some() { "set" } else { "unset" }.into());
        line("COFFER_JWT_LEEWAY", self.jwt_leeway.as_secs().to_string());
        line("COFFER_JWT_MAX_TTL", humantime::format_duration(self.jwt_max_ttl).to_string());
        line("COFFER_JWT_ISSUER", self.jwt_issuer.clone().unwrap_or_else(|| "any".into()));
        line("COFFER_JWT_AUDIENCE", self.jwt_audience.clone().unwrap_or_else(|| "any".into()));
        line("DATABASE_URL", crate::util::redact_url(self.database_url.expose()));
        line(
            "COFFER_MAINTENANCE_DATABASE_URL",
            self.maintenance_database_url
                .as_ref()
                .map_or("unset (DATABASE_URL)".into(), |u| crate::util::redact_url(u.expose())),
        );
        line("COFFER_TENANTS", format!("{:?}", self.tenants).to_lowercase());
        line("COFFER_ENCRYPTION", format!("{:?}", self.encryption).to_lowercase());
        line(
            "COFFER_MASTER_KEY",
            self.master_key.as_ref().map_or("unset (generated in the data dir)".into(), |s| s.to_string()),
        );
        let limit = |v: Option<u64>| v.map_or("unlimited".to_owned(), |n| n.to_string());
        line("COFFER_QUOTA_BYTES", limit(self.default_quota.max_bytes));
        line("COFFER_QUOTA_FILES", limit(self.default_quota.max_files));
        line(
            "COFFER_RECONCILE_INTERVAL",
            self.reconcile_interval.map_or("off".into(), |d| humantime::format_duration(d).to_string()),
        );
        line("COFFER_RECONCILE_GRACE", humantime::format_duration(self.reconcile_grace).to_string());
        line("COFFER_UPLOAD_EXPIRY", humantime::format_duration(self.upload_expiry).to_string());
        line("COFFER_UPLOAD_LOCK_LEASE", humantime::format_duration(self.upload_lock_lease).to_string());
        let l = &self.limits;
        let d = |d: Duration| humantime::format_duration(d).to_string();
        line("COFFER_MAX_HEADER_BYTES", l.max_header_bytes.to_string());
        line("COFFER_MAX_URL_BYTES", l.max_url_bytes.to_string());
        line("COFFER_HEADER_READ_TIMEOUT", d(l.header_read_timeout));
        line("COFFER_BODY_IDLE_TIMEOUT", d(l.body_idle_timeout));
        line("COFFER_UPLOAD_MIN_RATE", format!("{}/s", bytesize::ByteSize(l.upload_min_rate)));
        line("COFFER_REQUEST_TIMEOUT", d(l.request_timeout));
        line("COFFER_CATALOG_TIMEOUT", d(l.catalog_timeout));
        line("COFFER_MAX_UPLOADS", l.max_uploads.to_string());
        line("COFFER_MAX_UPLOADS_PER_TENANT", l.max_uploads_per_tenant.to_string());
        line("COFFER_CORS_ORIGINS", if l.cors_origins.is_empty() { "none".into() } else { l.cors_origins.join(",") });
        line("COFFER_SHUTDOWN_GRACE", d(l.shutdown_grace));
        line(
            "COFFER_METRICS_ADDR",
            self.metrics_addr.map_or("unset (served on COFFER_ADDR)".into(), |a| a.to_string()),
        );
        line(
            "COFFER_METRICS_TOKEN",
            self.metrics_token.as_ref().map_or("unset (no token asked)".into(), |s| s.to_string()),
        );
        for (name, p) in self.categories.iter() {
            line(
                &format!("category {name}"),
                format!(
                    "bucket={} max_size={} types={}",
                    p.bucket,
                    bytesize::ByteSize(p.max_size),
                    p.allowed_types.join(",")
                ),
            );
        }
        out
    }
}

fn parse_public_url(v: &str) -> Result<Url, String> {
    let url = Url::parse(v).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err("must be an http(s) URL".into());
    }
    Ok(url)
}

struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    fn parse<T>(
        &self,
        var: &'static str,
        default: T,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            Some(v) => f(v.trim()).map_err(|m| ConfigError::new(var, format!("{m} (got {v:?})"))),
            None => Ok(default),
        }
    }
}

#[cfg(test)]
mod tests;
