//! Tenant admission (open or registered mode, suspension) and usage reports.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ServiceError, StorageService};
use crate::catalog::{CategoryUsage, TenantStatus};
use crate::config::TenantsMode;
use crate::domain::TenantId;

/// How long a tenant's status is trusted before the catalog is asked again.
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(5);

/// Recently seen tenant statuses, so that admission costs no query per request.
#[derive(Default)]
pub struct TenantCache(Mutex<HashMap<TenantId, (Option<TenantStatus>, Instant)>>);

impl TenantCache {
    fn get(&self, tenant: &TenantId) -> Option<Option<TenantStatus>> {
        let map = self.0.lock().expect("tenant cache");
        map.get(tenant).filter(|(_, at)| at.elapsed() < TENANT_CACHE_TTL).map(|(s, _)| *s)
    }

    pub(super) fn forget(&self, tenant: &TenantId) {
        self.0.lock().expect("tenant cache").remove(tenant);
    }

    fn put(&self, tenant: &TenantId, status: Option<TenantStatus>) {
        let mut map = self.0.lock().expect("tenant cache");
        if map.len() > 100_000 {
            map.retain(|_, (_, at)| at.elapsed() < TENANT_CACHE_TTL);
        }
        map.insert(tenant.clone(), (status, Instant::now()));
    }
}

/// A tenant's usage, per category and in total, with its quota.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    #[serde(serialize_with = "crate::util::display")]
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    pub files: u64,
    pub bytes: u64,
    pub categories: Vec<CategoryUsage>,
    pub quota: QuotaView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuotaView {
    pub bytes: Option<u64>,
    pub files: Option<u64>,
}

impl StorageService {
    /// Admits `tenant` or returns `TenantInactive`: suspended tenants are always refused;
    /// unknown tenants are registered on first use in open mode and refused in registered mode.
    /// Answers from a short-lived cache.
    pub(super) async fn check_tenant(&self, tenant: &TenantId) -> Result<(), ServiceError> {
        let status = match self.inner.tenant_cache.get(tenant) {
            Some(status) => status,
            None => {
                let mut status = self.inner.catalog.tenant_status(tenant).await?;
                if status.is_none() && self.inner.tenants_mode == TenantsMode::Open {
                    self.inner.catalog.add_tenant(tenant).await?;
                    status = self.inner.catalog.tenant_status(tenant).await?;
                }
                self.inner.tenant_cache.put(tenant, status);
                status
            }
        };
        match status {
            Some(TenantStatus::Active) => Ok(()),
            _ => Err(ServiceError::TenantInactive),
        }
    }

    /// `tenant`'s usage, kept exact by the catalog in the transactions that change files.
    pub async fn usage(&self, who: &super::Admitted) -> Result<UsageReport, ServiceError> {
        let tenant = who.tenant();
        let categories = self.inner.catalog.usage(tenant).await?;
        let quota = self.quota(tenant);
        Ok(UsageReport {
            tenant_id: tenant.clone(),
            files: categories.iter().map(|c| c.files).sum(),
            bytes: categories.iter().map(|c| c.bytes).sum(),
            categories,
            quota: QuotaView { bytes: quota.max_bytes, files: quota.max_files },
        })
    }
}
