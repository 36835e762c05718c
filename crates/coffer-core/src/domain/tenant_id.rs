use std::fmt;

use super::DomainError;

/// A tenant identifier: 1-63 characters of `[A-Za-z0-9_-]`, starting with a letter or digit.
/// Case-sensitive. The only way to obtain one is [`TenantId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 63;

    /// Returns `InvalidTenantId` when `raw` is empty, longer than 63 characters, starts with
    /// something other than an ASCII letter or digit, or contains anything outside
    /// `[A-Za-z0-9_-]`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let err = DomainError::InvalidTenantId;
        let first = raw.chars().next().ok_or(err("must not be empty"))?;
        if raw.len() > Self::MAX_LEN {
            return Err(err("must be at most 63 characters"));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(err("must start with a letter or digit"));
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(err("may contain only letters, digits, '_' and '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_ids() {
        for ok in ["abc123", "A", "9", "org_42-eu", &"a".repeat(63)] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in ["", "-abc", "_abc", "a/b", "a.b", "tenant b", "é", &"a".repeat(64), "a\0"] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn never_accepts_a_separator() {
        let inputs = prop_oneof!["\\PC{0,70}", "[A-Za-z0-9_-]{0,66}", "[A-Za-z0-9][A-Za-z0-9_./%\\\\-]{0,12}"];
        crate::domain::testing::both_branches(inputs, |s| match TenantId::parse(s) {
            Ok(t) => {
                prop_assert!(!t.as_str().contains(['/', '\\', '.', '%']));
                prop_assert!(t.as_str().len() <= 63);
                Ok(true)
            }
            Err(_) => Ok(false),
        });
    }

    proptest! {
        #[test]
        fn accepts_every_valid_id(s in "[A-Za-z0-9][A-Za-z0-9_-]{0,62}") {
            prop_assert_eq!(TenantId::parse(&s).unwrap().as_str().to_owned(), s);
        }

    }
}
