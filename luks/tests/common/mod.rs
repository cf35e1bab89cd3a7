//! Helpers shared by the interop tests: tool discovery (skip with a reason, or
//! fail when KEYMGR_REQUIRE_TOOLS=1), cryptsetup/qemu runners that pass secrets
//! only through files, and an independent AES-XTS / CBC-ESSIV oracle (Python's
//! `cryptography`, from KEYMGR_PYTHON or python3).
#![allow(dead_code)]

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Finds `name` on PATH (also /usr/sbin, /sbin). None = skip (after printing why),
/// or panic when tools are required.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    keymgr_test_support::testenv::tool_on_path(name)
}

/// Writes a secret file with mode 0600.
pub(crate) fn secret_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    use std::io::Write;
    let p = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .unwrap();
    f.write_all(bytes).unwrap();
    p
}

pub(crate) fn sparse_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(size).unwrap();
    p
}

pub(crate) fn run(cmd: &Path, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().expect("spawn tool")
}

pub(crate) fn run_ok(cmd: &Path, args: &[&str]) -> Output {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{} {:?} failed: {}\n{}",
        cmd.display(),
        args,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// cryptsetup's KDF arguments with tiny costs.
pub(crate) fn fast_kdf_args(pbkdf: &str) -> Vec<String> {
    if pbkdf == "pbkdf2" {
        vec![
            "--pbkdf".into(),
            "pbkdf2".into(),
            "--pbkdf-force-iterations".into(),
            "1000".into(),
        ]
    } else {
        vec![
            "--pbkdf".into(),
            pbkdf.into(),
            "--pbkdf-memory".into(),
            "32".into(),
            "--pbkdf-force-iterations".into(),
            "4".into(),
            "--pbkdf-parallel".into(),
            "1".into(),
        ]
    }
}

/// Whether cryptsetup accepts `key_file` for `img` (optionally only `slot`).
pub(crate) fn cs_accepts(cs: &Path, img: &Path, key_file: &Path, slot: Option<u32>) -> bool {
    let mut args = vec![
        "open".to_string(),
        "--test-passphrase".into(),
        "--key-file".into(),
        key_file.display().to_string(),
        img.display().to_string(),
    ];
    if let Some(s) = slot {
        args.push("--key-slot".into());
        args.push(s.to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(cs, &a);
    match o.status.code() {
        Some(0) => true,
        Some(2) => false,
        _ => panic!(
            "cryptsetup test-passphrase: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// The volume key printed by `cryptsetup luksDump --dump-volume-key`.
pub(crate) fn cs_volume_key(cs: &Path, img: &Path, key_file: &Path) -> Vec<u8> {
    let o = run_ok(
        cs,
        &[
            "luksDump",
            "--dump-volume-key",
            "-q",
            "--key-file",
            &key_file.display().to_string(),
            &img.display().to_string(),
        ],
    );
    let text = String::from_utf8(o.stdout).unwrap();
    let mut hex = String::new();
    let mut on = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("MK dump:") {
            on = true;
            hex.push_str(rest);
        } else if on && line.starts_with('\t') {
            hex.push_str(line);
        } else if on {
            break;
        }
    }
    let hex: String = hex.split_whitespace().collect();
    ::hex::decode(hex).expect("hex volume key")
}

/// The Python interpreter with `cryptography`, or None (skip, or panic if required).
pub(crate) fn python() -> Option<PathBuf> {
    let py = std::env::var_os("KEYMGR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import cryptography.hazmat.primitives.ciphers"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        keymgr_test_support::testenv::skip_or_fail(
            "Python oracle",
            &format!(
                "{} cannot import cryptography (set KEYMGR_PYTHON)",
                py.display()
            ),
        );
        return None;
    }
    Some(py)
}

const ORACLE: &str = r#"
import sys, hashlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
key = bytes.fromhex(open(sys.argv[1]).read().strip())
data = open(sys.argv[2], 'rb').read()
mode, sector, first_iv = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
out = bytearray()
for i in range(0, len(data), sector):
    iv_num = first_iv + (i // 512)
    blk = data[i:i+sector]
    if mode == 'xts-plain64':
        d = Cipher(algorithms.AES(key), modes.XTS(iv_num.to_bytes(16, 'little'))).decryptor()
    elif mode == 'cbc-essiv:sha256':
        salt = hashlib.sha256(key).digest()
        e = Cipher(algorithms.AES(salt), modes.ECB()).encryptor()
        iv = e.update(iv_num.to_bytes(16, 'little')) + e.finalize()
        d = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    else:
        raise SystemExit('mode ' + mode)
    out += d.update(blk) + d.finalize()
sys.stdout.buffer.write(bytes(out))
"#;

/// Decrypts `ciphertext` (whole sectors, IV of the first = `first_iv`, counted in
/// 512-byte units) with the independent Python implementation.
pub(crate) fn oracle_decrypt(
    py: &Path,
    dir: &Path,
    key: &[u8],
    mode: &str,
    sector: u32,
    first_iv: u64,
    ciphertext: &[u8],
) -> Vec<u8> {
    let kf = secret_file(dir, "oracle.key", ::hex::encode(key).as_bytes());
    let cf = dir.join("oracle.in");
    std::fs::write(&cf, ciphertext).unwrap();
    let o = Command::new(py)
        .args([
            "-c",
            ORACLE,
            &kf.display().to_string(),
            &cf.display().to_string(),
            mode,
            &sector.to_string(),
            &first_iv.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oracle: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_file(kf).ok();
    o.stdout
}

/// Deterministic pseudo-random bytes.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
