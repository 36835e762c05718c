//! Small helpers shared across layers.

use std::fmt::Display;

/// Serialises any `Display` value as a string (for domain newtypes in JSON).
pub fn display<T: Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Serialises `value` in double quotes (an entity tag from its sha256), without allocating.
pub fn quoted<S: serde::Serializer>(value: &&str, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 66];
    match buf.get_mut(1..=value.len()) {
        Some(inner) => {
            inner.copy_from_slice(value.as_bytes());
            buf[0] = b'"';
            buf[value.len() + 1] = b'"';
            s.serialize_str(std::str::from_utf8(&buf[..value.len() + 2]).expect("quotes around UTF-8"))
        }
        None => s.serialize_str(&format!("\"{value}\"")),
    }
}

/// Serialises a timestamp exactly as chrono's own `Serialize` does (RFC 3339, `Z`, the
/// shortest of no, 3, 6 or 9 fractional digits), written in one piece: chrono's writes its
/// digits one or two at a time, and serde_json escapes each write on its own, which was most
/// of a listed row's timestamp cost.
pub fn rfc3339<S: serde::Serializer>(at: &chrono::DateTime<chrono::Utc>, s: S) -> Result<S::Ok, S::Error> {
    match rfc3339_fast(at) {
        Some((buf, len)) => s.serialize_str(std::str::from_utf8(&buf[..len]).expect("ASCII digits")),
        None => s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
    }
}

/// `at` in a stack buffer, for years 0 to 9999 outside leap seconds (`None` otherwise).
fn rfc3339_fast(at: &chrono::DateTime<chrono::Utc>) -> Option<([u8; 30], usize)> {
    use chrono::{Datelike, Timelike};
    let (year, nano) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        return None;
    }
    let mut buf = [0u8; 30];
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, at.month(), 2);
    put(8, at.day(), 2);
    put(11, at.hour(), 2);
    put(14, at.minute(), 2);
    put(17, at.second(), 2);
    let len = match nano {
        0 => 19,
        n if n % 1_000_000 == 0 => {
            put(20, n / 1_000_000, 3);
            23
        }
        n if n % 1_000 == 0 => {
            put(20, n / 1_000, 6);
            26
        }
        n => {
            put(20, n, 9);
            29
        }
    };
    for (i, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.')] {
        buf[i] = c;
    }
    buf[len] = b'Z';
    Some((buf, len + 1))
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
    use proptest::prelude::*;

    use super::redact_url;

    fn chrono_json(at: &chrono::DateTime<chrono::Utc>) -> String {
        serde_json::to_string(at).unwrap()
    }

    fn ours(at: &chrono::DateTime<chrono::Utc>) -> String {
        let mut out = Vec::new();
        super::rfc3339(at, &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    proptest! {
        #[test]
        fn timestamps_serialise_as_chrono_does(secs in -70_000_000_000i64..300_000_000_000, nanos in prop_oneof![
            Just(0u32), (0u32..1000).prop_map(|n| n * 1_000_000), (0u32..1_000_000).prop_map(|n| n * 1000), 0u32..1_000_000_000,
        ]) {
            let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(ours(&at), chrono_json(&at));
        }
    }

    #[test]
    fn timestamps_outside_the_fast_path_serialise_as_chrono_does() {
        for at in [
            chrono::DateTime::from_timestamp(-62_200_000_000, 5_000).unwrap(), // year -1
            chrono::DateTime::from_timestamp(253_402_300_800, 0).unwrap(),     // year 10000
            chrono::DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(), // leap second
            chrono::DateTime::from_timestamp(0, 0).unwrap(),
        ] {
            assert_eq!(ours(&at), chrono_json(&at));
        }
    }

    #[test]
    fn entity_tags_are_quoted() {
        let json = |v: &str| {
            let mut out = Vec::new();
            super::quoted(&v, &mut serde_json::Serializer::new(&mut out)).unwrap();
            String::from_utf8(out).unwrap()
        };
        let sha = "ab".repeat(32);
        assert_eq!(json(&sha), format!("\"\\\"{sha}\\\"\""));
        assert_eq!(json(""), "\"\\\"\\\"\"");
        let long = "c".repeat(100);
        assert_eq!(json(&long), format!("\"\\\"{long}\\\"\""));
    }

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
