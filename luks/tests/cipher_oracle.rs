//! Cross-check of every mode against an independent implementation: Python's
//! `cryptography` (OpenSSL), run through `$KEYMGR_PYTHON` (set by
//! scripts/test.sh). Skips with a reason when unset, unless
//! `KEYMGR_REQUIRE_TOOLS=1`.

use luks::{Backend, SectorCipher};
use std::io::Write;
use std::process::{Command, Stdio};

const ORACLE: &str = r#"
import sys, hashlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
def ivs(gen, n, key):
    if gen == "plain": return (n & 0xffffffff).to_bytes(16, "little")
    iv = n.to_bytes(16, "little")
    if gen == "essiv:sha256":
        e = Cipher(algorithms.AES(hashlib.sha256(key).digest()), modes.ECB()).encryptor()
        iv = e.update(iv) + e.finalize()
    return iv
for line in sys.stdin:
    mode, keyhex, ss, first, step, datahex = line.split()
    key, ss, first, step, data = bytes.fromhex(keyhex), int(ss), int(first), int(step), bytes.fromhex(datahex)
    chain, gen = mode.split("-", 1)
    out = b""
    for i in range(len(data) // ss):
        n = (first + i * step) % (1 << 64)
        iv = ivs(gen, n, key)
        m = modes.XTS(iv) if chain == "xts" else modes.CBC(iv)
        e = Cipher(algorithms.AES(key), m).encryptor()
        out += e.update(data[i * ss:(i + 1) * ss]) + e.finalize()
    print(out.hex())
"#;

fn python() -> Option<String> {
    match std::env::var("KEYMGR_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            keymgr_test_support::testenv::skip_or_fail(
                "Python oracle",
                "KEYMGR_PYTHON not set (run through scripts/test.sh)",
            );
            None
        }
    }
}

/// A small deterministic generator (no need for a rand dependency here).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn every_mode_matches_python_cryptography() {
    let Some(py) = python() else { return };
    let mut rng = Lcg(0x1234_5678);
    let mut cases = Vec::new();
    let modes: [(&str, &[usize]); 5] = [
        ("xts-plain64", &[32, 64]),
        ("xts-plain", &[32, 64]),
        ("cbc-essiv:sha256", &[16, 24, 32]),
        ("cbc-plain64", &[16, 32]),
        ("cbc-plain", &[16, 32]),
    ];
    for (mode, klens) in modes {
        for &klen in klens {
            for &ss in &[512usize, 4096] {
                for units in [false, true] {
                    let key = rng.bytes(klen);
                    let nsec = 1 + (rng.next() % 4) as usize;
                    let first = if rng.next().is_multiple_of(2) {
                        rng.next() % 100_000
                    } else {
                        u64::MAX - 3
                    };
                    let data = rng.bytes(ss * nsec);
                    cases.push((mode, key, ss, first, units, data));
                }
            }
        }
    }
    let mut input = String::new();
    for (mode, key, ss, first, units, data) in &cases {
        let step = if *units { ss / 512 } else { 1 };
        input.push_str(&format!(
            "{mode} {} {ss} {first} {step} {}\n",
            hex::encode(key),
            hex::encode(data)
        ));
    }
    let mut child = Command::new(&py)
        .args(["-c", ORACLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    // Feed stdin from another thread: the oracle prints while it reads, and
    // both pipes filling up at once would deadlock.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "python oracle failed");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), cases.len());
    let mut compared = 0;
    for ((mode, key, ss, first, units, data), want) in cases.iter().zip(lines) {
        for &b in Backend::available() {
            let Ok(c) = SectorCipher::with_backend("aes", mode, key, b) else {
                assert!(b == Backend::AwsLc, "{mode} {b}");
                continue;
            };
            let mut buf = data.clone();
            c.encrypt_sectors(&mut buf, *ss, *first, *units).unwrap();
            assert_eq!(
                hex::encode(&buf),
                want,
                "{mode} key {} bytes, sector {ss}, first {first}, backend {b}",
                key.len()
            );
            c.decrypt_sectors(&mut buf, *ss, *first, *units).unwrap();
            assert_eq!(&buf, data);
            compared += 1;
        }
    }
    assert!(compared >= cases.len());
}
