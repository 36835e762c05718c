//! After the drill: the ledger against what coffer serves, and the catalog against what Garage
//! holds (rows without bytes, bytes without rows, multipart uploads left open).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use coffer::config::{Config, StorageEngine};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::ledger::{Ledger, Version};

#[derive(Default)]
pub struct LedgerFindings {
    pub checked: usize,
    pub lost: Vec<String>,
    pub resurrected: Vec<String>,
    pub wrong: Vec<String>,
}

/// Reads every key of the ledger back (retrying 503s and cut connections a few times).
pub async fn ledger(url: &str, tokens: &HashMap<String, String>, ledger: &Ledger) -> LedgerFindings {
    let http = crate::load::client();
    let mut found = LedgerFindings::default();
    for key in ledger.keys() {
        let tenant = key.strip_prefix("tenant-").and_then(|k| k.split('/').next()).unwrap_or_default();
        let mut got = Err(());
        for _ in 0..10 {
            got = read(&http, &format!("{url}/v1/files/{key}"), &tokens[tenant]).await;
            if got.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        found.checked += 1;
        let Ok(sha) = got else {
            found.wrong.push(format!("{key}: no answer"));
            continue;
        };
        if ledger.allows(key, sha.as_deref()) {
            continue;
        }
        match (sha, ledger.certain(key)) {
            (None, _) => found.lost.push(key.clone()),
            (Some(_), Some(Version::Absent)) => found.resurrected.push(key.clone()),
            (Some(sha), _) => found.wrong.push(format!("{key}: sha256 {sha}")),
        }
    }
    found
}

/// The sha256 of what `url` serves, None for 404, Err for anything else.
async fn read(http: &reqwest::Client, url: &str, token: &str) -> Result<Option<String>, ()> {
    let res = http.get(url).bearer_auth(token).send().await.map_err(|_| ())?;
    match res.status() {
        StatusCode::NOT_FOUND => Ok(None),
        StatusCode::OK => {
            let body = res.bytes().await.map_err(|_| ())?;
            Ok(Some(hex::encode(Sha256::digest(&body))))
        }
        _ => Err(()),
    }
}

/// Waits (at most a minute) until no pending upload's lease reaches into the last `grace`,
/// so that reconcile treats every one as stale.
pub async fn settle(direct_db: &str, grace: Duration) -> anyhow::Result<()> {
    let db = sqlx::PgPool::connect(direct_db).await?;
    for _ in 0..60 {
        let horizon = chrono::Utc::now().timestamp_micros() - grace.as_micros() as i64;
        let alive: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pending_uploads WHERE alive_until >= $1 OR started_at >= $1")
                .bind(horizon)
                .fetch_one(&db)
                .await?;
        if alive == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(grace).await;
    db.close().await;
    Ok(())
}

#[derive(Default)]
pub struct StoreFindings {
    pub rows: usize,
    pub objects: usize,
    pub live_uploads: usize,
    pub rows_without_bytes: Vec<String>,
    pub orphans: Vec<String>,
    pub open_multipart: Vec<String>,
    /// Listed by the server, yet unknown to it when asked for their parts (Garage 2.5).
    pub phantom_multipart: Vec<String>,
    /// Listed, yet absent when read: a replica that missed the delete still lists the object.
    pub stale_listed: Vec<String>,
}

/// The catalog's rows (read directly, as the database owner) against both buckets' objects and
/// multipart uploads. Resumable uploads still alive (created by a request whose answer was lost,
/// so the client never knew their id) keep their parts and staging objects legitimately.
pub async fn store(direct_db: &str, config: &Config) -> anyhow::Result<StoreFindings> {
    let db = sqlx::PgPool::connect(direct_db).await?;
    let rows: BTreeSet<(String, String)> = sqlx::query_as::<_, (String, String)>("SELECT bucket, blob_key FROM files")
        .fetch_all(&db)
        .await?
        .into_iter()
        .collect();
    let live: Vec<(String, String)> = sqlx::query_as::<_, (String, String)>(
        "SELECT bucket, blob_key FROM resumable_uploads WHERE completed_at IS NULL",
    )
    .fetch_all(&db)
    .await?;
    db.close().await;
    let StorageEngine::S3(settings) = &config.storage else { anyhow::bail!("the cluster runs on S3") };
    let store = coffer::blob::S3BlobStore::new(settings.as_ref().clone()).await;
    let s3 = store.client();
    let mut objects = BTreeSet::new();
    let mut multipart = Vec::new();
    let mut phantom = Vec::new();
    for bucket in [config.documents_bucket.to_string(), config.media_bucket.to_string()] {
        let mut pages = s3.list_objects_v2().bucket(&bucket).into_paginator().send();
        while let Some(page) = pages.next().await {
            for object in page?.contents() {
                objects.insert((bucket.clone(), object.key().unwrap_or_default().to_string()));
            }
        }
        let uploads = s3.list_multipart_uploads().bucket(&bucket).send().await?;
        for u in uploads.uploads() {
            let (key, id) = (u.key().unwrap_or_default().to_string(), u.upload_id().unwrap_or_default());
            // Garage 2.5 keeps listing an upload whose creation the client cut off mid-request,
            // while answering NoSuchUpload for it: no parts, nothing to abort. Counted apart.
            let parts = s3.list_parts().bucket(&bucket).key(&key).upload_id(id).send().await;
            match parts {
                Err(e) if e.as_service_error().is_some_and(|e| e.meta().code() == Some("NoSuchUpload")) => {
                    phantom.push(format!("{bucket}/{key}"))
                }
                _ => multipart.push((bucket.clone(), key)),
            }
        }
    }
    let under_live = |(bucket, key): &(String, String)| {
        live.iter().any(|(b, blob)| b == bucket && (key == blob || key.starts_with(&format!("{}/", parent(blob)))))
    };
    // Garage filters a listing on each replica before merging the answers, so a replica that
    // missed a delete (a node restarted moments before) can list a deleted object until
    // anti-entropy repairs it, while a read merges whole entries and finds the delete. An
    // object is an orphan only if a read finds it too.
    let mut orphans = Vec::new();
    let mut stale_listed = Vec::new();
    for (bucket, key) in objects.difference(&rows).filter(|&o| !under_live(o)) {
        let head = s3.head_object().bucket(bucket).key(key).send().await;
        match head {
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {
                stale_listed.push(format!("{bucket}/{key}"))
            }
            Ok(o) => orphans.push(format!(
                "{bucket}/{key} (last modified {})",
                o.last_modified().map_or("-".into(), |t| t.to_string())
            )),
            Err(e) => orphans.push(format!("{bucket}/{key} (HEAD: {})", aws_sdk_s3::error::DisplayErrorContext(&e))),
        }
    }
    Ok(StoreFindings {
        rows: rows.len(),
        objects: objects.len() - stale_listed.len(),
        live_uploads: live.len(),
        rows_without_bytes: rows.difference(&objects).map(|(b, k)| format!("{b}/{k}")).collect(),
        orphans,
        open_multipart: multipart.iter().filter(|&m| !under_live(m)).map(|(b, k)| format!("{b}/{k}")).collect(),
        phantom_multipart: phantom,
        stale_listed,
    })
}

fn parent(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(dir, _)| dir)
}
