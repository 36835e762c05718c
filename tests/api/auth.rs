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

    let expired = app.token_with(&Claims { tenant_id: "abc".into(), exp: 1_000_000, ..Default::default() });
    let res = app.client.get(app.url("/v1/files")).bearer_auth(expired).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-expired").await;

    let forged = TokenIssuer::new(&Secret::new("another-secret-another-secret-1234")).issue(
        &crate::helpers::tenant("abc"),
        std::time::Duration::from_secs(60),
        false,
    );
    let res = app.client.get(app.url("/v1/files")).bearer_auth(forged).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "bad-token-signature").await;

    let soon = chrono::Utc::now().timestamp() as u64 + 600;
    let bad_tenant = app.token_with(&Claims { tenant_id: "a/b".into(), exp: soon, ..Default::default() });
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

#[tokio::test]
async fn hostile_tokens_each_get_their_own_code() {
    let app = crate::helpers::spawn_app_with(&[
        ("COFFER_JWT_ISSUER", "https://id.example"),
        ("COFFER_JWT_AUDIENCE", "coffer"),
        ("COFFER_JWT_LEEWAY", "5"),
    ])
    .await;
    let now = chrono::Utc::now().timestamp() as u64;
    let good = Claims {
        tenant_id: "abc".into(),
        exp: now + 600,
        iss: Some("https://id.example".into()),
        aud: Some("coffer".into()),
        ..Default::default()
    };
    let get = |token: String| app.client.get(app.url("/v1/files")).bearer_auth(token).send();
    assert_eq!(get(app.token_with(&good)).await.unwrap().status(), StatusCode::OK);

    let cases = [
        (Claims { iss: Some("https://evil.example".into()), ..good.clone() }, "wrong-token-issuer"),
        (Claims { iss: None, ..good.clone() }, "invalid-token-claims"),
        (Claims { aud: Some("other".into()), ..good.clone() }, "wrong-token-audience"),
        (Claims { nbf: Some(now + 120), ..good.clone() }, "token-not-yet-valid"),
        (Claims { exp: now - 60, ..good.clone() }, "token-expired"),
    ];
    for (claims, code) in cases {
        assert_error(get(app.token_with(&claims)).await.unwrap(), StatusCode::UNAUTHORIZED, code).await;
    }
    // Within the leeway, a just-expired token still passes.
    let res = get(app.token_with(&Claims { exp: now - 2, ..good.clone() })).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A tampered payload (another tenant, same signature) fails the signature.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let token = app.token_with(&good);
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = Claims { tenant_id: "victim".into(), ..good.clone() };
    let forged = format!("{}.{}.{}", parts[0], b64.encode(serde_json::to_vec(&forged_claims).unwrap()), parts[2]);
    assert_error(get(forged).await.unwrap(), StatusCode::UNAUTHORIZED, "bad-token-signature").await;
    // alg: none
    for alg in ["none", "NONE", "HS1024"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let unsigned = format!("{}.{}.", b64.encode(header), parts[1]);
        assert_error(get(unsigned).await.unwrap(), StatusCode::UNAUTHORIZED, "unsupported-token-algorithm").await;
    }
    // A header that does not parse is a malformed token, not a claims problem.
    let garbled = format!("{}.{}.{}", b64.encode("{not json"), parts[1], parts[2]);
    assert_eq!(get(garbled).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Two Authorization headers: which caller is meant is not for the server to guess.
    let res = app
        .client
        .get(app.url("/v1/files"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {}", app.token("other")))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "malformed-token").await;

    // Lifetimes past COFFER_JWT_MAX_TTL (24 h by default), from now or from `iat`.
    for (exp, iat) in [(u64::MAX, None), (now + 25 * 3600, None), (now + 600, Some(now - 48 * 3600))] {
        let token = app.token_with(&Claims { exp, iat, ..good.clone() });
        assert_error(get(token).await.unwrap(), StatusCode::UNAUTHORIZED, "token-lifetime-too-long").await;
    }
    // Critical header extensions coffer does not understand (RFC 7515 §4.1.11).
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.crit = Some(vec!["exp".into()]);
    let key = jsonwebtoken::EncodingKey::from_secret(crate::helpers::SECRET.as_bytes());
    let crit = jsonwebtoken::encode(&header, &good, &key).unwrap();
    assert_error(get(crit).await.unwrap(), StatusCode::UNAUTHORIZED, "unsupported-token-crit").await;
}

#[tokio::test]
async fn the_maximum_token_lifetime_is_configurable() {
    let app = crate::helpers::spawn_app_with(&[("COFFER_JWT_MAX_TTL", "7d")]).await;
    let now = chrono::Utc::now().timestamp() as u64;
    let week = app.token_with(&Claims { tenant_id: "abc".into(), exp: now + 6 * 86400, ..Default::default() });
    assert_eq!(app.client.get(app.url("/v1/files")).bearer_auth(week).send().await.unwrap().status(), StatusCode::OK);
    let month = app.token_with(&Claims { tenant_id: "abc".into(), exp: now + 30 * 86400, ..Default::default() });
    let res = app.client.get(app.url("/v1/files")).bearer_auth(month).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-lifetime-too-long").await;
}
