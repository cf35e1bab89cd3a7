//! Passphrases as cryptsetup takes them: a key file's exact bytes (with
//! `--keyfile-offset` and `--keyfile-size`, capped at 8 MiB while reading),
//! a line typed on the terminal without echo (its newline stripped, asked
//! twice for a new passphrase), or one line of a non-terminal standard input.
//! At most one passphrase comes from standard input, and an empty input is
//! never a passphrase.

use std::io::{BufRead, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;

use zeroize::Zeroizing;

use super::error::CliError;

/// cryptsetup's default maximum key-file size (8 MiB).
pub(super) const MAX_KEY_FILE: u64 = 8 << 20;

/// Where one passphrase comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source<'a> {
    /// A key file (`-` is standard input): every byte counts.
    File {
        /// The path as given.
        path: &'a Path,
        /// The option that named it, e.g. `--key-file`.
        option: &'static str,
        /// `--keyfile-size`: read exactly this many bytes.
        size: Option<u64>,
        /// `--keyfile-offset`: skip this many bytes first.
        offset: u64,
    },
    /// Typed on the terminal, or one line of a non-terminal standard input.
    Prompt {
        /// The prompt, e.g. `Enter passphrase for disk.img: `.
        prompt: &'a str,
        /// A new passphrase: asked twice on a terminal.
        verify: bool,
    },
}

impl Source<'_> {
    /// Whether this source reads standard input.
    pub(super) fn uses_stdin(&self) -> bool {
        match self {
            Source::File { path, .. } => *path == Path::new("-"),
            Source::Prompt { .. } => true,
        }
    }
}

/// Refuses two passphrases read from standard input (cryptsetup's rule).
pub(super) fn check_one_stdin(sources: &[Source<'_>]) -> Result<(), CliError> {
    let uses: Vec<String> = sources
        .iter()
        .filter(|s| s.uses_stdin())
        .map(|s| match s {
            Source::File { option, .. } => format!("{option} -"),
            Source::Prompt { .. } => "the prompt".into(),
        })
        .collect();
    if uses.len() > 1 {
        return Err(CliError::usage(format!(
            "only one passphrase can come from standard input, not {}; give the other with a key file",
            uses.join(" and ")
        )));
    }
    Ok(())
}

/// Checks a key file's options (before anything is read or unlocked) and
/// that the file opens; returns the opened file (`None` for stdin).
pub(super) fn check_file(
    path: &Path,
    option: &str,
    size: Option<u64>,
    size_option: &str,
) -> Result<Option<std::fs::File>, CliError> {
    if let Some(s) = size {
        if s == 0 || s > MAX_KEY_FILE {
            return Err(CliError::usage(format!(
                "{size_option} {s}: allowed 1..={MAX_KEY_FILE} bytes (8 MiB)"
            )));
        }
    }
    if path == Path::new("-") {
        return Ok(None);
    }
    std::fs::File::open(path)
        .map(Some)
        .map_err(|e| CliError::io(format!("{option} {}", path.display()), &e))
}

/// Appends `chunk` to `buf`, growing through a wiped copy (never a realloc
/// that would leave an unwiped old allocation behind).
fn push_wiped(buf: &mut Zeroizing<Vec<u8>>, chunk: &[u8]) {
    if buf.capacity() - buf.len() < chunk.len() {
        let want = (buf.len() + chunk.len()).max(buf.capacity() * 2).max(64);
        let mut bigger = Zeroizing::new(Vec::with_capacity(want));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(chunk);
}

/// Reads at most `max` bytes of `r` into a wiped buffer; `Ok(None)` when
/// `r` holds more than `max` (found while reading: at most `max + 1`
/// bytes are ever read).
pub(super) fn read_capped(
    r: &mut dyn Read,
    max: u64,
) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut buf = Zeroizing::new(Vec::new());
    let mut chunk = Zeroizing::new([0u8; 16 << 10]);
    let mut limited = r.take(max + 1);
    loop {
        let n = match limited.read(&mut chunk[..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        push_wiped(&mut buf, &chunk[..n]);
        if buf.len() as u64 > max {
            return Ok(None);
        }
    }
    Ok(Some(buf))
}

/// Skips `n` bytes of `r` (seeking a regular file, reading a stream).
fn skip(r: &mut dyn Read, file: Option<&mut std::fs::File>, n: u64) -> std::io::Result<u64> {
    if n == 0 {
        return Ok(0);
    }
    if let Some(f) = file {
        let m = f.metadata()?;
        if m.is_file() {
            let to = n.min(m.len());
            f.seek(SeekFrom::Start(to))?;
            return Ok(to);
        }
    }
    std::io::copy(&mut r.take(n), &mut std::io::sink())
}

/// The `--keyfile-size` option that goes with a key-file option.
fn size_option(option: &str) -> &'static str {
    if option.starts_with("--new") {
        "--new-keyfile-size"
    } else {
        "--keyfile-size"
    }
}

/// Reads a key file's passphrase as cryptsetup does: `offset` bytes
/// skipped, then exactly `size` bytes, or everything up to 8 MiB.
fn read_file(
    path: &Path,
    option: &str,
    size: Option<u64>,
    offset: u64,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let name = format!("{option} {}", path.display());
    let size_option = size_option(option);
    let mut file = check_file(path, option, size, size_option)?;
    let mut seek_file = match &file {
        Some(f) => Some(f.try_clone().map_err(|e| CliError::io(name.clone(), &e))?),
        None => None,
    };
    let stdin = std::io::stdin();
    let mut lock;
    let r: &mut dyn Read = match file.as_mut() {
        Some(f) => f,
        None => {
            lock = stdin.lock();
            &mut lock
        }
    };
    let skipped =
        skip(r, seek_file.as_mut(), offset).map_err(|e| CliError::io(name.clone(), &e))?;
    if skipped < offset {
        let offset_option = size_option.replace("size", "offset");
        return Err(CliError::usage(format!(
            "{name}: {offset_option} {offset} is past its end ({skipped} bytes)"
        )));
    }
    let bytes = match size {
        Some(s) => read_capped(&mut r.take(s), s)
            .map_err(|e| CliError::io(name.clone(), &e))?
            .unwrap_or_default(),
        None => read_capped(r, MAX_KEY_FILE)
            .map_err(|e| CliError::io(name.clone(), &e))?
            .ok_or_else(|| {
                CliError::usage(format!(
                    "{name} is larger than the maximum key-file size of {MAX_KEY_FILE} bytes (8 MiB); use {size_option}"
                ))
            })?,
    };
    if let Some(s) = size {
        if (bytes.len() as u64) < s {
            return Err(CliError::usage(format!(
                "{name} holds {} bytes after offset {offset}, fewer than {size_option} {s}",
                bytes.len()
            )));
        }
    }
    if bytes.is_empty() {
        return Err(CliError::usage(format!(
            "nothing to read from {name}: an empty passphrase is refused"
        )));
    }
    Ok(bytes)
}

/// Reads one line (up to the newline, which is dropped) of standard input.
fn read_line(max: u64) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let mut line = Zeroizing::new(Vec::new());
    loop {
        let buf = lock
            .fill_buf()
            .map_err(|e| CliError::io("standard input".into(), &e))?;
        if buf.is_empty() {
            break;
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if (line.len() + take) as u64 > max {
            return Err(CliError::usage(format!(
                "the passphrase on standard input is longer than {max} bytes"
            )));
        }
        push_wiped(&mut line, &buf[..take]);
        lock.consume(if done { take + 1 } else { take });
        if done {
            break;
        }
    }
    Ok(line)
}

/// The terminal settings to put back if the process is interrupted while
/// echo is off.
static SAVED: std::sync::Mutex<Option<rustix::termios::Termios>> = std::sync::Mutex::new(None);

/// Puts the terminal's echo back if a prompt had turned it off (called on
/// Ctrl-C before exiting).
pub(super) fn restore_terminal() {
    let saved = SAVED.lock().ok().and_then(|mut g| g.take());
    if let Some(t) = saved {
        let _ =
            rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, &t);
    }
}

/// Turns terminal echo off for its lifetime.
struct NoEcho;

impl NoEcho {
    fn new() -> NoEcho {
        use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
        let fd = std::io::stdin();
        if let Ok(t) = tcgetattr(&fd) {
            let mut quiet = t.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            if let Ok(mut g) = SAVED.lock() {
                *g = Some(t);
            }
            let _ = tcsetattr(&fd, OptionalActions::Flush, &quiet);
        }
        NoEcho
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn typed(prompt: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    // Echo goes off before the prompt shows, so nothing typed after it is echoed.
    let _quiet = NoEcho::new();
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let line = read_line(MAX_KEY_FILE);
    let _ = writeln!(err);
    line
}

/// Reads a prompted passphrase: typed without echo (twice when `verify`) on
/// a terminal, else one line of standard input.
fn prompt(prompt: &str, verify: bool) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let pass = if std::io::stdin().is_terminal() {
        let first = typed(prompt)?;
        if verify && !first.is_empty() {
            let again = typed("Verify passphrase: ")?;
            if *again != *first {
                return Err(CliError::usage("Passphrases do not match.".into()));
            }
        }
        first
    } else {
        read_line(MAX_KEY_FILE)?
    };
    if pass.is_empty() {
        return Err(CliError::usage(
            "no passphrase given (empty or closed standard input): an empty passphrase is refused; give --key-file FILE or type one on a terminal".into(),
        ));
    }
    Ok(pass)
}

/// Reads the passphrase of one source.
pub(super) fn read(source: &Source<'_>) -> Result<Zeroizing<Vec<u8>>, CliError> {
    match *source {
        Source::File {
            path,
            option,
            size,
            offset,
        } => read_file(path, option, size, offset),
        Source::Prompt { prompt: p, verify } => prompt(p, verify),
    }
}
