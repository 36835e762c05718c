//! `coffer serve` as a user runs it: the separate metrics listener (COFFER_METRICS_ADDR).

use std::process::{Command, Stdio};
use std::time::Duration;

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
    assert!(with.text().await.unwrap().contains("coffer_http_requests_total"));
    assert_eq!(other.status(), 404, "the metrics listener serves nothing else");
}
