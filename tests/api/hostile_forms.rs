//! Hostile multipart bodies and slow clients: everything before a form's file part is bounded
//! in bytes and time, and no stalled or trickling client keeps its upload slot.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

const BOUNDARY: &str = "coffer-boundary";

/// What the server answered to a raw chunked upload, and how many body bytes the client had
/// written when the answer arrived.
struct Answer {
    status: u16,
    body: String,
    sent: usize,
}

/// Sends `POST /v1/files` as multipart with a chunked body produced by `next_chunk` (called
/// until it returns `None` or the server answers), pausing `pause` between chunks, and reads
/// the answer while still sending.
async fn raw_multipart(
    app: &TestApp,
    token: &str,
    pause: Duration,
    mut next_chunk: impl FnMut(usize) -> Option<Vec<u8>> + Send + 'static,
) -> Answer {
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        let mut i = 0;
        while let Some(chunk) = next_chunk(i) {
            i += 1;
            if chunk.is_empty() {
                continue; // a zero-length chunk would end the body
            }
            let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk.clone(), b"\r\n".to_vec()].concat();
            if wr.write_all(&framed).await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    });
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&response);
                    if let Some((head, body)) = text.split_once("\r\n\r\n")
                        && head.to_ascii_lowercase().lines().any(|l| l.starts_with("content-length:"))
                    {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                            .unwrap();
                        if body.len() >= len {
                            break;
                        }
                    }
                }
            },
            () = &mut deadline => panic!("no answer within 60 s"),
        }
    }
    writer.abort();
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Answer { status, body, sent }
}

fn code(answer: &Answer) -> String {
    let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// A body that starts with `start`, then repeats `fill` in 64 KiB chunks up to `total` bytes.
fn endless(start: String, fill: u8, total: usize) -> impl FnMut(usize) -> Option<Vec<u8>> + Send + 'static {
    let chunk = 64 * 1024;
    move |i| match i {
        0 => Some(start.clone().into_bytes()),
        _ if (i - 1) * chunk < total => Some(vec![fill; chunk]),
        _ => None,
    }
}

const BIG: usize = 512 * 1024 * 1024;

#[tokio::test]
async fn a_huge_form_field_before_the_file_is_refused_early() {
    let app = spawn_app().await;
    let start = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\n");
    let answer = raw_multipart(&app, &app.token("abc"), Duration::ZERO, endless(start, b'a', BIG)).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(code(&answer), "form-field-too-large");
    // The answer came long before the 512 MiB were sent (socket buffers hold a few MiB).
    assert!(answer.sent < 32 * 1024 * 1024, "sent {} bytes before the answer", answer.sent);
    assert!(app.stored_objects().await.is_empty());
}

#[tokio::test]
async fn junk_before_the_first_boundary_and_huge_part_headers_are_refused_early() {
    let app = spawn_app().await;
    let junk = raw_multipart(&app, &app.token("abc"), Duration::ZERO, endless(String::new(), b'j', BIG)).await;
    assert_eq!(junk.status, 413, "{}", junk.body);
    assert_eq!(code(&junk), "multipart-preamble-too-large");
    assert!(junk.sent < 32 * 1024 * 1024, "sent {}", junk.sent);

    let start = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"category\"\r\nX-Pad: ");
    let header = raw_multipart(&app, &app.token("abc"), Duration::ZERO, endless(start, b'h', BIG)).await;
    assert_eq!(header.status, 413, "{}", header.body);
    assert_eq!(code(&header), "multipart-preamble-too-large");
    assert!(header.sent < 32 * 1024 * 1024, "sent {}", header.sent);

    // Many small fields add up to the same cap.
    let many = move |i: usize| {
        (i < 100_000).then(|| {
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\nfalse\r\n").into_bytes()
        })
    };
    let many = raw_multipart(&app, &app.token("abc"), Duration::ZERO, many).await;
    assert_eq!(many.status, 413, "{}", many.body);
    assert_eq!(code(&many), "multipart-preamble-too-large");
}

#[tokio::test]
async fn fields_at_the_limit_pass_and_one_byte_more_is_refused() {
    let app = spawn_app().await;
    let form = |filename: String| {
        let part = reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("x.txt");
        reqwest::multipart::Form::new().text("category", "reports").text("filename", filename).part("file", part)
    };
    // 1,024 bytes: read, then refused as a filename (too long), not as a field.
    let res =
        app.request(reqwest::Method::POST, "/v1/files", &app.token("abc")).multipart(form("a".repeat(1024))).send();
    assert_error(res.await.unwrap(), StatusCode::BAD_REQUEST, "invalid-filename").await;
    let res =
        app.request(reqwest::Method::POST, "/v1/files", &app.token("abc")).multipart(form("a".repeat(1025))).send();
    assert_error(res.await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE, "form-field-too-large").await;
    let res =
        app.request(reqwest::Method::POST, "/v1/files", &app.token("abc")).multipart(form("ok.txt".into())).send();
    assert_eq!(res.await.unwrap().status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_large_file_part_streams_past_the_preamble_cap() {
    let app = spawn_app().await;
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let part = reqwest::multipart::Part::bytes(data.clone()).file_name("big.bin");
    let form = reqwest::multipart::Form::new().text("category", "reports").part("file", part);
    let res = app.request(reqwest::Method::POST, "/v1/files", &app.token("abc")).multipart(form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let got = app.download("abc", "tenant-abc/reports/big.bin").await.bytes().await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data);
}

#[tokio::test]
async fn a_stalled_form_frees_its_slot_at_the_idle_timeout() {
    let app = spawn_app_with(&[("COFFER_BODY_IDLE_TIMEOUT", "500ms"), ("COFFER_MAX_UPLOADS_PER_TENANT", "1")]).await;
    let start = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"categ");
    let started = Instant::now();
    let stalled = raw_multipart(&app, &app.token("abc"), Duration::from_secs(30), move |i| {
        (i == 0).then(|| start.clone().into_bytes())
    })
    .await;
    assert_eq!(stalled.status, 408, "{}", stalled.body);
    assert_eq!(code(&stalled), "body-timeout");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The slot is free at once.
    assert_eq!(app.upload("abc", "reports", "next.txt", "x").await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_trickle_inside_the_idle_timeout_is_too_slow() {
    // A wide margin between the trickle's pause and the idle timeout, for loaded machines.
    let app = spawn_app_with(&[
        ("COFFER_BODY_IDLE_TIMEOUT", "2s"),
        ("COFFER_UPLOAD_MIN_RATE", "1 KiB"),
        ("COFFER_MAX_UPLOADS_PER_TENANT", "1"),
    ])
    .await;
    let start = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"category\"\r\n\r\n");
    // One byte every 400 ms: never idle for 2 s, never near 1 KiB/s.
    let trickle = raw_multipart(&app, &app.token("abc"), Duration::from_millis(400), move |i| {
        if i == 0 { Some(start.clone().into_bytes()) } else { (i < 200).then(|| b"r".to_vec()) }
    })
    .await;
    assert_eq!(trickle.status, 408, "{}", trickle.body);
    assert_eq!(code(&trickle), "body-too-slow");
    assert_eq!(app.upload("abc", "reports", "next.txt", "x").await.status(), StatusCode::CREATED);

    // The same trickle in a raw body.
    let body = futures::stream::unfold(0, |i| async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        (i < 200).then(|| (Ok::<_, std::io::Error>(b"r".to_vec()), i + 1))
    });
    let res = app.upload("abc", "reports", "trickle.txt", reqwest::Body::wrap_stream(body)).await;
    assert_error(res, StatusCode::REQUEST_TIMEOUT, "body-too-slow").await;
    assert_eq!(app.upload("abc", "reports", "after.txt", "x").await.status(), StatusCode::CREATED);
}

/// Generated form bodies — junk before the first boundary, fields in any order and number,
/// padded part headers, odd names — are answered with a 2xx or a 4xx with a code, never a 5xx,
/// and a stored file always lands under the caller's own prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_forms_get_clear_answers() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let app = spawn_app().await;
    let token = app.token("abc");
    let field = prop_oneof![
        Just(("category".to_owned(), "reports".to_owned())),
        Just(("filename".to_owned(), "gen.txt".to_owned())),
        Just(("overwrite".to_owned(), "true".to_owned())),
        ("[a-z]{1,8}", "\\PC{0,20}"),
        ("category|filename|overwrite", "\\PC{0,40}"),
        Just(("category".to_owned(), "c".repeat(2000))),
    ];
    let form = (
        prop_oneof![Just(0usize), 1usize..64, Just(20_000usize)],
        proptest::collection::vec(field, 0..12),
        any::<bool>(),
        prop_oneof![Just(0usize), 1usize..200, Just(20_000usize)],
        proptest::collection::vec(any::<u8>(), 0..256),
    );
    let cases: u32 = std::env::var("COFFER_ISOLATION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(200, |n: u32| (n / 50).max(50));
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&form, |(junk, fields, with_file, header_pad, data)| {
            handle.block_on(async {
                let mut body = vec![b'j'; junk];
                for (name, value) in &fields {
                    body.extend(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes());
                }
                if with_file {
                    let pad = "p".repeat(header_pad);
                    body.extend(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\nX-Pad: {pad}\r\n\r\n").bytes());
                    body.extend(&data);
                    body.extend(b"\r\n");
                }
                body.extend(format!("--{BOUNDARY}--\r\n").bytes());
                let res = app
                    .request(reqwest::Method::POST, "/v1/files", &token)
                    .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                let answer: Value = res.json().await.unwrap_or(Value::Null);
                prop_assert!(!status.is_server_error(), "{status}: {answer}");
                if status.is_success() {
                    prop_assert!(answer["key"].as_str().unwrap().starts_with("tenant-abc/"), "{answer}");
                } else {
                    prop_assert!(answer["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{status}: {answer}");
                }
                Ok::<(), TestCaseError>(())
            })
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("hostile forms: {cases} generated multipart bodies");
}
