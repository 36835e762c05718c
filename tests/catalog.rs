//! The catalog conformance suite: one story, run against every engine.

use std::sync::Arc;

mod common;

use coffer::catalog::{
    BlobRef, Catalog, CatalogError, CategoryUsage, FileRecord, ListQuery, LockRefusal, PendingUpload, PostgresCatalog,
    Quota, SortOrder, SqliteCatalog, TenantStatus, UploadSession,
};

const NO_QUOTA: Quota = Quota { max_bytes: None, max_files: None };
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

/// Commits `r` as the service does: intent first, forgotten again when the commit fails.
async fn commit<C: Catalog + ?Sized>(
    catalog: &C,
    r: &FileRecord,
    overwrite: bool,
    quota: &Quota,
) -> Result<Option<FileRecord>, CatalogError> {
    catalog.record_intent(&intent(r.blob_ref(), r.created_at)).await?;
    let result = catalog.commit_upload(r, overwrite, quota).await;
    if result.is_err() {
        assert!(catalog.abandon_intent(&r.blob_ref()).await?, "a refused commit leaves its intent in place");
    }
    result
}

/// An intent marked at `at` with no lease beyond its mark.
fn intent(blob: BlobRef, at: chrono::DateTime<chrono::Utc>) -> PendingUpload {
    PendingUpload { blob, started_at: at, alive_until: at }
}

fn query(sort: SortOrder, limit: u32) -> ListQuery {
    ListQuery { category: None, prefix: None, sort, limit, cursor: None }
}

async fn conformance(catalog: Arc<dyn Catalog>) {
    catalog.ping().await.unwrap();
    let t = TenantId::parse("t1").unwrap();

    // intent, commit, get; the commit consumed the intent
    let r = record("tenant-t1/reports/a.txt", 1_000_000);
    catalog.record_intent(&intent(r.blob_ref(), r.created_at)).await.unwrap();
    assert_eq!(catalog.commit_upload(&r, false, &NO_QUOTA).await.unwrap(), None);
    assert!(!catalog.abandon_intent(&r.blob_ref()).await.unwrap(), "a committed upload has no intent left");
    assert_eq!(catalog.get(&r.key).await.unwrap(), Some(r.clone()));

    // an upload's start: the row, and the intent only when the upload may go on
    let next = record("tenant-t1/reports/a.txt", 1_500_000);
    let started = intent(next.blob_ref(), next.created_at);
    assert!(matches!(catalog.begin_upload(&started, false).await, Err(CatalogError::AlreadyExists)));
    assert!(!catalog.abandon_intent(&next.blob_ref()).await.unwrap(), "a refused start records nothing");
    assert_eq!(catalog.begin_upload(&started, true).await.unwrap(), Some(r.clone()));
    assert!(catalog.abandon_intent(&next.blob_ref()).await.unwrap(), "an overwrite's start records its intent");
    let new_key = record("tenant-t1/reports/new.txt", 1_500_000);
    assert_eq!(catalog.begin_upload(&intent(new_key.blob_ref(), new_key.created_at), false).await.unwrap(), None);
    assert!(catalog.abandon_intent(&new_key.blob_ref()).await.unwrap());

    // no overwrite → AlreadyExists, nothing changes
    let r2 = record("tenant-t1/reports/a.txt", 2_000_000);
    assert!(matches!(commit(&*catalog, &r2, false, &NO_QUOTA).await, Err(CatalogError::AlreadyExists)));
    assert_eq!(catalog.get(&r.key).await.unwrap(), Some(r.clone()));
    assert!(catalog.queued_deletions(10).await.unwrap().is_empty());

    // overwrite → returns the old record and queues its bytes
    assert_eq!(commit(&*catalog, &r2, true, &NO_QUOTA).await.unwrap(), Some(r.clone()));
    assert_eq!(catalog.get(&r.key).await.unwrap(), Some(r2.clone()));
    assert_eq!(catalog.queued_deletions(10).await.unwrap(), vec![r.blob_ref()]);
    catalog.deletion_done(&r.blob_ref()).await.unwrap();
    assert!(catalog.queued_deletions(10).await.unwrap().is_empty());

    // listing: tenant-scoped, both orders, keyset pages, category and prefix filters
    for (i, name) in ["c.txt", "b.txt", "d.txt"].iter().enumerate() {
        commit(&*catalog, &record(&format!("tenant-t1/reports/{name}"), 3_000_000 + i as i64), false, &NO_QUOTA)
            .await
            .unwrap();
    }
    commit(&*catalog, &record("tenant-t1/applications/b.txt", 5_000_000), false, &NO_QUOTA).await.unwrap();
    commit(&*catalog, &record("tenant-t2/reports/zzz.txt", 9_000_000), false, &NO_QUOTA).await.unwrap();
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

    // every shape of query: a prefix in either order with or without a category, page by page
    let mut q = query(SortOrder::Name, 1);
    q.prefix = Some("b".into());
    let first = catalog.list(&t, &q).await.unwrap();
    assert_eq!(keys(&first), ["tenant-t1/applications/b.txt"]);
    q.cursor = first.next;
    let second = catalog.list(&t, &q).await.unwrap();
    assert_eq!(keys(&second), ["tenant-t1/reports/b.txt"]);
    assert!(second.next.is_none());
    let mut q = query(SortOrder::Newest, 10);
    q.prefix = Some("b".into());
    assert_eq!(keys(&catalog.list(&t, &q).await.unwrap()), ["tenant-t1/applications/b.txt", "tenant-t1/reports/b.txt"]);
    q.category = Some(Category::parse("reports").unwrap());
    assert_eq!(keys(&catalog.list(&t, &q).await.unwrap()), ["tenant-t1/reports/b.txt"]);
    q.prefix = Some("zzz".into());
    assert!(catalog.list(&t, &q).await.unwrap().files.is_empty(), "another tenant's names stay hidden");
    let mut q = query(SortOrder::Newest, 3);
    q.category = Some(Category::parse("reports").unwrap());
    let first = catalog.list(&t, &q).await.unwrap();
    assert_eq!(keys(&first), ["tenant-t1/reports/d.txt", "tenant-t1/reports/b.txt", "tenant-t1/reports/c.txt"]);
    q.cursor = first.next;
    assert_eq!(keys(&catalog.list(&t, &q).await.unwrap()), ["tenant-t1/reports/a.txt"]);
    let mut q = query(SortOrder::Name, 10);
    q.category = Some(Category::parse("applications").unwrap());
    assert_eq!(keys(&catalog.list(&t, &q).await.unwrap()), ["tenant-t1/applications/b.txt"]);

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

    // abandoned intents disappear, once; a commit after the rollback is refused and stores nothing
    let x = record("tenant-t1/reports/x.txt", 0);
    let pending = BlobRef { bucket: BucketName::parse("docs-bucket").unwrap(), blob: x.blob.clone() };
    catalog.record_intent(&intent(pending.clone(), r.created_at)).await.unwrap();
    assert!(catalog.abandon_intent(&pending).await.unwrap());
    assert!(!catalog.abandon_intent(&pending).await.unwrap());
    assert!(catalog.stale_intents(x.created_at + chrono::Duration::days(1), None, 10).await.unwrap().is_empty());
    assert!(matches!(catalog.commit_upload(&x, true, &NO_QUOTA).await, Err(CatalogError::IntentLost)));
    assert!(catalog.get(&x.key).await.unwrap().is_none());
    // a commit without any intent is refused the same way
    let never = record("tenant-t1/reports/never.txt", 0);
    assert!(matches!(catalog.commit_upload(&never, false, &NO_QUOTA).await, Err(CatalogError::IntentLost)));

    concurrent_commits(&*catalog).await;
    usage_and_quotas(&*catalog).await;
    tenants(&*catalog).await;
    maintenance(&*catalog).await;
    sessions(&*catalog).await;
    purge(&*catalog).await;
}

/// Many writers at once (the SQLite catalog runs them in shared transactions): each gets its
/// own answer, a refused write changes nothing, and the others are not rolled back with it.
async fn concurrent_commits(catalog: &dyn Catalog) {
    let t = TenantId::parse("t9").unwrap();
    let taken = record("tenant-t9/reports/taken.txt", 1);
    commit(catalog, &taken, false, &NO_QUOTA).await.unwrap();
    let fresh: Vec<FileRecord> =
        (0..40).map(|i| record(&format!("tenant-t9/reports/f{i:02}.txt"), 10 + i as i64)).collect();
    let clashing: Vec<FileRecord> = (0..8).map(|i| record("tenant-t9/reports/taken.txt", 100 + i)).collect();
    let orphans: Vec<FileRecord> =
        (0..8).map(|i| record(&format!("tenant-t9/reports/orphan{i}.txt"), 200 + i as i64)).collect();
    let writes = fresh
        .iter()
        .map(|r| (r, true))
        .chain(clashing.iter().map(|r| (r, true)))
        .chain(orphans.iter().map(|r| (r, false)));
    let answers = futures::future::join_all(writes.map(|(r, with_intent)| async move {
        if with_intent {
            catalog.record_intent(&intent(r.blob_ref(), r.created_at)).await.unwrap();
        }
        catalog.commit_upload(r, false, &NO_QUOTA).await
    }))
    .await;
    let (ok, refused) = answers.split_at(fresh.len());
    assert!(ok.iter().all(|a| matches!(a, Ok(None))), "{ok:?}");
    assert!(refused[..8].iter().all(|a| matches!(a, Err(CatalogError::AlreadyExists))), "{refused:?}");
    assert!(refused[8..].iter().all(|a| matches!(a, Err(CatalogError::IntentLost))), "{refused:?}");
    for r in &fresh {
        assert_eq!(catalog.get(&r.key).await.unwrap().as_ref(), Some(r));
    }
    assert_eq!(catalog.get(&taken.key).await.unwrap(), Some(taken.clone()));
    // The refused commits left their intents in place (the service then abandons them).
    for r in &clashing {
        assert!(catalog.abandon_intent(&r.blob_ref()).await.unwrap(), "a refused commit keeps its intent");
    }
    for r in &orphans {
        assert!(catalog.get(&r.key).await.unwrap().is_none());
    }
    let usage = catalog.usage(&t).await.unwrap();
    assert_eq!(usage, vec![CategoryUsage { category: "reports".into(), files: 41, bytes: 41 * 3 }]);
    let page = catalog.list(&t, &query(SortOrder::Name, 100)).await.unwrap();
    assert_eq!(page.files.len(), 41);
}

fn session(key: &str, id: &str, length: Option<u64>) -> UploadSession {
    let r = record(key, 9_000_000);
    // The catalog keeps microseconds.
    let now = chrono::DateTime::from_timestamp_micros(chrono::Utc::now().timestamp_micros()).unwrap();
    UploadSession {
        id: id.into(),
        blob: r.blob_ref(),
        original_filename: r.original_filename,
        declared_type: None,
        content_type: None,
        overwrite: false,
        length,
        offset: 0,
        hasher: "v1:state".into(),
        head: Vec::new(),
        engine_state: "{}".into(),
        metadata: "filename eA==".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        completed_at: None,
    }
}

/// Resumable uploads: created with their intent, one lock holder at a time and only at the
/// upload's offset, progress saved by the holder only, reserved bytes, expiry, removal.
async fn sessions(catalog: &dyn Catalog) {
    let t = TenantId::parse("tus-t").unwrap();
    let other = TenantId::parse("tus-other").unwrap();
    let lease = std::time::Duration::from_secs(30);
    let mut s = session("tenant-tus-t/reports/big.bin", "0123456789abcdef0123456789abcdef", Some(1000));
    catalog.create_session(&s).await.unwrap();
    assert_eq!(catalog.session(&t, &s.id).await.unwrap().as_ref(), Some(&s));
    assert_eq!(catalog.session(&other, &s.id).await.unwrap(), None, "another tenant sees nothing");
    assert!(catalog.intent_under(&s.blob.bucket, "tenant-tus-t/reports/").await.unwrap(), "the intent came with it");
    assert_eq!(catalog.reserved_bytes(&t).await.unwrap(), 1000);

    assert_eq!(catalog.lock_session(&other, &s.id, 0, "x", lease).await.unwrap(), Err(LockRefusal::Missing));
    assert_eq!(catalog.lock_session(&t, &s.id, 5, "a", lease).await.unwrap(), Err(LockRefusal::Offset(0)));
    assert!(catalog.lock_session(&t, &s.id, 0, "a", lease).await.unwrap().is_ok());
    assert_eq!(catalog.lock_session(&t, &s.id, 0, "b", lease).await.unwrap(), Err(LockRefusal::Busy));
    assert!(catalog.renew_session_lock(&t, &s.id, "a", lease).await.unwrap());
    assert!(!catalog.renew_session_lock(&t, &s.id, "b", lease).await.unwrap());
    s.offset = 400;
    s.hasher = "v1:after".into();
    s.engine_state = "{\"parts\":1}".into();
    s.expires_at += chrono::Duration::hours(2);
    let lease_checked_at = chrono::Utc::now() + chrono::Duration::minutes(90);
    let blob = s.blob.clone();
    let intent_stale = || async {
        let stale = catalog.stale_intents(lease_checked_at, None, 100).await.unwrap();
        stale.iter().any(|p| p.blob == blob)
    };
    assert!(intent_stale().await, "the intent's lease is the upload's first expiry");
    assert!(!catalog.save_session(&s, "b", true).await.unwrap(), "only the holder saves");
    let kept = catalog.session(&t, &s.id).await.unwrap().unwrap();
    assert_eq!(
        (kept.offset, kept.hasher.as_str(), kept.engine_state.as_str()),
        (0, "v1:state", "{}"),
        "nothing of a refused save is recorded"
    );
    assert!(intent_stale().await, "nor the intent's lease moved");
    // Saved without releasing: the holder keeps the lock at the new offset.
    s.offset = 300;
    assert!(catalog.save_session(&s, "a", false).await.unwrap());
    let saved = catalog.session(&t, &s.id).await.unwrap().unwrap();
    assert_eq!((saved.offset, saved.engine_state.as_str()), (300, "{\"parts\":1}"), "row and state saved");
    assert!(!intent_stale().await, "the intent's lease moved with the expiry");
    assert_eq!(catalog.lock_session(&t, &s.id, 300, "b", lease).await.unwrap(), Err(LockRefusal::Busy));
    assert!(catalog.renew_session_lock(&t, &s.id, "a", lease).await.unwrap(), "still the holder");
    s.offset = 400;
    assert!(catalog.save_session(&s, "a", true).await.unwrap());
    assert_eq!(catalog.session(&t, &s.id).await.unwrap().unwrap().offset, 400);
    // Saved means released: the next writer takes it at the new offset.
    assert_eq!(catalog.lock_session(&t, &s.id, 0, "b", lease).await.unwrap(), Err(LockRefusal::Offset(400)));
    assert!(catalog.lock_session(&t, &s.id, 400, "b", std::time::Duration::ZERO).await.unwrap().is_ok());
    // A lease that ran out lets another writer in.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(catalog.lock_session(&t, &s.id, 400, "c", lease).await.unwrap().is_ok());
    assert!(!catalog.save_session(&s, "b", true).await.unwrap(), "the writer whose lease ran out lost it");
    assert_eq!(catalog.remove_session(&t, &s.id, Some("b")).await.unwrap(), None, "not the holder");
    let removed = catalog.remove_session(&t, &s.id, Some("c")).await.unwrap().expect("removed");
    assert_eq!(removed.offset, 400);
    assert!(!catalog.intent_under(&s.blob.bucket, "tenant-tus-t/reports/").await.unwrap(), "its intent went too");
    assert_eq!(catalog.reserved_bytes(&t).await.unwrap(), 0);

    // Completed: no more locks; removable without one; expired ones are found.
    let mut done = session("tenant-tus-t/reports/done.bin", "fedcba9876543210fedcba9876543210", None);
    catalog.create_session(&done).await.unwrap();
    assert!(catalog.lock_session(&t, &done.id, 0, "z", lease).await.unwrap().is_ok());
    done.offset = 7;
    done.length = Some(7);
    done.completed_at = Some(chrono::Utc::now());
    done.expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert!(catalog.save_session(&done, "z", true).await.unwrap());
    assert_eq!(catalog.lock_session(&t, &done.id, 7, "y", lease).await.unwrap(), Err(LockRefusal::Completed));
    let expired = catalog.expired_sessions(chrono::Utc::now(), 10).await.unwrap();
    assert_eq!(expired.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [done.id.as_str()]);
    assert!(catalog.remove_session(&t, &done.id, None).await.unwrap().is_some());

    // A purge removes the tenant's uploads.
    let purged = session("tenant-purged/reports/p.bin", "00000000000000000000000000000001", Some(3));
    catalog.create_session(&purged).await.unwrap();
    let p = TenantId::parse("purged").unwrap();
    assert_eq!(catalog.reserved_bytes(&p).await.unwrap(), 3);
}

/// A purge removes every row of one tenant but its registration, and nothing of a tenant whose
/// id it prefixes; removing the registration afterwards lets the tenant start afresh.
async fn purge(catalog: &dyn Catalog) {
    let (p, near) = (TenantId::parse("purged").unwrap(), TenantId::parse("purged-not").unwrap());
    for key in ["tenant-purged/reports/1.txt", "tenant-purged/exports/2.txt", "tenant-purged-not/reports/3.txt"] {
        commit(catalog, &record(key, 7_000_000), false, &NO_QUOTA).await.unwrap();
    }
    let deleted = catalog.delete(&ObjectKey::parse("tenant-purged/reports/1.txt").unwrap()).await.unwrap();
    let live = record("tenant-purged/reports/live.txt", 8_000_000);
    catalog.record_intent(&intent(live.blob_ref(), live.created_at)).await.unwrap();
    catalog.add_tenant(&p).await.unwrap();
    catalog.set_tenant_status(&p, TenantStatus::Suspended).await.unwrap();

    let rows = catalog.purge_tenant_rows(&p).await.unwrap();
    assert_eq!((rows.files, rows.pending_uploads, rows.queued_deletions), (1, 2, 1));
    assert_eq!(rows.resumable_uploads, 1);
    assert_eq!(catalog.reserved_bytes(&p).await.unwrap(), 0);
    assert!(catalog.usage(&p).await.unwrap().is_empty());
    assert!(!catalog.queued_deletions(100).await.unwrap().contains(&deleted.blob_ref()));
    assert!(!catalog.abandon_intent(&live.blob_ref()).await.unwrap());
    assert_eq!(catalog.tenant_status(&p).await.unwrap(), Some(TenantStatus::Suspended), "kept until the end");
    let near_key = ObjectKey::parse("tenant-purged-not/reports/3.txt").unwrap();
    assert!(catalog.get(&near_key).await.unwrap().is_some(), "another tenant's rows stay");
    assert_eq!(catalog.usage(&near).await.unwrap().len(), 1);
    assert_eq!(catalog.purge_tenant_rows(&p).await.unwrap(), Default::default(), "idempotent");
    assert!(catalog.remove_tenant(&p).await.unwrap());
    assert!(!catalog.remove_tenant(&p).await.unwrap());
    assert_eq!(catalog.tenant_status(&p).await.unwrap(), None);
}

async fn usage_and_quotas(catalog: &dyn Catalog) {
    let t = TenantId::parse("quota-t").unwrap();
    let quota = Quota { max_bytes: Some(10), max_files: Some(3) };
    let mk = |name: &str, size: u64| FileRecord { size, ..record(&format!("tenant-quota-t/reports/{name}"), 1) };
    commit(catalog, &mk("a", 4), false, &quota).await.unwrap();
    commit(catalog, &mk("b", 4), false, &quota).await.unwrap();
    // 8 + 4 > 10 bytes
    assert!(matches!(commit(catalog, &mk("c", 4), false, &quota).await, Err(CatalogError::QuotaExceeded)));
    assert!(catalog.get(&mk("c", 4).key).await.unwrap().is_none());
    // an overwrite that shrinks is always allowed; one that grows counts only the difference
    commit(catalog, &mk("a", 1), true, &quota).await.unwrap();
    commit(catalog, &mk("a", 6), true, &quota).await.unwrap();
    commit(catalog, &FileRecord { size: 0, ..record("tenant-quota-t/applications/z", 1) }, false, &quota)
        .await
        .unwrap();
    // a fourth file breaks the file-count quota
    assert!(matches!(commit(catalog, &mk("d", 0), false, &quota).await, Err(CatalogError::QuotaExceeded)));
    assert_eq!(
        catalog.usage(&t).await.unwrap(),
        vec![
            CategoryUsage { category: "applications".into(), files: 1, bytes: 0 },
            CategoryUsage { category: "reports".into(), files: 2, bytes: 10 },
        ]
    );
    catalog.delete(&mk("a", 0).key).await.unwrap();
    assert_eq!(catalog.usage(&t).await.unwrap()[1], CategoryUsage { category: "reports".into(), files: 1, bytes: 4 });
}

async fn tenants(catalog: &dyn Catalog) {
    let t = TenantId::parse("registered-t").unwrap();
    assert_eq!(catalog.tenant_status(&t).await.unwrap(), None);
    assert!(catalog.add_tenant(&t).await.unwrap());
    assert!(!catalog.add_tenant(&t).await.unwrap());
    assert_eq!(catalog.tenant_status(&t).await.unwrap(), Some(TenantStatus::Active));
    catalog.set_tenant_status(&t, TenantStatus::Suspended).await.unwrap();
    assert_eq!(catalog.tenant_status(&t).await.unwrap(), Some(TenantStatus::Suspended));
    let unknown = TenantId::parse("nobody").unwrap();
    assert!(matches!(catalog.set_tenant_status(&unknown, TenantStatus::Active).await, Err(CatalogError::NotFound)));
    let listed = catalog.list_tenants().await.unwrap();
    assert!(listed.iter().any(|i| i.tenant == t && i.status == TenantStatus::Suspended));
}

async fn maintenance(catalog: &dyn Catalog) {
    let old = record("tenant-m/reports/old.txt", 1_000);
    let young = record("tenant-m/reports/young.txt", 1_000);
    let at = |us| chrono::DateTime::from_timestamp_micros(us).unwrap();
    catalog.record_intent(&intent(old.blob_ref(), at(1_000))).await.unwrap();
    catalog.record_intent(&intent(young.blob_ref(), at(9_000_000))).await.unwrap();
    let stale = catalog.stale_intents(at(5_000), None, 10).await.unwrap();
    assert_eq!(stale, vec![intent(old.blob_ref(), at(1_000))]);
    assert!(catalog.stale_intents(at(5_000), Some(&stale[0]), 10).await.unwrap().is_empty());
    // an upload still streaming moves its intent forward: no longer stale
    assert!(catalog.touch_intent(&intent(old.blob_ref(), at(6_000))).await.unwrap());
    assert!(catalog.stale_intents(at(5_000), None, 10).await.unwrap().is_empty());
    assert_eq!(catalog.stale_intents(at(7_000), None, 10).await.unwrap().len(), 1);
    // its lease protects it past its mark, whatever cutoff a reconcile uses
    let leased = PendingUpload { alive_until: at(20_000), ..intent(old.blob_ref(), at(6_000)) };
    assert!(catalog.touch_intent(&leased).await.unwrap());
    assert!(catalog.stale_intents(at(7_000), None, 10).await.unwrap().is_empty());
    assert!(catalog.stale_intents(at(20_000), None, 10).await.unwrap().is_empty());
    assert_eq!(catalog.stale_intents(at(20_001), None, 10).await.unwrap(), vec![leased]);
    let gone = intent(record("tenant-m/reports/gone.txt", 1).blob_ref(), at(6_000));
    assert!(!catalog.touch_intent(&gone).await.unwrap());

    let committed = record("tenant-m/reports/committed.txt", 1_000);
    commit(catalog, &committed, false, &NO_QUOTA).await.unwrap();
    let bucket = committed.bucket.clone();
    let names = vec![committed.blob.to_string(), young.blob.to_string(), "tenant-m/reports/x/orphan".to_string()];
    let found = catalog.referenced(&bucket, &names).await.unwrap();
    assert!(found.contains(&names[0]) && found.contains(&names[1]) && !found.contains(&names[2]));

    // a live upload owns its version's directory; a committed one does not (it has no intent)
    let dir = |r: &FileRecord| format!("{}/", r.blob.to_string().rsplit_once('/').unwrap().0);
    assert!(catalog.intent_under(&bucket, &dir(&young)).await.unwrap());
    assert!(!catalog.intent_under(&bucket, &dir(&committed)).await.unwrap());
    assert!(!catalog.intent_under(&bucket, "tenant-m/reports/x/").await.unwrap());
    assert!(!catalog.intent_under(&BucketName::parse("other-bucket").unwrap(), &dir(&young)).await.unwrap());

    // scan sees every tenant's rows, in key order, in pages
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = catalog.scan_files(after.as_deref(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().key.to_string());
        all.extend(page.into_iter().map(|f| f.key.to_string()));
    }
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert!(all.contains(&"tenant-t2/reports/zzz.txt".to_string()));
    assert!(all.contains(&"tenant-m/reports/committed.txt".to_string()));
}

/// A page carries each row exactly as it was committed, whatever characters its text holds and
/// however large its numbers (SQLite returns a page as one JSON value).
async fn rows_round_trip(catalog: &dyn Catalog) {
    let tenant = TenantId::parse("odd").unwrap();
    let names = ["quote\"back\\slash.txt", "tab\tnew\nline.txt", "emoji-😀-é-ü.txt", "bell-\u{7}-del-\u{7f}.txt"];
    let mut committed = Vec::new();
    for (i, original) in names.iter().enumerate() {
        let mut r = record(&format!("tenant-odd/reports/f{i}.bin"), 1_000 + i as i64);
        r.original_filename = original.to_string();
        r.content_type = "text/plain; charset=\"utf-8\"".into();
        // Past what a double holds exactly: a JSON number read as a float would round it.
        r.size = if i == 0 { (1 << 53) + 1 } else { i as u64 };
        commit(catalog, &r, false, &NO_QUOTA).await.unwrap();
        committed.push(r);
    }
    let page = catalog.list(&tenant, &query(SortOrder::Name, 10)).await.unwrap();
    assert_eq!(page.files, committed);
    let newest = catalog.list(&tenant, &query(SortOrder::Newest, 10)).await.unwrap();
    committed.reverse();
    assert_eq!(newest.files, committed);
}

#[tokio::test]
async fn sqlite_catalog_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let catalog = Arc::new(SqliteCatalog::connect(&url).await.unwrap());
    rows_round_trip(&*catalog).await;
    conformance(catalog).await;
}

/// SQLite runs concurrent writes in shared transactions: when one of them fails with a database
/// error, its whole batch is rolled back, and every write answered Ok took effect while every
/// write answered with an error did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_batches_take_effect_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let catalog = SqliteCatalog::connect(&url).await.unwrap();
    let at = chrono::DateTime::from_timestamp_micros(1_000).unwrap();
    let taken = record("tenant-b/reports/taken.txt", 1);
    catalog.record_intent(&intent(taken.blob_ref(), at)).await.unwrap();
    let mut shared_a_failed_batch = 0;
    for round in 0..20 {
        let fresh: Vec<FileRecord> =
            (0..30).map(|i| record(&format!("tenant-b/reports/r{round}-{i}.txt"), 10)).collect();
        // The same intent twice is a primary-key violation: a database error inside a batch.
        let answers =
            futures::future::join_all(fresh.iter().map(|r| r.blob_ref()).chain([taken.blob_ref()]).map(|b| {
                let catalog = &catalog;
                async move { (b.clone(), catalog.record_intent(&intent(b, at)).await) }
            }))
            .await;
        let (dup, rest) = answers.split_last().unwrap();
        assert!(matches!(dup.1, Err(CatalogError::Database(_))), "{:?}", dup.1);
        let bucket = taken.bucket.clone();
        for (blob, answer) in rest {
            let dir = format!("{}/", blob.blob.to_string().rsplit_once('/').unwrap().0);
            let recorded = catalog.intent_under(&bucket, &dir).await.unwrap();
            match answer {
                Ok(()) => assert!(recorded, "an acknowledged write took effect"),
                Err(CatalogError::Database(_)) => {
                    assert!(!recorded, "a failed write left nothing");
                    shared_a_failed_batch += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    println!("writes that shared a batch with the failing one: {shared_a_failed_batch} of 600");
}

#[tokio::test]
async fn postgres_catalog_conforms() {
    let url = common::fresh_pg_database().await;
    let catalog = Arc::new(PostgresCatalog::connect(&url, None).await.unwrap());
    rows_round_trip(&*catalog).await;
    conformance(catalog).await;
}

/// The pool does not ping a connection it hands out unless the connection sat idle (a round
/// trip per statement saved); one the database cut while it sat idle (a restart, a proxy's
/// idle timeout) is still found out and replaced before a write, which nothing retries, uses it.
#[tokio::test]
async fn postgres_connections_cut_while_idle_are_replaced_before_a_write_uses_them() {
    use sqlx::Connection;
    let url = common::fresh_pg_database().await;
    let catalog = PostgresCatalog::connect(&url, None).await.unwrap();
    let first = record("tenant-t1/reports/first.txt", 1);
    commit(&catalog, &first, false, &NO_QUOTA).await.unwrap();

    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!cut.is_empty() && cut.iter().all(|&c| c), "the pool's connections were open: {cut:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;

    for name in ["second.txt", "third.txt"] {
        let r = record(&format!("tenant-t1/reports/{name}"), 2);
        commit(&catalog, &r, false, &NO_QUOTA).await.expect("a fresh connection, not the cut one");
    }
    let listed = catalog.list(&TenantId::parse("t1").unwrap(), &query(SortOrder::Name, 10)).await.unwrap();
    assert_eq!(listed.files.len(), 3);
}

/// Row-level security: without the per-transaction tenant setting no row is visible; with
/// tenant A's setting only A's rows are, and rows of B cannot be written.
#[tokio::test]
async fn postgres_row_level_security_isolates_tenants() {
    use sqlx::Connection;
    let url = common::fresh_pg_database().await;
    let catalog = PostgresCatalog::connect(&url, None).await.unwrap();
    for key in ["tenant-A/reports/a1.txt", "tenant-A/reports/a2.txt", "tenant-B/reports/b1.txt"] {
        commit(&catalog, &record(key, 1), false, &NO_QUOTA).await.unwrap();
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SET ROLE coffer_app").execute(&mut conn).await.unwrap();

    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM files").fetch_one(&mut conn).await.unwrap();
    assert_eq!(visible, 0, "no tenant set: no rows");

    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'A', true)").execute(&mut *tx).await.unwrap();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM files").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(tenants, ["A", "A"]);
    let updated = sqlx::query("UPDATE files SET size = 0 WHERE tenant_id = 'B'").execute(&mut *tx).await.unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let smuggled = sqlx::query(
        "INSERT INTO files (key, tenant_id, category, filename, original_filename, bucket, blob_key, content_type, size, sha256, created_at)
         VALUES ('tenant-B/reports/x', 'B', 'reports', 'x', 'x', 'b', 'k', 't', 0, 's', 0)",
    )
    .execute(&mut *tx)
    .await;
    assert!(smuggled.is_err(), "a row of another tenant must violate the policy");
    tx.rollback().await.unwrap();

    // The setting is transaction-local: gone after the transaction.
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM files").fetch_one(&mut conn).await.unwrap();
    assert_eq!(visible, 0);
    // And the catalog itself still answers per tenant.
    let b = catalog.list(&TenantId::parse("B").unwrap(), &query(SortOrder::Name, 10)).await.unwrap();
    assert_eq!(b.files.len(), 1);
}

/// A tenant with no usage rows yet uploads to several categories at once through two
/// instances: the quota holds across categories (each commit inserts its own category's usage
/// row, which the others cannot see, so locking "the tenant's rows" serialises nothing).
#[tokio::test]
async fn postgres_quota_holds_for_a_new_tenants_parallel_first_uploads() {
    let url = common::fresh_pg_database().await;
    let instances = [
        Arc::new(PostgresCatalog::connect(&url, None).await.unwrap()),
        Arc::new(PostgresCatalog::connect(&url, None).await.unwrap()),
    ];
    let categories = ["applications", "reports", "exports", "logos", "profile-images"];
    for round in 0..5 {
        let by_files = Quota { max_bytes: None, max_files: Some(3) };
        let by_bytes = Quota { max_bytes: Some(100_000), max_files: None };
        for (name, quota, size) in [("files", by_files, 10u64), ("bytes", by_bytes, 60_000)] {
            let tenant = format!("new-{name}-{round}");
            let uploads = categories.iter().enumerate().map(|(i, category)| {
                let catalog = instances[i % 2].clone();
                let r = FileRecord { size, ..record(&format!("tenant-{tenant}/{category}/first.bin"), 1) };
                async move { commit(&*catalog, &r, false, &quota).await }
            });
            let results = futures::future::join_all(uploads).await;
            let accepted = results.iter().filter(|r| r.is_ok()).count();
            for r in &results {
                assert!(matches!(r, Ok(_) | Err(CatalogError::QuotaExceeded)), "{r:?}");
            }
            let usage = instances[0].usage(&TenantId::parse(&tenant).unwrap()).await.unwrap();
            let (files, bytes) = usage.iter().fold((0, 0), |(f, b), u| (f + u.files, b + u.bytes));
            assert!(quota.allows(files, bytes), "round {round}, {name}: {files} files, {bytes} bytes in {usage:?}");
            assert_eq!(files as usize, accepted);
            assert!(accepted >= 1);
        }
    }
}

/// The second round of defence in depth: the old all-tenants setting opens nothing, every table
/// that names a tenant is filtered, and with separate logins (`COFFER_MAINTENANCE_DATABASE_URL`)
/// the tenant login cannot take the maintenance role at all — while the whole conformance
/// story still passes on the split logins.
#[tokio::test]
async fn postgres_tenant_login_cannot_reach_other_tenants_or_maintenance() {
    use sqlx::Connection;
    let url = common::fresh_pg_database().await;
    PostgresCatalog::migrate(&url).await.unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (app_login, maint_login) =
        (format!("coffer_t_app_{}", &suffix[..12]), format!("coffer_t_mnt_{}", &suffix[..12]));
    let mut owner = sqlx::PgConnection::connect(&url).await.unwrap();
    for stmt in [
        format!("CREATE ROLE {app_login} LOGIN"),
        format!("GRANT coffer_app TO {app_login}"),
        format!("CREATE ROLE {maint_login} LOGIN"),
        format!("GRANT coffer_maintenance TO {maint_login}"),
    ] {
        sqlx::query(&stmt).execute(&mut owner).await.unwrap();
    }
    let as_login = |login: &str| {
        let mut u = url::Url::parse(&url).unwrap();
        u.set_username(login).unwrap();
        u.to_string()
    };
    let (app_url, maint_url) = (as_login(&app_login), as_login(&maint_login));

    let catalog = PostgresCatalog::connect(&app_url, Some(&maint_url)).await.unwrap();
    for key in ["tenant-A/reports/a.txt", "tenant-B/reports/b.txt"] {
        commit(&catalog, &record(key, 1), false, &NO_QUOTA).await.unwrap();
    }
    let b_pending = record("tenant-B/reports/pending.txt", 1);
    catalog.record_intent(&intent(b_pending.blob_ref(), b_pending.created_at)).await.unwrap();
    catalog.delete(&ObjectKey::parse("tenant-B/reports/b.txt").unwrap()).await.unwrap(); // queues B's bytes
    catalog.add_tenant(&TenantId::parse("B").unwrap()).await.unwrap();

    let mut conn = sqlx::PgConnection::connect(&app_url).await.unwrap();
    let denied = sqlx::query("SET ROLE coffer_maintenance").execute(&mut conn).await;
    assert!(denied.is_err(), "the tenant login must not take the maintenance role");
    let denied = sqlx::query("SELECT set_config('role', 'coffer_maintenance', false)").execute(&mut conn).await;
    assert!(denied.is_err(), "nor through set_config");
    sqlx::query("SET ROLE coffer_app").execute(&mut conn).await.unwrap();
    sqlx::query("SELECT set_config('app.all_tenants', 'on', false), set_config('app.tenant_id', 'A', false)")
        .execute(&mut conn)
        .await
        .unwrap();
    for table in ["files", "tenant_usage", "tenants", "pending_uploads", "blob_deletions"] {
        let foreign: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE tenant_id <> 'A'"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(foreign, 0, "{table}: another tenant's rows are visible");
    }
    let changed =
        sqlx::query("UPDATE tenants SET status = 'suspended' WHERE tenant_id = 'B'").execute(&mut conn).await.unwrap();
    assert_eq!(changed.rows_affected(), 0, "A cannot suspend B");
    let changed = sqlx::query("DELETE FROM blob_deletions").execute(&mut conn).await.unwrap();
    assert_eq!(changed.rows_affected(), 0, "A cannot drop B's queued deletions");
    let changed = sqlx::query("DELETE FROM pending_uploads").execute(&mut conn).await.unwrap();
    assert_eq!(changed.rows_affected(), 0, "A cannot drop B's intents");
    let own_status = sqlx::query("UPDATE tenants SET status = 'active' WHERE tenant_id = 'A'").execute(&mut conn).await;
    assert!(own_status.map(|r| r.rows_affected() == 0).unwrap_or(true), "a tenant cannot change its own status");
    let smuggled = sqlx::query("INSERT INTO tenants VALUES ('C', 'active', 0)").execute(&mut conn).await;
    assert!(smuggled.is_err(), "A cannot register another tenant");
    let smuggled =
        sqlx::query("INSERT INTO pending_uploads (bucket, blob_key, started_at) VALUES ('b', 'tenant-B/r/v/x', 0)")
            .execute(&mut conn)
            .await;
    assert!(smuggled.is_err(), "A cannot write an intent under B's prefix");
    drop(conn);

    // Maintenance on its own login still sees everything it needs: the whole story passes.
    let fresh = common::fresh_pg_database().await;
    PostgresCatalog::migrate(&fresh).await.unwrap();
    let relogin = |u: &str, login: &str| {
        let mut u = url::Url::parse(u).unwrap();
        u.set_username(login).unwrap();
        u.to_string()
    };
    let split = PostgresCatalog::connect(&relogin(&fresh, &app_login), Some(&relogin(&fresh, &maint_login))).await;
    conformance(Arc::new(split.unwrap())).await;
    drop(catalog);
}

/// The migrations before the one that moved an upload's engine state to a table of its own
/// (SQLite 0006, PostgreSQL 0008).
fn migrations_before(migrator: sqlx::migrate::Migrator, version: i64) -> sqlx::migrate::Migrator {
    let older: Vec<_> = migrator.iter().filter(|m| m.version < version).cloned().collect();
    sqlx::migrate::Migrator { migrations: std::borrow::Cow::Owned(older), ..migrator }
}

/// An unfinished upload as the schema before that migration stored it: the engine state in the
/// upload's own row.
fn old_session_insert(blob: &BlobRef, overwrite: &str, head: &str) -> String {
    format!(
        "INSERT INTO resumable_uploads (id, tenant_id, bucket, blob_key, original_filename, declared_type,
             content_type, overwrite, length, upload_offset, hasher, head, engine_state, metadata, created_at,
             expires_at, completed_at)
         VALUES ('{OLD_UPLOAD}', 'mig', '{}', '{}', 'old.bin', NULL, 'application/pdf', {overwrite}, 900, 300,
             'v1:state', {head}, '{OLD_STATE}', '', 1, 9999999999999999, NULL)",
        blob.bucket, blob.blob
    )
}

const OLD_UPLOAD: &str = "0123456789abcdef0123456789abcdee";
const OLD_STATE: &str = "c2VhbGVkIHRhaWw=";

/// What an upload begun before the migration must still be after it.
async fn continues_after_migration(catalog: &dyn Catalog) {
    let t = TenantId::parse("mig").unwrap();
    let s = catalog.session(&t, OLD_UPLOAD).await.unwrap().expect("the upload outlived the migration");
    assert_eq!((s.offset, s.length, s.engine_state.as_str()), (300, Some(900), OLD_STATE));
    let lease = std::time::Duration::from_secs(30);
    let locked = catalog.lock_session(&t, OLD_UPLOAD, 300, "a", lease).await.unwrap().expect("lockable");
    assert_eq!(locked.engine_state, OLD_STATE);
    assert!(catalog.remove_session(&t, OLD_UPLOAD, Some("a")).await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_upload_begun_before_the_state_table_continues_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    migrations_before(sqlx::migrate!("migrations/sqlite"), 6).run(&pool).await.unwrap();
    let blob = record("tenant-mig/reports/old.bin", 1).blob_ref();
    sqlx::query(&old_session_insert(&blob, "0", "X''")).execute(&pool).await.unwrap();
    pool.close().await;
    continues_after_migration(&SqliteCatalog::connect(&url).await.unwrap()).await;
}

/// Run as the tables' owner, not a superuser: the owner is bound by the forced row-level
/// security that a superuser bypasses, so a migration copying every tenant's rows must lift it.
#[tokio::test]
async fn postgres_upload_begun_before_the_state_table_continues_after_it() {
    use sqlx::Connection;
    let url = common::fresh_pg_database().await;
    let owner = format!("coffer_t_own_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let db = url::Url::parse(&url).unwrap().path().trim_start_matches('/').to_owned();
    for stmt in [format!("CREATE ROLE {owner} LOGIN CREATEROLE"), format!("ALTER DATABASE {db} OWNER TO {owner}")] {
        sqlx::query(&stmt).execute(&mut admin).await.unwrap();
    }
    let mut owner_url = url::Url::parse(&url).unwrap();
    owner_url.set_username(&owner).unwrap();
    let owner_url = owner_url.to_string();

    let mut conn = sqlx::PgConnection::connect(&owner_url).await.unwrap();
    migrations_before(sqlx::migrate!("migrations/postgres"), 8).run(&mut conn).await.unwrap();
    let blob = record("tenant-mig/reports/old.bin", 1).blob_ref();
    sqlx::query("SELECT set_config('app.tenant_id', 'mig', false)").execute(&mut conn).await.unwrap();
    sqlx::query(&old_session_insert(&blob, "false", "''::bytea")).execute(&mut conn).await.unwrap();
    drop(conn);
    continues_after_migration(&PostgresCatalog::connect(&owner_url, None).await.unwrap()).await;
}
