use chrono::{DateTime, Utc};
use serde::Serialize;

use super::CatalogError;
use crate::domain::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, CatalogError> {
        match raw {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            other => Err(CatalogError::Corrupt(format!("tenant status {other:?}"))),
        }
    }
}

/// A registered tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantInfo {
    #[serde(serialize_with = "crate::util::display")]
    pub tenant: TenantId,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
}

/// Parses `(tenant_id, status, created_at µs)` rows.
pub(super) fn tenant_infos(rows: Vec<(String, String, i64)>) -> Result<Vec<TenantInfo>, CatalogError> {
    rows.into_iter()
        .map(|(t, s, at)| {
            Ok(TenantInfo {
                tenant: TenantId::parse(&t).map_err(|e| CatalogError::Corrupt(e.to_string()))?,
                status: TenantStatus::parse(&s)?,
                created_at: super::query::from_micros(at)?,
            })
        })
        .collect()
}
