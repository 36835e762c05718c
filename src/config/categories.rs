//! Per-category policy: which bucket, how large, which content types.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::domain::Category;

/// The two buckets of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketKind {
    /// Application documents, reports, exports (lifecycle to archive tiers on S3).
    Documents,
    /// Logos, profile images (no lifecycle).
    Media,
}

impl fmt::Display for BucketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BucketKind::Documents => "documents",
            BucketKind::Media => "media",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryPolicy {
    pub bucket: BucketKind,
    /// Largest accepted object, in bytes.
    pub max_size: u64,
    /// Media-type patterns: `*/*`, `image/*` or an exact type.
    pub allowed_types: Vec<String>,
}

impl CategoryPolicy {
    /// Whether `content_type` (a bare `type/subtype`) matches one of the allowed patterns.
    pub fn allows(&self, content_type: &str) -> bool {
        let ct = content_type.to_ascii_lowercase();
        let top = ct.split('/').next().unwrap_or_default();
        self.allowed_types.iter().any(|p| p == "*/*" || *p == ct || p.strip_suffix("/*").is_some_and(|t| t == top))
    }
}

/// The configured categories, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categories(BTreeMap<Category, CategoryPolicy>);

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

impl Default for Categories {
    /// `applications`, `reports`, `exports` (documents, any type, 1 GiB) and `logos`,
    /// `profile-images` (media, images only, 5 MiB).
    fn default() -> Self {
        let doc = CategoryPolicy { bucket: BucketKind::Documents, max_size: GIB, allowed_types: vec!["*/*".into()] };
        let img =
            CategoryPolicy { bucket: BucketKind::Media, max_size: 5 * MIB, allowed_types: vec!["image/*".into()] };
        let mut map = BTreeMap::new();
        for name in ["applications", "reports", "exports"] {
            map.insert(Category::parse(name).expect("valid"), doc.clone());
        }
        for name in ["logos", "profile-images"] {
            map.insert(Category::parse(name).expect("valid"), img.clone());
        }
        Self(map)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    bucket: BucketKind,
    max_size: bytesize::ByteSize,
    #[serde(default = "any_type")]
    allowed_types: Vec<String>,
}

fn any_type() -> Vec<String> {
    vec!["*/*".into()]
}

impl Categories {
    /// Builds categories from the `[categories.NAME]` tables of the configuration file; they
    /// replace the defaults. Returns a one-line message on any problem.
    pub(super) fn from_raw(raw: BTreeMap<String, RawPolicy>) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for (name, raw) in raw {
            let cat = Category::parse(&name).map_err(|e| format!("category {name:?}: {e}"))?;
            for t in &raw.allowed_types {
                let ok =
                    t == "*/*" || t.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && a != "*");
                if !ok {
                    return Err(format!("category {name:?}: bad media-type pattern {t:?}"));
                }
            }
            let policy = CategoryPolicy {
                bucket: raw.bucket,
                max_size: raw.max_size.as_u64(),
                allowed_types: raw.allowed_types.iter().map(|t| t.to_ascii_lowercase()).collect(),
            };
            map.insert(cat, policy);
        }
        if map.is_empty() {
            return Err("no categories configured".into());
        }
        Ok(Self(map))
    }

    pub fn get(&self, category: &Category) -> Option<&CategoryPolicy> {
        self.0.get(category)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Category, &CategoryPolicy)> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Categories::default();
        let logos = c.get(&Category::parse("logos").unwrap()).unwrap();
        assert_eq!(logos.bucket, BucketKind::Media);
        assert_eq!(logos.max_size, 5 * MIB);
        assert!(logos.allows("image/png"));
        assert!(!logos.allows("application/pdf"));
        let apps = c.get(&Category::parse("applications").unwrap()).unwrap();
        assert!(apps.allows("application/x-msdownload"));
        assert!(c.get(&Category::parse("other").unwrap()).is_none());
    }

    fn from_toml(text: &str) -> Result<Categories, String> {
        super::super::file::ConfigFile::parse(text).map(|f| f.categories.unwrap())
    }

    #[test]
    fn from_toml_file() {
        let c = from_toml(
            "[categories.invoices]\nbucket = \"documents\"\nmax_size = \"10 MiB\"\nallowed_types = [\"application/pdf\"]\n",
        )
        .unwrap();
        let p = c.get(&Category::parse("invoices").unwrap()).unwrap();
        assert_eq!(p.max_size, 10 * MIB);
        assert!(p.allows("application/pdf"));
        assert!(!p.allows("image/png"));
        assert!(from_toml("[categories.Bad]\nbucket=\"media\"\nmax_size=\"1 MiB\"").is_err());
        assert!(from_toml("[categories.x]\nbucket=\"tape\"\nmax_size=\"1 MiB\"").is_err());
    }
}
