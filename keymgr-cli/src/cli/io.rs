//! Reading secret bytes and writing outputs that never hurt: new files are
//! created (mode 0600, no symlink followed); an existing regular file is
//! replaced atomically only with `--force`; a device node or pipe given with
//! `--force` is written as it is, never re-moded; terminals (`-`,
//! `/dev/stdout`, `/dev/fd/N`) are refused for secret bytes; an output that
//! is the volume itself is refused.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::error::CliError;
use super::pass::read_capped;

/// Reads all bytes of `path` (`-` for stdin), at most `max` of them: a
/// larger input is refused while reading. Every byte counts.
pub(super) fn read_secret_input(
    path: &Path,
    option: &str,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let name = format!("{option} {}", path.display());
    let got = if path == Path::new("-") {
        read_capped(&mut std::io::stdin().lock(), max as u64)
    } else {
        let mut f = File::open(path).map_err(|e| CliError::io(name.clone(), &e))?;
        read_capped(&mut f, max as u64)
    }
    .map_err(|e| CliError::io(name.clone(), &e))?;
    got.ok_or_else(|| {
        CliError::usage(format!(
            "{name} holds more than {max} bytes, the most the key manager accepts"
        ))
    })
}

/// Where an output goes, checked before anything is unlocked or fetched.
#[derive(Debug)]
pub(super) enum Output {
    /// Standard output (a pipe or file, never a terminal).
    Stdout,
    /// An existing device node, pipe or `/dev/fd/N`, written as it is.
    Existing(File),
    /// A new file, written to a temporary name and moved into place.
    New(NewFile),
}

/// A regular file written under a temporary name in the same folder and
/// renamed into place by [`NewFile::commit`] (removed if never committed).
#[derive(Debug)]
pub(super) struct NewFile {
    dest: PathBuf,
    tmp: PathBuf,
    replace: bool,
    created: bool,
}

impl NewFile {
    /// The temporary path (for writers that create the file themselves).
    pub(super) fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Creates the temporary file: O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600.
    pub(super) fn create(&mut self) -> Result<File, CliError> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&self.tmp)
            .map_err(|e| CliError::io(format!("creating {}", self.tmp.display()), &e))?;
        self.created = true;
        Ok(f)
    }

    /// Marks the temporary file as created by someone else (it is removed if
    /// never committed).
    pub(super) fn mark_created(&mut self) {
        self.created = true;
    }

    /// Moves the written file into place: replacing the old one (with
    /// `--force`) or failing if a file appeared meanwhile.
    pub(super) fn commit(mut self) -> Result<(), CliError> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        let flags = if self.replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        let moved = match renameat_with(CWD, &self.tmp, CWD, &self.dest, flags) {
            // A file system without RENAME_NOREPLACE: a hard link never replaces either.
            Err(rustix::io::Errno::INVAL) if !self.replace => {
                std::fs::hard_link(&self.tmp, &self.dest)
                    .and_then(|_| std::fs::remove_file(&self.tmp))
            }
            r => r.map_err(std::io::Error::from),
        };
        moved.map_err(|e| {
            CliError::io(
                format!("moving the output into place as {}", self.dest.display()),
                &e,
            )
        })?;
        self.created = false;
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `/dev/stdout`, `/dev/stderr`, `/dev/fd/N` or `/proc/self/fd/N`: names of
/// descriptors this process already has.
fn is_fd_alias(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s == "/dev/stdout"
        || s == "/dev/stderr"
        || s.strip_prefix("/dev/fd/")
            .or_else(|| s.strip_prefix("/proc/self/fd/"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn terminal_refused(option: &str, path: &Path) -> CliError {
    CliError::usage(format!(
        "{option} {} is a terminal: refusing to print secret bytes on a terminal; give a file, or pipe the output",
        path.display()
    ))
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Checks an output path and prepares it (nothing is created yet for a new
/// file). `volume` is the device the command reads or writes: an output
/// that is the same file is refused.
pub(super) fn prepare_output(
    path: &Path,
    option: &str,
    force: bool,
    volume: Option<&Path>,
) -> Result<Output, CliError> {
    let vol_meta = volume.and_then(|v| std::fs::metadata(v).ok());
    let is_volume = |m: &std::fs::Metadata| vol_meta.as_ref().is_some_and(|v| same_file(v, m));
    let volume_refused = || {
        CliError::usage(format!(
            "{option} {} is the volume itself; refusing to overwrite it",
            path.display()
        ))
    };
    if path == Path::new("-") {
        if std::io::stdout().is_terminal() {
            return Err(terminal_refused(option, path));
        }
        return Ok(Output::Stdout);
    }
    if is_fd_alias(path) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| CliError::io(format!("{option} {}", path.display()), &e))?;
        if f.is_terminal() {
            return Err(terminal_refused(option, path));
        }
        let m = f
            .metadata()
            .map_err(|e| CliError::io(format!("{option} {}", path.display()), &e))?;
        if is_volume(&m) {
            return Err(volume_refused());
        }
        return Ok(Output::Existing(f));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Output::New(new_file(path, option, false)?))
        }
        Err(e) => Err(CliError::io(format!("{option} {}", path.display()), &e)),
        Ok(m) => {
            let ft = m.file_type();
            if ft.is_symlink() {
                return Err(CliError::usage(format!(
                    "{option} {} is a symbolic link; refusing to follow it (give its target)",
                    path.display()
                )));
            }
            if ft.is_dir() {
                return Err(CliError::usage(format!(
                    "{option} {} is a folder",
                    path.display()
                )));
            }
            if is_volume(&m) {
                return Err(volume_refused());
            }
            if !force {
                return Err(CliError::exists(format!(
                    "{option} {} already exists; give --force to replace it",
                    path.display()
                )));
            }
            if ft.is_file() {
                return Ok(Output::New(new_file(path, option, true)?));
            }
            // A device node, pipe or socket: written as it is, never re-moded.
            let _ = ft.is_char_device() || ft.is_block_device() || ft.is_fifo();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(path)
                .map_err(|e| CliError::io(format!("{option} {}", path.display()), &e))?;
            if f.is_terminal() {
                return Err(terminal_refused(option, path));
            }
            Ok(Output::Existing(f))
        }
    }
}

fn new_file(path: &Path, option: &str, replace: bool) -> Result<NewFile, CliError> {
    let name = path
        .file_name()
        .ok_or_else(|| CliError::usage(format!("{option} {} names no file", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(CliError::io(
            format!("{option} {}", path.display()),
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".keymgr-{}-{nanos:08x}", std::process::id()));
    Ok(NewFile {
        dest: path.to_path_buf(),
        tmp: dir.join(tmp_name),
        replace,
        created: false,
    })
}

/// Writes `bytes` to a prepared output.
pub(super) fn write_output(out: Output, bytes: &[u8], path: &Path) -> Result<(), CliError> {
    let werr = |e: std::io::Error| CliError::io(format!("writing {}", path.display()), &e);
    match out {
        Output::Stdout => {
            let mut lock = std::io::stdout().lock();
            lock.write_all(bytes)
                .and_then(|_| lock.flush())
                .map_err(werr)
        }
        Output::Existing(mut f) => f.write_all(bytes).map_err(werr),
        Output::New(mut n) => {
            let mut f = n.create()?;
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .map_err(werr)?;
            n.commit()
        }
    }
}

/// Prints a value as pretty JSON on stdout.
pub(super) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
