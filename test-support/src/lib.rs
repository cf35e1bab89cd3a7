//! What the workspace's tests share, in a crate that depends on no keymgr
//! crate so that every crate may dev-depend on it (never published).
//!
//! - [`testenv`]: a server's variable or a tool on `PATH`, skipping with a
//!   printed reason or failing when `KEYMGR_REQUIRE_TOOLS=1`.

pub mod testenv;
