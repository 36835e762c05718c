//! Benchmark: upload and download of a large file (default 256 MiB) through coffer on the S3
//! store, against a direct aws-sdk PUT/GET of the same file to the same server, in one run.
//!
//! `scripts/bench-s3 [SIZE_MIB]` starts s3s-fs and runs this with COFFER_TEST_S3_ENDPOINT set.

use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use coffer::auth::TokenIssuer;
use coffer::blob::{BlobStore, S3BlobStore};
use coffer::config::{Config, Overrides, Secret, StorageEngine};
use coffer::domain::TenantId;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

const SECRET: &str = "bench-secret-bench-secret-bench-secret-00";
/// Reads of the input file, as `coffer upload` makes them (tokio's default, 4 KiB, would make
/// every read a trip to the blocking pool and measure the client instead of the upload).
const READ: usize = 256 * 1024;

#[tokio::main]
async fn main() {
    let size_mib: usize = std::env::args().nth(1).map(|s| s.parse().expect("size in MiB")).unwrap_or(256);
    let endpoint = std::env::var("COFFER_TEST_S3_ENDPOINT").expect("COFFER_TEST_S3_ENDPOINT (use scripts/bench-s3)");
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input.bin");
    let mut file = tokio::fs::File::create(&input).await.unwrap();
    let mut block = vec![0u8; 1 << 20];
    for i in 0..size_mib {
        block.iter_mut().enumerate().for_each(|(j, b)| *b = (i * 31 + j * 7) as u8);
        file.write_all(&block).await.unwrap();
    }
    file.sync_all().await.unwrap();

    let part_size = std::env::var("COFFER_S3_PART_SIZE").unwrap_or_else(|_| "8 MiB".into());
    let vars = [
        ("COFFER_S3_PART_SIZE", part_size.as_str()),
        // Large enough for this file: an upload announcing its length is one streamed PUT.
        ("COFFER_S3_SINGLE_PUT_MAX", "5 GiB"),
        ("COFFER_STORAGE", "s3"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "coffer-test-access"),
        ("AWS_SECRET_ACCESS_KEY", "coffer-test-secret-key"),
        ("AWS_S3_DOCUMENTS_BUCKET", "bench-documents"),
        ("AWS_S3_MEDIA_BUCKET", "bench-media"),
        ("COFFER_JWT_SECRET", SECRET),
        ("COFFER_LOG", "warn"),
    ];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let overrides = Overrides {
        addr: Some(addr),
        data_dir: Some(work.path().join("data")),
        public_url: Some(format!("http://{addr}").parse().unwrap()),
        database_url: None,
    };
    let config =
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()), &overrides).unwrap();
    let StorageEngine::S3(settings) = &config.storage else { unreachable!() };
    let store = S3BlobStore::new(settings.as_ref().clone()).await;
    for bucket in [&config.documents_bucket, &config.media_bucket] {
        store.ensure_bucket(bucket).await.unwrap();
    }
    let state = coffer::startup::app_state(&config).await.unwrap();
    tokio::spawn(coffer::server::serve_on(listener, state, None, std::future::pending()));
    let token = TokenIssuer::new(&Secret::new(SECRET)).issue(
        &TenantId::parse("bench").unwrap(),
        std::time::Duration::from_secs(3600),
        false,
    );
    let http = reqwest::Client::new();

    // Direct: one PutObject streamed from the file, one GetObject read to the end.
    let t = Instant::now();
    store
        .client()
        .put_object()
        .bucket("bench-documents")
        .key("direct/big.bin")
        .body(ByteStream::from_path(&input).await.unwrap())
        .send()
        .await
        .unwrap();
    let direct_put = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out = store.client().get_object().bucket("bench-documents").key("direct/big.bin").send().await.unwrap();
    // Chunk by chunk as the SDK yields them (an AsyncRead copied through an 8 KiB buffer
    // would measure the copy).
    let mut body = out.body;
    let mut got = 0u64;
    while let Some(chunk) = body.try_next().await.unwrap() {
        got += chunk.len() as u64;
    }
    let direct_get = t.elapsed().as_secs_f64();
    assert_eq!(got as usize, size_mib << 20);

    // The AWS SDK for Python's managed upload, same part size and parts in flight (when a
    // Python with boto3 is given: scripts/bench-s3 passes moto's).
    let boto3 = match std::env::var("COFFER_TEST_PYTHON") {
        Ok(python) => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench/boto3_upload.py");
            let out = tokio::process::Command::new(python)
                .args([script, &endpoint, "bench-documents", "boto3/big.bin"])
                .arg(&input)
                .args([settings.part_size.to_string(), settings.parts_in_flight.to_string()])
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
            Some(String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().unwrap())
        }
        Err(_) => None,
    };

    // coffer's multipart uploader alone (no HTTP, no catalog): separates the server's
    // multipart cost from coffer's own.
    let t = Instant::now();
    let key = coffer::domain::BlobKey::new(
        coffer::domain::ObjectKey::parse("tenant-bench/exports/alone.bin").unwrap(),
        coffer::domain::BlobVersion::generate(),
    );
    let file_stream: coffer::blob::ByteStream =
        Box::pin(tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::open(&input).await.unwrap(), READ));
    store.put(&config.documents_bucket, &key, "application/octet-stream", file_stream, None).await.unwrap();
    let multipart_alone = t.elapsed().as_secs_f64();

    // Through coffer: streamed HTTP upload (multipart to S3), streamed download.
    let t = Instant::now();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::open(&input).await.unwrap(),
        READ,
    ));
    let res = http
        .post(format!("http://{addr}/v1/files?category=exports&filename=big.bin"))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let coffer_put = t.elapsed().as_secs_f64();

    // The same with its length announced (Content-Length): one streamed PutObject.
    let t = Instant::now();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::open(&input).await.unwrap(),
        READ,
    ));
    let res = http
        .post(format!("http://{addr}/v1/files?category=exports&filename=big.bin&overwrite=true"))
        .bearer_auth(&token)
        .header(reqwest::header::CONTENT_LENGTH, (size_mib << 20).to_string())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let coffer_put_known = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let res = http
        .get(format!("http://{addr}/v1/files/tenant-bench/exports/big.bin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let mut n = 0usize;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    let coffer_get = t.elapsed().as_secs_f64();
    assert_eq!(n, size_mib << 20);

    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0);
    let mib = size_mib as f64;
    println!("size: {size_mib} MiB, server s3s-fs at {endpoint}");
    println!("| operation | seconds | MiB/s | vs direct |");
    println!("|---|---|---|---|");
    println!("| direct aws-sdk PutObject | {direct_put:.2} | {:.0} | 1.00 |", mib / direct_put);
    if let Some(b) = boto3 {
        println!(
            "| boto3 upload_file ({part_size} parts, {} in flight) | {b:.2} | {:.0} | {:.2}x |",
            settings.parts_in_flight,
            mib / b,
            b / direct_put
        );
    }
    println!(
        "| coffer's S3 uploader alone ({part_size} parts, {} in flight) | {multipart_alone:.2} | {:.0} | {:.2}x |",
        settings.parts_in_flight,
        mib / multipart_alone,
        multipart_alone / direct_put
    );
    println!(
        "| coffer upload, chunked (HTTP → multipart, sha256) | {coffer_put:.2} | {:.0} | {:.2}x |",
        mib / coffer_put,
        coffer_put / direct_put
    );
    println!(
        "| coffer upload, length announced (HTTP → one streamed PutObject, sha256) | {coffer_put_known:.2} | {:.0} | {:.2}x |",
        mib / coffer_put_known,
        coffer_put_known / direct_put
    );
    println!("| direct aws-sdk GetObject | {direct_get:.2} | {:.0} | 1.00 |", mib / direct_get);
    println!(
        "| coffer download (HTTP ← GetObject) | {coffer_get:.2} | {:.0} | {:.2}x |",
        mib / coffer_get,
        coffer_get / direct_get
    );
    if let Some(b) = boto3 {
        println!(
            "throughput against boto3's multipart upload: uploader alone {:.2}x, through coffer {:.2}x, \
             through coffer with the length announced {:.2}x",
            b / multipart_alone,
            b / coffer_put,
            b / coffer_put_known
        );
    }
    println!("peak RSS of this process (client, coffer and SDK together): {:.1} MiB", peak / 1024.0);
}
