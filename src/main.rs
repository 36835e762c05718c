use std::process::ExitCode;

use clap::Parser;
use coffer::cli::{Cli, Command};
use coffer::config::Config;
use tracing_subscriber::EnvFilter;

fn init_tracing() {
    let filter = EnvFilter::try_from_env("COFFER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("COFFER_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    coffer::allocator::tune();
    let cli = Cli::parse();
    // `serve` loads its configuration before the runtime exists, so that the blocking pool
    // fits the uploads it admits.
    let serve = match &cli.command {
        Command::Serve(args) => Some(Config::load(&args.overrides())),
        _ => None,
    };
    let runtime = match &serve {
        Some(Ok(config)) => coffer::server::runtime(config),
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    runtime.expect("the tokio runtime starts").block_on(run(cli, serve))
}

async fn run(cli: Cli, serve: Option<Result<Config, coffer::config::ConfigError>>) -> ExitCode {
    init_tracing();
    let remote = match &cli.command {
        Command::Upload(a) => Some(coffer::cli::remote::upload(a).await),
        Command::Download(a) => Some(coffer::cli::remote::download(a).await),
        Command::Ls(a) => Some(coffer::cli::remote::ls(a).await),
        Command::Rm(a) => Some(coffer::cli::remote::rm(a).await),
        Command::Url(a) => Some(coffer::cli::remote::url(a).await),
        _ => None,
    };
    if let Some(outcome) = remote {
        return match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // Multi-file commands already named each failure.
                if !matches!(cli.command, Command::Upload(_) | Command::Rm(_)) {
                    eprintln!("coffer: {e}");
                }
                ExitCode::from(e.exit_code())
            }
        };
    }
    let result = match cli.command {
        Command::Serve(_) => match serve.expect("loaded before the runtime started") {
            Ok(config) => coffer::server::run(config).await,
            Err(e) => Err(e.into()),
        },
        Command::Token(args) => coffer::cli::token(&args).map(|t| println!("{t}")),
        Command::Config(args) => {
            Config::load(&args.overrides()).map(|c| print!("{}", c.describe())).map_err(Into::into)
        }
        Command::Migrate(args) => coffer::cli::admin::migrate(&args).await,
        Command::IamPolicy(args) => coffer::cli::admin::iam_policy(&args),
        Command::Provision(args) => match coffer::cli::admin::provision(&args).await {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Upload(_) | Command::Download(_) | Command::Ls(_) | Command::Rm(_) | Command::Url(_) => {
            unreachable!("handled above")
        }
        Command::Tenant(args) => coffer::cli::admin::tenant(&args).await,
        Command::Keys(args) => coffer::cli::keys::keys(&args).await,
        Command::Reconcile(args) => match coffer::cli::admin::reconcile(&args).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer: {e}");
            ExitCode::from(2)
        }
    }
}
