//! Command-line parsing, backend selection and dispatch.

#[cfg(feature = "barbican")]
mod acl;
mod confirm;
mod dump;
mod error;
mod io;
mod luks;
mod pass;
mod secret;
#[cfg(feature = "mock")]
mod store_path;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use keymgr::{Config, Context, KeyManager};

/// Keys for storage services: Barbican, Vault/OpenBao or an embedded store.
#[derive(Debug, Parser)]
#[command(name = "keymgr", version, about, long_about = None, after_help = error::EXIT_CODES)]
pub(crate) struct Cli {
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
    /// Print results as JSON (errors as {"error": {"kind": ..., "message": ...}}).
    #[arg(long, global = true)]
    json: bool,
    /// Do not ask for confirmation (cryptsetup's -q): needed for destructive
    /// steps without a terminal.
    #[arg(short = 'q', long, global = true)]
    batch_mode: bool,
    /// Ask twice for every passphrase typed on a terminal (new ones always are).
    #[arg(short = 'y', long, global = true)]
    verify_passphrase: bool,
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
    #[command(subcommand, after_help = error::EXIT_CODES)]
    Luks(Box<luks::LuksCommand>),
}

/// What every command gets: the key manager, the context, output options.
pub(crate) struct Env {
    /// The configuration (backend-specific commands rebuild their backend from it).
    #[cfg_attr(not(feature = "barbican"), allow(dead_code))]
    config: Config,
    km: Arc<dyn KeyManager>,
    ctx: Context,
    json: bool,
}

/// Parses arguments, runs the command, prints errors, returns the exit code.
pub(crate) fn main() -> ExitCode {
    let json_wanted = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if json_wanted {
                // The message without the usage and help lines clap adds.
                let text = e.to_string();
                let message: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                    .filter(|l| !l.is_empty())
                    .collect();
                let message = message.join(" ");
                report_json("usage", message.trim_start_matches("error: "));
            } else {
                let _ = e.print();
            }
            // Wrong parameters are exit 1, as cryptsetup's.
            return ExitCode::from(1);
        }
    };
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
    // Ctrl-C during a passphrase prompt must not leave the terminal without echo;
    // during a reencryption the first one stops it at the end of its hotzone.
    runtime.spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            if luks::defer_interrupt() {
                continue;
            }
            pass::restore_terminal();
            eprintln!();
            std::process::exit(130);
        }
    });
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let (code, kind) = error::classify(&e);
            // Names in messages come from users and servers: control
            // characters are shown escaped, never sent to the terminal.
            let message: String = format!("{e:#}")
                .chars()
                .flat_map(|c| {
                    if c.is_control() {
                        c.escape_debug().collect::<Vec<_>>()
                    } else {
                        vec![c]
                    }
                })
                .collect();
            if json {
                report_json(kind, &message);
            } else {
                eprintln!("keymgr: error: {message}");
            }
            ExitCode::from(code)
        }
    }
}

/// Prints an error as `{"error": {"kind": ..., "message": ...}}` on stdout.
fn report_json(kind: &str, message: &str) {
    println!(
        "{}",
        serde_json::json!({ "error": { "kind": kind, "message": message } })
    );
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
    let path = store_path::default_store_path()
        .context("no configuration given and no user data directory for the embedded store")?;
    if !path.exists() {
        eprintln!(
            "keymgr: no configuration given; using the embedded store at {}",
            path.display()
        );
    }
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
pub(crate) fn context_for(config: &Config) -> Context {
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

/// A name or other user-given text with control characters escaped, so
/// that printing it can never drive the terminal.
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
