//! `spawn_app()`: the real router on 127.0.0.1:0 with a fresh data dir, and a typed client.

use std::collections::HashMap;
use std::time::Duration;

use coffer::auth::{Claims, TokenIssuer};
use coffer::config::{Config, Overrides, Secret};
use coffer::domain::TenantId;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub data_dir: std::sync::Arc<tempfile::TempDir>,
    issuer: TokenIssuer,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts coffer with the test secret plus `env` (as if set in the environment).
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    spawn_instance(env, std::sync::Arc::new(tempfile::tempdir().expect("temp dir")), None).await
}

/// A second instance sharing `first`'s data dir and catalog (as behind a load balancer).
pub async fn spawn_sibling(first: &TestApp) -> TestApp {
    spawn_instance(&[], first.data_dir.clone(), Some(first.database_url.clone())).await
}

async fn spawn_instance(
    env: &[(&str, &str)],
    data_dir: std::sync::Arc<tempfile::TempDir>,
    database_url: Option<String>,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut vars: HashMap<String, String> = HashMap::from([("COFFER_JWT_SECRET".to_string(), SECRET.to_string())]);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    // COFFER_TEST_CATALOG=postgres runs the whole suite on a fresh PostgreSQL database.
    let database_url = match (database_url, std::env::var("COFFER_TEST_CATALOG").as_deref()) {
        (Some(url), _) => Some(url),
        (None, Ok("postgres")) => Some(crate::common::fresh_pg_database().await),
        _ => None,
    };
    let overrides = Overrides {
        addr: Some(addr),
        data_dir: Some(data_dir.path().to_owned()),
        public_url: Some(format!("http://{addr}").parse().unwrap()),
        database_url,
    };
    let config = Config::from_lookup(|k| vars.get(k).cloned(), &overrides).expect("config");
    let database_url = config.database_url.expose().to_owned();
    let state = coffer::server::state(&config).await.expect("state");
    tokio::spawn(coffer::server::serve_on(listener, state, None, std::future::pending()));
    TestApp {
        base: format!("http://{addr}"),
        database_url,
        client: reqwest::Client::new(),
        data_dir,
        issuer: TokenIssuer::new(&Secret::new(SECRET)),
    }
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

impl TestApp {
    pub fn token(&self, tenant_id: &str) -> String {
        self.issuer.issue(&tenant(tenant_id), Duration::from_secs(600), false)
    }

    pub fn read_only_token(&self, tenant_id: &str) -> String {
        self.issuer.issue(&tenant(tenant_id), Duration::from_secs(600), true)
    }

    pub fn token_with(&self, claims: &Claims) -> String {
        self.issuer.sign(claims)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    /// Raw upload as `tenant_id`.
    pub async fn upload(
        &self,
        tenant_id: &str,
        category: &str,
        filename: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.upload_as(&self.token(tenant_id), category, filename, body, false).await
    }

    pub async fn upload_as(
        &self,
        token: &str,
        category: &str,
        filename: &str,
        body: impl Into<reqwest::Body>,
        overwrite: bool,
    ) -> Response {
        self.request(Method::POST, "/v1/files", token)
            .query(&[
                ("category", category),
                ("filename", filename),
                ("overwrite", if overwrite { "true" } else { "false" }),
            ])
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads and returns the metadata, asserting 201.
    pub async fn uploaded(&self, tenant_id: &str, category: &str, filename: &str, body: &'static [u8]) -> Value {
        let res = self.upload(tenant_id, category, filename, body).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    pub async fn download(&self, tenant_id: &str, key: &str) -> Response {
        self.request(Method::GET, &file_path(key), &self.token(tenant_id)).send().await.unwrap()
    }

    pub async fn delete(&self, tenant_id: &str, key: &str) -> Response {
        self.request(Method::DELETE, &file_path(key), &self.token(tenant_id)).send().await.unwrap()
    }

    pub async fn presign(&self, tenant_id: &str, body: Value) -> Response {
        self.request(Method::POST, "/v1/presign", &self.token(tenant_id)).json(&body).send().await.unwrap()
    }

    pub async fn list(&self, tenant_id: &str, query: &[(&str, &str)]) -> Response {
        self.request(Method::GET, "/v1/files", &self.token(tenant_id)).query(query).send().await.unwrap()
    }

    /// A second connection to the app's catalog (as another instance would have).
    pub async fn catalog(&self) -> std::sync::Arc<dyn coffer::catalog::Catalog> {
        coffer::catalog::connect(&self.database_url).await.unwrap()
    }

    /// Every regular file under the data dir's objects folder.
    pub fn stored_objects(&self) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() { walk(&p, out) } else { out.push(p) }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir.path().join("objects"), &mut out);
        out
    }
}

/// `/v1/files/{key}` with each segment percent-encoded.
pub fn file_path(key: &str) -> String {
    let segs: Vec<String> = key.split('/').map(urlencoding).collect();
    format!("/v1/files/{}", segs.join("/"))
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Asserts status and error code, returning the message.
pub async fn assert_error(res: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(res.status(), status, "expected {status} {code}");
    let body: Value = res.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().expect("message").to_owned()
}
