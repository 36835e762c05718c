//! Crash consistency: run `coffer serve`, drive concurrent uploads, overwrites and deletes,
//! and resumable (tus) uploads sent in pieces across the rounds, SIGKILL it at random moments
//! for 20 rounds, reconcile, restart; after every round each key must hold the last answered
//! state (or, for the one request in flight at the kill, possibly its outcome), a resumable
//! upload must be at least at the offset last acknowledged, and at the end no bytes may lack a
//! row nor a row its bytes, and every completed resumable upload holds exactly its bytes. SQLite
//! and PostgreSQL.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

const ROUNDS: usize = 20;
const WORKERS: usize = 4;
const KEYS_PER_WORKER: usize = 4;
const SECRET: &str = "crash-test-secret-crash-test-secret-0000";
/// Longer than the lease an intent's mark carries with `COFFER_RECONCILE_GRACE=400ms`.
const LEASE: Duration = Duration::from_millis(400);

/// What a key may hold: the last confirmed state, and the outcome of a request whose answer
/// was lost to the kill.
#[derive(Clone, Debug, Default)]
struct KeyState {
    confirmed: Option<String>,
    in_flight: Option<Option<String>>,
}

type Model = Arc<Mutex<HashMap<String, KeyState>>>;

struct Server {
    child: Child,
    base: String,
}

const METRICS_TOKEN: &str = "crash-test-metrics-token";

/// How many resumable appends the server wrote while the one before was still being recorded.
async fn overlapped_appends(client: &reqwest::Client, base: &str) -> f64 {
    let Ok(res) = client.get(format!("{base}/metrics")).bearer_auth(METRICS_TOKEN).send().await else { return 0.0 };
    let text = res.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("coffer_tus_appends_overlapped_total ").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn start(bin: &str, data: &std::path::Path, db: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("COFFER_DATA_DIR", data)
        .env("DATABASE_URL", db)
        .env("COFFER_JWT_SECRET", SECRET)
        // Heartbeats every 100 ms, each vouching for 300 ms: a killed server's intents are
        // stale soon after the kill.
        .env("COFFER_RECONCILE_GRACE", "400ms")
        // A resumable upload a killed server was writing to is free again a second later.
        .env("COFFER_UPLOAD_LOCK_LEASE", "1s")
        .env("COFFER_LOG", "error")
        .env("COFFER_METRICS_TOKEN", METRICS_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start coffer");
    Server { child, base: format!("http://127.0.0.1:{port}") }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("coffer did not become ready at {base}");
}

/// Waits until PostgreSQL has ended every session of the killed server: a COMMIT it sent just
/// before the kill still lands, and the model must not be checked before it has.
async fn wait_for_dead_sessions(db: &str) {
    if !db.starts_with("postgres") {
        return;
    }
    let name = url::Url::parse(db).unwrap().path().trim_start_matches('/').to_owned();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&common::pg_admin_url()).await.unwrap();
    for _ in 0..600 {
        let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if sessions == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the killed server's PostgreSQL sessions did not end within 30 s");
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn worker(client: reqwest::Client, base: String, token: String, keys: Vec<String>, model: Model, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    loop {
        let name = &keys[rng.random_range(0..keys.len())];
        let key = format!("tenant-crash/reports/{name}");
        let op = rng.random_range(0..10);
        let size =
            if rng.random_bool(0.2) { rng.random_range(1 << 20..3 << 20) } else { rng.random_range(0..64 << 10) };
        let body: Vec<u8> = (0..size).map(|_| rng.random()).collect();
        let digest = sha(&body);
        let (outcome, request) = if op < 7 {
            let overwrite = op < 5;
            let req = client
                .post(format!("{base}/v1/files"))
                .bearer_auth(&token)
                .query(&[("category", "reports"), ("filename", name.as_str()), ("overwrite", &overwrite.to_string())])
                .body(body);
            (Some(digest.clone()), req)
        } else {
            (None, client.delete(format!("{base}/v1/files/{key}")).bearer_auth(&token))
        };
        let before = {
            let mut m = model.lock().unwrap();
            let state = m.entry(key.clone()).or_default();
            let before = state.confirmed.clone();
            // A non-overwriting upload of an existing key cannot change it.
            let possible = if (5..7).contains(&op) && before.is_some() { before.clone() } else { outcome.clone() };
            state.in_flight = Some(possible);
            before
        };
        let Ok(res) = request.send().await else { return };
        let status = res.status().as_u16();
        if res.bytes().await.is_err() {
            return;
        }
        let mut m = model.lock().unwrap();
        let state = m.get_mut(&key).unwrap();
        state.in_flight = None;
        state.confirmed = match status {
            201 => Some(digest),
            409 => before,
            204 | 404 => None,
            other => panic!("unexpected status {other} for {key}"),
        };
    }
}

/// Resumable uploads across the rounds: the one in progress (its URL, name and bytes), the
/// offset the server last acknowledged, and the files completed so far (key, sha256).
#[derive(Default)]
struct TusLedger {
    current: Option<(String, String, Vec<u8>)>,
    acked: usize,
    started: usize,
    /// Creations whose answer the kill cut off: each may have left an upload no one knows of.
    unanswered: usize,
    completed: Vec<(String, String)>,
}

/// Sends resumable uploads in pieces of random sizes until the server dies; checks on every
/// resume that no acknowledged byte was lost.
async fn tus_worker(client: reqwest::Client, base: String, token: String, ledger: Arc<Mutex<TusLedger>>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let tus = |req: reqwest::RequestBuilder| req.bearer_auth(&token).header("tus-resumable", "1.0.0");
    loop {
        let current = ledger.lock().unwrap().current.clone();
        let (url, name, data) = match current {
            Some(c) => c,
            None => {
                let n = {
                    let mut l = ledger.lock().unwrap();
                    l.started += 1;
                    l.started
                };
                let name = format!("tus-{n}.bin");
                let data: Vec<u8> = (0..rng.random_range(50_000..1_200_000)).map(|_| rng.random()).collect();
                let meta = format!("category ZXhwb3J0cw==,filename {}", base64_of(&name));
                let req = client
                    .post(format!("{base}/v1/uploads"))
                    .header("upload-length", data.len())
                    .header("upload-metadata", meta);
                let Ok(res) = tus(req).send().await else {
                    ledger.lock().unwrap().unanswered += 1;
                    return;
                };
                assert_eq!(res.status().as_u16(), 201, "creating {name}");
                let url = format!("{base}{}", res.headers()["location"].to_str().unwrap());
                let mut l = ledger.lock().unwrap();
                l.current = Some((url.clone(), name.clone(), data.clone()));
                l.acked = 0;
                (url, name, data)
            }
        };
        // The upload's URL names the server that made it; any later server continues it.
        let path = &url[url.find("/v1/uploads/").unwrap()..];
        let Ok(head) = tus(client.head(format!("{base}{path}"))).send().await else { return };
        // 423: a request of the dead server still holds the upload (until its lease runs out).
        if head.status().as_u16() == 423 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(head.status().as_u16(), 200, "HEAD {name}");
        let offset: usize = head.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
        let acked = ledger.lock().unwrap().acked;
        assert!(offset >= acked, "{name}: the server is at {offset}, but {acked} bytes were acknowledged");
        if offset == data.len() {
            finish_tus(&ledger, &name, &data);
            continue;
        }
        // Half the pieces end at a 64 KiB boundary — a sealed store's segment's end, which
        // leaves no tail — or at the upload's end.
        const SEGMENT: usize = 65_536;
        let piece = if rng.random_bool(0.5) {
            let boundary = (offset / SEGMENT + rng.random_range(1..=3)) * SEGMENT;
            boundary.min(data.len()) - offset
        } else {
            rng.random_range(1..=(data.len() - offset).min(200_000))
        };
        // Half the time the next piece goes right behind, as `coffer upload` sends it: it waits
        // its turn on the server, and is written while the one before is made durable and
        // recorded.
        let next = offset + piece;
        let ahead = (next < data.len() && rng.random_bool(0.5))
            .then(|| next + rng.random_range(1..=(data.len() - next).min(200_000)));
        let patch = |from: usize, to: usize| {
            let req = client
                .patch(format!("{base}{path}"))
                .header("upload-offset", from)
                .header("content-type", "application/offset+octet-stream")
                .body(data[from..to].to_vec());
            tus(req).send()
        };
        let behind = async {
            let to = ahead?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            Some((patch(next, to).await, next, to))
        };
        let (first, behind) = tokio::join!(patch(offset, next), behind);
        let mut died = false;
        for (res, from, to) in std::iter::once((first, offset, next)).chain(behind) {
            let Ok(res) = res else {
                died = true;
                continue;
            };
            match res.status().as_u16() {
                204 => {
                    let now: usize = res.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
                    assert_eq!(now, to, "{name}: PATCH from {from}");
                    let mut l = ledger.lock().unwrap();
                    l.acked = l.acked.max(now);
                }
                // Another request of the dead server still holds the upload, or it moved on
                // (the piece behind one that failed).
                423 => tokio::time::sleep(Duration::from_millis(100)).await,
                409 => {}
                other => panic!("PATCH {name} from {from}: status {other}: {}", res.text().await.unwrap_or_default()),
            }
        }
        if ledger.lock().unwrap().acked == data.len() {
            finish_tus(&ledger, &name, &data);
        }
        if died {
            return;
        }
    }
}

/// The offset of an upload, once no request of a killed server holds it.
async fn head_offset(client: &reqwest::Client, base: &str, path: &str, token: &str) -> usize {
    for _ in 0..100 {
        let res = client
            .head(format!("{base}{path}"))
            .bearer_auth(token)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            200 => return res.headers()["upload-offset"].to_str().unwrap().parse().unwrap(),
            423 => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("HEAD {path}: status {other}"),
        }
    }
    panic!("HEAD {path}: still locked after 50 s");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn finish_tus(ledger: &Mutex<TusLedger>, name: &str, data: &[u8]) {
    let mut l = ledger.lock().unwrap();
    l.completed.push((format!("tenant-crash/exports/{name}"), sha(data)));
    l.current = None;
    l.acked = 0;
}

/// Checks every key against the model and makes what was observed the new confirmed state.
async fn verify(client: &reqwest::Client, base: &str, token: &str, model: &Model) {
    let keys: Vec<String> = model.lock().unwrap().keys().cloned().collect();
    for key in keys {
        let res = client.get(format!("{base}/v1/files/{key}")).bearer_auth(token).send().await.unwrap();
        let actual = match res.status().as_u16() {
            200 => Some(sha(&res.bytes().await.unwrap())),
            404 => None,
            other => panic!("{key}: status {other}"),
        };
        let mut m = model.lock().unwrap();
        let state = m.get_mut(&key).unwrap();
        let allowed_in_flight = state.in_flight.as_ref().is_some_and(|o| *o == actual);
        assert!(
            actual == state.confirmed || allowed_in_flight,
            "{key}: holds {actual:?}, expected {:?} (or in flight {:?})",
            state.confirmed,
            state.in_flight
        );
        *state = KeyState { confirmed: actual, in_flight: None };
    }
}

fn reconcile(bin: &str, data: &std::path::Path, db: &str, extra: &[&str]) -> (bool, serde_json::Value) {
    let out = Command::new(bin)
        .args(["reconcile", "--grace", "0s", "--json"])
        .args(extra)
        .env("COFFER_DATA_DIR", data)
        .env("DATABASE_URL", db)
        .env("COFFER_JWT_SECRET", SECRET)
        .env("COFFER_LOG", "error")
        .output()
        .expect("run reconcile");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("reconcile output: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.success(), report)
}

fn stored_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() { stack.push(e.path()) } else { out.push(e.path()) }
        }
    }
    out
}

async fn crash_rounds(db: String) {
    let bin = env!("CARGO_BIN_EXE_coffer");
    let data = tempfile::tempdir().unwrap();
    let seed: u64 = std::env::var("COFFER_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("crash test seed {seed} (set COFFER_CRASH_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let client = reqwest::Client::new();
    let token = coffer::auth::TokenIssuer::new(&coffer::config::Secret::new(SECRET)).issue(
        &coffer::domain::TenantId::parse("crash").unwrap(),
        Duration::from_secs(3600),
        false,
    );
    let model: Model = Arc::default();
    let ledger: Arc<Mutex<TusLedger>> = Arc::default();
    let mut overlapped = 0.0;

    for round in 0..ROUNDS {
        let mut server = start(bin, data.path(), &db);
        wait_ready(&client, &server.base).await;
        verify(&client, &server.base, &token, &model).await;
        let tus_seed: u64 = rng.random();
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                let keys = (0..KEYS_PER_WORKER).map(|k| format!("w{w}-k{k}.bin")).collect();
                tokio::spawn(worker(
                    client.clone(),
                    server.base.clone(),
                    token.clone(),
                    keys,
                    model.clone(),
                    rng.random(),
                ))
            })
            .chain([tokio::spawn(tus_worker(
                client.clone(),
                server.base.clone(),
                token.clone(),
                ledger.clone(),
                tus_seed,
            ))])
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
        overlapped += overlapped_appends(&client, &server.base).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        wait_for_dead_sessions(&db).await;
        // The dead server's last leases run out.
        tokio::time::sleep(LEASE).await;
        let (ok, report) = reconcile(bin, data.path(), &db, &[]);
        assert!(ok, "round {round}: reconcile found problems: {report}");
        println!(
            "round {round}: rolled back {} intents, removed {} orphans and {} leftovers",
            report["intents_rolled_back"], report["orphans_removed"], report["leftovers_removed"]
        );
    }

    let mut server = start(bin, data.path(), &db);
    wait_ready(&client, &server.base).await;
    verify(&client, &server.base, &token, &model).await;
    // The upload in progress may have received every byte before the last kill: then it is
    // complete (the server completes it when asked); otherwise it is ended below.
    let current = ledger.lock().unwrap().current.clone();
    if let Some((url, name, data)) = &current {
        let path = &url[url.find("/v1/uploads/").unwrap()..];
        let offset = head_offset(&client, &server.base, path, &token).await;
        if offset == data.len() {
            finish_tus(&ledger, name, data);
        }
    }
    // Every completed resumable upload holds exactly its bytes; the one in progress is ended.
    let (completed, current) = {
        let mut l = ledger.lock().unwrap();
        (l.completed.clone(), l.current.take())
    };
    assert!(!completed.is_empty() || current.is_some(), "resumable uploads ran");
    for (key, digest) in &completed {
        let res = client.get(format!("{}/v1/files/{key}", server.base)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{key}");
        assert_eq!(&sha(&res.bytes().await.unwrap()), digest, "{key}");
    }
    if let Some((url, _, _)) = current {
        let path = &url[url.find("/v1/uploads/").unwrap()..];
        let mut ended = false;
        for _ in 0..100 {
            let res = client
                .delete(format!("{}{path}", server.base))
                .bearer_auth(&token)
                .header("tus-resumable", "1.0.0")
                .send()
                .await
                .unwrap();
            if res.status().as_u16() == 204 {
                ended = true;
                break;
            }
            // Locked by a request of a killed server until its lease runs out.
            assert_eq!(res.status().as_u16(), 423);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(ended, "the upload in progress could be terminated");
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // Nothing left to fix: no orphans, no leftovers, no row without bytes.
    let (ok, report) = reconcile(bin, data.path(), &db, &["--dry-run"]);
    assert!(ok, "{report}");
    for field in ["orphans_removed", "leftovers_removed", "intents_rolled_back"] {
        assert_eq!(report[field], 0, "{field}: {report}");
    }
    let present = model.lock().unwrap().values().filter(|s| s.confirmed.is_some()).count() + completed.len();
    assert_eq!(report["rows_checked"], present, "{report}");
    // Besides, the partial bytes of uploads whose creation was never answered (they live until
    // they expire).
    let (partials, on_disk): (Vec<_>, Vec<_>) = stored_files(&data.path().join("objects"))
        .into_iter()
        .partition(|p| p.ends_with(".tus-data") || p.ends_with(".tus-tail"));
    assert_eq!(on_disk.len(), present, "every stored object has a row and vice versa: {on_disk:?}");
    let partials: Vec<_> = partials.into_iter().filter(|p| p.ends_with(".tus-data")).collect();
    let unanswered = ledger.lock().unwrap().unanswered;
    assert!(partials.len() <= unanswered, "{partials:?}: more partial uploads than {unanswered} unanswered creations");
    println!("{ROUNDS} rounds, {present} files present at the end, {} of them resumable uploads", completed.len());
    // The kills met appends written beside the record of the one before, not only lone ones.
    println!("{overlapped} appends written while the one before was recorded");
    assert!(overlapped > 0.0, "no append was written while the one before was recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_rounds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_rounds(format!("sqlite://{}", dir.path().join("catalog.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_rounds_on_postgres() {
    crash_rounds(common::fresh_pg_database().await).await;
}
