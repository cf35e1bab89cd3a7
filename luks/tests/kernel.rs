//! Kernel dm-crypt activation through cryptsetup (feature `kernel`). These need
//! device-mapper and root; without them every test prints why and returns.
#![cfg(feature = "kernel")]

mod common;

use common::*;
use luks::kernel::{self, PlainOptions};
use luks::{format, FormatOptions, PbkdfOptions, PbkdfType};

/// Device-mapper and a loop device are needed; None = skip (reason printed).
fn usable() -> Option<()> {
    if let Err(why) = kernel::device_mapper_available() {
        eprintln!("SKIP: kernel activation: {why}");
        return None;
    }
    tool("cryptsetup")?;
    Some(())
}

#[test]
fn luks_open_close() {
    if usable().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "k.img", 20 << 20);
    let opts = FormatOptions {
        pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
        ..Default::default()
    };
    format(&img, &opts, b"kernel pass").unwrap();
    let name = format!("keymgr-test-{}", std::process::id());
    assert!(kernel::open(&img, &name, b"wrong").is_err());
    kernel::open(&img, &name, b"kernel pass").unwrap();
    assert!(kernel::is_active(&name));
    kernel::close(&name).unwrap();
    assert!(!kernel::is_active(&name));
}

#[test]
fn plain_create_close() {
    if usable().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "p.img", 4 << 20);
    let name = format!("keymgr-plain-{}", std::process::id());
    kernel::create_plain(&name, &img, &[7u8; 64], &PlainOptions::default()).unwrap();
    assert!(kernel::is_active(&name));
    kernel::close(&name).unwrap();
}

#[test]
fn detection_matches_the_host() {
    let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
    let listed = misc.contains(" device-mapper");
    if !listed {
        assert!(kernel::device_mapper_available().is_err());
    }
    if kernel::device_mapper_available().is_err() {
        // without device-mapper cryptsetup open must fail, never fake success
        if let Some(_cs) = tool("cryptsetup") {
            let dir = tempfile::tempdir().unwrap();
            let img = sparse_file(dir.path(), "n.img", 20 << 20);
            let opts = FormatOptions {
                pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
                ..Default::default()
            };
            format(&img, &opts, b"x").unwrap();
            let e = kernel::open(&img, "keymgr-nodm", b"x").unwrap_err();
            assert!(matches!(e, luks::Error::Command { .. }), "{e}");
            assert!(!kernel::is_active("keymgr-nodm"));
            eprintln!("SKIP: no device-mapper here; cryptsetup open failed as expected: {e}");
        }
    }
}
