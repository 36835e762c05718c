//! Limits against abuse, all configurable (`COFFER_*`); where each is enforced is listed in
//! ARCHITECTURE.md.

use std::time::Duration;

use super::ConfigError;

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Header fields, in bytes (larger → 431).
    pub max_header_bytes: usize,
    /// Request target (path and query), in bytes (larger → 414).
    pub max_url_bytes: usize,
    /// Time to receive a request's headers (slow-loris).
    pub header_read_timeout: Duration,
    /// Longest pause between two chunks of an upload body (→ 408).
    pub body_idle_timeout: Duration,
    /// Slowest accepted upload, in bytes per second, judged over each `body_idle_timeout`
    /// window of the body (→ 408 `body-too-slow`); 0 turns the check off.
    pub upload_min_rate: u64,
    /// Whole-request limit for the non-streaming routes (→ 503 `request-timeout`).
    pub request_timeout: Duration,
    /// Uploads in progress on this instance (→ 429).
    pub max_uploads: usize,
    /// Uploads in progress per tenant on this instance (→ 429).
    pub max_uploads_per_tenant: usize,
    /// Origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// How long SIGTERM waits for in-flight requests before exiting.
    pub shutdown_grace: Duration,
    /// Longest wait for the catalog on a request's path — a pooled connection, or one
    /// statement or transaction — before the request gets 503 `catalog-unavailable`.
    pub catalog_timeout: Duration,
}

impl Limits {
    pub(super) fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let size = |var: &'static str, default: usize, min: usize| -> Result<usize, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => {
                    let n = v
                        .parse::<bytesize::ByteSize>()
                        .map_err(|e| ConfigError::new(var, format!("{e} (got {v:?})")))?
                        .as_u64() as usize;
                    if n < min {
                        return Err(ConfigError::new(var, format!("must be at least {min} bytes")));
                    }
                    Ok(n)
                }
            }
        };
        let duration = |var: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => humantime::parse_duration(&v).map_err(|e| ConfigError::new(var, format!("{e} (got {v:?})"))),
            }
        };
        let count = |var: &'static str, default: usize| -> Result<usize, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConfigError::new(var, format!("must be a positive whole number (got {v:?})"))),
                },
            }
        };
        let cors_origins = match get("COFFER_CORS_ORIGINS") {
            None => Vec::new(),
            Some(v) => {
                let origins: Vec<String> =
                    v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                for o in &origins {
                    let ok =
                        url::Url::parse(o).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/");
                    if !ok {
                        return Err(ConfigError::new(
                            "COFFER_CORS_ORIGINS",
                            format!("{o:?} is not an origin like https://app.example"),
                        ));
                    }
                }
                origins
            }
        };
        Ok(Self {
            max_header_bytes: size("COFFER_MAX_HEADER_BYTES", 16 * 1024, 8192)?,
            max_url_bytes: size("COFFER_MAX_URL_BYTES", 8 * 1024, 256)?,
            header_read_timeout: duration("COFFER_HEADER_READ_TIMEOUT", 10)?,
            body_idle_timeout: duration("COFFER_BODY_IDLE_TIMEOUT", 30)?,
            upload_min_rate: size("COFFER_UPLOAD_MIN_RATE", 1024, 0)? as u64,
            request_timeout: duration("COFFER_REQUEST_TIMEOUT", 30)?,
            max_uploads: count("COFFER_MAX_UPLOADS", 64)?,
            max_uploads_per_tenant: count("COFFER_MAX_UPLOADS_PER_TENANT", 8)?,
            cors_origins,
            shutdown_grace: duration("COFFER_SHUTDOWN_GRACE", 30)?,
            catalog_timeout: match duration("COFFER_CATALOG_TIMEOUT", 5)? {
                d if d.is_zero() => return Err(ConfigError::new("COFFER_CATALOG_TIMEOUT", "must be positive")),
                d => d,
            },
        })
    }
}
