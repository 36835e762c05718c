//! The blob-store conformance suite: one story, run against every engine.

use std::sync::Arc;

use bytes::Bytes;
use coffer::blob::{BlobError, BlobStore, ByteStream, FsBlobStore};
use coffer::domain::{BlobKey, BlobVersion, BucketName, ObjectKey};
use futures::StreamExt;

fn bucket() -> BucketName {
    BucketName::parse("conformance-bucket").unwrap()
}

fn blob(key: &str) -> BlobKey {
    BlobKey::new(ObjectKey::parse(key).unwrap(), BlobVersion::generate())
}

fn body(parts: Vec<&'static [u8]>) -> ByteStream {
    Box::pin(futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))))
}

async fn read_all(store: &dyn BlobStore, key: &BlobKey, range: Option<std::ops::RangeInclusive<u64>>) -> Vec<u8> {
    let read = store.get(&bucket(), key, range).await.unwrap();
    read.body.map(|c| c.unwrap()).collect::<Vec<_>>().await.concat()
}

/// The story every blob store must tell.
async fn conformance(store: Arc<dyn BlobStore>) {
    let b = bucket();
    store.ensure_bucket(&b).await.unwrap();
    store.check(&b).await.unwrap();

    // put + get, whole and ranged
    let k = blob("tenant-a/reports/r.txt");
    let put = store.put(&b, &k, "text/plain", body(vec![b"hello ", b"world"])).await.unwrap();
    assert_eq!(put.size, 11);
    assert_eq!(read_all(&*store, &k, None).await, b"hello world");
    assert_eq!(read_all(&*store, &k, Some(6..=10)).await, b"world");
    assert_eq!(store.get(&b, &k, None).await.unwrap().size, 11);

    // a failing body leaves nothing behind
    let broken = blob("tenant-a/reports/broken.txt");
    let failing: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(std::io::Error::other("client went away")),
    ]));
    assert!(matches!(store.put(&b, &broken, "text/plain", failing).await, Err(BlobError::Body(_))));
    assert!(matches!(store.get(&b, &broken, None).await, Err(BlobError::NotFound)));

    // two versions of one key are independent objects
    let k2 = blob("tenant-a/reports/r.txt");
    store.put(&b, &k2, "text/plain", body(vec![b"v2"])).await.unwrap();
    assert_eq!(read_all(&*store, &k, None).await, b"hello world");
    assert_eq!(read_all(&*store, &k2, None).await, b"v2");

    // list, paged and ordered, sees exactly the stored objects
    let other = blob("tenant-b/logos/l.png");
    store.put(&b, &other, "image/png", body(vec![b"png"])).await.unwrap();
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(&b, after.as_deref(), 2).await.unwrap();
        assert!(page.keys.len() <= 2);
        listed.extend(page.keys);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut expected = vec![k.to_string(), k2.to_string(), other.to_string()];
    expected.sort();
    assert_eq!(listed, expected);

    // delete is idempotent; get after delete is NotFound
    store.delete(&b, &k).await.unwrap();
    store.delete(&b, &k).await.unwrap();
    assert!(matches!(store.get(&b, &k, None).await, Err(BlobError::NotFound)));
    assert_eq!(read_all(&*store, &k2, None).await, b"v2");

    // empty objects
    let empty = blob("tenant-a/reports/empty.txt");
    assert_eq!(store.put(&b, &empty, "text/plain", body(vec![])).await.unwrap().size, 0);
    assert_eq!(read_all(&*store, &empty, None).await, b"");

    // a missing bucket is reported as such
    let missing = BucketName::parse("no-such-bucket-here").unwrap();
    assert!(matches!(store.check(&missing).await, Err(BlobError::NoSuchBucket(_))));
}

#[tokio::test]
async fn filesystem_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(Arc::new(FsBlobStore::new(dir.path()))).await;
}
