//! One drill client: a tenant of its own, a loop of mixed operations on its own keys (uploads
//! of 1 KiB to 64 MiB, overwrites, downloads with and without Range, lists, presigned fetches,
//! deletes, resumable uploads), each answer checked against its ledger and classified.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Client, Response, StatusCode, header};
use sha2::{Digest, Sha256};

use crate::content::Content;
use crate::events::{Class, Clock, Event};
use crate::ledger::{Ledger, Version};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// Names per category and client: small enough that uploads overwrite and deletes hit.
const NAMES: usize = 8;
/// Resumable uploads send at most this much per PATCH (S3's minimum part size).
const TUS_CHUNK: u64 = 5 * MIB;

/// What the clients and the fault schedule share.
pub struct Shared {
    pub url: String,
    pub clock: Clock,
    pub stop: AtomicBool,
    /// Large uploads being sent right now (the drain fault waits for one).
    pub large_in_flight: AtomicUsize,
}

pub struct Worker {
    tenant: String,
    token: String,
    http: Client,
    rng: StdRng,
    large: bool,
    shared: Arc<Shared>,
    pub ledger: Ledger,
    pub events: Vec<Event>,
    /// Resumable uploads this client gave up on and could not terminate either.
    pub unfinished: Vec<String>,
}

pub fn client() -> Client {
    Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(180))
        .build()
        .expect("an HTTP client")
}

impl Worker {
    pub fn new(id: usize, token: String, shared: Arc<Shared>, large: bool) -> Self {
        Self {
            tenant: format!("drill{id}"),
            token,
            http: client(),
            rng: StdRng::seed_from_u64(id as u64 * 7919 + 1),
            large,
            shared,
            ledger: Ledger::default(),
            events: Vec::new(),
            unfinished: Vec::new(),
        }
    }

    pub async fn run(mut self) -> Self {
        while !self.shared.stop.load(Ordering::Relaxed) {
            if self.large {
                match self.rng.random_range(0..3) {
                    0 | 1 => self.upload_large().await,
                    _ => self.download().await,
                }
                continue;
            }
            match self.rng.random_range(0..100) {
                0..35 => self.upload().await,
                35..58 => self.download().await,
                58..68 => self.list().await,
                68..78 => self.presigned_fetch().await,
                78..88 => self.delete().await,
                _ => self.resumable().await,
            }
        }
        self
    }

    fn record(&mut self, op: &'static str, class: Class) {
        if let Class::Violation(what) = &class {
            eprintln!("drill: VIOLATION at {:.1}s: {what}", self.shared.clock.now());
        }
        self.events.push(Event { at: self.shared.clock.now(), op, class });
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.url)
    }

    fn content(&mut self, size: u64, png: bool) -> Content {
        Content { seed: self.rng.random(), size, png }
    }

    fn key(&self, category: &str, name: &str) -> String {
        format!("tenant-{}/{category}/{name}", self.tenant)
    }

    /// A key of this client's that may hold a file, if any.
    fn some_written_key(&mut self) -> Option<String> {
        let keys: Vec<String> = self
            .ledger
            .keys()
            .filter(|k| self.ledger.possible(k).iter().any(|v| matches!(v, Version::Present { .. })))
            .cloned()
            .collect();
        (!keys.is_empty()).then(|| keys[self.rng.random_range(0..keys.len())].clone())
    }

    async fn upload(&mut self) {
        let media = self.rng.random_bool(0.2);
        let size = if media {
            [KIB, 64 * KIB, MIB][self.rng.random_range(0..3)]
        } else {
            [KIB, 16 * KIB, 256 * KIB, MIB, 4 * MIB, 9 * MIB][self.rng.random_range(0..6)]
        };
        let (category, name) = if media {
            ("logos", format!("f{}.png", self.rng.random_range(0..NAMES)))
        } else {
            ("reports", format!("f{}.bin", self.rng.random_range(0..NAMES)))
        };
        let content = self.content(size, media);
        // Past one part without a length: the S3 store's multipart path.
        let chunked = size > 8 * MIB || self.rng.random_bool(0.2);
        self.put("upload", category, &name, content, chunked).await;
    }

    async fn upload_large(&mut self) {
        let size = self.rng.random_range(16..=64) * MIB;
        let name = format!("big{}.bin", self.rng.random_range(0..3));
        let content = self.content(size, false);
        self.shared.large_in_flight.fetch_add(1, Ordering::SeqCst);
        self.put("upload-large", "exports", &name, content, true).await;
        self.shared.large_in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    async fn put(&mut self, op: &'static str, category: &str, name: &str, content: Content, chunked: bool) {
        let key = self.key(category, name);
        let version = Version::Present { content, sha256: content.sha256() };
        let new = self.ledger.begin(&key, &version);
        let body = if chunked {
            reqwest::Body::wrap_stream(futures::stream::iter(content.blocks().map(Ok::<_, std::io::Error>)))
        } else {
            reqwest::Body::from(content.bytes())
        };
        let sent = self
            .http
            .post(self.url("/v1/files"))
            .query(&[("category", category), ("filename", name), ("overwrite", "true")])
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await;
        let class = match sent {
            Ok(res) if res.status() == StatusCode::CREATED => match res.json::<serde_json::Value>().await {
                Ok(file) if file["sha256"].as_str() == version_sha(&version) && file["key"] == key.as_str() => {
                    self.ledger.acknowledged(&key, version);
                    Class::Ok
                }
                Ok(file) => Class::Violation(format!("{op} {key}: acknowledged with {file}")),
                Err(_) => Class::Connection,
            },
            Ok(res) if res.status().is_client_error() && res.status() != StatusCode::TOO_MANY_REQUESTS => {
                self.ledger.refused(&key, &version, new);
                refusal(op, res).await
            }
            Ok(res) => refusal(op, res).await,
            Err(_) => Class::Connection,
        };
        self.record(op, class);
    }

    async fn download(&mut self) {
        let Some(key) = self.some_written_key() else { return self.upload().await };
        // A range of a file whose content is certain and small enough to regenerate.
        let range = match self.ledger.certain(&key) {
            Some(Version::Present { content, .. }) if content.size > 2 && content.size <= 8 * MIB => {
                let content = *content;
                self.rng.random_bool(0.4).then(|| {
                    let a = self.rng.random_range(0..content.size - 1);
                    (content, a, self.rng.random_range(a..content.size))
                })
            }
            _ => None,
        };
        let mut req = self.http.get(self.url(&format!("/v1/files/{key}"))).bearer_auth(&self.token);
        if let Some((_, a, b)) = range {
            req = req.header(header::RANGE, format!("bytes={a}-{b}"));
        }
        let class = match req.send().await {
            Ok(res) if res.status() == StatusCode::OK => self.check_body("download", &key, res).await,
            Ok(res) if res.status() == StatusCode::PARTIAL_CONTENT => match (range, res.bytes().await) {
                (Some((content, a, b)), Ok(got)) if got[..] == content.bytes()[a as usize..=b as usize] => Class::Ok,
                (_, Ok(_)) => Class::Violation(format!("range of {key}: wrong bytes")),
                (_, Err(_)) => Class::Connection,
            },
            Ok(res) if res.status() == StatusCode::NOT_FOUND => self.check_missing("download", &key),
            Ok(res) => refusal("download", res).await,
            Err(_) => Class::Connection,
        };
        self.record("download", class);
    }

    /// A 200's body against the ledger: its sha256 must be one a write of the key sent.
    async fn check_body(&self, op: &str, key: &str, res: Response) -> Class {
        let mut hash = Sha256::new();
        let mut body = res.bytes_stream();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => hash.update(&c),
                Err(_) => return Class::Connection,
            }
        }
        let sha = hex::encode(hash.finalize());
        if self.ledger.allows(key, Some(&sha)) {
            Class::Ok
        } else {
            Class::Violation(format!("{op} {key}: bytes of no version written (sha256 {sha})"))
        }
    }

    fn check_missing(&self, op: &str, key: &str) -> Class {
        if self.ledger.allows(key, None) {
            Class::Ok
        } else {
            Class::Violation(format!("{op} {key}: 404, but its upload was acknowledged (lost)"))
        }
    }

    async fn list(&mut self) {
        let category = if self.rng.random_bool(0.7) { "reports" } else { "logos" };
        let sent = self
            .http
            .get(self.url("/v1/files"))
            .query(&[("category", category), ("limit", "100")])
            .bearer_auth(&self.token)
            .send()
            .await;
        let class = match sent {
            Ok(res) if res.status() == StatusCode::OK => match res.json::<serde_json::Value>().await {
                Ok(page) => self.check_list(category, &page),
                Err(_) => Class::Connection,
            },
            Ok(res) => refusal("list", res).await,
            Err(_) => Class::Connection,
        };
        self.record("list", class);
    }

    fn check_list(&self, category: &str, page: &serde_json::Value) -> Class {
        let files = page["files"].as_array().cloned().unwrap_or_default();
        let listed: Vec<(&str, &str)> =
            files.iter().map(|f| (f["key"].as_str().unwrap_or(""), f["sha256"].as_str().unwrap_or(""))).collect();
        for (key, sha) in &listed {
            if !self.ledger.allows(key, Some(sha)) {
                return Class::Violation(format!("list shows {key} with sha256 {sha}, which no write left there"));
            }
        }
        let prefix = format!("tenant-{}/{category}/", self.tenant);
        for key in self.ledger.keys().filter(|k| k.starts_with(&prefix)) {
            if matches!(self.ledger.certain(key), Some(Version::Present { .. }))
                && !listed.iter().any(|(k, _)| k == key)
            {
                return Class::Violation(format!("list lacks {key}, whose upload was acknowledged"));
            }
        }
        Class::Ok
    }

    async fn presigned_fetch(&mut self) {
        let Some(key) = self.some_written_key() else { return self.upload().await };
        let sent = self
            .http
            .post(self.url("/v1/presign"))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({"key": key, "expires_in": 600}))
            .send()
            .await;
        let link = match sent {
            Ok(res) if res.status() == StatusCode::OK => match res.json::<serde_json::Value>().await {
                Ok(v) => v["url"].as_str().unwrap_or_default().to_string(),
                Err(_) => return self.record("presign", Class::Connection),
            },
            Ok(res) if res.status() == StatusCode::NOT_FOUND => {
                let class = self.check_missing("presign", &key);
                return self.record("presign", class);
            }
            Ok(res) => {
                let class = refusal("presign", res).await;
                return self.record("presign", class);
            }
            Err(_) => return self.record("presign", Class::Connection),
        };
        self.record("presign", Class::Ok);
        // The link names S3 (Garage, through its balancer) directly: no token.
        let class = match self.http.get(&link).send().await {
            Ok(res) if res.status() == StatusCode::OK => self.check_body("presigned fetch", &key, res).await,
            Ok(res) if res.status() == StatusCode::NOT_FOUND => self.check_missing("presigned fetch", &key),
            // Garage's own answer while a node is down: reported apart from coffer's.
            Ok(res) if res.status().is_server_error() => Class::Unavailable,
            Ok(res) => Class::Violation(format!("presigned fetch of {key}: {}", res.status())),
            Err(_) => Class::Connection,
        };
        self.record("presigned-fetch", class);
    }

    async fn delete(&mut self) {
        let key = if self.rng.random_bool(0.8) {
            match self.some_written_key() {
                Some(k) => k,
                None => return self.upload().await,
            }
        } else {
            let name = format!("f{}.bin", self.rng.random_range(0..NAMES));
            self.key("reports", &name)
        };
        let new = self.ledger.begin(&key, &Version::Absent);
        let sent = self.http.delete(self.url(&format!("/v1/files/{key}"))).bearer_auth(&self.token).send().await;
        let class = match sent {
            Ok(res) if res.status() == StatusCode::NO_CONTENT => {
                let was_present = self.ledger.possible(&key).iter().any(|v| matches!(v, Version::Present { .. }));
                self.ledger.acknowledged(&key, Version::Absent);
                if was_present {
                    Class::Ok
                } else {
                    Class::Violation(format!("delete {key}: 204 for a key whose delete was acknowledged (resurrected)"))
                }
            }
            Ok(res) if res.status() == StatusCode::NOT_FOUND => {
                // `begin` added Absent when it was not possible: then the 404 lost a file.
                let class = if new {
                    Class::Violation(format!("delete {key}: 404, but its upload was acknowledged (lost)"))
                } else {
                    Class::Ok
                };
                self.ledger.acknowledged(&key, Version::Absent);
                class
            }
            Ok(res) => refusal("delete", res).await,
            Err(_) => Class::Connection,
        };
        self.record("delete", class);
    }

    /// A tus upload in 5 MiB PATCHes, resumed from the server's offset after any failure.
    async fn resumable(&mut self) {
        let size = [KIB, MIB, 6 * MIB, 12 * MIB][self.rng.random_range(0..4)];
        let name = format!("f{}.bin", self.rng.random_range(0..NAMES));
        let key = self.key("reports", &name);
        let content = self.content(size, false);
        let version = Version::Present { content, sha256: content.sha256() };
        let new = self.ledger.begin(&key, &version);
        let metadata = format!(
            "filename {},category {},overwrite {}",
            B64.encode(&name),
            B64.encode("reports"),
            B64.encode("true")
        );
        let sent = self
            .http
            .post(self.url("/v1/uploads"))
            .bearer_auth(&self.token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", size.to_string())
            .header("Upload-Metadata", metadata)
            .send()
            .await;
        let location = match sent {
            Ok(res) if res.status() == StatusCode::CREATED => {
                let loc = res.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
                if loc.starts_with("http") { loc.to_string() } else { self.url(loc) }
            }
            other => {
                // No bytes were sent: whatever happened, this creation cannot complete a file.
                self.ledger.refused(&key, &version, new);
                let class = match other {
                    Ok(res) => refusal("tus-create", res).await,
                    Err(_) => Class::Connection,
                };
                return self.record("tus-create", class);
            }
        };
        self.record("tus-create", Class::Ok);
        let bytes = content.bytes();
        let mut offset = 0u64;
        // Long enough to outlast a dead instance's lock on the upload (COFFER_UPLOAD_LOCK_LEASE).
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < give_up {
            let end = (offset + TUS_CHUNK).min(size);
            let sent = self
                .http
                .patch(&location)
                .bearer_auth(&self.token)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Offset", offset.to_string())
                .header(header::CONTENT_TYPE, "application/offset+octet-stream")
                .body(bytes[offset as usize..end as usize].to_vec())
                .send()
                .await;
            match sent {
                Ok(res) if res.status() == StatusCode::NO_CONTENT => {
                    offset = upload_offset(&res).unwrap_or(offset);
                    if offset == size {
                        let class = self.finished(&key, &version, &res);
                        return self.record("tus-patch", class);
                    }
                    self.record("tus-patch", Class::Ok);
                    continue;
                }
                Ok(res) if res.status() == StatusCode::CONFLICT && upload_offset(&res).is_some() => {
                    offset = upload_offset(&res).unwrap_or(offset);
                    self.record("tus-patch", Class::Ok);
                    continue;
                }
                Ok(res) => {
                    let class = refusal("tus-patch", res).await;
                    let stop = matches!(class, Class::Violation(_));
                    self.record("tus-patch", class);
                    if stop {
                        break;
                    }
                }
                Err(_) => self.record("tus-patch", Class::Connection),
            }
            // Learn where the server stands (a dead instance's lease: 423 for a while).
            tokio::time::sleep(Duration::from_secs(1)).await;
            match self.head(&location).await {
                Some((at, Some(sha))) if at == size => {
                    let class = if Some(sha.as_str()) == version_sha(&version) {
                        self.ledger.acknowledged(&key, version.clone());
                        Class::Ok
                    } else {
                        Class::Violation(format!("tus {key}: completed with sha256 {sha}"))
                    };
                    return self.record("tus-head", class);
                }
                Some((at, _)) => offset = at,
                None => {}
            }
        }
        // Given up: terminate it now, before anything else touches the key. An upload whose
        // bytes had all arrived completes instead (its version stays possible in the ledger).
        self.terminate(&location).await;
    }

    /// DELETE of a resumable upload, retried while another writer's lock holds it.
    async fn terminate(&mut self, location: &str) {
        for _ in 0..30 {
            let sent =
                self.http.delete(location).bearer_auth(&self.token).header("Tus-Resumable", "1.0.0").send().await;
            match sent {
                Ok(r) if r.status().is_success() || r.status() == StatusCode::NOT_FOUND => return,
                Ok(r) if r.status() == StatusCode::LOCKED || r.status() == StatusCode::SERVICE_UNAVAILABLE => {}
                Ok(r) => {
                    let class = refusal("tus-terminate", r).await;
                    return self.record("tus-terminate", class);
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.unfinished.push(location.to_string());
    }

    fn finished(&mut self, key: &str, version: &Version, res: &Response) -> Class {
        let sha = res.headers().get("Coffer-File-Sha256").and_then(|v| v.to_str().ok());
        if sha == version_sha(version) {
            self.ledger.acknowledged(key, version.clone());
            Class::Ok
        } else {
            Class::Violation(format!("tus {key}: last PATCH answered sha256 {sha:?}"))
        }
    }

    /// HEAD of a resumable upload: its offset and, once completed, the file's sha256.
    async fn head(&mut self, location: &str) -> Option<(u64, Option<String>)> {
        let sent = self.http.head(location).bearer_auth(&self.token).header("Tus-Resumable", "1.0.0").send().await;
        match sent {
            Ok(res) if res.status() == StatusCode::OK => {
                let sha = res.headers().get("Coffer-File-Sha256").and_then(|v| v.to_str().ok()).map(str::to_string);
                self.record("tus-head", Class::Ok);
                upload_offset(&res).map(|o| (o, sha))
            }
            Ok(res) => {
                let class = refusal("tus-head", res).await;
                self.record("tus-head", class);
                None
            }
            Err(_) => {
                self.record("tus-head", Class::Connection);
                None
            }
        }
    }

    /// Resumable uploads this client could not terminate during the load (reported).
    pub fn unterminated(&self) -> &[String] {
        &self.unfinished
    }
}

fn version_sha(v: &Version) -> Option<&str> {
    match v {
        Version::Present { sha256, .. } => Some(sha256),
        Version::Absent => None,
    }
}

fn upload_offset(res: &Response) -> Option<u64> {
    res.headers().get("Upload-Offset")?.to_str().ok()?.parse().ok()
}

/// A non-success answer: 503 with Retry-After is what a client may get during a fault; 423 and
/// 429 are busy answers; anything else (a 500, a 503 without Retry-After, an unexpected 4xx) is
/// a violation, reported with its error code.
pub async fn refusal(op: &str, res: Response) -> Class {
    let status = res.status();
    let retry_after = res.headers().contains_key(header::RETRY_AFTER);
    match status {
        StatusCode::SERVICE_UNAVAILABLE if retry_after => Class::Unavailable,
        StatusCode::LOCKED | StatusCode::TOO_MANY_REQUESTS => Class::Busy,
        _ => {
            let body = res.text().await.unwrap_or_default();
            Class::Violation(format!("{op}: {status} {}", body.chars().take(300).collect::<String>()))
        }
    }
}
