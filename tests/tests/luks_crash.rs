//! Crash consistency of LUKS header operations. Each operation (format,
//! add-key, change-key, remove-key, header restore; LUKS1 and LUKS2) runs in
//! its own process (`luks-op`) under `strace`, which records every `pwrite64`
//! to the image with its offset and bytes, in order. The writes are then
//! replayed onto the image as it was before the operation, stopping after
//! every N-th write, and also tearing the next write after each whole
//! 512-byte sector it covers (a disk writes a sector atomically, not a
//! multi-sector request). Every such crash image must open (or, for format,
//! fail with a typed error), unlock with the old or the new passphrase as the
//! operation allows, give the original volume key (the plaintext reads back),
//! leave the data segment's bytes unchanged, and be repaired by the next
//! write when one LUKS2 copy was left stale or torn.

use std::path::{Path, PathBuf};
use std::process::Command;

use luks::{FormatOptions, LuksType, PbkdfOptions, PbkdfType, Volume};

const OLD: &[u8] = b"old-crash-passphrase";
const NEW: &[u8] = b"new-crash-passphrase";
const IMG_SIZE: usize = 4 << 20;

struct Recorded {
    offset: u64,
    data: Vec<u8>,
}

fn strace_ok() -> bool {
    let ok = Command::new("strace")
        .args(["-qq", "-e", "trace=none", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        keymgr_test_support::testenv::skip_or_fail(
            "luks crash tests",
            "strace is missing or cannot trace here (needed to record the writes)",
        );
    }
    ok
}

fn unhex(s: &str) -> Vec<u8> {
    // strace -xx prints every byte as \xNN.
    s.as_bytes()
        .chunks(4)
        .map(|c| u8::from_str_radix(std::str::from_utf8(&c[2..4]).unwrap(), 16).unwrap())
        .collect()
}

/// Runs `luks-op` under strace and returns its writes to `img`, in order.
fn record(dir: &Path, op: &str, img: &Path, extra: &[&Path]) -> Vec<Recorded> {
    let (old, new) = (dir.join("old.pass"), dir.join("new.pass"));
    std::fs::write(&old, OLD).unwrap();
    std::fs::write(&new, NEW).unwrap();
    let trace = dir.join(format!("{op}.trace"));
    let out = Command::new("strace")
        .args(["-f", "-qq", "-xx", "-y", "-s", "100000000"])
        .args(["-e", "trace=pwrite64,write,pwritev,pwritev2,ftruncate"])
        .arg("-o")
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_luks-op"))
        .arg(op)
        .arg(img)
        .arg(&old)
        .arg(&new)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "luks-op {op} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    // With -xx strace prints the path hex-encoded too.
    let name: String = img
        .to_string_lossy()
        .bytes()
        .map(|b| format!("\\x{b:02x}"))
        .collect();
    let mut writes = Vec::new();
    for line in text.lines() {
        if !line.contains(&format!("<{name}>")) {
            continue;
        }
        let call = line.split_whitespace().nth(1).unwrap_or("");
        assert!(
            call.starts_with("pwrite64("),
            "unexpected write call to the image (the replay handles pwrite64 only): {line:.200}"
        );
        let q1 = line.find('"').unwrap();
        let q2 = q1 + 1 + line[q1 + 1..].find('"').unwrap();
        let data = unhex(&line[q1 + 1..q2]);
        let rest: Vec<&str> = line[q2 + 1..]
            .trim_start_matches(", ")
            .split([',', ')'])
            .map(str::trim)
            .collect();
        let len: usize = rest[0].parse().unwrap();
        let offset: u64 = rest[1].parse().unwrap();
        let ret = line.rsplit("= ").next().unwrap().trim();
        assert_eq!(data.len(), len, "strace cut the data of {line:.120}");
        assert_eq!(ret, len.to_string(), "short write in {line:.120}");
        writes.push(Recorded { offset, data });
    }
    writes
}

fn apply(img: &mut [u8], w: &Recorded, len: usize) {
    let o = w.offset as usize;
    img[o..o + len].copy_from_slice(&w.data[..len]);
}

struct Case {
    op: &'static str,
    luks: LuksType,
    /// The operation creates the volume: before it, nothing opens.
    creates: bool,
    /// OLD must always unlock after a crash.
    old_always: bool,
}

/// The volume before the operation: OLD in slot 0 (and NEW in another slot
/// for remove-key), a known plaintext written through the volume key.
fn prepare(dir: &Path, c: &Case) -> (PathBuf, Vec<u8>, Vec<PathBuf>) {
    let img = dir.join(format!("{}.img", c.op));
    std::fs::write(&img, vec![0u8; IMG_SIZE]).unwrap();
    let mut extra = Vec::new();
    let plain: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    if !c.creates {
        let opts = FormatOptions {
            luks_type: c.luks,
            pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
            luks2_keyslots_size: (c.luks == LuksType::Luks2).then_some(1 << 20),
            align_payload_sectors: Some(8),
            ..FormatOptions::default()
        };
        luks::format(&img, &opts, OLD).unwrap();
        let v = Volume::open(&img).unwrap();
        v.unlock(OLD, None).unwrap().write_at(&plain, 0).unwrap();
        let ks = luks::KeyslotOptions {
            pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
            ..Default::default()
        };
        let mut v = Volume::open(&img).unwrap();
        match c.op {
            "remove-key" => {
                v.add_key(
                    luks::Unlock::Passphrase {
                        passphrase: OLD,
                        slot: None,
                    },
                    NEW,
                    &ks,
                )
                .unwrap();
            }
            "header-restore" => {
                // The backup knows OLD; the device then moves to NEW only.
                let b = dir.join("hdr.backup");
                v.backup_header(&b).unwrap();
                v.change_key(OLD, NEW, None, &ks).unwrap();
                extra.push(b);
            }
            _ => {}
        }
    }
    (img, plain, extra)
}

/// Crash states of a header restore that needed the restore to be run again.
static RESTORE_RERUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn check_state(
    backup: Option<&Path>,
    dir: &Path,
    c: &Case,
    state: &[u8],
    plain: &[u8],
    data_ref: Option<(usize, &[u8])>,
    what: &str,
) -> Vec<String> {
    let mut bad = Vec::new();
    let p = dir.join("crash.img");
    std::fs::write(&p, state).unwrap();
    let v = match Volume::open(&p) {
        Ok(v) => v,
        Err(e) => {
            if !c.creates {
                bad.push(format!("{what}: does not open: {e}"));
            }
            return bad;
        }
    };
    let old_ok = v.unlock(OLD, None).ok();
    let new_ok = v.unlock(NEW, None).ok();
    if c.creates {
        if new_ok.is_none() {
            bad.push(format!(
                "{what}: a header that opens but not with the new passphrase"
            ));
        }
    } else if c.old_always && old_ok.is_none() {
        bad.push(format!("{what}: the old passphrase no longer opens"));
    } else if old_ok.is_none() && new_ok.is_none() {
        // A restore overwrites the live keyslot areas before the header that
        // names them: a crash in between leaves a header whose material is gone.
        // What must hold then: running the restore again from the backup works.
        if let (Some(b), "header-restore") = (backup, c.op) {
            drop(v);
            match Volume::restore_header(&p, b).and_then(|v| v.unlock(OLD, None).map(|_| ())) {
                Ok(()) => {
                    RESTORE_RERUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => bad.push(format!(
                    "{what}: unusable, and running the restore again fails: {e}"
                )),
            }
            return bad;
        }
        bad.push(format!(
            "{what}: neither the old nor the new passphrase opens"
        ));
    }
    for u in [&old_ok, &new_ok].into_iter().flatten() {
        if !c.creates {
            let mut buf = vec![0u8; plain.len()];
            u.read_at(&mut buf, 0).unwrap();
            if buf != plain {
                bad.push(format!("{what}: unlocked with a different volume key"));
            }
        }
    }
    if let Some((off, data)) = data_ref {
        if &state[off..off + data.len()] != data {
            bad.push(format!("{what}: the data segment changed"));
        }
    }
    // The next write repairs a stale or torn LUKS2 copy.
    if v.needs_repair().is_some() {
        drop(v);
        let mut v = Volume::open(&p).unwrap();
        match v.repair() {
            Ok(()) => {
                let v = Volume::open(&p).unwrap();
                if let Some(r) = v.needs_repair() {
                    bad.push(format!("{what}: still needs repair after repair(): {r}"));
                }
                if v.unlock(OLD, None).is_err() && v.unlock(NEW, None).is_err() {
                    bad.push(format!("{what}: repair lost every passphrase"));
                }
            }
            Err(e) => bad.push(format!("{what}: repair failed: {e}")),
        }
    }
    bad
}

fn run_case(c: &Case) -> (usize, usize, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (img, plain, extra) = prepare(dir.path(), c);
    let before = std::fs::read(&img).unwrap();
    let extra: Vec<&Path> = extra.iter().map(PathBuf::as_path).collect();
    let writes = record(dir.path(), c.op, &img, &extra);
    assert!(!writes.is_empty(), "{}: no write recorded", c.op);
    let after = std::fs::read(&img).unwrap();
    // The data segment as it was: it must stay byte-identical in every crash state.
    let data_ref = if c.creates {
        None
    } else {
        let off = Volume::open(&img).unwrap().data_layout().unwrap().offset as usize;
        assert_eq!(
            &after[off..],
            &before[off..],
            "{}: data segment rewritten",
            c.op
        );
        Some(off)
    };
    let mut bad = Vec::new();
    let mut states = 0;
    let mut state = before.clone();
    for (k, w) in writes.iter().enumerate() {
        // Crash before write k, and torn after each whole sector of it.
        let sectors = w.data.len().div_ceil(512);
        let mut cuts = vec![0usize];
        if sectors > 1 {
            if sectors <= 8 {
                cuts.extend((1..sectors).map(|s| s * 512));
            } else {
                cuts.extend([512, sectors / 2 * 512, (sectors - 1) * 512]);
            }
        }
        for cut in cuts {
            let mut s = state.clone();
            apply(&mut s, w, cut);
            states += 1;
            let what = format!(
                "{:?} {} crash at write {k}/{} torn at {cut}",
                c.luks,
                c.op,
                writes.len()
            );
            let dr = data_ref.map(|o| (o, &before[o..]));
            bad.extend(check_state(
                extra.first().copied(),
                dir.path(),
                c,
                &s,
                &plain,
                dr,
                &what,
            ));
        }
        apply(&mut state, w, w.data.len());
    }
    assert_eq!(
        state, after,
        "{}: the replay does not rebuild the final image",
        c.op
    );
    let what = format!("{:?} {} completed", c.luks, c.op);
    states += 1;
    bad.extend(check_state(
        extra.first().copied(),
        dir.path(),
        c,
        &state,
        &plain,
        data_ref.map(|o| (o, &before[o..])),
        &what,
    ));
    (writes.len(), states, bad)
}

fn run(cases: &[Case]) -> Vec<String> {
    let mut all = Vec::new();
    for c in cases {
        let (writes, states, bad) = run_case(c);
        eprintln!(
            "crash {:?} {}: {writes} writes recorded, {states} crash states checked, {} violations",
            c.luks,
            c.op,
            bad.len()
        );
        all.extend(bad);
    }
    eprintln!(
        "crash: {} header-restore crash states (all tests so far) opened only after running the restore again",
        RESTORE_RERUNS.load(std::sync::atomic::Ordering::Relaxed)
    );
    all
}

fn cases(luks: LuksType) -> Vec<Case> {
    vec![
        Case {
            op: if luks == LuksType::Luks1 {
                "format-luks1"
            } else {
                "format-luks2"
            },
            luks,
            creates: true,
            old_always: false,
        },
        Case {
            op: "add-key",
            luks,
            creates: false,
            old_always: true,
        },
        Case {
            op: "change-key",
            luks,
            creates: false,
            old_always: false,
        },
        Case {
            op: "remove-key",
            luks,
            creates: false,
            old_always: true,
        },
        Case {
            op: "header-restore",
            luks,
            creates: false,
            old_always: false,
        },
    ]
}

#[test]
fn luks2_header_operations_survive_a_crash_at_every_write() {
    if !strace_ok() {
        return;
    }
    let bad = run(&cases(LuksType::Luks2));
    assert!(
        bad.is_empty(),
        "{} violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// LUKS1 has one header copy, written with one 592-byte request (two
/// sectors). What still holds: keyslot material is written before the header
/// points to it and wiped after, so a crash between requests keeps the old
/// or the new passphrase; the data segment is never touched.
#[test]
fn luks1_header_operations_survive_a_crash_between_writes() {
    if !strace_ok() {
        return;
    }
    let bad = run(&cases(LuksType::Luks1));
    assert!(
        bad.is_empty(),
        "{} violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
