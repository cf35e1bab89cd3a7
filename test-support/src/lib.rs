//! What the workspace's tests share, in a crate that depends on no keymgr
//! crate so that every crate may dev-depend on it (never published).
//!
//! - [`testenv`]: a server's variable or a tool on `PATH`, skipping with a
//!   printed reason or failing when `KEYMGR_REQUIRE_TOOLS=1`.
//! - [`env`]: the test servers' typed environments, built from the
//!   `KEYMGR_TEST_*` variables that `scripts/servers/*.sh` export, one file
//!   per kind of server: [`env::VaultEnv`] and [`env::VaultClusterEnv`]
//!   (OpenBao), [`env::OpenStackEnv`] (Keystone and Barbican), [`env::KmipEnv`]
//!   (PyKMIP). Tests read
//!   those variables only through them.
//! - [`proxy`]: the one fault-injecting HTTP proxy put between a client and
//!   a real server ([`proxy::FaultProxy`], every fault in [`proxy::Fault`]).
//! - [`python`]: the peers' own Python code (Castellan, os-brick, PyKMIP)
//!   run as a probe from a test.
//! - [`tls_proxy`]: its TCP counterpart for protocols that are not HTTP
//!   (KMIP): TLS runs end to end through it, and it loses or tears the
//!   server's answers ([`tls_proxy::TlsFaultProxy`]).

pub mod env;
pub mod proxy;
pub mod python;
pub mod testenv;
pub mod tls_proxy;
