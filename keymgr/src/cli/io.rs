//! Reading and writing secret bytes and printing results.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::Context as _;
use zeroize::Zeroizing;

/// Reads all bytes of `path`, or of stdin when it is `-`. Every byte counts:
/// no newline is stripped (cryptsetup's key-file rule).
pub fn read_secret_input(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("reading the secret from standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .with_context(|| format!("reading the secret from {}", path.display()))?;
    }
    Ok(buf)
}

/// Writes secret bytes to `path` (created or truncated with mode 0600), or
/// to stdout when it is `-`, refusing a terminal unless `allow_tty`.
pub fn write_secret_output(path: &Path, bytes: &[u8], allow_tty: bool) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let stdout = std::io::stdout();
        if stdout.is_terminal() && !allow_tty {
            anyhow::bail!(
                "refusing to print secret bytes to a terminal; use --output FILE, or pipe the output"
            );
        }
        let mut lock = stdout.lock();
        lock.write_all(bytes)?;
        lock.flush()?;
        return Ok(());
    }
    let mut f = open_private(path)?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates or truncates `path` with mode 0600 (and sets 0600 if it existed).
pub fn open_private(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting mode 0600 on {}", path.display()))?;
    Ok(f)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
