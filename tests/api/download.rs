use reqwest::{Method, StatusCode};

use crate::helpers::{assert_error, file_path, spawn_app};

#[tokio::test]
async fn download_streams_with_headers() {
    let app = spawn_app().await;
    let meta = app.uploaded("abc", "reports", "carbon audit 2024.csv", b"a,b\n1,2\n").await;
    let res = app.download("abc", "tenant-abc/reports/carbon audit 2024.csv").await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/csv");
    assert_eq!(h["content-length"], "8");
    assert_eq!(h["etag"], meta["etag"].as_str().unwrap());
    assert!(h.contains_key("last-modified"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"carbon audit 2024.csv\"; filename*=UTF-8''carbon%20audit%202024.csv"
    );
    assert_eq!(&res.bytes().await.unwrap()[..], b"a,b\n1,2\n");
}

#[tokio::test]
async fn download_param_and_active_types_make_attachments() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "page.html", b"<html><script>alert(1)</script></html>").await;
    app.uploaded("abc", "reports", "notes.txt", b"hello").await;
    let res = app.download("abc", "tenant-abc/reports/page.html").await;
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    assert_eq!(res.headers()["content-security-policy"], "sandbox");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let res = app
        .request(Method::GET, "/v1/files/tenant-abc/reports/notes.txt?download=1", &app.token("abc"))
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    assert_eq!(res.headers()["content-security-policy"], "sandbox");
}

#[tokio::test]
async fn unicode_names_are_rfc5987_encoded() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "résumé.txt", b"x").await;
    let res = app.download("abc", "tenant-abc/reports/résumé.txt").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-disposition"],
        "inline; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    );
}

#[tokio::test]
async fn single_ranges_are_206_and_unsatisfiable_ones_416() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "digits.txt", b"0123456789").await;
    let get = |range: &'static str| {
        app.request(Method::GET, "/v1/files/tenant-abc/reports/digits.txt", &app.token("abc"))
            .header("range", range)
            .send()
    };
    for (range, expect, content_range) in [
        ("bytes=2-5", "2345", "bytes 2-5/10"),
        ("bytes=7-", "789", "bytes 7-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=8-100", "89", "bytes 8-9/10"),
    ] {
        let res = get(range).await.unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(res.headers()["content-range"], content_range);
        assert_eq!(res.headers()["content-length"], expect.len().to_string().as_str());
        assert_eq!(res.text().await.unwrap(), expect);
    }
    // Past the end, a suffix of no bytes, a first byte past any file's length.
    for range in ["bytes=10-20", "bytes=-0", "bytes=18446744073709551616-"] {
        let res = get(range).await.unwrap();
        assert_eq!(res.headers()["content-range"], "bytes */10", "{range}");
        assert_error(res, StatusCode::RANGE_NOT_SATISFIABLE, "range-not-satisfiable").await;
    }
    // Malformed or multi-range: the whole file.
    for range in ["lines=1-2", "bytes=0-1,4-5"] {
        let res = get(range).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{range}");
        assert_eq!(res.text().await.unwrap(), "0123456789");
    }
}

#[tokio::test]
async fn conditional_requests_get_304() {
    let app = spawn_app().await;
    let meta = app.uploaded("abc", "reports", "a.txt", b"hello").await;
    let etag = meta["etag"].as_str().unwrap();
    let path = "/v1/files/tenant-abc/reports/a.txt";
    let res = app.request(Method::GET, path, &app.token("abc")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()["etag"], etag);
    assert!(res.bytes().await.unwrap().is_empty());
    let res =
        app.request(Method::GET, path, &app.token("abc")).header("if-none-match", "\"other\"").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let last_modified = app.download("abc", "tenant-abc/reports/a.txt").await.headers()["last-modified"].clone();
    let res = app
        .request(Method::GET, path, &app.token("abc"))
        .header("if-modified-since", last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = app
        .request(Method::GET, path, &app.token("abc"))
        .header("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn head_gives_headers_without_body() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "a.txt", b"hello").await;
    let res = app.request(Method::HEAD, "/v1/files/tenant-abc/reports/a.txt", &app.token("abc")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-length"], "5");
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn missing_file_is_404_and_bad_key_400() {
    let app = spawn_app().await;
    let res = app.download("abc", "tenant-abc/reports/none.txt").await;
    assert_error(res, StatusCode::NOT_FOUND, "not-found").await;
    let res = app.request(Method::GET, "/v1/files/not-a-key", &app.token("abc")).send().await.unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-key").await;
    let res =
        app.request(Method::GET, &file_path("tenant-abc/reports/a/b.txt"), &app.token("abc")).send().await.unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-filename").await;
    let res =
        app.request(Method::GET, "/v1/files/tenant-abc/reports/a%2Fb.txt", &app.token("abc")).send().await.unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-filename").await;
    let res = app.download("abc", "tenant-abc/nope/a.txt").await;
    assert_error(res, StatusCode::BAD_REQUEST, "unknown-category").await;
}

#[tokio::test]
async fn empty_files_round_trip() {
    let app = spawn_app().await;
    let meta = app.uploaded("abc", "reports", "empty.txt", b"").await;
    assert_eq!(meta["size"], 0);
    let res = app.download("abc", "tenant-abc/reports/empty.txt").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-length"], "0");
}

#[tokio::test]
async fn any_range_of_an_empty_file_is_416() {
    let app = spawn_app().await;
    app.uploaded("abc", "reports", "empty.txt", b"").await;
    let res = app
        .request(Method::GET, "/v1/files/tenant-abc/reports/empty.txt", &app.token("abc"))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-range"], "bytes */0");
    assert_error(res, StatusCode::RANGE_NOT_SATISFIABLE, "range-not-satisfiable").await;
}
