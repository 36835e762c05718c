//! Settings of the S3 blob store (`COFFER_STORAGE=s3`).

use super::{ConfigError, Secret};

/// Server-side encryption applied to every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    None,
    /// SSE-S3 (`x-amz-server-side-encryption: AES256`), the default.
    Aes256,
    /// SSE-KMS with an optional key id (the account's default key otherwise).
    Kms(Option<String>),
}

/// Where presigned URLs point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresignMode {
    /// SigV4 URLs to the S3 endpoint itself (the browser fetches from S3).
    Direct,
    /// coffer-signed URLs served by coffer (for endpoints browsers cannot reach).
    Proxy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3Settings {
    pub region: String,
    /// A custom endpoint (S3-compatible servers); AWS when `None`.
    pub endpoint: Option<url::Url>,
    pub path_style: bool,
    /// Send checksums only where an operation requires them (no aws-chunked trailers), for
    /// servers that reject the SDK's default streaming checksums.
    pub checksum_when_required: bool,
    pub sse: Sse,
    /// Multipart part size in bytes (also the single-PUT threshold).
    pub part_size: usize,
    pub parts_in_flight: usize,
    /// Bodies of a known length from one part up to this go as one streamed `PutObject`
    /// instead of a multipart upload (`COFFER_S3_SINGLE_PUT_MAX`; 0 turns it off).
    pub single_put_max: u64,
    pub max_attempts: u32,
    pub presign: PresignMode,
    /// Longest lifetime of a direct S3 link (COFFER_PRESIGN_DIRECT_MAX_TTL, default 1 h). S3
    /// cannot revoke one, so it outlives a tenant's suspension until it expires; links asked
    /// for longer are coffer-signed, and those stop at suspension.
    pub direct_max_ttl: std::time::Duration,
    /// Access key id and secret from the environment, when set; the SDK's default chain else.
    pub static_credentials: Option<(String, Secret)>,
    /// Lifecycle of the documents bucket (days after creation).
    pub intelligent_tiering_after_days: i32,
    pub glacier_after_days: i32,
}

const MIB: usize = 1 << 20;

impl S3Settings {
    pub(super) fn from_env(get: &dyn Fn(&str) -> Option<String>, region: &str) -> Result<Self, ConfigError> {
        let endpoint = match get("AWS_ENDPOINT_URL") {
            Some(v) => Some(url::Url::parse(&v).map_err(|e| ConfigError::new("AWS_ENDPOINT_URL", e.to_string()))?),
            None => None,
        };
        let flag = |var: &'static str, default: bool| -> Result<bool, ConfigError> {
            match get(var).as_deref() {
                None => Ok(default),
                Some("true" | "1") => Ok(true),
                Some("false" | "0") => Ok(false),
                Some(v) => Err(ConfigError::new(var, format!("must be true or false (got {v:?})"))),
            }
        };
        let number = |var: &'static str, default: usize| -> Result<usize, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError::new(var, format!("must be a whole number (got {v:?})"))),
            }
        };
        let sse = match get("COFFER_SSE").as_deref() {
            None | Some("AES256") => Sse::Aes256,
            Some("aws:kms") => Sse::Kms(get("COFFER_SSE_KMS_KEY_ID")),
            Some("none") => Sse::None,
            Some(v) => {
                return Err(ConfigError::new("COFFER_SSE", format!("must be AES256, aws:kms or none (got {v:?})")));
            }
        };
        let part_size = match get("COFFER_S3_PART_SIZE") {
            None => 8 * MIB,
            Some(v) => v
                .parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64() as usize)
                .map_err(|e| ConfigError::new("COFFER_S3_PART_SIZE", e.to_string()))?,
        };
        if !(5 * MIB..=5 * 1024 * MIB).contains(&part_size) {
            return Err(ConfigError::new("COFFER_S3_PART_SIZE", "must be between 5 MiB and 5 GiB (S3's part limits)"));
        }
        let parts_in_flight = number("COFFER_S3_PARTS_IN_FLIGHT", 4)?;
        let single_put_max = match get("COFFER_S3_SINGLE_PUT_MAX") {
            None => 64 * MIB as u64,
            Some(v) => v
                .parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|e| ConfigError::new("COFFER_S3_SINGLE_PUT_MAX", e.to_string()))?,
        };
        if single_put_max > 5 * 1024 * MIB as u64 {
            return Err(ConfigError::new("COFFER_S3_SINGLE_PUT_MAX", "must be at most 5 GiB (S3's limit for one PUT)"));
        }
        if parts_in_flight == 0 {
            return Err(ConfigError::new("COFFER_S3_PARTS_IN_FLIGHT", "must be at least 1"));
        }
        let presign = match get("COFFER_PRESIGN").as_deref() {
            None | Some("direct") => PresignMode::Direct,
            Some("proxy") => PresignMode::Proxy,
            Some(v) => return Err(ConfigError::new("COFFER_PRESIGN", format!("must be direct or proxy (got {v:?})"))),
        };
        let direct_max_ttl = match get("COFFER_PRESIGN_DIRECT_MAX_TTL") {
            None => std::time::Duration::from_secs(3600),
            Some(v) => match humantime::parse_duration(&v) {
                Ok(d) if !d.is_zero() && d <= super::MAX_PRESIGN_EXPIRY => d,
                _ => {
                    return Err(ConfigError::new(
                        "COFFER_PRESIGN_DIRECT_MAX_TTL",
                        format!("must be a duration between 1s and 7d (got {v:?})"),
                    ));
                }
            },
        };
        let static_credentials = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some((id, Secret::new(secret))),
            _ => None,
        };
        let days = |var: &'static str, default: usize| number(var, default).map(|d| d as i32);
        Ok(Self {
            region: region.to_owned(),
            path_style: flag("COFFER_S3_PATH_STYLE", endpoint.is_some())?,
            checksum_when_required: match get("COFFER_S3_CHECKSUM").as_deref() {
                None => endpoint.is_some(),
                Some("when_required") => true,
                Some("when_supported") => false,
                Some(v) => {
                    return Err(ConfigError::new(
                        "COFFER_S3_CHECKSUM",
                        format!("must be when_required or when_supported (got {v:?})"),
                    ));
                }
            },
            endpoint,
            sse,
            part_size,
            parts_in_flight,
            single_put_max,
            max_attempts: number("COFFER_S3_MAX_ATTEMPTS", 3)? as u32,
            presign,
            direct_max_ttl,
            static_credentials,
            intelligent_tiering_after_days: days("COFFER_TIERING_AFTER_DAYS", 30)?,
            glacier_after_days: days("COFFER_GLACIER_AFTER_DAYS", 365)?,
        })
    }
}
