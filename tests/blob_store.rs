//! The blob-store conformance suite: one story, run against every engine.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use coffer::blob::{BlobError, BlobStore, ByteStream, FsBlobStore, Lengths, PartialAt, S3BlobStore};
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

async fn read_all(
    store: &dyn BlobStore,
    b: &BucketName,
    key: &BlobKey,
    range: Option<std::ops::RangeInclusive<u64>>,
) -> Vec<u8> {
    let read = store.get(b, key, range).await.unwrap();
    read.body.map(|c| c.unwrap()).collect::<Vec<_>>().await.concat()
}

/// The story every blob store must tell.
async fn conformance(store: Arc<dyn BlobStore>) {
    conformance_in(store, bucket()).await
}

async fn conformance_in(store: Arc<dyn BlobStore>, b: BucketName) {
    store.ensure_bucket(&b).await.unwrap();
    store.check(&b).await.unwrap();

    // put + get, whole and ranged
    let k = blob("tenant-a/reports/r.txt");
    let put = store.put(&b, &k, "text/plain", body(vec![b"hello ", b"world"]), None).await.unwrap();
    assert_eq!(put.size, 11);
    assert_eq!(read_all(&*store, &b, &k, None).await, b"hello world");
    assert_eq!(read_all(&*store, &b, &k, Some(6..=10)).await, b"world");
    assert_eq!(store.get(&b, &k, None).await.unwrap().size, 11);

    // a failing body leaves nothing behind
    let broken = blob("tenant-a/reports/broken.txt");
    let failing: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(std::io::Error::other("client went away")),
    ]));
    assert!(matches!(store.put(&b, &broken, "text/plain", failing, None).await, Err(BlobError::Body(_))));
    assert!(matches!(store.get(&b, &broken, None).await, Err(BlobError::NotFound)));

    // two versions of one key are independent objects
    let k2 = blob("tenant-a/reports/r.txt");
    store.put(&b, &k2, "text/plain", body(vec![b"v2"]), None).await.unwrap();
    assert_eq!(read_all(&*store, &b, &k, None).await, b"hello world");
    assert_eq!(read_all(&*store, &b, &k2, None).await, b"v2");

    // list, paged and ordered, sees exactly the stored objects
    let other = blob("tenant-b/logos/l.png");
    store.put(&b, &other, "image/png", body(vec![b"png"]), None).await.unwrap();
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
    assert_eq!(read_all(&*store, &b, &k2, None).await, b"v2");

    // empty objects
    let empty = blob("tenant-a/reports/empty.txt");
    assert_eq!(store.put(&b, &empty, "text/plain", body(vec![]), None).await.unwrap().size, 0);
    assert_eq!(read_all(&*store, &b, &empty, None).await, b"");

    // delete_tenant removes one tenant's objects only (not those of a tenant whose id it prefixes)
    let near = blob("tenant-ab/reports/n.txt");
    store.put(&b, &near, "text/plain", body(vec![b"near"]), None).await.unwrap();
    let removed = store.delete_tenant(&b, &coffer::domain::TenantId::parse("a").unwrap()).await.unwrap();
    assert_eq!(removed, 2, "r.txt (v2) and empty.txt");
    assert!(matches!(store.get(&b, &k2, None).await, Err(BlobError::NotFound)));
    assert_eq!(read_all(&*store, &b, &near, None).await, b"near");
    assert_eq!(read_all(&*store, &b, &other, None).await, b"png");
    assert_eq!(store.delete_tenant(&b, &coffer::domain::TenantId::parse("a").unwrap()).await.unwrap(), 0);

    known_lengths(&*store, &b).await;
    partial_objects(&*store, &b).await;
    pipelined_appends(&*store, &b).await;

    // a missing bucket is reported as such
    let missing = BucketName::parse("no-such-bucket-here").unwrap();
    assert!(matches!(store.check(&missing).await, Err(BlobError::NoSuchBucket(_))));
}

/// Bodies whose exact length is announced (above one S3 part: one streamed PUT there): stored
/// whole; a body shorter or longer than announced, or failing, is `Body` with nothing stored.
async fn known_lengths(store: &dyn BlobStore, b: &BucketName) {
    const MIB: usize = 1024 * 1024;
    let all = data(9 * MIB + 3);
    let pieces = || owned(all.chunks(300_000).map(<[u8]>::to_vec).collect());
    let k = blob("tenant-k/exports/known.bin");
    assert_eq!(
        store.put(b, &k, "application/octet-stream", pieces(), Some(all.len() as u64)).await.unwrap().size,
        all.len() as u64
    );
    assert!(read_all(store, b, &k, None).await == all, "stored bytes differ");
    for (name, announced) in [("short.bin", all.len() as u64 + 1), ("long.bin", all.len() as u64 - 1)] {
        let bad = blob(&format!("tenant-k/exports/{name}"));
        let res = store.put(b, &bad, "application/octet-stream", pieces(), Some(announced)).await;
        assert!(matches!(res, Err(BlobError::Body(_))), "{name}: {res:?}");
        assert!(matches!(store.get(b, &bad, None).await, Err(BlobError::NotFound)), "{name}");
    }
    let broken = blob("tenant-k/exports/broken.bin");
    let failing: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(Bytes::from(all[..5 * MIB].to_vec())),
        Err(std::io::Error::other("client went away")),
    ]));
    let res = store.put(b, &broken, "application/octet-stream", failing, Some(all.len() as u64)).await;
    match res {
        Err(BlobError::Body(e)) => assert!(e.to_string().contains("client went away"), "{e}"),
        other => panic!("a failing body: {other:?}"),
    }
    assert!(matches!(store.get(b, &broken, None).await, Err(BlobError::NotFound)));
    store.delete(b, &k).await.unwrap();
}

/// A partial object whose length was announced: appends ending at a segment's end (64 KiB)
/// and within one, one never acknowledged past a segment's end, the last reaching the length;
/// it finishes into the same bytes, and finishing again succeeds.
async fn partial_object_of_known_length(store: &dyn BlobStore, b: &BucketName) {
    const SEGMENT: usize = 65_536;
    let all = data(6 * SEGMENT + 4_321);
    let object = Some(all.len() as u64);
    let k = blob("tenant-p/exports/known.bin");
    let mut state = store.partial_begin(b, &k, "application/octet-stream").await.unwrap();
    let mut offset = 0;
    for end in [SEGMENT, SEGMENT + 100_000, 3 * SEGMENT, 5 * SEGMENT] {
        let piece = all[offset..end].to_vec();
        let lengths = Lengths { body: Some(piece.len() as u64), object };
        let (new, appended) =
            store.partial_append(b, &k, &state, offset as u64, owned(vec![piece]), lengths).await.unwrap();
        assert_eq!(appended as usize, end - offset);
        store.partial_release(b, &k, &state, &new).await;
        (state, offset) = (new, end);
    }
    // Never acknowledged: other bytes, to the end (the last segment sealed as the last).
    let wrong = vec![0x5A; all.len() - offset];
    let lengths = Lengths { body: Some(wrong.len() as u64), object };
    let (unacked, _) = store.partial_append(b, &k, &state, offset as u64, owned(vec![wrong]), lengths).await.unwrap();
    store.partial_release(b, &k, &unacked, &state).await;
    let rest = all[offset..].to_vec();
    let lengths = Lengths { body: Some(rest.len() as u64), object };
    let (done, appended) =
        store.partial_append(b, &k, &state, offset as u64, owned(vec![rest]), lengths).await.unwrap();
    assert_eq!(appended as usize, all.len() - offset);
    store.partial_release(b, &k, &state, &done).await;
    store.partial_finish(b, &k, &done, all.len() as u64).await.unwrap();
    store.partial_finish(b, &k, &done, all.len() as u64).await.unwrap();
    assert!(read_all(store, b, &k, None).await == all, "finished object differs");
    let range = (SEGMENT as u64 - 3)..=(5 * SEGMENT as u64 + 2);
    assert!(read_all(store, b, &k, Some(range.clone())).await == all[SEGMENT - 3..=5 * SEGMENT + 2]);
    store.delete(b, &k).await.unwrap();
}

/// Deterministic bytes of any length.
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn owned(parts: Vec<Vec<u8>>) -> ByteStream {
    Box::pin(futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))))
}

/// Partial objects (resumable uploads): appends in pieces of every size, an unacknowledged
/// append discarded by the next one at the same offset, finishing, aborting, an empty one.
async fn partial_objects(store: &dyn BlobStore, b: &BucketName) {
    const MIB: usize = 1024 * 1024;
    let all = data(20 * MIB + 12_345);
    let k = blob("tenant-p/exports/big.bin");
    let mut state = store.partial_begin(b, &k, "application/octet-stream").await.unwrap();
    assert!(matches!(store.get(b, &k, None).await, Err(BlobError::NotFound)), "nothing visible before finish");
    let mut offset = 0usize;
    for piece in [1, 65_535, 65_537, 6 * MIB, 100, 9 * MIB, 2 * MIB] {
        // Most with their length announced (S3 streams whole parts by it), two without (S3
        // gathers whole parts, the 9 MiB one past a part boundary, and stages the rest).
        let length = (piece != 100 && piece != 9 * MIB).then_some(piece as u64);
        let chunk = all[offset..offset + piece].to_vec();
        // Split across stream chunks too.
        let (a, c) = chunk.split_at(piece / 2);
        let (new, appended) = store
            .partial_append(
                b,
                &k,
                &state,
                offset as u64,
                owned(vec![a.to_vec(), c.to_vec()]),
                Lengths { body: length, object: None },
            )
            .await
            .unwrap();
        assert_eq!(appended, piece as u64);
        store.partial_release(b, &k, &state, &new).await;
        state = new;
        offset += piece;
    }
    // A body longer than announced fails; a shorter one (its client went away) keeps what
    // arrived, as any append does. Neither is acknowledged here.
    let longer = store
        .partial_append(b, &k, &state, offset as u64, owned(vec![vec![0xAB; 8 * MIB]]), Lengths::body(7 * MIB as u64))
        .await;
    assert!(matches!(longer, Err(BlobError::Body(_))), "{longer:?}");
    let (shorter, appended) = store
        .partial_append(
            b,
            &k,
            &state,
            offset as u64,
            owned(vec![vec![0xCD; 8 * MIB + 7]]),
            Lengths::body(9 * MIB as u64),
        )
        .await
        .unwrap();
    assert_eq!(appended, 8 * MIB as u64 + 7);
    store.partial_release(b, &k, &shorter, &state).await;
    // An append that is never acknowledged (its state is dropped): the next one from the same
    // offset replaces what it wrote.
    let (unacked, _) = store
        .partial_append(b, &k, &state, offset as u64, owned(vec![vec![0xEE; 300_000]]), Lengths::default())
        .await
        .unwrap();
    store.partial_release(b, &k, &unacked, &state).await;
    let (new, appended) = store
        .partial_append(b, &k, &state, offset as u64, owned(vec![all[offset..].to_vec()]), Lengths::default())
        .await
        .unwrap();
    assert_eq!(appended as usize, all.len() - offset);
    store.partial_release(b, &k, &state, &new).await;
    store.partial_finish(b, &k, &new, all.len() as u64).await.unwrap();
    // A retry of the finish (the process died before the catalog recorded it) succeeds.
    store.partial_finish(b, &k, &new, all.len() as u64).await.unwrap();
    assert_eq!(store.get(b, &k, None).await.unwrap().size, all.len() as u64);
    assert!(read_all(store, b, &k, None).await == all, "finished object differs");
    assert_eq!(read_all(store, b, &k, Some(65_530..=65_545)).await, all[65_530..=65_545]);

    partial_object_of_known_length(store, b).await;

    // An empty partial object finishes into an empty object.
    let e = blob("tenant-p/exports/empty.bin");
    let state = store.partial_begin(b, &e, "application/octet-stream").await.unwrap();
    store.partial_finish(b, &e, &state, 0).await.unwrap();
    assert_eq!(read_all(store, b, &e, None).await, b"");

    // Aborted: nothing remains, and aborting again succeeds.
    let gone = blob("tenant-p/exports/gone.bin");
    let state = store.partial_begin(b, &gone, "application/octet-stream").await.unwrap();
    let (state, _) =
        store.partial_append(b, &gone, &state, 0, owned(vec![data(70_000)]), Lengths::body(70_000)).await.unwrap();
    store.partial_abort(b, &gone, &state).await.unwrap();
    assert!(matches!(store.get(b, &gone, None).await, Err(BlobError::NotFound)));
    let mut left = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(b, after.as_deref(), 1000).await.unwrap();
        left.extend(page.keys.into_iter().filter(|key| key.starts_with("tenant-p/")));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    left.sort();
    let mut expected = vec![k.to_string(), e.to_string()];
    expected.sort();
    assert_eq!(left, expected, "no staging objects, tails or partial files remain");
    store.delete(b, &k).await.unwrap();
    store.delete(b, &e).await.unwrap();
}

/// An append written on top of one neither durable nor recorded yet (`partial_write`, as the
/// service pipelines two appends): a crash may leave the catalog recording the one below or only
/// the append before it, and the object continues from whichever it records, read back from
/// storage (not from what the process kept in memory for the newest state).
async fn pipelined_appends(store: &dyn BlobStore, b: &BucketName) {
    let all = data(600_000);
    let bytes = |from: usize, to: usize| owned(vec![all[from..to].to_vec()]);
    for below_recorded in [true, false] {
        let k = blob(&format!("tenant-q/exports/pipelined-{below_recorded}.bin"));
        let begun = store.partial_begin(b, &k, "application/octet-stream").await.unwrap();
        let at = PartialAt { state: &begun, acknowledged: &begun, offset: 0 };
        let first = store.partial_write(b, &k, at, bytes(0, 100_000), Lengths::default()).await.unwrap();
        first.durable.await.unwrap();
        let before = first.state;
        let at = PartialAt { state: &before, acknowledged: &before, offset: 100_000 };
        let below = store.partial_write(b, &k, at, bytes(100_000, 250_000), Lengths::default()).await.unwrap();
        // Written on top of `below` before it is durable or recorded.
        let at = PartialAt { state: &below.state, acknowledged: &before, offset: 250_000 };
        let above = store.partial_write(b, &k, at, bytes(250_000, 400_000), Lengths::default()).await.unwrap();
        assert_eq!((below.appended, above.appended), (150_000, 150_000));
        below.durable.await.unwrap();
        above.durable.await.unwrap();
        let (below, above) = (below.state, above.state);
        // What the service releases once the catalog recorded its state, or once an append
        // failed to be recorded.
        let (recorded, offset) = if below_recorded {
            store.partial_release(b, &k, &before, &below).await;
            (below, 250_000)
        } else {
            store.partial_release(b, &k, &below, &before).await;
            (before, 100_000)
        };
        store.partial_release(b, &k, &above, &recorded).await;
        let (last, _) = store
            .partial_append(b, &k, &recorded, offset as u64, bytes(offset, all.len()), Lengths::default())
            .await
            .unwrap();
        store.partial_release(b, &k, &recorded, &last).await;
        store.partial_finish(b, &k, &last, all.len() as u64).await.unwrap();
        assert!(read_all(store, b, &k, None).await == all, "object differs (below recorded: {below_recorded})");
        store.delete(b, &k).await.unwrap();
    }
    let left = store.list(b, None, 1000).await.unwrap().keys;
    let left: Vec<_> = left.iter().filter(|key| key.starts_with("tenant-q/")).collect();
    assert!(left.is_empty(), "no staging objects, tails or partial files remain: {left:?}");
}

#[tokio::test]
async fn filesystem_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(Arc::new(FsBlobStore::new(dir.path()))).await;
}

/// An S3 store against the s3s-fs server scripts/test starts (SigV4 verified).
#[tokio::test]
async fn sealed_filesystem_store_conforms() {
    use coffer::crypt::{KeyWrap, Keyring, MasterKey};
    let dir = tempfile::tempdir().unwrap();
    let master: Arc<dyn KeyWrap> = Arc::new(MasterKey::generate().0);
    let keyring = Arc::new(Keyring::open_or_create(dir.path(), master, None).unwrap());
    conformance(Arc::new(FsBlobStore::sealed(dir.path().join("objects"), keyring))).await;
}

pub async fn s3_store(endpoint_var: &str, extra: &[(&str, &str)]) -> S3BlobStore {
    let endpoint =
        std::env::var(endpoint_var).unwrap_or_else(|_| panic!("{endpoint_var} is not set: run scripts/test"));
    let mut vars: std::collections::HashMap<String, String> = [
        ("COFFER_STORAGE", "s3"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", common::S3_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", common::S3_SECRET_KEY),
        ("COFFER_S3_PART_SIZE", "5 MiB"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = coffer::config::Config::from_lookup(|k| vars.get(k).cloned(), &Default::default()).unwrap();
    match config.storage {
        coffer::config::StorageEngine::S3(s) => S3BlobStore::new(*s).await,
        _ => unreachable!(),
    }
}

fn fresh_bucket() -> BucketName {
    BucketName::parse(&format!("conf-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])).unwrap()
}

#[tokio::test]
async fn s3_store_conforms() {
    let store = s3_store("COFFER_TEST_S3_ENDPOINT", &[]).await;
    conformance_in(Arc::new(store), fresh_bucket()).await;
}

/// 64 MiB of unknown length goes multipart (5 MiB parts, 4 in flight) and reads back intact:
/// chunks of an odd size that part boundaries cut, and bytes that differ from one position to
/// the next, so a byte out of place changes the digest.
#[tokio::test]
async fn s3_multipart_upload_streams() {
    use sha2::{Digest, Sha256};
    let store = s3_store("COFFER_TEST_S3_ENDPOINT", &[]).await;
    let b = fresh_bucket();
    store.ensure_bucket(&b).await.unwrap();
    let k = blob("tenant-a/exports/big.bin");
    let all: Bytes = (0..64u64 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let chunks: Vec<Bytes> =
        (0..all.len()).step_by(300_007).map(|at| all.slice(at..(at + 300_007).min(all.len()))).collect();
    let stream: ByteStream = Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)));
    assert_eq!(store.put(&b, &k, "application/octet-stream", stream, None).await.unwrap().size, 64 << 20);
    let mut hasher = Sha256::new();
    let mut body = store.get(&b, &k, None).await.unwrap().body;
    while let Some(c) = body.next().await {
        hasher.update(c.unwrap());
    }
    assert_eq!(hex::encode(hasher.finalize()), hex::encode(Sha256::digest(&all)));
}

/// On moto (which lists multipart uploads): a body that fails midway leaves neither the object
/// nor an open multipart upload.
#[tokio::test]
async fn s3_failed_multipart_upload_is_aborted() {
    let store = s3_store("COFFER_TEST_MOTO_ENDPOINT", &[]).await;
    let b = fresh_bucket();
    store.ensure_bucket(&b).await.unwrap();
    let broken = blob("tenant-a/exports/broken.bin");
    let chunk = Bytes::from(vec![1u8; 1 << 20]);
    let failing: ByteStream = Box::pin(
        futures::stream::iter((0..12).map(move |_| Ok(chunk.clone())))
            .chain(futures::stream::once(async { Err(std::io::Error::other("client went away")) })),
    );
    assert!(matches!(store.put(&b, &broken, "application/octet-stream", failing, None).await, Err(BlobError::Body(_))));
    assert!(!store.exists(&b, &broken).await.unwrap());
    // The abort runs in the background; give it a moment.
    for _ in 0..50 {
        let open = store.client().list_multipart_uploads().bucket(b.as_str()).send().await.unwrap();
        if open.uploads().is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the failed multipart upload was not aborted");
}

/// On moto: a multipart upload nobody completes is listed, and abandoning it releases it (a
/// second time: already gone).
#[tokio::test]
async fn s3_unfinished_multipart_uploads_are_listed_and_abandoned() {
    let store = s3_store("COFFER_TEST_MOTO_ENDPOINT", &[]).await;
    let b = fresh_bucket();
    store.ensure_bucket(&b).await.unwrap();
    let key = "tenant-a/exports/01a2273ec20175dc9afa2a8dc3b97b44/left.bin";
    let created = store.client().create_multipart_upload().bucket(b.as_str()).key(key).send().await.unwrap();
    let id = created.upload_id().unwrap().to_owned();
    // (moto reports every upload as initiated in 2010, so the age cut-off is exercised against
    // Garage by the cluster drill, not here.)
    let listed = store.unfinished_writes(&b, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(listed, vec![coffer::blob::UnfinishedWrite { key: key.into(), id: id.clone() }]);
    assert!(store.abandon_write(&b, &listed[0]).await.unwrap());
    assert!(!store.abandon_write(&b, &listed[0]).await.unwrap(), "already gone");
    assert!(store.unfinished_writes(&b, std::time::Duration::ZERO).await.unwrap().is_empty());
}

/// On s3s-fs, which has no ListMultipartUploads: no unfinished writes, not an error.
#[tokio::test]
async fn s3_unfinished_writes_on_a_server_without_the_api_are_none() {
    let store = s3_store("COFFER_TEST_S3_ENDPOINT", &[]).await;
    let b = fresh_bucket();
    store.ensure_bucket(&b).await.unwrap();
    assert!(store.unfinished_writes(&b, std::time::Duration::ZERO).await.unwrap().is_empty());
}

/// A sealed upload begun before tails had slots of their own kept its sealed tail in the engine
/// state (base64), and has no `.tus-tail`: it continues from that state, its next tail goes to
/// a slot, and it finishes into the same bytes.
#[tokio::test]
async fn sealed_partial_object_with_its_tail_in_the_state_continues() {
    use base64::Engine;
    use coffer::crypt::{KeyWrap, Keyring, MasterKey};
    let dir = tempfile::tempdir().unwrap();
    let master: Arc<dyn KeyWrap> = Arc::new(MasterKey::generate().0);
    let keyring = Arc::new(Keyring::open_or_create(dir.path(), master, None).unwrap());
    let store = FsBlobStore::sealed(dir.path().join("objects"), keyring);
    let b = bucket();
    store.ensure_bucket(&b).await.unwrap();
    let all = data(200_000);
    let k = blob("tenant-old/exports/old.bin");
    let state = store.partial_begin(&b, &k, "application/octet-stream").await.unwrap();
    let (state, _) =
        store.partial_append(&b, &k, &state, 0, owned(vec![all[..70_000].to_vec()]), Lengths::default()).await.unwrap();
    assert!(state.starts_with("tail-slot:0:"), "{state}");

    // As the earlier format kept it: the sealed tail (70,000 - 65,536 bytes) in the state.
    let version_dir = dir.path().join("objects").join(b.as_str()).join(k.to_string()).parent().unwrap().to_owned();
    let slots = std::fs::read(version_dir.join(".tus-tail")).unwrap();
    let old_state = base64::engine::general_purpose::STANDARD.encode(&slots[..68 + 4_464 + 16]);
    std::fs::remove_file(version_dir.join(".tus-tail")).unwrap();

    let (state, appended) = store
        .partial_append(&b, &k, &old_state, 70_000, owned(vec![all[70_000..].to_vec()]), Lengths::default())
        .await
        .unwrap();
    assert!(state.starts_with("tail-slot:0:"), "{state}");
    assert_eq!(appended, 130_000);
    store.partial_finish(&b, &k, &state, all.len() as u64).await.unwrap();
    assert!(read_all(&store, &b, &k, None).await == all, "finished object differs");
    let left: Vec<_> = std::fs::read_dir(&version_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "only the object remains: {left:?}");
}

fn sealed_stores(n: usize) -> (tempfile::TempDir, Arc<coffer::crypt::Keyring>, Vec<FsBlobStore>) {
    use coffer::crypt::{KeyWrap, Keyring, MasterKey};
    let dir = tempfile::tempdir().unwrap();
    let master: Arc<dyn KeyWrap> = Arc::new(MasterKey::generate().0);
    let keyring = Arc::new(Keyring::open_or_create(dir.path(), master, None).unwrap());
    let stores = (0..n).map(|_| FsBlobStore::sealed(dir.path().join("objects"), keyring.clone())).collect();
    (dir, keyring, stores)
}

/// Two instances on one data dir (or one instance and its successor): each keeps what its
/// last append left in memory. When the other one's append of *different* bytes at the same
/// offset is the one the catalog recorded (this one's was never acknowledged), the state it
/// names is not the kept one, and the tail is read back from its slot: the object holds the
/// acknowledged bytes. A state saved before states had tags (`tail-slot:N`) still continues.
#[tokio::test]
async fn sealed_partial_object_continues_from_the_state_acknowledged_not_the_one_kept() {
    let (_dir, _keyring, stores) = sealed_stores(2);
    let (one, other) = (&stores[0], &stores[1]);
    let b = bucket();
    one.ensure_bucket(&b).await.unwrap();
    let k = blob("tenant-two/exports/shared.bin");
    let (lost, acknowledged) = (vec![0xAA; 100_000], data(250_000));
    let begun = one.partial_begin(&b, &k, "application/octet-stream").await.unwrap();

    // `one` appends bytes the client never gets acknowledged (its catalog write failed)...
    let (unacknowledged, _) =
        one.partial_append(&b, &k, &begun, 0, owned(vec![lost]), Lengths::default()).await.unwrap();
    // ...and `other` takes the same offset with the client's retry, which is acknowledged.
    let (state, _) = other
        .partial_append(&b, &k, &begun, 0, owned(vec![acknowledged[..100_000].to_vec()]), Lengths::default())
        .await
        .unwrap();
    assert_eq!(state.split(':').nth(1), unacknowledged.split(':').nth(1), "the same slot");
    assert_ne!(state, unacknowledged, "but another append's tail");
    // `one` continues from the acknowledged state: its kept tail (0xAA) must not be used.
    let (state, _) = one
        .partial_append(
            &b,
            &k,
            &state,
            100_000,
            owned(vec![acknowledged[100_000..200_000].to_vec()]),
            Lengths::default(),
        )
        .await
        .unwrap();
    // A state without a tag (as saved before tags) names the same slot.
    let untagged = state.rsplit_once(':').unwrap().0.to_owned();
    let (state, _) = other
        .partial_append(&b, &k, &untagged, 200_000, owned(vec![acknowledged[200_000..].to_vec()]), Lengths::default())
        .await
        .unwrap();
    one.partial_finish(&b, &k, &state, acknowledged.len() as u64).await.unwrap();
    assert!(read_all(one, &b, &k, None).await == acknowledged, "finished object differs");
}

/// An append resumed from what the previous one kept in memory still reads the tenant's key
/// before it writes: once the key is destroyed, the next append fails and writes nothing.
#[tokio::test]
async fn an_append_after_the_tenants_key_was_destroyed_fails() {
    let (dir, keyring, stores) = sealed_stores(1);
    let store = &stores[0];
    let b = bucket();
    store.ensure_bucket(&b).await.unwrap();
    let k = blob("tenant-gone/exports/late.bin");
    let begun = store.partial_begin(&b, &k, "application/octet-stream").await.unwrap();
    let (state, _) =
        store.partial_append(&b, &k, &begun, 0, owned(vec![data(70_000)]), Lengths::default()).await.unwrap();
    let data_file = dir.path().join("objects").join(b.as_str()).join(k.to_string()).with_file_name(".tus-data");
    let before = std::fs::metadata(&data_file).unwrap().len();
    keyring.destroy(&coffer::domain::TenantId::parse("gone").unwrap()).unwrap();
    for body in [data(10), data(3_000_000)] {
        let failed = store.partial_append(&b, &k, &state, 70_000, owned(vec![body]), Lengths::default()).await;
        assert!(matches!(failed, Err(BlobError::Key(_))), "{failed:?}");
        assert_eq!(std::fs::metadata(&data_file).unwrap().len(), before, "nothing written");
    }
}

/// With the length announced, a sealed append ending at a segment's end leaves no tail (state
/// `boundary`, nothing written to `.tus-tail`), and the one reaching the length seals the last
/// segment (state `whole`). Another instance, with nothing kept in memory, continues from a
/// boundary; an append within a segment after one still keeps its tail in a slot; and an
/// instance whose kept boundary is older than the acknowledged state does not use it.
#[tokio::test]
async fn sealed_appends_of_a_known_length_leave_no_tail_at_segment_ends() {
    const SEGMENT: usize = 65_536;
    let (dir, _keyring, stores) = sealed_stores(2);
    let (one, other) = (&stores[0], &stores[1]);
    let b = bucket();
    one.ensure_bucket(&b).await.unwrap();
    let k = blob("tenant-known/exports/aligned.bin");
    let all = data(8 * SEGMENT + 10);
    let object = Some(all.len() as u64);
    let version_dir = dir.path().join("objects").join(b.as_str()).join(k.to_string()).parent().unwrap().to_owned();
    let slots = || std::fs::read(version_dir.join(".tus-tail")).unwrap();
    let append = |store: &FsBlobStore, state: String, from: usize, to: usize| {
        let piece = all[from..to].to_vec();
        let lengths = Lengths { body: Some(piece.len() as u64), object };
        let k = k.clone();
        let b = b.clone();
        let store = store.clone();
        async move { store.partial_append(&b, &k, &state, from as u64, owned(vec![piece]), lengths).await.unwrap() }
    };
    let begun = one.partial_begin(&b, &k, "application/octet-stream").await.unwrap();
    let empty_slots = slots();
    let (state, _) = append(one, begun, 0, 2 * SEGMENT).await;
    assert_eq!(state, "boundary");
    assert_eq!(slots(), empty_slots, "no tail written");
    // Another instance continues from the boundary (read from disk), then `one` from its own
    // kept boundary — which is older than the acknowledged state, so must not be used.
    let (state, _) = append(other, state, 2 * SEGMENT, 4 * SEGMENT).await;
    assert_eq!(state, "boundary");
    let (state, _) = append(one, state, 4 * SEGMENT, 5 * SEGMENT + 7).await;
    assert!(state.starts_with("tail-slot:0:"), "{state}");
    let (state, _) = append(other, state, 5 * SEGMENT + 7, 7 * SEGMENT).await;
    assert_eq!(state, "boundary");
    let (state, appended) = append(one, state, 7 * SEGMENT, all.len()).await;
    assert_eq!((state.as_str(), appended), ("whole", SEGMENT as u64 + 10));
    other.partial_finish(&b, &k, &state, all.len() as u64).await.unwrap();
    assert!(read_all(one, &b, &k, None).await == all, "finished object differs");
    let left: Vec<_> = std::fs::read_dir(&version_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "only the object remains: {left:?}");
}

/// A `whole` state whose data file does not hold the whole sealed object (it was cut short
/// under it) does not finish: the file stays a partial object, nothing is published.
#[tokio::test]
async fn a_whole_state_over_a_short_file_does_not_finish() {
    let (dir, _keyring, stores) = sealed_stores(1);
    let store = &stores[0];
    let b = bucket();
    store.ensure_bucket(&b).await.unwrap();
    let k = blob("tenant-known/exports/short.bin");
    let all = data(100_000);
    let begun = store.partial_begin(&b, &k, "application/octet-stream").await.unwrap();
    let lengths = Lengths { body: Some(all.len() as u64), object: Some(all.len() as u64) };
    let (state, _) = store.partial_append(&b, &k, &begun, 0, owned(vec![all.clone()]), lengths).await.unwrap();
    assert_eq!(state, "whole");
    let data_file = dir.path().join("objects").join(b.as_str()).join(k.to_string()).with_file_name(".tus-data");
    let len = std::fs::metadata(&data_file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&data_file).unwrap().set_len(len - 1).unwrap();
    let refused = store.partial_finish(&b, &k, &state, all.len() as u64).await;
    assert!(matches!(refused, Err(BlobError::Corrupt(_))), "{refused:?}");
    assert!(matches!(store.get(&b, &k, None).await, Err(BlobError::NotFound)));
}

/// The files named `name` anywhere under `dir`.
fn files_named(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_named(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

/// A sealed upload begun when `.tus-tail` had two slots: an append written on top of one not
/// yet recorded takes the third, which the file gets then, and another instance (nothing kept
/// in memory) continues from the state naming it.
#[tokio::test]
async fn a_sealed_partial_object_begun_with_two_tail_slots_gets_the_third() {
    let (dir, _keyring, stores) = sealed_stores(2);
    let (one, other) = (&stores[0], &stores[1]);
    let b = bucket();
    one.ensure_bucket(&b).await.unwrap();
    let k = blob("tenant-old/exports/two-slots.bin");
    let begun = one.partial_begin(&b, &k, "application/octet-stream").await.unwrap();
    let tails = files_named(dir.path(), ".tus-tail");
    assert_eq!(tails.len(), 1, "{tails:?}");
    let three = std::fs::metadata(&tails[0]).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&tails[0]).unwrap().set_len(three / 3 * 2).unwrap();

    let all = data(500_000);
    let bytes = |from: usize, to: usize| owned(vec![all[from..to].to_vec()]);
    let (before, _) = one.partial_append(&b, &k, &begun, 0, bytes(0, 100_000), Lengths::default()).await.unwrap();
    let at = PartialAt { state: &before, acknowledged: &before, offset: 100_000 };
    let below = one.partial_write(&b, &k, at, bytes(100_000, 200_000), Lengths::default()).await.unwrap();
    let at = PartialAt { state: &below.state, acknowledged: &before, offset: 200_000 };
    let above = one.partial_write(&b, &k, at, bytes(200_000, 300_000), Lengths::default()).await.unwrap();
    below.durable.await.unwrap();
    above.durable.await.unwrap();
    assert!(above.state.starts_with("tail-slot:2:"), "{}", above.state);
    assert!(std::fs::metadata(&tails[0]).unwrap().len() > three / 3 * 2, "the third slot was added");
    let (last, _) = other
        .partial_append(&b, &k, &above.state, 300_000, bytes(300_000, all.len()), Lengths::default())
        .await
        .unwrap();
    other.partial_finish(&b, &k, &last, all.len() as u64).await.unwrap();
    assert!(read_all(other, &b, &k, None).await == all, "finished object differs");
}
