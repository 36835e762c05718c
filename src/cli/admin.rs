//! Operator commands: `coffer migrate`, `coffer reconcile`, `coffer tenant …`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::ServerArgs;
use crate::catalog::TenantStatus;
use crate::config::Config;
use crate::domain::TenantId;

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Report what would change without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave uploads younger than this alone [default: COFFER_RECONCILE_GRACE or 1h].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub grace: Option<Duration>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the plan without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Also enable bucket versioning.
    #[arg(long)]
    pub versioning: bool,
}

#[derive(Debug, Args)]
pub struct IamArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The policy for `coffer provision` instead of the running service's.
    #[arg(long)]
    pub provision: bool,
}

/// `coffer provision`: prints each step; returns the exit code.
pub async fn provision(args: &ProvisionArgs) -> anyhow::Result<u8> {
    let config = Config::load(&args.server.overrides())?;
    let report = crate::startup::provision(&config, args.dry_run, args.versioning).await;
    print!("{}", report.render());
    Ok(report.exit_code())
}

/// `coffer iam-policy`.
pub fn iam_policy(args: &IamArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.server.overrides())?;
    let policy =
        if args.provision { crate::iam::provision_policy(&config) } else { crate::iam::service_policy(&config) };
    println!("{}", serde_json::to_string_pretty(&policy)?);
    Ok(())
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    pub action: TenantAction,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// Register a tenant (active).
    Add { tenant: String },
    /// Refuse a tenant's tokens and links until resumed.
    Suspend { tenant: String },
    /// Make a suspended tenant active again.
    Resume { tenant: String },
    /// List registered tenants.
    List,
    /// Write all of a tenant's files (or one category's) as a tar archive with a manifest.
    Export {
        tenant: String,
        /// The archive to write (`-` for standard output).
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        category: Option<String>,
    },
    /// Remove everything of a tenant — its data key first, then its rows and bytes — so that
    /// nothing of it can be read again, even from a copy of the data dir. Resumable.
    Purge {
        tenant: String,
        /// The tenant id again, to confirm.
        #[arg(long)]
        confirm: Option<String>,
        /// How long running servers need to see the tenant suspended (their status cache).
        #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
        wait: Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `coffer migrate`: applies pending catalog migrations and exits.
pub async fn migrate(args: &ServerArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.overrides())?;
    let url = config.database_url.expose();
    let shown = crate::util::redact_url(url);
    crate::startup::catalog(&config).await?;
    println!("catalog migrated ({shown})");
    Ok(())
}

/// `coffer reconcile`: prints the summary; `Ok(false)` when problems remain.
pub async fn reconcile(args: &ReconcileArgs) -> anyhow::Result<bool> {
    let config = Config::load(&args.server.overrides())?;
    let service = crate::startup::service(&config).await?;
    let report = service.reconciler(args.grace.unwrap_or(config.reconcile_grace), args.dry_run).run().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for key in &report.missing_bytes {
            println!("missing bytes: {key}");
        }
        for key in &report.unrecognised {
            println!("unrecognised object: {key}");
        }
        for e in &report.errors {
            println!("error: {e}");
        }
        println!("{}", report.summary());
    }
    Ok(!report.failed())
}

/// `coffer tenant …`.
pub async fn tenant(args: &TenantArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.server.overrides())?;
    match &args.action {
        TenantAction::Export { tenant, output, category } => return export(&config, tenant, output, category).await,
        TenantAction::Purge { tenant, confirm, wait, json } => {
            return purge(&config, tenant, confirm.as_deref(), *wait, *json).await;
        }
        _ => {}
    }
    let catalog = crate::startup::catalog(&config).await?;
    let parse = |t: &str| TenantId::parse(t).map_err(|e| anyhow::anyhow!("{e}"));
    match &args.action {
        TenantAction::Add { tenant } => {
            let id = parse(tenant)?;
            if catalog.add_tenant(&id).await? {
                println!("added {id}");
            } else {
                println!("{id} is already registered");
            }
        }
        TenantAction::Suspend { tenant } | TenantAction::Resume { tenant } => {
            let id = parse(tenant)?;
            let status = if matches!(args.action, TenantAction::Suspend { .. }) {
                TenantStatus::Suspended
            } else {
                TenantStatus::Active
            };
            catalog
                .set_tenant_status(&id, status)
                .await
                .map_err(|e| anyhow::anyhow!("{id}: {e} (add it first with `coffer tenant add`)"))?;
            println!("{id} is {}", status.as_str());
        }
        TenantAction::List => {
            for t in catalog.list_tenants().await? {
                println!("{}\t{}\t{}", t.tenant, t.status.as_str(), t.created_at.to_rfc3339());
            }
        }
        TenantAction::Export { .. } | TenantAction::Purge { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn parse_tenant(raw: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(raw).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `coffer tenant export`: the archive is written beside `output` and renamed into place once
/// complete, so a failed export leaves no file that looks whole.
async fn export(
    config: &Config,
    tenant: &str,
    output: &std::path::Path,
    category: &Option<String>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let id = parse_tenant(tenant)?;
    let category = category.as_deref().map(crate::domain::Category::parse).transpose()?;
    let service = crate::startup::service(config).await?;
    if let Some(c) = &category {
        service.policy(c)?;
    }
    let mut body = service.export(id.clone(), category);
    let to_stdout = output.as_os_str() == "-";
    let partial = output.with_extension("tar.partial");
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stdout {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(tokio::fs::File::create(&partial).await.map_err(|e| anyhow::anyhow!("{}: {e}", partial.display()))?)
    };
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                anyhow::bail!("export of {id} failed: {e}");
            }
        };
        written += chunk.len() as u64;
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    drop(out);
    if !to_stdout {
        tokio::fs::rename(&partial, output).await?;
        eprintln!("exported {id} to {} ({})", output.display(), bytesize::ByteSize(written));
    }
    Ok(())
}

/// `coffer tenant purge`, with an audit line before and after.
async fn purge(config: &Config, tenant: &str, confirm: Option<&str>, wait: Duration, json: bool) -> anyhow::Result<()> {
    let id = parse_tenant(tenant)?;
    if confirm != Some(id.as_str()) {
        anyhow::bail!("purging {id} destroys all of its files for good: repeat the tenant id with --confirm {id}");
    }
    let service = crate::startup::service(config).await?;
    super::audit::record(config, "tenant.purge.started", &id, serde_json::json!({}))?;
    let report = service.purge_tenant(&id, wait).await?;
    super::audit::record(config, "tenant.purge.completed", &id, serde_json::to_value(&report)?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "purged {id}: data key {}, {} files, {} pending uploads, {} queued deletions, {} objects removed, registration {}",
            if report.key_destroyed { "destroyed" } else { "already gone or none" },
            report.rows.files,
            report.rows.pending_uploads,
            report.rows.queued_deletions,
            report.objects_removed,
            if report.registration_removed { "removed" } else { "already gone" },
        );
    }
    Ok(())
}
