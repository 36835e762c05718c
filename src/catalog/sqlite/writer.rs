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
//!
//! A lease (a resumable upload's lock, and its renewals) need not survive a power loss: losing
//! it frees the upload, and whoever held it died with the machine. A batch of leases only
//! commits on a connection of its own opened with `synchronous = NORMAL`: its WAL frames are
//! written, not fsynced; the next durable commit's fsync covers them, and a kill -9 of the
//! process loses nothing either way. (Switching a pooled connection to NORMAL and back cost two
//! more statements per lease.) A lease changes the database with one statement at most, so a
//! lease alone in its batch runs as SQLite's own autocommit transaction, without `BEGIN` and
//! `COMMIT`: two round trips fewer for the lock every resumable append takes.
//!
//! A write that is a fixed script of statements ([`Script`]) runs in one round trip, however
//! many statements it has; alone in a durable batch, with `BEGIN IMMEDIATE` and `COMMIT` in
//! that same trip. Each round trip to the connection's worker thread costs two thread
//! wake-ups (about 0.1 ms on a small virtual machine): a resumable append's record, three
//! statements in a transaction of its own, took five trips before and one now, 0.15–0.2 ms
//! less per append (BENCHMARKS.md, "one round trip per record").

use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
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
    /// Runs the work alone in a durable batch: in a transaction of its own, committed (or not,
    /// when it fails), keeping its answer in `answers` once it has one.
    fn run_committed<'c>(
        self: Box<Self>,
        db: &'c mut PoolConnection<Sqlite>,
        answers: &'c mut Vec<Box<dyn Answer>>,
    ) -> BoxFuture<'c, Result<(), String>>;
    /// Answers without running: the batch failed before this write's turn.
    fn fail(self: Box<Self>, why: &str);
    /// Whether its answer must wait for an fsync (all but leases).
    fn durable(&self) -> bool;
}

/// A write's result, held until the batch commits (or fails).
trait Answer: Send {
    fn send(self: Box<Self>, batch_failed: Option<&str>);
}

struct Write<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T, CatalogError>>,
    durable: bool,
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
        let Write { work, reply, .. } = *self;
        Box::pin(async move {
            let out = work(db).await;
            let go_on = out.as_ref().map_or_else(CatalogError::is_refusal, |_| true);
            (go_on, Box::new(Held { out, reply }) as Box<dyn Answer>)
        })
    }

    fn run_committed<'c>(
        self: Box<Self>,
        db: &'c mut PoolConnection<Sqlite>,
        answers: &'c mut Vec<Box<dyn Answer>>,
    ) -> BoxFuture<'c, Result<(), String>> {
        Box::pin(async move {
            let mut jobs = vec![self as Box<dyn Job>].into_iter();
            let outcome = run_jobs(db, jobs.by_ref(), answers).await;
            if let Err(why) = &outcome {
                jobs.for_each(|j| j.fail(why));
            }
            outcome
        })
    }

    fn fail(self: Box<Self>, why: &str) {
        let _ = self.reply.send(Err(batch_error(why)));
    }

    fn durable(&self) -> bool {
        self.durable
    }
}

/// A durable write as one SQLite script: statements that share their arguments (`$N`), run
/// in one round trip to the connection's worker thread. Its effects must not depend on
/// answers the caller reads between statements: a statement that must only act when an
/// earlier one did says so in SQL (`changes()`, a `RETURNING` the caller counts). Made by
/// [`script!`], which writes the transaction around it at compile time.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    /// The statements, as they run inside a batch's transaction.
    pub batched: &'static str,
    /// The same statements between `BEGIN IMMEDIATE` and `COMMIT`, as they run alone.
    pub alone: &'static str,
}

/// A [`Script`] of statements given as string literals (or macros that expand to them),
/// joined.
macro_rules! script {
    ($($sql:expr),+ $(,)?) => {
        $crate::catalog::sqlite::writer::Script {
            batched: concat!($($sql),+),
            alone: concat!("BEGIN IMMEDIATE;\n", $($sql,)+ ";\nCOMMIT"),
        }
    };
}
pub(super) use script;

/// The arguments of a [`Script`], bound to whichever of its two texts runs.
pub type Bind = Box<
    dyn FnOnce(Query<'static, Sqlite, SqliteArguments<'static>>) -> Query<'static, Sqlite, SqliteArguments<'static>>
        + Send,
>;

struct ScriptWrite<T> {
    script: Script,
    bind: Bind,
    /// The answer, from the rows the script returned; it cannot fail (a script whose rows
    /// could be wrong must say so in SQL, before it has changed anything).
    read: fn(&[SqliteRow]) -> T,
    reply: oneshot::Sender<Result<T, CatalogError>>,
}

impl<T: Send + 'static> Job for ScriptWrite<T> {
    fn run<'c>(self: Box<Self>, db: &'c mut SqliteConnection) -> BoxFuture<'c, (bool, Box<dyn Answer>)> {
        let ScriptWrite { script, bind, read, reply } = *self;
        Box::pin(async move {
            let out = bind(sqlx::query(script.batched)).fetch_all(db).await;
            let out = out.map(|rows| read(&rows)).map_err(CatalogError::from);
            (out.is_ok(), Box::new(Held { out, reply }) as Box<dyn Answer>)
        })
    }

    fn run_committed<'c>(
        self: Box<Self>,
        db: &'c mut PoolConnection<Sqlite>,
        answers: &'c mut Vec<Box<dyn Answer>>,
    ) -> BoxFuture<'c, Result<(), String>> {
        let ScriptWrite { script, bind, read, reply } = *self;
        Box::pin(async move {
            match bind(sqlx::query(script.alone)).fetch_all(&mut **db).await {
                Ok(rows) => {
                    answers.push(Box::new(Held { out: Ok(read(&rows)), reply }));
                    Ok(())
                }
                Err(e) => {
                    let why = e.to_string();
                    abandon_raw_transaction(db).await;
                    answers.push(Box::new(Held { out: Err(e.into()), reply }));
                    Err(why)
                }
            }
        })
    }

    fn fail(self: Box<Self>, why: &str) {
        let _ = self.reply.send(Err(batch_error(why)));
    }

    fn durable(&self) -> bool {
        true
    }
}

/// Rolls back what a script's own `BEGIN IMMEDIATE` began, when it stopped at a failing
/// statement (if it failed at `BEGIN` or `COMMIT`, nothing is open and SQLite says so). A
/// connection that cannot roll back is closed rather than pooled with a transaction open.
async fn abandon_raw_transaction(db: &mut PoolConnection<Sqlite>) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(&mut **db).await
        && !e.to_string().contains("no transaction is active")
    {
        tracing::warn!(error = %e, "could not roll back a failed catalog write; closing its connection");
        db.close_on_drop();
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
    /// Starts the writer task of `pool` on the current runtime; batches of leases run on a
    /// connection of their own, opened with `options` but `synchronous = NORMAL`.
    pub fn start(pool: SqlitePool, options: &SqliteConnectOptions) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let leases = Leases { options: options.clone().synchronous(SqliteSynchronous::Normal), conn: None };
        tokio::spawn(run(pool, leases, queue));
        Self { jobs }
    }

    /// Runs `work` in the next batch and returns its result once that batch is durable.
    pub async fn write<T, F>(&self, work: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, CatalogError>> + Send + 'static,
    {
        self.submit(work, true).await
    }

    /// [`Self::write`] for a lease: answered once committed, without waiting for an fsync
    /// unless a durable write shares its batch (see the module doc). `work` may read as it
    /// likes but changes the database with one statement at most: alone in its batch, it runs
    /// without a transaction of its own.
    pub async fn write_lease<T, F>(&self, work: F) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, CatalogError>> + Send + 'static,
    {
        self.submit(work, false).await
    }

    /// Runs `script` with the arguments `bind` gives it in the next batch, in one round trip,
    /// and returns what `read` makes of its rows once that batch is durable.
    pub async fn write_script<T: Send + 'static>(
        &self,
        script: Script,
        bind: Bind,
        read: fn(&[SqliteRow]) -> T,
    ) -> Result<T, CatalogError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Box::new(ScriptWrite { script, bind, read, reply })).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// [`Self::write`] when `durable`, else [`Self::write_lease`].
    pub async fn submit<T, F>(&self, work: F, durable: bool) -> Result<T, CatalogError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, CatalogError>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Box::new(Write { work, reply, durable })).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> CatalogError {
    CatalogError::Database(sqlx::Error::PoolClosed)
}

/// The connection batches of leases commit on, opened when first needed and again after a
/// batch on it failed.
struct Leases {
    options: SqliteConnectOptions,
    conn: Option<SqliteConnection>,
}

async fn run(pool: SqlitePool, mut leases: Leases, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        run_batch(&pool, &mut leases, jobs).await;
    }
}

async fn run_batch(pool: &SqlitePool, leases: &mut Leases, jobs: Vec<Box<dyn Job>>) {
    let count = jobs.len();
    let durable = jobs.iter().any(|j| j.durable());
    let mut answers: Vec<Box<dyn Answer>> = Vec::with_capacity(count);
    let mut jobs = jobs.into_iter();
    let outcome: Result<(), String> = async {
        if durable {
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            if count == 1 {
                let Some(job) = jobs.next() else { return Ok(()) };
                return job.run_committed(&mut conn, &mut answers).await;
            }
            return run_jobs(&mut conn, jobs.by_ref(), &mut answers).await;
        }
        let conn = match &mut leases.conn {
            Some(conn) => conn,
            none => none.insert(SqliteConnection::connect_with(&leases.options).await.map_err(|e| e.to_string())?),
        };
        let outcome = if count == 1 {
            run_alone(conn, jobs.by_ref(), &mut answers).await
        } else {
            run_jobs(conn, jobs.by_ref(), &mut answers).await
        };
        if outcome.is_err() {
            // Whatever went wrong, the next batch of leases starts on a new connection.
            if let Some(conn) = leases.conn.take() {
                let _ = conn.close().await;
            }
        }
        outcome
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

/// Runs `jobs` in one `BEGIN IMMEDIATE` transaction on `conn`, keeping their answers; stops at
/// the first that fails.
async fn run_jobs(
    conn: &mut SqliteConnection,
    mut jobs: impl Iterator<Item = Box<dyn Job>>,
    answers: &mut Vec<Box<dyn Answer>>,
) -> Result<(), String> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(|e| e.to_string())?;
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

/// Runs a lone lease as SQLite's autocommit transaction: its one write commits (or fails)
/// by itself.
async fn run_alone(
    conn: &mut SqliteConnection,
    jobs: &mut std::vec::IntoIter<Box<dyn Job>>,
    answers: &mut Vec<Box<dyn Answer>>,
) -> Result<(), String> {
    let Some(job) = jobs.next() else { return Ok(()) };
    let (go_on, answer) = job.run(conn).await;
    answers.push(answer);
    if go_on { Ok(()) } else { Err("the write failed".to_owned()) }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use futures::FutureExt;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

    use super::*;

    /// A catalog database in `dir` (WAL, `synchronous = FULL`), a pool of `connections` and
    /// its writer task.
    async fn started(dir: &tempfile::TempDir, connections: u32) -> (SqlitePool, Writer) {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.path().join("w.db").display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new().max_connections(connections).connect_with(options.clone()).await.unwrap();
        let writer = Writer::start(pool.clone(), &options);
        (pool, writer)
    }

    async fn synchronous(db: &mut SqliteConnection) -> Result<i64, CatalogError> {
        Ok(sqlx::query_scalar("PRAGMA synchronous").fetch_one(db).await?)
    }

    /// A batch of leases commits with NORMAL, on its own connection; a durable write, alone or
    /// sharing a batch with leases, runs with FULL; a failed batch of leases does not stop the
    /// next.
    #[tokio::test]
    async fn only_a_batch_of_leases_skips_the_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, writer) = started(&dir, 1).await;
        let (normal, full) = (1, 2);
        assert_eq!(writer.write_lease(|db| synchronous(db).boxed()).await.unwrap(), normal);
        assert_eq!(synchronous(&mut pool.acquire().await.unwrap()).await.unwrap(), full);
        assert_eq!(writer.write(|db| synchronous(db).boxed()).await.unwrap(), full);
        let (lease, durable) =
            tokio::join!(writer.write_lease(|db| synchronous(db).boxed()), writer.write(|db| synchronous(db).boxed()));
        assert_eq!((lease.unwrap(), durable.unwrap()), (full, full), "a batch with a durable write is durable");
        let failed = writer
            .write_lease(|db| {
                async move { Ok::<_, CatalogError>(sqlx::query("SELECT * FROM nowhere").execute(db).await?) }.boxed()
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(writer.write_lease(|db| synchronous(db).boxed()).await.unwrap(), normal);
        assert_eq!(writer.write(|db| synchronous(db).boxed()).await.unwrap(), full);
    }

    const TWO_ROWS: Script = script!("INSERT INTO t VALUES ($1) RETURNING n; INSERT INTO t VALUES ($2) RETURNING n");

    fn two_rows(a: i64, b: i64) -> Bind {
        Box::new(move |q| q.bind(a).bind(b))
    }

    fn returned(rows: &[SqliteRow]) -> Vec<i64> {
        use sqlx::Row;
        rows.iter().map(|r| r.get::<i64, _>(0)).collect()
    }

    /// A script runs whole, alone (its own `BEGIN IMMEDIATE` … `COMMIT`) or in a batch with
    /// other writes; one that fails part-way changes nothing, alone or batched, and leaves no
    /// transaction open behind it.
    #[tokio::test]
    async fn a_script_runs_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, writer) = started(&dir, 1).await;
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)").execute(&pool).await.unwrap();
        let count = || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap() };

        assert_eq!(writer.write_script(TWO_ROWS, two_rows(1, 2), returned).await.unwrap(), [1, 2]);
        assert_eq!(count().await, 2, "committed when answered");
        let (script, other) = tokio::join!(
            writer.write_script(TWO_ROWS, two_rows(3, 4), returned),
            writer.write(|db| execute(db, "INSERT INTO t VALUES (5)").boxed())
        );
        assert_eq!((script.unwrap(), other.unwrap()), (vec![3, 4], 1));
        assert_eq!(count().await, 5);

        // The second statement fails (a duplicate): the first one's row goes too.
        let failed = writer.write_script(TWO_ROWS, two_rows(6, 1), returned).await;
        assert!(matches!(failed, Err(CatalogError::Database(_))), "{failed:?}");
        assert_eq!(count().await, 5);
        // Nothing was left open on the connection: the next write commits by itself.
        assert_eq!(writer.write(|db| execute(db, "INSERT INTO t VALUES (6)").boxed()).await.unwrap(), 1);
        assert_eq!(count().await, 6);
        // Batched, a failing script abandons the batch, and the write beside it with it.
        let (script, other) = tokio::join!(
            writer.write_script(TWO_ROWS, two_rows(7, 1), returned),
            writer.write(|db| execute(db, "INSERT INTO t VALUES (8)").boxed())
        );
        assert!(script.is_err() && other.is_err(), "{script:?} {other:?}");
        assert_eq!(count().await, 6);
        assert_eq!(writer.write_script(TWO_ROWS, two_rows(7, 8), returned).await.unwrap(), [7, 8]);
        assert_eq!(count().await, 8);
    }

    async fn execute(db: &mut SqliteConnection, sql: &'static str) -> Result<u64, CatalogError> {
        Ok(sqlx::query(sql).execute(db).await?.rows_affected())
    }

    /// A lease alone in its batch (no `BEGIN`, no `COMMIT` of the writer's) is committed when
    /// answered, as is each of several sharing a batch; one that fails changes nothing and
    /// leaves the connection usable.
    #[tokio::test]
    async fn a_lone_lease_commits_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, writer) = started(&dir, 2).await;
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)").execute(&pool).await.unwrap();
        let count = || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM t").fetch_one(&pool).await.unwrap() };

        assert_eq!(writer.write_lease(|db| execute(db, "INSERT INTO t VALUES (1)").boxed()).await.unwrap(), 1);
        assert_eq!(count().await, 1, "seen by another connection: committed");
        let duplicate = writer.write_lease(|db| execute(db, "INSERT INTO t VALUES (1)").boxed()).await;
        assert!(matches!(duplicate, Err(CatalogError::Database(_))), "{duplicate:?}");
        let (a, b) = tokio::join!(
            writer.write_lease(|db| execute(db, "INSERT INTO t VALUES (2)").boxed()),
            writer.write_lease(|db| execute(db, "INSERT INTO t VALUES (3)").boxed())
        );
        assert_eq!((a.unwrap(), b.unwrap()), (1, 1));
        assert_eq!(count().await, 3);
        // Neither the failure nor the lone leases left a transaction open on the lease
        // connection: a durable write takes the write lock at once.
        assert_eq!(writer.write(|db| execute(db, "INSERT INTO t VALUES (4)").boxed()).await.unwrap(), 1);
        assert_eq!(count().await, 4);
    }
}
