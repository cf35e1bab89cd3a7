//! The LUKS1 header parser and validator on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = luks::luks1::Header::parse(data) {
        if h.validate().is_ok() {
            let _ = h.keyslots_end();
            let _ = h.to_bytes();
        }
    }
});
