use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A bucket that vanished makes the instance not ready.
    app.remove_media_bucket().await;
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not-found").await;
    let res = app.client.put(app.url("/v1/presign")).send().await.unwrap();
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(!res.headers()["x-request-id"].is_empty());
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    // An id too long, empty, of other characters or sent twice is replaced, not echoed (nor
    // written into every log line of the request).
    let long = "a".repeat(129);
    for ids in [vec![long.as_str()], vec![""], vec!["a b"], vec!["<script>"], vec!["one", "two"]] {
        let mut req = app.client.get(app.url("/healthz"));
        for id in &ids {
            req = req.header("x-request-id", *id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let echoed = res.headers().get_all("x-request-id").iter().collect::<Vec<_>>();
        assert_eq!(echoed.len(), 1, "{ids:?}");
        assert_eq!(echoed[0].len(), 36, "{ids:?}: a fresh UUID, not {:?}", echoed[0]);
    }
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "a".repeat(128)).send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "a".repeat(128).as_str());
}

#[tokio::test]
async fn the_api_describes_itself() {
    let app = spawn_app().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/v1/files", "/v1/files/{key}", "/v1/presign", "/v1/usage", "/v1/restore", "/healthz", "/metrics"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let codes = doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"].as_array().unwrap();
    assert!(codes.iter().any(|c| c == "tenant-mismatch") && codes.iter().any(|c| c == "link-superseded"));
    // Swagger UI from assets built into the binary (reqwest follows /docs → /docs/).
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert!(res.text().await.unwrap().contains("swagger-ui"));
    let init = app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
        let res = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
    }
    assert_eq!(app.client.get(app.url("/docs/nope.js")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
