//! `coffer upload | download | ls | rm | url`: the command-line client of a coffer server.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::client::{ClientError, Output, RemoteClient};
use crate::domain::ObjectKey;

/// Where the server is and who the caller is.
#[derive(Debug, Args, Clone)]
pub struct RemoteArgs {
    /// Server base URL.
    #[arg(long, env = "COFFER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: url::Url,
    /// Bearer token (see `coffer token`).
    #[arg(long, env = "COFFER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files to upload; each is stored under its own file name. `-` is standard input (with
    /// `--name`); a pipe or a device is streamed to its end.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Store the file under this name instead of its own (one file only; required for `-`).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub category: String,
    /// Replace files that already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// Files larger than this are sent resumably: rerunning the same command after an
    /// interruption continues where the server is (state in $XDG_STATE_HOME/coffer).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub resumable_over: u64,
    /// Bytes per request of a resumable upload.
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    pub chunk_size: u64,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if size.as_u64() == 0 { Err("must be more than zero".into()) } else { Ok(size.as_u64()) }
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    pub key: String,
    /// Where to write: a path, or `-` for standard output [default: the file name].
    #[arg(short, long)]
    pub output: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[arg(long)]
    pub category: Option<String>,
    #[arg(long)]
    pub prefix: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub keys: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct UrlArgs {
    pub key: String,
    /// Lifetime of the link, e.g. 10m, 1h, 7d (at most 7 days).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub expires: Duration,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

fn client(remote: &RemoteArgs) -> Result<RemoteClient, ClientError> {
    let token = remote
        .token
        .clone()
        .ok_or_else(|| ClientError::Local("no token: set COFFER_TOKEN or pass --token (see `coffer token`)".into()))?;
    Ok(RemoteClient::new(remote.url.clone(), token))
}

fn key(raw: &str) -> Result<ObjectKey, ClientError> {
    ObjectKey::parse(raw).map_err(|e| ClientError::Local(format!("{raw:?}: {e}")))
}

/// A progress bar on a terminal; none when stderr is not one (scripts, CI).
fn progress(label: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0).with_message(label.to_owned());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    Some(bar)
}

fn human_size(n: u64) -> String {
    bytesize::ByteSize(n).to_string()
}

/// `coffer upload`: every file is tried; the first refusal decides the exit code.
pub async fn upload(args: &UploadArgs) -> Result<(), ClientError> {
    if args.name.is_some() && args.files.len() > 1 {
        return Err(reported(ClientError::Local("--name names one file, not several".into())));
    }
    let client = client(&args.remote).map_err(reported)?;
    let mut results = Vec::new();
    let mut first_error = None;
    for path in &args.files {
        let bar = progress(&path.display().to_string());
        let how = crate::client::Resumable { over: args.resumable_over, chunk: args.chunk_size };
        let outcome =
            client.upload_with(path, args.name.as_deref(), &args.category, args.overwrite, how, bar.clone()).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        match outcome {
            Ok(meta) => {
                if !args.remote.json {
                    println!(
                        "{}\t{}",
                        meta["key"].as_str().unwrap_or_default(),
                        human_size(meta["size"].as_u64().unwrap_or(0))
                    );
                }
                results.push(json!({"file": path, "ok": true, "file_metadata": meta}));
            }
            Err(e) => {
                eprintln!("coffer: {}: {e}", path.display());
                results.push(json!({"file": path, "ok": false, "error": error_json(&e)}));
                first_error.get_or_insert(e);
            }
        }
    }
    if args.remote.json {
        println!("{}", Value::Array(results));
    }
    first_error.map_or(Ok(()), Err)
}

/// Prints an error of a multi-item command that stops it before any item (items report their
/// own errors as they go).
fn reported(e: ClientError) -> ClientError {
    eprintln!("coffer: {e}");
    e
}

fn error_json(e: &ClientError) -> Value {
    match e {
        ClientError::Server { status, code, message } => json!({"status": status, "code": code, "message": message}),
        ClientError::Local(message) => json!({"code": "local", "message": message}),
    }
}

pub async fn download(args: &DownloadArgs) -> Result<(), ClientError> {
    let client = client(&args.remote)?;
    let key = key(&args.key)?;
    let default_name = key.filename().to_string();
    let target = args.output.clone().unwrap_or(default_name);
    let (out, bar) = if target == "-" {
        (Output::Stdout, None)
    } else {
        (Output::File(std::path::Path::new(&target)), progress(&target))
    };
    let bytes = client.download(&key, out, bar.clone()).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.remote.json && target != "-" {
        println!("{}", json!({"key": key.to_string(), "path": target, "size": bytes}));
    } else if target != "-" {
        eprintln!("{target}\t{}", human_size(bytes));
    }
    Ok(())
}

pub async fn ls(args: &LsArgs) -> Result<(), ClientError> {
    let files = client(&args.remote)?.list(args.category.as_deref(), args.prefix.as_deref()).await?;
    if args.remote.json {
        println!("{}", Value::Array(files));
        return Ok(());
    }
    for f in files {
        println!(
            "{}\t{}\t{}\t{}",
            f["key"].as_str().unwrap_or_default(),
            human_size(f["size"].as_u64().unwrap_or(0)),
            f["content_type"].as_str().unwrap_or_default(),
            f["created_at"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn rm(args: &RmArgs) -> Result<(), ClientError> {
    let client = client(&args.remote).map_err(reported)?;
    let keys = args.keys.iter().map(|k| key(k)).collect::<Result<Vec<_>, _>>().map_err(reported)?;
    let mut first_error = None;
    let mut removed = Vec::new();
    for k in &keys {
        match client.remove(k).await {
            Ok(()) => removed.push(k.to_string()),
            Err(e) => {
                eprintln!("coffer: {k}: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    if args.remote.json {
        println!("{}", json!({"removed": removed}));
    }
    first_error.map_or(Ok(()), Err)
}

pub async fn url(args: &UrlArgs) -> Result<(), ClientError> {
    let link = client(&args.remote)?.url_for(&key(&args.key)?, args.expires).await?;
    if args.remote.json {
        println!("{link}");
    } else {
        println!("{}", link["url"].as_str().unwrap_or_default());
    }
    Ok(())
}
