//! Secret material never shows in Debug, Display or errors.

use keymgr_core::passphrase::{legacy_passphrase, passphrase_for};
use keymgr_core::{
    Context, Error, NewSecret, Payload, Secret, SecretId, SecretKind, SecretMetadata,
};

const KEY: [u8; 16] = [
    0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0xc0, 0xde, 0xfe, 0xed, 0xfa, 0xce, 0xb0, 0x0b, 0x1e, 0x55,
];

/// Every textual form of the key bytes that must not leak.
fn leaks(text: &str) -> Vec<String> {
    let hex = hex::encode(KEY);
    let dec = format!("{:?}", KEY.to_vec());
    let hex_list = format!("{:x?}", KEY.to_vec());
    let mut found = Vec::new();
    for needle in [
        hex.as_str(),
        &hex[..12],
        &dec[1..20],
        &hex_list[1..20],
        "deadbeef",
        "token-s3cr3t",
    ] {
        if text.to_lowercase().contains(&needle.to_lowercase()) {
            found.push(needle.to_string());
        }
    }
    found
}

#[test]
fn debug_and_errors_never_show_key_bytes_or_tokens() {
    let payload = Payload::from(KEY.to_vec());
    let new = NewSecret::new(SecretKind::Symmetric, KEY.to_vec()).named("n");
    let secret = Secret {
        metadata: SecretMetadata {
            id: SecretId::new_random(),
            kind: SecretKind::Symmetric,
            name: None,
            algorithm: None,
            bit_length: None,
            mode: None,
            created: None,
            expiration: None,
            consumers: vec![],
        },
        payload: payload.clone(),
    };
    let ctx = Context::new("p", "u").with_user_token("token-s3cr3t");
    let pass = passphrase_for(SecretKind::Symmetric, &payload).unwrap();
    let legacy = legacy_passphrase(&payload);
    let err = passphrase_for(
        SecretKind::Passphrase,
        &Payload::from(vec![0xde, 0xad, 0xff]),
    )
    .unwrap_err();
    let texts = [
        format!("{payload:?}"),
        format!("{payload:#?}"),
        format!("{new:?}"),
        format!("{new:#?}"),
        format!("{secret:?}"),
        format!("{ctx:?}"),
        format!("{pass:?}"),
        format!("{legacy:?}"),
        format!("{err}"),
        format!("{err:?}"),
    ];
    for t in &texts {
        assert!(
            leaks(t).is_empty(),
            "secret material in {t:?}: {:?}",
            leaks(t)
        );
    }
    // The check itself can fail: the raw forms are caught.
    assert!(!leaks(&format!("{:?}", KEY.to_vec())).is_empty());
    assert!(!leaks(&hex::encode(KEY)).is_empty());
    // Errors name what was wrong.
    assert!(matches!(err, Error::InvalidInput { .. }));
    assert!(err.to_string().contains("passphrase"));
}
