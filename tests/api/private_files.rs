//! On the embedded default, nothing a tenant stored is readable by other local users: the data
//! dir and every directory under it are created 0700, object files and the catalog 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use coffer::config::{Config, Overrides};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if path.is_dir() {
            walk(&path, out);
        }
    }
}

#[tokio::test]
async fn data_dir_directories_are_0700_and_files_0600() {
    if std::env::var("COFFER_TEST_STORAGE").as_deref() == Ok("s3")
        || std::env::var("COFFER_TEST_CATALOG").as_deref() == Ok("postgres")
    {
        return; // the embedded default's own files
    }
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = parent.path().join("fresh").join("coffer-data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let overrides = Overrides { addr: Some(addr), data_dir: Some(data_dir.clone()), ..Overrides::default() };
    // No COFFER_JWT_SECRET: the signing secret is generated in the data dir too.
    let config = Config::from_lookup(|_| None, &overrides).unwrap();
    let state = coffer::startup::app_state(&config).await.unwrap();
    let service = state.service.clone();
    tokio::spawn(coffer::server::serve_on(listener, state, None, std::future::pending()));
    let tenant = coffer::domain::TenantId::parse("abc").unwrap();
    let category = coffer::domain::Category::parse("reports").unwrap();
    let filename = coffer::domain::Filename::parse("secret.txt").unwrap();
    service
        .upload_file(&tenant, &category, &filename, coffer::service::from_bytes(&b"confidential"[..]), None)
        .await
        .unwrap();

    assert_eq!(mode(&data_dir), 0o700, "data dir");
    let mut entries = Vec::new();
    walk(&data_dir, &mut entries);
    let (dirs, files): (Vec<_>, Vec<_>) = entries.into_iter().partition(|p| p.is_dir());
    assert!(files.iter().any(|f| f.ends_with("secret.txt")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with("catalog.db")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with("catalog.db-wal")), "{files:?}");
    for dir in &dirs {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    for file in &files {
        assert_eq!(mode(file) & 0o077, 0, "{} is {:o}", file.display(), mode(file));
    }
    println!("private files checked: {} directories, {} files", dirs.len(), files.len());
}
