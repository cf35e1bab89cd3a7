//! Interoperability with qemu's LUKS1 driver: images created and written by
//! `qemu-img`/`qemu-io` read back identically here, and LUKS1 volumes formatted
//! and written here convert to the same plaintext with `qemu-img convert`.
//! qemu gets its passphrase from a secret file (`--object secret,file=`), never
//! on the command line.

mod common;

use common::*;
use luks::{
    format, FormatOptions, KeyslotOptions, LuksType, PbkdfOptions, PbkdfType, Unlock, Volume,
};
use std::path::Path;

const PASS: &[u8] = b"qemu passphrase";

fn secret_arg(pw: &Path) -> String {
    format!("secret,id=s0,file={}", pw.display())
}

fn image_opts(img: &Path) -> String {
    format!("driver=luks,key-secret=s0,file.filename={}", img.display())
}

/// (offset, length, fill byte) writes done with qemu-io, unaligned ones included.
const WRITES: &[(u64, u64, u8)] = &[
    (0, 512, 0x11),
    (1000, 70000, 0xab),
    (1 << 20, 4096, 0x5c),
    (3 * 4096 + 7, 9000, 0xe1),
];

#[test]
fn qemu_written_images_read_back_here() {
    let Some(qimg) = tool("qemu-img") else { return };
    let Some(qio) = tool("qemu-io") else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path(), "pw", PASS);
    let cases = [
        ("xts256", "cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha256", 64u32, 4040u64, "aes-xts-plain64"),
        ("xts128-sha1", "cipher-alg=aes-128,cipher-mode=xts,ivgen-alg=plain64,hash-alg=sha1", 32, 2056, "aes-xts-plain64"),
        ("cbc-essiv", "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=sha512", 32, 2056, "aes-cbc-essiv:sha256"),
    ];
    for (name, opts, key_bytes, payload, cipher) in cases {
        let img = dir.path().join(format!("{name}.luks"));
        let o = format!("key-secret=s0,{opts},iter-time=10");
        run_ok(
            &qimg,
            &[
                "create",
                "-q",
                "-f",
                "luks",
                "--object",
                &secret_arg(&pw),
                "-o",
                &o,
                &img.display().to_string(),
                "4M",
            ],
        );
        let mut args = vec![
            "--object".to_string(),
            secret_arg(&pw),
            "--image-opts".into(),
            image_opts(&img),
        ];
        for (off, len, fill) in WRITES {
            args.push("-c".into());
            args.push(format!("write -P 0x{fill:02x} {off} {len}"));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&qio, &a);

        let v = Volume::open(&img).unwrap();
        assert_eq!(v.version(), 1);
        let h = v.luks1_header().unwrap();
        assert_eq!(h.key_bytes, key_bytes, "{name}");
        assert_eq!(
            h.payload_offset as u64, payload,
            "{name}: qemu lays the payload right after the keyslots"
        );
        let d = v.dump();
        assert_eq!(d.cipher, cipher);
        let data = v.unlock(PASS, None).unwrap();
        assert_eq!(data.size(), 4 << 20, "{name}");
        // expected plaintext of the written ranges (later writes win)
        let mut model = vec![None::<u8>; 4 << 20];
        for (off, len, fill) in WRITES {
            for b in &mut model[*off as usize..(*off + *len) as usize] {
                *b = Some(*fill);
            }
        }
        let mut all = vec![0u8; 4 << 20];
        data.read_at(&mut all, 0).unwrap();
        let mut checked = 0;
        for (i, m) in model.iter().enumerate() {
            if let Some(b) = m {
                assert_eq!(all[i], *b, "{name}: byte {i}");
                checked += 1;
            }
        }
        assert_eq!(checked, 512 + 70000 + 4096);
        // a wrong passphrase fails
        assert!(matches!(
            v.test_passphrase(b"qemu passphrasE", None),
            Err(luks::Error::NoMatchingKey)
        ));
    }
}

#[test]
fn formatted_here_converts_with_qemu_img() {
    let Some(qimg) = tool("qemu-img") else { return };
    let dir = tempfile::tempdir().unwrap();
    let data_size: u64 = 3 << 20;
    for (name, cipher, bits, hash, align) in [
        (
            "xts512-qemu-layout",
            "aes-xts-plain64",
            512u32,
            HashAlg::Sha256,
            Some(8u64),
        ),
        (
            "xts256-aligned",
            "aes-xts-plain64",
            256,
            HashAlg::Sha1,
            None,
        ),
        (
            "cbc-essiv",
            "aes-cbc-essiv:sha256",
            256,
            HashAlg::Sha512,
            None,
        ),
    ] {
        let img = dir.path().join(format!("{name}.img"));
        // payload offset is at most 4096 sectors (2 MiB)
        let f = std::fs::File::create(&img).unwrap();
        let opts = FormatOptions {
            luks_type: LuksType::Luks1,
            cipher: Some(cipher.into()),
            key_size_bits: Some(bits),
            hash: Some(hash),
            pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
            align_payload_sectors: align,
            ..Default::default()
        };
        f.set_len(4 << 20).unwrap();
        let info = format(&img, &opts, PASS).unwrap();
        if align == Some(8) {
            assert_eq!(info.data_offset, 4040 * 512, "qemu's layout");
        }
        f.set_len(info.data_offset + data_size).unwrap();
        let v = Volume::open(&img).unwrap();
        let data = v.unlock(PASS, None).unwrap();
        assert_eq!(data.size(), data_size);
        let plain = pattern(data_size as usize, bits as u64 + name.len() as u64);
        // written in odd-sized pieces through the stream adapter
        {
            use std::io::Write;
            let mut s = data.stream();
            for chunk in plain.chunks(12345) {
                s.write_all(chunk).unwrap();
            }
            s.flush().unwrap();
        }
        // a second keyslot added here must open in qemu too
        let mut v2 = Volume::open(&img).unwrap();
        let second = b"another qemu pass";
        let slot = v2
            .add_key(
                Unlock::Passphrase {
                    passphrase: PASS,
                    slot: None,
                },
                second,
                &KeyslotOptions {
                    key_slot: Some(5),
                    pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
                },
            )
            .unwrap();
        assert_eq!(slot, 5);
        for (i, pass) in [PASS, second.as_slice()].iter().enumerate() {
            let pwf = secret_file(dir.path(), &format!("pw{i}"), pass);
            let out = dir.path().join(format!("{name}-{i}.raw"));
            run_ok(
                &qimg,
                &[
                    "convert",
                    "--object",
                    &format!("secret,id=s0,file={}", pwf.display()),
                    "--image-opts",
                    &image_opts(&img),
                    "-O",
                    "raw",
                    &out.display().to_string(),
                ],
            );
            let got = std::fs::read(&out).unwrap();
            assert_eq!(got.len(), plain.len(), "{name}");
            assert!(got == plain, "{name}: qemu-img convert plaintext differs");
        }
        // a wrong passphrase is refused by qemu
        let bad = secret_file(dir.path(), "bad", b"nope");
        let o = run(
            &qimg,
            &[
                "convert",
                "--object",
                &format!("secret,id=s0,file={}", bad.display()),
                "--image-opts",
                &image_opts(&img),
                "-O",
                "raw",
                &dir.path().join("bad.raw").display().to_string(),
            ],
        );
        assert!(!o.status.success());
    }
}

use luks::HashAlg;
