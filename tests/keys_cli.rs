//! Encryption at rest and tenant purge through the real binary: a wrong master key stops
//! `coffer serve` with one line; `coffer keys rotate-master` re-wraps keys without touching
//! objects; `coffer keys encrypt-existing` and `coffer tenant purge` survive SIGKILL at any
//! point and complete when run again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use coffer::config::{Config, Overrides};
use coffer::domain::{Category, Filename, ObjectKey, TenantId};
use coffer::service::StorageService;
use futures::StreamExt;

const SECRET: &str = "keys-test-secret-keys-test-secret-0123456";
const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn coffer(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(args).env("COFFER_DATA_DIR", data).env("COFFER_LOG", "error").env("COFFER_JWT_SECRET", SECRET);
    for var in ["COFFER_MASTER_KEY", "COFFER_NEW_MASTER_KEY", "COFFER_ENCRYPTION", "DATABASE_URL", "COFFER_STORAGE"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    coffer(data, env, args).output().expect("run coffer")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn service(data: &Path, env: &[(&str, &str)]) -> Result<StorageService, coffer::service::StartError> {
    let mut vars: HashMap<String, String> = HashMap::from([("COFFER_JWT_SECRET".into(), SECRET.into())]);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let overrides = Overrides { data_dir: Some(data.to_owned()), ..Overrides::default() };
    let config = Config::from_lookup(|k| vars.get(k).cloned(), &overrides).expect("config");
    coffer::startup::service(&config).await
}

fn body(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| ((i * 13 + j * 7) % 251) as u8).collect()
}

async fn upload_many(svc: &StorageService, tenant: &str, count: usize, len: usize) {
    let t = TenantId::parse(tenant).unwrap();
    futures::stream::iter(0..count)
        .map(|i| {
            let (svc, t) = (svc.clone(), t.clone());
            async move {
                let bytes = bytes::Bytes::from(body(i, len));
                let stream: coffer::blob::ByteStream = Box::pin(futures::stream::once(async move { Ok(bytes) }));
                let name = Filename::parse(&format!("f{i:05}.bin")).unwrap();
                svc.upload_file(&t, &Category::parse("exports").unwrap(), &name, stream, None).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

async fn read(svc: &StorageService, tenant: &str, i: usize) -> Result<Vec<u8>, String> {
    let t = TenantId::parse(tenant).unwrap();
    let key = ObjectKey::parse(&format!("tenant-{tenant}/exports/f{i:05}.bin")).unwrap();
    let (_, mut stream) = svc.download_file(&t, &key).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Every object file under the data dir's documents bucket for `tenant`.
fn object_files(data: &Path, tenant: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data.join("objects/carbon-connect-dev-documents").join(format!("tenant-{tenant}")), &mut out);
    out
}

fn sealed(path: &Path) -> bool {
    std::fs::read(path).map(|b| b.starts_with(b"CFRSEAL1")).unwrap_or(false)
}

#[tokio::test]
async fn a_wrong_or_missing_master_key_stops_serve_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), &[("COFFER_MASTER_KEY", K1)]).await.unwrap();
    upload_many(&svc, "acme", 1, 100).await;
    drop(svc);
    for (env, expected) in [
        (vec![("COFFER_MASTER_KEY", K2)], "COFFER_MASTER_KEY is not this data dir's master key"),
        (vec![], "none is configured: set COFFER_MASTER_KEY"),
        (vec![("COFFER_MASTER_KEY", "abc")], "COFFER_MASTER_KEY: must be 64 hex digits"),
        (vec![("COFFER_MASTER_KEY", K1), ("COFFER_ENCRYPTION", "off")], "COFFER_ENCRYPTION=off, but this data dir"),
    ] {
        let mut env = env;
        env.push(("COFFER_ADDR", "127.0.0.1:0"));
        let out = run(dir.path(), &env, &["serve"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains(K1) && !err.contains(K2), "the key itself is never printed");
    }
    // The right key still opens it.
    let svc = service(dir.path(), &[("COFFER_MASTER_KEY", K1)]).await.unwrap();
    assert_eq!(read(&svc, "acme", 0).await.unwrap(), body(0, 100));
}

fn checksum_objects(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all: Vec<(PathBuf, Vec<u8>)> = ["acme", "bob"]
        .iter()
        .flat_map(|t| object_files(data, t))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    all.sort();
    all
}

fn key_file(data: &Path, tenant: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data.join(format!("keys/tenant-{tenant}.json"))).unwrap()).unwrap()
}

#[tokio::test]
async fn rotate_master_rewraps_every_key_and_leaves_objects_alone() {
    // A master key generated into the data dir: rotation generates the next one there.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let svc = service(d, &[]).await.unwrap();
    upload_many(&svc, "acme", 3, 70_000).await;
    upload_many(&svc, "bob", 2, 10).await;
    let before_key = std::fs::read_to_string(d.join("master-key")).unwrap();
    let before_objects = checksum_objects(d);
    let before_wrap = key_file(d, "acme");
    let out = run(d, &[], &["keys", "rotate-master"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("re-wrapped 2 tenant keys"), "{}", text(&out.stdout));
    assert_ne!(std::fs::read_to_string(d.join("master-key")).unwrap(), before_key);
    assert!(!d.join("master-key.next").exists());
    let after_wrap = key_file(d, "acme");
    assert_eq!(after_wrap["key_id"], before_wrap["key_id"]);
    assert_ne!(after_wrap["wrapped"], before_wrap["wrapped"]);
    assert_ne!(after_wrap["master_key_id"], before_wrap["master_key_id"]);
    assert_eq!(checksum_objects(d), before_objects, "objects are not touched");
    // The running service (old key in memory) keeps reading: the data key did not change.
    assert_eq!(read(&svc, "acme", 2).await.unwrap(), body(2, 70_000));
    drop(svc);
    let svc = service(d, &[]).await.unwrap();
    for i in 0..3 {
        assert_eq!(read(&svc, "acme", i).await.unwrap(), body(i, 70_000));
    }

    // A master key given in the environment: the new one too, and the old one stops working.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let svc = service(d, &[("COFFER_MASTER_KEY", K1)]).await.unwrap();
    upload_many(&svc, "acme", 2, 100).await;
    drop(svc);
    let out = run(d, &[("COFFER_MASTER_KEY", K1)], &["keys", "rotate-master"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("COFFER_NEW_MASTER_KEY"));
    let out = run(d, &[("COFFER_MASTER_KEY", K1), ("COFFER_NEW_MASTER_KEY", K2)], &["keys", "rotate-master"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("now set COFFER_MASTER_KEY"));
    let again = run(d, &[("COFFER_MASTER_KEY", K1), ("COFFER_NEW_MASTER_KEY", K2)], &["keys", "rotate-master"]);
    assert!(again.status.success());
    assert!(text(&again.stdout).contains("already under master key"));
    let err = service(d, &[("COFFER_MASTER_KEY", K1)]).await.err().expect("the old key is refused");
    assert!(err.to_string().contains("is not this data dir's master key"), "{err}");
    let svc = service(d, &[("COFFER_MASTER_KEY", K2)]).await.unwrap();
    assert_eq!(read(&svc, "acme", 1).await.unwrap(), body(1, 100));
}

#[tokio::test]
async fn encrypt_existing_survives_sigkill_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let count = 300;
    // A data dir from before encryption at rest: plaintext objects.
    let svc = service(d, &[("COFFER_ENCRYPTION", "off")]).await.unwrap();
    upload_many(&svc, "acme", count, 64 * 1024 + 7).await;
    drop(svc);
    assert!(!d.join("keys").exists());
    assert!(object_files(d, "acme").iter().all(|p| !sealed(p)));

    let mut kills = 0;
    let mut partial = 0;
    let started = Instant::now();
    for round in 0..40 {
        let mut child = coffer(d, &[], &["keys", "encrypt-existing"]).stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(40 + 37 * (round % 5)));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let files = object_files(d, "acme");
        let done = files.iter().filter(|p| sealed(p)).count();
        if done > 0 && done < count {
            partial += 1;
        }
        // Mixed mode: every object reads, sealed or not yet.
        let svc = service(d, &[]).await.unwrap();
        for i in (0..count).step_by(29) {
            assert_eq!(read(&svc, "acme", i).await.unwrap(), body(i, 64 * 1024 + 7), "object {i} after kill {kills}");
        }
    }
    let out = run(d, &[], &["keys", "encrypt-existing"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("0 left alone"), "{}", text(&out.stdout));
    let files = object_files(d, "acme");
    let leftovers: Vec<_> = files.iter().filter(|p| !p.to_string_lossy().ends_with(".bin")).take(3).collect();
    assert_eq!(files.len(), count, "no leftover temporary files, e.g. {leftovers:?}");
    assert!(files.iter().all(|p| sealed(p)));
    let store: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("keys/store.json")).unwrap()).unwrap();
    assert!(store["plaintext_before_ms"].is_null(), "every object is sealed now: {store}");
    let svc = service(d, &[]).await.unwrap();
    for i in 0..count {
        assert_eq!(read(&svc, "acme", i).await.unwrap(), body(i, 64 * 1024 + 7));
    }
    // From now on an unsealed object is an error, not a legacy file.
    std::fs::write(&files[0], b"plaintext slipped in").unwrap();
    let n: usize = files[0].file_name().unwrap().to_str().unwrap()[1..6].parse().unwrap();
    assert!(read(&svc, "acme", n).await.unwrap_err().contains("integrity"));
    println!("encrypt-existing: {kills} kills ({partial} mid-conversion) in {:?}", started.elapsed());
    assert!(partial > 0 || kills == 0, "no kill landed mid-conversion");
}

#[tokio::test]
async fn purge_survives_sigkill_and_leaves_nothing_readable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let svc = service(d, &[]).await.unwrap();
    upload_many(&svc, "acme", 1500, 3000).await;
    upload_many(&svc, "bob", 3, 100).await;
    drop(svc);
    let key = d.join("keys/tenant-acme.json");
    assert!(key.exists());

    let out = run(d, &[], &["tenant", "purge", "acme"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--confirm acme"), "{}", text(&out.stderr));
    assert_eq!(object_files(d, "acme").len(), 1500, "nothing removed without confirmation");

    // Killed right after the key is destroyed.
    let mut child = coffer(d, &[], &["tenant", "purge", "acme", "--confirm", "acme", "--wait", "0s"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while key.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(300));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!key.exists(), "the key goes first");
    let left = object_files(d, "acme");
    println!("purge killed with {} of 1500 objects still on disk", left.len());
    // Whatever is left is unreadable with everything the data dir holds.
    let svc = service(d, &[]).await.unwrap();
    let (_, blobs) = svc.parts();
    for path in left.iter().take(50) {
        let rel = path.strip_prefix(d.join("objects/carbon-connect-dev-documents")).unwrap();
        let blob = coffer::domain::BlobKey::parse(rel.to_str().unwrap()).unwrap();
        let bucket = coffer::domain::BucketName::parse("carbon-connect-dev-documents").unwrap();
        assert!(matches!(blobs.get(&bucket, &blob, None).await, Err(coffer::blob::BlobError::Key(_))));
    }
    drop(svc);

    // Run again: completes.
    let out = run(d, &[], &["tenant", "purge", "acme", "--confirm", "acme", "--wait", "0s", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tenant"], "acme");
    assert!(object_files(d, "acme").is_empty());
    assert!(!d.join("objects/carbon-connect-dev-documents/tenant-acme").exists());
    let tenants = text(&run(d, &[], &["tenant", "list"]).stdout);
    assert!(!tenants.contains("acme"), "{tenants}");
    let svc = service(d, &[]).await.unwrap();
    assert!(read(&svc, "acme", 0).await.unwrap_err().contains("no such file"));
    assert_eq!(read(&svc, "bob", 2).await.unwrap(), body(2, 100), "other tenants untouched");
    // The audit trail: who purged what, when.
    let audit = std::fs::read_to_string(d.join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().filter(|l| l["action"] == "tenant.purge.started").count() >= 2);
    let done = lines.iter().find(|l| l["action"] == "tenant.purge.completed").expect("a completion line");
    assert_eq!(done["tenant"], "acme");
    assert!(done["actor"].is_string() && done["at"].is_string());
}

#[tokio::test]
async fn tenant_export_writes_a_verified_archive_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let svc = service(d, &[]).await.unwrap();
    upload_many(&svc, "acme", 5, 70_000).await;
    upload_many(&svc, "bob", 1, 10).await;
    drop(svc);
    let archive = d.join("acme.tar");
    let out = run(d, &[], &["tenant", "export", "acme", "-o", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&archive).unwrap();
    let mut tar = tar::Archive::new(&bytes[..]);
    let mut names = Vec::new();
    for (i, entry) in tar.entries().unwrap().enumerate() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        if name != "manifest.jsonl" {
            assert_eq!(content, body(i, 70_000), "{name}");
        } else {
            assert_eq!(text(&content).lines().count(), 5);
        }
        names.push(name);
    }
    assert_eq!(names.len(), 6);
    assert_eq!(names[0], "tenant-acme/exports/f00000.bin");
    // To standard output, the same bytes but the mtime of the manifest entry.
    let out = run(d, &[], &["tenant", "export", "acme", "-o", "-", "--category", "exports"]);
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), bytes.len());
    // Refusals: an unknown category, a bad tenant id; no file left behind.
    let bad = d.join("bad.tar");
    let out = run(d, &[], &["tenant", "export", "acme", "-o", bad.to_str().unwrap(), "--category", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown category"), "{}", text(&out.stderr));
    let out = run(d, &[], &["tenant", "export", "../x", "-o", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!bad.exists() && !d.join("bad.tar.partial").exists());
    // A tampered object: the export fails and leaves no archive that looks whole.
    let victim = object_files(d, "acme").into_iter().next().unwrap();
    let mut sealed_bytes = std::fs::read(&victim).unwrap();
    let n = sealed_bytes.len();
    sealed_bytes[n - 1] ^= 1;
    std::fs::write(&victim, sealed_bytes).unwrap();
    let broken = d.join("broken.tar");
    let out = run(d, &[], &["tenant", "export", "acme", "-o", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("export of acme failed"), "{}", text(&out.stderr));
    assert!(!broken.exists() && !d.join("broken.tar.partial").exists());
}

/// `scripts/open-sealed`, written from ARCHITECTURE.md alone, opens what coffer sealed: the
/// documented format is the one on disk.
#[tokio::test]
async fn an_independent_decryptor_opens_every_sealed_object() {
    let python = std::env::var("COFFER_TEST_PYTHON")
        .expect("COFFER_TEST_PYTHON (a Python with `cryptography`; run scripts/test)");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/open-sealed");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let svc = service(d, &[]).await.unwrap();
    let sizes = [0usize, 1, 65_535, 65_536, 65_537, 200_000];
    for (i, &len) in sizes.iter().enumerate() {
        let bytes = bytes::Bytes::from(body(i, len));
        let stream: coffer::blob::ByteStream = Box::pin(futures::stream::once(async move { Ok(bytes) }));
        let name = Filename::parse(&format!("f{i:05}.bin")).unwrap();
        svc.upload_file(&TenantId::parse("acme").unwrap(), &Category::parse("exports").unwrap(), &name, stream, None)
            .await
            .unwrap();
    }
    let open = |path: &Path| {
        let base = d.join("objects/carbon-connect-dev-documents");
        let blob_key = path.strip_prefix(&base).unwrap().to_str().unwrap().to_owned();
        Command::new(&python)
            .arg(script)
            .arg(d)
            .arg(&blob_key)
            .arg(path)
            .env_remove("COFFER_MASTER_KEY")
            .output()
            .unwrap()
    };
    let check = || {
        let mut files = object_files(d, "acme");
        files.sort_by_key(|p| p.file_name().unwrap().to_owned());
        assert_eq!(files.len(), sizes.len());
        for (i, path) in files.iter().enumerate() {
            let out = open(path);
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert_eq!(out.stdout, body(i, sizes[i]), "object {i}");
        }
        files
    };
    let files = check();
    // After a rotation, with the new master key.
    assert!(run(d, &[], &["keys", "rotate-master"]).status.success());
    check();
    // A flipped bit anywhere fails to authenticate there too.
    let mut bytes = std::fs::read(&files[5]).unwrap();
    bytes[100_000] ^= 4;
    std::fs::write(&files[5], bytes).unwrap();
    let out = open(&files[5]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("InvalidTag"), "{}", text(&out.stderr));
}
