//! Group commit for the SQLite catalog. SQLite has one writer at a time, and with
//! `synchronous = FULL` every commit is a WAL fsync; concurrent uploads each committing alone
//! queue on that lock and pay one fsync each (twice: intent, then row). Here one task per
//! catalog runs every write: it takes whatever writes are waiting (up to [`MAX_BATCH`]), runs
//! them one after another in one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers each writer — so an answer still means "durable".
//!
//! A write may refuse (`NotFound`, `AlreadyExists`, `QuotaExceeded`, `IntentLost`: see
//! [`CatalogError::is_refusal`]) only before it has changed anything, so a refusal needs no
//! rollback and the batch goes on. Any other failure (a database error) abandons the batch:
//! it is rolled back whole, the failed write gets its own error and every other write in it a
//! database error (none of it took effect). No savepoints, then: each would cost two more
//! statements per write, and every statement is a round trip to SQLite's worker thread.

use futures::future::BoxFuture;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::catalog::CatalogError;

/// At most this many writes share one transaction.
const MAX_BATCH: usize = 64;
/// Writes waiting for the writer task beyond this make their callers wait to hand them over.
const QUEUE: usize = 1024;

/// A write as the writer task runs it: its work, then its answer once the batch's fate is known.
trait Job: Send {
    /// Runs the work on the batch's connection; whether the batch may go on (it succeeded or
    /// refused without changing anything), and its pending answer.
    fn run<'c>(self: Box<Self>, db: &'c mut SqliteConnection) -> BoxFuture<'c, (bool, Box<dyn Answer>)>;
    /// Answers without running: the batch failed before this write's turn.
    fn fail(self: Box<Self>, why: &str);
}

/// A write's result, held until the batch commits (or fails).
trait Answer: Send {
    fn send(self: Box<Self>, batch_failed: Option<&str>);
}

struct Write<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T, CatalogError>>,
}

struct Held<T> {
    out: Result<T, CatalogError>,
    reply: oneshot::Sender<Result<T, CatalogError>>,
}

impl<F, T> Job for Write<F, T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, CatalogError>> + Send + 'static,
{
    fn run<'c>(self: Box<Self>, db: &'c mut SqliteConnection) -> BoxFuture<'c, (bool, Box<dyn Answer>)> {
        let Write { work, reply } = *self;
        Box::pin(async move {
            let out = work(db).await;
            let go_on = out.as_ref().map_or_else(CatalogError::is_refusal, |_| true);
            (go_on, Box::new(Held { out, reply }) as Box<dyn Answer>)
        })
    }

    fn fail(self: Box<Self>, why: &str) {
        let _ = self.reply.send(Err(batch_error(why)));
    }
}

impl<T: Send> Answer for Held<T> {
    fn send(self: Box<Self>, batch_failed: Option<&str>) {
        let out = match batch_failed {
            Some(why) if self.out.is_ok() || self.out.as_ref().is_err_and(CatalogError::is_refusal) => {
                Err(batch_error(why))
            }
            _ => self.out,
        };
        // The caller may have stopped waiting (its request was cancelled): nothing to tell.
        let _ = self.reply.send(out);
    }
}

/// The error every write of a failed batch gets: a database error, as the failure was.
fn batch_error(why: &str) -> CatalogError {
    CatalogError::Database(sqlx::Error::Protocol(format!("the catalog's write batch failed: {why}")))
}

/// The handle through which a catalog hands its writes to its writer task. The task ends when
/// the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("waiting", &(QUEUE - self.jobs.capacity())).finish()
    }
}

impl Writer {
    /// Starts the writer task of `pool` on the current runtime.
    pub fn start(pool: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, queue));
        Self { jobs }
    }

    /// Runs `work` in the next batch and returns its result once that batch is durable.
    pub async fn write<T, F>(&self, work: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, CatalogError>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Box::new(Write { work, reply })).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> CatalogError {
    CatalogError::Database(sqlx::Error::PoolClosed)
}

async fn run(pool: SqlitePool, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        run_batch(&pool, jobs).await;
    }
}

async fn run_batch(pool: &SqlitePool, jobs: Vec<Box<dyn Job>>) {
    let count = jobs.len();
    let mut answers: Vec<Box<dyn Answer>> = Vec::with_capacity(count);
    let mut jobs = jobs.into_iter();
    let outcome: Result<(), String> = async {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| e.to_string())?;
        for job in jobs.by_ref() {
            let (go_on, answer) = job.run(&mut tx).await;
            answers.push(answer);
            if !go_on {
                let _ = tx.rollback().await;
                return Err("another write in the same transaction failed".to_owned());
            }
        }
        tx.commit().await.map_err(|e| e.to_string())
    }
    .await;
    match outcome {
        Ok(()) => answers.into_iter().for_each(|a| a.send(None)),
        Err(why) => {
            tracing::warn!(error = %why, writes = count, "a catalog write batch failed; none of it took effect");
            answers.into_iter().for_each(|a| a.send(Some(&why)));
            jobs.for_each(|j| j.fail(&why));
        }
    }
}
