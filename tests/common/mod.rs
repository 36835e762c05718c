//! Shared by the integration tests: fresh PostgreSQL databases.
#![allow(dead_code)]

use sqlx::Connection;

/// The server tests create their databases on (the test script makes sure one answers).
pub fn pg_admin_url() -> String {
    std::env::var("COFFER_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database for one test and returns its URL. The test script drops
/// leftovers (`coffer_test_*`) before each run.
pub async fn fresh_pg_database() -> String {
    let admin = pg_admin_url();
    let name = format!("coffer_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL must answer (see scripts/test)");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Credentials of the S3 test servers started by scripts/test.
pub const S3_ACCESS_KEY: &str = "coffer-test-access";
pub const S3_SECRET_KEY: &str = "coffer-test-secret-key";
