//! The Vault/Castellan record decoder on arbitrary JSON: never panics, and
//! a record it accepts survives parse -> write -> parse unchanged.
#![no_main]
use keymgr_vault::internal::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let id = keymgr_core::SecretId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let Ok(first) = Record::from_json(id.clone(), v) else {
        return;
    };
    let written = first.to_json();
    let again: serde_json::Value = serde_json::from_str(&written).expect("a written record is JSON");
    let second = Record::from_json(id, again).expect("a written record parses again");
    assert!(*second.to_json() == *written, "parse -> write -> parse changed the record");
    assert_eq!(second.project, first.project);
    assert!(second.payload.expose() == first.payload.expose());
});
