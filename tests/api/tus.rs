//! tus 1.0 at `/v1/uploads`, through the real server on every backend: uploads in pieces of
//! every size (S3 parts, staging objects, sealed segments and tails), the extensions, tenant
//! isolation, hostile headers and bodies, expiry, instances continuing each other's uploads.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{
    ProxyMode, TestApp, assert_error, spawn_app, spawn_app_behind_catalog_proxy, spawn_app_with, spawn_sibling,
};

const MIB: usize = 1024 * 1024;
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

/// A request body fed through a channel, so a test decides when (and whether) it ends.
fn channel_body() -> (tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>, reqwest::Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (tx, reqwest::Body::wrap_stream(stream))
}

fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k} {}", B64.encode(v))).collect::<Vec<_>>().join(",")
}

/// Deterministic bytes that no type sniffer takes for anything but data.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i as u64).wrapping_mul(2654435761) >> 7) as u8 ^ seed).collect()
}

struct Tus<'a> {
    app: &'a TestApp,
    token: String,
}

impl<'a> Tus<'a> {
    fn new(app: &'a TestApp, tenant: &str) -> Self {
        Self { app, token: app.token(tenant) }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.request(method, path, &self.token).header("tus-resumable", "1.0.0")
    }

    async fn create_raw(&self, headers: &[(&str, &str)]) -> Response {
        let mut req = self.req(Method::POST, "/v1/uploads");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// Creates an upload of `len` bytes for `category/filename`; returns its path.
    async fn create(&self, category: &str, filename: &str, len: usize) -> String {
        let meta = metadata(&[("category", category), ("filename", filename)]);
        let res = self.create_raw(&[("upload-length", &len.to_string()), ("upload-metadata", &meta)]).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        assert_eq!(res.headers()["tus-resumable"], "1.0.0");
        assert_eq!(res.headers()["upload-offset"], "0");
        res.headers()["location"].to_str().unwrap().to_owned()
    }

    async fn patch(&self, path: &str, offset: usize, body: impl Into<reqwest::Body>) -> Response {
        self.req(Method::PATCH, path)
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn head(&self, path: &str) -> Response {
        self.req(Method::HEAD, path).send().await.unwrap()
    }

    async fn offset(&self, path: &str) -> usize {
        let res = self.head(path).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
    }

    /// Sends `data` in pieces of the given sizes (the last piece takes the rest).
    async fn send_in_pieces(&self, path: &str, data: &[u8], pieces: &[usize]) -> Response {
        let mut at = 0;
        let mut last = None;
        for (i, &n) in pieces.iter().enumerate() {
            let end = if i + 1 == pieces.len() { data.len() } else { (at + n).min(data.len()) };
            let res = self.patch(path, at, data[at..end].to_vec()).await;
            assert_eq!(res.status(), StatusCode::NO_CONTENT, "piece {i}: {}", res.text().await.unwrap());
            assert_eq!(res.headers()["upload-offset"], end.to_string().as_str());
            at = end;
            last = Some(res);
        }
        last.expect("at least one piece")
    }
}

/// After an upload completed or was terminated: no partial object, staging object or open
/// multipart upload remains; the stored objects are exactly `expected` of them.
async fn assert_no_partials(app: &TestApp, expected: usize) {
    let stored = app.stored_objects().await;
    assert!(stored.iter().all(|k| !k.contains("/.tus-")), "{stored:?}");
    assert_eq!(stored.len(), expected, "{stored:?}");
    if std::env::var("COFFER_TEST_STORAGE").as_deref() == Ok("s3") {
        for bucket in [&app.documents_bucket, &app.media_bucket] {
            let open = open_multipart_uploads(app, bucket).await;
            assert!(open.is_empty(), "open multipart uploads in {bucket}: {open:?}");
        }
    }
}

/// The multipart uploads open in `bucket`: listed by the server, or — s3s-fs does not
/// implement ListMultipartUploads — read from its root directory (COFFER_TEST_S3_ROOT), where
/// each open upload has a metadata file until it is completed or aborted.
async fn open_multipart_uploads(app: &TestApp, bucket: &str) -> Vec<String> {
    match app.s3_client().list_multipart_uploads().bucket(bucket).send().await {
        Ok(out) => out.uploads().iter().filter_map(|u| u.key().map(str::to_owned)).collect(),
        Err(_) => {
            let root = std::env::var("COFFER_TEST_S3_ROOT").expect("COFFER_TEST_S3_ROOT (run scripts/test)");
            let prefix = format!(".bucket-{}.object-", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bucket));
            std::fs::read_dir(root)
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix) && n.contains(".upload-"))
                .collect()
        }
    }
}

async fn assert_downloads(app: &TestApp, tenant: &str, key: &str, data: &[u8]) {
    let res = app.download(tenant, key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let got = res.bytes().await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..] == data[..], "downloaded bytes differ");
}

#[tokio::test]
async fn options_announces_the_protocol_and_its_extensions() {
    let app = spawn_app().await;
    let res = app.client.request(Method::OPTIONS, app.url("/v1/uploads")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let h = res.headers();
    assert_eq!(h["tus-resumable"], "1.0.0");
    assert_eq!(h["tus-version"], "1.0.0");
    let ext = h["tus-extension"].to_str().unwrap();
    for e in ["creation", "creation-with-upload", "creation-defer-length", "termination", "expiration", "checksum"] {
        assert!(ext.split(',').any(|x| x == e), "{ext}");
    }
    assert_eq!(h["tus-checksum-algorithm"], "sha1,sha256");
    assert_eq!(h["tus-max-size"], "1073741824");
}

#[tokio::test]
async fn a_file_sent_in_pieces_of_every_size_is_stored_like_a_plain_upload() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    // 1 byte (type undecided), 70 KiB (a sealed segment and a tail), 6 MiB (an S3 part), 3 MiB
    // (staged), 2 MiB (staged with the rest: a part), then the last 300,001 bytes.
    let pieces = [1, 70 * 1024, 6 * MIB, 3 * MIB, 2 * MIB, 0];
    let total: usize = pieces.iter().sum::<usize>() + 300_001;
    let data = bytes(total, 7);
    let path = tus.create("reports", "q3 report.bin", total).await;
    assert!(path.starts_with("/v1/uploads/") && path.len() == "/v1/uploads/".len() + 32, "{path}");
    let last = tus.send_in_pieces(&path, &data, &pieces).await;
    let sha = hex::encode(Sha256::digest(&data));
    assert_eq!(last.headers()["coffer-file-key"], "tenant-abc123/reports/q3 report.bin");
    assert_eq!(last.headers()["coffer-file-sha256"], sha.as_str());
    assert_eq!(last.headers()["content-location"], "/v1/files/tenant-abc123/reports/q3%20report.bin");

    // As a plain upload would have it: listed, with its size, sha256 and type.
    let listed: Value = app.list("abc123", &[("category", "reports")]).await.json().await.unwrap();
    let file = &listed["files"][0];
    assert_eq!(file["key"], "tenant-abc123/reports/q3 report.bin");
    assert_eq!(file["size"], total);
    assert_eq!(file["sha256"], sha);
    assert_eq!(file["content_type"], "application/octet-stream");
    assert_downloads(&app, "abc123", "tenant-abc123/reports/q3 report.bin", &data).await;

    // The finished upload answers HEAD with its file, and takes no more bytes.
    let head = tus.head(&path).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["upload-offset"], total.to_string().as_str());
    assert_eq!(head.headers()["coffer-file-sha256"], sha.as_str());
    assert_error(tus.patch(&path, total, Vec::new()).await, StatusCode::CONFLICT, "upload-completed").await;
    assert_error(tus.patch(&path, 0, b"x".to_vec()).await, StatusCode::CONFLICT, "upload-completed").await;
    assert_no_partials(&app, 1).await;
}

#[tokio::test]
async fn many_small_pieces_and_exact_segment_boundaries() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    // Ends exactly on a 64 KiB segment boundary, reached by pieces that cross and meet it.
    let total = 3 * 65536;
    let data = bytes(total, 3);
    let path = tus.create("exports", "data.bin", total).await;
    let pieces = [100, 65436, 65536, 1, 65535 - 1, 0];
    tus.send_in_pieces(&path, &data, &pieces).await;
    assert_downloads(&app, "abc123", "tenant-abc123/exports/data.bin", &data).await;
    assert_no_partials(&app, 1).await;
}

#[tokio::test]
async fn creation_with_upload_deferred_length_and_empty_uploads() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    let meta = metadata(&[("category", "reports"), ("filename", "whole.pdf")]);
    let pdf = b"%PDF-1.7 sent with the creation request".to_vec();
    // creation-with-upload: the whole file in the POST.
    let res = tus
        .req(Method::POST, "/v1/uploads")
        .header("upload-length", pdf.len().to_string())
        .header("upload-metadata", &meta)
        .header("content-type", "application/offset+octet-stream")
        .body(pdf.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["upload-offset"], pdf.len().to_string().as_str());
    assert_eq!(res.headers()["coffer-file-key"], "tenant-abc123/reports/whole.pdf");
    let listed: Value = app.list("abc123", &[]).await.json().await.unwrap();
    assert_eq!(listed["files"][0]["content_type"], "application/pdf");

    // creation-defer-length: the length comes with a later PATCH.
    let meta = metadata(&[("category", "reports"), ("filename", "later.bin")]);
    let res = tus.create_raw(&[("upload-defer-length", "1"), ("upload-metadata", &meta)]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let path = res.headers()["location"].to_str().unwrap().to_owned();
    let head = tus.head(&path).await;
    assert_eq!(head.headers()["upload-defer-length"], "1");
    assert!(head.headers().get("upload-length").is_none());
    let data = bytes(200_000, 1);
    assert_eq!(tus.patch(&path, 0, data[..150_000].to_vec()).await.status(), StatusCode::NO_CONTENT);
    // A length below what arrived is refused.
    let res = tus
        .req(Method::PATCH, &path)
        .header("upload-offset", "150000")
        .header("upload-length", "100")
        .header("content-type", "application/offset+octet-stream")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-upload").await;
    let res = tus
        .req(Method::PATCH, &path)
        .header("upload-offset", "150000")
        .header("upload-length", "200000")
        .header("content-type", "application/offset+octet-stream")
        .body(data[150_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["upload-length"], "200000");
    assert_downloads(&app, "abc123", "tenant-abc123/reports/later.bin", &data).await;

    // An empty upload is complete at creation.
    let meta = metadata(&[("category", "reports"), ("filename", "empty.txt")]);
    let res = tus.create_raw(&[("upload-length", "0"), ("upload-metadata", &meta)]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["coffer-file-sha256"], hex::encode(Sha256::digest(b"")).as_str());
    assert_downloads(&app, "abc123", "tenant-abc123/reports/empty.txt", b"").await;
    assert_no_partials(&app, 3).await;
}

#[tokio::test]
async fn another_tenant_gets_the_answer_of_a_missing_upload() {
    let app = spawn_app().await;
    let owner = Tus::new(&app, "owner");
    let other = Tus::new(&app, "other");
    let path = owner.create("reports", "secret.bin", 10).await;
    assert_eq!(owner.patch(&path, 0, b"12345".to_vec()).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(other.head(&path).await.status(), StatusCode::NOT_FOUND);
    assert_error(other.patch(&path, 5, b"67890".to_vec()).await, StatusCode::NOT_FOUND, "upload-not-found").await;
    let res = other.req(Method::DELETE, &path).send().await.unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "upload-not-found").await;
    // Ids that are not ids, and one that does not exist, answer the same.
    for id in ["nope", "../../x", &"f".repeat(32), &"A".repeat(32), &"0".repeat(300)] {
        let res = owner.patch(&format!("/v1/uploads/{id}"), 0, b"x".to_vec()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{id}");
    }
    // The owner's upload is untouched.
    assert_eq!(owner.offset(&path).await, 5);
    assert_eq!(owner.patch(&path, 5, b"67890".to_vec()).await.status(), StatusCode::NO_CONTENT);
    assert_downloads(&app, "owner", "tenant-owner/reports/secret.bin", b"1234567890").await;
}

#[tokio::test]
async fn hostile_headers_get_clear_errors_and_change_nothing() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    let meta = metadata(&[("category", "reports"), ("filename", "a.bin")]);
    let bad = StatusCode::BAD_REQUEST;
    // Creation.
    for (headers, status, code) in [
        (vec![("upload-length", "-1"), ("upload-metadata", meta.as_str())], bad, "invalid-upload"),
        (vec![("upload-length", "+5"), ("upload-metadata", meta.as_str())], bad, "invalid-upload"),
        (vec![("upload-length", "5 5"), ("upload-metadata", meta.as_str())], bad, "invalid-upload"),
        (vec![("upload-length", "99999999999999999999999"), ("upload-metadata", meta.as_str())], bad, "invalid-upload"),
        (
            vec![("upload-length", "1073741825"), ("upload-metadata", meta.as_str())],
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
        ),
        (
            vec![("upload-length", "5"), ("upload-defer-length", "1"), ("upload-metadata", meta.as_str())],
            bad,
            "invalid-upload",
        ),
        (vec![("upload-defer-length", "2"), ("upload-metadata", meta.as_str())], bad, "invalid-upload"),
        (vec![("upload-metadata", meta.as_str())], bad, "invalid-upload"),
        (vec![("upload-length", "5")], bad, "invalid-upload"),
        (vec![("upload-length", "5"), ("upload-metadata", "filename !!!")], bad, "invalid-upload"),
        (
            vec![("upload-length", "5"), ("upload-metadata", "category cmVwb3J0cw==,category cmVwb3J0cw==")],
            bad,
            "invalid-upload",
        ),
        // A header sent twice: which value was meant is not for the server to guess.
        (
            vec![("upload-length", "5"), ("upload-length", "9"), ("upload-metadata", meta.as_str())],
            bad,
            "invalid-upload",
        ),
        (
            vec![("upload-defer-length", "1"), ("upload-defer-length", "1"), ("upload-metadata", meta.as_str())],
            bad,
            "invalid-upload",
        ),
        (
            vec![
                ("upload-length", "5"),
                ("upload-metadata", "category cmVwb3J0cw=="),
                ("upload-metadata", "filename YS5iaW4="),
            ],
            bad,
            "invalid-upload",
        ),
    ] {
        let res = tus.create_raw(&headers).await;
        assert_error(res, status, code).await;
    }
    let long = "x".repeat(5000);
    let res = tus.create_raw(&[("upload-length", "5"), ("upload-metadata", &long)]).await;
    assert_error(res, bad, "invalid-upload").await;
    for (pairs, status, code) in [
        (vec![("category", "nope"), ("filename", "a.bin")], bad, "unknown-category"),
        (vec![("category", "reports"), ("filename", "../etc/passwd")], bad, "invalid-filename"),
        (vec![("category", "reports"), ("filename", "")], bad, "invalid-upload"),
        (vec![("category", "reports"), ("filename", "a.bin"), ("overwrite", "maybe")], bad, "invalid-upload"),
        (
            vec![("category", "logos"), ("filename", "logo.png"), ("content_type", "text/xsl")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
    ] {
        let res = tus.create_raw(&[("upload-length", "5"), ("upload-metadata", &metadata(&pairs))]).await;
        assert_error(res, status, code).await;
    }
    // Without the protocol header: 412 and the version this server speaks.
    let res = app.request(Method::POST, "/v1/uploads", &tus.token).header("upload-length", "5").send().await.unwrap();
    assert_eq!(res.headers()["tus-version"], "1.0.0");
    assert_error(res, StatusCode::PRECONDITION_FAILED, "tus-version-unsupported").await;
    let res =
        app.request(Method::POST, "/v1/uploads", &tus.token).header("tus-resumable", "0.2.2").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    // Without a token.
    let res = app.client.post(app.url("/v1/uploads")).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "missing-token").await;

    // Appends.
    let path = tus.create("reports", "a.bin", 10).await;
    assert_eq!(tus.patch(&path, 0, b"01234".to_vec()).await.status(), StatusCode::NO_CONTENT);
    let res = tus.patch(&path, 3, b"34567".to_vec()).await;
    assert_error(res, StatusCode::CONFLICT, "offset-mismatch").await;
    let res = tus.patch(&path, 6, b"6789".to_vec()).await;
    assert_error(res, StatusCode::CONFLICT, "offset-mismatch").await;
    for offset in ["-5", "5.0", "", "0x5", "99999999999999999999"] {
        let res = tus
            .req(Method::PATCH, &path)
            .header("upload-offset", offset)
            .header("content-type", "application/offset+octet-stream")
            .body(b"x".to_vec())
            .send()
            .await
            .unwrap();
        assert_error(res, bad, "invalid-upload").await;
    }
    // Two offsets, two checksums or two types in one append: refused, nothing appended.
    let sha1 =
        |b: &[u8]| format!("sha1 {}", B64.encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, b)));
    let (right, wrong) = (sha1(b"56789"), sha1(b"x"));
    let octets = "application/offset+octet-stream";
    for headers in [
        vec![("upload-offset", "5"), ("upload-offset", "0"), ("content-type", octets)],
        vec![("upload-offset", "0"), ("upload-offset", "5"), ("content-type", octets)],
        vec![
            ("upload-offset", "5"),
            ("upload-checksum", right.as_str()),
            ("upload-checksum", wrong.as_str()),
            ("content-type", octets),
        ],
        vec![("upload-offset", "5"), ("content-type", octets), ("content-type", octets)],
    ] {
        let mut req = tus.req(Method::PATCH, &path);
        for (name, value) in &headers {
            req = req.header(*name, *value);
        }
        let res = req.body(b"56789".to_vec()).send().await.unwrap();
        assert_error(res, bad, "invalid-upload").await;
        assert_eq!(tus.offset(&path).await, 5, "{headers:?}");
    }
    let res = tus.req(Method::PATCH, &path).header("upload-offset", "5").body(b"56789".to_vec()).send().await.unwrap();
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    let res = tus
        .req(Method::PATCH, &path)
        .header("upload-offset", "5")
        .header("content-type", "application/octet-stream")
        .body(b"56789".to_vec())
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    // Past the length: refused, nothing of it kept.
    let res = tus.patch(&path, 5, b"56789-and-more".to_vec()).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "upload-length-exceeded").await;
    assert_eq!(tus.offset(&path).await, 5);
    // A different length than announced.
    let res = tus
        .req(Method::PATCH, &path)
        .header("upload-offset", "5")
        .header("upload-length", "11")
        .header("content-type", "application/offset+octet-stream")
        .body(b"56789".to_vec())
        .send()
        .await
        .unwrap();
    assert_error(res, bad, "invalid-upload").await;
    assert_eq!(tus.patch(&path, 5, b"56789".to_vec()).await.status(), StatusCode::NO_CONTENT);
    assert_downloads(&app, "abc123", "tenant-abc123/reports/a.bin", b"0123456789").await;

    // An existing key without overwrite is refused at creation; with it, replaced.
    let res = tus.create_raw(&[("upload-length", "3"), ("upload-metadata", &meta)]).await;
    assert_error(res, StatusCode::CONFLICT, "already-exists").await;
    let meta_over = metadata(&[("category", "reports"), ("filename", "a.bin"), ("overwrite", "true")]);
    let res = tus.create_raw(&[("upload-length", "3"), ("upload-metadata", &meta_over)]).await;
    let path = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(tus.patch(&path, 0, b"new".to_vec()).await.status(), StatusCode::NO_CONTENT);
    assert_downloads(&app, "abc123", "tenant-abc123/reports/a.bin", b"new").await;
}

#[tokio::test]
async fn the_first_bytes_decide_the_type() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    // A logo whose bytes are a PDF: refused at the first bytes, and the upload is gone.
    let path = tus.create("logos", "logo.png", 20_000).await;
    let res = tus.patch(&path, 0, [b"%PDF-1.7 ".as_slice(), &bytes(19_991, 0)].concat()).await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    assert_eq!(tus.head(&path).await.status(), StatusCode::NOT_FOUND);
    // The same refusal when the first bytes arrive one by one: decided once 8 KiB are in.
    let path = tus.create("logos", "logo.png", 20_000).await;
    let pdf = [b"%PDF-1.7 ".as_slice(), &bytes(19_991, 0)].concat();
    let mut at = 0;
    for n in [1, 3, 5000] {
        assert_eq!(tus.patch(&path, at, pdf[at..at + n].to_vec()).await.status(), StatusCode::NO_CONTENT);
        at += n;
    }
    let res = tus.patch(&path, at, pdf[at..].to_vec()).await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    // Sent with the creation, the refusal is the creation's answer, and nothing is left.
    let meta = metadata(&[("category", "logos"), ("filename", "logo.png")]);
    let res = tus
        .req(Method::POST, "/v1/uploads")
        .header("upload-length", "20000")
        .header("upload-metadata", meta)
        .header("content-type", "application/offset+octet-stream")
        .body(pdf.clone())
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type").await;
    // A real PNG in small pieces is taken, typed from its bytes.
    let png = PNG;
    let path = tus.create("logos", "pixel.png", png.len()).await;
    tus.send_in_pieces(&path, png, &[2, 10, 0]).await;
    let listed: Value = app.list("abc123", &[("category", "logos")]).await.json().await.unwrap();
    assert_eq!(listed["files"][0]["content_type"], "image/png");
    assert_no_partials(&app, 1).await;
}

#[tokio::test]
async fn checksums_are_verified_per_append() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    // The second append is long enough to be hashed off the request's task.
    let data = bytes(40_000 + 5 * MIB, 9);
    let path = tus.create("reports", "summed.bin", data.len()).await;
    let patch = |offset: usize, body: Vec<u8>, checksum: String| {
        tus.req(Method::PATCH, &path)
            .header("upload-offset", offset.to_string())
            .header("upload-checksum", checksum)
            .header("content-type", "application/offset+octet-stream")
            .body(body)
            .send()
    };
    let sha1 = |b: &[u8]| B64.encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, b));
    let sha256 = |b: &[u8]| B64.encode(Sha256::digest(b));
    let res = patch(0, data[..40_000].to_vec(), format!("sha1 {}", sha1(&data[..40_000]))).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // A mismatch: 460, and the bytes are not taken.
    let res = patch(40_000, data[40_000..].to_vec(), format!("sha256 {}", sha256(b"other"))).await.unwrap();
    assert_error(res, StatusCode::from_u16(460).unwrap(), "checksum-mismatch").await;
    assert_eq!(tus.offset(&path).await, 40_000);
    let res = patch(40_000, data[40_000..].to_vec(), "md5 AAAA".into()).await.unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "checksum-unsupported").await;
    let res = patch(40_000, data[40_000..].to_vec(), "sha256 not-base64!".into()).await.unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-upload").await;
    let res = patch(40_000, data[40_000..].to_vec(), format!("sha256 {}", sha256(&data[40_000..]))).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_downloads(&app, "abc123", "tenant-abc123/reports/summed.bin", &data).await;
    assert_no_partials(&app, 1).await;
}

#[tokio::test]
async fn termination_releases_the_bytes() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    let path = tus.create("reports", "gone.bin", 8 * MIB).await;
    assert_eq!(tus.patch(&path, 0, bytes(6 * MIB + 5, 2)).await.status(), StatusCode::NO_CONTENT);
    let res = tus.req(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(tus.head(&path).await.status(), StatusCode::NOT_FOUND);
    assert_error(tus.patch(&path, 6 * MIB + 5, b"x".to_vec()).await, StatusCode::NOT_FOUND, "upload-not-found").await;
    assert_no_partials(&app, 0).await;
    // Read-only tokens may not create, append or terminate.
    let ro = app.read_only_token("abc123");
    let res = app
        .request(Method::POST, "/v1/uploads", &ro)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "3")
        .header("upload-metadata", metadata(&[("category", "reports"), ("filename", "r.bin")]))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "read-only").await;
}

#[tokio::test]
async fn unfinished_uploads_count_toward_the_quota() {
    let app = spawn_app_with(&[("COFFER_QUOTA_BYTES", "1000")]).await;
    let tus = Tus::new(&app, "abc123");
    let meta = |name: &str| metadata(&[("category", "reports"), ("filename", name)]);
    let res = tus.create_raw(&[("upload-length", "1001"), ("upload-metadata", &meta("big.bin"))]).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "quota-exceeded").await;
    let first = tus.create("reports", "first.bin", 600).await;
    // 600 bytes are reserved by the first upload: 600 more do not fit, in either kind of upload.
    let res = tus.create_raw(&[("upload-length", "600"), ("upload-metadata", &meta("second.bin"))]).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "quota-exceeded").await;
    let res = app.upload("abc123", "reports", "plain.bin", vec![1u8; 600]).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "quota-exceeded").await;
    // A deferred length is held to the room left while its bytes arrive.
    let res = tus.create_raw(&[("upload-defer-length", "1"), ("upload-metadata", &meta("deferred.bin"))]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let deferred = res.headers()["location"].to_str().unwrap().to_owned();
    let res = tus.patch(&deferred, 0, vec![3u8; 401]).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "quota-exceeded").await;
    assert_eq!(tus.offset(&deferred).await, 0);
    assert_eq!(tus.patch(&deferred, 0, vec![3u8; 400]).await.status(), StatusCode::NO_CONTENT);
    // Terminating the deferred one frees its room; the first completes.
    assert_eq!(tus.req(Method::DELETE, &deferred).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(tus.patch(&first, 0, vec![1u8; 600]).await.status(), StatusCode::NO_CONTENT);
    let usage: Value = app.request(Method::GET, "/v1/usage", &tus.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(usage["bytes"], 600, "{usage}");
}

#[tokio::test]
async fn expired_uploads_are_gone_and_reconcile_releases_their_bytes() {
    let app = spawn_app_with(&[("COFFER_UPLOAD_EXPIRY", "1s")]).await;
    let tus = Tus::new(&app, "abc123");
    let path = tus.create("reports", "late.bin", 7 * MIB).await;
    assert_eq!(tus.patch(&path, 0, bytes(5 * MIB + 3, 1)).await.status(), StatusCode::NO_CONTENT);
    let res = tus.head(&path).await;
    let expires = httpdate::parse_http_date(res.headers()["upload-expires"].to_str().unwrap()).unwrap();
    assert!(expires > std::time::SystemTime::now() - Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(tus.head(&path).await.status(), StatusCode::NOT_FOUND);
    let report = app.service.reconciler(Duration::ZERO, false).run().await;
    assert_eq!(report.expired_uploads, 1, "{}", report.summary());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_no_partials(&app, 0).await;
    assert_error(tus.patch(&path, 5 * MIB + 3, b"x".to_vec()).await, StatusCode::NOT_FOUND, "upload-not-found").await;
    // A reconcile right after leaves live uploads alone.
    let live = tus.create("reports", "live.bin", 10).await;
    assert_eq!(tus.patch(&live, 0, b"01234".to_vec()).await.status(), StatusCode::NO_CONTENT);
    let report = app.service.reconciler(Duration::ZERO, false).run().await;
    assert_eq!(report.expired_uploads, 0);
    assert_eq!(report.orphans_removed + report.leftovers_removed, 0, "{}", report.summary());
    assert_eq!(tus.patch(&live, 5, b"56789".to_vec()).await.status(), StatusCode::NO_CONTENT);
    assert_downloads(&app, "abc123", "tenant-abc123/reports/live.bin", b"0123456789").await;
}

#[tokio::test]
async fn instances_continue_each_others_uploads_and_one_writer_wins_a_race() {
    let first = spawn_app().await;
    let second = spawn_sibling(&first).await;
    let one = Tus::new(&first, "abc123");
    let two = Tus::new(&second, "abc123");
    let data = bytes(12 * MIB + 17, 4);
    let path = one.create("exports", "shared.bin", data.len()).await;
    assert_eq!(one.patch(&path, 0, data[..5 * MIB + 1].to_vec()).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(two.offset(&path).await, 5 * MIB + 1);
    assert_eq!(
        two.patch(&path, 5 * MIB + 1, data[5 * MIB + 1..9 * MIB].to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );

    // Two appends at the same offset through the two instances, the first still streaming:
    // the second is refused (busy, or the offset moved), never both taken.
    let (tx, slow) = channel_body();
    let racing = one.patch(&path, 9 * MIB, slow);
    let other = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let res = two.patch(&path, 9 * MIB, data[9 * MIB..].to_vec()).await;
        let status = res.status();
        assert!(status == StatusCode::LOCKED || status == StatusCode::CONFLICT, "{status}");
        tx.send(Ok(data[9 * MIB..].to_vec())).await.unwrap();
        drop(tx);
    };
    let (res, ()) = tokio::join!(racing, other);
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_downloads(&first, "abc123", "tenant-abc123/exports/shared.bin", &data).await;
    assert_no_partials(&first, 1).await;
}

/// A client may send its next chunk before the previous one is answered: on the instance
/// running the previous append, the request waits its turn (unread) instead of being refused
/// as busy, and lands right after it. Behind an append that fails, it gets the upload's true
/// offset (409) and stores nothing.
#[tokio::test]
async fn an_append_sent_before_the_previous_one_is_answered_waits_its_turn() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    let data = bytes(12 * MIB + 5, 6);
    for cut in [false, true] {
        let name = if cut { "cut-queued.bin" } else { "queued.bin" };
        let path = tus.create("exports", name, data.len()).await;
        let (tx, slow) = channel_body();
        let first = tus
            .req(Method::PATCH, &path)
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(slow)
            .send();
        let second = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tus.patch(&path, 6 * MIB, data[6 * MIB..].to_vec()).await
        };
        let feed = async {
            let tx = tx; // dropped at the end: the body ends
            // The second request is waiting by now; the first's bytes come only then.
            tokio::time::sleep(Duration::from_millis(800)).await;
            for (i, piece) in data[..6 * MIB].chunks(MIB).enumerate() {
                if cut && i == 1 {
                    tx.send(Err(std::io::Error::other("connection lost"))).await.unwrap();
                    return;
                }
                tx.send(Ok(piece.to_vec())).await.unwrap();
            }
        };
        let (first, second, ()) = tokio::join!(first, second, feed);
        if !cut {
            let first = first.unwrap();
            assert_eq!(first.status(), StatusCode::NO_CONTENT, "{}", first.text().await.unwrap());
            assert_eq!(second.status(), StatusCode::NO_CONTENT, "{}", second.text().await.unwrap());
            assert_downloads(&app, "abc123", &format!("tenant-abc123/exports/{name}"), &data).await;
            continue;
        }
        assert!(first.is_err(), "the client's own body failed");
        assert_eq!(second.status(), StatusCode::CONFLICT);
        let held: usize = second.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
        assert!(held <= MIB, "{held}");
        assert_error(second, StatusCode::CONFLICT, "offset-mismatch").await;
        assert_eq!(tus.offset(&path).await, held);
        let res = tus.patch(&path, held, data[held..].to_vec()).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap());
        assert_downloads(&app, "abc123", &format!("tenant-abc123/exports/{name}"), &data).await;
    }
    assert_no_partials(&app, 2).await;
}

/// The instance running an append hands the upload's lock to the append waiting behind it, and
/// lets it go once nobody waits: whatever the append that took it over did (appended, claimed a
/// wrong offset, lost its connection), another instance continues the upload at once instead
/// of finding it locked for the rest of a lease.
#[tokio::test]
async fn a_lock_handed_over_is_free_for_another_instance_once_nobody_waits() {
    let first = spawn_app().await;
    let second = spawn_sibling(&first).await;
    let (one, two) = (Tus::new(&first, "abc123"), Tus::new(&second, "abc123"));
    let data = bytes(12 * MIB, 8);
    for behind in ["appends", "wrong-offset", "cut"] {
        let name = format!("handed-{behind}.bin");
        let path = one.create("exports", &name, data.len()).await;
        let (tx, slow) = channel_body();
        let (queued_tx, queued_body) = channel_body();
        let (answered, on_answer) = tokio::sync::oneshot::channel();
        let running = async {
            let res = one.patch(&path, 0, slow).await;
            answered.send(()).unwrap();
            res
        };
        let claim = if behind == "wrong-offset" { 3 * MIB } else { 4 * MIB };
        let queued = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            one.req(Method::PATCH, &path)
                .header("upload-offset", claim.to_string())
                .header("content-type", "application/offset+octet-stream")
                .body(queued_body)
                .send()
                .await
        };
        let feed = async {
            // The queued request waits by now; the running one's bytes come only then.
            tokio::time::sleep(Duration::from_millis(500)).await;
            tx.send(Ok(data[..4 * MIB].to_vec())).await.unwrap();
            drop(tx);
            on_answer.await.unwrap();
            match behind {
                "appends" => queued_tx.send(Ok(data[4 * MIB..8 * MIB].to_vec())).await.unwrap(),
                "cut" => queued_tx.send(Err(std::io::Error::other("connection lost"))).await.unwrap(),
                _ => {}
            }
            drop(queued_tx);
        };
        let (running, queued, ()) = tokio::join!(running, queued, feed);
        assert_eq!(running.status(), StatusCode::NO_CONTENT, "{behind}");
        let offset = match behind {
            "appends" => {
                let queued = queued.unwrap();
                assert_eq!(queued.status(), StatusCode::NO_CONTENT, "{}", queued.text().await.unwrap());
                8 * MIB
            }
            "wrong-offset" => {
                let queued = queued.unwrap();
                assert_eq!(queued.headers()["upload-offset"], (4 * MIB).to_string().as_str());
                assert_error(queued, StatusCode::CONFLICT, "offset-mismatch").await;
                4 * MIB
            }
            _ => {
                assert!(queued.is_err(), "the client's own body failed");
                4 * MIB
            }
        };
        assert_eq!(two.offset(&path).await, offset, "{behind}");
        // Answered appends leave the lock free before they answer; a cut one as soon as the
        // server sees the cut (well within the 10 s lease).
        let mut res = two.patch(&path, offset, data[offset..].to_vec()).await;
        for _ in 0..30 {
            if behind != "cut" || res.status() != StatusCode::LOCKED {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            res = two.patch(&path, offset, data[offset..].to_vec()).await;
        }
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{behind}: {}", res.text().await.unwrap());
        assert_downloads(&first, "abc123", &format!("tenant-abc123/exports/{name}"), &data).await;
    }
    assert_no_partials(&first, 3).await;
}

/// An append writes while the one before it is made durable and recorded. When that record
/// fails (the catalog goes away at that moment), the append written on top is not recorded
/// either: it answers 409 with the offset the catalog holds, frees the upload, and the client's
/// retry from there completes it with every byte right. PostgreSQL suite: the catalog sits
/// behind a proxy that drops its connections.
#[tokio::test]
async fn an_append_written_on_top_of_one_whose_record_fails_is_not_recorded_either() {
    if std::env::var("COFFER_TEST_CATALOG").as_deref() != Ok("postgres") {
        return;
    }
    let (app, proxy, _) = spawn_app_behind_catalog_proxy(&[("COFFER_CATALOG_TIMEOUT", "1s")]).await;
    let tus = Tus::new(&app, "abc123");
    let data = bytes(12 * MIB, 10);
    let path = tus.create("exports", "unrecorded.bin", data.len()).await;
    assert_eq!(tus.patch(&path, 0, data[..4 * MIB].to_vec()).await.status(), StatusCode::NO_CONTENT);

    let (below_tx, below_body) = channel_body();
    let (above_tx, above_body) = channel_body();
    let (answered, on_answer) = tokio::sync::oneshot::channel();
    let below = async {
        let res = tus.patch(&path, 4 * MIB, below_body).await;
        answered.send(()).unwrap();
        res
    };
    let above = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tus.req(Method::PATCH, &path)
            .header("upload-offset", (8 * MIB).to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(above_body)
            .send()
            .await
            .unwrap()
    };
    let feed = async {
        // The append above waits its turn by now. The catalog goes away, then the bytes below
        // arrive: they are written and handed over, but cannot be recorded.
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.set(ProxyMode::Refuse);
        // The proxy drops established connections within 20 ms.
        tokio::time::sleep(Duration::from_millis(200)).await;
        below_tx.send(Ok(data[4 * MIB..8 * MIB].to_vec())).await.unwrap();
        drop(below_tx);
        on_answer.await.unwrap();
        proxy.set(ProxyMode::Open);
        // The catalog answers again (the upload as it recorded it), then the bytes above come.
        for _ in 0..50 {
            if tus.head(&path).await.status() == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        above_tx.send(Ok(data[8 * MIB..].to_vec())).await.unwrap();
        drop(above_tx);
    };
    let (below, above, ()) = tokio::join!(below, above, feed);
    assert!(below.status().is_server_error(), "the record below failed: {}", below.status());
    assert_eq!(above.headers()["upload-offset"], (4 * MIB).to_string().as_str());
    assert_error(above, StatusCode::CONFLICT, "offset-mismatch").await;
    assert_eq!(tus.offset(&path).await, 4 * MIB);

    // The upload is free again (at once, or once the lock's lease runs out if freeing it failed).
    let mut res = tus.patch(&path, 4 * MIB, data[4 * MIB..].to_vec()).await;
    for _ in 0..150 {
        if res.status() != StatusCode::LOCKED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        res = tus.patch(&path, 4 * MIB, data[4 * MIB..].to_vec()).await;
    }
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap());
    assert_downloads(&app, "abc123", "tenant-abc123/exports/unrecorded.bin", &data).await;
    assert_no_partials(&app, 1).await;
}

#[tokio::test]
async fn an_interrupted_append_keeps_what_arrived() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    let data = bytes(3 * MIB, 5);
    let path = tus.create("reports", "cut.bin", data.len()).await;
    // The client sends 1 MiB, then its connection fails.
    let (tx, body) = channel_body();
    tx.send(Ok(data[..MIB].to_vec())).await.unwrap();
    let cut = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(Err(std::io::Error::other("connection lost"))).await.unwrap();
    };
    let (res, ()) = tokio::join!(
        tus.req(Method::PATCH, &path)
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(body)
            .send(),
        cut
    );
    assert!(res.is_err(), "the client's own body failed");
    // The server kept what arrived (once it noticed); the client resumes from there.
    let mut offset = 0;
    for _ in 0..50 {
        offset = tus.offset(&path).await;
        if offset > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(offset > 0 && offset <= MIB, "{offset}");
    let mut res = tus.patch(&path, offset, data[offset..].to_vec()).await;
    for _ in 0..50 {
        if res.status() != StatusCode::LOCKED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        res = tus.patch(&path, offset, data[offset..].to_vec()).await;
    }
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap());
    assert_downloads(&app, "abc123", "tenant-abc123/reports/cut.bin", &data).await;
}

#[tokio::test]
async fn browsers_of_allowed_origins_may_speak_tus() {
    let app = spawn_app_with(&[("COFFER_CORS_ORIGINS", "https://app.example")]).await;
    let res = app
        .client
        .request(Method::OPTIONS, app.url("/v1/uploads/0123456789abcdef0123456789abcdef"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "authorization,tus-resumable,upload-offset,content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let allowed = res.headers()["access-control-allow-methods"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("patch"), "{allowed}");
    let headers = res.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    for h in ["tus-resumable", "upload-offset", "upload-length", "upload-metadata", "upload-checksum"] {
        assert!(headers.contains(h), "{headers}");
    }
    let tus = Tus::new(&app, "abc123");
    let meta = metadata(&[("category", "reports"), ("filename", "c.bin")]);
    let res = tus
        .req(Method::POST, "/v1/uploads")
        .header("origin", "https://app.example")
        .header("upload-length", "3")
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap();
    let exposed = res.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    for h in ["location", "upload-offset", "tus-resumable", "upload-length", "coffer-file-sha256"] {
        assert!(exposed.contains(h), "{exposed}");
    }
}

/// How far a server got in completing an upload before it died.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum DiedAfter {
    /// Every byte appended and recorded, the lock still its.
    Recording,
    /// The partial object made the file's bytes.
    Finishing,
    /// The file row committed; only the upload's own record missed it.
    Committing,
}

/// Leaves `path` (all of `data` but the last 1,000 bytes received) as a server that died
/// while completing it would: the last bytes appended through the store and recorded with the
/// lock kept, then as far as `stage` goes; the dead server's lock has run out.
async fn die_while_completing(app: &TestApp, tenant: &str, path: &str, data: &[u8], stage: DiedAfter) {
    use coffer::service::resumable::ResumableSha256;
    let catalog = app.catalog().await;
    let t = crate::helpers::tenant(tenant);
    let id = path.rsplit('/').next().unwrap();
    let at = data.len() - 1000;
    let mut s = catalog.lock_session(&t, id, at as u64, "dead", Duration::ZERO).await.unwrap().expect("lockable");
    use coffer::blob::Lengths;
    let last: coffer::blob::ByteStream =
        Box::pin(futures::stream::iter([Ok(bytes::Bytes::copy_from_slice(&data[at..]))]));
    let (state, n) = app
        .blobs
        .partial_append(
            &s.blob.bucket,
            &s.blob.blob,
            &s.engine_state,
            s.offset,
            last,
            Lengths { body: Some(1000), object: Some(data.len() as u64) },
        )
        .await
        .unwrap();
    assert_eq!(n, 1000);
    let mut hasher = ResumableSha256::decode(&s.hasher).unwrap();
    hasher.update(&data[at..]);
    s.hasher = hasher.encode();
    s.engine_state = state;
    s.offset = data.len() as u64;
    assert!(catalog.save_session(&s, "dead", false).await.unwrap());
    if stage >= DiedAfter::Finishing {
        app.blobs.partial_finish(&s.blob.bucket, &s.blob.blob, &s.engine_state, s.offset).await.unwrap();
    }
    if stage >= DiedAfter::Committing {
        let record = coffer::catalog::FileRecord {
            key: s.blob.blob.object_key().clone(),
            original_filename: s.original_filename.clone(),
            bucket: s.blob.bucket.clone(),
            blob: s.blob.blob.clone(),
            content_type: s.content_type.clone().unwrap(),
            size: s.offset,
            sha256: hasher.finish(),
            created_at: chrono::Utc::now(),
        };
        catalog.commit_upload(&record, false, &coffer::catalog::Quota::default()).await.unwrap();
    }
}

#[tokio::test]
async fn a_server_dying_while_completing_leaves_the_upload_to_the_next_request() {
    let app = spawn_app().await;
    let tus = Tus::new(&app, "abc123");
    let data = bytes(6 * MIB + 777, 9);
    let digest = hex::encode(Sha256::digest(&data));
    for (i, stage) in [DiedAfter::Recording, DiedAfter::Finishing, DiedAfter::Committing].into_iter().enumerate() {
        let name = format!("died-{i}.bin");
        let key = format!("tenant-abc123/reports/{name}");
        let path = tus.create("reports", &name, data.len()).await;
        tus.send_in_pieces(&path, &data[..data.len() - 1000], &[4 * MIB, MIB]).await;
        die_while_completing(&app, "abc123", &path, &data, stage).await;
        // The client resends its last piece: the server has every byte already.
        let res = tus.patch(&path, data.len() - 1000, data[data.len() - 1000..].to_vec()).await;
        assert_eq!(res.headers()["upload-offset"], data.len().to_string().as_str(), "{stage:?}");
        assert_error(res, StatusCode::CONFLICT, "offset-mismatch").await;
        // Its HEAD completes the upload (or finds it completed) exactly once.
        let res = tus.head(&path).await;
        assert_eq!(res.status(), StatusCode::OK, "{stage:?}");
        assert_eq!(res.headers()["upload-offset"], data.len().to_string().as_str());
        assert_eq!(res.headers()["coffer-file-key"], key.as_str());
        assert_eq!(res.headers()["coffer-file-sha256"], digest.as_str());
        assert_downloads(&app, "abc123", &key, &data).await;
        assert_eq!(tus.head(&path).await.headers()["coffer-file-sha256"], digest.as_str());
        assert_no_partials(&app, i + 1).await;
    }

    // A PATCH at the upload's offset (nothing left to send) completes it just as well.
    let path = tus.create("reports", "died-patch.bin", data.len()).await;
    tus.send_in_pieces(&path, &data[..data.len() - 1000], &[data.len()]).await;
    die_while_completing(&app, "abc123", &path, &data, DiedAfter::Finishing).await;
    let res = tus.patch(&path, data.len(), Vec::new()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["coffer-file-sha256"], digest.as_str());
    assert_downloads(&app, "abc123", "tenant-abc123/reports/died-patch.bin", &data).await;

    // Completing refuses what a completion would: the name was taken meanwhile.
    let path = tus.create("reports", "taken.bin", data.len()).await;
    tus.send_in_pieces(&path, &data[..data.len() - 1000], &[data.len()]).await;
    die_while_completing(&app, "abc123", &path, &data, DiedAfter::Finishing).await;
    app.uploaded("abc123", "reports", "taken.bin", b"first").await;
    assert_eq!(tus.head(&path).await.status(), StatusCode::CONFLICT);
    assert_eq!(tus.head(&path).await.status(), StatusCode::NOT_FOUND, "the upload is over");
    let res = app.download("abc123", "tenant-abc123/reports/taken.bin").await;
    assert_eq!(res.bytes().await.unwrap(), &b"first"[..]);
    assert_no_partials(&app, 5).await;
}

/// Each upload holds at most `server::BLOCKING_THREADS_PER_UPLOAD` blocking threads while its
/// body streams (its digest's; a sealed append's writer too) and needs short trips besides.
/// With that many per upload and one to spare, uploads running at once all finish. With one
/// thread per upload, two plain uploads (or two resumable ones) waited on each other until the
/// timeout, in every run tried: each digest thread waited for bytes that no upload's write
/// could get a thread to make room for.
#[test]
fn uploads_at_once_never_hold_every_blocking_thread() {
    let threads = coffer::server::BLOCKING_THREADS_PER_UPLOAD * 2 + 1;
    for (plain, resumable) in [(2, 0), (0, 2), (1, 1)] {
        let finished = uploads_finish(plain, resumable, threads, Duration::from_secs(120));
        assert!(finished, "{plain} plain and {resumable} resumable uploads on {threads} blocking threads");
    }
}

/// Whether `plain` uploads and `resumable` ones (two appends each) of 16 MiB, all at once, on a
/// runtime with `threads` blocking threads, finish within `limit` and store what was sent.
fn uploads_finish(plain: usize, resumable: usize, threads: usize, limit: Duration) -> bool {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let finished = runtime.block_on(async {
        let app = std::sync::Arc::new(spawn_app().await);
        let data = bytes(16 * MIB, 3);
        let mut running = Vec::new();
        for i in 0..plain {
            let (app, data) = (app.clone(), data.clone());
            running.push(tokio::spawn(async move {
                let res = app.upload("t1", "exports", &format!("plain{i}.bin"), data).await;
                assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
            }));
        }
        for i in 0..resumable {
            let (app, data) = (app.clone(), data.clone());
            running.push(tokio::spawn(async move {
                let tus = Tus::new(&app, "t1");
                let path = tus.create("exports", &format!("tus{i}.bin"), data.len()).await;
                tus.send_in_pieces(&path, &data, &[8 * MIB, 8 * MIB]).await;
            }));
        }
        let Ok(all) = tokio::time::timeout(limit, futures::future::join_all(running)).await else { return false };
        for outcome in all {
            outcome.expect("an upload task");
        }
        let names = (0..plain).map(|i| format!("plain{i}.bin")).chain((0..resumable).map(|i| format!("tus{i}.bin")));
        for name in names {
            assert_downloads(&app, "t1", &format!("tenant-t1/exports/{name}"), &data).await;
        }
        true
    });
    runtime.shutdown_background();
    finished
}
