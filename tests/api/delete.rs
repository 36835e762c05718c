use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn delete_removes_row_and_bytes() {
    let app = spawn_app().await;
    app.uploaded("abc", "exports", "dump.json", b"{}").await;
    assert_eq!(app.stored_objects().await.len(), 1);
    let res = app.delete("abc", "tenant-abc/exports/dump.json").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(app.stored_objects().await.is_empty());
    let res = app.download("abc", "tenant-abc/exports/dump.json").await;
    assert_error(res, StatusCode::NOT_FOUND, "not-found").await;
    let res = app.delete("abc", "tenant-abc/exports/dump.json").await;
    assert_error(res, StatusCode::NOT_FOUND, "not-found").await;
    // The key is free again.
    app.uploaded("abc", "exports", "dump.json", b"{\"v\":2}").await;
}
