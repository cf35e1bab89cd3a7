//! `keymgr secret ...`: the key manager operations.

use std::path::PathBuf;

use super::shown;
use clap::{Args, Subcommand};
use keymgr::{Consumer, KeySpec, ListQuery, NewSecret, SecretId, SecretKind, SecretMetadata};

use super::error::CliError;
use super::io::{prepare_output, print_json, read_secret_input, write_output};
use super::Env;

/// The most payload bytes `secret store` reads (the embedded store's limit;
/// Barbican's default limit is lower and enforced by the server).
const MAX_STORE_PAYLOAD: usize = 1 << 20;

#[derive(Debug, Subcommand)]
pub(super) enum SecretCommand {
    /// Generate a new symmetric key in the key manager; prints its id.
    Create {
        /// Algorithm (only `aes`).
        #[arg(long, default_value = "aes")]
        algorithm: String,
        /// Key length in bits: 128, 192, 256 or 512.
        #[arg(long, visible_alias = "bit-length", default_value_t = 256)]
        bits: u32,
        /// Name.
        #[arg(long)]
        name: Option<String>,
        /// Mode label, e.g. xts.
        #[arg(long)]
        mode: Option<String>,
        /// Expiration, RFC 3339 (e.g. 2030-01-01T00:00:00Z).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        expiration: Option<time::OffsetDateTime>,
    },
    /// Store your own secret (bring your own key); prints its id.
    Store {
        /// symmetric, passphrase, opaque, private, public or certificate.
        #[arg(long, visible_alias = "secret-type")]
        kind: SecretKind,
        /// File with the secret bytes, `-` for stdin (every byte counts; at most 1 MiB).
        #[arg(long, value_name = "FILE", default_value = "-")]
        file: PathBuf,
        /// Name.
        #[arg(long)]
        name: Option<String>,
        /// Algorithm, e.g. aes.
        #[arg(long)]
        algorithm: Option<String>,
        /// Length in bits (default for symmetric: the payload's; must match it).
        #[arg(long, visible_alias = "bit-length")]
        bits: Option<u32>,
        /// Mode label.
        #[arg(long)]
        mode: Option<String>,
        /// Expiration, RFC 3339 (e.g. 2030-01-01T00:00:00Z).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        expiration: Option<time::OffsetDateTime>,
    },
    /// Fetch a secret's bytes into a file (or `-` for stdout, not a terminal).
    Get {
        /// Secret id (UUID or href).
        id: SecretId,
        /// Where to write the bytes: a new file (mode 0600), or `-` for stdout (not a terminal).
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
        /// Replace an existing output file (atomically).
        #[arg(long)]
        force: bool,
    },
    /// Show a secret's metadata (never its bytes).
    Metadata {
        /// Secret id.
        id: SecretId,
    },
    /// List the project's secrets.
    List {
        /// Only this kind.
        #[arg(long, visible_alias = "secret-type")]
        kind: Option<SecretKind>,
        /// Only this name.
        #[arg(long)]
        name: Option<String>,
        /// Page size (default: every secret, all pages).
        #[arg(long)]
        limit: Option<usize>,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Delete a secret (refused while it has consumers, unless --force).
    Delete {
        /// Secret id.
        id: SecretId,
        /// Delete even with consumers.
        #[arg(long)]
        force: bool,
    },
    /// Copy a secret under a new id; prints the new id.
    Clone {
        /// Secret id.
        id: SecretId,
    },
    /// Manage the resources registered as using a secret.
    #[command(subcommand)]
    Consumer(ConsumerCommand),
    /// Barbican ACLs: who besides the project's members may read a secret.
    #[cfg(feature = "barbican")]
    #[command(subcommand)]
    Acl(super::acl::AclCommand),
}

#[derive(Debug, Subcommand)]
pub(super) enum ConsumerCommand {
    /// Register a consumer.
    Add(ConsumerArgs),
    /// Remove a consumer.
    Remove(ConsumerArgs),
    /// List consumers.
    List {
        /// Secret id.
        id: SecretId,
    },
}

#[derive(Debug, Args)]
pub(super) struct ConsumerArgs {
    /// Secret id.
    id: SecretId,
    /// Service, e.g. cinder.
    #[arg(long)]
    service: String,
    /// Resource type, e.g. volume.
    #[arg(long)]
    resource_type: String,
    /// Resource id.
    #[arg(long)]
    resource_id: String,
}

impl ConsumerArgs {
    fn consumer(&self) -> Consumer {
        Consumer::new(&self.service, &self.resource_type, &self.resource_id)
    }
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2030-01-01T00:00:00Z: {e}"))
}

fn print_id(env: &Env, id: &SecretId) -> anyhow::Result<()> {
    if env.json {
        print_json(&serde_json::json!({ "id": id }))
    } else {
        println!("{id}");
        Ok(())
    }
}

fn print_metadata(env: &Env, m: &SecretMetadata) -> anyhow::Result<()> {
    if env.json {
        return print_json(m);
    }
    let opt = |o: &Option<String>| o.as_deref().map_or_else(|| "-".into(), shown);
    println!("id:          {}", m.id);
    println!("kind:        {}", m.kind);
    println!("name:        {}", opt(&m.name));
    println!("algorithm:   {}", opt(&m.algorithm));
    println!(
        "bit length:  {}",
        m.bit_length.map_or("-".into(), |b| b.to_string())
    );
    println!("mode:        {}", opt(&m.mode));
    println!(
        "created:     {}",
        m.created.map_or("-".into(), |t| t.to_string())
    );
    println!(
        "expiration:  {}",
        m.expiration.map_or("-".into(), |t| t.to_string())
    );
    for c in &m.consumers {
        println!(
            "consumer:    {} {} {}",
            shown(&c.service),
            shown(&c.resource_type),
            shown(&c.resource_id)
        );
    }
    Ok(())
}

/// Runs one `secret` command.
pub(super) async fn run(env: &Env, cmd: &SecretCommand) -> anyhow::Result<()> {
    let (km, ctx) = (&env.km, &env.ctx);
    match cmd {
        SecretCommand::Create {
            algorithm,
            bits,
            name,
            mode,
            expiration,
        } => {
            let spec = KeySpec {
                algorithm: algorithm.clone(),
                bit_length: *bits,
                mode: mode.clone(),
                name: name.clone(),
                expiration: *expiration,
            };
            print_id(env, &km.create_key(ctx, &spec).await?)
        }
        SecretCommand::Store {
            kind,
            file,
            name,
            algorithm,
            bits,
            mode,
            expiration,
        } => {
            let bytes = read_secret_input(file, "--file", MAX_STORE_PAYLOAD)?;
            if let Some(b) = bits {
                if *kind == SecretKind::Symmetric && *b as usize != bytes.len() * 8 {
                    return Err(CliError::usage(format!(
                        "--bits {b} disagrees with the payload: {} bytes are {} bits",
                        bytes.len(),
                        bytes.len() * 8
                    ))
                    .into());
                }
            }
            let mut new = NewSecret::new(*kind, bytes);
            new.name = name.clone();
            if algorithm.is_some() {
                new.algorithm = algorithm.clone();
            }
            if bits.is_some() {
                new.bit_length = *bits;
            }
            new.mode = mode.clone();
            new.expiration = *expiration;
            print_id(env, &km.store(ctx, new).await?)
        }
        SecretCommand::Get { id, output, force } => {
            let out = prepare_output(output, "--output", *force, None)?;
            let secret = km.get(ctx, id).await?;
            write_output(out, secret.payload.expose(), output)?;
            if env.json && output.as_os_str() != "-" {
                print_json(&secret.metadata)?;
            }
            Ok(())
        }
        SecretCommand::Metadata { id } => print_metadata(env, &km.metadata(ctx, id).await?),
        SecretCommand::List {
            kind,
            name,
            limit,
            offset,
        } => {
            if *limit == Some(0) {
                return Err(CliError::usage(
                    "--limit 0: allowed 1 or more secrets a page (leave it out for all)".into(),
                )
                .into());
            }
            let query = ListQuery {
                kind: *kind,
                name: name.clone(),
                limit: *limit,
                offset: *offset,
            };
            let secrets = match limit {
                Some(_) => km.list(ctx, &query).await?.secrets,
                None => km.list_all(ctx, &query).await?,
            };
            if env.json {
                return print_json(&secrets);
            }
            for m in secrets {
                println!(
                    "{}  {:<11}  {}",
                    m.id,
                    m.kind.as_str(),
                    m.name.as_deref().map_or_else(|| "-".into(), shown)
                );
            }
            Ok(())
        }
        SecretCommand::Delete { id, force } => {
            km.delete(ctx, id, *force).await?;
            if env.json {
                print_json(&serde_json::json!({ "deleted": id }))?;
            }
            Ok(())
        }
        SecretCommand::Clone { id } => print_id(env, &km.clone_secret(ctx, id).await?),
        #[cfg(feature = "barbican")]
        SecretCommand::Acl(a) => super::acl::run(&env.config, env.json, a).await,
        SecretCommand::Consumer(c) => match c {
            ConsumerCommand::Add(a) => {
                km.add_consumer(ctx, &a.id, &a.consumer()).await?;
                if env.json {
                    print_json(&serde_json::json!({ "added": a.consumer() }))?;
                }
                Ok(())
            }
            ConsumerCommand::Remove(a) => {
                km.remove_consumer(ctx, &a.id, &a.consumer()).await?;
                if env.json {
                    print_json(&serde_json::json!({ "removed": a.consumer() }))?;
                }
                Ok(())
            }
            ConsumerCommand::List { id } => {
                let consumers = km.list_consumers(ctx, id).await?;
                if env.json {
                    return print_json(&consumers);
                }
                for c in consumers {
                    println!(
                        "{} {} {}",
                        shown(&c.service),
                        shown(&c.resource_type),
                        shown(&c.resource_id)
                    );
                }
                Ok(())
            }
        },
    }
}
