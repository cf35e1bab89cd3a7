//! `keymgr luks ...` against the real cryptsetup and qemu-img, with key
//! files (every byte counts) and with `--key-ref` through the key manager.
#![cfg(feature = "mock")]

mod common;

use common::{cryptsetup_accepts, Env};

use std::process::Command;

const FAST: [&str; 4] = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"];

#[test]
fn format_rekey_and_data_interoperate_with_cryptsetup() {
    if !common::tool("cryptsetup") {
        return;
    }
    let e = Env::new();
    // Key files keep every byte, trailing newline included.
    std::fs::write(e.p("k1"), b"first passphrase\n").unwrap();
    std::fs::write(e.p("k1-stripped"), b"first passphrase").unwrap();
    std::fs::write(e.p("k2"), b"\x00binary\xffsecond").unwrap();
    for (ty, extra) in [
        ("luks2", vec!["--sector-size", "512"]),
        ("luks2", vec!["--sector-size", "4096"]),
        ("luks1", vec![]),
    ] {
        let img = e.p("v.img");
        std::fs::write(&img, vec![0u8; 24 << 20]).unwrap();
        let mut args = vec![
            "luks",
            "format",
            img.to_str().unwrap(),
            "--type",
            ty,
            "--key-file",
            e.s("k1"),
        ];
        args.extend(FAST);
        args.extend(extra.iter().copied());
        e.ok(&args);
        assert!(
            cryptsetup_accepts(&img, &e.p("k1")),
            "{ty}: cryptsetup refuses the passphrase"
        );
        assert!(
            !cryptsetup_accepts(&img, &e.p("k1-stripped")),
            "{ty}: the newline was stripped"
        );

        let mut add = vec![
            "luks",
            "add-key",
            img.to_str().unwrap(),
            "--key-file",
            e.s("k1"),
            "--new-key-file",
            e.s("k2"),
        ];
        add.extend(FAST);
        e.ok(&add);
        assert!(cryptsetup_accepts(&img, &e.p("k2")));
        e.ok(&[
            "luks",
            "remove-key",
            img.to_str().unwrap(),
            "--key-file",
            e.s("k1"),
        ]);
        assert!(
            !cryptsetup_accepts(&img, &e.p("k1")),
            "{ty}: removed passphrase still opens"
        );
        assert!(cryptsetup_accepts(&img, &e.p("k2")));

        // test-passphrase exit codes: 0 opens, 2 no matching key.
        assert_eq!(
            e.run(&[
                "luks",
                "test-passphrase",
                img.to_str().unwrap(),
                "--key-file",
                e.s("k2")
            ])
            .status
            .code(),
            Some(0)
        );
        assert_eq!(
            e.run(&[
                "luks",
                "test-passphrase",
                img.to_str().unwrap(),
                "--key-file",
                e.s("k1")
            ])
            .status
            .code(),
            Some(2)
        );
        assert_eq!(
            e.run(&[
                "luks",
                "test-passphrase",
                e.s("k1"),
                "--key-file",
                e.s("k2")
            ])
            .status
            .code(),
            Some(1)
        );

        // Data written here reads back here, at an unaligned offset.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(e.p("data"), &data).unwrap();
        e.ok(&[
            "luks",
            "write",
            img.to_str().unwrap(),
            "--key-file",
            e.s("k2"),
            "--input",
            e.s("data"),
            "--offset",
            "1234",
        ]);
        e.ok(&[
            "luks",
            "read",
            img.to_str().unwrap(),
            "--key-file",
            e.s("k2"),
            "--output",
            e.s("back"),
            "--force",
            "--offset",
            "1234",
            "--length",
            "300000",
        ]);
        assert_eq!(
            std::fs::read(e.p("back")).unwrap(),
            data,
            "{ty}: data changed"
        );
        let raw = std::fs::read(&img).unwrap();
        assert!(
            !raw.windows(64).any(|w| w == &data[1000..1064]),
            "{ty}: plaintext on disk"
        );

        let dump = e.ok(&["luks", "dump", img.to_str().unwrap()]);
        assert!(dump.contains("xts-plain64"), "{dump}");
        let cs = Command::new("cryptsetup")
            .arg("luksDump")
            .arg(&img)
            .output()
            .unwrap();
        assert!(
            cs.status.success(),
            "cryptsetup luksDump: {}",
            String::from_utf8_lossy(&cs.stderr)
        );
        assert_eq!(
            dump,
            String::from_utf8_lossy(&cs.stdout),
            "{ty}: dumps differ"
        );
    }
}

#[test]
fn key_ref_uses_the_os_brick_passphrase_rule() {
    if !common::tool("cryptsetup") {
        return;
    }
    let e = Env::new();
    let key: Vec<u8> = vec![0x00, 0x0f, 0x10, 0xff, 0x01, 0xa0, 0x05, 0x50];
    std::fs::write(e.p("key"), &key).unwrap();
    let id = e.ok(&[
        "secret",
        "store",
        "--kind",
        "symmetric",
        "--file",
        e.s("key"),
    ]);
    let id = id.trim();
    std::fs::write(e.p("v.img"), vec![0u8; 20 << 20]).unwrap();
    let mut args = vec![
        "luks",
        "format",
        e.s("v.img"),
        "--type",
        "luks2",
        "--key-ref",
        id,
    ];
    args.extend(FAST);
    e.ok(&args);
    // cryptsetup opens it with the hex of the key bytes, two digits a byte.
    std::fs::write(e.p("hexpass"), hex::encode(&key)).unwrap();
    assert!(cryptsetup_accepts(&e.p("v.img"), &e.p("hexpass")));
    // And a passphrase secret is used as is.
    std::fs::write(e.p("pw"), "  spaced passphrase ").unwrap();
    let pid = e.ok(&[
        "secret",
        "store",
        "--kind",
        "passphrase",
        "--file",
        e.s("pw"),
    ]);
    let mut add = vec![
        "luks",
        "add-key",
        e.s("v.img"),
        "--key-ref",
        id,
        "--new-key-ref",
        pid.trim(),
    ];
    add.extend(FAST);
    e.ok(&add);
    assert!(cryptsetup_accepts(&e.p("v.img"), &e.p("pw")));
    // A missing secret is a clear error, and nothing is formatted.
    std::fs::write(e.p("w.img"), vec![0u8; 20 << 20]).unwrap();
    let out = e.run(&[
        "luks",
        "format",
        e.s("w.img"),
        "--key-ref",
        "00000000-0000-4000-8000-000000000000",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    assert!(std::fs::read(e.p("w.img")).unwrap().iter().all(|b| *b == 0));
}

#[test]
fn luks1_written_here_converts_with_qemu_img() {
    if !common::tool("qemu-img") {
        return;
    }
    let e = Env::new();
    std::fs::write(e.p("k"), b"qemu secret").unwrap();
    std::fs::write(e.p("v.img"), vec![0u8; 8 << 20]).unwrap();
    let mut args = vec![
        "luks",
        "format",
        e.s("v.img"),
        "--type",
        "luks1",
        "--key-file",
        e.s("k"),
    ];
    args.extend(FAST);
    e.ok(&args);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i ^ (i >> 8)) as u8).collect();
    std::fs::write(e.p("data"), &data).unwrap();
    e.ok(&[
        "luks",
        "write",
        e.s("v.img"),
        "--key-file",
        e.s("k"),
        "--input",
        e.s("data"),
        "--offset",
        "4096",
    ]);
    let st = Command::new("qemu-img")
        .arg("convert")
        .arg("--object")
        .arg(format!("secret,id=s0,file={}", e.s("k")))
        .arg("--image-opts")
        .arg(format!(
            "driver=luks,key-secret=s0,file.filename={}",
            e.s("v.img")
        ))
        .args(["-O", "raw"])
        .arg(e.p("plain"))
        .status()
        .unwrap();
    assert!(st.success());
    let plain = std::fs::read(e.p("plain")).unwrap();
    assert_eq!(&plain[4096..4096 + data.len()], &data[..]);
}
