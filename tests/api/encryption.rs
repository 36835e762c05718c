//! Encryption at rest on the filesystem store, through the HTTP API: what lies on disk is
//! sealed, every way in and out round-trips (raw and multipart uploads, whole and Range
//! downloads at and inside segment boundaries, empty and one-segment files), and bytes altered
//! on disk are refused — before the first byte with 500 `object-corrupt`, or mid-stream by
//! cutting the response.

use std::os::unix::fs::PermissionsExt;

use reqwest::{Method, StatusCode};

use crate::helpers::*;

const SEGMENT: usize = 64 * 1024;
const HEADER: usize = 68;

fn on_fs() -> bool {
    std::env::var("COFFER_TEST_STORAGE").as_deref() != Ok("s3")
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + seed as usize) % 253) as u8).collect()
}

/// The file on disk holding `key`'s bytes.
async fn disk_path(app: &TestApp, key: &str) -> std::path::PathBuf {
    app.record_on_disk(key).await.1
}

async fn get_range(app: &TestApp, key: &str, range: &str) -> (StatusCode, Vec<u8>) {
    let res =
        app.request(Method::GET, &file_path(key), &app.token("acme")).header("Range", range).send().await.unwrap();
    (res.status(), res.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn objects_are_sealed_on_disk_and_every_path_round_trips() {
    if !on_fs() {
        return;
    }
    let app = spawn_app().await;
    let sizes = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 17];
    for (i, &len) in sizes.iter().enumerate() {
        let body = data(len, i as u8);
        let name = format!("f{len}.bin");
        let res = app.upload("acme", "exports", &name, body.clone()).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        let key = format!("tenant-acme/exports/{name}");
        let on_disk = std::fs::read(disk_path(&app, &key).await).unwrap();
        assert_eq!(&on_disk[..8], b"CFRSEAL1", "len {len}");
        assert_eq!(on_disk.len(), HEADER + len + len.div_ceil(SEGMENT).max(1) * 16);
        if len >= 64 {
            assert!(!on_disk.windows(64).any(|w| w == &body[..64]), "plaintext on disk");
        }
        let got = app.download("acme", &key).await;
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.bytes().await.unwrap().as_ref(), body.as_slice(), "len {len}");
        if len > 1 {
            for (a, b) in [(0, 0), (len - 1, len - 1), (0, len - 1), (1, len - 2)] {
                let (status, bytes) = get_range(&app, &key, &format!("bytes={a}-{b}")).await;
                assert_eq!(status, StatusCode::PARTIAL_CONTENT);
                assert_eq!(bytes, &body[a..=b], "len {len} range {a}-{b}");
            }
        }
        if len > 2 * SEGMENT {
            for (a, b) in [
                (SEGMENT - 1, SEGMENT),
                (SEGMENT, 2 * SEGMENT - 1),
                (SEGMENT + 5, SEGMENT + 9),
                (SEGMENT - 3, 2 * SEGMENT + 3),
            ] {
                let (status, bytes) = get_range(&app, &key, &format!("bytes={a}-{b}")).await;
                assert_eq!(status, StatusCode::PARTIAL_CONTENT);
                assert_eq!(bytes, &body[a..=b], "range {a}-{b}");
            }
            let (_, tail) = get_range(&app, &key, "bytes=-100").await;
            assert_eq!(tail, &body[len - 100..]);
        }
    }
    // Multipart uploads take the same path.
    let body = data(2 * SEGMENT + 3, 9);
    let form = reqwest::multipart::Form::new()
        .text("category", "reports")
        .part("file", reqwest::multipart::Part::bytes(body.clone()).file_name("m.bin"));
    let res = app.request(Method::POST, "/v1/files", &app.token("acme")).multipart(form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let meta: serde_json::Value = res.json().await.unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    assert_eq!(meta["sha256"], sha, "the stored sha256 is the plaintext's");
    let key = "tenant-acme/reports/m.bin";
    assert_eq!(&std::fs::read(disk_path(&app, key).await).unwrap()[..8], b"CFRSEAL1");
    assert_eq!(app.download("acme", key).await.bytes().await.unwrap().as_ref(), body.as_slice());

    // The key store: a master key and one key file per tenant, all owner-only.
    let keys = app.data_dir.path().join("keys");
    let tenant_key = keys.join("tenant-acme.json");
    for path in [tenant_key.clone(), keys.join("store.json")] {
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{}", path.display());
    }
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&tenant_key).unwrap()).unwrap();
    assert_eq!(file["tenant"], "acme");
    assert!(file.get("secret").is_none());
}

#[tokio::test]
async fn altered_bytes_are_refused_before_or_during_the_response() {
    if !on_fs() {
        return;
    }
    let app = spawn_app().await;
    let body = data(4 * SEGMENT, 3);
    app.upload("acme", "exports", "a.bin", body.clone()).await;
    app.upload("acme", "exports", "b.bin", body.clone()).await;
    let a = disk_path(&app, "tenant-acme/exports/a.bin").await;
    let b = disk_path(&app, "tenant-acme/exports/b.bin").await;
    let pristine = std::fs::read(&a).unwrap();

    // A flipped bit in the first segment: refused before any byte, with a clear code.
    let mut t = pristine.clone();
    t[HEADER + 100] ^= 1;
    std::fs::write(&a, &t).unwrap();
    let res = app.download("acme", "tenant-acme/exports/a.bin").await;
    assert_error(res, StatusCode::INTERNAL_SERVER_ERROR, "object-corrupt").await;

    // In the third segment: the response is cut; the client never gets the whole body, and
    // never altered bytes. Whether the headers left first depends on whether the server had
    // flushed them (its write buffer holds up to 256 KiB) when the bad segment was read.
    let mut t = pristine.clone();
    t[HEADER + 2 * (SEGMENT + 16) + 5] ^= 0x40;
    std::fs::write(&a, &t).unwrap();
    match app.request(Method::GET, &file_path("tenant-acme/exports/a.bin"), &app.token("acme")).send().await {
        Ok(res) => {
            assert_eq!(res.status(), StatusCode::OK);
            match res.bytes().await {
                Ok(got) => panic!("a tampered object was served whole ({} bytes)", got.len()),
                Err(e) => assert!(e.is_body() || e.is_decode() || e.is_request(), "{e}"),
            }
        }
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    // A Range inside an untouched segment still reads; one touching the bad segment is refused.
    let (status, bytes) = get_range(&app, "tenant-acme/exports/a.bin", "bytes=10-20").await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::PARTIAL_CONTENT, &body[10..=20]));
    let res = app
        .request(Method::GET, &file_path("tenant-acme/exports/a.bin"), &app.token("acme"))
        .header("Range", format!("bytes={}-{}", 2 * SEGMENT, 2 * SEGMENT + 10))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::INTERNAL_SERVER_ERROR, "object-corrupt").await;

    // Truncated; two segments swapped; the object replaced by another object's bytes.
    std::fs::write(&a, &pristine[..pristine.len() - 16]).unwrap();
    let res = app.download("acme", "tenant-acme/exports/a.bin").await;
    assert_error(res, StatusCode::INTERNAL_SERVER_ERROR, "object-corrupt").await;
    let mut t = pristine.clone();
    let seg = SEGMENT + 16;
    let first = t[HEADER..HEADER + seg].to_vec();
    t.copy_within(HEADER + seg..HEADER + 2 * seg, HEADER);
    t[HEADER + seg..HEADER + 2 * seg].copy_from_slice(&first);
    std::fs::write(&a, &t).unwrap();
    let res = app.download("acme", "tenant-acme/exports/a.bin").await;
    assert_error(res, StatusCode::INTERNAL_SERVER_ERROR, "object-corrupt").await;
    std::fs::write(&a, std::fs::read(&b).unwrap()).unwrap();
    let res = app.download("acme", "tenant-acme/exports/a.bin").await;
    assert_error(res, StatusCode::INTERNAL_SERVER_ERROR, "object-corrupt").await;

    // Another tenant's sealed object moved into this tenant's place.
    app.upload("other", "exports", "a.bin", body.clone()).await;
    let foreign = disk_path(&app, "tenant-other/exports/a.bin").await;
    std::fs::write(&a, std::fs::read(&foreign).unwrap()).unwrap();
    let res = app.download("acme", "tenant-acme/exports/a.bin").await;
    assert!(res.status().is_server_error(), "{}", res.status());

    // Plaintext put in place of a sealed object (written after encryption was on): refused.
    std::fs::write(&a, &body).unwrap();
    let res = app.download("acme", "tenant-acme/exports/a.bin").await;
    assert_error(res, StatusCode::INTERNAL_SERVER_ERROR, "object-corrupt").await;

    // Restored, it reads again.
    std::fs::write(&a, &pristine).unwrap();
    assert_eq!(
        app.download("acme", "tenant-acme/exports/a.bin").await.bytes().await.unwrap().as_ref(),
        body.as_slice()
    );
}

#[tokio::test]
async fn altered_or_swapped_key_files_are_refused_with_a_clear_code() {
    if !on_fs() {
        return;
    }
    let app = spawn_app().await;
    app.uploaded("acme", "exports", "a.txt", b"acme's").await;
    app.uploaded("bob", "exports", "b.txt", b"bob's").await;
    let keys = app.data_dir.path().join("keys");
    let acme = std::fs::read(keys.join("tenant-acme.json")).unwrap();
    // Bob's key file put in place of acme's, garbage, a wrapped key with one bit flipped.
    let mut flipped: serde_json::Value = serde_json::from_slice(&acme).unwrap();
    let wrapped = flipped["wrapped"].as_str().unwrap().to_owned();
    let mut raw = base64_decode(&wrapped);
    raw[20] ^= 1;
    flipped["wrapped"] = serde_json::Value::String(base64_encode(&raw));
    for (what, bytes) in [
        ("bob's key", std::fs::read(keys.join("tenant-bob.json")).unwrap()),
        ("garbage", b"{not json".to_vec()),
        ("empty", Vec::new()),
    ] {
        std::fs::write(keys.join("tenant-acme.json"), &bytes).unwrap();
        let res = app.download("acme", "tenant-acme/exports/a.txt").await;
        let message = assert_error(res, StatusCode::INTERNAL_SERVER_ERROR, "key-unavailable").await;
        assert!(!message.contains(&wrapped), "{what}: {message}");
        // Uploads for the tenant are refused too rather than sealed under a new key.
        let res = app.upload("acme", "exports", "new.txt", "x").await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{what}");
    }
    // A flipped bit in the wrapped key: a process that holds the key in memory (same key id)
    // keeps serving — the wrapped form can only ever unwrap to that key or fail — and a
    // process that must unwrap it refuses.
    std::fs::write(keys.join("tenant-acme.json"), serde_json::to_vec(&flipped).unwrap()).unwrap();
    assert_eq!(app.download("acme", "tenant-acme/exports/a.txt").await.status(), StatusCode::OK);
    let fresh = spawn_sibling(&app).await;
    let res = fresh.download("acme", "tenant-acme/exports/a.txt").await;
    assert_error(res, StatusCode::INTERNAL_SERVER_ERROR, "key-unavailable").await;
    std::fs::write(keys.join("tenant-acme.json"), &acme).unwrap();
    assert_eq!(app.download("acme", "tenant-acme/exports/a.txt").await.bytes().await.unwrap().as_ref(), b"acme's");
    assert_eq!(fresh.download("acme", "tenant-acme/exports/a.txt").await.status(), StatusCode::OK);
    assert_eq!(app.download("bob", "tenant-bob/exports/b.txt").await.bytes().await.unwrap().as_ref(), b"bob's");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
