//! The LUKS2 binary header and JSON area parsers on arbitrary bytes: no panic, and
//! what parses survives parse -> write -> parse unchanged (the binary header with its
//! checksum recomputed; the metadata through its JSON text).
#![no_main]
use libfuzzer_sys::fuzz_target;
use luks::internal::{verify_checksum, BinHeader, Metadata, BIN_LEN};

const HDR_SIZE: u64 = 16384;

fn json_round_trip(area: &[u8]) {
    if let Ok(md) = Metadata::parse_area(area, HDR_SIZE) {
        if let Ok(text) = md.to_area(HDR_SIZE - BIN_LEN as u64) {
            let again = Metadata::parse_area(&text, HDR_SIZE).expect("written metadata parses");
            assert_eq!(again, md, "parse -> write -> parse changed the metadata");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < BIN_LEN {
        json_round_trip(data);
        return;
    }
    if let Ok(h) = BinHeader::parse(&data[..BIN_LEN], 0) {
        let _ = verify_checksum(data, 0);
        if let Some(area) = data.get(BIN_LEN..h.hdr_size as usize) {
            let copy = h.serialize(area).expect("a parsed header serializes");
            verify_checksum(&copy, 0).expect("a written copy has a valid checksum");
            let again = BinHeader::parse(&copy[..BIN_LEN], 0).expect("a written header parses");
            assert_eq!(again, h, "parse -> write -> parse changed the binary header");
        }
    }
    // The JSON area as the parser sees it after the binary header.
    json_round_trip(&data[BIN_LEN..]);
});
