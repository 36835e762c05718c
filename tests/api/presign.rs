use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn presigned_url_works_without_token_then_expires() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "q1 report.pdf", b"%PDF-1.7 quarterly").await;
    let res = app.presign("abc", json!({"key": "tenant-abc/reports/q1 report.pdf", "expires_in": 2})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let url = body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.base), "{url}");
    assert!(body["expires_at"].as_str().is_some());

    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert_eq!(&res.bytes().await.unwrap()[..], b"%PDF-1.7 quarterly");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = app.client.get(&url).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "url-expired").await;
}

#[tokio::test]
async fn any_changed_character_breaks_the_url() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "a.txt", b"hello").await;
    let body: Value = app.presign("abc", json!({"key": "tenant-abc/reports/a.txt"})).await.json().await.unwrap();
    let url = body["url"].as_str().unwrap();
    assert_eq!(app.client.get(url).send().await.unwrap().status(), StatusCode::OK);
    // Every character after the authority (a changed host or port goes elsewhere).
    let start = app.base.len() + 1;
    for i in start..url.len() {
        let original = url.as_bytes()[i];
        let replacement = if original == b'a' { b'b' } else { b'a' };
        let mut changed = url.as_bytes().to_vec();
        changed[i] = replacement;
        let changed = String::from_utf8(changed).unwrap();
        let res = app.client.get(&changed).send().await.unwrap();
        assert!(res.status().is_client_error(), "{changed} -> {}", res.status());
        let text = res.text().await.unwrap();
        assert!(!text.contains("hello"), "{changed} leaked the file");
    }
    // Changes inside the query are refused as bad signatures.
    let query_start = url.find('?').unwrap() + 1;
    for i in query_start..url.len() {
        let mut changed = url.as_bytes().to_vec();
        changed[i] = if changed[i] == b'Z' { b'Y' } else { b'Z' };
        let res = app.client.get(String::from_utf8(changed).unwrap()).send().await.unwrap();
        assert_error(res, StatusCode::FORBIDDEN, "bad-signature").await;
    }
}

#[tokio::test]
async fn presign_rules() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "a.txt", b"hello").await;
    let res = app.presign("abc", json!({"key": "tenant-abc/reports/a.txt", "expires_in": 604801})).await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-expiry").await;
    let res = app.presign("abc", json!({"key": "tenant-abc/reports/a.txt", "expires_in": 0})).await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-expiry").await;
    let res = app.presign("abc", json!({"key": "tenant-abc/reports/none.txt"})).await;
    assert_error(res, StatusCode::NOT_FOUND, "not-found").await;
    let res = app.presign("abc", json!({"nokey": 1})).await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-json").await;
    // Bodies too large or too deep for a JSON request get the API's errors, on both routes
    // that take JSON (not the framework's plain-text rejection).
    let long = json!({"key": format!("tenant-abc/reports/{}", "a".repeat(70_000))}).to_string();
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    for path in ["/v1/presign", "/v1/restore"] {
        for (body, status, code) in [
            (long.clone(), StatusCode::PAYLOAD_TOO_LARGE, "json-too-large"),
            (deep.clone(), StatusCode::BAD_REQUEST, "invalid-json"),
            ("{\"key\": \"tenant-abc/reports/a.txt\"".to_owned(), StatusCode::BAD_REQUEST, "invalid-json"),
        ] {
            let res = app
                .request(Method::POST, path, &app.token("abc"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_error(res, status, code).await;
        }
    }
    // Default expiry: S3_PRESIGNED_URL_EXPIRY (3600 s).
    let body: Value = app.presign("abc", json!({"key": "tenant-abc/reports/a.txt"})).await.json().await.unwrap();
    let expires: chrono::DateTime<chrono::Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    let secs = (expires - chrono::Utc::now()).num_seconds();
    assert!((3590..=3600).contains(&secs), "{secs}");
    // A download link serves an attachment; the option is covered by the signature.
    let body: Value =
        app.presign("abc", json!({"key": "tenant-abc/reports/a.txt", "download": true})).await.json().await.unwrap();
    let url = body["url"].as_str().unwrap();
    let res = app.client.get(url).send().await.unwrap();
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let res = app.client.get(url.replace("download=1&", "")).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "bad-signature").await;
}

#[tokio::test]
async fn presigned_url_for_a_deleted_file_is_404() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "a.txt", b"hello").await;
    let body: Value = app.presign("abc", json!({"key": "tenant-abc/reports/a.txt"})).await.json().await.unwrap();
    app.delete("abc", "tenant-abc/reports/a.txt").await;
    let res = app.client.get(body["url"].as_str().unwrap()).send().await.unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn rotated_secrets_keep_old_links_until_removed() {
    let old = spawn_app().await;
    old.uploaded("abc", "reports", "a.txt", b"hello").await;
    let body: Value = old.presign("abc", json!({"key": "tenant-abc/reports/a.txt"})).await.json().await.unwrap();
    let url = body["url"].as_str().unwrap().to_owned();
    let new_secret = "rotated-secret-rotated-secret-rotated-01";

    let rotated = crate::helpers::spawn_sibling_with(
        &old,
        &[("COFFER_JWT_SECRET", new_secret), ("COFFER_PRESIGN_PREVIOUS_SECRETS", crate::helpers::SECRET)],
    )
    .await;
    let res = old.client.get(url.replace(&old.base, &rotated.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "old links verify while the previous secret is configured");

    let removed = crate::helpers::spawn_sibling_with(&old, &[("COFFER_JWT_SECRET", new_secret)]).await;
    let res = old.client.get(url.replace(&old.base, &removed.base)).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "bad-signature").await;
}

/// A link is bound to the version it was issued for: a file deleted and uploaded again under
/// the same name, or overwritten, does not answer its old links.
#[tokio::test]
async fn links_die_with_the_version_they_were_issued_for() {
    let app = spawn_app().await;
    let key = "tenant-abc/reports/shared.txt";
    app.uploaded("abc", "reports", "shared.txt", b"v1: sent to the wrong customer").await;
    let v1 = presigned_url(&app, key).await;
    assert_eq!(app.client.get(&v1).send().await.unwrap().status(), StatusCode::OK);

    assert_eq!(app.delete("abc", key).await.status(), StatusCode::NO_CONTENT);
    assert_error(app.client.get(&v1).send().await.unwrap(), StatusCode::NOT_FOUND, "not-found").await;
    app.uploaded("abc", "reports", "shared.txt", b"v2: the right report").await;
    let res = app.client.get(&v1).send().await.unwrap();
    assert_error(res, StatusCode::GONE, "link-superseded").await;
    let res = app.client.head(&v1).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::GONE);

    let v2 = presigned_url(&app, key).await;
    assert_eq!(app.client.get(&v2).send().await.unwrap().text().await.unwrap(), "v2: the right report");
    let res = app.upload_as(&app.token("abc"), "reports", "shared.txt", "v3", true).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_error(app.client.get(&v2).send().await.unwrap(), StatusCode::GONE, "link-superseded").await;
    assert_eq!(app.client.get(presigned_url(&app, key).await).send().await.unwrap().text().await.unwrap(), "v3");
}

/// Link keys and token keys rotate apart once COFFER_PRESIGN_SECRET is set.
#[tokio::test]
async fn the_presign_secret_rotates_apart_from_the_token_secret() {
    let presign_a = "presign-secret-a-presign-secret-a-000001";
    let presign_b = "presign-secret-b-presign-secret-b-000002";
    let app = crate::helpers::spawn_app_with(&[("COFFER_PRESIGN_SECRET", presign_a)]).await;
    app.uploaded("abc", "reports", "a.txt", b"hello").await;
    let body: Value = app.presign("abc", json!({"key": "tenant-abc/reports/a.txt"})).await.json().await.unwrap();
    let url = body["url"].as_str().unwrap().to_owned();

    // New token secret, same presign secret: links live on, old tokens are refused.
    let tokens_rotated = crate::helpers::spawn_sibling_with(
        &app,
        &[("COFFER_PRESIGN_SECRET", presign_a), ("COFFER_JWT_SECRET", "rotated-secret-rotated-secret-rotated-01")],
    )
    .await;
    let res = app.client.get(url.replace(&app.base, &tokens_rotated.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = tokens_rotated.list("abc", &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the test token was signed with the old secret");

    // New presign secret, same token secret: tokens live on, links die unless kept as previous.
    let links_rotated = crate::helpers::spawn_sibling_with(&app, &[("COFFER_PRESIGN_SECRET", presign_b)]).await;
    assert_eq!(links_rotated.list("abc", &[]).await.status(), StatusCode::OK);
    let res = app.client.get(url.replace(&app.base, &links_rotated.base)).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "bad-signature").await;
    let kept = crate::helpers::spawn_sibling_with(
        &app,
        &[("COFFER_PRESIGN_SECRET", presign_b), ("COFFER_PRESIGN_PREVIOUS_SECRETS", presign_a)],
    )
    .await;
    let res = app.client.get(url.replace(&app.base, &kept.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn presigned_url(app: &crate::helpers::TestApp, key: &str) -> String {
    let body: Value = app.presign("abc", json!({"key": key})).await.json().await.unwrap();
    body["url"].as_str().unwrap().to_owned()
}
