//! `keymgr-examples`: the example volume, share, ephemeral and image
//! services on the command line.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use examples::ephemeral::EphemeralService;
use examples::image::{EncryptOptions, ImageService};
use examples::share::ShareCmd;
use examples::volume::{CreateVolume, Encryption, VolumeHandle, VolumeService};
use examples::ServiceConfig;
use keymgr::{Context, KeySpec, NewSecret, SecretId, SecretKind};

/// Example storage services (Cinder, Manila, Nova, Glance semantics) on keymgr and luks.
#[derive(Parser)]
#[command(name = "keymgr-examples", version)]
struct Cli {
    /// keymgr TOML config (may also hold [examples] and [ephemeral_storage_encryption]);
    /// default: a sealed mock store inside --state-dir.
    #[arg(long, global = true, env = "KEYMGR_EXAMPLES_CONFIG")]
    config: Option<PathBuf>,
    /// State directory: SQLite database and files standing in for block devices.
    #[arg(
        long,
        global = true,
        default_value = "examples-state",
        env = "KEYMGR_EXAMPLES_STATE_DIR"
    )]
    state_dir: PathBuf,
    /// Act for this project (overrides [context]).
    #[arg(long, global = true)]
    project: Option<String>,
    /// Act as this user (overrides [context]).
    #[arg(long, global = true)]
    user: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Cinder-like volumes with bring-your-own-key encryption.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Manila-like shares with bring-your-own-key encryption.
    #[command(subcommand)]
    Share(ShareCmd),
    /// Nova-like encrypted ephemeral disks.
    #[command(subcommand)]
    Ephemeral(EphCmd),
    /// Glance-like encrypted images.
    #[command(subcommand)]
    Image(ImageCmd),
    /// The caller's own secrets (to bring as keys).
    #[command(subcommand)]
    Key(KeyCmd),
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create an AES key (or store a passphrase with --passphrase-file).
    Create {
        /// Key bits.
        #[arg(long, default_value_t = 256)]
        bits: u32,
        /// Store this file's text as a passphrase secret instead.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Show a secret's metadata and consumers.
    Show {
        /// Secret id.
        id: String,
    },
    /// Delete a secret (refused while it has consumers, unless --force).
    Delete {
        /// Secret id.
        id: String,
        /// Delete even with consumers.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum VolumeCmd {
    /// Create a volume type (encrypted with --encrypted).
    TypeCreate {
        /// Name.
        name: String,
        /// Encrypted type.
        #[arg(long)]
        encrypted: bool,
        /// As Cinder names it: luks (LUKS1), luks2, plain, or an os-brick encryptor class.
        #[arg(long, default_value = "luks2")]
        provider: String,
        /// Cipher.
        #[arg(long, default_value = "aes-xts-plain64")]
        cipher: String,
        /// Key size in bits (256 or 512).
        #[arg(long, default_value_t = 256)]
        key_size: u32,
    },
    /// List volume types.
    TypeList,
    /// Create a volume (empty, or from --snapshot, --source-vol or --image).
    Create {
        /// Size in MiB.
        #[arg(long, default_value_t = 0)]
        size: u64,
        /// Volume type.
        #[arg(long = "type")]
        vtype: Option<String>,
        /// Your key to use (cloned: the volume owns its copy).
        #[arg(long)]
        encryption_key_id: Option<String>,
        /// Source snapshot.
        #[arg(long)]
        snapshot: Option<String>,
        /// Source volume.
        #[arg(long)]
        source_vol: Option<String>,
        /// Source image.
        #[arg(long)]
        image: Option<String>,
        /// Format with the legacy mangled passphrase (reproduces old volumes).
        #[arg(long, hide = true)]
        legacy_passphrase: bool,
        /// With --image of an encrypted image: reencrypt the volume under a volume key
        /// and a secret of its own (instead of the image's, with a clone of its secret).
        #[arg(long, requires = "image")]
        reencrypt: bool,
    },
    /// List volumes.
    List,
    /// Attach (opens the device; fixes legacy passphrases).
    Attach {
        /// Volume id.
        id: String,
    },
    /// Write text to an attached volume.
    Write {
        /// Volume id.
        id: String,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Text.
        #[arg(long)]
        data: String,
    },
    /// Read bytes of an attached volume (as text).
    Read {
        /// Volume id.
        id: String,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Byte count.
        #[arg(long, default_value_t = 64)]
        length: usize,
    },
    /// Detach.
    Detach {
        /// Volume id.
        id: String,
    },
    /// Extend a detached volume.
    Extend {
        /// Volume id.
        id: String,
        /// New size in MiB.
        #[arg(long)]
        size: u64,
    },
    /// Rotate a detached volume's key: reencrypt it under a new volume key opened by a
    /// new secret (yours with --new-key-id, cloned; else a new one); the old secret is
    /// deleted. An interrupted rotation is resumed by running it again.
    RotateKey {
        /// Volume id.
        id: String,
        /// Your new key (cloned: the volume owns its copy).
        #[arg(long)]
        new_key_id: Option<String>,
    },
    /// Delete a volume and its key.
    Delete {
        /// Volume id.
        id: String,
    },
    /// Snapshot a volume.
    SnapshotCreate {
        /// Volume id.
        id: String,
    },
    /// Delete a snapshot and its key.
    SnapshotDelete {
        /// Snapshot id.
        id: String,
    },
    /// Transfer a volume to another project (its key moves too).
    Transfer {
        /// Volume id.
        id: String,
        /// Recipient project.
        #[arg(long)]
        to_project: String,
        /// Recipient user.
        #[arg(long)]
        to_user: String,
    },
}

#[derive(Subcommand)]
enum EphCmd {
    /// Boot an instance with an encrypted ephemeral disk.
    Boot {
        /// Disk size in MiB.
        #[arg(long, default_value_t = 1)]
        size: u64,
        /// Backing file (default: a new file in the state dir).
        #[arg(long)]
        backing_file: Option<PathBuf>,
    },
    /// List instances.
    List,
    /// Write text to an instance's disk.
    Write {
        /// Instance id.
        id: String,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Text.
        #[arg(long)]
        data: String,
    },
    /// Read an instance's disk (as text).
    Read {
        /// Instance id.
        id: String,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Byte count.
        #[arg(long, default_value_t = 64)]
        length: usize,
    },
    /// Delete an instance: disk wiped, key deleted.
    Delete {
        /// Instance id.
        id: String,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Create an image from --file or --from-volume.
    Create {
        /// Name.
        name: String,
        /// Plaintext file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Upload this volume (encrypted volumes keep their LUKS container; key cloned).
        #[arg(long)]
        from_volume: Option<String>,
        /// Encrypt the file.
        #[arg(long)]
        encrypt: bool,
        /// raw (LUKS container) or qcow2 (qcow2 with LUKS).
        #[arg(long, default_value = "raw")]
        disk_format: String,
        /// LUKS version of a raw container: luks1 or luks2.
        #[arg(long, default_value = "luks2")]
        luks: String,
        /// Secret type: symmetric or passphrase.
        #[arg(long, default_value = "symmetric")]
        secret_type: String,
        /// on_image_deletion or do_not_delete.
        #[arg(long, default_value = "on_image_deletion")]
        deletion_policy: String,
    },
    /// List images.
    List,
    /// Show an image.
    Show {
        /// Image id.
        id: String,
    },
    /// Decrypt an image to a file.
    Download {
        /// Image id.
        id: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Delete an image (its key per the deletion policy).
    Delete {
        /// Image id.
        id: String,
    },
}

fn load(cli: &Cli) -> anyhow::Result<ServiceConfig> {
    std::fs::create_dir_all(&cli.state_dir)
        .with_context(|| format!("creating {}", cli.state_dir.display()))?;
    let text = match &cli.config {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => examples::config::default_mock_toml(&cli.state_dir),
    };
    let mut cfg = ServiceConfig::from_toml(&cli.state_dir, &text)?;
    if cli.project.is_some() || cli.user.is_some() {
        cfg.ctx = Context::new(
            cli.project
                .clone()
                .unwrap_or_else(|| cfg.ctx.project_id.clone()),
            cli.user.clone().unwrap_or_else(|| cfg.ctx.user_id.clone()),
        );
    }
    Ok(cfg)
}

fn show<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn read(h: &VolumeHandle, offset: u64, length: usize) -> anyhow::Result<()> {
    let mut buf = vec![0u8; length];
    h.read_at(&mut buf, offset)?;
    println!("{}", String::from_utf8_lossy(&buf).trim_end_matches('\0'));
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = load(&cli)?;
    match cli.cmd {
        Cmd::Key(c) => key(&cfg, c).await,
        Cmd::Volume(c) => volume(VolumeService::new(cfg)?, c).await,
        Cmd::Share(c) => {
            // `share read --output -` already wrote raw bytes to stdout
            let out = examples::share::run_cli(&cfg, c).await?;
            if !out.is_empty() {
                println!("{out}");
            }
            Ok(())
        }
        Cmd::Ephemeral(c) => ephemeral(EphemeralService::new(cfg)?, c).await,
        Cmd::Image(c) => image(ImageService::new(cfg)?, c).await,
    }
}

async fn key(cfg: &ServiceConfig, c: KeyCmd) -> anyhow::Result<()> {
    let (km, ctx) = (&cfg.km, &cfg.ctx);
    match c {
        KeyCmd::Create {
            bits,
            passphrase_file,
        } => {
            let id = match passphrase_file {
                Some(p) => {
                    let text = zeroize::Zeroizing::new(std::fs::read(&p)?);
                    km.store(ctx, NewSecret::new(SecretKind::Passphrase, text.to_vec()))
                        .await?
                }
                None => km.create_key(ctx, &KeySpec::aes(bits)).await?,
            };
            println!("{id}");
        }
        KeyCmd::Show { id } => show(&km.metadata(ctx, &SecretId::parse(&id)?).await?)?,
        KeyCmd::Delete { id, force } => km.delete(ctx, &SecretId::parse(&id)?, force).await?,
    }
    Ok(())
}

async fn volume(svc: VolumeService, c: VolumeCmd) -> anyhow::Result<()> {
    match c {
        VolumeCmd::TypeCreate {
            name,
            encrypted,
            provider,
            cipher,
            key_size,
        } => {
            let enc = encrypted.then_some(Encryption {
                provider,
                cipher,
                key_size,
            });
            show(&svc.create_type(&name, enc)?)?
        }
        VolumeCmd::TypeList => show(&svc.list_types()?)?,
        VolumeCmd::Create {
            size,
            vtype,
            encryption_key_id,
            snapshot,
            source_vol,
            image,
            legacy_passphrase,
            reencrypt,
        } => show(
            &svc.create(&CreateVolume {
                size_mib: size,
                volume_type: vtype,
                encryption_key_id,
                snapshot_id: snapshot,
                source_volid: source_vol,
                image_id: image,
                legacy_passphrase,
                reencrypt,
            })
            .await?,
        )?,
        VolumeCmd::List => show(&svc.list()?)?,
        VolumeCmd::Attach { id } => {
            let h = svc.attach(&id).await?;
            println!(
                "volume {id} attached (userspace handle, {} bytes)",
                h.size()?
            );
        }
        VolumeCmd::Write { id, offset, data } => {
            svc.handle(&id).await?.write_at(data.as_bytes(), offset)?;
            println!("wrote {} bytes at {offset}", data.len());
        }
        VolumeCmd::Read { id, offset, length } => read(&svc.handle(&id).await?, offset, length)?,
        VolumeCmd::Detach { id } => {
            svc.detach(&id)?;
            println!("volume {id} detached");
        }
        VolumeCmd::Extend { id, size } => show(&svc.extend(&id, size)?)?,
        VolumeCmd::RotateKey { id, new_key_id } => {
            show(&svc.rotate_key(&id, new_key_id.as_deref()).await?)?
        }
        VolumeCmd::Delete { id } => {
            svc.delete(&id).await?;
            println!("volume {id} deleted");
        }
        VolumeCmd::SnapshotCreate { id } => show(&svc.snapshot(&id).await?)?,
        VolumeCmd::SnapshotDelete { id } => {
            svc.delete_snapshot(&id).await?;
            println!("snapshot {id} deleted");
        }
        VolumeCmd::Transfer {
            id,
            to_project,
            to_user,
        } => show(
            &svc.transfer(&id, &Context::new(to_project, to_user))
                .await?,
        )?,
    }
    Ok(())
}

async fn ephemeral(svc: EphemeralService, c: EphCmd) -> anyhow::Result<()> {
    match c {
        EphCmd::Boot { size, backing_file } => {
            show(&svc.boot(size, backing_file.as_deref()).await?)?
        }
        EphCmd::List => show(&svc.list()?)?,
        EphCmd::Write { id, offset, data } => {
            svc.open(&id).await?.write_at(data.as_bytes(), offset)?;
            println!("wrote {} bytes at {offset}", data.len());
        }
        EphCmd::Read { id, offset, length } => read(&svc.open(&id).await?, offset, length)?,
        EphCmd::Delete { id } => {
            svc.delete(&id).await?;
            println!("instance {id} deleted");
        }
    }
    Ok(())
}

async fn image(svc: ImageService, c: ImageCmd) -> anyhow::Result<()> {
    match c {
        ImageCmd::Create {
            name,
            file,
            from_volume,
            encrypt,
            disk_format,
            luks,
            secret_type,
            deletion_policy,
        } => {
            let img = match (file, from_volume) {
                (Some(f), None) if encrypt => {
                    let secret_kind = match secret_type.as_str() {
                        "passphrase" => SecretKind::Passphrase,
                        "symmetric" => SecretKind::Symmetric,
                        other => anyhow::bail!("--secret-type {other:?}: symmetric or passphrase"),
                    };
                    if !matches!(
                        deletion_policy.as_str(),
                        "on_image_deletion" | "do_not_delete"
                    ) {
                        anyhow::bail!("--deletion-policy {deletion_policy:?}: on_image_deletion or do_not_delete");
                    }
                    let opts = EncryptOptions {
                        disk_format,
                        luks_type: luks.parse()?,
                        secret_kind,
                        deletion_policy,
                    };
                    svc.create_encrypted(&name, &f, &opts).await?
                }
                (Some(f), None) => svc.create_plain(&name, &f).await?,
                (None, Some(v)) => svc.create_from_volume(&name, &v).await?,
                _ => anyhow::bail!("give exactly one of --file or --from-volume"),
            };
            show(&img)?
        }
        ImageCmd::List => show(&svc.list()?)?,
        ImageCmd::Show { id } => show(&svc.get(&id)?)?,
        ImageCmd::Download { id, out } => {
            let data = zeroize::Zeroizing::new(svc.read_plaintext(&id).await?);
            write_private(&out, &data)?;
            println!("wrote {} bytes to {}", data.len(), out.display());
        }
        ImageCmd::Delete { id } => {
            let warnings = svc.delete(&id).await?;
            println!("image {id} deleted ({} warning(s))", warnings.len());
        }
    }
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    Ok(())
}
