//! The operator commands through the real binary: migrate, tenant, reconcile, config,
//! iam-policy.

use std::process::{Command, Output};

fn coffer(data: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(args).env("COFFER_DATA_DIR", data).env("COFFER_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run coffer")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn tenant_commands_manage_registered_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(coffer(d, &[], &["migrate"]).status.success());
    let out = coffer(d, &[], &["tenant", "add", "acme"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("added acme"));
    assert!(stdout(&coffer(d, &[], &["tenant", "add", "acme"])).contains("already registered"));
    assert!(coffer(d, &[], &["tenant", "suspend", "acme"]).status.success());
    let list = stdout(&coffer(d, &[], &["tenant", "list"]));
    assert!(list.starts_with("acme\tsuspended\t"), "{list}");
    assert!(coffer(d, &[], &["tenant", "resume", "acme"]).status.success());
    assert!(stdout(&coffer(d, &[], &["tenant", "list"])).starts_with("acme\tactive"));
    let out = coffer(d, &[], &["tenant", "suspend", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("coffer tenant add"));
    let out = coffer(d, &[], &["tenant", "add", "../x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn reconcile_on_a_clean_store_reports_nothing_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = coffer(dir.path(), &[], &["reconcile", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"].as_array().unwrap().len(), 0);
    assert_eq!(report["missing_bytes"].as_array().unwrap().len(), 0);
    // A stray object that is not coffer's is reported, not removed.
    let stray = dir.path().join("objects/carbon-connect-dev-documents/stray.txt");
    std::fs::write(&stray, "not ours").unwrap();
    let out = coffer(dir.path(), &[], &["reconcile"]);
    assert!(stdout(&out).contains("unrecognised object: carbon-connect-dev-documents/stray.txt"), "{}", stdout(&out));
    assert!(stray.exists());
}

#[test]
fn config_and_iam_policy_print_what_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("COFFER_JWT_SECRET", "a-very-secret-value-that-is-long-enough"), ("ENVIRONMENT", "prod")];
    let out = stdout(&coffer(dir.path(), &env, &["config"]));
    assert!(out.contains("carbon-connect-prod-documents") && out.contains("[redacted]"));
    assert!(!out.contains("a-very-secret-value"));
    let policy: serde_json::Value = serde_json::from_slice(&coffer(dir.path(), &env, &["iam-policy"]).stdout).unwrap();
    assert_eq!(policy["Version"], "2012-10-17");
    let out = coffer(dir.path(), &[("S3_PRESIGNED_URL_EXPIRY", "forever")], &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("coffer: S3_PRESIGNED_URL_EXPIRY:") && err.trim().lines().count() == 1, "{err}");
}

/// `COFFER_RECONCILE_INTERVAL` runs reconcile inside `coffer serve`: an orphaned blob (bytes no
/// row points to) placed beside a running server disappears without any command.
#[test]
fn serve_reconciles_periodically_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("COFFER_DATA_DIR", dir.path())
        .env("COFFER_LOG", "error")
        .env("COFFER_RECONCILE_INTERVAL", "200ms")
        .env("COFFER_RECONCILE_GRACE", "0s")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start coffer");
    let bucket = dir.path().join("objects/carbon-connect-dev-documents");
    for _ in 0..200 {
        if bucket.is_dir() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let version = coffer::domain::BlobVersion::generate();
    let orphan_dir = bucket.join(format!("tenant-x/reports/{version}"));
    std::fs::create_dir_all(&orphan_dir).expect("the server created its buckets");
    let orphan = orphan_dir.join("orphan.txt");
    std::fs::write(&orphan, "nobody's").unwrap();
    let gone = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        !orphan.exists()
    });
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(gone, "the periodic reconcile did not remove the orphan within 10 s");
}

/// No command prints a database password, wherever the URL carries it, even when the URL does
/// not parse or the server cannot be reached.
#[test]
fn database_passwords_never_reach_the_terminal() {
    let data = tempfile::tempdir().unwrap();
    for url in [
        "postgres://u:hunter2@127.0.0.1:1/x",
        "postgres://u@127.0.0.1:1/x?password=hunter2",
        "postgres://u@127.0.0.1:1/x?sslmode=disable&sslpassword=hunter2",
        "postgres://u:hunter2@db:99999/c",
        "postgres://u:hun%20ter2@[::1/c",
    ] {
        for args in [&["config"][..], &["migrate"], &["serve", "--addr", "127.0.0.1:0"], &["tenant", "list"]] {
            let out = coffer(data.path(), &[("DATABASE_URL", url)], args);
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(!text.contains("hunter2") && !text.contains("hun%20ter2"), "coffer {args:?} with {url}: {text}");
            if args[0] != "config" {
                assert!(!out.status.success(), "coffer {args:?} with {url} should fail: {text}");
            }
        }
    }
}
