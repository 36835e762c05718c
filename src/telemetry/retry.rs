//! Retrying a catalog read after a transient failure: the connection broke under it (the
//! database restarted, a proxy or a failover cut it) or the server said it is shutting down or
//! starting. A read changes nothing, so running it again is safe; writes are never retried here
//! (their outcome may be unknown: the upload path settles that through its intent instead).

use std::time::Duration;

use crate::catalog::CatalogError;

/// Attempts in all, and the pause before the first retry (doubled before the next).
const ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(25);

/// Whether `e` is a failure a second attempt may not meet: a broken connection, or a
/// PostgreSQL error of class 08 (connection exception), 57P01–57P03 (shutdown, starting up),
/// 40001 or 40P01 (serialization failure, deadlock: a read may be chosen as the victim).
/// Not a pool that found no connection in time (it already waited), not a refusal.
pub fn transient(e: &CatalogError) -> bool {
    match e {
        CatalogError::Database(sqlx::Error::Io(_)) => true,
        CatalogError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "40001" | "40P01")
        }),
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has run [`ATTEMPTS`] times, pausing
/// between attempts; the caller bounds the whole in time.
pub async fn read<T, F, Fut>(op: &'static str, mut attempt: F) -> Result<T, CatalogError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CatalogError>>,
{
    let mut pause = FIRST_PAUSE;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < ATTEMPTS && transient(&e) => {
                tracing::debug!(op, error = %e, tries, "retrying a catalog read after a transient failure");
                metrics::counter!("coffer_catalog_read_retries_total", "op" => op).increment(1);
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn broken() -> CatalogError {
        CatalogError::Database(sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_meets_a_broken_connection_is_run_again() {
        let calls = AtomicU32::new(0);
        let got =
            read("get", || async { if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(broken()) } else { Ok(7) } })
                .await;
        assert_eq!(got.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn it_gives_up_after_three_attempts_with_the_last_error() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let got: Result<(), _> = read("get", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(broken())
        })
        .await;
        assert!(matches!(got, Err(CatalogError::Database(sqlx::Error::Io(_)))));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // 25 ms, then 50 ms: the pauses, on tokio's paused clock.
        assert_eq!(started.elapsed(), Duration::from_millis(75));
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_and_pool_timeouts_are_not_retried() {
        for e in [
            || CatalogError::NotFound,
            || CatalogError::AlreadyExists,
            || CatalogError::Database(sqlx::Error::PoolTimedOut),
            || CatalogError::Timeout(Duration::from_secs(1)),
            || CatalogError::Corrupt("x".into()),
        ] {
            let calls = AtomicU32::new(0);
            let got: Result<(), _> = read("get", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(e())
            })
            .await;
            assert!(got.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{:?}", e());
        }
    }
}
