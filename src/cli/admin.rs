//! Operator commands: `coffer migrate`, `coffer reconcile`, `coffer tenant …`.

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
    }
    Ok(())
}
