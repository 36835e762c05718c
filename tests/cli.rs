//! The command-line client against a real server: streaming round trips and every error
//! path's exit code and message.

mod common;
#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

use helpers::{TestApp, spawn_app};

fn coffer(app: &TestApp, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(args).env("COFFER_URL", &app.base).env_remove("COFFER_TOKEN").stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("COFFER_TOKEN", t);
    }
    cmd.output().expect("run coffer")
}

/// `coffer upload ARGS…` against `app` with `token`, off the test's runtime threads (the server
/// runs on them).
async fn upload_cli(app: &TestApp, token: &str, args: Vec<String>) -> Output {
    let (base, token) = (app.base.clone(), token.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("upload")
            .args(args)
            .env("COFFER_URL", base)
            .env("COFFER_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `coffer upload` of `data` (as `name`, in exports) through tus in chunks of `chunk`, against
/// `url`, with a state directory of its own.
async fn upload_resumably(url: &str, token: &str, name: &str, data: &[u8], chunk: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    std::fs::write(&input, data).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["upload", input.to_str().unwrap(), "--category", "exports", "--resumable-over", "1MiB"])
        .args(["--chunk-size", chunk])
        .env("COFFER_URL", url)
        .env("COFFER_TOKEN", token)
        .env("COFFER_STATE_DIR", dir.path().join("state"))
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_mib_round_trip_with_the_same_sha256() {
    let app = spawn_app().await;
    let token = app.token("abc");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big export.bin");
    let data: Vec<u8> = (0..50u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let expected = hex::encode(Sha256::digest(&data));

    let path = input.to_str().unwrap().to_owned();
    let args = [path.as_str(), "--category", "exports", "--json"].map(String::from).to_vec();
    let out = upload_cli(&app, &token, args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result[0]["file_metadata"]["sha256"], expected);
    assert!(!text(&out.stderr).contains('\r'), "no progress bar when stderr is not a terminal");

    let target = dir.path().join("back.bin");
    let target_s = target.to_str().unwrap().to_owned();
    let run = |args: Vec<String>| {
        let (base, token) = (app.base.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_coffer"))
                .args(&args)
                .env("COFFER_URL", base)
                .env("COFFER_TOKEN", token)
                .output()
                .unwrap()
        })
    };
    let out =
        run(vec!["download".into(), "tenant-abc/exports/big export.bin".into(), "-o".into(), target_s]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(hex::encode(Sha256::digest(std::fs::read(&target).unwrap())), expected);

    let out = run(vec!["download".into(), "tenant-abc/exports/big export.bin".into(), "-o".into(), "-".into()])
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(hex::encode(Sha256::digest(&out.stdout)), expected, "to standard output");

    let out = run(vec!["ls".into(), "--category".into(), "exports".into()]).await.unwrap();
    assert!(text(&out.stdout).starts_with("tenant-abc/exports/big export.bin\t50.0 MiB"), "{}", text(&out.stdout));

    let out = run(vec!["url".into(), "tenant-abc/exports/big export.bin".into(), "--expires".into(), "10m".into()])
        .await
        .unwrap();
    let link = text(&out.stdout).trim().to_owned();
    let fetched = reqwest::get(&link).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(hex::encode(Sha256::digest(fetched.bytes().await.unwrap())), expected);

    let out = run(vec!["rm".into(), "tenant-abc/exports/big export.bin".into(), "--json".into()]).await.unwrap();
    assert!(out.status.success());
    let out = run(vec!["ls".into(), "--json".into()]).await.unwrap();
    assert_eq!(text(&out.stdout).trim(), "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_stable_exit_codes_and_one_line_messages() {
    let app = spawn_app().await;
    let token = app.token("abc");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "hello").unwrap();
    let f = file.to_str().unwrap();

    let cases: Vec<(Option<&str>, Vec<&str>, i32, &str)> = vec![
        (Some(&token), vec!["upload", f, "--category", "nope"], 1, "unknown-category"),
        (Some(&token), vec!["upload", f, "--category", "reports"], 0, ""),
        (Some(&token), vec!["upload", f, "--category", "reports"], 1, "already-exists"),
        (Some(&token), vec!["upload", f, "--category", "reports", "--overwrite"], 0, ""),
        (Some(&token), vec!["download", "tenant-abc/reports/none.txt", "-o", "-"], 1, "not-found"),
        (Some(&token), vec!["download", "tenant-zzz/reports/a.txt", "-o", "-"], 1, "tenant-mismatch"),
        (Some(&token), vec!["rm", "not a key"], 2, "invalid key"),
        (Some(&token), vec!["upload", "/nonexistent/file.pdf", "--category", "reports"], 2, "No such file"),
        (Some("garbage"), vec!["ls"], 1, "malformed-token"),
        (None, vec!["ls"], 2, "COFFER_TOKEN"),
        (Some(&token), vec!["url", "tenant-abc/reports/a.txt", "--expires", "30d"], 1, "invalid-expiry"),
        (Some(&token), vec!["frobnicate"], 2, "unrecognized subcommand"),
    ];
    for (tok, args, code, needle) in cases {
        let app_ref = &app;
        let out = tokio::task::block_in_place(|| coffer(app_ref, tok, &args));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        if code == 1 {
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        }
    }
    // An unreachable server is a local error.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    let out = cmd.args(["ls", "--url", "http://127.0.0.1:9", "--token", &token]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot reach the server"));
    // --help documents the exit codes.
    let out = Command::new(env!("CARGO_BIN_EXE_coffer")).arg("--help").output().unwrap();
    assert!(text(&out.stdout).contains("Exit codes: 0 success; 1 the server refused"));
}

/// What is not a regular file: a directory is refused before anything is sent; a pipe (a
/// FIFO, `<(command)` in a shell, or standard input as `-` with `--name`) is streamed to its
/// end without a length, and stored whole (it used to be sent as its zero-byte `stat` length:
/// an empty file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_are_refused_and_pipes_and_standard_input_are_streamed_whole() {
    let app = spawn_app().await;
    let token = app.token("abc");
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let out =
        upload_cli(&app, &token, vec![folder.to_str().unwrap().into(), "--category".into(), "reports".into()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is a directory"), "{}", text(&out.stderr));

    let fifo = dir.path().join("dump.sql");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches nothing else.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let (fifo, data) = (fifo.clone(), data.clone());
        std::thread::spawn(move || std::fs::write(fifo, data).unwrap())
    };
    let out =
        upload_cli(&app, &token, vec![fifo.to_str().unwrap().into(), "--category".into(), "reports".into()]).await;
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let res = app.request(reqwest::Method::GET, "/v1/files/tenant-abc/reports/dump.sql", &token).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());

    // Standard input, under the name given; without one it is refused, as is one name for
    // several files.
    let (base, piped) = (app.base.clone(), data[..1_000_000].to_vec());
    let cli = |args: &'static [&'static str], input: Option<Vec<u8>>| {
        let (base, token) = (base.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
                .arg("upload")
                .args(args)
                .env("COFFER_URL", base)
                .env("COFFER_TOKEN", token)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            if let Some(input) = input {
                stdin.write_all(&input).unwrap();
            }
            drop(stdin);
            child.wait_with_output().unwrap()
        })
    };
    let out = cli(&["-", "--name", "piped.bin", "--category", "reports"], Some(piped.clone())).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let res = app.request(reqwest::Method::GET, "/v1/files/tenant-abc/reports/piped.bin", &token).send().await.unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), piped.as_slice());
    for (args, needle) in [
        (&["-", "--category", "reports"][..], "--name"),
        (&["a", "b", "--name", "c", "--category", "reports"][..], "one file"),
    ] {
        let out = cli(args, None).await.unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
    }
}

/// A big upload the server refuses at once (unknown category, bad token, over the size limit)
/// reports the server's code with exit 1 every time: the server reads and discards the rest of
/// the body for a while after answering, instead of resetting a connection the client is
/// still sending on (before, about one run in five said "cannot reach the server", exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_upload_refused_early_always_gets_the_refusal() {
    let app = helpers::spawn_app_with(&[("COFFER_MAX_UPLOADS_PER_TENANT", "64")]).await;
    let token = app.token("abc");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.bin");
    std::fs::write(&input, vec![7u8; 128 << 20]).unwrap();
    let path = input.to_str().unwrap().to_owned();
    let cases = [
        (token.clone(), "nope", "unknown-category"),
        (format!("{token}x"), "exports", "bad-token-signature"),
        (token.clone(), "logos", "too-large"),
    ];
    for round in 0..6 {
        for (token, category, code) in &cases {
            let out = upload_cli(&app, token, [path.as_str(), "--category", category].map(String::from).to_vec()).await;
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "round {round}, {code}: {err}");
            assert!(err.contains(code), "round {round}: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_continues_when_the_command_is_run_again() {
    let app = spawn_app().await;
    let token = app.token("abc");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = dir.path().join("large.bin");
    let data: Vec<u8> = (0..48u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let run = |chunk: &str| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
        cmd.args(["upload", input.to_str().unwrap(), "--category", "exports", "--resumable-over", "1MiB"])
            .args(["--chunk-size", chunk])
            .env("COFFER_URL", &app.base)
            .env("COFFER_TOKEN", &token)
            .env("COFFER_STATE_DIR", &state)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    // The first run is killed once the server holds a few MiB.
    let mut first = run("256KiB").spawn().unwrap();
    let state_file = state.join("uploads.json");
    let mut upload = None;
    let mut held = 0u64;
    for _ in 0..1000 {
        if upload.is_none() {
            let saved: serde_json::Value =
                std::fs::read(&state_file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
            upload =
                saved.as_object().and_then(|m| m.values().next()).map(|e| e["upload"].as_str().unwrap().to_owned());
        }
        if let Some(url) = &upload {
            let res = app.client.head(url).bearer_auth(&token).header("tus-resumable", "1.0.0").send().await.unwrap();
            held = res.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
            if held >= 4 << 20 {
                break;
            }
        }
        assert!(first.try_wait().unwrap().is_none(), "the first run ended before it could be interrupted");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    first.kill().await.unwrap();
    assert!(held >= 4 << 20 && held < data.len() as u64, "{held}");

    // Running the same command again continues from the server's offset.
    let out = run("32MiB").output().await.unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let resumed: u64 = err
        .split("resuming at ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume reported: {err}"));
    assert!(resumed >= held, "resumed at {resumed}, the server held {held}");
    assert!(text(&out.stdout).starts_with("tenant-abc/exports/large.bin\t"), "{}", text(&out.stdout));
    let got = app.download("abc", "tenant-abc/exports/large.bin").await.bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&got)), hex::encode(Sha256::digest(&data)));
    // Done: the state file forgets it.
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(saved, serde_json::json!({}));
}

/// A connection cut in the middle of an append: the same run notices, says so, asks the server
/// for its offset and carries on from there, and the file arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_upload_is_retried_from_the_servers_offset() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let token = app.token("abc");
    // A proxy in front of the server that cuts the first connection to carry more than 3 MiB
    // from the client (whichever it is: the creation's connection may or may not be reused).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let upstream = app.base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let cut = std::sync::Arc::new(AtomicBool::new(false));
    let cut_done = cut.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let cut_done = cut_done.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let (mut sent, mut buf) = (0usize, vec![0u8; 64 * 1024]);
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || (sent + n > 3 << 20 && !cut_done.swap(true, Ordering::SeqCst)) {
                            return;
                        }
                        sent += n;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                // Either side ending ends both: dropping the halves closes the connections.
                tokio::select! { () = up => {}, () = down => {} }
            });
        }
    });

    let data: Vec<u8> = (0..12u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    // One chunk: no request is sent ahead, so the cut one is the append itself (a chunk sent
    // ahead and cut is sent again silently: the balancer test covers that).
    let out = upload_resumably(&proxy, &token, "big.bin", &data, "16MiB").await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(cut.load(Ordering::SeqCst));
    assert!(err.contains("retrying from the server's offset"), "the retry was not reported: {err}");
    let got = app.download("abc", "tenant-abc/exports/big.bin").await.bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&got)), hex::encode(Sha256::digest(&data)));
}

/// Behind a balancer that sends each connection to the next of two instances, the chunk the
/// client sends ahead (before the previous one is answered) reaches the instance that is not
/// running the previous append, which refuses it (busy, or not yet at its offset). The client
/// sends it again after the answer, without counting a failure or waiting out a backoff, and
/// stops sending ahead; the file arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_balancer_a_chunk_sent_ahead_and_refused_is_sent_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let first = spawn_app().await;
    let second = helpers::spawn_sibling(&first).await;
    let token = first.token("abc");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let balancer = format!("http://{}", listener.local_addr().unwrap());
    let upstreams: Vec<String> = [&first, &second]
        .iter()
        .map(|a| a.base.trim_start_matches("http://").trim_end_matches('/').to_owned())
        .collect();
    let connections = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = &upstreams[counted.fetch_add(1, Ordering::SeqCst) % 2];
            let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });

    let data: Vec<u8> = (0..20u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
    let out = upload_resumably(&balancer, &token, "balanced.bin", &data, "4MiB").await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("retrying"), "a refused chunk sent ahead is no failure: {err}");
    assert!(connections.load(Ordering::SeqCst) >= 2, "both instances were used");
    let got = first.download("abc", "tenant-abc/exports/balanced.bin").await.bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&got)), hex::encode(Sha256::digest(&data)));
}
