//! One LUKS header operation, run as its own process so a test can record
//! (with strace) every write it makes and replay them to simulate crashes.
//! Passphrases come from files, never from the command line.
//!
//! Usage: `luks-op OP IMAGE OLD_PASS_FILE NEW_PASS_FILE [BACKUP_FILE]`, OP one of
//! `format-luks1`, `format-luks2` (formats with the NEW passphrase),
//! `add-key`, `change-key`, `remove-key` (removes the NEW passphrase's slot),
//! `header-restore` (restores BACKUP_FILE onto IMAGE). KDF costs are tiny
//! (PBKDF2 1000 iterations).

use luks::{FormatOptions, KeyslotOptions, LuksType, PbkdfOptions, PbkdfType, Unlock, Volume};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: luks-op OP IMAGE OLD_PASS_FILE NEW_PASS_FILE [BACKUP_FILE]");
        std::process::exit(2);
    }
    let (op, img) = (&args[1], &args[2]);
    let old = std::fs::read(&args[3]).expect("old passphrase file");
    let new = std::fs::read(&args[4]).expect("new passphrase file");
    let ks = KeyslotOptions {
        pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
        ..KeyslotOptions::default()
    };
    let res: luks::Result<()> = match op.as_str() {
        "format-luks1" | "format-luks2" => {
            let opts = FormatOptions {
                luks_type: if op == "format-luks1" {
                    LuksType::Luks1
                } else {
                    LuksType::Luks2
                },
                pbkdf: PbkdfOptions::fast_for_tests(PbkdfType::Pbkdf2),
                luks2_keyslots_size: (op == "format-luks2").then_some(1 << 20),
                align_payload_sectors: Some(8),
                ..FormatOptions::default()
            };
            luks::format(img, &opts, &new).map(|_| ())
        }
        "add-key" => Volume::open(img).and_then(|mut v| {
            v.add_key(
                Unlock::Passphrase {
                    passphrase: &old,
                    slot: None,
                },
                &new,
                &ks,
            )
            .map(|_| ())
        }),
        "change-key" => {
            Volume::open(img).and_then(|mut v| v.change_key(&old, &new, None, &ks).map(|_| ()))
        }
        "remove-key" => Volume::open(img).and_then(|mut v| v.remove_key(&new).map(|_| ())),
        "header-restore" => {
            let backup = args.get(5).expect("backup file");
            Volume::restore_header(img, backup).map(|_| ())
        }
        other => {
            eprintln!("unknown operation {other}");
            std::process::exit(2);
        }
    };
    if let Err(e) = res {
        eprintln!("luks-op {op}: {e}");
        std::process::exit(1);
    }
}
