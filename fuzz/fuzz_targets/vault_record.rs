//! The Vault/Castellan record decoder on arbitrary JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let id = keymgr_core::SecretId::from_uuid(Default::default());
        if let Ok(r) = keymgr_vault::record::Record::from_json(id, v) {
            let _ = r.to_json();
        }
    }
});
