use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{assert_error, spawn_app};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

#[tokio::test]
async fn raw_upload_returns_metadata_under_the_tenant_key() {
    let app = spawn_app().await;
    let body = b"%PDF-1.7 proposal".as_slice();
    let res = app.upload("abc123", "applications", "proposal.pdf", body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["location"], "/v1/files/tenant-abc123/applications/proposal.pdf");
    let meta: Value = res.json().await.unwrap();
    assert_eq!(meta["key"], "tenant-abc123/applications/proposal.pdf");
    assert_eq!(meta["tenant_id"], "abc123");
    assert_eq!(meta["category"], "applications");
    assert_eq!(meta["filename"], "proposal.pdf");
    assert_eq!(meta["content_type"], "application/pdf");
    assert_eq!(meta["size"], body.len());
    assert_eq!(meta["sha256"], hex::encode(Sha256::digest(body)));
    assert_eq!(meta["etag"], format!("\"{}\"", hex::encode(Sha256::digest(body))));
    assert!(meta["created_at"].as_str().unwrap().ends_with('Z'));
    // Stored under the tenant's prefix, in the documents bucket.
    let stored = app.stored_objects().await;
    assert_eq!(stored.len(), 1);
    let expected = format!("{}/tenant-abc123/applications/", app.documents_bucket);
    assert!(stored[0].starts_with(&expected), "{stored:?}");
}

#[tokio::test]
async fn multipart_upload_from_a_browser_form() {
    let app = spawn_app().await;
    let form = Form::new()
        .text("category", "logos")
        .part("file", Part::bytes(PNG.to_vec()).file_name("company-logo.png").mime_str("image/png").unwrap());
    let res =
        app.request(reqwest::Method::POST, "/v1/files", &app.token("abc123")).multipart(form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let meta: Value = res.json().await.unwrap();
    assert_eq!(meta["key"], "tenant-abc123/logos/company-logo.png");
    assert_eq!(meta["content_type"], "image/png");
    assert_eq!(meta["size"], PNG.len());
    assert!(app.stored_objects().await[0].starts_with(&format!("{}/", app.media_bucket)));
}

#[tokio::test]
async fn multipart_without_category_first_is_refused() {
    let app = spawn_app().await;
    let form = Form::new().part("file", Part::bytes(PNG.to_vec()).file_name("a.png")).text("category", "logos");
    let res = app.request(reqwest::Method::POST, "/v1/files", &app.token("abc")).multipart(form).send().await.unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-multipart").await;
    assert!(app.stored_objects().await.is_empty());
}

#[tokio::test]
async fn existing_key_conflicts_unless_overwrite() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "q1.csv", b"v1").await;
    let res = app.upload("abc", "reports", "q1.csv", "v2").await;
    assert_error(res, StatusCode::CONFLICT, "already-exists").await;

    let res = app.upload_as(&app.token("abc"), "reports", "q1.csv", "version 2", true).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = app.download("abc", "tenant-abc/reports/q1.csv").await.bytes().await.unwrap();
    assert_eq!(&body[..], b"version 2");
    // The replaced bytes are gone: one object on disk.
    assert_eq!(app.stored_objects().await.len(), 1);
}

#[tokio::test]
async fn bad_names_and_categories_are_400() {
    let app = spawn_app().await;
    for (category, filename, code) in [
        ("unknown", "a.pdf", "unknown-category"),
        ("Bad Category", "a.pdf", "invalid-category"),
        ("applications", "../escape.pdf", "invalid-filename"),
        ("applications", "a/b.pdf", "invalid-filename"),
        ("applications", "..", "invalid-filename"),
        ("applications", "a%2fb.pdf", "invalid-filename"),
        ("applications", "a\u{FF0F}b.pdf", "invalid-filename"),
        ("applications", "evil\u{202E}fdp.exe", "invalid-filename"),
        ("applications", &"x".repeat(256), "invalid-filename"),
    ] {
        let res = app.upload("abc", category, filename, "data").await;
        assert_error(res, StatusCode::BAD_REQUEST, code).await;
    }
    let res = app.request(reqwest::Method::POST, "/v1/files", &app.token("abc")).body("x").send().await.unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-query").await;
    assert!(app.stored_objects().await.is_empty());
}

#[tokio::test]
async fn over_the_category_limit_is_413_with_nothing_stored() {
    let app = spawn_app().await;
    let big = vec![0u8; 5 * 1024 * 1024 + 1];
    // Announced length over the limit: refused before streaming.
    let res = app.upload("abc", "logos", "big.png", big.clone()).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "too-large").await;
    // Unknown length (chunked): refused while streaming.
    let mut png = PNG.to_vec();
    png.resize(6 * 1024 * 1024, 0);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = png.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let res = app.upload("abc", "logos", "big.png", body).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "too-large").await;
    assert!(app.stored_objects().await.is_empty());
    let list: Value = app.list("abc", &[]).await.json().await.unwrap();
    assert_eq!(list["files"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn contradicting_bytes_decide_the_type_and_415_when_not_allowed() {
    let app = spawn_app().await;
    let res = app.upload("abc", "logos", "logo.png", "<html><script>alert(1)</script></html>").await;
    let msg = assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    assert!(msg.contains("text/html"), "{msg}");
    let res = app.upload("abc", "logos", "logo.png", b"MZ\x90\x00\x03\x00\x00\x00".as_slice()).await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    let res = app.upload("abc", "logos", "report.pdf", "%PDF-1.7").await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    assert!(app.stored_objects().await.is_empty());
    // In a document category the detected type is stored.
    let meta = app.uploaded("abc", "applications", "cv.png", b"<html><body>hi</body></html>").await;
    assert_eq!(meta["content_type"], "text/html");
}

#[tokio::test]
async fn read_only_tokens_cannot_write() {
    let app = spawn_app().await;
    let res = app.upload_as(&app.read_only_token("abc"), "reports", "a.txt", "x", false).await;
    assert_error(res, StatusCode::FORBIDDEN, "read-only").await;
    app.uploaded("abc", "reports", "a.txt", b"x").await;
    let res = app
        .request(reqwest::Method::DELETE, "/v1/files/tenant-abc/reports/a.txt", &app.read_only_token("abc"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "read-only").await;
    // …but can read, list and presign.
    let ro = app.read_only_token("abc");
    let res = app.request(reqwest::Method::GET, "/v1/files/tenant-abc/reports/a.txt", &ro).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.request(reqwest::Method::GET, "/v1/files", &ro).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .request(reqwest::Method::POST, "/v1/presign", &ro)
        .json(&serde_json::json!({"key": "tenant-abc/reports/a.txt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn nfd_and_nfc_names_are_one_key() {
    let app = spawn_app().await;
    let meta = app.uploaded("abc", "reports", "re\u{301}sume\u{301}.txt", b"x").await;
    assert_eq!(meta["key"], "tenant-abc/reports/r\u{e9}sum\u{e9}.txt");
    assert_eq!(meta["filename"], "re\u{301}sume\u{301}.txt");
    let res = app.upload("abc", "reports", "r\u{e9}sum\u{e9}.txt", "y").await;
    assert_error(res, StatusCode::CONFLICT, "already-exists").await;
}
