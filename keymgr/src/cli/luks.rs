//! `keymgr luks ...`: LUKS volumes with cryptsetup's option names and
//! key-file rules (every byte of `--key-file` counts; `-` is stdin).

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use keymgr::luks::{
    self, FormatOptions, HashAlg, KeyslotOptions, LuksType, PbkdfOptions, PbkdfType, Unlock, Volume,
};
use keymgr::passphrase::passphrase_for;
use keymgr::SecretId;
use zeroize::Zeroizing;

use super::io::{open_private, print_json, read_secret_input};

/// Where the passphrase comes from.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Passphrase file; every byte counts (no newline stripping); `-` for stdin.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "key_ref",
        required_unless_present = "key_ref"
    )]
    key_file: Option<PathBuf>,
    /// Fetch this secret from the configured key manager and use os-brick's
    /// passphrase rule (passphrase secrets as is, other kinds as lower-case hex).
    #[arg(long, value_name = "ID")]
    key_ref: Option<SecretId>,
}

/// Where a new passphrase comes from.
#[derive(Debug, Args)]
pub struct NewKeyArgs {
    /// New passphrase file; every byte counts.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "new_key_ref",
        required_unless_present = "new_key_ref"
    )]
    new_key_file: Option<PathBuf>,
    /// New passphrase from this key manager secret (os-brick rule).
    #[arg(long, value_name = "ID")]
    new_key_ref: Option<SecretId>,
}

/// cryptsetup's KDF options.
#[derive(Debug, Args, Default)]
pub struct PbkdfArgs {
    /// pbkdf2, argon2i or argon2id.
    #[arg(long)]
    pbkdf: Option<String>,
    /// KDF time in milliseconds (benchmarked as cryptsetup does).
    #[arg(long, value_name = "MS")]
    iter_time: Option<u32>,
    /// PBKDF2 iterations or Argon2 passes, without benchmark.
    #[arg(long, value_name = "N")]
    pbkdf_force_iterations: Option<u32>,
    /// Argon2 memory in KiB.
    #[arg(long, value_name = "KIB")]
    pbkdf_memory: Option<u32>,
    /// Argon2 threads.
    #[arg(long, value_name = "N")]
    pbkdf_parallel: Option<u32>,
}

impl PbkdfArgs {
    fn options(&self, hash: Option<HashAlg>) -> anyhow::Result<PbkdfOptions> {
        Ok(PbkdfOptions {
            pbkdf: self
                .pbkdf
                .as_deref()
                .map(str::parse::<PbkdfType>)
                .transpose()?,
            hash,
            iter_time_ms: self.iter_time,
            force_iterations: self.pbkdf_force_iterations,
            memory_kib: self.pbkdf_memory,
            parallel: self.pbkdf_parallel,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum LuksCommand {
    /// Format DEVICE (a file or block device) as a LUKS volume.
    Format {
        /// The device or image file.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// luks1 or luks2.
        #[arg(long = "type", default_value = "luks2")]
        luks_type: String,
        /// Cipher spec, e.g. aes-xts-plain64 or aes-cbc-essiv:sha256.
        #[arg(long)]
        cipher: Option<String>,
        /// Volume key size in bits.
        #[arg(long, value_name = "BITS")]
        key_size: Option<u32>,
        /// Hash for PBKDF2, AF and the digest (sha1, sha256, sha512).
        #[arg(long)]
        hash: Option<String>,
        #[command(flatten)]
        pbkdf: PbkdfArgs,
        /// Data sector size: 512 or 4096 (LUKS2).
        #[arg(long)]
        sector_size: Option<u32>,
        /// UUID of the new volume.
        #[arg(long)]
        uuid: Option<String>,
        /// Label (LUKS2).
        #[arg(long)]
        label: Option<String>,
        /// Data offset in 512-byte sectors.
        #[arg(long, value_name = "SECTORS")]
        offset: Option<u64>,
        /// Align the data to this many 512-byte sectors (LUKS1; 2048 = 1 MiB).
        #[arg(long, value_name = "SECTORS")]
        align_payload: Option<u64>,
        /// Keyslot of the passphrase.
        #[arg(long)]
        key_slot: Option<u32>,
    },
    /// Show the header (never keys).
    Dump {
        /// The device.
        device: PathBuf,
    },
    /// Check a passphrase: exit 0 when it opens, 2 when no keyslot matches, 1 on other errors.
    TestPassphrase {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Only try this keyslot.
        #[arg(long)]
        key_slot: Option<u32>,
    },
    /// Add a passphrase in a new keyslot.
    AddKey {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        new_key: NewKeyArgs,
        /// Keyslot for the new passphrase.
        #[arg(long)]
        key_slot: Option<u32>,
        #[command(flatten)]
        pbkdf: PbkdfArgs,
    },
    /// Replace a passphrase (the new one is written before the old one is wiped).
    ChangeKey {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        new_key: NewKeyArgs,
        /// Only change this keyslot.
        #[arg(long)]
        key_slot: Option<u32>,
        #[command(flatten)]
        pbkdf: PbkdfArgs,
    },
    /// Remove the keyslot a passphrase opens.
    RemoveKey {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Write the plaintext of the data segment to OUT.
    Read {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Output file (`-` for stdout).
        #[arg(long)]
        output: PathBuf,
        /// Start at this plaintext byte.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Bytes to read (default: to the end).
        #[arg(long)]
        length: Option<u64>,
    },
    /// Encrypt IN into the data segment at --offset.
    Write {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Input file (`-` for stdin).
        #[arg(long)]
        input: PathBuf,
        /// Plaintext byte offset.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Save the header and keyslot areas to FILE (mode 0600).
    HeaderBackup {
        /// The device.
        device: PathBuf,
        /// Backup file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Restore the header and keyslot areas from FILE.
    HeaderRestore {
        /// The device.
        device: PathBuf,
        /// Backup file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Activate a dm-crypt mapping through cryptsetup (needs device-mapper).
    #[cfg(feature = "kernel")]
    Open {
        /// The device.
        device: PathBuf,
        /// Mapping name (/dev/mapper/NAME).
        name: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove a dm-crypt mapping.
    #[cfg(feature = "kernel")]
    Close {
        /// Mapping name.
        name: String,
    },
}

/// Resolves a passphrase: a key file's exact bytes, or a secret through os-brick's rule.
async fn passphrase(
    file: Option<&Path>,
    key_ref: Option<&SecretId>,
    cli: &super::Cli,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if let Some(f) = file {
        return read_secret_input(f);
    }
    let id = key_ref.context("give --key-file or --key-ref")?;
    let env = super::open_env(cli)?;
    let secret = env.km.get(&env.ctx, id).await?;
    let pass = passphrase_for(secret.kind(), &secret.payload)?;
    Ok(Zeroizing::new(pass.as_bytes().to_vec()))
}

async fn key(k: &KeyArgs, cli: &super::Cli) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    passphrase(k.key_file.as_deref(), k.key_ref.as_ref(), cli).await
}

async fn new_key(k: &NewKeyArgs, cli: &super::Cli) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    passphrase(k.new_key_file.as_deref(), k.new_key_ref.as_ref(), cli).await
}

fn parse_hash(h: &Option<String>) -> anyhow::Result<Option<HashAlg>> {
    Ok(h.as_deref()
        .map(|h| HashAlg::parse(h, "--hash"))
        .transpose()?)
}

fn progress(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total < (64 << 20) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Runs one `luks` command and returns the exit code.
pub async fn run(cli: &super::Cli, cmd: &LuksCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LuksCommand::Format {
            device,
            key: k,
            luks_type,
            cipher,
            key_size,
            hash,
            pbkdf,
            sector_size,
            uuid,
            label,
            offset,
            align_payload,
            key_slot,
        } => {
            let hash = parse_hash(hash)?;
            let opts = FormatOptions {
                luks_type: luks_type.parse::<LuksType>()?,
                cipher: cipher.clone(),
                key_size_bits: *key_size,
                hash,
                pbkdf: pbkdf.options(hash)?,
                sector_size: *sector_size,
                uuid: uuid.clone(),
                label: label.clone(),
                offset_sectors: *offset,
                align_payload_sectors: *align_payload,
                key_slot: *key_slot,
                ..FormatOptions::default()
            };
            let pass = key(k, cli).await?;
            let info = luks::format(device, &opts, &pass)?;
            if cli.json {
                print_json(&serde_json::json!({
                    "version": info.version, "uuid": info.uuid, "keyslot": info.keyslot,
                    "data_offset": info.data_offset, "sector_size": info.sector_size,
                    "cipher": info.cipher, "key_size": info.key_size_bits,
                }))?;
            } else {
                println!(
                    "formatted {} as LUKS{} ({} {}-bit, sector {}), uuid {}, passphrase in keyslot {}",
                    device.display(), info.version, info.cipher, info.key_size_bits,
                    info.sector_size, info.uuid, info.keyslot
                );
            }
        }
        LuksCommand::Dump { device } => {
            let dump = Volume::open_read_only(device)?.dump();
            match (&dump.json, cli.json) {
                (Some(json), true) => print_json(json)?,
                (None, true) => print_json(&serde_json::json!({
                    "version": dump.version, "uuid": dump.uuid, "cipher": dump.cipher,
                    "key_size": dump.key_size_bits, "data_offset": dump.data_offset,
                    "hash": dump.hash,
                    "keyslots": dump.keyslots.iter().map(|k| k.id).collect::<Vec<_>>(),
                }))?,
                _ => print!("{}", dump.text()),
            }
        }
        LuksCommand::TestPassphrase {
            device,
            key: k,
            key_slot,
        } => {
            let pass = key(k, cli).await?;
            return match Volume::open_read_only(device)?.test_passphrase(&pass, *key_slot) {
                Ok(slot) => {
                    eprintln!("keyslot {slot} unlocked");
                    Ok(ExitCode::SUCCESS)
                }
                Err(luks::Error::NoMatchingKey) => {
                    eprintln!("keymgr: no key available with this passphrase");
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            };
        }
        LuksCommand::AddKey {
            device,
            key: k,
            new_key: n,
            key_slot,
            pbkdf,
        } => {
            let (pass, new) = (key(k, cli).await?, new_key(n, cli).await?);
            let mut vol = Volume::open(device)?;
            let opts = KeyslotOptions {
                key_slot: *key_slot,
                pbkdf: pbkdf.options(None)?,
            };
            let slot = vol.add_key(
                Unlock::Passphrase {
                    passphrase: &pass,
                    slot: None,
                },
                &new,
                &opts,
            )?;
            eprintln!("added keyslot {slot}");
        }
        LuksCommand::ChangeKey {
            device,
            key: k,
            new_key: n,
            key_slot,
            pbkdf,
        } => {
            let (pass, new) = (key(k, cli).await?, new_key(n, cli).await?);
            let mut vol = Volume::open(device)?;
            let opts = KeyslotOptions {
                key_slot: None,
                pbkdf: pbkdf.options(None)?,
            };
            let slot = vol.change_key(&pass, &new, *key_slot, &opts)?;
            eprintln!("passphrase changed, now in keyslot {slot}");
        }
        LuksCommand::RemoveKey { device, key: k } => {
            let pass = key(k, cli).await?;
            let slot = Volume::open(device)?.remove_key(&pass)?;
            eprintln!("removed keyslot {slot}");
        }
        LuksCommand::Read {
            device,
            key: k,
            output,
            offset,
            length,
        } => {
            let pass = key(k, cli).await?;
            let data = Volume::open_read_only(device)?.unlock(&pass, None)?;
            let size = data.size();
            if *offset > size {
                anyhow::bail!(
                    "--offset {offset} is past the end of the data segment ({size} bytes)"
                );
            }
            let len = length.unwrap_or(size - offset);
            if len > size - offset {
                anyhow::bail!("--offset {offset} --length {len} runs past the end of the data segment ({size} bytes)");
            }
            let mut out: Box<dyn Write> = if output.as_os_str() == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(open_private(output)?)
            };
            let bar = progress(len);
            data.export_to(&mut out, *offset, Some(len), &|n| {
                if let Some(b) = &bar {
                    b.set_position(n)
                }
            })?;
            out.flush()?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        }
        LuksCommand::Write {
            device,
            key: k,
            input,
            offset,
        } => {
            let pass = key(k, cli).await?;
            let data = Volume::open(device)?.unlock(&pass, None)?;
            let mut inp: Box<dyn Read> = if input.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(File::open(input).with_context(|| format!("opening {}", input.display()))?)
            };
            let total = if input.as_os_str() == "-" {
                0
            } else {
                std::fs::metadata(input)?.len()
            };
            if offset.saturating_add(total) > data.size() {
                anyhow::bail!(
                    "{} bytes at --offset {offset} do not fit the data segment ({} bytes)",
                    total,
                    data.size()
                );
            }
            let bar = progress(total);
            let written = data.import_from(&mut inp, *offset, &|n| {
                if let Some(b) = &bar {
                    b.set_position(n)
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            eprintln!("wrote {written} bytes");
        }
        LuksCommand::HeaderBackup { device, file } => {
            if file.exists() {
                anyhow::bail!(
                    "{} exists; refusing to overwrite a header backup",
                    file.display()
                );
            }
            Volume::open_read_only(device)?.backup_header(file)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
        }
        LuksCommand::HeaderRestore { device, file } => {
            Volume::restore_header(device, file)?;
        }
        #[cfg(feature = "kernel")]
        LuksCommand::Open {
            device,
            name,
            key: k,
        } => {
            let pass = key(k, cli).await?;
            luks::kernel::open(device, name, &pass)?;
        }
        #[cfg(feature = "kernel")]
        LuksCommand::Close { name } => luks::kernel::close(name)?,
    }
    Ok(ExitCode::SUCCESS)
}
