//! The KMIP TTLV decoder on arbitrary bytes: never panics, and what it
//! accepts encodes back to the very same bytes (the encoding is canonical).
#![no_main]
use keymgr_kmip::internal::{decode, encode, frame_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(item) = decode(data) else {
        return;
    };
    let again = encode(&item);
    assert!(&again[..] == data, "decode -> encode changed the bytes");
    assert_eq!(frame_len(data), Some(data.len()));
    let _ = format!("{item:?}");
});
