//! The whole open path: a file of arbitrary bytes opened as a LUKS volume,
//! dumped, and (when its keyslots are cheap to try) unlocked with a fixed
//! passphrase and read. KDF limits are the library's; this target only
//! skips costs that are legal but too slow to fuzz.
#![no_main]
use libfuzzer_sys::fuzz_target;
use luks::Kdf;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("keymgr-fuzz-open-{}.img", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(vol) = luks::Volume::open_read_only(&path) {
        let dump = vol.dump();
        let _ = dump.text();
        let cheap = dump.keyslots.iter().all(|k| match k.kdf {
            Kdf::Pbkdf2 { iterations, .. } => iterations <= 5000,
            Kdf::Argon2 { time, memory_kib, .. } => time <= 8 && memory_kib <= 1024,
        });
        if cheap {
            if let Ok(u) = vol.unlock(b"fuzz", None) {
                let mut buf = [0u8; 4096];
                let _ = u.read_at(&mut buf, 0);
            }
        }
    }
    let _ = std::fs::remove_file(&path);
});
