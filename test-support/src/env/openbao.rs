//! OpenBao (Vault's API), started by `scripts/servers/openbao.sh`: a dev
//! server (token, AppRole, JWT, KV v1 and v2, Transit), a TLS listener with
//! its own CA, and a three-node HA cluster.

use std::path::PathBuf;

use super::{MissingVar, Vars};

const VARS: Vars = Vars::of("OpenBao", "scripts/servers/openbao.sh");

/// The dev server: one node, root token, every mount and auth method the tests use.
/// No `Debug`: it holds credentials.
#[derive(Clone)]
pub struct VaultEnv {
    /// Its base URL, `http://127.0.0.1:PORT` (`KEYMGR_TEST_VAULT_ADDR`).
    pub addr: String,
    /// Its root token (`KEYMGR_TEST_VAULT_TOKEN`).
    pub root_token: String,
    /// A KV version 1 mount (`KEYMGR_TEST_VAULT_KV1_MOUNT`); `secret` is KV v2.
    pub kv1_mount: String,
    /// The Transit mount (`KEYMGR_TEST_VAULT_TRANSIT_MOUNT`).
    pub transit_mount: String,
    /// AppRole credentials of the `keymgr` role.
    pub approle: VaultAppRole,
    /// JWT login.
    pub jwt: VaultJwt,
    /// The same server's https listener.
    pub tls: VaultTls,
}

/// AppRole credentials.
#[derive(Clone)]
pub struct VaultAppRole {
    /// `KEYMGR_TEST_VAULT_ROLE_ID`.
    pub role_id: String,
    /// `KEYMGR_TEST_VAULT_SECRET_ID`.
    pub secret_id: String,
}

/// JWT login: the role and the file holding a signed token.
#[derive(Clone)]
pub struct VaultJwt {
    /// The JWT auth role (`KEYMGR_TEST_VAULT_JWT_ROLE`).
    pub role: String,
    /// The file with the JWT (`KEYMGR_TEST_VAULT_JWT_FILE`).
    pub token_file: PathBuf,
}

/// The https listener and the CA that signed its certificate.
#[derive(Clone)]
pub struct VaultTls {
    /// Its base URL, `https://…` (`KEYMGR_TEST_VAULT_TLS_ADDR`).
    pub addr: String,
    /// The CA certificate, PEM (`KEYMGR_TEST_VAULT_TLS_CA`).
    pub ca_file: PathBuf,
}

impl VaultEnv {
    /// The dev server's variables, or the first one missing.
    pub fn read() -> Result<VaultEnv, MissingVar> {
        let v = |name| VARS.required(name);
        Ok(VaultEnv {
            addr: v("KEYMGR_TEST_VAULT_ADDR")?,
            root_token: v("KEYMGR_TEST_VAULT_TOKEN")?,
            kv1_mount: v("KEYMGR_TEST_VAULT_KV1_MOUNT")?,
            transit_mount: v("KEYMGR_TEST_VAULT_TRANSIT_MOUNT")?,
            approle: VaultAppRole {
                role_id: v("KEYMGR_TEST_VAULT_ROLE_ID")?,
                secret_id: v("KEYMGR_TEST_VAULT_SECRET_ID")?,
            },
            jwt: VaultJwt {
                role: v("KEYMGR_TEST_VAULT_JWT_ROLE")?,
                token_file: v("KEYMGR_TEST_VAULT_JWT_FILE")?.into(),
            },
            tls: VaultTls {
                addr: v("KEYMGR_TEST_VAULT_TLS_ADDR")?,
                ca_file: v("KEYMGR_TEST_VAULT_TLS_CA")?.into(),
            },
        })
    }

    /// The dev server, or `None` after printing why the test skips (a
    /// panic under `KEYMGR_REQUIRE_TOOLS=1`).
    pub fn load() -> Option<VaultEnv> {
        VARS.load(Self::read())
    }
}

/// The three-node HA cluster (integrated storage) and the commands that
/// stop, start and restart its nodes.
#[derive(Clone)]
pub struct VaultClusterEnv {
    /// The nodes' base URLs, in node order (`KEYMGR_TEST_VAULT_CLUSTER`, comma-separated).
    pub nodes: Vec<String>,
    /// The cluster's root token (`KEYMGR_TEST_VAULT_CLUSTER_TOKEN`).
    pub root_token: String,
    /// The folder the script started it in (`KEYMGR_TEST_VAULT_CLUSTER_DIR`).
    pub dir: PathBuf,
    /// The file holding the unseal key (`KEYMGR_TEST_VAULT_UNSEAL_KEY_FILE`).
    pub unseal_key_file: PathBuf,
    /// The control command, run as `{node_ctl} VERB {dir} N`
    /// (`KEYMGR_TEST_VAULT_NODE_CTL`, a shell command line).
    pub node_ctl: String,
    /// The command restarting one node, run as `{restart_node} N`
    /// (`KEYMGR_TEST_VAULT_RESTART_NODE`, a shell command line).
    pub restart_node: String,
    /// The CA certificate of a cluster that listens with TLS (the
    /// production-shaped set), or `None` for plain http
    /// (`KEYMGR_TEST_VAULT_CLUSTER_CA`, optional).
    pub ca_file: Option<PathBuf>,
}

impl VaultClusterEnv {
    /// The cluster's variables, or the first one missing.
    pub fn read() -> Result<VaultClusterEnv, MissingVar> {
        let v = |name| VARS.required(name);
        Ok(VaultClusterEnv {
            nodes: v("KEYMGR_TEST_VAULT_CLUSTER")?
                .split(',')
                .map(str::to_string)
                .collect(),
            root_token: v("KEYMGR_TEST_VAULT_CLUSTER_TOKEN")?,
            dir: v("KEYMGR_TEST_VAULT_CLUSTER_DIR")?.into(),
            unseal_key_file: v("KEYMGR_TEST_VAULT_UNSEAL_KEY_FILE")?.into(),
            node_ctl: v("KEYMGR_TEST_VAULT_NODE_CTL")?,
            restart_node: v("KEYMGR_TEST_VAULT_RESTART_NODE")?,
            ca_file: VARS
                .optional("KEYMGR_TEST_VAULT_CLUSTER_CA")
                .map(PathBuf::from),
        })
    }

    /// The cluster, or `None` after printing why the test skips (a panic
    /// under `KEYMGR_REQUIRE_TOOLS=1`).
    pub fn load() -> Option<VaultClusterEnv> {
        VARS.load(Self::read())
    }
}
