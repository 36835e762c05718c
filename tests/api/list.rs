use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_error, spawn_app};

async fn page(app: &crate::helpers::TestApp, tenant: &str, q: &[(&str, &str)]) -> Value {
    let res = app.list(tenant, q).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

fn names(page: &Value) -> Vec<String> {
    page["files"].as_array().unwrap().iter().map(|f| f["filename"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn lists_only_the_callers_files_newest_first() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "a.txt", b"1").await;
    app.uploaded("abc", "applications", "b.txt", b"2").await;
    app.uploaded("abc", "reports", "c.txt", b"3").await;
    app.uploaded("other", "reports", "z.txt", b"4").await;
    let all = page(&app, "abc", &[]).await;
    assert_eq!(names(&all), ["c.txt", "b.txt", "a.txt"]);
    assert!(all["next_cursor"].is_null());
    let reports = page(&app, "abc", &[("category", "reports")]).await;
    assert_eq!(names(&reports), ["c.txt", "a.txt"]);
    let f = &reports["files"][0];
    for field in ["key", "tenant_id", "category", "filename", "content_type", "size", "sha256", "etag", "created_at"] {
        assert!(!f[field].is_null(), "{field}");
    }
}

#[tokio::test]
async fn pages_with_cursor_in_both_orders() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.upload("abc", "reports", &format!("file-{i}.txt"), "x").await;
    }
    for sort in ["newest", "name"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![("limit", "3"), ("sort", sort)];
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let p = page(&app, "abc", &q).await;
            seen.extend(names(&p));
            match p["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 7, "{sort}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
        if sort == "name" {
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(seen, sorted);
        } else {
            assert_eq!(seen[0], "file-6.txt");
        }
    }
}

#[tokio::test]
async fn prefix_filter() {
    let app = spawn_app().await;
    for n in ["invoice-1.pdf", "invoice-2.pdf", "receipt.pdf"] {
        app.upload("abc", "reports", n, "%PDF-1.4").await;
    }
    let p = page(&app, "abc", &[("prefix", "invoice-"), ("sort", "name")]).await;
    assert_eq!(names(&p), ["invoice-1.pdf", "invoice-2.pdf"]);
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let app = spawn_app().await;
    for (q, code) in [
        (vec![("limit", "0")], "invalid-query"),
        (vec![("limit", "1001")], "invalid-query"),
        (vec![("limit", "ten")], "invalid-query"),
        (vec![("sort", "size")], "invalid-query"),
        (vec![("cursor", "garbage")], "invalid-cursor"),
        (vec![("category", "nope")], "unknown-category"),
        (vec![("bogus", "1")], "invalid-query"),
    ] {
        assert_error(app.list("abc", &q).await, StatusCode::BAD_REQUEST, code).await;
    }
    // A cursor of one order is refused for the other.
    for i in 0..3 {
        app.upload("abc", "reports", &format!("{i}.txt"), "x").await;
    }
    let p = page(&app, "abc", &[("limit", "1")]).await;
    let c = p["next_cursor"].as_str().unwrap();
    assert_error(app.list("abc", &[("sort", "name"), ("cursor", c)]).await, StatusCode::BAD_REQUEST, "invalid-cursor")
        .await;
}
