//! What a browser is allowed to render: only an allow-list of types is ever served inline;
//! every type a browser treats as a document (and so could run script in on coffer's origin)
//! goes out as a sandboxed attachment, however it was declared.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, file_path, spawn_app};

/// Types that Chromium, WebKit or Gecko render as documents, plus unknown ones.
const DOCUMENT_TYPES: &[&str] = &[
    "text/html",
    "application/xhtml+xml",
    "text/xml",
    "application/xml",
    "text/xsl",
    "application/xslt+xml",
    "text/rdf",
    "application/rdf+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/vnd.mozilla.xul+xml",
    "image/svg+xml",
    "application/mathml+xml",
    "text/javascript",
    "application/javascript",
    "application/ecmascript",
    "text/ecmascript",
    "application/x-javascript",
    "text/jscript",
    "multipart/x-mixed-replace",
    "application/x-coffer-unknown",
    "text/x-unknown",
];

/// XHTML-namespaced script inside an XML document: runs when a browser renders it as XML.
const PAYLOAD: &[u8] = b"<?xml version=\"1.0\"?><x:html xmlns:x=\"http://www.w3.org/1999/xhtml\">\
<x:script>document.title='pwned'</x:script></x:html>";

/// The three ways a client can declare a type.
#[derive(Debug, Clone, Copy)]
enum Declared {
    Query,
    Header,
    MultipartPart,
}

async fn upload_declared(app: &TestApp, name: &str, declared: &str, how: Declared) -> Response {
    let token = app.token("abc");
    let req = app.request(Method::POST, "/v1/files", &token);
    let req = match how {
        Declared::Query => {
            req.query(&[("category", "reports"), ("filename", name), ("content_type", declared)]).body(PAYLOAD)
        }
        Declared::Header => {
            req.query(&[("category", "reports"), ("filename", name)]).header("content-type", declared).body(PAYLOAD)
        }
        Declared::MultipartPart => {
            let part = reqwest::multipart::Part::bytes(PAYLOAD).file_name(name.to_owned()).mime_str(declared).unwrap();
            req.multipart(reqwest::multipart::Form::new().text("category", "reports").part("file", part))
        }
    };
    req.send().await.unwrap()
}

fn assert_sandboxed_attachment(res: &Response, what: &str) {
    let h = res.headers();
    let disposition = h["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{what}: served {disposition}");
    assert_eq!(h["content-security-policy"], "sandbox", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
}

#[tokio::test]
async fn declared_document_types_are_only_ever_sandboxed_attachments() {
    let app = spawn_app().await;
    let mut checked = 0;
    for (i, declared) in DOCUMENT_TYPES.iter().enumerate() {
        for how in [Declared::Query, Declared::Header, Declared::MultipartPart] {
            let name = format!("invoice-{i}-{how:?}.txt");
            let res = upload_declared(&app, &name, declared, how).await;
            assert_eq!(res.status(), StatusCode::CREATED, "{declared} via {how:?}");
            let meta: Value = res.json().await.unwrap();
            let what = format!("{declared} via {how:?}, stored as {}", meta["content_type"]);
            assert_eq!(meta["inline"], false, "{what}");
            let key = meta["key"].as_str().unwrap();

            let by_token = app.download("abc", key).await;
            assert_eq!(by_token.status(), StatusCode::OK);
            assert_sandboxed_attachment(&by_token, &what);

            let link: Value = app.presign("abc", json!({"key": key})).await.json().await.unwrap();
            let by_link = app.client.get(link["url"].as_str().unwrap()).send().await.unwrap();
            assert_eq!(by_link.status(), StatusCode::OK);
            assert_sandboxed_attachment(&by_link, &what);
            checked += 1;
        }
    }
    println!("declared document types checked: {checked} uploads, each by token and by link");
}

#[tokio::test]
async fn only_the_allow_list_is_served_inline() {
    let app = spawn_app().await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let cases: &[(&str, &[u8], &str, bool, bool)] = &[
        // name, bytes, expected type, inline, sandboxed
        ("logo.png", png, "image/png", true, true),
        ("report.pdf", b"%PDF-1.7 x", "application/pdf", true, false),
        ("notes.txt", b"hello", "text/plain", true, true),
        ("data.csv", b"a,b\n", "text/csv", false, true),
        ("data.json", b"{}", "application/json", false, true),
        ("page.html", b"<html><script>alert(1)</script></html>", "text/html", false, true),
        ("icon.svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", "image/svg+xml", false, true),
        ("a.bin", b"\0\x01", "application/octet-stream", false, true),
    ];
    for (name, bytes, expected, inline, sandboxed) in cases {
        let res = app.upload("abc", "reports", name, bytes.to_vec()).await;
        let meta: Value = res.json().await.unwrap();
        assert_eq!(meta["content_type"], *expected, "{name}");
        assert_eq!(meta["inline"], *inline, "{name}");
        let key = meta["key"].as_str().unwrap();
        let link: Value = app.presign("abc", json!({"key": key})).await.json().await.unwrap();
        for res in [app.download("abc", key).await, app.client.get(link["url"].as_str().unwrap()).send().await.unwrap()]
        {
            let h = res.headers();
            assert_eq!(h["content-type"], *expected, "{name}");
            let disposition = h["content-disposition"].to_str().unwrap();
            assert_eq!(disposition.starts_with("inline;"), *inline, "{name}: {disposition}");
            assert_eq!(h.get("content-security-policy").is_some(), *sandboxed, "{name}");
        }
        // ?download=1 always makes a sandboxed attachment.
        let res = app
            .request(Method::GET, &format!("{}?download=1", file_path(key)), &app.token("abc"))
            .send()
            .await
            .unwrap();
        assert_sandboxed_attachment(&res, name);
    }
}

#[tokio::test]
async fn media_categories_refuse_declared_document_types() {
    let app = spawn_app().await;
    for declared in ["image/svg+xml", "text/xsl", "text/html"] {
        let res = app
            .request(Method::POST, "/v1/files", &app.token("abc"))
            .query(&[("category", "logos"), ("filename", "logo.png"), ("content_type", declared)])
            .body(PAYLOAD)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{declared}");
    }
    assert!(app.stored_objects().await.is_empty());
}

/// Generated declarations (any text, document types in odd spellings, parameters, case) under
/// generated names, through each channel: whatever is stored, it goes out either inline with
/// an allow-listed type or as a sandboxed attachment, by token and by link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_declarations_never_reach_a_browser_as_an_inline_document() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let app = spawn_app().await;
    let declared = prop_oneof![
        "\\PC{0,40}",
        proptest::sample::select(DOCUMENT_TYPES).prop_map(str::to_owned),
        (proptest::sample::select(DOCUMENT_TYPES), "[ ;a-zA-Z=\"-]{0,20}")
            .prop_map(|(t, p)| format!("{}{p}", t.to_uppercase())),
        "(text|application|image|multipart)/[a-z+.-]{1,20}(\\+xml)?",
    ];
    let name = "[a-z]{1,8}\\.(txt|png|pdf|html|svg|xml|xsl|js|bin|csv)";
    let body = proptest::sample::select(vec![
        PAYLOAD.to_vec(),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        b"%PDF-1.7".to_vec(),
        b"plain".to_vec(),
    ]);
    let how = proptest::sample::select(vec![Declared::Query, Declared::Header, Declared::MultipartPart]);
    let cases: u32 = std::env::var("COFFER_ISOLATION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(300, |n: u32| (n / 20).max(50));
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let handle = tokio::runtime::Handle::current();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let result = tokio::task::block_in_place(|| {
        runner.run(&(declared, name, body, how), |(declared, name, body, how)| {
            handle.block_on(async {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let name = format!("{n}-{name}");
                let res = upload_declared_bytes(&app, &name, &declared, how, body).await;
                prop_assert!(!res.status().is_server_error(), "{declared:?} via {how:?}: {}", res.status());
                if res.status() != StatusCode::CREATED {
                    return Ok(());
                }
                let meta: Value = res.json().await.unwrap();
                let key = meta["key"].as_str().unwrap().to_owned();
                let link: Value = app.presign("abc", json!({"key": key})).await.json().await.unwrap();
                let by_link = app.client.get(link["url"].as_str().unwrap()).send().await.unwrap();
                for res in [app.download("abc", &key).await, by_link] {
                    let h = res.headers();
                    let ct = h["content-type"].to_str().unwrap().to_owned();
                    let disposition = h["content-disposition"].to_str().unwrap().to_owned();
                    let sandboxed = h.get("content-security-policy").is_some_and(|v| v == "sandbox");
                    prop_assert_eq!(&h["x-content-type-options"], "nosniff");
                    if disposition.starts_with("inline;") {
                        let inline_type = coffer::domain::MediaType::parse(&ct).is_some_and(|t| t.serves_inline());
                        prop_assert!(inline_type, "{declared:?} via {how:?} served inline as {ct}");
                        prop_assert!(sandboxed || ct == "application/pdf", "{ct} inline without sandbox");
                    } else {
                        prop_assert!(disposition.starts_with("attachment;") && sandboxed, "{ct}: {disposition}");
                    }
                }
                Ok::<(), TestCaseError>(())
            })
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("serving: {cases} generated declarations, each checked by token and by link");
}

async fn upload_declared_bytes(app: &TestApp, name: &str, declared: &str, how: Declared, body: Vec<u8>) -> Response {
    let token = app.token("abc");
    let req = app.request(Method::POST, "/v1/files", &token);
    let req = match how {
        Declared::Query => {
            req.query(&[("category", "reports"), ("filename", name), ("content_type", declared)]).body(body)
        }
        Declared::Header => match reqwest::header::HeaderValue::from_str(declared) {
            Ok(v) => req.query(&[("category", "reports"), ("filename", name)]).header("content-type", v).body(body),
            Err(_) => req.query(&[("category", "reports"), ("filename", name)]).body(body),
        },
        Declared::MultipartPart => {
            let part = reqwest::multipart::Part::bytes(body).file_name(name.to_owned());
            let part = match part.mime_str(declared) {
                Ok(p) => p,
                Err(_) => reqwest::multipart::Part::bytes(b"plain".to_vec()).file_name(name.to_owned()),
            };
            req.multipart(reqwest::multipart::Form::new().text("category", "reports").part("file", part))
        }
    };
    req.send().await.unwrap()
}
