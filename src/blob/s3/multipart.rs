//! Multipart uploads nobody will complete: a writer killed mid-upload (or an abort that could
//! not reach S3) leaves one holding its parts, invisible to listings and billed until aborted.
//! Reconcile lists them and aborts the ones no upload in progress owns.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;

use super::errors::classify;
use crate::blob::{BlobError, UnfinishedWrite};
use crate::domain::BucketName;

/// Multipart uploads in `bucket` initiated more than `older_than` ago.
pub async fn unfinished(
    client: &Client,
    bucket: &BucketName,
    older_than: Duration,
) -> Result<Vec<UnfinishedWrite>, BlobError> {
    let cutoff = chrono::Utc::now().timestamp() - older_than.as_secs() as i64;
    let mut found = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    loop {
        let page = client
            .list_multipart_uploads()
            .bucket(bucket.as_str())
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            // A server without the API (s3s-fs) has no multipart uploads to list: nothing to do.
            Err(e)
                if e.code() == Some("NotImplemented")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 501) =>
            {
                tracing::debug!(%bucket, "the server does not list multipart uploads");
                return Ok(found);
            }
            Err(e) => return Err(classify(e, bucket)),
        };
        for upload in page.uploads() {
            let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else { continue };
            if upload.initiated().is_some_and(|t| t.secs() <= cutoff) {
                found.push(UnfinishedWrite { key: key.to_owned(), id: id.to_owned() });
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(found);
        }
        let next = (page.next_key_marker().map(str::to_owned), page.next_upload_id_marker().map(str::to_owned));
        if next == (key_marker.clone(), id_marker.clone()) || next.0.is_none() {
            return Ok(found);
        }
        (key_marker, id_marker) = next;
    }
}

/// Aborts one: `false` when it is already gone (completed or aborted meanwhile). Garage 2.5
/// also lists uploads whose creation was cut off by the client mid-request yet answers
/// NoSuchUpload for them: they hold no parts, and only `false` is left to say.
pub async fn abort(client: &Client, bucket: &BucketName, write: &UnfinishedWrite) -> Result<bool, BlobError> {
    let sent =
        client.abort_multipart_upload().bucket(bucket.as_str()).key(&write.key).upload_id(&write.id).send().await;
    match sent.map_err(|e| classify(e, bucket)) {
        Ok(_) => Ok(true),
        Err(BlobError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}
