//! Keystone and Barbican, started by `scripts/servers/openstack.sh`, with
//! the users and projects its `provision.py` creates.

use super::{MissingVar, Vars};

const VARS: Vars = Vars::of("Keystone/Barbican", "scripts/servers/openstack.sh");

/// Keystone (v3) and Barbican with two member users in two projects and a
/// service user.
#[derive(Clone)]
pub struct OpenStackEnv {
    /// Keystone's v3 URL, ending in `/v3` (`KEYMGR_TEST_KEYSTONE_URL`).
    pub keystone_url: String,
    /// Barbican's base URL (`KEYMGR_TEST_BARBICAN_URL`), also in Keystone's catalog.
    pub barbican_url: String,
    /// The domain of every user and project (`KEYMGR_TEST_OS_DOMAIN`, default `Default`).
    pub domain: String,
    /// The catalog's region (`KEYMGR_TEST_OS_REGION`), if exported.
    pub region: Option<String>,
    /// User A, member of project A (`KEYMGR_TEST_OS_*_A`).
    pub user_a: OsUser,
    /// User B, member of project B (`KEYMGR_TEST_OS_*_B`).
    pub user_b: OsUser,
    /// The service user (role `service` in project `service`).
    pub service: OsServiceUser,
    /// The shell command that restarts Barbican (`KEYMGR_TEST_BARBICAN_RESTART`), if exported.
    pub barbican_restart: Option<String>,
}

/// A provisioned user and the project it is a member of.
#[derive(Clone)]
pub struct OsUser {
    /// `KEYMGR_TEST_OS_USER_{A,B}`.
    pub name: String,
    /// `KEYMGR_TEST_OS_USER_{A,B}_ID`.
    pub id: String,
    /// `KEYMGR_TEST_OS_PASSWORD_{A,B}`.
    pub password: String,
    /// The project's name, `KEYMGR_TEST_OS_PROJECT_{A,B}`.
    pub project: String,
    /// The project's id, `KEYMGR_TEST_OS_PROJECT_{A,B}_ID`.
    pub project_id: String,
}

/// The service user (its project's id is not exported).
#[derive(Clone)]
pub struct OsServiceUser {
    /// `KEYMGR_TEST_OS_SERVICE_USER`.
    pub name: String,
    /// `KEYMGR_TEST_OS_SERVICE_USER_ID`.
    pub id: String,
    /// `KEYMGR_TEST_OS_SERVICE_PASSWORD`.
    pub password: String,
    /// The project's name, `KEYMGR_TEST_OS_SERVICE_PROJECT`.
    pub project: String,
}

impl OsUser {
    fn read(k: &str) -> Result<OsUser, MissingVar> {
        let v = |name: String| VARS.required(&name);
        Ok(OsUser {
            name: v(format!("KEYMGR_TEST_OS_USER_{k}"))?,
            id: v(format!("KEYMGR_TEST_OS_USER_{k}_ID"))?,
            password: v(format!("KEYMGR_TEST_OS_PASSWORD_{k}"))?,
            project: v(format!("KEYMGR_TEST_OS_PROJECT_{k}"))?,
            project_id: v(format!("KEYMGR_TEST_OS_PROJECT_{k}_ID"))?,
        })
    }
}

impl OpenStackEnv {
    /// The servers' variables, or the first one missing.
    pub fn read() -> Result<OpenStackEnv, MissingVar> {
        let v = |name| VARS.required(name);
        Ok(OpenStackEnv {
            keystone_url: v("KEYMGR_TEST_KEYSTONE_URL")?,
            barbican_url: v("KEYMGR_TEST_BARBICAN_URL")?,
            domain: VARS
                .optional("KEYMGR_TEST_OS_DOMAIN")
                .unwrap_or_else(|| "Default".into()),
            region: VARS.optional("KEYMGR_TEST_OS_REGION"),
            user_a: OsUser::read("A")?,
            user_b: OsUser::read("B")?,
            service: OsServiceUser {
                name: v("KEYMGR_TEST_OS_SERVICE_USER")?,
                id: v("KEYMGR_TEST_OS_SERVICE_USER_ID")?,
                password: v("KEYMGR_TEST_OS_SERVICE_PASSWORD")?,
                project: v("KEYMGR_TEST_OS_SERVICE_PROJECT")?,
            },
            barbican_restart: VARS.optional("KEYMGR_TEST_BARBICAN_RESTART"),
        })
    }

    /// The servers, or `None` after printing why the test skips (a panic
    /// under `KEYMGR_REQUIRE_TOOLS=1`).
    pub fn load() -> Option<OpenStackEnv> {
        VARS.load(Self::read())
    }
}
