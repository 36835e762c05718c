//! The cluster fault drill: `scripts/cluster drill` runs it against the cluster `scripts/cluster
//! up` starts (three coffer instances behind HAProxy, a 3-node Garage cluster, PostgreSQL).
//!
//! 1. Throughput of a small-file load with three instances, then with one.
//! 2. A mixed load from five clients (four on small files, one on 16–64 MiB multipart uploads)
//!    while, in turn, an instance is SIGKILLed and restarted, a Garage node is SIGKILLed and
//!    restarted, PostgreSQL is cut off and comes back, and an instance is drained (SIGTERM)
//!    during a large transfer. Every answer is classified; a 500, a 503 without Retry-After,
//!    wrong bytes, a lost or undone write is a violation.
//! 3. `coffer reconcile`, then the ledger check (every acknowledged upload readable with its
//!    sha256, no acknowledged delete undone) and the store check (no row without bytes, no
//!    bytes without a row, no open multipart upload).
//!
//! Prints the figures and exits 1 on any violation.

mod checks;
mod content;
mod events;
mod ledger;
mod load;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use coffer::auth::TokenIssuer;
use coffer::config::{Config, Overrides, Secret};
use coffer::domain::TenantId;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use events::{Class, Clock, Event, Phase};
use ledger::Ledger;
use load::{Shared, Worker};

const SMALL_CLIENTS: usize = 4;
const THROUGHPUT_CLIENTS: usize = 8;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run this through scripts/cluster drill"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let url = var("COFFER_CLUSTER_URL");
    let script = var("COFFER_CLUSTER_SCRIPT");
    let direct_db = var("DIRECT_DATABASE_URL");
    let config =
        Config::from_lookup(|k| std::env::var(k).ok(), &Overrides::default()).expect("the cluster's configuration");
    let issuer = TokenIssuer::new(&Secret::new(var("COFFER_JWT_SECRET")));
    let token =
        |tenant: &str| issuer.issue(&TenantId::parse(tenant).expect("tenant"), Duration::from_secs(3600), false);
    let shared = Arc::new(Shared {
        url: url.clone(),
        clock: Clock::start(),
        stop: AtomicBool::new(false),
        large_in_flight: AtomicUsize::new(0),
    });

    let secs = 8;
    let three = throughput(&url, &token("bench3"), secs).await;
    hook(&script, &["disable", "instance", "2"], &shared).await;
    hook(&script, &["disable", "instance", "3"], &shared).await;
    let one = throughput(&url, &token("bench1"), secs).await;
    hook(&script, &["enable", "instance", "2"], &shared).await;
    hook(&script, &["enable", "instance", "3"], &shared).await;

    let drill_start = shared.clock.now();
    let mut tokens = HashMap::new();
    let mut handles = Vec::new();
    for id in 0..=SMALL_CLIENTS {
        let t = token(&format!("drill{id}"));
        tokens.insert(format!("drill{id}"), t.clone());
        handles.push(tokio::spawn(Worker::new(id, t, shared.clone(), id == SMALL_CLIENTS).run()));
    }
    let phases = faults(&script, &shared).await;
    shared.stop.store(true, Ordering::SeqCst);
    let mut all = Ledger::default();
    let mut events: Vec<Event> = Vec::new();
    for handle in handles {
        let mut worker = handle.await.expect("a client");
        for location in worker.unterminated() {
            eprintln!("drill: a resumable upload could not be terminated: {location}");
        }
        events.append(&mut worker.events);
        all.merge(std::mem::take(&mut worker.ledger));
    }
    let drill_secs = shared.clock.now() - drill_start;

    // A killed instance's uploads are rolled back once their lease has run out: wait until no
    // upload is alive (none should be, the clients have stopped), then past the grace period.
    if let Err(e) = checks::settle(&direct_db, Duration::from_secs(9)).await {
        eprintln!("drill: waiting for uploads to settle: {e:#}");
    }
    println!("drill: coffer reconcile --grace 8s");
    hook(&script, &["reconcile", "--grace", "8s"], &shared).await;
    let ledger = checks::ledger(&url, &tokens, &all).await;
    let store = match checks::store(&direct_db, &config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("drill: the store check failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    report(three, one, secs, drill_secs, &events, &phases, &ledger, &store)
}

/// Runs one fault hook of `scripts/cluster` and waits for it.
async fn hook(script: &str, args: &[&str], shared: &Shared) {
    println!("drill: {:>5.1}s  scripts/cluster {}", shared.clock.now(), args.join(" "));
    let status = tokio::process::Command::new(script).args(args).status().await.expect("scripts/cluster");
    if !status.success() {
        eprintln!("drill: scripts/cluster {} exited with {status}", args.join(" "));
    }
}

/// A fault: its name, the hook that injects it, seconds down, the hook that repairs it, seconds
/// watched afterwards.
type Fault = (&'static str, &'static [&'static str], u64, &'static [&'static str], u64);

/// The fault schedule; returns each fault's phase.
async fn faults(script: &str, shared: &Shared) -> Vec<Phase> {
    let sleep = |s: u64| tokio::time::sleep(Duration::from_secs(s));
    let mut phases = Vec::new();
    sleep(5).await;
    let steps: [Fault; 3] = [
        ("coffer instance SIGKILL", &["kill", "instance", "1"], 6, &["start", "instance", "1"], 6),
        ("Garage node SIGKILL", &["kill", "garage", "2"], 8, &["start", "garage", "2"], 8),
        ("PostgreSQL unreachable", &["pg-cut"], 5, &["pg-restore"], 8),
    ];
    for (name, inject, down, repair, watch) in steps {
        let start = shared.clock.now();
        hook(script, inject, shared).await;
        sleep(down).await;
        hook(script, repair, shared).await;
        let restore = shared.clock.now();
        sleep(watch).await;
        phases.push(Phase { name, start, restore, end: shared.clock.now() });
    }
    // Drain during a large transfer: wait (a bounded time) for one to be under way.
    for _ in 0..300 {
        if shared.large_in_flight.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = shared.clock.now();
    hook(script, &["term", "instance", "3"], shared).await;
    hook(script, &["start", "instance", "3"], shared).await;
    let restore = shared.clock.now();
    sleep(6).await;
    phases.push(Phase { name: "coffer instance SIGTERM (drain)", start, restore, end: shared.clock.now() });
    phases
}

/// Small-file throughput: THROUGHPUT_CLIENTS clients each uploading a 64 KiB file and reading
/// it back, for `secs` seconds. Returns (requests answered 2xx, errors).
async fn throughput(url: &str, token: &str, secs: u64) -> (usize, usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..THROUGHPUT_CLIENTS {
        let (url, token) = (url.to_string(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let http = load::client();
            let (mut ok, mut errors) = (0, 0);
            for n in 0.. {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                let body = content::Content { seed: (c * 1_000_000 + n) as u64, size: 64 * 1024, png: false }.bytes();
                let sha = hex::encode(Sha256::digest(&body));
                let name = format!("tp{c}-{n}.bin");
                let up = http
                    .post(format!("{url}/v1/files"))
                    .query(&[("category", "exports"), ("filename", name.as_str()), ("overwrite", "true")])
                    .bearer_auth(&token)
                    .body(body)
                    .send()
                    .await;
                let Ok(up) = up.map_err(|_| errors += 1) else { continue };
                if up.status() != StatusCode::CREATED {
                    errors += 1;
                    continue;
                }
                let key = up.json::<serde_json::Value>().await.ok().and_then(|v| v["key"].as_str().map(str::to_string));
                ok += 1;
                let Some(key) = key else { continue };
                match http.get(format!("{url}/v1/files/{key}")).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == StatusCode::OK => match r.bytes().await {
                        Ok(b) if hex::encode(Sha256::digest(&b)) == sha => ok += 1,
                        _ => errors += 1,
                    },
                    _ => errors += 1,
                }
            }
            (ok, errors)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (ok, errors) = t.await.expect("a throughput client");
        total = (total.0 + ok, total.1 + errors);
    }
    total
}

#[allow(clippy::too_many_arguments)]
fn report(
    three: (usize, usize),
    one: (usize, usize),
    secs: u64,
    drill_secs: f64,
    events: &[Event],
    phases: &[Phase],
    ledger: &checks::LedgerFindings,
    store: &checks::StoreFindings,
) -> ExitCode {
    let rate = |(ok, _): (usize, usize)| ok as f64 / secs as f64;
    println!();
    println!("throughput, 64 KiB upload + read back, {THROUGHPUT_CLIENTS} clients, {secs} s each:");
    println!("  3 instances: {:.0} req/s ({} errors)", rate(three), three.1);
    println!("  1 instance:  {:.0} req/s ({} errors)", rate(one), one.1);
    let count = |f: &dyn Fn(&Class) -> bool| events.iter().filter(|e| f(&e.class)).count();
    println!(
        "\nmixed load: {} answers in {drill_secs:.0} s from {} clients: {} ok, {} 503 with Retry-After, {} connection errors, {} busy (423/429)",
        events.len(),
        SMALL_CLIENTS + 1,
        count(&|c| *c == Class::Ok),
        count(&|c| *c == Class::Unavailable),
        count(&|c| *c == Class::Connection),
        count(&|c| *c == Class::Busy),
    );
    let mut ops: Vec<&str> = events.iter().map(|e| e.op).collect();
    ops.sort();
    ops.dedup();
    let per_op: Vec<String> =
        ops.iter().map(|op| format!("{op} {}", events.iter().filter(|e| e.op == *op).count())).collect();
    println!("  by operation: {}", per_op.join(", "));
    println!(
        "\n| fault | answers in its window | errors (503 or connection) | error share | errors until, after repair |"
    );
    println!("|---|---|---|---|---|");
    for p in phases {
        let (errors, total, recovery) = p.tally(events);
        println!(
            "| {} | {total} | {errors} | {:.1} % | {recovery:.1} s |",
            p.name,
            100.0 * errors as f64 / total.max(1) as f64
        );
    }
    for p in phases {
        let seen: Vec<String> = events
            .iter()
            .filter(|e| e.at >= p.start && e.at < p.end && matches!(e.class, Class::Unavailable | Class::Connection))
            .map(|e| format!("{:.1}s {} {:?}", e.at - p.start, e.op, e.class))
            .collect();
        if !seen.is_empty() {
            println!(
                "  {} (seconds after the fault): {}",
                p.name,
                seen.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let violations: Vec<&Event> = events.iter().filter(|e| matches!(e.class, Class::Violation(_))).collect();
    println!(
        "\nledger: {} keys read back: {} lost, {} resurrected, {} wrong; {} violations during the load",
        ledger.checked,
        ledger.lost.len(),
        ledger.resurrected.len(),
        ledger.wrong.len(),
        violations.len()
    );
    println!(
        "store: {} rows, {} objects in Garage, {} resumable uploads alive: {} rows without bytes, {} orphaned objects, {} open multipart uploads",
        store.rows,
        store.objects,
        store.live_uploads,
        store.rows_without_bytes.len(),
        store.orphans.len(),
        store.open_multipart.len()
    );
    if !store.phantom_multipart.is_empty() {
        println!(
            "  and {} multipart uploads Garage lists but answers NoSuchUpload for (no parts; a creation cut off mid-request, see BENCHMARKS.md): {}",
            store.phantom_multipart.len(),
            store.phantom_multipart.join(", ")
        );
    }
    if !store.stale_listed.is_empty() {
        println!(
            "  and {} objects listed by a replica that missed their delete, yet absent when read (Garage filters a listing per replica before merging; see BENCHMARKS.md): {}",
            store.stale_listed.len(),
            store.stale_listed.join(", ")
        );
    }
    let problems: Vec<String> = violations
        .iter()
        .map(|e| format!("{:.1}s {}: {:?}", e.at, e.op, e.class))
        .chain(ledger.lost.iter().map(|k| format!("lost: {k}")))
        .chain(ledger.resurrected.iter().map(|k| format!("resurrected: {k}")))
        .chain(ledger.wrong.iter().map(|k| format!("wrong: {k}")))
        .chain(store.rows_without_bytes.iter().map(|k| format!("row without bytes: {k}")))
        .chain(store.orphans.iter().map(|k| format!("orphaned object: {k}")))
        .chain(store.open_multipart.iter().map(|k| format!("open multipart upload: {k}")))
        .chain((three.1 + one.1 > 0).then(|| "errors during the throughput runs (no fault was injected)".into()))
        .collect();
    if problems.is_empty() {
        println!("\ndrill: passed");
        return ExitCode::SUCCESS;
    }
    for p in problems.iter().take(50) {
        eprintln!("drill: {p}");
    }
    eprintln!("drill: FAILED ({} problems)", problems.len());
    ExitCode::FAILURE
}
