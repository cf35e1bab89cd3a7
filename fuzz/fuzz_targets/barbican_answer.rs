//! The Barbican answer decoders (secret, listing, consumers, errors) on
//! arbitrary bytes: never a panic; an error answer is always an error of
//! the kind its status names, with a message free of control characters;
//! a decoded answer holds only what its kind carries.
#![no_main]
use keymgr_core::ErrorKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sel, body) = data.split_first().unwrap_or((&0, &[]));
    let kind = ["secret", "secret-list", "consumer-list", "error"][(*sel as usize) % 4];
    let status = [200u16, 400, 401, 403, 404, 409, 500, 503][(*sel as usize / 4) % 8];
    match keymgr_barbican::internal::decode_answer(kind, status, body) {
        Ok(d) => {
            assert_ne!(kind, "error", "an error answer decoded as a success");
            if kind == "secret" {
                assert_eq!(d.secrets.len(), 1);
            }
            if kind != "consumer-list" {
                assert!(d.consumers.is_empty());
            }
            if kind != "secret-list" {
                assert_eq!(d.next_offset, None);
            }
        }
        Err(e) if kind == "error" => {
            let expect = match status {
                400 => ErrorKind::InvalidInput,
                401 => ErrorKind::Unauthenticated,
                403 => ErrorKind::Forbidden,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                503 => ErrorKind::Unavailable,
                _ => ErrorKind::Backend,
            };
            assert_eq!(e.kind(), expect, "status {status}");
            let text = e.to_string();
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
        Err(_) => {}
    }
});
