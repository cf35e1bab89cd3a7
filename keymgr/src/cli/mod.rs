//! Command-line parsing, backend selection and dispatch.

#[cfg(feature = "barbican")]
mod acl;
mod io;
mod luks;
mod secret;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use keymgr::{Config, Context, KeyManager};

/// Keys for storage services: Barbican, Vault/OpenBao or an embedded store.
#[derive(Debug, Parser)]
#[command(name = "keymgr", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file: keymgr TOML, or an oslo.config INI such as
    /// cinder.conf (default: $KEYMGR_CONFIG, then KEYMGR_BACKEND variables,
    /// then the embedded store in the user's data directory).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Project (tenant) to act for; overrides the config's [context].
    #[arg(long, global = true, env = "KEYMGR_PROJECT")]
    project: Option<String>,
    /// User to act as; overrides the config's [context].
    #[arg(long, global = true, env = "KEYMGR_USER")]
    user: Option<String>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Log to stderr (-v info, -vv debug, -vvv trace). Secrets are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, store, fetch and delete secrets.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Format, open, re-key, read and write LUKS1/LUKS2 volumes (cryptsetup's options).
    #[command(subcommand)]
    Luks(luks::LuksCommand),
}

/// What every command gets: the key manager, the context, output options.
pub struct Env {
    /// The configuration (backend-specific commands rebuild their backend from it).
    #[cfg_attr(not(feature = "barbican"), allow(dead_code))]
    config: Config,
    km: Arc<dyn KeyManager>,
    ctx: Context,
    json: bool,
}

/// Parses arguments, runs the command, prints errors, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keymgr: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keymgr: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Secret(ref cmd) => {
            let env = open_env(&cli)?;
            secret::run(&env, cmd).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Luks(ref cmd) => luks::run(&cli, cmd).await,
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYMGR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves the configuration as `--config` documents it.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let from_file = cli
        .config
        .clone()
        .or_else(|| std::env::var_os("KEYMGR_CONFIG").map(PathBuf::from));
    let mut config = if let Some(path) = from_file {
        Config::from_file(&path)?
    } else if let Some(c) = Config::from_env()? {
        c
    } else {
        default_embedded_config()?
    };
    if let Some(p) = &cli.project {
        config.context.project_id = Some(p.clone());
    }
    if let Some(u) = &cli.user {
        config.context.user_id = Some(u.clone());
    }
    Ok(config)
}

#[cfg(feature = "mock")]
fn default_embedded_config() -> anyhow::Result<Config> {
    use anyhow::Context as _;
    let path = keymgr_mock::default_store_path()
        .context("no configuration given and no user data directory for the embedded store")?;
    eprintln!(
        "keymgr: no configuration given; using the embedded store at {}",
        path.display()
    );
    let mut config = Config::new(keymgr::BackendKind::Mock);
    config.section.insert(
        "path".into(),
        toml::Value::String(path.to_string_lossy().into_owned()),
    );
    Ok(config)
}

#[cfg(not(feature = "mock"))]
fn default_embedded_config() -> anyhow::Result<Config> {
    anyhow::bail!("no configuration given (--config, KEYMGR_CONFIG or KEYMGR_BACKEND) and the embedded backend is not compiled in")
}

/// The context commands act for. With Barbican and no project given, the
/// project is the one the configured credentials are scoped to (Barbican
/// itself enforces isolation by the token), so the project id is left empty.
pub fn context_for(config: &Config) -> Context {
    let mut ctx = config.context.to_context();
    if config.backend == keymgr::BackendKind::Barbican && config.context.project_id.is_none() {
        ctx.project_id = String::new();
    }
    ctx
}

fn open_env(cli: &Cli) -> anyhow::Result<Env> {
    let config = load_config(cli)?;
    let km = keymgr::build(&config)?;
    Ok(Env {
        km,
        ctx: context_for(&config),
        json: cli.json,
        config,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
