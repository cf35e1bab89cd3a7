//! Test environment: the PyKMIP server started by scripts/servers/pykmip.sh.
#![allow(dead_code)]

use keymgr_kmip::KmipConfig;

/// An environment variable, or `None` after printing why the test skips
/// (a failure instead when KEYMGR_REQUIRE_TOOLS=1).
pub(crate) fn env(name: &str) -> Option<String> {
    keymgr_test_support::testenv::server_var(name, "PyKMIP")
}

/// The client configuration for the PyKMIP server, or `None` (skip).
pub(crate) fn config() -> Option<KmipConfig> {
    let mut cfg = KmipConfig::new(
        env("KEYMGR_TEST_KMIP_HOST")?,
        env("KEYMGR_TEST_KMIP_CERTFILE")?,
        env("KEYMGR_TEST_KMIP_KEYFILE")?,
        env("KEYMGR_TEST_KMIP_CA_CERTS")?,
    );
    cfg.port = env("KEYMGR_TEST_KMIP_PORT")?
        .parse()
        .expect("KEYMGR_TEST_KMIP_PORT is a port number");
    cfg.timeout = 30.0;
    Some(cfg)
}
pub(crate) mod fault;
