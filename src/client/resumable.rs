//! `coffer upload` of a large file: a tus upload in chunks, whose URL is kept in a state file
//! (`$COFFER_STATE_DIR`, else `$XDG_STATE_HOME/coffer`, else `~/.local/state/coffer`) until it
//! completes, so that running the same command again after an interruption — a dropped
//! connection, Ctrl-C, a reboot — continues where the server's offset says. Within one run, a
//! failed chunk is retried from the server's offset a few times with backoff. Each chunk is
//! sent before the previous one is answered, and waits its turn on the server.
//!
//! The upload is created before any byte is sent, so a refusal (unknown category, too large,
//! over quota, an existing file) always reaches the user as the server's answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::TryStreamExt;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::task::AbortOnDropHandle;

use super::{ClientError, RemoteClient};

/// Failed chunks retried per run before giving up (the state file keeps the upload).
const RETRIES: u32 = 5;

/// How `coffer upload` sends large files.
#[derive(Debug, Clone, Copy)]
pub struct Resumable {
    /// Files larger than this go through tus.
    pub over: u64,
    /// Bytes per PATCH.
    pub chunk: u64,
}

impl Default for Resumable {
    fn default() -> Self {
        Self { over: 64 * 1024 * 1024, chunk: 32 * 1024 * 1024 }
    }
}

/// One upload in progress, as the state file remembers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    upload: String,
    size: u64,
    modified: i64,
}

/// The state file: uploads in progress by (server, category, absolute path).
pub fn state_file() -> PathBuf {
    let dir = std::env::var_os("COFFER_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir)
            .join("coffer")
    });
    dir.join("uploads.json")
}

fn load() -> BTreeMap<String, Entry> {
    std::fs::read(state_file()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn store(map: &BTreeMap<String, Entry>) -> Result<(), ClientError> {
    let path = state_file();
    let dir = path.parent().expect("state file has a directory");
    std::fs::create_dir_all(dir).map_err(|e| ClientError::Local(format!("{}: {e}", dir.display())))?;
    let temp = path.with_extension("json.new");
    std::fs::write(&temp, serde_json::to_vec_pretty(map).expect("plain data"))
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|e| ClientError::Local(format!("{}: {e}", path.display())))
}

fn remember(id: &str, entry: Option<Entry>) -> Result<(), ClientError> {
    let mut map = load();
    match entry {
        Some(e) => map.insert(id.to_owned(), e),
        None => map.remove(id),
    };
    store(&map)
}

impl RemoteClient {
    /// Uploads `path` (`name` under `category`) with tus, resuming an upload an earlier run
    /// left; returns the file's metadata.
    pub async fn upload_resumable(
        &self,
        path: &Path,
        name: &str,
        category: &str,
        overwrite: bool,
        how: Resumable,
        progress: Option<ProgressBar>,
    ) -> Result<Value, ClientError> {
        let local = |e: std::io::Error| ClientError::Local(format!("{}: {e}", path.display()));
        let absolute = std::fs::canonicalize(path).map_err(local)?;
        let meta = std::fs::metadata(&absolute).map_err(local)?;
        let size = meta.len();
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let id = format!("{} {category} {}", self.base, absolute.display());
        if let Some(bar) = &progress {
            bar.set_length(size);
        }
        let known = load().remove(&id).filter(|e| e.size == size && e.modified == modified);
        let (upload, mut offset) = match known {
            Some(e) => match self.offset_of(&e.upload).await? {
                Some(offset) => {
                    eprintln!("coffer: {}: resuming at {offset} of {size} bytes", path.display());
                    (e.upload, offset)
                }
                None => (self.create_upload(name, category, overwrite, size).await?, 0),
            },
            None => (self.create_upload(name, category, overwrite, size).await?, 0),
        };
        remember(&id, Some(Entry { upload: upload.clone(), size, modified }))?;
        let mut failures = 0;
        // Each chunk's request goes out while the previous one is still running: the server
        // lets it wait its turn (`service/resumable/queue.rs`) and starts on it the moment the
        // previous append is done, so no round trip separates two appends. When one sent ahead
        // fails (a balancer sent it to another instance, which refuses it as busy), it is sent
        // again after the answer, and so is every later chunk of this upload.
        let mut ahead = true;
        let mut next: Option<Sent> = None;
        let answer = loop {
            let len = (size - offset).min(how.chunk);
            let mut current = match next.take() {
                Some(sent) if sent.offset == offset => sent,
                _ => {
                    if let Some(bar) = &progress {
                        bar.set_position(offset);
                    }
                    self.send_patch(&upload, &absolute, offset, len, progress.as_ref(), false)
                }
            };
            let end = offset + len;
            if ahead && end < size {
                // Once this one's body is on its way (so that it reaches the server first).
                let _ = (&mut current.started).await;
                next = Some(self.send_patch(
                    &upload,
                    &absolute,
                    end,
                    (size - end).min(how.chunk),
                    progress.as_ref(),
                    true,
                ));
            }
            let Sent { ahead: was_ahead, task, .. } = current;
            let result = task.await.unwrap_or_else(|e| Err(ClientError::Local(format!("the request failed: {e}"))));
            if result.is_err() {
                // Sent for an offset this answer may not reach.
                next = None;
            }
            match result {
                Ok(res) => {
                    failures = 0;
                    offset = header_u64(&res, "upload-offset").unwrap_or(offset);
                    if offset == size {
                        break res;
                    }
                }
                Err(_) if was_ahead => ahead = false,
                Err(e @ ClientError::Server { status, .. }) if status != 409 && status != 423 && status < 500 => {
                    if status == 404 {
                        remember(&id, None)?;
                    }
                    return Err(e);
                }
                Err(_) if super::read_ahead::changed(&absolute, &meta) => {
                    remember(&id, None)?;
                    self.terminate(&upload).await;
                    return Err(ClientError::Local(
                        "the file changed while it was being uploaded; run the command again to upload it anew".into(),
                    ));
                }
                Err(e) => {
                    failures += 1;
                    if failures > RETRIES {
                        return Err(ClientError::Local(format!(
                            "{e}; run the same command again to continue from where the server is"
                        )));
                    }
                    let wait = Duration::from_millis(250 << failures.min(5));
                    eprintln!(
                        "coffer: {}: {e}; retrying from the server's offset in {:.1} s ({failures} of {RETRIES})",
                        path.display(),
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                    match self.offset_of(&upload).await {
                        Ok(Some(at)) => offset = at,
                        Ok(None) => {
                            remember(&id, None)?;
                            return Err(ClientError::Local(
                                "the upload expired on the server; run the command again".into(),
                            ));
                        }
                        Err(_) => {}
                    }
                }
            }
        };
        remember(&id, None)?;
        // The file, as a plain upload would have answered it.
        let key = answer
            .headers()
            .get("coffer-file-key")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Local("the server did not name the uploaded file".into()))?;
        self.metadata(key).await
    }

    async fn create_upload(
        &self,
        name: &str,
        category: &str,
        overwrite: bool,
        size: u64,
    ) -> Result<String, ClientError> {
        let mut metadata = format!("filename {},category {}", B64.encode(name), B64.encode(category));
        if overwrite {
            metadata.push_str(&format!(",overwrite {}", B64.encode("true")));
        }
        let res = self
            .http
            .post(self.url("/v1/uploads")?)
            .bearer_auth(&self.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", size)
            .header("upload-metadata", metadata)
            .send()
            .await;
        let res = Self::check(res).await?;
        let location = res
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Local("the server answered without the upload's location".into()))?;
        Ok(self.url(location)?.to_string())
    }

    /// Ends `upload` on the server (tus termination), releasing what it held; best effort. An
    /// append that just failed may still hold the upload's lock for a moment (423): tried again
    /// for up to two seconds.
    async fn terminate(&self, upload: &str) {
        for _ in 0..10 {
            let res = self.http.delete(upload).bearer_auth(&self.token).header("tus-resumable", "1.0.0").send().await;
            match res {
                Ok(res) if res.status().as_u16() == 423 => tokio::time::sleep(Duration::from_millis(200)).await,
                _ => return,
            }
        }
    }

    /// The server's offset of `upload`; `None` when it no longer knows it (expired, or made for
    /// another tenant).
    async fn offset_of(&self, upload: &str) -> Result<Option<u64>, ClientError> {
        let res = self.http.head(upload).bearer_auth(&self.token).header("tus-resumable", "1.0.0").send().await;
        let res = res.map_err(|e| ClientError::Local(format!("cannot reach the server: {e}")))?;
        match res.status().as_u16() {
            200 => Ok(header_u64(&res, "upload-offset")),
            404 | 410 => Ok(None),
            status => Err(ClientError::Server { status, code: "http-error".into(), message: format!("HEAD {status}") }),
        }
    }

    /// Sends `len` bytes of `path` from `offset` as one `PATCH`, on a task of its own.
    fn send_patch(
        &self,
        upload: &str,
        path: &Path,
        offset: u64,
        len: u64,
        progress: Option<&ProgressBar>,
        ahead: bool,
    ) -> Sent {
        let (http, token, upload, path) = (self.http.clone(), self.token.clone(), upload.to_owned(), path.to_owned());
        let bar = progress.cloned();
        let (started, begun) = tokio::sync::oneshot::channel();
        let mut started = Some(started);
        let task = tokio::spawn(async move {
            let file = std::fs::File::open(path).map_err(ClientError::local)?;
            let stream = super::read_ahead::file_body(file, offset, Some(len)).inspect_ok(move |c| {
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
                if let Some(bar) = &bar {
                    bar.inc(c.len() as u64);
                }
            });
            let res = http
                .patch(upload)
                .bearer_auth(token)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", offset)
                .header(reqwest::header::CONTENT_TYPE, "application/offset+octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await;
            Self::check(res).await
        });
        Sent { offset, ahead, started: begun, task: AbortOnDropHandle::new(task) }
    }

    async fn metadata(&self, key: &str) -> Result<Value, ClientError> {
        let key = crate::domain::ObjectKey::parse(key).map_err(ClientError::local)?;
        let url = self.url(&format!("/v1/files/{}?metadata=true", crate::service::encode_key(&key)))?;
        let res = self.http.get(url).bearer_auth(&self.token).send().await;
        let meta: Value = Self::check(res).await?.json().await.map_err(ClientError::local)?;
        Ok(meta.get("file").cloned().unwrap_or(meta))
    }
}

/// One chunk's `PATCH` on its way; abandoned when dropped.
struct Sent {
    offset: u64,
    /// Sent before the previous chunk was answered.
    ahead: bool,
    /// Fires when the body starts going out (or errs when the request ends before).
    started: tokio::sync::oneshot::Receiver<()>,
    task: AbortOnDropHandle<Result<reqwest::Response, ClientError>>,
}

fn header_u64(res: &reqwest::Response, name: &str) -> Option<u64> {
    res.headers().get(name)?.to_str().ok()?.parse().ok()
}
