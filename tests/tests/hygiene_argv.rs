//! Command lines never carry secrets: the image service converts a
//! qcow2+LUKS image with `qemu-img`, reached through a wrapper first on PATH
//! that records its argv and the mode of every `file=` it names, then runs
//! the real tool. The passphrase (raw, hex, base64) is in no argv, the
//! secret file is 0600 while qemu-img runs, and it is gone afterwards.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn qemu_img_gets_the_passphrase_through_a_0600_file_only() {
    if Command::new("qemu-img").arg("--version").output().is_err() {
        keymgr_test_support::testenv::skip_or_fail(
            "qemu-img argv hygiene",
            "qemu-img is not installed",
        );
        return;
    }
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v qemu-img"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("argv.log");
    let wrapper = bin.join("qemu-img");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{log}'; \
             case \"$a\" in *file=*) f=${{a##*file=}}; f=${{f%%,*}}; \
             [ -f \"$f\" ] && echo \"MODE $(stat -c %a \"$f\") $f\" >> '{log}';; esac; done\n\
             exec '{real}' \"$@\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // A qcow2+LUKS source made by the real qemu-img (its own secret file).
    let pass = b"argv-check-passphrase-5f3a";
    let src = dir.path().join("src.qcow2");
    let sf = dir.path().join("src.pass");
    std::fs::write(&sf, pass).unwrap();
    let st = Command::new(&real)
        .args(["create", "-q", "-f", "qcow2", "--object"])
        .arg(format!("secret,id=s0,file={}", sf.display()))
        .args([
            "-o",
            "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
        ])
        .arg(&src)
        .arg("1M")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(&sf).unwrap();

    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let cfg = examples::config::ServiceConfig::from_toml(
        &state,
        // Tiny KDF costs (qemu-img iter-time 1 ms), as the test suite uses.
        &format!(
            "{}[examples]\npbkdf2_force_iterations = 1000\n",
            examples::config::default_mock_toml(&state)
        ),
    )
    .unwrap();
    let dst = dir.path().join("dst.luks");
    // The child inherits PATH at spawn time: set it for this test binary.
    std::env::set_var("PATH", &path);
    let res = examples::image::qcow2_luks_to_raw_luks(&cfg, &src, &dst, pass);
    res.unwrap();

    let text = std::fs::read_to_string(&log).expect("the wrapper was not run");
    assert!(text.contains("convert"), "argv log: {text}");
    tests::assert_no_secret(&text, pass, "qemu-img argv");
    let modes: Vec<&str> = text.lines().filter(|l| l.starts_with("MODE ")).collect();
    assert!(
        !modes.is_empty(),
        "no secret file on the command line: {text}"
    );
    for m in &modes {
        assert!(m.starts_with("MODE 600 "), "secret file not 0600: {m}");
        let f = m.split_whitespace().nth(2).unwrap();
        assert!(
            !std::path::Path::new(f).exists(),
            "secret file {f} left behind"
        );
    }
    // The converted volume opens with the passphrase.
    luks::Volume::open(&dst)
        .unwrap()
        .test_passphrase(pass, None)
        .unwrap();
}
