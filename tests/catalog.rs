//! The catalog conformance suite: one story, run against every engine.

use std::sync::Arc;

use coffer::catalog::{BlobRef, Catalog, CatalogError, FileRecord, ListQuery, PendingUpload, SortOrder, SqliteCatalog};
use coffer::domain::{BlobKey, BlobVersion, BucketName, Category, ObjectKey, TenantId};

fn record(key: &str, micros: i64) -> FileRecord {
    let key = ObjectKey::parse(key).unwrap();
    FileRecord {
        original_filename: key.filename().to_string(),
        bucket: BucketName::parse("docs-bucket").unwrap(),
        blob: BlobKey::new(key.clone(), BlobVersion::generate()),
        key,
        content_type: "text/plain".into(),
        size: 3,
        sha256: "00".repeat(32),
        created_at: chrono::DateTime::from_timestamp_micros(micros).unwrap(),
    }
}

fn query(sort: SortOrder, limit: u32) -> ListQuery {
    ListQuery { category: None, prefix: None, sort, limit, cursor: None }
}

async fn conformance(catalog: Arc<dyn Catalog>) {
    catalog.ping().await.unwrap();
    let t = TenantId::parse("t1").unwrap();

    // intent, commit, get
    let r = record("tenant-t1/reports/a.txt", 1_000_000);
    catalog.record_intent(&PendingUpload { blob: r.blob_ref(), started_at: r.created_at }).await.unwrap();
    assert_eq!(catalog.commit_upload(&r, false).await.unwrap(), None);
    assert_eq!(catalog.get(&r.key).await.unwrap(), Some(r.clone()));

    // no overwrite → AlreadyExists, nothing changes
    let r2 = record("tenant-t1/reports/a.txt", 2_000_000);
    assert!(matches!(catalog.commit_upload(&r2, false).await, Err(CatalogError::AlreadyExists)));
    assert_eq!(catalog.get(&r.key).await.unwrap(), Some(r.clone()));
    assert!(catalog.queued_deletions(10).await.unwrap().is_empty());

    // overwrite → returns the old record and queues its bytes
    assert_eq!(catalog.commit_upload(&r2, true).await.unwrap(), Some(r.clone()));
    assert_eq!(catalog.get(&r.key).await.unwrap(), Some(r2.clone()));
    assert_eq!(catalog.queued_deletions(10).await.unwrap(), vec![r.blob_ref()]);
    catalog.deletion_done(&r.blob_ref()).await.unwrap();
    assert!(catalog.queued_deletions(10).await.unwrap().is_empty());

    // listing: tenant-scoped, both orders, keyset pages, category and prefix filters
    for (i, name) in ["c.txt", "b.txt", "d.txt"].iter().enumerate() {
        catalog
            .commit_upload(&record(&format!("tenant-t1/reports/{name}"), 3_000_000 + i as i64), false)
            .await
            .unwrap();
    }
    catalog.commit_upload(&record("tenant-t1/applications/b.txt", 5_000_000), false).await.unwrap();
    catalog.commit_upload(&record("tenant-t2/reports/zzz.txt", 9_000_000), false).await.unwrap();
    let keys = |p: &coffer::catalog::FilePage| p.files.iter().map(|f| f.key.to_string()).collect::<Vec<_>>();

    let mut q = query(SortOrder::Newest, 2);
    let p1 = catalog.list(&t, &q).await.unwrap();
    assert_eq!(keys(&p1), ["tenant-t1/applications/b.txt", "tenant-t1/reports/d.txt"]);
    q.cursor = p1.next.clone();
    let p2 = catalog.list(&t, &q).await.unwrap();
    assert_eq!(keys(&p2), ["tenant-t1/reports/b.txt", "tenant-t1/reports/c.txt"]);
    q.cursor = p2.next.clone();
    let p3 = catalog.list(&t, &q).await.unwrap();
    assert_eq!(keys(&p3), ["tenant-t1/reports/a.txt"]);
    assert!(p3.next.is_none());

    let mut q = query(SortOrder::Name, 10);
    let all = catalog.list(&t, &q).await.unwrap();
    assert_eq!(
        keys(&all),
        [
            "tenant-t1/reports/a.txt",
            "tenant-t1/applications/b.txt",
            "tenant-t1/reports/b.txt",
            "tenant-t1/reports/c.txt",
            "tenant-t1/reports/d.txt"
        ]
    );
    q.category = Some(Category::parse("reports").unwrap());
    q.prefix = Some("b".into());
    assert_eq!(keys(&catalog.list(&t, &q).await.unwrap()), ["tenant-t1/reports/b.txt"]);

    // a cursor of the other order is refused
    let mut q = query(SortOrder::Name, 1);
    q.cursor = p1.next;
    assert!(matches!(catalog.list(&t, &q).await, Err(CatalogError::InvalidCursor)));

    // delete removes the row and queues the bytes
    let d = catalog.delete(&r.key).await.unwrap();
    assert_eq!(d, r2);
    assert!(catalog.get(&r.key).await.unwrap().is_none());
    assert_eq!(catalog.queued_deletions(10).await.unwrap(), vec![r2.blob_ref()]);
    assert!(matches!(catalog.delete(&r.key).await, Err(CatalogError::NotFound)));

    // abandoned intents disappear
    let pending =
        BlobRef { bucket: BucketName::parse("docs-bucket").unwrap(), blob: record("tenant-t1/reports/x.txt", 0).blob };
    catalog.record_intent(&PendingUpload { blob: pending.clone(), started_at: r.created_at }).await.unwrap();
    catalog.abandon_intent(&pending).await.unwrap();
}

#[tokio::test]
async fn sqlite_catalog_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    conformance(Arc::new(SqliteCatalog::connect(&url).await.unwrap())).await;
}
