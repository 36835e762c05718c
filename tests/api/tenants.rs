use coffer::catalog::TenantStatus;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn usage_is_exact_per_category_and_in_total() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "a.txt", b"12345").await;
    app.uploaded("abc", "reports", "b.txt", b"123").await;
    app.uploaded("abc", "applications", "c.txt", b"1").await;
    app.uploaded("other", "reports", "x.txt", b"123456789").await;
    app.upload_as(&app.token("abc"), "reports", "a.txt", "12", true).await;
    app.delete("abc", "tenant-abc/reports/b.txt").await;
    let res = app.request(reqwest::Method::GET, "/v1/usage", &app.token("abc")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let usage: Value = res.json().await.unwrap();
    assert_eq!(usage["tenant_id"], "abc");
    assert_eq!(usage["files"], 2);
    assert_eq!(usage["bytes"], 3);
    assert_eq!(usage["categories"][0], serde_json::json!({"category": "applications", "files": 1, "bytes": 1}));
    assert_eq!(usage["categories"][1], serde_json::json!({"category": "reports", "files": 1, "bytes": 2}));
    assert!(usage["quota"]["bytes"].is_null());
}

#[tokio::test]
async fn quota_refuses_with_nothing_stored() {
    let app = spawn_app_with(&[("COFFER_QUOTA_BYTES", "10 B"), ("COFFER_QUOTA_FILES", "2")]).await;
    app.uploaded("abc", "reports", "a.txt", b"123456").await;
    // Over the byte quota: announced length and streamed body alike.
    let res = app.upload("abc", "reports", "b.txt", "12345").await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "quota-exceeded").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(b"123".to_vec()), Ok(b"45".to_vec())];
    let res = app.upload("abc", "reports", "b.txt", reqwest::Body::wrap_stream(futures::stream::iter(chunks))).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "quota-exceeded").await;
    app.uploaded("abc", "reports", "b.txt", b"1234").await;
    // Over the file quota.
    let res = app.upload("abc", "reports", "c.txt", "").await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "quota-exceeded").await;
    assert_eq!(app.stored_objects().await.len(), 2);
    // Other tenants have their own quota.
    app.uploaded("other", "reports", "c.txt", b"1").await;
}

#[tokio::test]
async fn concurrent_uploads_cannot_overshoot_the_quota() {
    let app = spawn_app_with(&[("COFFER_QUOTA_BYTES", "100 B"), ("COFFER_MAX_UPLOADS_PER_TENANT", "16")]).await;
    let token = app.token("abc");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (client, url, token) = (app.client.clone(), app.url("/v1/files"), token.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .query(&[("category", "reports"), ("filename", &format!("f{i}.bin"))])
                .body(vec![b'x'; 30])
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::PAYLOAD_TOO_LARGE => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 3, "30-byte files under a 100-byte quota");
    let usage: Value =
        app.request(reqwest::Method::GET, "/v1/usage", &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(usage["bytes"], 90);
    assert_eq!(app.stored_objects().await.len(), 3);
}

#[tokio::test]
async fn registered_mode_refuses_unknown_and_suspended_tenants() {
    let app = spawn_app_with(&[("COFFER_TENANTS", "registered")]).await;
    let res = app.list("stranger", &[]).await;
    assert_error(res, StatusCode::FORBIDDEN, "tenant-inactive").await;
    let catalog = app.catalog().await;
    let known = crate::helpers::tenant("known");
    catalog.add_tenant(&known).await.unwrap();
    // The status cache is short-lived; a new tenant is admitted within it.
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    assert_eq!(app.list("known", &[]).await.status(), StatusCode::OK);
    app.uploaded("known", "reports", "a.txt", b"x").await;
    let link: Value =
        app.presign("known", serde_json::json!({"key": "tenant-known/reports/a.txt"})).await.json().await.unwrap();
    catalog.set_tenant_status(&known, TenantStatus::Suspended).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    assert_error(app.list("known", &[]).await, StatusCode::FORBIDDEN, "tenant-inactive").await;
    let res = app.client.get(link["url"].as_str().unwrap()).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "tenant-inactive").await;
}

#[tokio::test]
async fn open_mode_registers_tenants_on_first_use() {
    let app = spawn_app().await;
    assert_eq!(app.list("newcomer", &[]).await.status(), StatusCode::OK);
    let catalog = app.catalog().await;
    assert_eq!(catalog.tenant_status(&crate::helpers::tenant("newcomer")).await.unwrap(), Some(TenantStatus::Active));
}

/// The library API gets the service's admission like HTTP does: suspension, registration and
/// read-only scopes hold for a program that calls `StorageService` directly.
#[tokio::test]
async fn the_library_api_is_admitted_like_http() {
    use coffer::auth::Caller;
    use coffer::domain::{Category, Filename};
    use coffer::service::{ServiceError, UploadRequest, from_bytes};

    let app = crate::helpers::spawn_app_with(&[("COFFER_TENANTS", "registered")]).await;
    let svc = &app.service;
    let (catalog, _) = svc.parts();
    let reports = Category::parse("reports").unwrap();
    let name = Filename::parse("lib.txt").unwrap();
    let stranger = crate::helpers::tenant("stranger");
    let refused = svc.upload_file(&stranger, &reports, &name, from_bytes(&b"x"[..]), None).await;
    assert!(matches!(refused, Err(ServiceError::TenantInactive)), "{refused:?}");

    let lib = crate::helpers::tenant("lib");
    catalog.add_tenant(&lib).await.unwrap();
    let key = svc.upload_file(&lib, &reports, &name, from_bytes(&b"library"[..]), None).await.unwrap();

    let reader = svc.admit(&Caller { tenant: lib.clone(), read_only: true }).await.unwrap();
    assert!(!reader.can_write());
    assert_eq!(svc.stat(&reader, &key).await.unwrap().size, 7);
    assert!(matches!(svc.delete(&reader, &key).await, Err(ServiceError::ReadOnly)));
    let request = UploadRequest {
        category: reports.clone(),
        filename: Filename::parse("other.txt").unwrap(),
        original_filename: None,
        content_type: None,
        overwrite: false,
        size_hint: None,
        max_size: None,
        body: from_bytes(&b"nope"[..]),
    };
    assert!(matches!(svc.upload(&reader, request).await, Err(ServiceError::ReadOnly)));

    catalog.set_tenant_status(&lib, TenantStatus::Suspended).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await; // the admission cache
    let inactive = |r: Result<(), ServiceError>| matches!(r, Err(ServiceError::TenantInactive));
    assert!(inactive(svc.download_file(&lib, &key).await.map(drop)));
    assert!(inactive(svc.list_files(&lib, None).await.map(drop)));
    assert!(inactive(svc.get_presigned_url(&lib, &key, None).await.map(drop)));
    assert!(inactive(svc.delete_file(&lib, &key).await));
    assert!(inactive(svc.admit(&Caller { tenant: lib.clone(), read_only: true }).await.map(drop)));
    assert!(inactive(svc.upload_file(&lib, &reports, &name, from_bytes(&b"x"[..]), None).await.map(drop)));
}
