//! `keymgr luks ...`: LUKS volumes with cryptsetup's option names and
//! key-file rules (every byte of `--key-file` counts; `-` is stdin).

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use keymgr::passphrase::passphrase_for;
use keymgr::SecretId;
use luks::{
    self, FormatOptions, HashAlg, KeyslotOptions, LuksType, PbkdfOptions, PbkdfType, Unlock, Volume,
};
use zeroize::Zeroizing;

use super::confirm::{confirm, signature};
use super::error::CliError;
use super::io::{prepare_output, print_json, Output};
use super::pass::{self, Source};

/// Where the passphrase comes from. Without `--key-file` or `--key-ref` it is
/// typed on the terminal (no echo), or read as one line of standard input.
#[derive(Debug, Args)]
pub(super) struct KeyArgs {
    /// Passphrase file; every byte counts (no newline stripping); `-` for stdin.
    #[arg(short = 'd', long, value_name = "FILE", conflicts_with = "key_ref")]
    key_file: Option<PathBuf>,
    /// Use only this many bytes of the key file (1..=8388608 bytes).
    #[arg(short = 'l', long, value_name = "BYTES", requires = "key_file")]
    keyfile_size: Option<u64>,
    /// Skip this many bytes at the start of the key file.
    #[arg(long, value_name = "BYTES", requires = "key_file", default_value_t = 0)]
    keyfile_offset: u64,
    /// Fetch this secret from the configured key manager and use os-brick's
    /// passphrase rule (passphrase secrets as is, other kinds as lower-case hex).
    #[arg(long, value_name = "ID")]
    key_ref: Option<SecretId>,
}

/// Where a new passphrase comes from (typed twice on a terminal without a file or ref).
#[derive(Debug, Args)]
pub(super) struct NewKeyArgs {
    /// New passphrase file; every byte counts; `-` for stdin.
    #[arg(
        long,
        visible_alias = "new-keyfile",
        value_name = "FILE",
        conflicts_with = "new_key_ref"
    )]
    new_key_file: Option<PathBuf>,
    /// Use only this many bytes of the new key file (1..=8388608 bytes).
    #[arg(long, value_name = "BYTES", requires = "new_key_file")]
    new_keyfile_size: Option<u64>,
    /// Skip this many bytes at the start of the new key file.
    #[arg(
        long,
        value_name = "BYTES",
        requires = "new_key_file",
        default_value_t = 0
    )]
    new_keyfile_offset: u64,
    /// New passphrase from this key manager secret (os-brick rule).
    #[arg(long, value_name = "ID")]
    new_key_ref: Option<SecretId>,
}

/// cryptsetup's KDF options.
#[derive(Debug, Args, Default)]
pub(super) struct PbkdfArgs {
    /// pbkdf2, argon2i or argon2id.
    #[arg(long)]
    pbkdf: Option<String>,
    /// KDF time in milliseconds (benchmarked as cryptsetup does).
    #[arg(short = 'i', long, value_name = "MS")]
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
pub(super) enum LuksCommand {
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
        #[arg(short = 'c', long)]
        cipher: Option<String>,
        /// Volume key size in bits (128..=512, a multiple of 8).
        #[arg(short = 's', long, value_name = "BITS")]
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
        /// Keyslot of the passphrase (0..=31 LUKS2, 0..=7 LUKS1).
        #[arg(short = 'S', long)]
        key_slot: Option<u32>,
    },
    /// Show the header (never keys).
    Dump {
        /// The device.
        device: PathBuf,
    },
    /// Check a passphrase: exit 0 when it opens, 2 when no keyslot matches, 4 wrong device, 1 other errors.
    TestPassphrase {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Only try this keyslot.
        #[arg(short = 'S', long)]
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
        #[arg(short = 'S', long)]
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
        #[arg(short = 'S', long)]
        key_slot: Option<u32>,
        #[command(flatten)]
        pbkdf: PbkdfArgs,
    },
    /// Remove the keyslot a passphrase opens (asks before removing the last one).
    RemoveKey {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Remove keyslot SLOT; unless -q, a passphrase of the volume is asked
    /// first (and the last keyslot is removed only after confirmation).
    KillSlot {
        /// The device.
        device: PathBuf,
        /// The keyslot to remove.
        slot: u32,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Write the plaintext of the data segment to OUT.
    Read {
        /// The device.
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Output file, created with mode 0600 (`-` for stdout, never a terminal).
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Replace an existing output file (atomically), or write to an existing device node.
        #[arg(long)]
        force: bool,
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
    /// Reencrypt DEVICE offline under a new volume key (`cryptsetup reencrypt
    /// --force-offline-reencrypt`), or decrypt it (`--decrypt`, detached header):
    /// resumable after any interruption, by this tool or by cryptsetup. Keyslots of
    /// the given passphrase are re-wrapped, the other old keyslots removed at the end.
    Reencrypt {
        /// The device (the data device with --header).
        device: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        new_key: NewKeyArgs,
        /// Detached LUKS2 header file.
        #[arg(long, value_name = "FILE")]
        header: Option<PathBuf>,
        /// Only resume a reencryption in progress (refuse to start one).
        #[arg(long, conflicts_with = "init_only")]
        resume_only: bool,
        /// Only write the reencryption state (no data is touched).
        #[arg(long)]
        init_only: bool,
        /// Encrypt a plaintext device in place: the header takes the first half of
        /// --reduce-device-size, the data moves up by as much; the last
        /// --reduce-device-size bytes of the device are given up (shrink the file
        /// system first).
        #[arg(long, requires = "reduce_device_size", conflicts_with = "decrypt")]
        encrypt: bool,
        /// With --encrypt: bytes given up at the end (e.g. 32M: data offset 16 MiB).
        #[arg(long, value_name = "SIZE")]
        reduce_device_size: Option<String>,
        /// Decrypt to plaintext (needs --header, as cryptsetup 2.6).
        #[arg(long)]
        decrypt: bool,
        /// Hotzone protection: checksum (default), journal or none.
        #[arg(long, default_value = "checksum")]
        resilience: String,
        /// Hash of the checksum resilience (default sha256).
        #[arg(long)]
        resilience_hash: Option<String>,
        /// Largest hotzone (bytes; K, M, G suffixes as cryptsetup, 1024-based).
        #[arg(long, value_name = "SIZE")]
        hotzone_size: Option<String>,
        /// Cipher of the new volume key (default: the current one).
        #[arg(short = 'c', long)]
        cipher: Option<String>,
        /// Size of the new volume key in bits (default: the current one's).
        #[arg(short = 's', long, value_name = "BITS")]
        key_size: Option<usize>,
        /// Only re-wrap this keyslot.
        #[arg(short = 'S', long)]
        key_slot: Option<u32>,
        #[command(flatten)]
        pbkdf: PbkdfArgs,
    },
    /// Save the header and keyslot areas to FILE (mode 0600).
    HeaderBackup {
        /// The device.
        device: PathBuf,
        /// Backup file (a new file; an existing one is replaced only with --force).
        #[arg(long, visible_alias = "header-backup-file")]
        file: PathBuf,
        /// Replace an existing backup file (atomically).
        #[arg(long)]
        force: bool,
    },
    /// Restore the header and keyslot areas from FILE (asks first when the
    /// backup's UUID differs from the device's or the device holds no LUKS header).
    HeaderRestore {
        /// The device.
        device: PathBuf,
        /// Backup file.
        #[arg(long, visible_alias = "header-backup-file")]
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

/// One passphrase a command needs.
struct Want<'a> {
    file: Option<&'a Path>,
    option: &'static str,
    size: Option<u64>,
    offset: u64,
    key_ref: Option<&'a SecretId>,
    prompt: String,
    new: bool,
}

impl<'a> Want<'a> {
    fn key(k: &'a KeyArgs, prompt: String, new: bool) -> Want<'a> {
        Want {
            file: k.key_file.as_deref(),
            option: "--key-file",
            size: k.keyfile_size,
            offset: k.keyfile_offset,
            key_ref: k.key_ref.as_ref(),
            prompt,
            new,
        }
    }

    fn new_key(k: &'a NewKeyArgs, prompt: String) -> Want<'a> {
        Want {
            file: k.new_key_file.as_deref(),
            option: "--new-key-file",
            size: k.new_keyfile_size,
            offset: k.new_keyfile_offset,
            key_ref: k.new_key_ref.as_ref(),
            prompt,
            new: true,
        }
    }

    /// The source (`None` for a key manager secret).
    fn source(&self, verify: bool) -> Option<Source<'_>> {
        if self.key_ref.is_some() {
            return None;
        }
        Some(match self.file {
            Some(path) => Source::File {
                path,
                option: self.option,
                size: self.size,
                offset: self.offset,
            },
            None => Source::Prompt {
                prompt: &self.prompt,
                verify: self.new || verify,
            },
        })
    }

    /// Reads the passphrase now unless it is to be typed (a prompt comes
    /// after the previous passphrase has been checked, as cryptsetup asks).
    async fn read_early(&self, cli: &super::Cli) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
        if self.file.is_some() || self.key_ref.is_some() {
            return Ok(Some(self.read(cli).await?));
        }
        Ok(None)
    }

    /// Reads the passphrase (after every check of the command has passed).
    async fn read(&self, cli: &super::Cli) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        if let Some(src) = self.source(cli.verify_passphrase) {
            return Ok(pass::read(&src)?);
        }
        let id = self
            .key_ref
            .ok_or_else(|| CliError::usage("no passphrase source".into()))?;
        let env = super::open_env(cli)?;
        let secret = env.km.get(&env.ctx, id).await?;
        let p = passphrase_for(secret.kind(), &secret.payload)?;
        if p.as_bytes().is_empty() {
            return Err(CliError::usage(format!(
                "secret {id} is empty: an empty passphrase is refused"
            ))
            .into());
        }
        Ok(Zeroizing::new(p.as_bytes().to_vec()))
    }
}

/// Checks every passphrase input before anything is unlocked or written:
/// standard input used at most once (`--input -` counts), key files open,
/// sizes in range.
fn check_keys(wants: &[&Want<'_>], stdin_input: bool) -> Result<(), CliError> {
    let mut sources: Vec<Source<'_>> = wants.iter().filter_map(|w| w.source(false)).collect();
    if stdin_input {
        sources.push(Source::File {
            path: Path::new("-"),
            option: "--input",
            size: None,
            offset: 0,
        });
    }
    pass::check_one_stdin(&sources)?;
    for s in &sources {
        if let Source::File {
            path, option, size, ..
        } = s
        {
            let size_option = if option.starts_with("--new") {
                "--new-keyfile-size"
            } else {
                "--keyfile-size"
            };
            if *option != "--input" {
                pass::check_file(path, option, *size, size_option)?;
            }
        }
    }
    Ok(())
}

/// The device must exist and be a file or block device (else exit 4).
fn check_device(device: &Path) -> Result<(), CliError> {
    match std::fs::metadata(device) {
        Ok(m) if m.is_dir() => Err(CliError::device(format!(
            "Device {} is a folder, not a device.",
            device.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(CliError::device(format!(
            "Device {} does not exist or access denied ({e}).",
            device.display()
        ))),
    }
}

/// The device must be writable for a command that changes it (checked
/// before any unlock: no permission is exit 2).
fn check_writable(device: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    check_device(device)?;
    // A block device in use (mounted, mapped) refuses O_EXCL: busy, exit 5.
    let block = std::fs::metadata(device).is_ok_and(|m| m.file_type().is_block_device());
    let excl = if block {
        rustix::fs::OFlags::EXCL.bits() as i32
    } else {
        0
    };
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(excl)
        .open(device)
        .map(drop)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => CliError {
                code: 2,
                kind: "permission",
                message: format!(
                    "Device {}: no permission to write it ({e}).",
                    device.display()
                ),
            },
            std::io::ErrorKind::ResourceBusy => CliError {
                code: 5,
                kind: "busy",
                message: format!("Device {} is in use ({e}).", device.display()),
            },
            _ => CliError::io(format!("Device {}", device.display()), &e),
        })
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

/// What adding or changing a passphrase (`luksAddKey`, `luksChangeKey`)
/// needs, prepared in cryptsetup's order.
struct Rekey {
    /// The volume, open for writing.
    vol: Volume,
    /// The new keyslot's options.
    opts: KeyslotOptions,
    /// The existing passphrase, tested.
    pass: Zeroizing<Vec<u8>>,
    /// The new passphrase.
    newpass: Zeroizing<Vec<u8>>,
}

impl Rekey {
    /// Checks both passphrase inputs, the device and the keyslot
    /// (`--key-slot` is `new_slot` when adding, `old_slot` when changing)
    /// and the KDF options, reads the existing passphrase and tests it
    /// against `old_slot` (any keyslot when `None`), then reads the new one
    /// (from a file or a secret before the KDF runs, a prompt after).
    async fn prepare(
        cli: &super::Cli,
        device: &Path,
        [old, new]: [Want<'_>; 2],
        pbkdf: &PbkdfArgs,
        new_slot: Option<u32>,
        old_slot: Option<u32>,
    ) -> anyhow::Result<Rekey> {
        check_keys(&[&old, &new], false)?;
        check_writable(device)?;
        let vol = Volume::open(device)?;
        check_slot(&vol, new_slot.or(old_slot), "--key-slot")?;
        let opts = KeyslotOptions {
            key_slot: new_slot,
            pbkdf: pbkdf.options(None)?,
        };
        opts.pbkdf.check(vol.version() == 1)?;
        let pass = old.read(cli).await?;
        let early = new.read_early(cli).await?;
        vol.test_passphrase(&pass, old_slot)?;
        let newpass = match early {
            Some(p) => p,
            None => new.read(cli).await?,
        };
        Ok(Rekey {
            vol,
            opts,
            pass,
            newpass,
        })
    }
}

/// The keyslot range of an open volume.
fn check_slot(vol: &Volume, slot: Option<u32>, option: &str) -> Result<(), CliError> {
    let max = if vol.version() == 1 { 7 } else { 31 };
    match slot {
        Some(s) if s > max => Err(CliError::usage(format!(
            "{option} {s} is outside the allowed 0..={max} for LUKS{}",
            vol.version()
        ))),
        _ => Ok(()),
    }
}

/// Reports a finished step: JSON on stdout with `--json`, else `text` on stderr.
fn report(cli: &super::Cli, value: serde_json::Value, text: String) -> anyhow::Result<()> {
    if cli.json {
        print_json(&value)
    } else {
        eprintln!("{text}");
        Ok(())
    }
}

/// A size as cryptsetup writes them: bytes, or a number with K, M, G or T (1024-based,
/// optional `iB`/`B`) or S (512-byte sectors).
fn parse_size(s: &str, option: &str) -> Result<u64, CliError> {
    let bad = || CliError::usage(format!("{option} {s:?} is not a size (e.g. 32M)"));
    let t = s.trim_end_matches("iB").trim_end_matches('B');
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'S' => 512,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(bad()),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(bad)
}

/// Set while a reencryption runs: Ctrl-C then asks it to stop at the end of the
/// current hotzone (resumable) instead of ending the process at once.
static DEFER_INTERRUPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Ctrl-C was pressed while [`DEFER_INTERRUPT`] was set.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called on Ctrl-C: `true` when a reencryption takes it as "stop after this hotzone"
/// (a second Ctrl-C ends the process).
pub(super) fn defer_interrupt() -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    if DEFER_INTERRUPT.load(SeqCst) && !INTERRUPTED.swap(true, SeqCst) {
        eprintln!("\ninterrupted: stopping after the current hotzone (Ctrl-C again to quit now)");
        return true;
    }
    false
}

fn enter_for(device: &Path) -> String {
    format!("Enter passphrase for {}: ", device.display())
}

/// Runs one `luks` command and returns the exit code.
pub(super) async fn run(cli: &super::Cli, cmd: &LuksCommand) -> anyhow::Result<ExitCode> {
    let batch = cli.batch_mode;
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
            opts.check()?;
            let want = Want::key(k, enter_for(device), true);
            check_keys(&[&want], false)?;
            check_writable(device)?;
            if let Some(sig) = signature(device) {
                confirm(
                    &format!(
                        "This will overwrite data on {} irrevocably: it holds a {sig} signature.",
                        device.display()
                    ),
                    batch,
                )?;
            }
            let pass = want.read(cli).await?;
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
            check_device(device)?;
            let vol = Volume::open_read_only(device)?;
            let dump = vol.dump();
            match (&dump.json, cli.json) {
                (Some(json), true) => print_json(json)?,
                (None, true) => print_json(&serde_json::json!({
                    "version": dump.version, "uuid": dump.uuid, "cipher": dump.cipher,
                    "key_size": dump.key_size_bits, "data_offset": dump.data_offset,
                    "hash": dump.hash,
                    "keyslots": dump.keyslots.iter().map(|k| k.id).collect::<Vec<_>>(),
                }))?,
                _ => print!("{}", super::dump::text(&vol, device)),
            }
        }
        LuksCommand::TestPassphrase {
            device,
            key: k,
            key_slot,
        } => {
            let want = Want::key(k, enter_for(device), false);
            check_keys(&[&want], false)?;
            check_device(device)?;
            let vol = Volume::open_read_only(device)?;
            check_slot(&vol, *key_slot, "--key-slot")?;
            let pass = want.read(cli).await?;
            let slot = vol.test_passphrase(&pass, *key_slot)?;
            report(
                cli,
                serde_json::json!({ "keyslot": slot }),
                format!("keyslot {slot} unlocked"),
            )?;
        }
        LuksCommand::AddKey {
            device,
            key: k,
            new_key: n,
            key_slot,
            pbkdf,
        } => {
            let old = Want::key(k, "Enter any existing passphrase: ".into(), false);
            let new = Want::new_key(n, "Enter new passphrase for key slot: ".into());
            let Rekey {
                mut vol,
                opts,
                pass,
                newpass,
            } = Rekey::prepare(cli, device, [old, new], pbkdf, *key_slot, None).await?;
            let slot = vol.add_key(
                Unlock::Passphrase {
                    passphrase: &pass,
                    slot: None,
                },
                &newpass,
                &opts,
            )?;
            report(
                cli,
                serde_json::json!({ "keyslot": slot }),
                format!("added keyslot {slot}"),
            )?;
        }
        LuksCommand::ChangeKey {
            device,
            key: k,
            new_key: n,
            key_slot,
            pbkdf,
        } => {
            let old = Want::key(k, "Enter passphrase to be changed: ".into(), false);
            let new = Want::new_key(n, "Enter new passphrase: ".into());
            let Rekey {
                mut vol,
                opts,
                pass,
                newpass,
            } = Rekey::prepare(cli, device, [old, new], pbkdf, None, *key_slot).await?;
            let slot = vol.change_key(&pass, &newpass, *key_slot, &opts)?;
            report(
                cli,
                serde_json::json!({ "keyslot": slot }),
                format!("passphrase changed, now in keyslot {slot}"),
            )?;
        }
        LuksCommand::RemoveKey { device, key: k } => {
            let want = Want::key(k, "Enter passphrase to be deleted: ".into(), false);
            check_keys(&[&want], false)?;
            check_writable(device)?;
            let mut vol = Volume::open(device)?;
            let pass = want.read(cli).await?;
            let slot = vol.test_passphrase(&pass, None)?;
            if vol.active_keyslots().len() <= 1 {
                confirm(
                    &format!("This is the last keyslot ({slot}). Device will become unusable after purging this key."),
                    batch,
                )?;
            }
            vol.kill_slot(slot)?;
            report(
                cli,
                serde_json::json!({ "removed": slot }),
                format!("removed keyslot {slot}"),
            )?;
        }
        LuksCommand::KillSlot {
            device,
            slot,
            key: k,
        } => {
            let want = Want::key(k, "Enter any remaining passphrase: ".into(), false);
            let given = k.key_file.is_some() || k.key_ref.is_some();
            if given || !batch {
                check_keys(&[&want], false)?;
            }
            check_writable(device)?;
            let mut vol = Volume::open(device)?;
            check_slot(&vol, Some(*slot), "SLOT")?;
            let active = vol.active_keyslots();
            if !active.contains(slot) {
                return Err(CliError::usage(format!("Keyslot {slot} is not active.")).into());
            }
            if active.len() == 1 {
                confirm(
                    &format!("This is the last keyslot ({slot}). Device will become unusable after purging this key."),
                    batch,
                )?;
            } else if given || !batch {
                let pass = want.read(cli).await?;
                vol.test_passphrase(&pass, None)?;
            }
            vol.kill_slot(*slot)?;
            report(
                cli,
                serde_json::json!({ "removed": slot }),
                format!("removed keyslot {slot}"),
            )?;
        }
        LuksCommand::Read {
            device,
            key: k,
            output,
            force,
            offset,
            length,
        } => {
            let want = Want::key(k, enter_for(device), false);
            check_keys(&[&want], false)?;
            check_device(device)?;
            let out = prepare_output(output, "--output", *force, Some(device))?;
            let vol = Volume::open_read_only(device)?;
            let size = vol.data_layout()?.size;
            if *offset > size {
                return Err(CliError::usage(format!(
                    "--offset {offset} is past the end of the data segment ({size} bytes)"
                ))
                .into());
            }
            let len = length.unwrap_or(size - offset);
            if len > size - offset {
                return Err(CliError::usage(format!(
                    "--offset {offset} --length {len} runs past the end of the data segment ({size} bytes)"
                ))
                .into());
            }
            let pass = want.read(cli).await?;
            let data = vol.unlock(&pass, None)?;
            let bar = progress(len);
            let show = |n| {
                if let Some(b) = &bar {
                    b.set_position(n)
                }
            };
            let to_stdout = matches!(out, Output::Stdout);
            match out {
                Output::Stdout => {
                    let mut w = std::io::stdout().lock();
                    data.export_to(&mut w, *offset, Some(len), &show)?;
                    w.flush()?;
                }
                Output::Existing(mut f) => {
                    data.export_to(&mut f, *offset, Some(len), &show)?;
                    f.flush()?;
                }
                Output::New(mut n) => {
                    let mut f = n.create()?;
                    data.export_to(&mut f, *offset, Some(len), &show)?;
                    f.sync_all()?;
                    n.commit()?;
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if cli.json && !to_stdout {
                print_json(&serde_json::json!({ "read": len, "output": output }))?;
            }
        }
        LuksCommand::Write {
            device,
            key: k,
            input,
            offset,
        } => {
            let from_stdin = input.as_os_str() == "-";
            let want = Want::key(k, enter_for(device), false);
            check_keys(&[&want], from_stdin)?;
            check_writable(device)?;
            let mut file = None;
            let mut total = None;
            if !from_stdin {
                let f = File::open(input)
                    .map_err(|e| CliError::io(format!("--input {}", input.display()), &e))?;
                let m = f
                    .metadata()
                    .map_err(|e| CliError::io(format!("--input {}", input.display()), &e))?;
                if m.is_file() {
                    total = Some(m.len());
                }
                file = Some(f);
            }
            let vol = Volume::open(device)?;
            let size = vol.data_layout()?.size;
            if *offset > size {
                return Err(CliError::usage(format!(
                    "--offset {offset} is past the end of the data segment ({size} bytes)"
                ))
                .into());
            }
            let room = size - offset;
            if let Some(t) = total {
                if t > room {
                    return Err(CliError::usage(format!(
                        "--input {} holds {t} bytes; from --offset {offset} the data segment ({size} bytes) has room for {room}",
                        input.display()
                    ))
                    .into());
                }
            }
            let pass = want.read(cli).await?;
            let data = vol.unlock(&pass, None)?;
            let stdin = std::io::stdin();
            let mut lock;
            let inp: &mut dyn Read = match file.as_mut() {
                Some(f) => f,
                None => {
                    lock = stdin.lock();
                    &mut lock
                }
            };
            let bar = progress(total.unwrap_or(0));
            let written = data.import_from(&mut inp.take(room), *offset, &|n| {
                if let Some(b) = &bar {
                    b.set_position(n)
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if written == room {
                let mut one = [0u8; 1];
                let more = loop {
                    match inp.read(&mut one) {
                        Ok(n) => break n > 0,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break false,
                    }
                };
                if more {
                    return Err(CliError::usage(format!(
                        "--input {} is longer than the {room} bytes from --offset {offset} to the end of the data segment ({size} bytes): wrote {written} bytes (plaintext bytes {offset}..{}), the rest was not written",
                        input.display(),
                        offset + written
                    ))
                    .into());
                }
            }
            report(
                cli,
                serde_json::json!({ "written": written }),
                format!("wrote {written} bytes"),
            )?;
        }
        LuksCommand::Reencrypt {
            device,
            key: k,
            new_key,
            header,
            resume_only,
            init_only,
            encrypt,
            reduce_device_size,
            decrypt,
            resilience,
            resilience_hash,
            hotzone_size,
            cipher,
            key_size,
            key_slot,
            pbkdf,
        } => {
            use luks::reencrypt::{
                self as re, KeyChange, Outcome, ReencryptOptions, ResilienceKind,
            };
            let reduce = reduce_device_size
                .as_deref()
                .map(|r| parse_size(r, "--reduce-device-size"))
                .transpose()?;
            let resilience = match resilience.as_str() {
                "checksum" => ResilienceKind::Checksum,
                "journal" => ResilienceKind::Journal,
                "none" => ResilienceKind::None,
                other => {
                    return Err(CliError::usage(format!(
                        "--resilience {other:?}: checksum, journal or none"
                    ))
                    .into())
                }
            };
            if key_size.is_some_and(|b| b % 8 != 0 || b == 0) {
                return Err(
                    CliError::usage("--key-size must be a multiple of 8 bits".into()).into(),
                );
            }
            let hotzone = hotzone_size
                .as_deref()
                .map(|h| parse_size(h, "--hotzone-size"))
                .transpose()?;
            let hash = parse_hash(resilience_hash)?;
            let opts = ReencryptOptions {
                decrypt: *decrypt,
                resilience,
                hash,
                hotzone_size: hotzone,
                cipher: cipher.clone(),
                key_size: key_size.map(|b| b / 8),
                pbkdf: pbkdf.options(None)?,
                init_only: *init_only,
                resume_only: *resume_only,
                reduce_device_size: reduce,
                ..ReencryptOptions::default()
            };
            let meta = header.as_deref().unwrap_or(device);
            let want = Want::key(k, enter_for(meta), false);
            let has_new = new_key.new_key_file.is_some() || new_key.new_key_ref.is_some();
            let want_new = Want::new_key(new_key, "Enter new passphrase: ".into());
            let wants: Vec<&Want<'_>> = if has_new {
                vec![&want, &want_new]
            } else {
                vec![&want]
            };
            check_keys(&wants, false)?;
            check_writable(device)?;
            if let Some(h) = header {
                check_writable(h)?;
            }
            let pass = want.read(cli).await?;
            let new_pass = if has_new {
                Some(want_new.read(cli).await?)
            } else {
                None
            };
            let keys = [KeyChange {
                passphrase: &pass,
                new_passphrase: new_pass.as_deref().map(|v| v.as_slice()),
                slot: *key_slot,
            }];
            use std::sync::atomic::Ordering::SeqCst;
            let mut bar: Option<indicatif::ProgressBar> = None;
            let mut on_progress = |p: re::Progress| {
                let b = bar.get_or_insert_with(|| {
                    progress(p.total).unwrap_or_else(indicatif::ProgressBar::hidden)
                });
                b.set_position(p.done);
                !INTERRUPTED.load(SeqCst)
            };
            DEFER_INTERRUPT.store(true, SeqCst);
            let out = match header {
                _ if *encrypt => {
                    if header.is_some() {
                        return Err(CliError::usage(
                            "--encrypt with --header is not implemented".into(),
                        )
                        .into());
                    }
                    let fo = FormatOptions {
                        luks_type: LuksType::Luks2,
                        cipher: cipher.clone(),
                        key_size_bits: key_size.map(|b| b as u32),
                        pbkdf: pbkdf.options(None)?,
                        ..FormatOptions::default()
                    };
                    re::encrypt_in_place(device, &pass, &fo, &opts, &mut on_progress)
                }
                Some(h) => re::reencrypt_detached(h, device, &keys, &opts, &mut on_progress),
                None => re::reencrypt(device, &keys, &opts, &mut on_progress),
            };
            DEFER_INTERRUPT.store(false, SeqCst);
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let out = out?;
            if let (Outcome::Stopped(p), true) = (out, INTERRUPTED.load(SeqCst)) {
                return Err(CliError {
                    code: 1,
                    kind: "interrupted",
                    message: format!(
                        "reencryption of {} interrupted at {} of {} bytes: resume it with --resume-only",
                        device.display(),
                        p.done,
                        p.total
                    ),
                }
                .into());
            }
            let what = if *decrypt {
                "decryption"
            } else if *encrypt {
                "encryption"
            } else {
                "reencryption"
            };
            let (state, text) = match out {
                Outcome::Finished => (
                    "finished",
                    format!("{what} of {} finished", device.display()),
                ),
                Outcome::Initialized => (
                    "initialized",
                    format!(
                        "{what} of {} initialized (resume with --resume-only)",
                        device.display()
                    ),
                ),
                Outcome::Stopped(p) => (
                    "stopped",
                    format!(
                        "{what} of {} stopped at {} of {} bytes",
                        device.display(),
                        p.done,
                        p.total
                    ),
                ),
            };
            report(
                cli,
                serde_json::json!({"reencryption": state, "device": device}),
                text,
            )?;
        }
        LuksCommand::HeaderBackup {
            device,
            file,
            force,
        } => {
            check_device(device)?;
            let out = prepare_output(file, "--file", *force, Some(device))?;
            let vol = Volume::open_read_only(device)?;
            match out {
                Output::New(mut n) => {
                    let tmp = n.tmp_path().to_path_buf();
                    n.mark_created();
                    vol.backup_header(&tmp)?;
                    n.commit()?;
                    if cli.json {
                        print_json(&serde_json::json!({ "file": file, "uuid": vol.uuid() }))?;
                    }
                }
                _ => {
                    return Err(CliError::usage(format!(
                        "--file {} must name a regular file",
                        file.display()
                    ))
                    .into())
                }
            }
        }
        LuksCommand::HeaderRestore { device, file } => {
            check_writable(device)?;
            let backup = Volume::open_read_only(file)
                .map_err(|e| CliError::usage(format!("--file {}: {e}", file.display())))?;
            match Volume::open_read_only(device) {
                Ok(v) if v.uuid() == backup.uuid() => {}
                Ok(v) => confirm(
                    &format!(
                        "Device {} has UUID {}, the backup {} has UUID {}. Replacing the header will destroy its keyslots.",
                        device.display(),
                        v.uuid(),
                        file.display(),
                        backup.uuid()
                    ),
                    batch,
                )?,
                Err(_) => confirm(
                    &format!(
                        "Device {} does not contain a LUKS header. Replacing the header can destroy data on it.",
                        device.display()
                    ),
                    batch,
                )?,
            }
            drop(backup);
            let restored = Volume::restore_header(device, file)?;
            if cli.json {
                print_json(&serde_json::json!({ "uuid": restored.uuid() }))?;
            }
        }
        #[cfg(feature = "kernel")]
        LuksCommand::Open {
            device,
            name,
            key: k,
        } => {
            let want = Want::key(k, enter_for(device), false);
            check_keys(&[&want], false)?;
            check_device(device)?;
            let pass = want.read(cli).await?;
            luks::kernel::open(device, name, &pass)?;
        }
        #[cfg(feature = "kernel")]
        LuksCommand::Close { name } => luks::kernel::close(name)?,
    }
    Ok(ExitCode::SUCCESS)
}
