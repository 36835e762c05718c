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

/// Hides every secret a database URL can carry, for logs and messages: the user-info password
/// and the `password` / `sslpassword` query parameters (libpq's spellings). A URL that does not
/// parse is shown as its scheme only, since where its secret sits cannot be known.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        let scheme = raw.split_once(':').map(|(s, _)| s).filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric()));
        return format!("{}:[unparsable URL, redacted]", scheme.unwrap_or("?"));
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    let secret = |k: &str| ["password", "sslpassword"].contains(&k.to_ascii_lowercase().as_str());
    if url.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) { "redacted".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// Creates `dir` and any missing parents readable by the owner only (0700): a data dir holds
/// every tenant's documents, the catalog and the secrets. Existing directories keep their mode.
pub fn create_private_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `bytes` to a new file at `path`, owner-only (0600), synced with its directory entry;
/// `AlreadyExists` when the file is there (another process created it first).
pub fn create_private_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_urls_lose_every_secret() {
        for (raw, shown) in [
            ("postgres://u:hunter2@db/coffer", "postgres://u:redacted@db/coffer"),
            (
                "postgres://u@db/coffer?password=hunter2&sslmode=require",
                "postgres://u@db/coffer?password=redacted&sslmode=require",
            ),
            (
                "postgres://db/c?PassWord=hunter2&sslpassword=hunter2",
                "postgres://db/c?PassWord=redacted&sslpassword=redacted",
            ),
            ("postgres://u:hunter2@db:99999/c", "postgres:[unparsable URL, redacted]"),
            ("not a url hunter2", "?:[unparsable URL, redacted]"),
            ("sqlite://./coffer-data/catalog.db", "sqlite://./coffer-data/catalog.db"),
        ] {
            let out = redact_url(raw);
            assert_eq!(out, shown);
            assert!(!out.contains("hunter2"));
        }
    }
}
