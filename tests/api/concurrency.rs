//! Two coffer instances on one catalog and one store, racing on the same keys.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_sibling};

#[tokio::test]
async fn same_key_from_two_instances_gives_one_201_and_one_409() {
    let a = spawn_app().await;
    let b = spawn_sibling(&a).await;
    for round in 0..10 {
        let name = format!("race-{round}.txt");
        let (ra, rb) = tokio::join!(
            a.upload("abc", "reports", &name, vec![b'a'; 200_000]),
            b.upload("abc", "reports", &name, vec![b'b'; 200_000]),
        );
        let mut statuses = [ra.status(), rb.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "round {round}");
        let winner: Value =
            if ra.status() == StatusCode::CREATED { ra.json().await.unwrap() } else { rb.json().await.unwrap() };
        let body = a.download("abc", &format!("tenant-abc/reports/{name}")).await.bytes().await.unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&body)), winner["sha256"]);
    }
    assert_eq!(a.stored_objects().await.len(), 10, "the losers' bytes are gone");
}

use sha2::Digest;

#[tokio::test]
async fn concurrent_overwrites_end_as_one_complete_upload() {
    let a = spawn_app().await;
    let b = spawn_sibling(&a).await;
    let token = a.token("abc");
    let mut answered = Vec::new();
    for round in 0..5 {
        let (ra, rb) = tokio::join!(
            a.upload_as(&token, "reports", "shared.bin", vec![round as u8; 300_000], true),
            b.upload_as(&token, "reports", "shared.bin", vec![100 + round as u8; 300_000], true),
        );
        assert_eq!(ra.status(), StatusCode::CREATED);
        assert_eq!(rb.status(), StatusCode::CREATED);
        answered.push(ra.json::<Value>().await.unwrap()["sha256"].as_str().unwrap().to_owned());
        answered.push(rb.json::<Value>().await.unwrap()["sha256"].as_str().unwrap().to_owned());
        let body = a.download("abc", "tenant-abc/reports/shared.bin").await.bytes().await.unwrap();
        assert_eq!(body.len(), 300_000);
        assert!(body.iter().all(|&x| x == body[0]), "never a mix of two uploads");
        assert!(answered.contains(&hex::encode(sha2::Sha256::digest(&body))));
    }
    assert_eq!(a.stored_objects().await.len(), 1, "replaced versions are removed");
}

#[tokio::test]
async fn overwrite_racing_delete_leaves_no_orphan_and_no_dangling_row() {
    let a = spawn_app().await;
    let b = spawn_sibling(&a).await;
    let token = a.token("abc");
    for round in 0..10 {
        a.upload_as(&token, "reports", "contested.bin", vec![1; 100_000], true).await;
        let (up, del) = tokio::join!(
            a.upload_as(&token, "reports", "contested.bin", vec![2; 100_000], true),
            b.delete("abc", "tenant-abc/reports/contested.bin"),
        );
        assert_eq!(up.status(), StatusCode::CREATED, "round {round}");
        assert!(matches!(del.status(), StatusCode::NO_CONTENT | StatusCode::NOT_FOUND), "round {round}");
        let res = a.download("abc", "tenant-abc/reports/contested.bin").await;
        let rows = if res.status() == StatusCode::OK {
            assert_eq!(res.bytes().await.unwrap().len(), 100_000);
            1
        } else {
            assert_eq!(res.status(), StatusCode::NOT_FOUND);
            0
        };
        assert_eq!(a.stored_objects().await.len(), rows, "round {round}: bytes and rows agree");
    }
}
