//! Benchmark: catalog write throughput on one PostgreSQL with 1, 2 and 3 coffer instances, each
//! with its own connection pools (as separate processes would have), each running 16 writers
//! that record an upload's intent and commit its row, as every upload does.
//!
//! `cargo run --release --example bench-catalog -- [seconds per run, default 10]`.
//! PostgreSQL comes from COFFER_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres);
//! a fresh database is created and dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer::catalog::{Catalog, FileRecord, PendingUpload, PostgresCatalog, Quota};
use coffer::domain::{BlobKey, BlobVersion, BucketName, ObjectKey};
use sqlx::Connection;

const WRITERS: usize = 16;
const TENANTS: usize = 64;

fn record(run: usize, tenant: usize, writer: usize, n: usize) -> FileRecord {
    let key = ObjectKey::parse(&format!("tenant-t{tenant}/reports/r{run}-w{writer}-{n}.bin")).expect("key");
    FileRecord {
        original_filename: key.filename().to_string(),
        bucket: BucketName::parse("bench-documents").expect("bucket"),
        blob: BlobKey::new(key.clone(), BlobVersion::generate()),
        key,
        content_type: "application/octet-stream".into(),
        size: 4096,
        sha256: "00".repeat(32),
        created_at: chrono::Utc::now(),
    }
}

/// One instance's writers for `secs`; returns each commit's latency.
async fn instance(catalog: Arc<PostgresCatalog>, run: usize, id: usize, secs: u64) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let catalog = catalog.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let r = record(run, (id * WRITERS + w) % TENANTS, id * WRITERS + w, n);
                let t = Instant::now();
                let pending = PendingUpload { blob: r.blob_ref(), started_at: r.created_at, alive_until: r.created_at };
                catalog.record_intent(&pending).await.expect("intent");
                catalog.commit_upload(&r, false, &Quota::default()).await.expect("commit");
                latencies.push(t.elapsed());
                n += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer"));
    }
    all
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args().nth(1).map(|s| s.parse().expect("seconds")).unwrap_or(10);
    let admin =
        std::env::var("COFFER_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("coffer_bench_catalog_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut conn).await.expect("create database");
    let url = format!("{}/{db}", admin.rsplit_once('/').expect("a database in the URL").0);

    println!("| instances | writers | uploads committed / s | p50 (ms) | p99 (ms) |");
    println!("|---|---|---|---|---|");
    for n in 1..=3 {
        let mut catalogs = Vec::new();
        for _ in 0..n {
            catalogs.push(Arc::new(PostgresCatalog::connect(&url, None).await.expect("catalog")));
        }
        let runs: Vec<_> =
            catalogs.iter().enumerate().map(|(i, c)| tokio::spawn(instance(c.clone(), n, i, secs))).collect();
        let mut latencies = Vec::new();
        for r in runs {
            latencies.extend(r.await.expect("instance"));
        }
        latencies.sort();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
        println!(
            "| {n} | {} | {:.0} | {:.1} | {:.1} |",
            n * WRITERS,
            latencies.len() as f64 / secs as f64,
            pct(0.5),
            pct(0.99)
        );
    }
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)")).execute(&mut conn).await.expect("drop database");
}
