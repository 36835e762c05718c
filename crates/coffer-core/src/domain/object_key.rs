use std::fmt;

use super::{Category, DomainError, Filename, TenantId};

/// The logical key of a stored file: `tenant-{tenant_id}/{category}/{filename}`.
///
/// This type is the only code that formats or parses that string; the tenant of a key is
/// known only through [`ObjectKey::tenant`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    tenant: TenantId,
    category: Category,
    filename: Filename,
}

pub(crate) const TENANT_PREFIX: &str = "tenant-";

impl ObjectKey {
    pub fn new(tenant: TenantId, category: Category, filename: Filename) -> Self {
        Self { tenant, category, filename }
    }

    /// Parses `tenant-{tenant_id}/{category}/{filename}`. Returns `InvalidKey` when the shape
    /// is wrong, or the error of the part that is invalid. The filename is NFC-normalised.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let rest = raw.strip_prefix(TENANT_PREFIX).ok_or(DomainError::InvalidKey("must start with 'tenant-'"))?;
        let mut parts = rest.splitn(3, '/');
        let (Some(tenant), Some(category), Some(filename)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(DomainError::InvalidKey("must be tenant-{tenant_id}/{category}/{filename}"));
        };
        Ok(Self {
            tenant: TenantId::parse(tenant)?,
            category: Category::parse(category)?,
            filename: Filename::parse(filename)?,
        })
    }

    /// The prefix every key of `tenant` starts with: `tenant-{id}/`.
    pub fn tenant_prefix(tenant: &TenantId) -> String {
        format!("{TENANT_PREFIX}{tenant}/")
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn category(&self) -> &Category {
        &self.category
    }

    pub fn filename(&self) -> &Filename {
        &self.filename
    }

    /// `tenant-{id}/{category}`, the directory-like prefix the key lives under.
    pub fn prefix(&self) -> String {
        format!("{TENANT_PREFIX}{}/{}", self.tenant, self.category)
    }

    /// What follows `tenant-{id}/{category}/` in `raw`, if `raw` starts so (no allocation:
    /// a listing checks every row's blob key this way).
    pub(crate) fn strip_prefix_of<'r>(&self, raw: &'r str) -> Option<&'r str> {
        raw.strip_prefix(TENANT_PREFIX)?
            .strip_prefix(self.tenant.as_str())?
            .strip_prefix('/')?
            .strip_prefix(self.category.as_str())?
            .strip_prefix('/')
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TENANT_PREFIX}{}/{}/{}", self.tenant, self.category, self.filename)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_the_seed_examples() {
        for raw in [
            "tenant-abc123/applications/executive-summary.pdf",
            "tenant-abc123/logos/company-logo.png",
            "tenant-abc123/reports/carbon-audit-2024.xlsx",
        ] {
            let key = ObjectKey::parse(raw).unwrap();
            assert_eq!(key.to_string(), raw);
            assert_eq!(key.tenant().as_str(), "abc123");
        }
    }

    #[test]
    fn rejects_malformed_keys() {
        for bad in [
            "",
            "abc123/applications/a.pdf",
            "tenant-/applications/a.pdf",
            "tenant-abc/a.pdf",
            "tenant-abc/applications/",
            "tenant-abc/applications/x/y.pdf",
            "tenant-abc/../a.pdf",
            "tenant-abc/applications/..",
            "tenant-a%2fb/applications/a.pdf",
            "tenant-abc//a.pdf",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parsed_tenant_is_the_literal_prefix() {
        let inputs = prop_oneof![
            "tenant-\\PC{0,80}",
            "tenant-[A-Za-z0-9_-]{1,8}/[a-z0-9-]{1,8}/[A-Za-z0-9 ._/%-]{1,16}",
            "tenant-[A-Za-z0-9_./-]{1,8}/[a-z/-]{1,6}/[a-z]{1,6}",
        ];
        crate::domain::testing::both_branches(inputs, |s| match ObjectKey::parse(s) {
            Ok(key) => {
                let prefix = ObjectKey::tenant_prefix(key.tenant());
                prop_assert!(s.starts_with(&prefix));
                prop_assert_eq!(key.to_string().matches('/').count(), 2);
                Ok(true)
            }
            Err(_) => Ok(false),
        });
    }

    proptest! {
        #[test]
        fn render_then_parse_is_identity(
            t in "[A-Za-z0-9][A-Za-z0-9_-]{0,20}",
            c in "[a-z0-9][a-z0-9-]{0,20}",
            f in "[A-Za-z0-9][A-Za-z0-9 ._-]{0,40}[A-Za-z0-9]",
        ) {
            let key = ObjectKey::new(TenantId::parse(&t).unwrap(), Category::parse(&c).unwrap(), Filename::parse(&f).unwrap());
            let again = ObjectKey::parse(&key.to_string()).unwrap();
            prop_assert_eq!(&again, &key);
            prop_assert_eq!(again.tenant().as_str(), t.as_str());
        }

    }
}
