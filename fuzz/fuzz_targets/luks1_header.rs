//! The LUKS1 header parser and validator on arbitrary bytes: no panic, and a valid
//! header survives parse -> write -> parse unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use luks::internal::Luks1Header;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Luks1Header::parse(data) {
        if h.validate().is_ok() {
            let _ = h.keyslots_end();
            let bytes = h.to_bytes().expect("a valid header serializes");
            let again = Luks1Header::parse(&bytes).expect("a written header parses");
            assert_eq!(again, h, "parse -> write -> parse changed the header");
        }
    }
});
