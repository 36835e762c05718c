//! The optional configuration file (`COFFER_CONFIG`, TOML): category policies and per-tenant
//! quotas — the settings too structured for environment variables.
//!
//! ```toml
//! [categories.invoices]
//! bucket = "documents"
//! max_size = "50 MiB"
//! allowed_types = ["application/pdf"]
//!
//! [quotas.abc123]
//! bytes = "10 GiB"
//! files = 100000
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Categories;
use super::categories::RawPolicy;
use crate::catalog::Quota;
use crate::domain::TenantId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    categories: Option<BTreeMap<String, RawPolicy>>,
    #[serde(default)]
    quotas: BTreeMap<String, RawQuota>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    bytes: Option<bytesize::ByteSize>,
    files: Option<u64>,
}

/// What the file configures; absent parts keep their defaults.
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub categories: Option<Categories>,
    pub quotas: BTreeMap<TenantId, Quota>,
}

impl ConfigFile {
    /// Reads and parses `path`; a one-line message on any problem.
    pub fn load(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        Self::parse(&text).map_err(|e| format!("{path}: {e}"))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        let categories = raw.categories.map(Categories::from_raw).transpose()?;
        let mut quotas = BTreeMap::new();
        for (tenant, q) in raw.quotas {
            let id = TenantId::parse(&tenant).map_err(|e| format!("quotas.{tenant}: {e}"))?;
            quotas.insert(id, Quota { max_bytes: q.bytes.map(|b| b.as_u64()), max_files: q.files });
        }
        Ok(Self { categories, quotas })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse() {
        let f = ConfigFile::parse("[quotas.abc]\nbytes = \"1 KiB\"\nfiles = 3\n").unwrap();
        let q = f.quotas[&TenantId::parse("abc").unwrap()];
        assert_eq!(q, Quota { max_bytes: Some(1024), max_files: Some(3) });
        assert!(f.categories.is_none());
        assert!(ConfigFile::parse("[quotas.\"a/b\"]\nfiles = 1").is_err());
        assert!(ConfigFile::parse("[unknown]\nx = 1").is_err());
    }
}
