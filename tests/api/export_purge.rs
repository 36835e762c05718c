//! `GET /v1/export` (a tar of the tenant's files with a manifest that matches the listing) and
//! tenant purge (rows, bytes and — on the filesystem store — the data key, first), on every
//! backend the suite runs on.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn on_fs() -> bool {
    std::env::var("COFFER_TEST_STORAGE").as_deref() != Ok("s3")
}

/// The archive's entries in order, as (path, bytes).
fn entries(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("a tar archive") {
        let mut entry = entry.expect("a whole entry");
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push((path, bytes));
    }
    out
}

/// Every file of `tenant` through the listing API, by name order.
async fn listing(app: &TestApp, tenant: &str, category: Option<&str>) -> Vec<Value> {
    let mut files = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "1000".to_string()), ("sort", "name".to_string())];
        if let Some(c) = category {
            q.push(("category", c.to_string()));
        }
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page: Value = app.list(tenant, &q).await.json().await.unwrap();
        files.extend(page["files"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return files,
        }
    }
}

async fn export(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.request(Method::GET, &format!("/v1/export{query}"), token).send().await.unwrap()
}

/// The manifest lines must be the listing, field for field, in the same order.
fn assert_manifest_matches(manifest: &[u8], listed: &[Value]) {
    let lines: Vec<Value> =
        std::str::from_utf8(manifest).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), listed.len());
    for (line, file) in lines.iter().zip(listed) {
        for field in ["key", "size", "sha256", "content_type"] {
            assert_eq!(line[field], file[field], "{field} of {}", file["key"]);
        }
        let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        assert_eq!(at(&line["created_at"]), at(&file["created_at"]));
        assert_eq!(line["included"], true);
    }
}

#[tokio::test]
async fn export_streams_every_file_with_a_manifest_matching_the_listing() {
    let app = spawn_app().await;
    let mut bodies = BTreeMap::new();
    for (category, name, body) in [
        ("exports", "b.csv", b"b,c\n1,2\n".to_vec()),
        ("exports", "a.bin", vec![7u8; 200_001]),
        ("reports", "empty.txt", Vec::new()),
        ("logos", "logo.png", PNG.to_vec()),
        ("reports", &"n".repeat(90), b"a path over 100 bytes needs a long-name entry".to_vec()),
    ] {
        let res = app.upload("acme", category, name, body.clone()).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        bodies.insert(format!("tenant-acme/{category}/{name}"), body);
    }
    app.uploaded("bob", "exports", "bob-only.txt", b"not acme's").await;

    let res = export(&app, &app.read_only_token("acme"), "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-tar");
    assert!(res.headers()["content-disposition"].to_str().unwrap().contains("tenant-acme-export.tar"));
    let tar_bytes = res.bytes().await.unwrap();
    let got = entries(&tar_bytes);
    let (manifest_name, manifest) = got.last().unwrap();
    assert_eq!(manifest_name, "manifest.jsonl");
    let listed = listing(&app, "acme", None).await;
    let names: Vec<&str> = got[..got.len() - 1].iter().map(|(p, _)| p.as_str()).collect();
    let listed_keys: Vec<&str> = listed.iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(names, listed_keys, "entries in listing order, nothing of another tenant");
    for (path, bytes) in &got[..got.len() - 1] {
        assert_eq!(bytes, &bodies[path], "{path}");
    }
    assert_manifest_matches(manifest, &listed);

    // One category; an unknown one is refused.
    let res = export(&app, &app.token("acme"), "?category=exports").await;
    let got = entries(&res.bytes().await.unwrap());
    assert_eq!(got.len(), 3);
    assert_manifest_matches(&got[2].1, &listing(&app, "acme", Some("exports")).await);
    assert_error(export(&app, &app.token("acme"), "?category=nope").await, StatusCode::BAD_REQUEST, "unknown-category")
        .await;
    assert_error(export(&app, &app.token("acme"), "?tenant=bob").await, StatusCode::BAD_REQUEST, "invalid-query").await;
    let res = app.client.get(app.url("/v1/export")).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "missing-token").await;

    // A tenant with nothing gets an archive with an empty manifest.
    let got = entries(&export(&app, &app.token("nobody"), "").await.bytes().await.unwrap());
    assert_eq!(got, vec![("manifest.jsonl".to_string(), Vec::new())]);
}

#[tokio::test]
async fn export_reports_missing_bytes_and_cuts_short_on_altered_ones() {
    if !on_fs() {
        return;
    }
    let app = spawn_app().await;
    app.uploaded("acme", "exports", "gone.txt", b"bytes that will vanish").await;
    app.uploaded("acme", "exports", "kept.txt", b"still here").await;
    let (_, path) = app.record_on_disk("tenant-acme/exports/gone.txt").await;
    std::fs::remove_file(&path).unwrap();
    let got = entries(&export(&app, &app.token("acme"), "").await.bytes().await.unwrap());
    assert_eq!(got.len(), 2, "kept.txt and the manifest");
    let lines: Vec<Value> =
        std::str::from_utf8(&got[1].1).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["key"], "tenant-acme/exports/gone.txt");
    assert_eq!(lines[0]["included"], false);
    assert!(lines[0]["reason"].as_str().unwrap().contains("missing"));
    assert_eq!(lines[1]["included"], true);

    // Altered bytes: the archive is cut short, never handed out with wrong content.
    app.upload("acme", "exports", "big.bin", vec![1u8; 300_000]).await;
    let (_, path) = app.record_on_disk("tenant-acme/exports/big.bin").await;
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let res = export(&app, &app.token("acme"), "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.is_err(), "an archive with a tampered file must not arrive whole");
}

#[tokio::test]
async fn export_of_ten_thousand_files_matches_the_listing() {
    // The full count once, on the embedded default; a smaller one on the other backends.
    let count = if on_fs() && std::env::var("COFFER_TEST_CATALOG").is_err() { 10_000 } else { 600 };
    let app = spawn_app_with(&[("COFFER_MAX_UPLOADS_PER_TENANT", "32")]).await;
    futures::stream::iter(0..count)
        .map(|i| {
            let app = &app;
            async move {
                let body = format!("file {i}\n").into_bytes();
                let res = app.upload("bulk", "exports", &format!("f{i:05}.txt"), body).await;
                assert_eq!(res.status(), StatusCode::CREATED);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let got = entries(&export(&app, &app.token("bulk"), "").await.bytes().await.unwrap());
    assert_eq!(got.len(), count + 1);
    for (i, (path, bytes)) in got[..count].iter().enumerate() {
        assert_eq!(path, &format!("tenant-bulk/exports/f{i:05}.txt"));
        assert_eq!(bytes, format!("file {i}\n").as_bytes());
    }
    assert_manifest_matches(&got[count].1, &listing(&app, "bulk", None).await);
    println!("export: {count} files matched the listing");
}

#[tokio::test]
async fn purge_removes_everything_of_one_tenant_and_its_key_first() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.uploaded("acme", "exports", Box::leak(format!("f{i}.txt").into_boxed_str()), b"acme data").await;
    }
    app.uploaded("acme", "logos", "logo.png", PNG).await;
    app.uploaded("bob", "exports", "bob.txt", b"bob data").await;
    let key_file = app.data_dir.path().join("keys").join("tenant-acme.json");
    let old_key: Option<Value> = on_fs().then(|| serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap());
    // A copy of acme's objects as they lay on disk before the purge (a backup of objects/).
    let (record, sealed_path) = app.record_on_disk("tenant-acme/exports/f0.txt").await;
    let backup = on_fs().then(|| std::fs::read(&sealed_path).unwrap());

    let report = app.service.purge_tenant(&tenant("acme"), Duration::ZERO).await.unwrap();
    assert_eq!(report.rows.files, 6);
    assert_eq!(report.objects_removed, 6);
    assert_eq!(report.key_destroyed, on_fs());
    assert!(report.registration_removed);
    assert!(listing(&app, "acme", None).await.is_empty());
    assert!(!app.stored_objects().await.iter().any(|k| k.contains("/tenant-acme/")));
    let usage: Value =
        app.request(Method::GET, "/v1/usage", &app.token("acme")).send().await.unwrap().json().await.unwrap();
    assert_eq!(usage["files"], 0);
    // Bob is untouched.
    let res = app.download("bob", "tenant-bob/exports/bob.txt").await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"bob data");
    // A second run finds nothing left and says so.
    let again = app.service.purge_tenant(&tenant("acme"), Duration::ZERO).await.unwrap();
    assert_eq!((again.rows.files, again.objects_removed, again.key_destroyed), (0, 0, false));

    if let Some(backup) = &backup {
        assert!(!key_file.exists());
        assert!(!sealed_path.exists());
        // Bytes restored from a backup of objects/ cannot be opened: their key is gone.
        std::fs::create_dir_all(sealed_path.parent().unwrap()).unwrap();
        std::fs::write(&sealed_path, backup).unwrap();
        match app.blobs.get(&record.bucket, &record.blob, None).await {
            Err(coffer::blob::BlobError::Key(_)) => {}
            Err(other) => panic!("expected a missing key, got {other}"),
            Ok(_) => panic!("a purged tenant's backed-up object opened"),
        }
        std::fs::remove_file(&sealed_path).unwrap();
    }
    // The tenant can come back, with a new key.
    app.uploaded("acme", "exports", "again.txt", b"new life").await;
    let res = app.download("acme", "tenant-acme/exports/again.txt").await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"new life");
    if let Some(old) = old_key {
        let new: Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
        assert_ne!(new["key_id"], old["key_id"]);
    }
}
