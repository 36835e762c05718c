use std::fmt;

use super::DomainError;

/// A category name such as `applications` or `profile-images`: 1-63 characters of
/// `[a-z0-9-]`, starting with a letter or digit. Whether a category is *configured* is the
/// service's decision; this type only guarantees the name is safe inside a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(String);

impl Category {
    /// Returns `InvalidCategory` when `raw` is empty, longer than 63 bytes, or contains
    /// anything but lowercase ASCII letters, digits and `-` (or starts with `-`).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let err = DomainError::InvalidCategory;
        let first = raw.bytes().next().ok_or(err("must not be empty"))?;
        if raw.len() > 63 {
            return Err(err("must be at most 63 characters"));
        }
        if first == b'-' {
            return Err(err("must start with a letter or digit"));
        }
        if !raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(err("may contain only lowercase letters, digits and '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_default_categories() {
        for ok in ["applications", "reports", "exports", "logos", "profile-images"] {
            assert!(Category::parse(ok).is_ok());
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "-x", "Logos", "a/b", "..", "a b", "a_b", &"a".repeat(64)] {
            assert!(Category::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn accepted_names_are_path_safe() {
        let inputs = prop_oneof!["\\PC{0,70}", "[a-z0-9-]{0,66}", "[a-z0-9][a-zA-Z0-9/._ %-]{0,12}"];
        crate::domain::testing::both_branches(inputs, |s| match Category::parse(s) {
            Ok(c) => {
                prop_assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                prop_assert!(c.as_str().len() <= 63 && !c.as_str().starts_with('-'));
                Ok(true)
            }
            Err(_) => Ok(false),
        });
    }

    proptest! {
        #[test]
        fn accepts_valid(s in "[a-z0-9][a-z0-9-]{0,62}") {
            prop_assert!(Category::parse(&s).is_ok());
        }
    }
}
