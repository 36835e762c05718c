//! `coffer serve` as a user runs it: the separate metrics listener (COFFER_METRICS_ADDR), and
//! what the metrics count — read from a process of its own, so no other test's requests can
//! make the counts pass.

use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "serve-test-secret-serve-test-secret-0000";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `coffer serve` process on the embedded default in `data`, its metrics on a listener of
/// their own; killed when dropped.
struct Served {
    child: std::process::Child,
    api: u16,
    metrics: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const METRICS_TOKEN: &str = "metrics-token-0123456789";

async fn serve(data: &std::path::Path) -> Served {
    let (api, metrics) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["serve", "--addr", &format!("127.0.0.1:{api}")])
        .env("COFFER_DATA_DIR", data)
        .env("COFFER_METRICS_ADDR", format!("127.0.0.1:{metrics}"))
        .env("COFFER_METRICS_TOKEN", METRICS_TOKEN)
        .env("COFFER_JWT_SECRET", SECRET)
        .env("COFFER_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served { child, api, metrics };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("http://127.0.0.1:{api}/healthz")).send().await.is_ok() {
            return served;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("coffer did not start");
}

fn token(tenant: &str) -> String {
    coffer::auth::TokenIssuer::new(&coffer::config::Secret::new(SECRET)).issue(
        &coffer::domain::TenantId::parse(tenant).unwrap(),
        Duration::from_secs(600),
        false,
    )
}

/// The value of `series` (its name and labels exactly) in the metrics `text`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse::<f64>().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

async fn scrape(served: &Served) -> String {
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/metrics", served.metrics))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn metrics_are_served_on_their_own_address_only() {
    let data = tempfile::tempdir().unwrap();
    let served = serve(data.path()).await;
    let (api, metrics) = (served.api, served.metrics);
    let client = reqwest::Client::new();
    let token = token("abc");
    let files = format!("http://127.0.0.1:{api}/v1/files");
    let res = client.post(format!("{files}?category=reports&filename=m.txt")).bearer_auth(&token).body("metrics!");
    assert_eq!(res.send().await.unwrap().status(), 201);
    let res = client.get(format!("{files}/tenant-abc/reports/m.txt")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"metrics!");
    let on_api = client.get(format!("http://127.0.0.1:{api}/metrics")).send().await.unwrap();
    let without = client.get(format!("http://127.0.0.1:{metrics}/metrics")).send().await.unwrap();
    let other = client.get(format!("http://127.0.0.1:{metrics}/v1/files")).send().await.unwrap();
    let text = scrape(&served).await;
    drop(served);
    assert_eq!(on_api.status(), 404);
    assert_eq!(without.status(), 401);
    let value = |series: &str| value(&text, series);
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

/// `coffer upload` sends each chunk before the previous one is answered; the server lets it
/// wait its turn and, when the previous append succeeds, hands it the upload's lock: fewer
/// lock statements reach the catalog than appends (one each without the hand-over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_appends_take_the_lock_over_from_the_append_before_and_write_beside_its_record() {
    let data = tempfile::tempdir().unwrap();
    let served = serve(&data.path().join("store")).await;
    let input = data.path().join("queued.bin");
    let bytes: Vec<u8> = (0..48u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    std::fs::write(&input, &bytes).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["upload", input.to_str().unwrap(), "--category", "exports", "--resumable-over", "1MiB"])
        .args(["--chunk-size", "4MiB"])
        .env("COFFER_URL", format!("http://127.0.0.1:{}", served.api))
        .env("COFFER_TOKEN", token("abc"))
        .env("COFFER_STATE_DIR", data.path().join("state"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/v1/files/tenant-abc/exports/queued.bin", served.api))
        .bearer_auth(token("abc"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got.as_ref() == bytes.as_slice(), "the file arrived whole");

    let text = scrape(&served).await;
    let patches =
        value(&text, "coffer_http_requests_total{route=\"/v1/uploads/{id}\",method=\"PATCH\",status=\"204\"}");
    let locks = value(&text, "coffer_catalog_operation_duration_seconds_count{engine=\"sqlite\",op=\"lock_session\"}");
    assert!(patches >= 11.0, "{patches} appends");
    assert!(locks < patches, "{locks} lock statements for {patches} appends");
    // And each writes while the one before is made durable and recorded.
    let overlapped = value(&text, "coffer_tus_appends_overlapped_total");
    assert!(overlapped >= 1.0, "{overlapped} of {patches} appends written beside the record of the one before");
}
