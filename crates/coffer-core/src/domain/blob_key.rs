use std::fmt;

use uuid::Uuid;

use super::object_key::TENANT_PREFIX;
use super::{DomainError, ObjectKey};

/// One physical version of an object's bytes: a time-ordered id, unique per upload. An
/// overwrite writes a new version and never touches the bytes a reader may be streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobVersion(Uuid);

impl BlobVersion {
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the 32-hex-digit form written by `Display`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.len() != 32 {
            return Err(DomainError::InvalidKey("bad blob version"));
        }
        Uuid::try_parse(raw).map(Self).map_err(|_| DomainError::InvalidKey("bad blob version"))
    }

    /// Milliseconds since the epoch at which the version was generated.
    pub fn timestamp_millis(&self) -> Option<u64> {
        self.0.get_timestamp().map(|ts| {
            let (secs, nanos) = ts.to_unix();
            secs * 1000 + u64::from(nanos) / 1_000_000
        })
    }
}

impl fmt::Display for BlobVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

/// Where an object's bytes live in a bucket: `tenant-{id}/{category}/{version}/{filename}`.
/// It always lies under the logical key's `tenant-{id}/{category}/` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey {
    key: ObjectKey,
    version: BlobVersion,
}

impl BlobKey {
    pub fn new(key: ObjectKey, version: BlobVersion) -> Self {
        Self { key, version }
    }

    /// Parses the form written by `Display`; returns `InvalidKey` for anything else.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let bad = DomainError::InvalidKey("not a blob key");
        let (prefix, rest) = raw.rsplit_once('/').ok_or(bad.clone())?;
        let (dir, version) = prefix.rsplit_once('/').ok_or(bad.clone())?;
        let key = ObjectKey::parse(&format!("{dir}/{rest}"))?;
        if key.prefix() != dir || key.filename().as_str() != rest {
            return Err(bad);
        }
        Ok(Self { key, version: BlobVersion::parse(version)? })
    }

    /// Parses `raw` as a version of `key` (already parsed): the same check as [`Self::parse`]
    /// with the key's own parts compared instead of parsed a second time.
    pub fn parse_of(key: &ObjectKey, raw: &str) -> Result<Self, DomainError> {
        let bad = DomainError::InvalidKey("not a blob key of this key");
        let rest = key.strip_prefix_of(raw).ok_or(bad.clone())?;
        let (version, filename) = rest.split_once('/').ok_or(bad.clone())?;
        if filename != key.filename().as_str() {
            return Err(bad);
        }
        Ok(Self { key: key.clone(), version: BlobVersion::parse(version)? })
    }

    pub fn object_key(&self) -> &ObjectKey {
        &self.key
    }

    pub fn version(&self) -> BlobVersion {
        self.version
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        write!(f, "{TENANT_PREFIX}{}/{}/{}/{}", key.tenant(), key.category(), self.version, key.filename())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_prefix() {
        let key = ObjectKey::parse("tenant-abc/reports/q1.pdf").unwrap();
        let blob = BlobKey::new(key.clone(), BlobVersion::generate());
        let text = blob.to_string();
        assert!(text.starts_with("tenant-abc/reports/"));
        assert!(text.ends_with("/q1.pdf"));
        assert_eq!(BlobKey::parse(&text).unwrap(), blob);
        assert!(blob.version().timestamp_millis().is_some());
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in ["tenant-abc/reports/q1.pdf", "tenant-abc/reports/xyz/q1.pdf", "x/y/z"] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parse_of_takes_only_versions_of_its_key() {
        let key = ObjectKey::parse("tenant-abc/reports/q1.pdf").unwrap();
        let blob = BlobKey::new(key.clone(), BlobVersion::generate());
        assert_eq!(BlobKey::parse_of(&key, &blob.to_string()).unwrap(), blob);
        let other = ObjectKey::parse("tenant-abc/reports/q2.pdf").unwrap();
        assert!(BlobKey::parse_of(&other, &blob.to_string()).is_err());
        let other_tenant = ObjectKey::parse("tenant-ab/reports/q1.pdf").unwrap();
        assert!(BlobKey::parse_of(&other_tenant, &blob.to_string()).is_err());
        for bad in ["tenant-abc/reports/q1.pdf", "tenant-abc/reports/xyz/q1.pdf", "tenant-abc/reports//q1.pdf"] {
            assert!(BlobKey::parse_of(&key, bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = BlobKey::parse(&s);
        }

        /// Whatever the text, `parse_of` accepts exactly what `parse` accepts for that key.
        #[test]
        fn parse_of_agrees_with_parse(s in "\\PC{0,120}", version in "[0-9a-f]{32}") {
            let key = ObjectKey::parse("tenant-abc/reports/q1.pdf").unwrap();
            for raw in [s.clone(), format!("tenant-abc/reports/{version}/q1.pdf"), format!("tenant-abc/reports/{s}/q1.pdf")] {
                let whole = BlobKey::parse(&raw).ok().filter(|b| b.object_key() == &key);
                prop_assert_eq!(BlobKey::parse_of(&key, &raw).ok(), whole);
            }
        }
    }
}
