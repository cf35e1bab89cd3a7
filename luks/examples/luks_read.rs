//! Decrypts the whole data segment of a LUKS volume to a file with the
//! bounded-memory, multi-threaded [`luks::stream`] path: what `keymgr luks
//! read` does once it streams through `luks::stream` (scripts/bench.sh
//! times both against `qemu-img convert`).
//!
//! ```text
//! cargo run --release -p luks --example luks_read -- DEVICE PASSPHRASE_FILE OUTPUT [THREADS]
//! ```
//!
//! The passphrase file is used as is (every byte counts, like cryptsetup's
//! `--key-file`); `OUTPUT` `-` is stdout. `THREADS` 0 (default) uses all cores.
//! Prints the bytes, seconds and GB/s of the data transfer (unlock excluded)
//! on stderr.

use luks::Volume;
use luks::{decrypt_to_writer_with, Region, StreamOptions};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;
use zeroize::Zeroizing;

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [device, key_file, output, rest @ ..] = args else {
        return Err("usage: luks_read DEVICE PASSPHRASE_FILE OUTPUT [THREADS]".into());
    };
    let threads: usize = match rest {
        [] => 0,
        [t] => t.parse().map_err(|_| format!("bad THREADS {t:?}"))?,
        _ => return Err("too many arguments".into()),
    };
    let pass = Zeroizing::new(std::fs::read(key_file)?);
    let t0 = Instant::now();
    let vol = Volume::open_read_only(device)?.unlock(&pass, None)?;
    let unlock_s = t0.elapsed().as_secs_f64();
    let l = vol.layout();
    let region = Region {
        data_offset: l.offset,
        offset: 0,
        len: l.size,
        sector_size: l.sector_size as usize,
        iv_in_512_units: true,
        iv_tweak: l.iv_tweak,
    };
    let mut out: Box<dyn Write> = if output == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(output)?)
    };
    let opts = StreamOptions {
        threads,
        ..StreamOptions::default()
    };
    let t1 = Instant::now();
    let n = decrypt_to_writer_with(
        vol.device(),
        &region,
        vol.sector_cipher(),
        &mut out,
        &|_| {},
        &opts,
    )?;
    out.flush()?;
    let s = t1.elapsed().as_secs_f64();
    eprintln!(
        "luks_read: {n} bytes in {s:.3} s ({:.2} GB/s), unlock {unlock_s:.3} s, backend {}",
        n as f64 / s / 1e9,
        vol.sector_cipher().backend()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("luks_read: {e}");
            ExitCode::FAILURE
        }
    }
}
