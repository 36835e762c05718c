//! The S3 store's own behaviour, against the servers scripts/test starts: direct presigned
//! URLs and SigV4 (s3s-fs); server-side encryption, archive classes and restore (moto);
//! unavailability (a cut proxy in front of s3s-fs); a missing bucket at start-up.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{S3_ACCESS_KEY, S3_SECRET_KEY};
use crate::helpers::{ProxyMode, TestApp, TestProxy, assert_error, spawn_app_with};

fn endpoint(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run scripts/test"))
}

/// An app on the S3 store at `endpoint` with fresh buckets and `extra` settings.
async fn s3_app(endpoint: &str, extra: &[(&str, &str)]) -> TestApp {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (docs, media) = (format!("s-{}-documents", &id[..12]), format!("s-{}-media", &id[..12]));
    let mut env = vec![
        ("COFFER_STORAGE", "s3"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY),
        ("AWS_S3_DOCUMENTS_BUCKET", docs.as_str()),
        ("AWS_S3_MEDIA_BUCKET", media.as_str()),
    ];
    env.extend_from_slice(extra);
    spawn_app_with(&env).await
}

#[tokio::test]
async fn direct_presigned_urls_go_to_s3_and_expire() {
    let s3 = endpoint("COFFER_TEST_S3_ENDPOINT");
    let app = s3_app(&s3, &[("COFFER_PRESIGN", "direct")]).await;
    app.uploaded("abc", "reports", "q1 résumé.pdf", b"%PDF-1.7 direct").await;
    let body: Value = app
        .presign("abc", json!({"key": "tenant-abc/reports/q1 résumé.pdf", "expires_in": 2}))
        .await
        .json()
        .await
        .unwrap();
    let url = body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&s3), "{url}");
    assert!(url.contains("X-Amz-Signature=") && url.contains("response-content-disposition="));

    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(&res.bytes().await.unwrap()[..], b"%PDF-1.7 direct");

    // Altered: one character of the signature, or of the key.
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut altered = url.clone().into_bytes();
    altered[sig_at] = if altered[sig_at] == b'a' { b'b' } else { b'a' };
    let res = app.client.get(String::from_utf8(altered).unwrap()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app.client.get(url.replace("/tenant-abc/", "/tenant-abd/")).send().await.unwrap();
    assert!(res.status().is_client_error());

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "expired");
}

/// A direct S3 link cannot be revoked, so its lifetime is bounded
/// (COFFER_PRESIGN_DIRECT_MAX_TTL); a link asked for longer is coffer-signed and stops at the
/// tenant's suspension, while a direct one lives until it expires.
#[tokio::test]
async fn links_longer_than_the_direct_bound_are_coffer_signed_and_stop_at_suspension() {
    let s3 = endpoint("COFFER_TEST_S3_ENDPOINT");
    let app = s3_app(&s3, &[("COFFER_PRESIGN", "direct"), ("COFFER_PRESIGN_DIRECT_MAX_TTL", "60s")]).await;
    app.uploaded("abc", "reports", "r.pdf", b"%PDF-1.7 bounded").await;
    let link = |expires_in: u64| {
        let res = app.presign("abc", json!({"key": "tenant-abc/reports/r.pdf", "expires_in": expires_in}));
        async move { res.await.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_owned() }
    };
    let direct = link(60).await;
    assert!(direct.starts_with(&s3), "{direct}");
    let long = link(3600).await;
    assert!(long.starts_with(&app.base), "{long}");
    for url in [&direct, &long] {
        assert_eq!(app.client.get(url).send().await.unwrap().status(), StatusCode::OK);
    }

    let (catalog, _) = app.service.parts();
    let tenant = coffer::domain::TenantId::parse("abc").unwrap();
    catalog.set_tenant_status(&tenant, coffer::catalog::TenantStatus::Suspended).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5100)).await; // the admission cache's lifetime
    let res = app.client.get(&long).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "tenant-inactive").await;
    // The documented limit: S3 itself serves a direct link until it expires (60 s at most here).
    assert_eq!(app.client.get(&direct).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn every_write_carries_server_side_encryption() {
    let moto = endpoint("COFFER_TEST_MOTO_ENDPOINT");
    let app = s3_app(&moto, &[]).await;
    app.uploaded("abc", "reports", "small.txt", b"hello").await;
    let big = vec![b'x'; 9 << 20];
    let res = app.upload("abc", "exports", "big.bin", big).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let client = app.s3_client();
    for object in app.stored_objects().await {
        let (bucket, key) = object.split_once('/').unwrap();
        let head = client.head_object().bucket(bucket).key(key).send().await.unwrap();
        assert_eq!(head.server_side_encryption().map(|s| s.as_str()), Some("AES256"), "{object}");
    }
}

#[tokio::test]
async fn archived_objects_need_a_restore() {
    let moto = endpoint("COFFER_TEST_MOTO_ENDPOINT");
    let app = s3_app(&moto, &[]).await;
    app.uploaded("abc", "reports", "old.pdf", b"%PDF-1.4 archived").await;
    // Move the stored object to GLACIER, as the lifecycle would after a year.
    let client = app.s3_client();
    let object = app.stored_objects().await.remove(0);
    let (bucket, key) = object.split_once('/').unwrap();
    client
        .copy_object()
        .bucket(bucket)
        .key(key)
        .copy_source(format!("{bucket}/{key}"))
        .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
        .send()
        .await
        .unwrap();

    let res = app.download("abc", "tenant-abc/reports/old.pdf").await;
    let message = assert_error(res, StatusCode::CONFLICT, "object-archived").await;
    assert!(message.contains("restore"), "{message}");
    let res = app.presign("abc", json!({"key": "tenant-abc/reports/old.pdf"})).await;
    assert_error(res, StatusCode::CONFLICT, "object-archived").await;
    let res = app
        .request(reqwest::Method::HEAD, "/v1/files/tenant-abc/reports/old.pdf", &app.token("abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-coffer-storage-class"], "GLACIER");
    let meta: Value = app
        .request(reqwest::Method::GET, "/v1/files/tenant-abc/reports/old.pdf?metadata=1", &app.token("abc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["storage"]["storage_class"], "GLACIER");
    assert_eq!(meta["storage"]["readable"], false);

    // An export lists the archived file in its manifest as not included, and says why.
    app.uploaded("abc", "reports", "new.pdf", b"%PDF-1.4 fresh").await;
    let tar_bytes = app.request(reqwest::Method::GET, "/v1/export", &app.token("abc")).send().await.unwrap();
    let tar_bytes = tar_bytes.bytes().await.unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut names = Vec::new();
    let mut manifest = String::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == "manifest.jsonl" {
            std::io::Read::read_to_string(&mut entry, &mut manifest).unwrap();
        }
        names.push(name);
    }
    assert_eq!(names, ["tenant-abc/reports/new.pdf", "manifest.jsonl"]);
    let lines: Vec<Value> = manifest.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[1]["key"], "tenant-abc/reports/old.pdf");
    assert_eq!(lines[1]["included"], false);
    assert!(lines[1]["reason"].as_str().unwrap().contains("archived"), "{}", lines[1]);
    assert_eq!(lines[0]["included"], true);

    let restore = |body: Value| app.request(reqwest::Method::POST, "/v1/restore", &app.token("abc")).json(&body).send();
    let res = restore(json!({"key": "tenant-abc/reports/old.pdf", "days": 0})).await.unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-restore").await;
    let res = restore(json!({"key": "tenant-other/reports/old.pdf"})).await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "tenant-mismatch").await;
    let res = restore(json!({"key": "tenant-abc/reports/old.pdf", "days": 2, "tier": "Bulk"})).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let meta: Value = app
        .request(reqwest::Method::GET, "/v1/files/tenant-abc/reports/old.pdf?metadata=1", &app.token("abc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(meta["storage"]["restore"].as_str().is_some(), "{meta}");
}

#[tokio::test]
async fn unreachable_storage_is_503_with_nothing_half_written() {
    let s3 = endpoint("COFFER_TEST_S3_ENDPOINT");
    let proxy = TestProxy::start(s3.trim_start_matches("http://").to_owned()).await;
    let app = s3_app(&format!("http://{}", proxy.addr), &[("COFFER_S3_MAX_ATTEMPTS", "2")]).await;
    app.uploaded("abc", "reports", "before.txt", b"kept").await;
    proxy.set(ProxyMode::Refuse);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let res = app.upload("abc", "reports", "during.txt", "lost").await;
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable").await;
    let res = app.download("abc", "tenant-abc/reports/before.txt").await;
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable").await;
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    let listed: Value = app.list("abc", &[]).await.json().await.unwrap();
    let names: Vec<&str> =
        listed["files"].as_array().unwrap().iter().map(|f| f["filename"].as_str().unwrap()).collect();
    assert_eq!(names, ["before.txt"], "the failed upload left no row");

    proxy.set(ProxyMode::Open);
    let res = app.download("abc", "tenant-abc/reports/before.txt").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_missing_bucket_at_start_names_coffer_provision() {
    let s3 = endpoint("COFFER_TEST_S3_ENDPOINT");
    let vars = [
        ("COFFER_STORAGE", "s3"),
        ("AWS_ENDPOINT_URL", s3.as_str()),
        ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY),
        ("AWS_S3_DOCUMENTS_BUCKET", "never-created-documents"),
        ("AWS_S3_MEDIA_BUCKET", "never-created-media"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let overrides = coffer::config::Overrides { data_dir: Some(dir.path().to_owned()), ..Default::default() };
    let config = coffer::config::Config::from_lookup(
        |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()),
        &overrides,
    )
    .unwrap();
    let err = coffer::startup::service(&config).await.err().expect("start must fail");
    let line = err.to_string();
    assert!(line.contains("never-created-documents") && line.contains("coffer provision"), "{line}");
    assert!(!line.contains('\n'));
}

#[tokio::test]
async fn an_upload_of_a_known_length_streams_as_one_put_and_a_cut_one_stores_nothing() {
    let s3 = endpoint("COFFER_TEST_S3_ENDPOINT");
    let app = s3_app(&s3, &[]).await;
    let token = app.token("abc");
    // Over one part (8 MiB), under COFFER_S3_SINGLE_PUT_MAX (64 MiB): one streamed PutObject.
    let data: Vec<u8> = (0..10 * 1024 * 1024 + 5).map(|i: usize| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    let res = app
        .request(reqwest::Method::POST, "/v1/files?category=exports&filename=known.bin", &token)
        .header(reqwest::header::CONTENT_LENGTH, data.len())
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
    let meta: Value = res.json().await.unwrap();
    assert_eq!(meta["sha256"], hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)));
    let got = app.download("abc", "tenant-abc/exports/known.bin").await.bytes().await.unwrap();
    assert!(got[..] == data[..], "downloaded bytes differ");

    // The client goes away half-way: nothing is stored, no row, no object.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let half = data[..5 * 1024 * 1024].to_vec();
    tokio::spawn(async move {
        tx.send(Ok(half)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = tx.send(Err(std::io::Error::other("the client went away"))).await;
    });
    let res = app
        .request(reqwest::Method::POST, "/v1/files?category=exports&filename=cut.bin", &token)
        .header(reqwest::header::CONTENT_LENGTH, data.len())
        .body(body)
        .send()
        .await;
    assert!(res.is_err() || res.unwrap().status().is_client_error());
    // The server notices the cut body and cleans up.
    let mut stored = Vec::new();
    for _ in 0..50 {
        stored = app.stored_objects().await;
        if stored.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored.len(), 1, "only known.bin: {stored:?}");
    assert_eq!(app.download("abc", "tenant-abc/exports/cut.bin").await.status(), StatusCode::NOT_FOUND);
}
