//! Limits against abuse: concurrent uploads (429 + Retry-After), stalled bodies (408), long
//! URLs (414), oversized headers (431), slow-loris connections, CORS, metrics.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

/// A body that sends one chunk, then waits `pause` before ending.
fn slow_body(pause: Duration) -> reqwest::Body {
    let stream = futures::stream::unfold(0u8, move |step| async move {
        match step {
            0 => Some((Ok::<_, std::io::Error>(b"first".to_vec()), 1)),
            1 => {
                tokio::time::sleep(pause).await;
                Some((Ok(b"second".to_vec()), 2))
            }
            _ => None,
        }
    });
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn concurrent_uploads_per_tenant_are_bounded_with_429() {
    let app = spawn_app_with(&[("COFFER_MAX_UPLOADS_PER_TENANT", "1")]).await;
    let slow = app.upload("abc", "reports", "slow.txt", slow_body(Duration::from_millis(800)));
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.upload("abc", "reports", "second.txt", "x").await
    };
    let other_tenant = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.upload("xyz", "reports", "other.txt", "x").await
    };
    let (slow, second, other) = tokio::join!(slow, second, other_tenant);
    assert_eq!(slow.status(), StatusCode::CREATED);
    assert_eq!(other.status(), StatusCode::CREATED, "other tenants are not held back");
    assert_eq!(second.headers()["retry-after"], "1");
    assert_error(second, StatusCode::TOO_MANY_REQUESTS, "too-many-requests").await;
    // The slot is free again.
    assert_eq!(app.upload("abc", "reports", "third.txt", "x").await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_stalled_upload_body_times_out_with_nothing_stored() {
    let app = spawn_app_with(&[("COFFER_BODY_IDLE_TIMEOUT", "300ms")]).await;
    let res = app.upload("abc", "reports", "stalled.txt", slow_body(Duration::from_secs(3))).await;
    assert_error(res, StatusCode::REQUEST_TIMEOUT, "body-timeout").await;
    assert!(app.stored_objects().await.is_empty());
}

#[tokio::test]
async fn long_urls_and_large_headers_are_refused() {
    let app = spawn_app_with(&[("COFFER_MAX_URL_BYTES", "512"), ("COFFER_MAX_HEADER_BYTES", "8 KiB")]).await;
    let long = format!("/v1/files?prefix={}", "a".repeat(600));
    let res = app.request(reqwest::Method::GET, &long, &app.token("abc")).send().await.unwrap();
    assert_error(res, StatusCode::URI_TOO_LONG, "url-too-long").await;
    let res = app.client.get(app.url("/healthz")).header("x-padding", "p".repeat(10_000)).send().await.unwrap();
    assert_error(res, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers-too-large").await;
    // Far past the limit, still within the connection's read buffer: the same answer.
    let res = app.client.get(app.url("/healthz")).header("x-padding", "p".repeat(200_000)).send().await.unwrap();
    assert_error(res, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers-too-large").await;
    let res = app.client.get(app.url("/healthz")).header("x-padding", "p".repeat(7_000)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A limit above the read buffer's 256 KiB is honoured too.
    let roomy = spawn_app_with(&[("COFFER_MAX_HEADER_BYTES", "300 KiB")]).await;
    let res = roomy.client.get(roomy.url("/healthz")).header("x-padding", "p".repeat(280_000)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn slow_loris_connections_are_closed() {
    let app = spawn_app_with(&[("COFFER_HEADER_READ_TIMEOUT", "300ms")]).await;
    let addr = app.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Never finish the headers: the server must hang up.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was left open");
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let closed = spawn_app().await;
    let res = closed.client.get(closed.url("/healthz")).header("origin", "https://app.example").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let open = spawn_app_with(&[("COFFER_CORS_ORIGINS", "https://app.example")]).await;
    let res = open
        .client
        .request(reqwest::Method::OPTIONS, open.url("/v1/files"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
    let res = open.client.get(open.url("/healthz")).header("origin", "https://evil.example").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let token = "metrics-token-0123456789";
    let app = spawn_app_with(&[("COFFER_METRICS_TOKEN", token)]).await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "metrics-token-required").await;
    let res = app.client.get(app.url("/metrics")).bearer_auth("metrics-token-0123456780").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A tenant's API token is not the metrics token.
    let res = app.client.get(app.url("/metrics")).bearer_auth(app.token("abc")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.client.get(app.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("coffer_http_requests_total"));
}

#[tokio::test]
async fn metrics_on_their_own_address_leave_the_api_address() {
    let app = spawn_app_with(&[("COFFER_METRICS_ADDR", "127.0.0.1:0")]).await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not-found").await;
}

/// Accepted connections have Nagle's algorithm off, so a response's headers and a small body
/// leave together instead of waiting for the client's delayed ACK (a ~40 ms stall per request
/// on kept-alive connections). Checked on the server's own socket, found by its addresses.
#[tokio::test]
async fn accepted_sockets_have_tcp_nodelay() {
    use std::os::fd::BorrowedFd;
    let app = spawn_app().await;
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = conn.local_addr().unwrap();
    conn.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    assert!(conn.read(&mut buf).await.unwrap() > 0);
    let mut found = None;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        // SAFETY: the descriptor is only borrowed for two queries while this test holds the
        // server's connection open; a descriptor that is not a socket fails the queries.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let (Ok(local), Ok(peer)) = (sock.local_addr(), sock.peer_addr()) else { continue };
        if local.as_socket() == Some(addr) && peer.as_socket() == Some(client) {
            found = Some(sock.tcp_nodelay().unwrap());
        }
    }
    assert_eq!(found, Some(true), "the server's end of the connection must have TCP_NODELAY");
}
