//! LUKS2 reencryption against cryptsetup 2.6 on files, both directions: keymgr
//! reencrypts a cryptsetup volume (cryptsetup opens it, the Python oracle decrypts the
//! data with the new volume key, the old key no longer does); cryptsetup reencrypts a
//! volume made here and it reads here; each tool resumes the other's interrupted run
//! (cryptsetup `--init-only` or killed; keymgr stopped after N hotzones or dying at a
//! write); every prefix of a checksum-mode run and of an encryption in place (odd
//! writes torn at 4096 bytes) resumes to the right plaintext, here or by cryptsetup;
//! decryption and encryption in place both ways; tampered reencryption state is
//! refused.

mod common;

use common::*;
use luks::reencrypt::{
    encrypt_in_place, reencrypt, reencrypt_detached, KeyChange, Outcome, ReencryptOptions,
    ResilienceKind,
};
use luks::{Error, FormatOptions, LuksType, PbkdfOptions, PbkdfType, Volume};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const A: &[u8] = b"reencrypt passphrase A";
const B: &[u8] = b"second passphrase B";
/// Data bytes after the 3 MiB of metadata (16 KiB headers, 2 MiB keyslots area).
const DATA: u64 = 4 << 20;
const META: u64 = 3 << 20;

struct Env {
    cs: PathBuf,
    dir: tempfile::TempDir,
    ka: PathBuf,
    kb: PathBuf,
}

fn setup() -> Option<Env> {
    let cs = tool("cryptsetup")?;
    // images in memory when possible: a run syncs after every write, which is what
    // these tests exercise but not what they measure
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let ka = secret_file(dir.path(), "a.key", A);
    let kb = secret_file(dir.path(), "b.key", B);
    Some(Env { cs, dir, ka, kb })
}

fn p(x: &Path) -> String {
    x.display().to_string()
}

fn cs(e: &Env, args: &[String]) -> std::process::Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&e.cs, &a)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A cryptsetup LUKS2 volume (keyslots area 2 MiB, data 4 MiB of 4096-byte sectors)
/// with A in slot 0 and B in slot 1, and a pattern written as its plaintext.
fn cs_volume(e: &Env, name: &str, data: u64) -> (PathBuf, Vec<u8>) {
    cs_volume_with(e, name, data, true, &[])
}

/// [`cs_volume`], with B's keyslot or not.
fn cs_volume_with(
    e: &Env,
    name: &str,
    data: u64,
    with_b: bool,
    extra: &[&str],
) -> (PathBuf, Vec<u8>) {
    let img = sparse_file(e.dir.path(), name, META + data);
    let mut a = s(&[
        "luksFormat",
        "-q",
        "--type",
        "luks2",
        "--luks2-keyslots-size",
        "2M",
    ]);
    a.extend(fast_kdf_args("pbkdf2"));
    a.extend(s(extra));
    a.extend([s(&["--key-file"]), vec![p(&e.ka), p(&img)]].concat());
    cs(e, &a);
    if with_b {
        let mut a = s(&["luksAddKey", "-q", "--key-file"]);
        a.extend([p(&e.ka)]);
        a.extend(fast_kdf_args("pbkdf2"));
        a.extend([p(&img), p(&e.kb)]);
        cs(e, &a);
    }
    let plain = write_pattern(&img, A, data);
    (img, plain)
}

fn write_pattern(img: &Path, pass: &[u8], data: u64) -> Vec<u8> {
    let plain = pattern(data as usize, data ^ 7);
    let v = Volume::open(img).unwrap();
    let u = v.unlock(pass, None).unwrap();
    assert_eq!(u.size(), data);
    u.write_at(&plain, 0).unwrap();
    u.sync().unwrap();
    plain
}

fn read_all(img: &Path, pass: &[u8]) -> Vec<u8> {
    let v = Volume::open(img).unwrap();
    let u = v.unlock(pass, None).unwrap();
    let mut out = vec![0u8; u.size() as usize];
    u.read_at(&mut out, 0).unwrap();
    out
}

fn fast() -> PbkdfOptions {
    PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2)
}

fn opts(r: ResilienceKind, hotzone: u64) -> ReencryptOptions {
    ReencryptOptions {
        resilience: r,
        hotzone_size: Some(hotzone),
        pbkdf: fast(),
        ..Default::default()
    }
}

fn both<'a>() -> Vec<KeyChange<'a>> {
    vec![
        KeyChange {
            passphrase: A,
            new_passphrase: None,
            slot: None,
        },
        KeyChange {
            passphrase: B,
            new_passphrase: None,
            slot: None,
        },
    ]
}

fn json(e: &Env, img: &Path) -> Value {
    let o = cs(
        e,
        &[s(&["luksDump", "--dump-json-metadata"]), vec![p(img)]].concat(),
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn in_reencryption(e: &Env, img: &Path) -> bool {
    json(e, img)["config"]["requirements"]["mandatory"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| r == "online-reencrypt-v2"))
}

/// cryptsetup reencrypt (offline) with key file A and `extra`.
fn cs_reencrypt(e: &Env, img: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = s(&["reencrypt", "-q", "--force-offline-reencrypt", "--key-file"]);
    a.push(p(&e.ka));
    a.extend(fast_kdf_args("pbkdf2"));
    a.extend(s(extra));
    a.push(p(img));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run(&e.cs, &a)
}

/// `cryptsetup repair`: cryptsetup recovers a crashed hotzone only there (then
/// `reencrypt --resume-only` continues); a no-op on a clean state.
fn cs_repair(e: &Env, img: &Path) {
    let o = cs(
        e,
        &[s(&["repair", "-q", "--key-file"]), vec![p(&e.ka), p(img)]].concat(),
    );
    assert!(o.status.success());
}

/// After a finished reencryption: cryptsetup accepts A (and B when `with_b`), the state
/// is gone, the volume key changed from `old_vk`, the oracle decrypts the data with
/// the new key and not with the old one, and it reads back here.
fn check_done(e: &Env, img: &Path, plain: &[u8], old_vk: &[u8], with_b: bool) {
    assert!(
        cs_accepts(&e.cs, img, &e.ka, None),
        "cryptsetup opens with A"
    );
    if with_b {
        assert!(
            cs_accepts(&e.cs, img, &e.kb, None),
            "cryptsetup opens with B"
        );
    }
    assert!(!in_reencryption(e, img), "requirement left behind");
    let j = json(e, img);
    assert_eq!(j["segments"].as_object().unwrap().len(), 1, "{j}");
    let vk = cs_volume_key(&e.cs, img, &e.ka);
    assert_ne!(vk, old_vk, "the volume key must change");
    if let Some(py) = python() {
        let raw = std::fs::read(img).unwrap();
        let n = 64 << 10;
        for at in [0u64, plain.len() as u64 - n as u64] {
            let ct = &raw[(META + at) as usize..(META + at) as usize + n];
            let pt = oracle_decrypt(&py, e.dir.path(), &vk, "xts-plain64", 4096, at / 512, ct);
            assert_eq!(
                &pt[..],
                &plain[at as usize..at as usize + n],
                "new key decrypts at {at}"
            );
            let old = oracle_decrypt(&py, e.dir.path(), old_vk, "xts-plain64", 4096, at / 512, ct);
            assert_ne!(
                &old[..],
                &plain[at as usize..at as usize + n],
                "old key must not"
            );
        }
    }
    assert!(read_all(img, A) == plain, "plaintext read here");
}

#[test]
fn keymgr_reencrypts_cryptsetup_volumes_in_each_resilience() {
    let Some(e) = setup() else { return };
    for (i, r) in [
        ResilienceKind::Checksum,
        ResilienceKind::Journal,
        ResilienceKind::None,
    ]
    .into_iter()
    .enumerate()
    {
        let (img, plain) = cs_volume(&e, &format!("r{i}.img"), DATA);
        let old_vk = cs_volume_key(&e.cs, &img, &e.ka);
        let mut seen = Vec::new();
        let out = reencrypt(&img, &both(), &opts(r, 1 << 20), &mut |p| {
            seen.push(p.done);
            true
        })
        .unwrap();
        assert_eq!(out, Outcome::Finished);
        assert_eq!(seen, vec![1 << 20, 2 << 20, 3 << 20, 4 << 20], "{r:?}");
        check_done(&e, &img, &plain, &old_vk, true);
    }
}

#[test]
fn cryptsetup_reencrypts_a_volume_made_here() {
    let Some(e) = setup() else { return };
    let img = sparse_file(e.dir.path(), "here.img", META + DATA);
    let fo = FormatOptions {
        luks_type: LuksType::Luks2,
        pbkdf: fast(),
        luks2_keyslots_size: Some(2 << 20),
        ..Default::default()
    };
    luks::format(&img, &fo, A).unwrap();
    let plain = write_pattern(&img, A, DATA);
    let old_vk = cs_volume_key(&e.cs, &img, &e.ka);
    let o = cs_reencrypt(&e, &img, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_done(&e, &img, &plain, &old_vk, false);
}

#[test]
fn cryptsetup_init_only_and_killed_runs_are_finished_here() {
    let Some(e) = setup() else { return };
    // --init-only: the state cryptsetup writes (its reencrypt digest checked here)
    let (img, plain) = cs_volume(&e, "init.img", DATA);
    let old_vk = cs_volume_key(&e.cs, &img, &e.ka);
    let o = cs_reencrypt(&e, &img, &["--init-only", "--key-slot", "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(in_reencryption(&e, &img));
    // the volume cannot be used as a plain volume meanwhile
    assert!(matches!(
        Volume::open(&img).unwrap().unlock(A, None),
        Err(Error::ReencryptionInProgress)
    ));
    let resume = ReencryptOptions {
        resume_only: true,
        ..opts(ResilienceKind::Checksum, 1 << 20)
    };
    let ka = [KeyChange {
        passphrase: A,
        new_passphrase: None,
        slot: None,
    }];
    assert_eq!(
        reencrypt(&img, &ka, &resume, &mut |_| true).unwrap(),
        Outcome::Finished
    );
    check_done(&e, &img, &plain, &old_vk, false);
    // B's keyslot was not re-wrapped (--key-slot 0): cryptsetup removed nothing yet,
    // the run here removes keyslots of the old key
    assert!(!cs_accepts(&e.cs, &img, &e.kb, None));

    // killed midway: SIGKILL as soon as its header shows a hotzone done (small
    // hotzones on a larger volume: hundreds of steps to catch)
    let data = 32 << 20;
    for attempt in 0..3 {
        let (img, plain) = cs_volume(&e, "killed.img", data);
        let old_vk = cs_volume_key(&e.cs, &img, &e.ka);
        let mut child = Command::new(&e.cs)
            .args([
                "reencrypt",
                "-q",
                "--force-offline-reencrypt",
                "--hotzone-size",
                "64K",
                "--key-slot",
                "0",
                "--key-file",
            ])
            .arg(&e.ka)
            .args(fast_kdf_args("pbkdf2"))
            .arg(&img)
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() && t0.elapsed().as_secs() < 20 {
            let head = std::fs::read(&img).unwrap();
            let v = serde_json::from_slice::<Value>(
                &head[4096..4096 + head[4096..HDR].iter().position(|b| *b == 0).unwrap()],
            );
            if v.is_ok_and(|v| v["segments"].as_object().is_some_and(|s| s.len() >= 4)) {
                child.kill().ok();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        child.kill().ok();
        child.wait().unwrap();
        let mid = in_reencryption(&e, &img);
        eprintln!("attempt {attempt}: killed in reencryption: {mid}");
        let out = reencrypt(
            &img,
            &both(),
            &opts(ResilienceKind::Checksum, 4 << 20),
            &mut |_| true,
        )
        .unwrap();
        assert_eq!(out, Outcome::Finished);
        assert!(
            read_all(&img, A) == plain,
            "plaintext after resuming cryptsetup's run"
        );
        if mid {
            assert_ne!(cs_volume_key(&e.cs, &img, &e.ka), old_vk);
            return;
        }
    }
    panic!("cryptsetup was never caught in the middle of its run");
}

#[test]
fn keymgr_runs_stopped_or_dead_are_finished_by_cryptsetup() {
    let Some(e) = setup() else { return };
    for (i, r) in [ResilienceKind::Checksum, ResilienceKind::Journal]
        .into_iter()
        .enumerate()
    {
        // stopped cleanly after 2 hotzones
        let (img, plain) = cs_volume(&e, &format!("stop{i}.img"), DATA);
        let old_vk = cs_volume_key(&e.cs, &img, &e.ka);
        let o = ReencryptOptions {
            stop_after_hotzones: Some(2),
            ..opts(r, 1 << 20)
        };
        let out = reencrypt(&img, &both(), &o, &mut |_| true).unwrap();
        assert!(
            matches!(out, Outcome::Stopped(p) if p.done == 2 << 20),
            "{out:?}"
        );
        assert!(in_reencryption(&e, &img));
        let o = cs_reencrypt(&e, &img, &["--resume-only"]);
        assert!(
            o.status.success(),
            "{r:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        check_done(&e, &img, &plain, &old_vk, true);

        // died inside the second hotzone, after its hot segments were committed and
        // half of its data was written (init: material 2, header 2 = writes 0..=3;
        // hotzone 1: area, header 2, data, header 2 = 4..=9; hotzone 2: area, header 2,
        // then its data is write 13)
        let (img, plain) = cs_volume(&e, &format!("dead{i}.img"), DATA);
        let old_vk = cs_volume_key(&e.cs, &img, &e.ka);
        let o = ReencryptOptions {
            crash_at_write: Some((13, 512 << 10)),
            ..opts(r, 1 << 20)
        };
        assert!(reencrypt(&img, &both(), &o, &mut |_| true).is_err());
        let j = json(&e, &img);
        assert!(
            j["segments"]
                .as_object()
                .unwrap()
                .values()
                .any(|s| s["flags"][0] == "in-reencryption"),
            "{j}"
        );
        cs_repair(&e, &img);
        let o = cs_reencrypt(&e, &img, &["--resume-only"]);
        assert!(
            o.status.success(),
            "{r:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        check_done(&e, &img, &plain, &old_vk, true);
    }
}

#[test]
fn every_prefix_of_a_checksum_run_resumes() {
    let Some(e) = setup() else { return };
    let data = 1u64 << 20;
    // one keyslot: every run and resume here derives as few keys as possible
    // (and a 256-bit key: half the anti-forensic splitting of each key derivation)
    let (base, plain) = cs_volume_with(&e, "base.img", data, false, &["--key-size", "256"]);
    let only_a = [KeyChange {
        passphrase: A,
        new_passphrase: None,
        slot: None,
    }];
    let base_bytes = std::fs::read(&base).unwrap();
    let img = e.dir.path().join("crash.img");
    let mut n = 0u64;
    loop {
        // odd writes are torn after their first 4096 bytes, even ones not written
        {
            let torn = (n % 2) as usize * 4096;
            std::fs::write(&img, &base_bytes).unwrap();
            let o = ReencryptOptions {
                crash_at_write: Some((n, torn)),
                ..opts(ResilienceKind::Checksum, 512 << 10)
            };
            match reencrypt(&img, &only_a, &o, &mut |_| true) {
                Ok(Outcome::Finished) => {
                    // init: material, header 2; hotzone 1: area, header 2, data,
                    // header 2; the last: area, header 2, data, final header 2
                    assert_eq!(n, 15, "writes in a run");
                    eprintln!("{n} writes in a run, every prefix resumed");
                    return;
                }
                Ok(other) => panic!("{other:?}"),
                Err(Error::Reencrypt(_)) => {}
                Err(other) => panic!("write {n}: {other:?}"),
            }
            // every fourth crash image is finished by cryptsetup, the others here
            if n.is_multiple_of(4) && torn == 0 && in_reencryption(&e, &img) {
                cs_repair(&e, &img);
                // the repair of the last hotzone also finishes the run
                if in_reencryption(&e, &img) {
                    let o = cs_reencrypt(&e, &img, &["--resume-only"]);
                    assert!(
                        o.status.success(),
                        "write {n}: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            } else {
                let out = reencrypt(
                    &img,
                    &only_a,
                    &opts(ResilienceKind::Checksum, 512 << 10),
                    &mut |_| true,
                )
                .unwrap_or_else(|err| panic!("resume after write {n} (torn {torn}): {err:?}"));
                assert_eq!(out, Outcome::Finished);
            }
            assert!(
                read_all(&img, A) == plain,
                "plaintext after crash at write {n} (torn {torn})"
            );
        }
        n += 1;
    }
}

// ---- tampered reencryption state (CVE-2021-4122): refused, data untouched ----

const HDR: usize = 16384;

fn json_of(img: &[u8], at: usize) -> Value {
    let area = &img[at + 4096..at + HDR];
    let end = area.iter().position(|b| *b == 0).unwrap();
    serde_json::from_slice(&area[..end]).unwrap()
}

/// Both header copies with the JSON changed by `f` and valid checksums.
fn mutate(img: &[u8], f: &dyn Fn(&mut Value)) -> Vec<u8> {
    let mut out = img.to_vec();
    for at in [0, HDR] {
        let mut v = json_of(&out, at);
        f(&mut v);
        let text = serde_json::to_vec(&v).unwrap();
        let area = &mut out[at + 4096..at + HDR];
        area.fill(0);
        area[..text.len()].copy_from_slice(&text);
        let copy = &mut out[at..at + HDR];
        copy[448..512].fill(0);
        let sum = Sha256::digest(&*copy);
        copy[448..480].copy_from_slice(&sum);
    }
    out
}

fn reenc_slot(v: &Value) -> String {
    v["keyslots"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, k)| k["type"] == "reencrypt")
        .map(|(i, _)| i.clone())
        .unwrap()
}

fn seg_by_flag(v: &mut Value, flag: &str) -> String {
    v["segments"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, s)| {
            s["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == flag))
        })
        .map(|(i, _)| i.clone())
        .unwrap()
}

#[test]
fn tampered_reencryption_state_is_refused() {
    let Some(e) = setup() else { return };
    let (img, _) = cs_volume(&e, "t.img", DATA);
    let o = cs_reencrypt(&e, &img, &["--init-only", "--key-slot", "0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let good = std::fs::read(&img).unwrap();
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit)> = vec![
        ("new segment cipher", |v| {
            let i = seg_by_flag(v, "backup-final");
            v["segments"][&i]["encryption"] = "aes-cbc-essiv:sha256".into();
        }),
        ("old segment offset", |v| {
            let i = seg_by_flag(v, "backup-previous");
            v["segments"][&i]["offset"] = "4194304".into();
        }),
        ("resilience none", |v| {
            let i = reenc_slot(v);
            let a = v["keyslots"][&i]["area"].as_object_mut().unwrap();
            a.remove("hash");
            a.remove("sector_size");
            a.insert("type".into(), "none".into());
        }),
        ("area moved", |v| {
            let i = reenc_slot(v);
            v["keyslots"][&i]["area"]["size"] = "4096".into();
        }),
        ("reencrypt digest removed", |v| {
            let i = reenc_slot(v);
            let d = v["digests"].as_object_mut().unwrap();
            let id = d
                .iter()
                .find(|(_, x)| x["keyslots"][0] == i.as_str())
                .map(|(k, _)| k.clone())
                .unwrap();
            d.remove(&id);
        }),
        ("reencrypt digest forged", |v| {
            let i = reenc_slot(v);
            let d = v["digests"].as_object_mut().unwrap();
            for x in d.values_mut() {
                if x["keyslots"][0] == i.as_str() {
                    x["digest"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
                }
            }
        }),
    ];
    for (name, f) in cases {
        let bad = mutate(&good, &f);
        std::fs::write(&img, &bad).unwrap();
        let r = reencrypt(
            &img,
            &both(),
            &opts(ResilienceKind::Checksum, 1 << 20),
            &mut |_| true,
        );
        assert!(
            matches!(r, Err(Error::ReencryptUnauthenticated(_))),
            "{name}: {r:?}"
        );
        assert!(
            std::fs::read(&img).unwrap() == bad,
            "{name}: the image was changed"
        );
        eprintln!("{name}: refused");
    }
}

// ---- decryption (detached header, as cryptsetup 2.6 requires) ----

/// A cryptsetup LUKS2 volume with a detached header (`--header`): data file of
/// `DATA` bytes at offset 0, a pattern written as its plaintext.
fn cs_detached(e: &Env, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let hdr = sparse_file(e.dir.path(), &format!("{name}.hdr"), 4 << 20);
    let img = sparse_file(e.dir.path(), &format!("{name}.img"), DATA);
    let mut a = s(&[
        "luksFormat",
        "-q",
        "--type",
        "luks2",
        "--luks2-keyslots-size",
        "2M",
    ]);
    a.extend(fast_kdf_args("pbkdf2"));
    a.extend(
        [
            s(&["--key-file"]),
            vec![p(&e.ka), "--header".into(), p(&hdr), p(&img)],
        ]
        .concat(),
    );
    cs(e, &a);
    let plain = pattern(DATA as usize, 99);
    let v = Volume::open_detached(&hdr, &img).unwrap();
    let u = v.unlock(A, None).unwrap();
    u.write_at(&plain, 0).unwrap();
    u.sync().unwrap();
    (hdr, img, plain)
}

fn cs_decrypt(e: &Env, hdr: &Path, img: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = s(&[
        "reencrypt",
        "-q",
        "--decrypt",
        "--force-offline-reencrypt",
        "--key-file",
    ]);
    a.extend([p(&e.ka), "--header".into(), p(hdr)]);
    a.extend(s(extra));
    a.push(p(img));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run(&e.cs, &a)
}

/// After a finished decryption: the data file is the plaintext, the header holds one
/// linear segment and no keyslot (as cryptsetup leaves it).
fn check_decrypted(e: &Env, hdr: &Path, img: &Path, plain: &[u8]) {
    assert!(
        std::fs::read(img).unwrap() == plain,
        "the data is plaintext"
    );
    let j = json(e, hdr);
    assert_eq!(j["segments"]["0"]["type"], "linear", "{j}");
    assert_eq!(j["segments"].as_object().unwrap().len(), 1, "{j}");
    assert!(j["keyslots"].as_object().unwrap().is_empty(), "{j}");
    assert!(j["config"].get("requirements").is_none(), "{j}");
}

#[test]
fn decryption_both_ways_and_resumed_by_the_other_tool() {
    let Some(e) = setup() else { return };
    let ka = [KeyChange {
        passphrase: A,
        new_passphrase: None,
        slot: None,
    }];
    let dec = |r, hz| ReencryptOptions {
        decrypt: true,
        ..opts(r, hz)
    };
    // here, start to end; an attached header is refused (cryptsetup asks for --header)
    let (img, _) = cs_volume_with(&e, "attached.img", DATA, false, &[]);
    let r = reencrypt(
        &img,
        &ka,
        &dec(ResilienceKind::Checksum, 1 << 20),
        &mut |_| true,
    );
    assert!(
        matches!(
            r,
            Err(Error::InvalidOption {
                option: "--decrypt",
                ..
            })
        ),
        "{r:?}"
    );
    let (hdr, img, plain) = cs_detached(&e, "d1");
    let out = reencrypt_detached(
        &hdr,
        &img,
        &ka,
        &dec(ResilienceKind::Checksum, 1 << 20),
        &mut |_| true,
    );
    assert_eq!(out.unwrap(), Outcome::Finished);
    check_decrypted(&e, &hdr, &img, &plain);

    // cryptsetup's state (--init-only: backward) finished here
    let (hdr, img, plain) = cs_detached(&e, "d2");
    let o = cs_decrypt(&e, &hdr, &img, &["--init-only"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&e, &hdr)["keyslots"]["1"]["direction"], "backward");
    let o = ReencryptOptions {
        stop_after_hotzones: Some(2),
        ..opts(ResilienceKind::Checksum, 1 << 20)
    };
    let out = reencrypt_detached(&hdr, &img, &ka, &o, &mut |_| true).unwrap();
    assert!(
        matches!(out, Outcome::Stopped(p) if p.done == 2 << 20),
        "{out:?}"
    );
    // ... and the rest by cryptsetup again
    let o = cs_decrypt(&e, &hdr, &img, &["--resume-only"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_decrypted(&e, &hdr, &img, &plain);

    // ours (forward) dying inside a hotzone, finished by cryptsetup (repair, resume)
    for (i, r) in [ResilienceKind::Checksum, ResilienceKind::Journal]
        .into_iter()
        .enumerate()
    {
        let (hdr, img, plain) = cs_detached(&e, &format!("d3{i}"));
        // init: header 2 = writes 0, 1; hotzone 1: area, header 2, data, header 2 =
        // 2..=7; hotzone 2: area, header 2, then its data is write 11
        let o = ReencryptOptions {
            crash_at_write: Some((11, 256 << 10)),
            ..dec(r, 1 << 20)
        };
        assert!(reencrypt_detached(&hdr, &img, &ka, &o, &mut |_| true).is_err());
        let a = s(&["repair", "-q", "--key-file"]);
        cs(
            &e,
            &[a, vec![p(&e.ka), "--header".into(), p(&hdr), p(&img)]].concat(),
        );
        let o = cs_decrypt(&e, &hdr, &img, &["--resume-only"]);
        assert!(
            o.status.success(),
            "{r:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        check_decrypted(&e, &hdr, &img, &plain);
    }
}

// ---- encryption in place (data shift) ----

/// A plaintext image of `META + size` bytes holding a pattern (the data cryptsetup
/// keeps is the first `dev - reduce` bytes).
fn plain_image(e: &Env, name: &str, dev: u64) -> (PathBuf, Vec<u8>) {
    let img = e.dir.path().join(name);
    let plain = pattern(dev as usize, dev ^ 3);
    std::fs::write(&img, &plain).unwrap();
    (img, plain)
}

fn cs_encrypt(e: &Env, img: &Path, extra: &[&str]) -> std::process::Output {
    let mut a = s(&[
        "reencrypt",
        "-q",
        "--encrypt",
        "--force-offline-reencrypt",
        "--type",
        "luks2",
    ]);
    a.extend(fast_kdf_args("pbkdf2"));
    a.extend(s(&["--key-file"]));
    a.push(p(&e.ka));
    a.extend(s(extra));
    a.push(p(img));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run(&e.cs, &a)
}

#[test]
fn encryption_in_place_both_ways_and_resumed_by_the_other_tool() {
    let Some(e) = setup() else { return };
    let ka = [KeyChange {
        passphrase: A,
        new_passphrase: None,
        slot: None,
    }];
    let fo = FormatOptions {
        luks_type: LuksType::Luks2,
        pbkdf: fast(),
        ..Default::default()
    };
    // (device, reduce): data larger than the shift (several hotzones), and smaller
    for (i, (dev, reduce)) in [(40u64 << 20, 8u64 << 20), (40 << 20, 32 << 20)]
        .into_iter()
        .enumerate()
    {
        let keep = (dev - reduce) as usize;
        // here, start to end; cryptsetup opens it and reads the same plaintext
        let (img, plain) = plain_image(&e, &format!("e{i}.img"), dev);
        let o = ReencryptOptions {
            reduce_device_size: Some(reduce),
            ..Default::default()
        };
        let out = encrypt_in_place(&img, A, &fo, &o, &mut |_| true).unwrap();
        assert_eq!(out, Outcome::Finished);
        assert!(cs_accepts(&e.cs, &img, &e.ka, None));
        let j = json(&e, &img);
        assert_eq!(
            j["segments"]["0"]["offset"],
            (reduce / 2).to_string(),
            "{j}"
        );
        assert!(
            read_all(&img, A)[..keep] == plain[..keep],
            "plaintext after encryption here"
        );
        if let Some(py) = python() {
            let vk = cs_volume_key(&e.cs, &img, &e.ka);
            let raw = std::fs::read(&img).unwrap();
            let at = (reduce / 2) as usize;
            let pt = oracle_decrypt(
                &py,
                e.dir.path(),
                &vk,
                "xts-plain64",
                512,
                0,
                &raw[at..at + 65536],
            );
            assert!(pt == plain[..65536], "oracle");
        }

        // cryptsetup's state (--init-only), finished here
        let (img, plain) = plain_image(&e, &format!("c{i}.img"), dev);
        let r = format!("{}M", reduce >> 20);
        let o = cs_encrypt(&e, &img, &["--init-only", "--reduce-device-size", &r]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = reencrypt(&img, &ka, &ReencryptOptions::default(), &mut |_| true).unwrap();
        assert_eq!(out, Outcome::Finished);
        assert!(cs_accepts(&e.cs, &img, &e.ka, None));
        assert!(
            read_all(&img, A)[..keep] == plain[..keep],
            "cryptsetup's encryption finished here"
        );

        // ours stopped after one hotzone (and ours dying inside the next), cryptsetup finishes
        for crash in [None, Some((5u64, 4096usize))] {
            let (img, plain) = plain_image(&e, &format!("k{i}.img"), dev);
            let o = ReencryptOptions {
                reduce_device_size: Some(reduce),
                stop_after_hotzones: crash.is_none().then_some(1),
                crash_at_write: crash,
                ..Default::default()
            };
            let r = encrypt_in_place(&img, A, &fo, &o, &mut |_| true);
            assert!(r.is_err() == crash.is_some(), "{r:?}");
            cs_repair(&e, &img);
            if in_reencryption(&e, &img) {
                let o = cs_encrypt(&e, &img, &["--resume-only"]);
                assert!(
                    o.status.success(),
                    "{crash:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            assert!(cs_accepts(&e.cs, &img, &e.ka, None));
            assert!(
                read_all(&img, A)[..keep] == plain[..keep],
                "ours finished by cryptsetup ({crash:?})"
            );
        }
    }
}

#[test]
fn every_prefix_of_an_encryption_in_place_resumes() {
    let Some(e) = setup() else { return };
    let fo = FormatOptions {
        luks_type: LuksType::Luks2,
        pbkdf: fast(),
        key_size_bits: Some(256),
        ..Default::default()
    };
    // 8 MiB device, 4 MiB given up: data offset 2 MiB, 4 MiB of data, 2 hotzones
    // (the second from the moved copy)
    let (dev, reduce) = (8u64 << 20, 4u64 << 20);
    let keep = (dev - reduce) as usize;
    let base = pattern(dev as usize, 5);
    let img = e.dir.path().join("shift.img");
    let ka = [KeyChange {
        passphrase: A,
        new_passphrase: None,
        slot: None,
    }];
    // writes 0..=3 are the init (move, keyslot material, header 2): a crash there
    // leaves no header (as cryptsetup's own init); from write 4 on, each tool resumes
    let mut n = 4u64;
    loop {
        let torn = (n % 2) as usize * 4096;
        std::fs::write(&img, &base).unwrap();
        let o = ReencryptOptions {
            reduce_device_size: Some(reduce),
            crash_at_write: Some((n, torn)),
            ..Default::default()
        };
        match encrypt_in_place(&img, A, &fo, &o, &mut |_| true) {
            Ok(Outcome::Finished) => {
                // init 4; each hotzone: hot header 2, data, post (or final) header 2
                assert_eq!(n, 14, "writes in a run");
                return;
            }
            Ok(other) => panic!("{other:?}"),
            Err(Error::Reencrypt(_)) => {}
            Err(other) => panic!("write {n}: {other:?}"),
        }
        if n.is_multiple_of(4) && in_reencryption(&e, &img) {
            cs_repair(&e, &img);
            if in_reencryption(&e, &img) {
                let o = cs_encrypt(&e, &img, &["--resume-only"]);
                assert!(
                    o.status.success(),
                    "write {n}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        } else {
            let out = reencrypt(&img, &ka, &ReencryptOptions::default(), &mut |_| true)
                .unwrap_or_else(|err| panic!("resume after write {n} (torn {torn}): {err:?}"));
            assert_eq!(out, Outcome::Finished);
        }
        assert!(
            read_all(&img, A)[..keep] == base[..keep],
            "plaintext after a crash at write {n}"
        );
        n += 1;
    }
}
