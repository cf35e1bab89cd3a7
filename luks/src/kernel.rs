//! Kernel dm-crypt activation through the `cryptsetup` binary (feature `kernel`).
//!
//! The passphrase or key always goes to cryptsetup's standard input
//! (`--key-file=-`), never on its command line, as os-brick and Nova do.
//! These functions need device-mapper (`/dev/mapper/control`) and root;
//! [`device_mapper_available`] tells whether this host has it.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Path of the device-mapper control node.
pub const DM_CONTROL: &str = "/dev/mapper/control";

/// Whether device-mapper is usable here; `Err` holds the reason when it is not.
pub fn device_mapper_available() -> std::result::Result<(), String> {
    if !Path::new(DM_CONTROL).exists() {
        return Err(format!("{DM_CONTROL} does not exist (no device-mapper)"));
    }
    let misc =
        std::fs::read_to_string("/proc/misc").map_err(|e| format!("reading /proc/misc: {e}"))?;
    if !misc
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("device-mapper"))
    {
        return Err("the kernel has no device-mapper (not listed in /proc/misc)".into());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(DM_CONTROL)
        .map_err(|e| format!("cannot open {DM_CONTROL}: {e}"))?;
    Ok(())
}

/// Options of [`open_with`] (`cryptsetup open` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// `--key-slot`: only try this keyslot.
    pub key_slot: Option<u32>,
    /// `--readonly`.
    pub read_only: bool,
    /// `--allow-discards`.
    pub allow_discards: bool,
    /// `--header`: detached header file.
    pub header: Option<std::path::PathBuf>,
}

/// Options of [`create_plain`] (`cryptsetup create` / `open --type plain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainOptions {
    /// `--cipher` (for example `aes-xts-plain64`).
    pub cipher: String,
    /// `--key-size` in bits.
    pub key_size_bits: u32,
    /// `--offset` in 512-byte sectors.
    pub offset_sectors: Option<u64>,
    /// `--sector-size`.
    pub sector_size: Option<u32>,
}

impl Default for PlainOptions {
    fn default() -> Self {
        PlainOptions {
            cipher: "aes-xts-plain64".into(),
            key_size_bits: 512,
            offset_sectors: None,
            sector_size: None,
        }
    }
}

/// The `cryptsetup` binary: `$KEYMGR_CRYPTSETUP` when set, else `cryptsetup` from `PATH`.
fn cryptsetup() -> String {
    std::env::var("KEYMGR_CRYPTSETUP").unwrap_or_else(|_| "cryptsetup".to_string())
}

/// Runs cryptsetup with `args`, feeding `secret` (if any) on standard input.
fn run(args: &[String], secret: Option<&[u8]>) -> Result<()> {
    let bin = cryptsetup();
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(if secret.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::io("starting cryptsetup"))?;
    if let (Some(s), Some(mut stdin)) = (secret, child.stdin.take()) {
        // a closed pipe (cryptsetup exited early) shows up in its exit status below
        let _ = stdin.write_all(s);
    }
    let out = child
        .wait_with_output()
        .map_err(Error::io("waiting for cryptsetup"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        command: format!("{bin} {}", args.first().map(String::as_str).unwrap_or("")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// `cryptsetup open --type luks --key-file=- DEVICE NAME` with the passphrase on stdin.
pub fn open(device: impl AsRef<Path>, name: &str, passphrase: &[u8]) -> Result<()> {
    open_with(device, name, passphrase, &OpenOptions::default())
}

/// [`open`] with options.
pub fn open_with(
    device: impl AsRef<Path>,
    name: &str,
    passphrase: &[u8],
    opts: &OpenOptions,
) -> Result<()> {
    check_name(name)?;
    let mut args = vec![
        "open".to_string(),
        "--type".into(),
        "luks".into(),
        "--key-file=-".into(),
    ];
    if let Some(s) = opts.key_slot {
        args.push(format!("--key-slot={s}"));
    }
    if opts.read_only {
        args.push("--readonly".into());
    }
    if opts.allow_discards {
        args.push("--allow-discards".into());
    }
    if let Some(h) = &opts.header {
        args.push(format!("--header={}", h.display()));
    }
    args.push(device.as_ref().display().to_string());
    args.push(name.to_string());
    run(&args, Some(passphrase))
}

/// `cryptsetup create --cipher C --key-size N --key-file=- NAME DEVICE`: plain dm-crypt
/// with `key` (raw key bytes, `key_size_bits / 8` of them) on stdin, as Nova's ephemeral
/// encryption does.
pub fn create_plain(
    name: &str,
    device: impl AsRef<Path>,
    key: &[u8],
    opts: &PlainOptions,
) -> Result<()> {
    check_name(name)?;
    if key.len() * 8 != opts.key_size_bits as usize {
        return Err(Error::InvalidOption {
            option: "--key-size",
            reason: "the key length differs from --key-size".into(),
        });
    }
    let mut args = vec![
        "create".to_string(),
        "--cipher".into(),
        opts.cipher.clone(),
        "--key-size".into(),
        opts.key_size_bits.to_string(),
        "--key-file=-".into(),
    ];
    if let Some(o) = opts.offset_sectors {
        args.push(format!("--offset={o}"));
    }
    if let Some(s) = opts.sector_size {
        args.push(format!("--sector-size={s}"));
    }
    args.push(name.to_string());
    args.push(device.as_ref().display().to_string());
    run(&args, Some(key))
}

/// Options of [`create_plain_passphrase`]: the volume type's cipher and key
/// size, passed on only when given, as os-brick does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainPassphraseOptions {
    /// `--cipher`, when the volume type names one.
    pub cipher: Option<String>,
    /// `--key-size` in bits, when the volume type names one.
    pub key_size_bits: Option<u32>,
}

/// os-brick's `CryptsetupEncryptor` (provider `plain`), as Nova's LVM
/// ephemeral encryption does it too: `cryptsetup create --key-file=-
/// [--cipher C] [--key-size N] NAME DEVICE` with the key's os-brick
/// passphrase (`keymgr::passphrase::passphrase_for`, the hex string) on stdin, so
/// cryptsetup derives the same dm-crypt key from it as for a Python service.
pub fn create_plain_passphrase(
    name: &str,
    device: impl AsRef<Path>,
    passphrase: &[u8],
    opts: &PlainPassphraseOptions,
) -> Result<()> {
    run(
        &plain_passphrase_args(name, device.as_ref(), opts)?,
        Some(passphrase),
    )
}

/// The arguments of [`create_plain_passphrase`], in os-brick's order.
fn plain_passphrase_args(
    name: &str,
    device: &Path,
    opts: &PlainPassphraseOptions,
) -> Result<Vec<String>> {
    check_name(name)?;
    let mut args = vec!["create".to_string(), "--key-file=-".into()];
    if let Some(c) = &opts.cipher {
        args.extend(["--cipher".into(), c.clone()]);
    }
    if let Some(k) = opts.key_size_bits {
        args.extend(["--key-size".into(), k.to_string()]);
    }
    args.push(name.to_string());
    args.push(device.display().to_string());
    Ok(args)
}

/// `cryptsetup close NAME`.
pub fn close(name: &str) -> Result<()> {
    check_name(name)?;
    run(&["close".to_string(), name.to_string()], None)
}

/// Whether a mapping `NAME` exists (`/dev/mapper/NAME`).
pub fn is_active(name: &str) -> bool {
    check_name(name).is_ok() && Path::new("/dev/mapper").join(name).exists()
}

/// Mapping names: non-empty, no `/`, no leading `-` (never parsed as an option).
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('-') || name.len() > 127 {
        return Err(Error::InvalidOption {
            option: "name",
            reason: format!("invalid mapping name {name:?}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("vol-1").is_ok());
    }

    #[test]
    fn plain_passphrase_is_os_bricks_command() {
        let opts = PlainPassphraseOptions {
            cipher: Some("aes-xts-plain64".into()),
            key_size_bits: Some(256),
        };
        assert_eq!(
            plain_passphrase_args("crypt-v1", Path::new("/dev/sdx"), &opts).unwrap(),
            [
                "create",
                "--key-file=-",
                "--cipher",
                "aes-xts-plain64",
                "--key-size",
                "256",
                "crypt-v1",
                "/dev/sdx"
            ]
        );
        assert_eq!(
            plain_passphrase_args("v", Path::new("/d"), &PlainPassphraseOptions::default())
                .unwrap(),
            ["create", "--key-file=-", "v", "/d"]
        );
    }

    #[test]
    fn plain_key_size_must_match() {
        let e =
            create_plain("x", "/nonexistent", &[0u8; 16], &PlainOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidOption {
                    option: "--key-size",
                    ..
                }
            ),
            "{e}"
        );
    }
}
