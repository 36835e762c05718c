//! Drops the `coffer_test_*` databases and `coffer_t_*` login roles earlier test runs left on
//! the test PostgreSQL server (`COFFER_TEST_PG_URL`). Used by `scripts/test`.

use sqlx::Connection;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), sqlx::Error> {
    let url =
        std::env::var("COFFER_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'coffer\\_test\\_%'")
            .fetch_all(&mut conn)
            .await?;
    for name in &names {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await?;
    }
    let roles: Vec<String> = sqlx::query_scalar("SELECT rolname FROM pg_roles WHERE rolname LIKE 'coffer\\_t\\_%'")
        .fetch_all(&mut conn)
        .await?;
    for role in &roles {
        sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\"")).execute(&mut conn).await?;
    }
    if !names.is_empty() || !roles.is_empty() {
        println!("dropped {} leftover test databases and {} test roles", names.len(), roles.len());
    }
    Ok(())
}
