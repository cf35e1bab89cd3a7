//! PyKMIP, started by `scripts/servers/pykmip.sh`: a KMIP server on
//! loopback with TLS client-certificate authentication and a throwaway CA.

use std::path::PathBuf;

use super::{MissingVar, Vars};

const VARS: Vars = Vars::of("PyKMIP", "scripts/servers/pykmip.sh");

/// The PyKMIP server and the client credentials its CA signed, named as
/// PyKMIP's own client options are.
#[derive(Clone, Debug)]
pub struct KmipEnv {
    /// Its address (`KEYMGR_TEST_KMIP_HOST`).
    pub host: String,
    /// Its port (`KEYMGR_TEST_KMIP_PORT`).
    pub port: u16,
    /// The client certificate, PEM (`KEYMGR_TEST_KMIP_CERTFILE`).
    pub certfile: PathBuf,
    /// The client's private key, PEM (`KEYMGR_TEST_KMIP_KEYFILE`); a path,
    /// so `Debug` shows no secret.
    pub keyfile: PathBuf,
    /// The CA certificate that signed the server's (`KEYMGR_TEST_KMIP_CA_CERTS`).
    pub ca_certs: PathBuf,
    /// PyKMIP's client configuration file with a `[client]` section for
    /// `ProxyKmipClient` (`KEYMGR_TEST_KMIP_CLIENT_CONF`).
    pub client_conf: PathBuf,
}

impl KmipEnv {
    /// The server's variables, or the first one missing (a port that is not
    /// a number counts as missing).
    pub fn read() -> Result<KmipEnv, MissingVar> {
        let v = |name| VARS.required(name);
        let port_var = "KEYMGR_TEST_KMIP_PORT";
        let port = v(port_var)?.parse().map_err(|_| MissingVar {
            var: format!("{port_var} (a port number)"),
            server: "PyKMIP",
            script: "scripts/servers/pykmip.sh",
        })?;
        Ok(KmipEnv {
            host: v("KEYMGR_TEST_KMIP_HOST")?,
            port,
            certfile: v("KEYMGR_TEST_KMIP_CERTFILE")?.into(),
            keyfile: v("KEYMGR_TEST_KMIP_KEYFILE")?.into(),
            ca_certs: v("KEYMGR_TEST_KMIP_CA_CERTS")?.into(),
            client_conf: v("KEYMGR_TEST_KMIP_CLIENT_CONF")?.into(),
        })
    }

    /// The server, or `None` after printing why the test skips (a panic
    /// under `KEYMGR_REQUIRE_TOOLS=1`).
    pub fn load() -> Option<KmipEnv> {
        VARS.load(Self::read())
    }
}
