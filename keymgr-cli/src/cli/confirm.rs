//! Confirmation of destructive steps as cryptsetup asks it: on a terminal,
//! "Are you sure? (Type 'yes' in capital letters): " (only `YES` goes on);
//! without a terminal the step is refused unless `-q/--batch-mode`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;

use super::error::CliError;

/// Asks before a destructive step described by `warning`.
pub(super) fn confirm(warning: &str, batch: bool) -> Result<(), CliError> {
    if batch {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "{warning} Refused: no terminal to confirm on; give -q/--batch-mode to proceed"
        )));
    }
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\nWARNING!\n========\n{warning}\n\nAre you sure? (Type 'yes' in capital letters): "
    );
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::io("standard input".into(), &e))?;
    if line.trim_end_matches(['\n', '\r']) == "YES" {
        Ok(())
    } else {
        Err(CliError::usage("Operation aborted.".into()))
    }
}

/// The signature a device already carries (LUKS, a known file system or
/// partition table, or whatever `blkid -p` recognises), if any.
pub(super) fn signature(device: &Path) -> Option<String> {
    if let Some(s) = known_signature(device) {
        return Some(s.to_string());
    }
    let out = std::process::Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE"])
        .arg(device)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let ty = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !ty.is_empty()).then(|| ty.escape_debug().to_string())
}

fn known_signature(device: &Path) -> Option<&'static str> {
    let mut head = vec![0u8; 0x10048];
    let mut f = std::fs::File::open(device).ok()?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => break,
        }
    }
    let head = &head[..n];
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(0, b"LUKS\xba\xbe") {
        return Some("crypto_LUKS");
    }
    if at(1080, &[0x53, 0xef]) {
        return Some("ext2/3/4");
    }
    if at(0, b"XFSB") {
        return Some("xfs");
    }
    if at(0x10040, b"_BHRfS_M") {
        return Some("btrfs");
    }
    if at(4086, b"SWAPSPACE2") || at(4086, b"SWAP-SPACE") {
        return Some("swap");
    }
    if at(512, b"EFI PART") {
        return Some("gpt");
    }
    if at(510, &[0x55, 0xaa]) {
        return Some("dos/vfat");
    }
    None
}
