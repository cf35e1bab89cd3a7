//! The LUKS2 binary header and JSON area parsers on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use luks::luks2::{binary, json};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4096 {
        let _ = json::Metadata::parse_area(data, 16384);
        return;
    }
    if let Ok(h) = binary::BinHeader::parse(&data[..4096], 0) {
        let _ = binary::verify_checksum(data, 0);
        let _ = h;
    }
    // The JSON area as the parser sees it after the binary header.
    let area = &data[4096..];
    if let Ok(md) = json::Metadata::parse_area(area, 16384) {
        let _ = md.validate(16384);
    }
});
