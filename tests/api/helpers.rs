//! `spawn_app()`: the real router on 127.0.0.1:0 with a fresh data dir, and a typed client.

use std::collections::HashMap;
use std::time::Duration;

use coffer::auth::{Claims, TokenIssuer};
use coffer::blob::BlobStore;
use coffer::config::{Config, Overrides, Secret};
use coffer::domain::TenantId;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    pub documents_bucket: String,
    pub media_bucket: String,
    pub blobs: std::sync::Arc<dyn coffer::blob::BlobStore>,
    pub service: coffer::service::StorageService,
    s3: Option<aws_sdk_s3::Client>,
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

/// A second instance sharing `first`'s data dir, buckets and catalog (as behind a load
/// balancer).
pub async fn spawn_sibling(first: &TestApp) -> TestApp {
    spawn_sibling_with(first, &[]).await
}

/// A sibling with extra settings (a rotated secret, say).
pub async fn spawn_sibling_with(first: &TestApp, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("AWS_S3_DOCUMENTS_BUCKET", first.documents_bucket.as_str()),
        ("AWS_S3_MEDIA_BUCKET", first.media_bucket.as_str()),
    ];
    env.extend_from_slice(extra);
    spawn_instance(&env, first.data_dir.clone(), Some(first.database_url.clone())).await
}

/// Environment for the S3 store when `COFFER_TEST_STORAGE=s3`: the test server started by
/// scripts/test, fresh buckets per app (unless `env` names them), coffer-signed presigned URLs
/// so that the core suite's link semantics apply (direct S3 links have their own tests).
fn storage_env(env: &[(&str, &str)]) -> Vec<(String, String)> {
    if std::env::var("COFFER_TEST_STORAGE").as_deref() != Ok("s3") {
        return Vec::new();
    }
    let endpoint = std::env::var("COFFER_TEST_S3_ENDPOINT").expect("COFFER_TEST_S3_ENDPOINT (run scripts/test)");
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut vars = vec![
        ("COFFER_STORAGE".to_string(), "s3".to_string()),
        ("AWS_ENDPOINT_URL".into(), endpoint),
        ("AWS_ACCESS_KEY_ID".into(), crate::common::S3_ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), crate::common::S3_SECRET_KEY.into()),
        ("COFFER_PRESIGN".into(), "proxy".into()),
    ];
    if !env.iter().any(|(k, _)| *k == "AWS_S3_DOCUMENTS_BUCKET") {
        vars.push(("AWS_S3_DOCUMENTS_BUCKET".into(), format!("t-{}-documents", &id[..12])));
        vars.push(("AWS_S3_MEDIA_BUCKET".into(), format!("t-{}-media", &id[..12])));
    }
    vars
}

async fn spawn_instance(
    env: &[(&str, &str)],
    data_dir: std::sync::Arc<tempfile::TempDir>,
    database_url: Option<String>,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut vars: HashMap<String, String> = HashMap::from([("COFFER_JWT_SECRET".to_string(), SECRET.to_string())]);
    vars.extend(storage_env(env));
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
    let mut s3 = None;
    if let coffer::config::StorageEngine::S3(settings) = &config.storage {
        let store = coffer::blob::S3BlobStore::new(settings.as_ref().clone()).await;
        for bucket in [&config.documents_bucket, &config.media_bucket] {
            store.ensure_bucket(bucket).await.expect("create test bucket");
        }
        s3 = Some(store.client().clone());
    }
    let state = coffer::startup::app_state(&config).await.expect("state");
    let service = state.service.clone();
    let blobs = service.parts().1;
    tokio::spawn(coffer::server::serve_on(listener, state, None, std::future::pending()));
    TestApp {
        base: format!("http://{addr}"),
        database_url,
        documents_bucket: config.documents_bucket.to_string(),
        media_bucket: config.media_bucket.to_string(),
        blobs,
        service,
        s3,
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

    /// The catalog record of `key` and, on the filesystem store, the file holding its bytes.
    pub async fn record_on_disk(&self, key: &str) -> (coffer::catalog::FileRecord, std::path::PathBuf) {
        let key = coffer::domain::ObjectKey::parse(key).unwrap();
        let record = self.catalog().await.get(&key).await.unwrap().expect("a stored file");
        let mut path = self.data_dir.path().join("objects").join(record.bucket.as_str());
        path.extend(record.blob.to_string().split('/'));
        (record, path)
    }

    /// Every stored object, as `bucket/key`, listed through the app's own blob store.
    pub async fn stored_objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        for bucket in [&self.documents_bucket, &self.media_bucket] {
            let name = coffer::domain::BucketName::parse(bucket).unwrap();
            let mut after: Option<String> = None;
            loop {
                let page = self.blobs.list(&name, after.as_deref(), 1000).await.expect("list bucket");
                out.extend(page.keys.iter().map(|k| format!("{bucket}/{k}")));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        out
    }

    /// The S3 client of an app on the S3 store.
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        self.s3.clone().expect("an app on the S3 store")
    }

    /// Makes the media bucket disappear (to see readiness fail).
    pub async fn remove_media_bucket(&self) {
        match &self.s3 {
            Some(client) => {
                client.delete_bucket().bucket(&self.media_bucket).send().await.expect("delete bucket");
            }
            None => std::fs::remove_dir_all(self.data_dir.path().join("objects").join(&self.media_bucket)).unwrap(),
        }
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

/// What a [`TestProxy`] does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forwards both ways.
    Open = 0,
    /// Drops every connection, new and established (a service that went away).
    Refuse = 1,
    /// Accepts connections and holds them without forwarding a byte (a network that
    /// black-holes traffic); on leaving this mode they are dropped.
    Stall = 2,
}

/// A TCP forwarder to a dependency, whose traffic a test can refuse or stall.
pub struct TestProxy {
    pub addr: std::net::SocketAddr,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl TestProxy {
    pub async fn start(upstream: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(ProxyMode::Open as u8));
        let shared = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let (mode, upstream) = (shared.clone(), upstream.clone());
                tokio::spawn(async move {
                    let now = || mode.load(Ordering::SeqCst);
                    let hold = || async {
                        while now() == ProxyMode::Stall as u8 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    match now() {
                        m if m == ProxyMode::Refuse as u8 => return,
                        m if m == ProxyMode::Stall as u8 => return hold().await,
                        _ => {}
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            _ = tokio::time::sleep(Duration::from_millis(20)) => match now() {
                                m if m == ProxyMode::Refuse as u8 => return,
                                m if m == ProxyMode::Stall as u8 => return hold().await,
                                _ => {}
                            },
                        }
                    }
                });
            }
        });
        Self { addr, mode }
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An app whose catalog is the PostgreSQL database at `database_url` (e.g. through a proxy).
/// An instance on a fresh PostgreSQL database reached through a [`TestProxy`], the proxy, and
/// the database's own URL.
pub async fn spawn_app_behind_catalog_proxy(env: &[(&str, &str)]) -> (TestApp, TestProxy, String) {
    let url = crate::common::fresh_pg_database().await;
    let mut parsed = url::Url::parse(&url).unwrap();
    let upstream = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap_or(5432));
    let proxy = TestProxy::start(upstream).await;
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(proxy.addr.port())).unwrap();
    (spawn_app_on_database(parsed.as_str(), env).await, proxy, url)
}

pub async fn spawn_app_on_database(database_url: &str, env: &[(&str, &str)]) -> TestApp {
    spawn_instance(env, std::sync::Arc::new(tempfile::tempdir().expect("temp dir")), Some(database_url.to_owned()))
        .await
}
