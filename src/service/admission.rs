//! Admission: who may act, decided by the service for every entry point.
//!
//! A front end (HTTP, the library, the CLI, future tus and S3-compatible ones) verifies a
//! credential into a [`Caller`] and hands it to [`StorageService::admit`]; only that mints an
//! [`Admitted`], and every tenant operation takes one. So tenant suspension, registration and
//! read-only scopes hold by construction: a new front end cannot forget them.

use super::{ServiceError, StorageService};
use crate::auth::Caller;
use crate::domain::{BlobVersion, ObjectKey, TenantId};

/// A caller the service has admitted: its tenant is active (registered on first use in open
/// mode), and it may write unless read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    tenant: TenantId,
    write: bool,
}

impl Admitted {
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn can_write(&self) -> bool {
        self.write
    }

    /// `ReadOnly` unless the caller may write.
    pub(super) fn require_write(&self) -> Result<(), ServiceError> {
        if self.write { Ok(()) } else { Err(ServiceError::ReadOnly) }
    }
}

impl StorageService {
    /// Admits `caller`, or returns `TenantInactive` (suspended, or unknown in registered mode).
    pub async fn admit(&self, caller: &Caller) -> Result<Admitted, ServiceError> {
        self.check_tenant(&caller.tenant).await?;
        Ok(Admitted { tenant: caller.tenant.clone(), write: !caller.read_only })
    }

    /// Admits the holder of a presigned link for `method key` (the request's raw query): read
    /// only, as the key's tenant, once the signature verifies and while the tenant is active.
    /// Returns the stored version the link is bound to.
    pub async fn admit_link(
        &self,
        method: &str,
        key: &ObjectKey,
        raw_query: &str,
    ) -> Result<(Admitted, BlobVersion), ServiceError> {
        let version = self.verify_presigned(method, key, raw_query)?;
        let caller = Caller { tenant: key.tenant().clone(), read_only: true };
        Ok((self.admit(&caller).await?, version))
    }

    /// The library's own callers (the seed-shaped methods): `tenant` as a writer, admitted like
    /// any other.
    pub(super) async fn admit_tenant(&self, tenant: &TenantId) -> Result<Admitted, ServiceError> {
        self.admit(&Caller { tenant: tenant.clone(), read_only: false }).await
    }
}
