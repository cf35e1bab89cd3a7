//! The embedded backend's sealed file on arbitrary bytes, opened with a fixed
//! key file (pure key: no KDF), then listed.
#![no_main]
use keymgr_core::{Context, KeyManager, ListQuery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("keymgr-fuzz-store-{}.sealed", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let master = keymgr_mock::MasterKey::from_bytes([7u8; 32]);
    if let Ok(km) = keymgr_mock::MockKeyManager::open_sealed(&path, master) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = rt.block_on(km.list_all(&Context::new("p", "u"), &ListQuery::all()));
    }
    let _ = std::fs::remove_file(&path);
});
