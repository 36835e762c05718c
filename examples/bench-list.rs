//! Benchmark: list-page latency of the catalog at several sizes of one tenant, page 1 against
//! the deepest page, for both sort orders, on SQLite and PostgreSQL.
//!
//! `cargo run --release --example bench-list -- [sizes]` (default 10000,100000,1000000).
//! PostgreSQL comes from COFFER_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres);
//! a fresh database is created and dropped. `COFFER_BENCH_CATALOGS` (default `sqlite,postgres`)
//! picks the engines (10 M rows on PostgreSQL alone: `COFFER_BENCH_CATALOGS=postgres … 10000000`).

use std::time::{Duration, Instant};

use coffer::catalog::{Catalog, Cursor, ListQuery, PostgresCatalog, SortOrder, SqliteCatalog};
use coffer::domain::TenantId;
use sqlx::Connection;

const LIMIT: u32 = 100;
const SAMPLES: usize = 30;

/// Rows of tenant `bench`, file i created at i µs, plus the same number for tenant `other`.
fn seed_sql(n: u64, postgres: bool) -> String {
    let series = if postgres {
        format!("generate_series(1, {n}) AS s(i)")
    } else {
        format!("(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s")
    };
    let pad = if postgres { "lpad(i::text, 8, '0')" } else { "printf('%08d', i)" };
    let mut sql = String::new();
    for tenant in ["bench", "other"] {
        sql.push_str(&format!(
            "INSERT INTO files (key, tenant_id, category, filename, original_filename, bucket, blob_key, content_type, size, sha256, created_at)
             SELECT 'tenant-{tenant}/reports/f' || {pad} || '.pdf', '{tenant}', 'reports', 'f' || {pad} || '.pdf', 'f.pdf',
                    'carbon-connect-dev-documents', 'tenant-{tenant}/reports/0198' || {pad} || '00000000000000000000/f' || {pad} || '.pdf',
                    'application/pdf', 1000, 'x', i
             FROM {series};\n"
        ));
    }
    sql
}

fn key(i: u64) -> String {
    format!("tenant-bench/reports/f{i:08}.pdf")
}

async fn median(catalog: &dyn Catalog, q: &ListQuery) -> Duration {
    let tenant = TenantId::parse("bench").unwrap();
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let page = catalog.list(&tenant, q).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(page.files.len(), LIMIT as usize);
    }
    times.sort();
    times[SAMPLES / 2]
}

async fn measure(engine: &str, catalog: &dyn Catalog, n: u64) {
    for sort in [SortOrder::Newest, SortOrder::Name] {
        let first = ListQuery { category: None, prefix: None, sort, limit: LIMIT, cursor: None };
        // The cursor of the row just before the last page: as deep as the table goes.
        let deep_cursor = match sort {
            SortOrder::Newest => Cursor::Newest { t: (LIMIT + 1) as i64, k: key(u64::from(LIMIT) + 1) },
            SortOrder::Name => {
                let i = n - u64::from(LIMIT);
                Cursor::Name { f: format!("f{i:08}.pdf"), k: key(i) }
            }
        };
        let deep = ListQuery { cursor: Some(deep_cursor), ..first.clone() };
        let (a, b) = (median(catalog, &first).await, median(catalog, &deep).await);
        println!(
            "| {engine} | {n} | {sort:?} | {:.3} | {:.3} | {} | {:.2} |",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            n / u64::from(LIMIT) - 1,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.parse().expect("sizes are numbers"))
        .collect();
    println!("| catalog | files in tenant | sort | page 1 (ms) | deepest page (ms) | pages deep | deep / first |");
    println!("|---|---|---|---|---|---|---|");
    let admin =
        std::env::var("COFFER_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let engines = std::env::var("COFFER_BENCH_CATALOGS").unwrap_or_else(|_| "sqlite,postgres".into());
    for &n in &sizes {
        if engines.split(',').any(|e| e == "sqlite") {
            bench_sqlite(n).await;
        }
        if engines.split(',').any(|e| e == "postgres") {
            bench_postgres(&admin, n).await;
        }
    }
}

async fn bench_sqlite(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = SqliteCatalog::connect(&url).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(&seed_sql(n, false)).execute(&mut conn).await.unwrap();
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    measure("sqlite", &sqlite, n).await;
}

async fn bench_postgres(admin: &str, n: u64) {
    let name = format!("coffer_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin_conn).await.unwrap();
    let mut db_url = url::Url::parse(admin).unwrap();
    db_url.set_path(&format!("/{name}"));
    let pg = PostgresCatalog::connect(db_url.as_str(), None).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(db_url.as_str()).await.unwrap();
    sqlx::raw_sql(&seed_sql(n, true)).execute(&mut conn).await.unwrap();
    sqlx::query("ANALYZE files").execute(&mut conn).await.unwrap();
    measure("postgres", &pg, n).await;
    drop(pg);
    drop(conn);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut admin_conn).await.unwrap();
}
