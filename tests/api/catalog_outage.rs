//! A catalog that stops answering: every request gets its answer within
//! `COFFER_CATALOG_TIMEOUT` — 503 `catalog-unavailable` with `Retry-After`, `/readyz` 503 —
//! and everything works again, without a restart, once the database is back. Run on the
//! PostgreSQL suite, through a proxy in front of the machine's PostgreSQL that refuses
//! connections or black-holes them.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

async fn eventually_ok(app: &TestApp) {
    for _ in 0..50 {
        if app.list("acme", &[]).await.status() == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the catalog did not come back");
}

#[tokio::test]
async fn an_unreachable_catalog_gets_bounded_503s_and_recovers_by_itself() {
    if std::env::var("COFFER_TEST_CATALOG").as_deref() != Ok("postgres") {
        return;
    }
    let env = [("COFFER_CATALOG_TIMEOUT", "1s"), ("COFFER_RECONCILE_GRACE", "1s")];
    let (app, proxy, url) = spawn_app_behind_catalog_proxy(&env).await;
    app.uploaded("acme", "reports", "before.txt", b"kept").await;
    // A client that would wait far longer than coffer should: a hang shows up as its timeout.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let token = app.token("acme");

    for mode in [ProxyMode::Refuse, ProxyMode::Stall] {
        proxy.set(mode);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let list = client.get(app.url("/v1/files")).bearer_auth(&token).send().await.expect("an answer, not a hang");
        assert_eq!(list.headers()["retry-after"], "2", "{mode:?}");
        assert_error(list, StatusCode::SERVICE_UNAVAILABLE, "catalog-unavailable").await;
        let upload = client
            .post(app.url("/v1/files?category=reports&filename=during.txt"))
            .bearer_auth(&token)
            .body("not stored")
            .send()
            .await
            .expect("an answer, not a hang");
        assert_error(upload, StatusCode::SERVICE_UNAVAILABLE, "catalog-unavailable").await;
        let download = client
            .get(app.url("/v1/files/tenant-acme/reports/before.txt"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("an answer, not a hang");
        assert_error(download, StatusCode::SERVICE_UNAVAILABLE, "catalog-unavailable").await;
        let ready = client.get(app.url("/readyz")).send().await.expect("an answer, not a hang");
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{mode:?}");

        proxy.set(ProxyMode::Open);
        eventually_ok(&app).await;
        assert_eq!(client.get(app.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
        let listed: serde_json::Value = app.list("acme", &[]).await.json().await.unwrap();
        let names: Vec<&str> =
            listed["files"].as_array().unwrap().iter().map(|f| f["filename"].as_str().unwrap()).collect();
        assert_eq!(names, ["before.txt"], "{mode:?}: nothing half-written");
        let res = app.download("acme", "tenant-acme/reports/before.txt").await;
        assert_eq!(res.bytes().await.unwrap().as_ref(), b"kept");
    }
    // Writes work again too.
    app.uploaded("acme", "reports", "after.txt", b"back").await;

    // An upload whose commit meets the outage: its bytes are written, the commit cannot be
    // settled. It answers 503 in bounded time; once the catalog is back, a reconcile leaves
    // neither a row nor bytes.
    let direct = coffer::catalog::connect(&url).await.unwrap();
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let first = futures::stream::once(async { Ok::<_, std::io::Error>(vec![b'a'; 16 * 1024]) });
    let rest = futures::stream::once(async move {
        let _ = gate.await;
        Ok(b"the end".to_vec())
    });
    let body = reqwest::Body::wrap_stream(futures::StreamExt::chain(first, rest));
    let upload =
        client.post(app.url("/v1/files?category=reports&filename=unsettled.bin")).bearer_auth(&token).body(body).send();
    let stall = async {
        let later = chrono::Utc::now() + chrono::Duration::hours(1);
        while direct.stale_intents(later, None, 10).await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proxy.set(ProxyMode::Stall);
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.send(()).unwrap();
    };
    let (res, ()) = tokio::join!(upload, stall);
    assert_error(res.expect("an answer, not a hang"), StatusCode::SERVICE_UNAVAILABLE, "catalog-unavailable").await;
    proxy.set(ProxyMode::Open);
    eventually_ok(&app).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // the dead upload's lease runs out
    let report = app.service.reconciler(Duration::ZERO, false).run().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let listed: serde_json::Value = app.list("acme", &[]).await.json().await.unwrap();
    let names: Vec<&str> =
        listed["files"].as_array().unwrap().iter().map(|f| f["filename"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"unsettled.bin"));
    let stored = app.stored_objects().await;
    assert!(!stored.iter().any(|k| k.contains("unsettled.bin")), "{stored:?}");
}
