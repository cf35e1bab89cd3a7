//! Measures userspace encrypted I/O on a LUKS1 (aes-xts-plain64, 512-bit key)
//! volume in a temporary file: bulk import/export through the stream engine,
//! and 4 KiB-aligned `read_at` in 1 MiB steps. Pass the size in MiB as the first
//! argument (default 256). Compare with
//! `qemu-img convert --object secret,id=s0,file=PW --image-opts driver=luks,key-secret=s0,file.filename=IMG -O raw OUT`.
//! Run with `cargo run --release -p luks --example io_speed`.

use luks::{format, FormatOptions, LuksType, PbkdfOptions, PbkdfType, Volume};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir()?;
    let img = dir.path().join("speed.img");
    let f = std::fs::File::create(&img)?;
    f.set_len((2 << 20) + (mib << 20))?;
    let opts = FormatOptions {
        luks_type: LuksType::Luks1,
        pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
        ..Default::default()
    };
    format(&img, &opts, b"pw")?;
    let vol = Volume::open(&img)?.unlock(b"pw", None)?;
    let size = vol.size();
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    vol.import_from(&mut &data[..], 0, &|_| {})?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "import_from (encrypt + write + sync): {:.0} MiB/s",
        size as f64 / s / 1048576.0
    );
    let mut sink = std::io::sink();
    let t = Instant::now();
    vol.export_to(&mut sink, 0, None, &|_| {})?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "export_to (read + decrypt): {:.0} MiB/s",
        size as f64 / s / 1048576.0
    );
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.path().join("out.raw"))?);
    let t = Instant::now();
    vol.export_to(&mut file, 0, None, &|_| {})?;
    std::io::Write::flush(&mut file)?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "export_to a raw file (what qemu-img convert does): {:.0} MiB/s",
        size as f64 / s / 1048576.0
    );
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        vol.read_at(&mut buf[..n], off)?;
        off += n as u64;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "read_at 1 MiB steps (one thread): {:.0} MiB/s",
        size as f64 / s / 1048576.0
    );
    println!("backend: {:?}", vol.sector_cipher().backend());
    if let Some(out) = std::env::args().nth(2) {
        std::fs::copy(&img, &out)?;
        println!("image copied to {out} (passphrase \"pw\")");
    }
    Ok(())
}
