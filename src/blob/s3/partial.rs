//! Resumable uploads on S3: the partial object is an S3 multipart upload, created when the
//! resumable upload is. An append sends every whole part (`part_size`, 8 MiB by default) as it
//! fills, with parts in flight as `put` does; what is left at the end of the append goes as one
//! more part when it reaches S3's 5 MiB minimum, and otherwise into a staging object
//! (`{version}/.tus-stage-{offset}`, encrypted like every object) that the next append reads
//! back first. Unlike tusd's S3 store, a staging object is named after the offset it ends at,
//! so the previous one stays valid until the catalog has recorded the new offset: an append
//! cut off half-way leaves the acknowledged state whole. Part numbers follow the recorded
//! parts, so a retried append overwrites the parts an unacknowledged one sent.

use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::streamed::ExactBody;
use super::upload::{next_part, upload_parts};
use super::{S3BlobStore, classify};
use crate::blob::{BlobError, BlobStore, ByteStream};
use crate::domain::{BlobKey, BucketName};

/// S3's smallest part but the last.
const MIN_PART: usize = 5 * 1024 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    upload_id: String,
    /// Part number, ETag and size of each recorded part.
    parts: Vec<(i32, String, u64)>,
    /// The offset whose staging object holds the bytes after the parts, if any.
    stage: Option<u64>,
    staged: u64,
}

impl State {
    fn parse(text: &str, key: &BlobKey) -> Result<Self, BlobError> {
        serde_json::from_str(text).map_err(|e| BlobError::Corrupt(format!("{key} (partial state): {e}")))
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).expect("plain data")
    }
}

fn stage_key(key: &BlobKey, offset: u64) -> String {
    let text = key.to_string();
    let dir = text.rsplit_once('/').map_or("", |(dir, _)| dir);
    format!("{dir}/.tus-stage-{offset}")
}

/// Whether `key` (a listed physical key) is a staging object.
pub fn is_stage(key: &str) -> bool {
    key.rsplit('/').next().is_some_and(|n| n.strip_prefix(".tus-stage-").is_some_and(|o| o.parse::<u64>().is_ok()))
}

impl S3BlobStore {
    pub(super) async fn begin_partial(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        content_type: &str,
    ) -> Result<String, BlobError> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(bucket.as_str())
            .key(key.to_string())
            .content_type(content_type);
        if let Some((sse, kms)) = self.sse() {
            create = create.server_side_encryption(sse).set_ssekms_key_id(kms);
        }
        let out = create.send().await.map_err(|e| classify(e, bucket))?;
        let upload_id = out
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| BlobError::Unavailable("CreateMultipartUpload returned no upload id".into()))?;
        Ok(State { upload_id, ..State::default() }.encode())
    }

    pub(super) async fn append_partial(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<(String, u64), BlobError> {
        let mut state = State::parse(state, key)?;
        let recorded: u64 = state.parts.iter().map(|p| p.2).sum::<u64>() + state.staged;
        if recorded != offset {
            return Err(BlobError::Corrupt(format!("{key} (partial): holds {recorded} bytes, {offset} recorded")));
        }
        let mut carry = BytesMut::new();
        if let Some(at) = state.stage {
            carry.extend_from_slice(&self.read_stage(bucket, key, at).await?);
        }
        let part_size = self.settings.part_size.max(MIN_PART);
        let object = key.to_string();
        let appended = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = appended.clone();
        let body: ByteStream = Box::pin(body.fuse().inspect(move |c| {
            if let Ok(c) = c {
                counter.fetch_add(c.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        let first = state.parts.len() as i32 + 1;
        let (sent, rest) = match length {
            Some(length) => {
                let whole = Whole { upload_id: &state.upload_id, first, part_size };
                self.stream_whole_parts(bucket, &object, whole, carry, body, length).await?
            }
            None => {
                // Whole parts while the body lasts (each in a buffer of its own, as a plain
                // upload's); what is left after the last one goes to `rx`.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let pending = (!carry.is_empty()).then(|| carry.freeze());
                let whole = futures::stream::try_unfold(
                    (body, pending, Some(tx)),
                    move |(mut body, mut pending, tx)| async move {
                        match next_part(&mut body, part_size, part_size, &mut pending).await? {
                            Some(part) if part.len() == part_size => Ok(Some((part, (body, pending, tx)))),
                            rest => {
                                if let Some(tx) = tx {
                                    let _ = tx.send(rest.map(BytesMut::from).unwrap_or_default());
                                }
                                Ok(None)
                            }
                        }
                    },
                );
                let (sent, _) = upload_parts(self, bucket, &object, &state.upload_id, first, whole).await?;
                let rest =
                    rx.await.map_err(|_| BlobError::Unavailable("the body ended without its remainder".into()))?;
                (sent, rest)
            }
        };
        record(&mut state, sent, part_size as u64);
        let appended = appended.load(std::sync::atomic::Ordering::Relaxed);
        let end = offset + appended;
        state.stage = None;
        state.staged = 0;
        if rest.len() >= MIN_PART {
            let len = rest.len() as u64;
            let number = state.parts.len() as i32 + 1;
            let one = futures::stream::once(async move { Ok(rest.freeze()) });
            let (sent, _) = upload_parts(self, bucket, &object, &state.upload_id, number, one).await?;
            record(&mut state, sent, len);
        } else if !rest.is_empty() {
            self.put_stage(bucket, &stage_key(key, end), rest.freeze()).await?;
            state.stage = Some(end);
            state.staged = end - state.parts.iter().map(|p| p.2).sum::<u64>();
        }
        Ok((state.encode(), appended))
    }

    pub(super) async fn finish_partial(
        &self,
        bucket: &BucketName,
        key: &BlobKey,
        state: &str,
        offset: u64,
    ) -> Result<(), BlobError> {
        let mut state = State::parse(state, key)?;
        let recorded: u64 = state.parts.iter().map(|p| p.2).sum::<u64>() + state.staged;
        if recorded != offset {
            return Err(BlobError::Corrupt(format!("{key} (partial): holds {recorded} bytes, {offset} recorded")));
        }
        let object = key.to_string();
        let finished = async {
            let last = match state.stage {
                Some(at) => self.read_stage(bucket, key, at).await?,
                None => Bytes::new(),
            };
            // An empty object is one empty part.
            if !last.is_empty() || state.parts.is_empty() {
                let len = last.len() as u64;
                let number = state.parts.len() as i32 + 1;
                let one = futures::stream::once(async move { Ok(last) });
                let (sent, _) = upload_parts(self, bucket, &object, &state.upload_id, number, one).await?;
                record(&mut state, sent, len);
            }
            self.complete(bucket, &object, &state).await
        };
        match finished.await {
            Ok(()) => {}
            // Finished before (the process died before the catalog recorded it): the multipart
            // upload (or its staging object) is gone and the object is there.
            Err(BlobError::NotFound) if BlobStore::exists(self, bucket, key).await? => {}
            Err(e) => return Err(e),
        }
        if let Some(at) = state.stage {
            let _ = self.client.delete_object().bucket(bucket.as_str()).key(stage_key(key, at)).send().await;
        }
        Ok(())
    }

    /// With the body's length known, each whole part goes to S3 as its bytes arrive (the
    /// part's length is known before its first byte), instead of being received whole first:
    /// the upload to S3 overlaps the client's. Returns the parts sent and what is left after
    /// the last whole part. A part streamed once cannot be retried by the SDK: a transient
    /// error fails the append (unacknowledged; the client's retry resends it). A body that
    /// ends early (the client went away: the service's intake ends it quietly) keeps what
    /// arrived: the part being streamed is abandoned and its bytes become the rest.
    async fn stream_whole_parts(
        &self,
        bucket: &BucketName,
        object: &str,
        whole: Whole<'_>,
        carry: BytesMut,
        mut body: ByteStream,
        length: u64,
    ) -> Result<(Vec<CompletedPart>, BytesMut), BlobError> {
        let part_size = whole.part_size;
        let mut pending: Option<Bytes> = (!carry.is_empty()).then(|| carry.freeze());
        let mut left = pending.as_ref().map_or(0, |c| c.len() as u64) + length;
        let mut requests = Vec::new();
        let mut number = whole.first;
        let mut rest = BytesMut::new();
        'parts: while left >= part_size as u64 {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
            let feed: ByteStream =
                Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }));
            let (part, _) = ExactBody::new(feed, part_size as u64);
            let request = self
                .client
                .upload_part()
                .bucket(bucket.as_str())
                .key(object)
                .upload_id(whole.upload_id)
                .part_number(number)
                .content_length(part_size as i64)
                .body(SdkBody::from_body_1_x(part))
                .send();
            let n = number;
            let request = tokio::spawn(async move { request.await.map(|out| (n, out.e_tag().map(str::to_owned))) });
            let mut need = part_size;
            // The part's bytes so far (shared, not copied), should the body end early.
            let mut sent = Vec::new();
            while need > 0 {
                let mut chunk = match pending.take() {
                    Some(chunk) => chunk,
                    None => match body.next().await {
                        Some(Ok(chunk)) => chunk,
                        Some(Err(e)) => return Err(BlobError::Body(e)),
                        None => {
                            drop(tx);
                            let _ = request.await;
                            sent.iter().for_each(|c: &Bytes| rest.extend_from_slice(c));
                            break 'parts;
                        }
                    },
                };
                if chunk.len() > need {
                    pending = Some(chunk.split_off(need));
                }
                need -= chunk.len();
                sent.push(chunk.clone());
                if tx.send(Ok(chunk)).await.is_err() {
                    // The request ended before its body: its error says why.
                    drop(tx);
                    return Err(match request.await {
                        Ok(Err(e)) => super::classify_streamed(e, bucket),
                        _ => BlobError::Unavailable(format!("part {n} ended before its body")),
                    });
                }
            }
            requests.push(request);
            left -= part_size as u64;
            number += 1;
        }
        if let Some(p) = pending.take() {
            rest.extend_from_slice(&p);
        }
        loop {
            if rest.len() as u64 > left {
                return Err(BlobError::Body(std::io::Error::other("the body is longer than announced")));
            }
            match body.next().await {
                Some(chunk) => rest.extend_from_slice(&chunk.map_err(BlobError::Body)?),
                None => break,
            }
        }
        let mut done = Vec::new();
        for request in requests {
            let (n, etag) = request
                .await
                .map_err(|e| BlobError::Unavailable(e.to_string()))?
                .map_err(|e| super::classify_streamed(e, bucket))?;
            done.push(CompletedPart::builder().part_number(n).set_e_tag(etag).build());
        }
        Ok((done, rest))
    }

    async fn read_stage(&self, bucket: &BucketName, key: &BlobKey, at: u64) -> Result<Bytes, BlobError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket.as_str())
            .key(stage_key(key, at))
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(out.body.collect().await.map_err(|e| BlobError::Unavailable(e.to_string()))?.into_bytes())
    }

    async fn put_stage(&self, bucket: &BucketName, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let mut req = self.client.put_object().bucket(bucket.as_str()).key(key).body(SdkBody::from(bytes));
        if let Some((sse, kms)) = self.sse() {
            req = req.server_side_encryption(sse).set_ssekms_key_id(kms);
        }
        req.customize().disable_payload_signing().send().await.map_err(|e| classify(e, bucket))?;
        Ok(())
    }

    async fn complete(&self, bucket: &BucketName, object: &str, state: &State) -> Result<(), BlobError> {
        let parts = state
            .parts
            .iter()
            .map(|(n, etag, _)| CompletedPart::builder().part_number(*n).e_tag(etag).build())
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(bucket.as_str())
            .key(object)
            .upload_id(&state.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| classify(e, bucket))?;
        Ok(())
    }

    pub(super) async fn release_partial(&self, bucket: &BucketName, key: &BlobKey, old: &str, new: &str) {
        let (Ok(old), Ok(new)) = (State::parse(old, key), State::parse(new, key)) else { return };
        if let Some(at) = old.stage.filter(|at| Some(*at) != new.stage) {
            let stage = stage_key(key, at);
            if let Err(e) = self.client.delete_object().bucket(bucket.as_str()).key(&stage).send().await {
                tracing::warn!(error = %aws_sdk_s3::error::DisplayErrorContext(&e), key = stage, "could not remove a staging object; reconcile will");
            }
        }
    }

    pub(super) async fn abort_partial(&self, bucket: &BucketName, key: &BlobKey, state: &str) -> Result<(), BlobError> {
        let state = State::parse(state, key)?;
        match self
            .client
            .abort_multipart_upload()
            .bucket(bucket.as_str())
            .key(key.to_string())
            .upload_id(&state.upload_id)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => match classify(e, bucket) {
                BlobError::NotFound => {}
                other => return Err(other),
            },
        }
        if let Some(at) = state.stage {
            match self.client.delete_object().bucket(bucket.as_str()).key(stage_key(key, at)).send().await {
                Ok(_) => {}
                Err(e) => match classify(e, bucket) {
                    BlobError::NotFound => {}
                    other => return Err(other),
                },
            }
        }
        Ok(())
    }
}

/// Where the whole parts of an append go: the multipart upload, the first part's number, the
/// part size.
struct Whole<'a> {
    upload_id: &'a str,
    first: i32,
    part_size: usize,
}

/// Adds the parts just sent to the state, in part-number order; each but a final short one is
/// `size` bytes.
fn record(state: &mut State, sent: Vec<CompletedPart>, size: u64) {
    for part in sent {
        let n = part.part_number().unwrap_or_default();
        state.parts.push((n, part.e_tag().unwrap_or_default().to_owned(), size));
    }
    state.parts.sort_by_key(|p| p.0);
}
