use std::fmt;

use super::DomainError;

/// An S3 bucket name under the general-purpose bucket rules: 3-63 characters of lowercase
/// letters, digits, `.` and `-`, starting and ending with a letter or digit, no `..`. On the
/// filesystem store it names a directory under the data dir.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketName(String);

impl BucketName {
    /// Returns `InvalidBucket` when `raw` breaks the S3 bucket naming rules above.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let err = DomainError::InvalidBucket;
        if !(3..=63).contains(&raw.len()) {
            return Err(err("must be 3 to 63 characters"));
        }
        let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !raw.bytes().all(|b| ok_char(b) || b == b'.' || b == b'-') {
            return Err(err("may contain only lowercase letters, digits, '.' and '-'"));
        }
        let bytes = raw.as_bytes();
        if !ok_char(bytes[0]) || !ok_char(bytes[bytes.len() - 1]) {
            return Err(err("must start and end with a letter or digit"));
        }
        if raw.contains("..") {
            return Err(err("must not contain '..'"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(BucketName::parse("carbon-connect-dev-documents").is_ok());
        for bad in ["ab", "Upper", "a..b", "-ab", "ab-", "a_b", "a/b", &"a".repeat(64)] {
            assert!(BucketName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn accepted_names_are_single_path_segments() {
        let inputs = prop_oneof!["\\PC{0,70}", "[a-z0-9.-]{0,66}", "[a-z0-9][a-z0-9./\\\\A-Z-]{1,20}[a-z0-9]"];
        crate::domain::testing::both_branches(inputs, |s| match BucketName::parse(s) {
            Ok(b) => {
                prop_assert!(!b.as_str().contains(['/', '\\']) && !b.as_str().contains(".."));
                prop_assert!((3..=63).contains(&b.as_str().len()));
                Ok(true)
            }
            Err(_) => Ok(false),
        });
    }
}
