//! The command line: `coffer serve | token | config | migrate | reconcile | tenant`.

pub mod admin;
mod audit;
pub mod keys;
pub mod remote;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::TokenIssuer;
use crate::config::{Config, Overrides};
use crate::domain::TenantId;

#[derive(Debug, Parser)]
#[command(
    name = "coffer",
    version,
    about = "Tenant-scoped document storage service",
    after_help = "Exit codes: 0 success; 1 the server refused (its error code and message are printed); \
                  2 usage or local error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (embedded default: files and SQLite under ./coffer-data).
    Serve(ServerArgs),
    /// Print a bearer token for a tenant, signed with the server's secret.
    Token(TokenArgs),
    /// Print the effective configuration (secrets redacted).
    Config(ServerArgs),
    /// Apply pending catalog migrations.
    Migrate(ServerArgs),
    /// Bring catalog and blob store back into agreement (exit 1 when problems remain).
    Reconcile(admin::ReconcileArgs),
    /// Manage tenants: register, suspend, resume, list, export, purge.
    Tenant(admin::TenantArgs),
    /// Encryption at rest of the filesystem store: rotate the master key, seal older objects.
    Keys(keys::KeysArgs),
    /// Create or update both buckets: public access block, encryption, lifecycle (exit 0 all
    /// in place, 3 partial: the server lacks an API, 1 failed).
    Provision(admin::ProvisionArgs),
    /// Print least-privilege IAM policies for the configured buckets.
    IamPolicy(admin::IamArgs),
    /// Upload files to a coffer server (COFFER_URL, COFFER_TOKEN).
    Upload(remote::UploadArgs),
    /// Download a file (`-o -` for standard output).
    Download(remote::DownloadArgs),
    /// List files.
    Ls(remote::LsArgs),
    /// Delete files.
    Rm(remote::RmArgs),
    /// Print a presigned link to a file.
    Url(remote::UrlArgs),
}

/// Flags that override the environment.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerArgs {
    /// Listen address [env: COFFER_ADDR] [default: 127.0.0.1:8080]
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Data directory [env: COFFER_DATA_DIR] [default: ./coffer-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Base of the URLs coffer hands out [env: COFFER_PUBLIC_URL]
    #[arg(long)]
    pub public_url: Option<url::Url>,
    /// Catalog database [env: DATABASE_URL] [default: sqlite in the data dir]
    #[arg(long)]
    pub database_url: Option<String>,
}

impl ServerArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            addr: self.addr,
            data_dir: self.data_dir.clone(),
            public_url: self.public_url.clone(),
            database_url: self.database_url.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The tenant the token acts for.
    #[arg(long)]
    pub tenant: String,
    /// Lifetime, e.g. 1h, 30m, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// The token may list, download and presign, but not upload or delete.
    #[arg(long)]
    pub read_only: bool,
    /// Data directory holding the signing secret [env: COFFER_DATA_DIR]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print a console sign-in link (the token travels in the URL fragment, never to the server).
    #[arg(long)]
    pub console: bool,
}

/// `coffer token`: prints a token, or a one-line error.
pub fn token(args: &TokenArgs) -> anyhow::Result<String> {
    let overrides = Overrides { data_dir: args.data_dir.clone(), ..Default::default() };
    let config = Config::load(&overrides)?;
    if config.jwt_public_key.is_some() {
        anyhow::bail!("COFFER_JWT_PUBLIC_KEY is set: tokens come from your identity provider, not from coffer");
    }
    let tenant = TenantId::parse(&args.tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    if args.ttl.is_zero() {
        anyhow::bail!("--ttl must be positive");
    }
    if args.ttl > config.jwt_max_ttl {
        anyhow::bail!(
            "--ttl {} is longer than the server accepts (COFFER_JWT_MAX_TTL = {})",
            humantime::format_duration(args.ttl),
            humantime::format_duration(config.jwt_max_ttl)
        );
    }
    let secret = config.signing_secret().map_err(|e| anyhow::anyhow!(e))?;
    let token = TokenIssuer::new(&secret).issue(&tenant, args.ttl, args.read_only);
    if args.console {
        let mut link = config.public_url.join("/console").map_err(|e| anyhow::anyhow!("COFFER_PUBLIC_URL: {e}"))?;
        link.set_fragment(Some(&format!("token={token}")));
        return Ok(link.to_string());
    }
    Ok(token)
}
