use coffer::auth::{Claims, TokenIssuer};
use coffer::config::Secret;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/v1/files")).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_error(res, StatusCode::UNAUTHORIZED, "missing-token").await;

    let res = app.client.get(app.url("/v1/files")).header("authorization", "Basic abc").send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "malformed-token").await;
    let res = app.client.get(app.url("/v1/files")).bearer_auth("not.a.jwt").send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "malformed-token").await;

    let expired = app.token_with(&Claims { tenant_id: "abc".into(), exp: 1_000_000, iat: None, read_only: false });
    let res = app.client.get(app.url("/v1/files")).bearer_auth(expired).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-expired").await;

    let forged = TokenIssuer::new(&Secret::new("another-secret-another-secret-1234")).issue(
        &crate::helpers::tenant("abc"),
        std::time::Duration::from_secs(60),
        false,
    );
    let res = app.client.get(app.url("/v1/files")).bearer_auth(forged).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "bad-token-signature").await;

    let bad_tenant =
        app.token_with(&Claims { tenant_id: "a/b".into(), exp: 4_000_000_000, iat: None, read_only: false });
    let res = app.client.get(app.url("/v1/files")).bearer_auth(bad_tenant).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid-token-claims").await;
}

#[tokio::test]
async fn another_tenants_key_is_403_whether_or_not_it_exists() {
    let app = spawn_app().await;
    app.uploaded("tenantB", "applications", "secret.pdf", b"%PDF-1.7 B's data").await;
    let a = app.token("tenantA");
    for key in ["tenant-tenantB/applications/secret.pdf", "tenant-tenantB/applications/missing.pdf"] {
        let path = format!("/v1/files/{key}");
        let mut answers = Vec::new();
        for method in [Method::GET, Method::DELETE] {
            let res = app.request(method, &path, &a).send().await.unwrap();
            answers.push(assert_error(res, StatusCode::FORBIDDEN, "tenant-mismatch").await);
        }
        let res = app.request(Method::HEAD, &path, &a).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(
            res.headers().get("etag").is_none()
                && res.headers().get("content-length").map(|v| v != "17").unwrap_or(true)
        );
        let res = app.request(Method::POST, "/v1/presign", &a).json(&json!({"key": key})).send().await.unwrap();
        answers.push(assert_error(res, StatusCode::FORBIDDEN, "tenant-mismatch").await);
        assert!(answers.iter().all(|m| !m.contains("secret") && !m.contains("missing")));
    }
    // B's file is untouched.
    let res = app.download("tenantB", "tenant-tenantB/applications/secret.pdf").await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn uploads_land_under_the_tokens_tenant_only() {
    let app = spawn_app().await;
    // A filename or category cannot smuggle another tenant's prefix in.
    let res = app.upload("tenantA", "applications", "tenant-tenantB/applications/x.pdf", "x").await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-filename").await;
    let meta = app.uploaded("tenantA", "applications", "tenant-tenantB.pdf", b"x").await;
    assert_eq!(meta["key"], "tenant-tenantA/applications/tenant-tenantB.pdf");
    let listed: serde_json::Value = app.list("tenantB", &[]).await.json().await.unwrap();
    assert!(listed["files"].as_array().unwrap().is_empty());
}
