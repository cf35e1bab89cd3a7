//! `keymgr luks reencrypt`: rotating a volume's key end to end with `--key-ref`
//! (the new keyslot's passphrase from `--new-key-ref`), against the real
//! cryptsetup: the state written by `--init-only` is resumed by `--resume-only`,
//! cryptsetup then opens the volume with the new passphrase only, its volume key
//! changed, and the plaintext reads back; bad options are usage errors (exit 1).
#![cfg(feature = "mock")]

mod common;

use common::{cryptsetup_accepts, Env};

use std::path::Path;
use std::process::Command;

fn volume_key(image: &Path, key_file: &Path) -> String {
    let out = Command::new("cryptsetup")
        .args(["luksDump", "--dump-volume-key", "-q", "--key-file"])
        .arg(key_file)
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.split("MK dump:").nth(1).unwrap().to_string()
}

const FAST: [&str; 4] = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"];

#[test]
fn rotating_a_volume_key_with_key_refs() {
    if !common::tool("cryptsetup") {
        return;
    }
    let e = Env::new();
    let key: Vec<u8> = (0u8..32).collect();
    let old_id = e.store("symmetric", "key", &key);
    let new_id = e.store("passphrase", "pw", b"rotated passphrase");
    std::fs::write(e.p("hexpass"), hex::encode(&key)).unwrap();
    let img = e.s("v.img");
    std::fs::File::create(img)
        .unwrap()
        .set_len(20 << 20)
        .unwrap();
    let mut fmt = vec![
        "luks",
        "format",
        &img,
        "--type",
        "luks2",
        "--key-ref",
        &old_id,
    ];
    fmt.extend(FAST);
    e.ok(&fmt);
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(e.p("data"), &data).unwrap();
    let input = e.s("data");
    e.ok(&["luks", "write", img, "--key-ref", &old_id, "--input", input]);
    let old_vk = volume_key(&e.p("v.img"), &e.p("hexpass"));

    // usage errors: exit 1, nothing changed
    let before = std::fs::read(img).unwrap();
    for bad in [
        vec!["--resilience", "mirror"],
        vec!["--hotzone-size", "12Q"],
        vec!["--encrypt", "--reduce-device-size", "32M"],
        vec!["--resume-only"],
    ] {
        let mut a = vec!["luks", "reencrypt", &img, "--key-ref", &old_id];
        a.extend(bad.iter().copied());
        let out = e.run(&a);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        std::fs::read(img).unwrap() == before,
        "a refused command changed the image"
    );

    // the state only, then resumed (the key manager supplies both passphrases: the
    // old keyslots open with the first, the new ones with the second)
    let mut init = vec![
        "luks",
        "reencrypt",
        &img,
        "--key-ref",
        &old_id,
        "--new-key-ref",
        &new_id,
        "--init-only",
    ];
    init.extend(FAST);
    let out = e.ok(&[&["--json"][..], &init].concat());
    assert!(out.contains("\"initialized\""), "{out}");
    // meanwhile the volume is not usable as a plain one: busy (exit 5)
    let out = e.run(&["luks", "read", img, "--key-ref", &old_id, "-o", e.s("x")]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = e.ok(&[
        "--json",
        "luks",
        "reencrypt",
        img,
        "--key-ref",
        &old_id,
        "--new-key-ref",
        &new_id,
        "--resume-only",
        "--hotzone-size",
        "1M",
        "--batch-mode",
    ]);
    assert!(out.contains("\"finished\""), "{out}");

    // cryptsetup: the new passphrase opens it, the old one no longer; new volume key
    assert!(cryptsetup_accepts(&e.p("v.img"), &e.p("pw")));
    assert!(!cryptsetup_accepts(&e.p("v.img"), &e.p("hexpass")));
    assert_ne!(volume_key(&e.p("v.img"), &e.p("pw")), old_vk);
    let back = e.s("back");
    e.ok(&["luks", "read", img, "--key-ref", &new_id, "-o", back]);
    assert!(
        std::fs::read(back).unwrap() == data,
        "plaintext after rotation"
    );
}

/// The primary header's JSON.
fn header_json(img: &Path) -> Option<serde_json::Value> {
    let head = std::fs::read(img).ok()?;
    let area = head.get(4096..16384)?;
    let end = area.iter().position(|b| *b == 0)?;
    serde_json::from_slice(&area[..end]).ok()
}

#[test]
fn ctrl_c_stops_at_a_hotzone_boundary_and_the_run_resumes() {
    if !common::tool("cryptsetup") {
        return;
    }
    let e = Env::new();
    std::fs::write(e.p("pass"), b"interrupt me").unwrap();
    let (img, pass) = (e.s("v.img"), e.s("pass"));
    std::fs::File::create(img)
        .unwrap()
        .set_len((16 + 64) << 20)
        .unwrap();
    let mut fmt = vec![
        "luks",
        "format",
        &img,
        "--type",
        "luks2",
        "--key-file",
        &pass,
    ];
    fmt.extend(FAST);
    e.ok(&fmt);
    let (before, after) = (e.s("before"), e.s("after"));
    e.ok(&["luks", "read", img, "--key-file", pass, "-o", before]);
    // resilience none: a kill inside a hotzone would lose it, a clean stop does not
    let mut child = Command::new(env!("CARGO_BIN_EXE_keymgr"))
        .arg("--config")
        .arg(&e.config)
        .args([
            "luks",
            "reencrypt",
            img,
            "--key-file",
            pass,
            "--resilience",
            "none",
        ])
        .args(["--hotzone-size", "256K"])
        .args(FAST)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed().as_secs() < 30 {
        let started = header_json(Path::new(&img))
            .is_some_and(|v| v["segments"].as_object().is_some_and(|s| s.len() >= 4));
        if started {
            Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprintln!("skipped the interrupt check: the run finished before Ctrl-C arrived");
    } else {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("--resume-only"), "{err}");
        let v = header_json(Path::new(&img)).unwrap();
        assert!(
            v["segments"]
                .as_object()
                .unwrap()
                .values()
                .all(|s| s.get("flags").is_none_or(|f| f[0] != "in-reencryption")),
            "stopped between hotzones: {v}"
        );
        let mut resume = vec![
            "luks",
            "reencrypt",
            &img,
            "--key-file",
            &pass,
            "--resume-only",
        ];
        resume.extend(FAST);
        e.ok(&resume);
    }
    assert!(cryptsetup_accepts(Path::new(&img), &e.p("pass")));
    e.ok(&["luks", "read", img, "--key-file", pass, "-o", after]);
    assert!(
        std::fs::read(before).unwrap() == std::fs::read(after).unwrap(),
        "plaintext unchanged"
    );
}

#[test]
fn encrypting_a_plaintext_image_in_place_with_a_key_ref() {
    if !common::tool("cryptsetup") {
        return;
    }
    let e = Env::new();
    let id = e.store("passphrase", "pw", b"in place");
    let img = e.s("plain.img");
    let plain: Vec<u8> = (0..40u32 << 20).map(|i| (i / 512 + i) as u8).collect();
    std::fs::write(img, &plain).unwrap();
    let mut a = vec![
        "--json",
        "luks",
        "reencrypt",
        &img,
        "--encrypt",
        "--reduce-device-size",
        "8M",
        "--key-ref",
        &id,
    ];
    a.extend(FAST);
    let out = e.ok(&a);
    assert!(out.contains("\"finished\""), "{out}");
    assert!(cryptsetup_accepts(Path::new(&img), &e.p("pw")));
    let back = e.s("back");
    e.ok(&["luks", "read", img, "--key-ref", &id, "-o", back]);
    let back = std::fs::read(back).unwrap();
    assert_eq!(back.len(), 36 << 20, "data offset 4 MiB, 8 MiB given up");
    assert!(
        back[..32 << 20] == plain[..32 << 20],
        "the kept data reads back"
    );
    // the plaintext copy made for the move is gone
    let raw = std::fs::read(img).unwrap();
    assert!(raw[36 << 20..40 << 20] != plain[..4 << 20]);
}
