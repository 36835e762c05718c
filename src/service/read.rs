use std::ops::RangeInclusive;

use super::{Admitted, ServiceError, StorageService};
use crate::blob::{BlobError, ByteStream};
use crate::catalog::FileRecord;
use crate::domain::{ObjectKey, TenantId};

impl StorageService {
    /// The catalog record of `key`. `TenantMismatch` when the key is another tenant's
    /// (whether or not it exists), `UnknownCategory` for a category that is not configured,
    /// `NotFound` when absent.
    #[tracing::instrument(skip(self, who, key), fields(tenant = %who.tenant(), key = %key))]
    pub async fn stat(&self, who: &Admitted, key: &ObjectKey) -> Result<FileRecord, ServiceError> {
        Self::authorize(who.tenant(), key)?;
        self.policy(key.category())?;
        self.inner.catalog.get(key).await?.ok_or(ServiceError::NotFound)
    }

    /// Streams the bytes of `record` (from [`Self::stat`]), optionally an inclusive range
    /// already validated against `record.size`. `Corrupt` when the store holds another size.
    pub async fn read(
        &self,
        record: &FileRecord,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ByteStream, ServiceError> {
        let ranged = range.is_some();
        match self.inner.blobs.get(&record.bucket, &record.blob, range).await {
            // Bytes of another length than the catalog recorded (truncated, appended to): refused
            // before the first byte. (A ranged S3 answer without a total length says nothing.)
            Ok(read) if read.size != record.size && !(ranged && read.size == 0) => {
                tracing::error!(key = %record.key, blob = %record.blob, stored = read.size, recorded = record.size,
                    "stored object has another size than the catalog recorded; refusing to serve it");
                Err(ServiceError::Corrupt(BlobError::Corrupt(format!(
                    "{}: {} bytes stored, {} recorded",
                    record.blob, read.size, record.size
                ))))
            }
            Ok(read) => Ok(read.body),
            Err(BlobError::NotFound) => {
                tracing::error!(key = %record.key, blob = %record.blob, "catalog row without bytes");
                Err(ServiceError::NotFound)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The seed's `download_file`: the record and a stream of the whole file, for `tenant`
    /// (admitted first: `TenantInactive` when suspended).
    pub async fn download_file(
        &self,
        tenant: &TenantId,
        key: &ObjectKey,
    ) -> Result<(FileRecord, ByteStream), ServiceError> {
        let who = self.admit_tenant(tenant).await?;
        let record = self.stat(&who, key).await?;
        let body = self.read(&record, None).await?;
        Ok((record, body))
    }
}
