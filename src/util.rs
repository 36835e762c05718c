//! Small helpers shared across layers.

use std::fmt::Display;

/// Serialises any `Display` value as a string (for domain newtypes in JSON).
pub fn display<T: Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// The current time, truncated to microseconds (what the catalogs store).
pub fn now_micros() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).expect("now is representable")
}

/// Hides a password embedded in a URL (database URLs in logs and messages).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => raw.to_owned(),
    }
}

/// Creates `dir` and any missing parents readable by the owner only (0700): a data dir holds
/// every tenant's documents, the catalog and the secrets. Existing directories keep their mode.
pub fn create_private_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
