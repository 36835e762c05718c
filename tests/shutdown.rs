//! Graceful shutdown of the real binary: SIGTERM stops accepting, lets in-flight transfers
//! finish within COFFER_SHUTDOWN_GRACE, then exits; nothing half-written becomes visible.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "shutdown-secret-shutdown-secret-000000";

fn start(data: &std::path::Path, grace: &str) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("COFFER_DATA_DIR", data)
        .env("COFFER_JWT_SECRET", SECRET)
        .env("COFFER_SHUTDOWN_GRACE", grace)
        .env("COFFER_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    (child, format!("127.0.0.1:{port}"))
}

async fn ready(addr: &str) {
    for _ in 0..200 {
        if reqwest::get(format!("http://{addr}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not ready");
}

fn token() -> String {
    coffer::auth::TokenIssuer::new(&coffer::config::Secret::new(SECRET)).issue(
        &coffer::domain::TenantId::parse("abc").unwrap(),
        Duration::from_secs(600),
        false,
    )
}

fn slow_upload(addr: &str, name: &str, pause: Duration) -> tokio::task::JoinHandle<Result<u16, String>> {
    let url = format!("http://{addr}/v1/files?category=reports&filename={name}");
    let token = token();
    tokio::spawn(async move {
        let body = futures::stream::unfold(0u8, move |step| async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(vec![b'a'; 10_000]), 1)),
                1 => {
                    tokio::time::sleep(pause).await;
                    Some((Ok(vec![b'b'; 10_000]), 2))
                }
                _ => None,
            }
        });
        let res =
            reqwest::Client::new().post(url).bearer_auth(token).body(reqwest::Body::wrap_stream(body)).send().await;
        res.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
    })
}

fn sigterm(child: &Child) {
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_uploads_finish_then_exits() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(data.path(), "10s");
    ready(&addr).await;
    let upload = slow_upload(&addr, "finishing.bin", Duration::from_millis(1200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped_at = Instant::now();
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "no new connections after SIGTERM");
    assert_eq!(upload.await.unwrap(), Ok(201), "the in-flight upload completes");
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(stopped_at.elapsed() < Duration::from_secs(8));

    let (mut child, addr) = start(data.path(), "10s");
    ready(&addr).await;
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/v1/files/tenant-abc/reports/finishing.bin"))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 20_000);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_shutdown_and_nothing_half_written_appears() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(data.path(), "500ms");
    ready(&addr).await;
    let upload = slow_upload(&addr, "cut.bin", Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped_at = Instant::now();
    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(stopped_at.elapsed() < Duration::from_secs(3), "exits once the grace has elapsed");
    assert!(upload.await.unwrap().is_err(), "the cut upload got no 201");

    let (mut child, addr) = start(data.path(), "10s");
    ready(&addr).await;
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{addr}/v1/files"))
        .bearer_auth(token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed["files"].as_array().unwrap().is_empty(), "{listed}");
    child.kill().unwrap();
    child.wait().unwrap();
}
