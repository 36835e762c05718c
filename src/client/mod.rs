//! The HTTP client behind `coffer upload | download | ls | rm | url`: streams both ways, so
//! memory stays constant for any file size.

use std::path::Path;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::domain::ObjectKey;
use crate::service::encode_key;

mod read_ahead;
mod resumable;

pub use resumable::{Resumable, state_file};

/// Why a client command failed: the server refused (exit 1), or something local (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{code}: {message}")]
    Server { status: u16, code: String, message: String },
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    fn local(e: impl std::fmt::Display) -> Self {
        Self::Local(e.to_string())
    }

    /// 1 when the server refused, 2 for usage or local errors.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Server { .. } => 1,
            ClientError::Local(_) => 2,
        }
    }
}

/// Where a download goes.
pub enum Output<'a> {
    File(&'a Path),
    Stdout,
}

pub struct RemoteClient {
    http: reqwest::Client,
    base: url::Url,
    token: String,
}

impl RemoteClient {
    pub fn new(base: url::Url, token: String) -> Self {
        Self { http: reqwest::Client::new(), base, token }
    }

    fn url(&self, path: &str) -> Result<url::Url, ClientError> {
        self.base.join(path).map_err(ClientError::local)
    }

    /// Turns a non-2xx answer into `Server` with the error body's code and message.
    async fn check(res: Result<reqwest::Response, reqwest::Error>) -> Result<reqwest::Response, ClientError> {
        let res = res.map_err(|e| ClientError::Local(format!("cannot reach the server: {e}")))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        Err(ClientError::Server {
            status,
            code: body["error"]["code"].as_str().unwrap_or("http-error").to_owned(),
            message: body["error"]["message"].as_str().map_or_else(|| format!("HTTP {status}"), str::to_owned),
        })
    }

    /// Streams `path` to `category` under its file name; returns the file's metadata.
    pub async fn upload(
        &self,
        path: &Path,
        category: &str,
        overwrite: bool,
        progress: Option<ProgressBar>,
    ) -> Result<Value, ClientError> {
        self.upload_with(path, None, category, overwrite, Resumable::default(), progress).await
    }

    /// [`Self::upload`], stored under `name` (default: the file's own name), with files larger
    /// than `how.over` sent resumably (tus, in chunks of `how.chunk`, continued by the next run
    /// after an interruption). `-` is standard input, which needs a `name` and is never sent
    /// resumably (it cannot be read again).
    pub async fn upload_with(
        &self,
        path: &Path,
        name: Option<&str>,
        category: &str,
        overwrite: bool,
        how: Resumable,
        progress: Option<ProgressBar>,
    ) -> Result<Value, ClientError> {
        let stdin = path == Path::new("-");
        let name = match (name, stdin) {
            (Some(name), _) => name,
            (None, true) => return Err(ClientError::Local("standard input (-) is stored under --name".into())),
            (None, false) => path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| ClientError::Local(format!("{}: not a file name coffer can store", path.display())))?,
        };
        let local = |e: std::io::Error| ClientError::Local(format!("{}: {e}", path.display()));
        let file = if stdin {
            use std::os::fd::AsFd;
            std::io::stdin().as_fd().try_clone_to_owned().map(std::fs::File::from)
        } else {
            std::fs::File::open(path)
        }
        .map_err(local)?;
        let stat = file.metadata().map_err(local)?;
        if stat.is_dir() {
            return Err(ClientError::Local(format!("{}: is a directory", path.display())));
        }
        // A regular file has a length to announce (and to resume by); a pipe or a device is
        // streamed as it gives its bytes, in one request.
        let len = stat.is_file().then_some(stat.len());
        if !stdin && len.is_some_and(|len| len > how.over) {
            drop(file);
            return self.upload_resumable(path, name, category, overwrite, how, progress).await;
        }
        if let (Some(bar), Some(len)) = (&progress, len) {
            bar.set_length(len);
        }
        let stream = read_ahead::file_body(file, 0, len).inspect_ok(move |chunk| {
            if let Some(bar) = &progress {
                bar.inc(chunk.len() as u64);
            }
        });
        let mut url = self.url("/v1/files")?;
        url.query_pairs_mut()
            .append_pair("category", category)
            .append_pair("filename", name)
            .append_pair("overwrite", if overwrite { "true" } else { "false" });
        let mut req = self.http.post(url).bearer_auth(&self.token);
        if let Some(len) = len {
            req = req.header(reqwest::header::CONTENT_LENGTH, len);
        }
        let res = req.body(reqwest::Body::wrap_stream(stream)).send().await;
        if res.is_err() && len.is_some() && !stdin && read_ahead::changed(path, &stat) {
            return Err(ClientError::Local("the file changed while it was being uploaded; nothing was stored".into()));
        }
        Self::check(res).await?.json().await.map_err(ClientError::local)
    }

    /// Streams `key` to `out` (a file is written under a temporary name, then renamed).
    /// Returns the number of bytes.
    pub async fn download(
        &self,
        key: &ObjectKey,
        out: Output<'_>,
        progress: Option<ProgressBar>,
    ) -> Result<u64, ClientError> {
        let res =
            self.http.get(self.url(&format!("/v1/files/{}", encode_key(key)))?).bearer_auth(&self.token).send().await;
        let res = Self::check(res).await?;
        if let (Some(bar), Some(len)) = (&progress, res.content_length()) {
            bar.set_length(len);
        }
        let mut body = res.bytes_stream();
        let (mut writer, temp): (Box<dyn tokio::io::AsyncWrite + Unpin + Send>, Option<std::path::PathBuf>) = match out
        {
            Output::Stdout => (Box::new(tokio::io::stdout()), None),
            Output::File(path) => {
                let temp = path.with_file_name(format!(
                    ".{}.coffer-part",
                    path.file_name().and_then(|n| n.to_str()).unwrap_or("download")
                ));
                let file = tokio::fs::File::create(&temp)
                    .await
                    .map_err(|e| ClientError::Local(format!("{}: {e}", temp.display())))?;
                (Box::new(file), Some(temp))
            }
        };
        let mut total = 0u64;
        let result: Result<(), ClientError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ClientError::Local(format!("download interrupted: {e}")))?;
                writer.write_all(&chunk).await.map_err(ClientError::local)?;
                total += chunk.len() as u64;
                if let Some(bar) = &progress {
                    bar.inc(chunk.len() as u64);
                }
            }
            writer.flush().await.map_err(ClientError::local)
        }
        .await;
        drop(writer);
        match (result, temp, out) {
            (Ok(()), Some(temp), Output::File(path)) => {
                tokio::fs::rename(&temp, path).await.map_err(ClientError::local)?;
                Ok(total)
            }
            (Err(e), Some(temp), _) => {
                let _ = tokio::fs::remove_file(temp).await;
                Err(e)
            }
            (r, _, _) => r.map(|()| total),
        }
    }

    /// Every file (all pages), newest first.
    pub async fn list(&self, category: Option<&str>, prefix: Option<&str>) -> Result<Vec<Value>, ClientError> {
        let mut files = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url("/v1/files")?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("limit", "1000");
                if let Some(c) = category {
                    q.append_pair("category", c);
                }
                if let Some(p) = prefix {
                    q.append_pair("prefix", p);
                }
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let page: Value = Self::check(self.http.get(url).bearer_auth(&self.token).send().await)
                .await?
                .json()
                .await
                .map_err(ClientError::local)?;
            files.extend(page["files"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(files),
            }
        }
    }

    pub async fn remove(&self, key: &ObjectKey) -> Result<(), ClientError> {
        let res = self
            .http
            .delete(self.url(&format!("/v1/files/{}", encode_key(key)))?)
            .bearer_auth(&self.token)
            .send()
            .await;
        Self::check(res).await.map(|_| ())
    }

    /// A presigned link valid for `expires`.
    pub async fn url_for(&self, key: &ObjectKey, expires: Duration) -> Result<Value, ClientError> {
        let body = serde_json::json!({"key": key.to_string(), "expires_in": expires.as_secs()});
        let res = self.http.post(self.url("/v1/presign")?).bearer_auth(&self.token).json(&body).send().await;
        Self::check(res).await?.json().await.map_err(ClientError::local)
    }
}
