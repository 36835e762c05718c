//! `coffer serve`: builds the service from configuration and runs the HTTP API until SIGTERM
//! or Ctrl-C, finishing in-flight requests.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{AppState, router};

/// How often queued blob deletions are retried while serving.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// `every`, give or take a quarter, drawn anew each round: instances started together (a
/// rollout behind a load balancer) spread their background work out instead of hitting the
/// catalog and the store at the same moments. The work itself is safe to run on several
/// instances at once (claims in the catalog, idempotent deletes).
fn jittered(every: Duration) -> Duration {
    every.mul_f64(rand::random_range(0.75..1.25))
}

/// Serves on `listener` until `shutdown` completes; reconciles every `reconcile_interval.0`
/// with grace `reconcile_interval.1` when given.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    reconcile_interval: Option<(Duration, Duration)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let purger = state.service.clone();
    let purge_task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(jittered(PURGE_INTERVAL)).await;
            purger.purge_queued().await;
        }
    });
    let reconcile_task = reconcile_interval.map(|(every, grace)| {
        let service = state.service.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(jittered(every)).await;
                service.reconciler(grace, false).run().await;
            }
        })
    });
    let limits = state.limits.clone();
    let result = accept_loop(listener, router(state), &limits, shutdown).await;
    purge_task.abort();
    if let Some(task) = reconcile_task {
        task.abort();
    }
    result
}

/// Blocking threads an upload may hold for as long as its body streams: the thread its digest
/// is computed on (its writes, a plain upload's and a resumable append's alike, are short
/// trips, one at a time).
pub const BLOCKING_THREADS_PER_UPLOAD: usize = 1;
/// Blocking threads left for everything short (file opens and reads, fsyncs, key lookups) when
/// every admitted upload holds its threads.
const BLOCKING_THREADS_SPARE: usize = 256;

/// The runtime's blocking pool for `limits`: never below tokio's default (512), and large enough
/// that admitted uploads cannot hold every thread. An upload holding one thread while it waits
/// for another to start (its writes') would otherwise wait forever once enough
/// of them did the same (`COFFER_MAX_UPLOADS` in the hundreds).
pub fn blocking_threads(limits: &crate::config::Limits) -> usize {
    (limits.max_uploads.saturating_mul(BLOCKING_THREADS_PER_UPLOAD).saturating_add(BLOCKING_THREADS_SPARE)).max(512)
}

/// The runtime `coffer serve` runs on for `config`: multi-threaded, with [`blocking_threads`]
/// blocking threads. A program that embeds [`run`] builds its runtime here (or sizes its own
/// blocking pool the same way).
pub fn runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads(&config.limits))
        .build()
}

/// `coffer serve`; on a runtime from [`runtime`] (one whose blocking pool is smaller than
/// [`blocking_threads`] can stall once enough uploads run at once).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let state = crate::startup::app_state(&config).await?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("COFFER_ADDR: cannot listen on {}: {e}", config.addr))?;
    let addr = listener.local_addr()?;
    println!("coffer listening on http://{addr} (data in {})", config.data_dir.display());
    println!("get a token: coffer token --tenant <tenant_id> --data-dir {}", config.data_dir.display());
    tracing::info!(%addr, storage = ?config.storage, "listening");
    if let Some(metrics_addr) = config.metrics_addr {
        let listener = TcpListener::bind(metrics_addr)
            .await
            .map_err(|e| anyhow::anyhow!("COFFER_METRICS_ADDR: cannot listen on {metrics_addr}: {e}"))?;
        println!("metrics on http://{}/metrics", listener.local_addr()?);
        let app = crate::http::metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    } else if config.metrics_token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "/metrics is open to anyone who reaches this address: set COFFER_METRICS_TOKEN or COFFER_METRICS_ADDR"
        );
    }
    let reconcile = config.reconcile_interval.map(|every| (every, config.reconcile_grace));
    serve_on(listener, state, reconcile, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The largest read of an HTTP/1 connection (hyper grows its buffer up to this while reads
/// fill it; it also bounds the response bytes hyper queues before it writes). It bounds a
/// request head too, but the configured header limit is checked separately
/// (`http::limits::request_head`): with a buffer of that size (16 KiB) a 1 GiB upload took
/// 65,536 reads and as many task wake-ups, and about a sixth more of the server's CPU time.
const READ_BUFFER: usize = 256 * 1024;

/// Serves connections until `shutdown`, then stops accepting and gives in-flight requests up to
/// the shutdown grace to finish. HTTP/1 headers must arrive within the header read timeout
/// (slow-loris) and fit in the header buffer (431 otherwise).
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    limits: &crate::config::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER.max(limits.max_header_bytes));
    builder.http2().timer(TokioTimer::new()).max_header_list_size(limits.max_header_bytes as u32);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Headers and a small body go out at once: without this, Nagle's algorithm holds
                // the body back until the client's delayed ACK (about 40 ms on a kept-alive
                // connection).
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                let service = TowerToHyperService::new(app.clone());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(grace = ?limits.shutdown_grace, "shutting down: no new connections, waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => tracing::warn!("shutdown grace elapsed; closing remaining connections"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Overrides};

    fn limits(max_uploads: &str) -> crate::config::Limits {
        let lookup = |name: &str| (name == "COFFER_MAX_UPLOADS").then(|| max_uploads.to_string());
        Config::from_lookup(lookup, &Overrides::default()).expect("a valid configuration").limits
    }

    #[test]
    fn the_blocking_pool_outgrows_what_admitted_uploads_can_hold() {
        assert_eq!(super::blocking_threads(&limits("64")), 512, "tokio's default covers the default limit");
        for uploads in [300usize, 1000, 5000] {
            let threads = super::blocking_threads(&limits(&uploads.to_string()));
            assert!(threads >= uploads + 256, "{uploads} uploads: {threads} threads");
        }
    }

    /// The runtime `serve` builds really has that pool: as many blocking tasks as uploads may
    /// be admitted, each waiting for all the others, all run at once.
    #[test]
    fn the_serving_runtime_runs_a_blocking_task_per_admitted_upload_at_once() {
        let uploads = 700;
        let config = Config {
            limits: limits(&uploads.to_string()),
            ..Config::from_lookup(|_| None, &Overrides::default()).unwrap()
        };
        let runtime = super::runtime(&config).unwrap();
        let all_met = runtime.block_on(async {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(uploads));
            let tasks: Vec<_> = (0..uploads)
                .map(|_| {
                    let barrier = barrier.clone();
                    tokio::task::spawn_blocking(move || {
                        barrier.wait();
                    })
                })
                .collect();
            tokio::time::timeout(std::time::Duration::from_secs(60), futures::future::join_all(tasks)).await.is_ok()
        });
        // Wait for the 700 threads to exit before the next test runs: left to exit behind it
        // (`shutdown_background`), they once overlapped a SIGSEGV inside glibc in this test's
        // thread. Tasks stuck at the barrier (the assertion below fails) are given up on.
        runtime.shutdown_timeout(std::time::Duration::from_secs(10));
        assert!(all_met, "{uploads} blocking tasks at once on the serving runtime");
    }
}
