//! Upload links: `POST /v1/presign` with `"method": "PUT"` makes a URL that accepts one upload
//! of one key without a token, within a size and type, until it expires.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, assert_error, spawn_app};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

async fn link(app: &TestApp, tenant: &str, body: Value) -> Value {
    let res = app.presign(tenant, body).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

async fn put(
    app: &TestApp,
    url: &str,
    body: impl Into<reqwest::Body>,
    content_type: Option<&str>,
) -> reqwest::Response {
    let mut req = app.client.put(url).body(body);
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_link_takes_one_upload_without_a_token() {
    let app = spawn_app().await;
    let made =
        link(&app, "abc123", json!({"key": "tenant-abc123/reports/q3.pdf", "method": "PUT", "max_size": 1000})).await;
    assert_eq!(made["method"], "PUT");
    assert_eq!(made["max_size"], 1000);
    let url = made["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/v1/files/tenant-abc123/reports/q3.pdf?", app.base)), "{url}");
    let pdf = b"%PDF-1.7 uploaded through a link".to_vec();
    let res = put(&app, url, pdf.clone(), None).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["location"], "/v1/files/tenant-abc123/reports/q3.pdf");
    let meta: Value = res.json().await.unwrap();
    assert_eq!(meta["content_type"], "application/pdf");
    assert_eq!(meta["sha256"], hex::encode(Sha256::digest(&pdf)));
    let got = app.download("abc123", "tenant-abc123/reports/q3.pdf").await.bytes().await.unwrap();
    assert_eq!(&got[..], &pdf[..]);
    // Used once: refused ever after, even once the file is gone.
    assert_error(put(&app, url, pdf.clone(), None).await, StatusCode::CONFLICT, "link-used").await;
    assert_eq!(app.delete("abc123", "tenant-abc123/reports/q3.pdf").await.status(), StatusCode::NO_CONTENT);
    assert_error(put(&app, url, pdf, None).await, StatusCode::CONFLICT, "link-used").await;
}

#[tokio::test]
async fn curl_uploads_with_t() {
    let app = spawn_app().await;
    let made = link(&app, "abc123", json!({"key": "tenant-abc123/exports/data.csv", "method": "PUT"})).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.csv");
    std::fs::write(&file, "a,b\n1,2\n").unwrap();
    // Not std's Command: the server runs on this test's runtime.
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-T"])
        .arg(&file)
        .args(["-w", "\n%{http_code}", made["url"].as_str().unwrap()])
        .output()
        .await
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n201"), "{text}");
    let got = app.download("abc123", "tenant-abc123/exports/data.csv").await.text().await.unwrap();
    assert_eq!(got, "a,b\n1,2\n");
}

#[tokio::test]
async fn the_links_terms_hold_and_a_refused_upload_leaves_it_usable() {
    let app = spawn_app().await;
    let made =
        link(&app, "abc123", json!({"key": "tenant-abc123/reports/small.bin", "method": "PUT", "max_size": 10})).await;
    let url = made["url"].as_str().unwrap();
    // Announced too large, and streamed too large without a length.
    assert_error(put(&app, url, vec![0u8; 11], None).await, StatusCode::PAYLOAD_TOO_LARGE, "too-large").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1u8; 6]), Ok(vec![2u8; 6])];
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    assert_error(put(&app, url, streamed, None).await, StatusCode::PAYLOAD_TOO_LARGE, "too-large").await;
    assert_eq!(app.download("abc123", "tenant-abc123/reports/small.bin").await.status(), StatusCode::NOT_FOUND);
    // Still usable.
    assert_eq!(put(&app, url, vec![3u8; 10], None).await.status(), StatusCode::CREATED);

    // A link bound to a type: another declared type, or bytes of another type, are refused.
    let made = link(
        &app,
        "abc123",
        json!({"key": "tenant-abc123/logos/logo.png", "method": "PUT", "content_type": "image/png"}),
    )
    .await;
    let url = made["url"].as_str().unwrap();
    let res = put(&app, url, PNG.to_vec(), Some("text/plain")).await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    let res = put(&app, url, b"%PDF-1.7 not an image".to_vec(), None).await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    let res = put(&app, url, PNG.to_vec(), Some("image/png")).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    // An existing key: refused unless the link allows an overwrite.
    let made = link(&app, "abc123", json!({"key": "tenant-abc123/reports/small.bin", "method": "PUT"})).await;
    let res = put(&app, made["url"].as_str().unwrap(), b"again".to_vec(), None).await;
    assert_error(res, StatusCode::CONFLICT, "already-exists").await;
    let made =
        link(&app, "abc123", json!({"key": "tenant-abc123/reports/small.bin", "method": "PUT", "overwrite": true}))
            .await;
    assert_eq!(made["overwrite"], true);
    assert_eq!(put(&app, made["url"].as_str().unwrap(), b"again".to_vec(), None).await.status(), StatusCode::CREATED);
    assert_eq!(app.download("abc123", "tenant-abc123/reports/small.bin").await.text().await.unwrap(), "again");
}

#[tokio::test]
async fn links_that_were_altered_expired_or_meant_for_reading_are_refused() {
    let app = spawn_app().await;
    let made =
        link(&app, "abc123", json!({"key": "tenant-abc123/reports/x.bin", "method": "PUT", "max_size": 5})).await;
    let url = made["url"].as_str().unwrap();
    for altered in [
        url.replace("max_size=5", "max_size=500000"),
        url.replace("tenant-abc123", "tenant-other"),
        url.replace("/x.bin", "/y.bin"),
        format!("{url}&overwrite=1"),
        url.split('?').next().unwrap().to_owned(),
    ] {
        let res = put(&app, &altered, b"12345".to_vec(), None).await;
        assert_error(res, StatusCode::FORBIDDEN, "bad-signature").await;
    }
    // A PUT link does not read, and a reading link does not upload.
    let res = app.client.get(url).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "bad-signature").await;
    app.uploaded("abc123", "reports", "read.bin", b"read me").await;
    let reading = link(&app, "abc123", json!({"key": "tenant-abc123/reports/read.bin"})).await;
    let res = put(&app, reading["url"].as_str().unwrap(), b"12345".to_vec(), None).await;
    assert_error(res, StatusCode::FORBIDDEN, "bad-signature").await;
    // Expired.
    let made =
        link(&app, "abc123", json!({"key": "tenant-abc123/reports/late.bin", "method": "PUT", "expires_in": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = put(&app, made["url"].as_str().unwrap(), b"12345".to_vec(), None).await;
    assert_error(res, StatusCode::FORBIDDEN, "url-expired").await;
}

#[tokio::test]
async fn making_a_link_checks_what_an_upload_would() {
    let app = spawn_app().await;
    for (body, status, code) in [
        (
            json!({"key": "tenant-abc123/reports/a.bin", "method": "PUT", "max_size": 1073741825u64}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
        ),
        (
            json!({"key": "tenant-abc123/logos/a.png", "method": "PUT", "content_type": "text/html"}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (json!({"key": "tenant-abc123/nope/a.bin", "method": "PUT"}), StatusCode::BAD_REQUEST, "unknown-category"),
        (json!({"key": "tenant-other/reports/a.bin", "method": "PUT"}), StatusCode::FORBIDDEN, "tenant-mismatch"),
        (json!({"key": "tenant-abc123/reports/a.bin", "method": "POST"}), StatusCode::BAD_REQUEST, "invalid-json"),
        (
            json!({"key": "tenant-abc123/reports/a.bin", "method": "PUT", "download": true}),
            StatusCode::BAD_REQUEST,
            "invalid-json",
        ),
        (json!({"key": "tenant-abc123/reports/a.bin", "max_size": 5}), StatusCode::BAD_REQUEST, "invalid-json"),
        (
            json!({"key": "tenant-abc123/reports/a.bin", "method": "PUT", "max_size": -1}),
            StatusCode::BAD_REQUEST,
            "invalid-json",
        ),
    ] {
        assert_error(app.presign("abc123", body.clone()).await, status, code).await;
    }
    let res = app
        .request(Method::POST, "/v1/presign", &app.read_only_token("abc123"))
        .json(&json!({"key": "tenant-abc123/reports/a.bin", "method": "PUT"}))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "read-only").await;
}
