use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_error, spawn_app_with};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn claims() -> serde_json::Value {
    json!({"tenant_id": "abc", "exp": chrono::Utc::now().timestamp() + 600})
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_with_a_public_key() {
    for (alg, private, public) in [
        (Algorithm::RS256, "rs256-private.pem", "rs256-public.pem"),
        (Algorithm::ES256, "es256-private.pem", "es256-public.pem"),
    ] {
        let app = spawn_app_with(&[("COFFER_JWT_PUBLIC_KEY", &fixture(public))]).await;
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let token = jsonwebtoken::encode(&Header::new(alg), &claims(), &key).unwrap();
        let res = app.client.get(app.url("/v1/files")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{alg:?}");

        // Algorithm confusion: HS256 signed with the public key's text as the HMAC secret.
        let public_pem = std::fs::read(fixture(public)).unwrap();
        let confused =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(&public_pem))
                .unwrap();
        let res = app.client.get(app.url("/v1/files")).bearer_auth(confused).send().await.unwrap();
        assert_error(res, StatusCode::UNAUTHORIZED, "unsupported-token-algorithm").await;
        // HS256 tokens from the shared secret are not accepted either.
        let res = app.client.get(app.url("/v1/files")).bearer_auth(app.token("abc")).send().await.unwrap();
        assert_error(res, StatusCode::UNAUTHORIZED, "unsupported-token-algorithm").await;
    }
}
