//! A tenant's files as one tar stream (`GET /v1/export`, `coffer tenant export`).
//!
//! Tar rather than zip: a tar entry is a header and the bytes, with nothing to write at the end
//! but the manifest, so the archive streams file by file in bounded memory whatever the count
//! (a zip's central directory grows with every entry and must wait for the end), sizes beyond
//! 4 GiB and names up to 255 bytes need no zip64 extension (GNU long-name and size fields), and
//! every system reads it with `tar -x`.
//!
//! Entries are named by key (`tenant-{id}/{category}/{filename}`), in file-name order, and the
//! last entry is `manifest.jsonl`: one line per file with its key, size, sha256, content type,
//! upload time and whether it is in the archive (`included`, else `reason`). Each file's bytes
//! are hashed as they stream and checked against the catalog's size and sha256; on a mismatch
//! the stream fails (the client sees an incomplete archive) rather than hand out wrong bytes.
//! The manifest is spooled to an unnamed temporary file, so memory stays bounded for any count.

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{ServiceError, StorageService};
use crate::blob::{BlobError, ByteStream};
use crate::catalog::{FileRecord, ListQuery, SortOrder};
use crate::domain::{Category, TenantId};

/// Name of the manifest entry, always the archive's last.
pub const MANIFEST: &str = "manifest.jsonl";
const PAGE: u32 = 500;

/// One line of the manifest.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ManifestEntry {
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub content_type: String,
    pub created_at: String,
    /// Whether the file's bytes are in the archive (verified against `size` and `sha256`).
    pub included: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

type Chunk = std::io::Result<Bytes>;

struct Writer {
    tx: mpsc::Sender<Chunk>,
    tar: tar::Builder<Vec<u8>>,
}

impl Writer {
    async fn send(&self, bytes: Bytes) -> Result<(), Stop> {
        self.tx.send(Ok(bytes)).await.map_err(|_| Stop::ClientGone)
    }

    /// The tar header (and long-name entry, when needed) of a file of `size` bytes.
    async fn header(&mut self, path: &str, size: u64, mtime: i64) -> Result<(), Stop> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(mtime.max(0) as u64);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, path, std::io::empty()).map_err(Stop::Io)?;
        let bytes = std::mem::take(self.tar.get_mut());
        self.send(Bytes::from(bytes)).await
    }

    async fn pad(&self, size: u64) -> Result<(), Stop> {
        let rest = (512 - size % 512) % 512;
        if rest > 0 { self.send(Bytes::from(vec![0u8; rest as usize])).await } else { Ok(()) }
    }
}

/// Why the export stopped early.
enum Stop {
    ClientGone,
    Io(std::io::Error),
}

impl From<ServiceError> for Stop {
    fn from(e: ServiceError) -> Self {
        Stop::Io(std::io::Error::other(e.to_string()))
    }
}

impl StorageService {
    /// The admitted caller's files as a tar stream (`GET /v1/export`); `UnknownCategory` for a
    /// category that is not configured.
    pub fn export_files(&self, who: &super::Admitted, category: Option<Category>) -> Result<ByteStream, ServiceError> {
        if let Some(c) = &category {
            self.policy(c)?;
        }
        Ok(self.export(who.tenant().clone(), category))
    }

    /// Streams `tenant`'s files (only `category`'s, when given) as a tar archive ending with
    /// the manifest. The caller has admitted the tenant (read scope).
    pub fn export(&self, tenant: TenantId, category: Option<Category>) -> ByteStream {
        let (tx, rx) = mpsc::channel::<Chunk>(4);
        let service = self.clone();
        tokio::spawn(async move {
            let mut w = Writer { tx: tx.clone(), tar: tar::Builder::new(Vec::new()) };
            match service.write_export(&mut w, &tenant, category).await {
                Ok(()) => {}
                Err(Stop::ClientGone) => tracing::info!(tenant = %tenant, "export abandoned by the client"),
                Err(Stop::Io(e)) => {
                    tracing::error!(tenant = %tenant, error = %e, "export failed; the archive was cut short");
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }))
    }

    async fn write_export(&self, w: &mut Writer, tenant: &TenantId, category: Option<Category>) -> Result<(), Stop> {
        let spool = tempfile::tempfile().map_err(Stop::Io)?;
        let mut manifest = tokio::io::BufWriter::new(tokio::fs::File::from_std(spool));
        let mut query = ListQuery { category, prefix: None, sort: SortOrder::Name, limit: PAGE, cursor: None };
        loop {
            let page = self.inner.catalog.list(tenant, &query).await.map_err(ServiceError::from)?;
            for record in page.files {
                let entry = self.export_file(w, record).await?;
                let mut line = serde_json::to_vec(&entry).expect("serialisable");
                line.push(b'\n');
                manifest.write_all(&line).await.map_err(Stop::Io)?;
            }
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
        manifest.flush().await.map_err(Stop::Io)?;
        let mut file = manifest.into_inner();
        let len = file.seek(std::io::SeekFrom::End(0)).await.map_err(Stop::Io)?;
        file.seek(std::io::SeekFrom::Start(0)).await.map_err(Stop::Io)?;
        w.header(MANIFEST, len, chrono::Utc::now().timestamp()).await?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).await.map_err(Stop::Io)?;
            if n == 0 {
                break;
            }
            w.send(Bytes::copy_from_slice(&buf[..n])).await?;
        }
        w.pad(len).await?;
        let tar = std::mem::replace(&mut w.tar, tar::Builder::new(Vec::new()));
        let end = tar.into_inner().map_err(Stop::Io)?;
        w.send(Bytes::from(end)).await
    }

    /// Writes one file's entry (when its bytes can be had) and returns its manifest line.
    async fn export_file(&self, w: &mut Writer, mut record: FileRecord) -> Result<ManifestEntry, Stop> {
        let mut retried = false;
        let read = loop {
            match self.inner.blobs.get(&record.bucket, &record.blob, None).await {
                Ok(read) => break Ok(read),
                // Replaced or deleted since the page was read: follow the row once.
                Err(BlobError::NotFound) if !retried => {
                    retried = true;
                    match self.inner.catalog.get(&record.key).await.map_err(ServiceError::from)? {
                        Some(now) => record = now,
                        None => break Err("deleted during the export".to_owned()),
                    }
                }
                Err(BlobError::NotFound) => break Err("its bytes are missing (see coffer reconcile)".to_owned()),
                Err(BlobError::Archived) => {
                    break Err("archived (GLACIER or DEEP_ARCHIVE): restore it first (POST /v1/restore)".to_owned());
                }
                Err(e) => return Err(ServiceError::from(e).into()),
            }
        };
        let mut entry = ManifestEntry {
            key: record.key.to_string(),
            size: record.size,
            sha256: record.sha256.clone(),
            content_type: record.content_type.clone(),
            created_at: record.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            included: false,
            reason: None,
        };
        let mut body = match read {
            Ok(read) => read.body,
            Err(reason) => {
                entry.reason = Some(reason);
                return Ok(entry);
            }
        };
        w.header(&entry.key, record.size, record.created_at.timestamp()).await?;
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        let mut sent = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Stop::Io)?;
            sent += chunk.len() as u64;
            if sent > record.size {
                break;
            }
            hasher.update(&chunk);
            w.send(chunk).await?;
        }
        let sha = hex::encode(hasher.finish());
        if sent != record.size || sha != record.sha256 {
            return Err(Stop::Io(std::io::Error::other(format!(
                "{}: stored bytes do not match the catalog (size {sent} vs {}, sha256 {sha} vs {})",
                record.key, record.size, record.sha256
            ))));
        }
        w.pad(record.size).await?;
        entry.included = true;
        Ok(entry)
    }
}
