//! The Barbican answer decoders (secret, listing, consumers, errors) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sel, body) = data.split_first().unwrap_or((&0, &[]));
    let kind = ["secret", "secret-list", "consumer-list", "error"][(*sel as usize) % 4];
    let status = [200u16, 400, 401, 403, 404, 409, 500, 503][(*sel as usize / 4) % 8];
    let _ = keymgr_barbican::internal::decode_answer(kind, status, body);
});
