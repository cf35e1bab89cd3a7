//! Test environment: the PyKMIP server started by scripts/servers/pykmip.sh,
//! read through test-support's [`KmipEnv`].
#![allow(dead_code)]

use keymgr_kmip::KmipConfig;
use keymgr_test_support::env::KmipEnv;

/// The client configuration for the PyKMIP server, or `None` (skip).
pub(crate) fn config() -> Option<KmipConfig> {
    Some(config_for(&KmipEnv::load()?))
}

/// The client configuration for `env`.
pub(crate) fn config_for(env: &KmipEnv) -> KmipConfig {
    let mut cfg = KmipConfig::new(
        env.host.clone(),
        env.certfile.clone(),
        env.keyfile.clone(),
        env.ca_certs.clone(),
    );
    cfg.port = env.port;
    cfg.timeout = 30.0;
    cfg
}
