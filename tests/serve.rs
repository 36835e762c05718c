//! `coffer serve` as a user runs it: the separate metrics listener (COFFER_METRICS_ADDR), and
//! what the metrics count — read from a process of its own, so no other test's requests can
//! make the counts pass.

use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "serve-test-secret-serve-test-secret-0000";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn metrics_are_served_on_their_own_address_only() {
    let data = tempfile::tempdir().unwrap();
    let (api, metrics) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["serve", "--addr", &format!("127.0.0.1:{api}")])
        .env("COFFER_DATA_DIR", data.path())
        .env("COFFER_METRICS_ADDR", format!("127.0.0.1:{metrics}"))
        .env("COFFER_METRICS_TOKEN", "metrics-token-0123456789")
        .env("COFFER_JWT_SECRET", SECRET)
        .env("COFFER_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("http://127.0.0.1:{api}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "coffer did not start");
    let token = coffer::auth::TokenIssuer::new(&coffer::config::Secret::new(SECRET)).issue(
        &coffer::domain::TenantId::parse("abc").unwrap(),
        Duration::from_secs(600),
        false,
    );
    let files = format!("http://127.0.0.1:{api}/v1/files");
    let res = client.post(format!("{files}?category=reports&filename=m.txt")).bearer_auth(&token).body("metrics!");
    assert_eq!(res.send().await.unwrap().status(), 201);
    let res = client.get(format!("{files}/tenant-abc/reports/m.txt")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"metrics!");
    let on_api = client.get(format!("http://127.0.0.1:{api}/metrics")).send().await.unwrap();
    let without = client.get(format!("http://127.0.0.1:{metrics}/metrics")).send().await.unwrap();
    let with = client
        .get(format!("http://127.0.0.1:{metrics}/metrics"))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    let other = client.get(format!("http://127.0.0.1:{metrics}/v1/files")).send().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(on_api.status(), 404);
    assert_eq!(without.status(), 401);
    assert_eq!(with.status(), 200);
    let text = with.text().await.unwrap();
    let value = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse::<f64>().ok()))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(value("coffer_http_requests_total{route=\"/v1/files\",method=\"POST\",status=\"201\"}"), 1.0);
    assert_eq!(value("coffer_http_requests_total{route=\"/v1/files/{*key}\",method=\"GET\",status=\"200\"}"), 1.0);
    assert_eq!(value("coffer_http_received_bytes_total{route=\"/v1/files\"}"), 8.0);
    assert_eq!(value("coffer_stored_bytes_total"), 8.0);
    assert_eq!(value("coffer_uploads_in_flight"), 0.0);
    for needle in [
        "coffer_http_request_duration_seconds_bucket",
        "coffer_http_sent_bytes_total",
        "coffer_blob_operation_duration_seconds_bucket{engine=\"filesystem\",op=\"put\"",
        "coffer_catalog_operation_duration_seconds_bucket{engine=\"sqlite\",op=\"commit_upload\"",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert_eq!(other.status(), 404, "the metrics listener serves nothing else");
}
