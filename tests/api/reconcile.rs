//! Reconcile beside live traffic: an upload that streams for longer than the grace period keeps
//! its intent alive and commits; an upload whose intent was rolled back under it is refused
//! with 409 `upload-abandoned` and leaves nothing behind.

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;

use crate::helpers::{assert_error, spawn_app_with};

/// `chunks` chunks of 16 KiB, `pause` apart.
fn paced_body(chunks: u8, pause: Duration) -> reqwest::Body {
    let stream = futures::stream::unfold(0u8, move |i| async move {
        if i == chunks {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<_, std::io::Error>(vec![i; 16 * 1024]), i + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

/// Runs `upload` while reconciling with `grace` every 200 ms; asserts no reconcile touched it.
async fn upload_beside_reconciles(
    app: &crate::helpers::TestApp,
    grace: Duration,
    upload: impl Future<Output = reqwest::Response>,
) -> reqwest::Response {
    let reconciles = async {
        let mut runs = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let report = app.service.reconciler(grace, false).run().await;
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            assert_eq!(report.intents_rolled_back, 0, "reconcile run {runs} rolled back a live upload");
            assert_eq!(report.orphans_removed + report.leftovers_removed, 0, "run {runs} removed live bytes");
            runs += 1;
        }
    };
    tokio::select! {
        res = upload => res,
        () = reconciles => unreachable!(),
    }
}

/// `coffer reconcile --grace 1s` beside a server with the default grace (1 h, so a heartbeat
/// every 20 s): liveness does not depend on the grace the command is given.
#[tokio::test]
async fn a_reconcile_with_a_shorter_grace_than_the_servers_leaves_live_uploads_alone() {
    let app = spawn_app_with(&[]).await;
    let upload = app.upload("abc", "reports", "long.bin", paced_body(13, Duration::from_millis(250)));
    let res = upload_beside_reconciles(&app, Duration::from_secs(1), upload).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
    // With the upload done, the same reconcile finds nothing to do.
    let report = app.service.reconciler(Duration::ZERO, false).run().await;
    assert_eq!((report.intents_rolled_back, report.orphans_removed), (0, 0));
}

#[tokio::test]
async fn an_upload_longer_than_the_grace_survives_reconciles() {
    let grace = Duration::from_secs(1);
    let app = spawn_app_with(&[("COFFER_RECONCILE_GRACE", "1s")]).await;
    // 3 s of streaming: three grace periods.
    let upload = app.upload("abc", "reports", "long.bin", paced_body(13, Duration::from_millis(250)));
    let res = upload_beside_reconciles(&app, grace, upload).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
    let body = app.download("abc", "tenant-abc/reports/long.bin").await.bytes().await.unwrap();
    let expected: Vec<u8> = (0..13u8).flat_map(|i| vec![i; 16 * 1024]).collect();
    assert_eq!(body.as_ref(), expected.as_slice());
}

#[tokio::test]
async fn an_upload_rolled_back_under_it_is_refused_and_leaves_nothing() {
    let app = spawn_app_with(&[]).await;
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    // More than the 8 KiB coffer reads to decide the type, so the intent is recorded at once.
    let first = futures::stream::once(async { Ok::<_, std::io::Error>(vec![b'a'; 16 * 1024]) });
    let rest = futures::stream::once(async move {
        let _ = gate.await;
        Ok(b"second part".to_vec())
    });
    let upload = app.upload("abc", "reports", "rolled.bin", reqwest::Body::wrap_stream(first.chain(rest)));
    // What a reconcile does to a stale intent, while the body is still on its way.
    let roll_back = async {
        let (catalog, _) = app.service.parts();
        let pending = loop {
            let later = chrono::Utc::now() + chrono::Duration::hours(1);
            if let Some(p) = catalog.stale_intents(later, None, 10).await.unwrap().into_iter().next() {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(catalog.abandon_intent(&pending.blob).await.unwrap());
        release.send(()).unwrap();
    };
    let (res, ()) = tokio::join!(upload, roll_back);
    let message = assert_error(res, StatusCode::CONFLICT, "upload-abandoned").await;
    assert!(message.contains("send it again"), "{message}");

    let list: serde_json::Value = app.list("abc", &[]).await.json().await.unwrap();
    assert_eq!(list["files"], serde_json::json!([]));
    for bucket in [&app.documents_bucket, &app.media_bucket] {
        let bucket = coffer::domain::BucketName::parse(bucket).unwrap();
        let page = app.blobs.list(&bucket, None, 100).await.unwrap();
        assert!(page.keys.is_empty(), "bytes left behind: {:?}", page.keys);
    }
}
