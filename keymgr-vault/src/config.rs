//! `[vault]` options, named as Castellan names them.

use std::path::PathBuf;
use std::time::Duration;

use keymgr_core::{Error, Result};
use secrecy::SecretString;

/// How the backend logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A static token (`root_token_id` or `root_token_file`).
    Token,
    /// AppRole: `approle_role_id` + `approle_secret_id`.
    Approle,
    /// JWT: `token_role` + `token_file`.
    Jwt,
    /// Kubernetes service-account JWT: `token_role` + `token_file`.
    Kubernetes,
}

/// The `[vault]` section.
///
/// Castellan's option names (`vault_url`, `root_token_id`, `auth_method`,
/// `approle_role_id`, `approle_secret_id`, `token_role`, `token_file`,
/// `auth_path`, `kv_mountpoint`, `kv_path`, `kv_version`, `namespace`,
/// `ssl_ca_crt_file`, `timeout`, `use_ssl`), plus keymgr's own:
/// `root_token_file` (a static token read from a file), `vault_url` may
/// list several nodes separated by commas (high availability),
/// `max_retries`, and `legacy_records_visible`.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Node URL, or several (high availability) separated by commas or
    /// given as a list. Default `http://127.0.0.1:8200`.
    #[serde(default = "default_url", deserialize_with = "url_or_list")]
    pub vault_url: String,
    /// A static token.
    #[serde(default)]
    pub root_token_id: Option<SecretString>,
    /// A file holding a static token (keymgr extension). Read again after
    /// a 403, so a token rotated by a Vault agent sink is picked up.
    /// `token_file` without `token_role` means the same.
    #[serde(default)]
    pub root_token_file: Option<PathBuf>,
    /// Login method when no static token is given (Castellan default `approle`).
    #[serde(default)]
    pub auth_method: Option<AuthMethod>,
    /// AppRole role id.
    #[serde(default)]
    pub approle_role_id: Option<SecretString>,
    /// AppRole secret id.
    #[serde(default)]
    pub approle_secret_id: Option<SecretString>,
    /// JWT/Kubernetes role.
    #[serde(default)]
    pub token_role: Option<String>,
    /// JWT/Kubernetes token file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Auth mount path (default: the method's name).
    #[serde(default)]
    pub auth_path: Option<String>,
    /// KV mount. Default `secret`.
    #[serde(default = "default_mount")]
    pub kv_mountpoint: String,
    /// Path prefix inside the mount.
    #[serde(default)]
    pub kv_path: Option<String>,
    /// KV version, 1 or 2. Default 2.
    #[serde(default = "default_version")]
    pub kv_version: u8,
    /// Vault Enterprise / OpenBao namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// CA certificate (PEM) for https.
    #[serde(default)]
    pub ssl_ca_crt_file: Option<PathBuf>,
    /// Seconds one call may take, retries and failovers included (one deadline). Default 10.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Accepted for Castellan compatibility; has no effect (the URL scheme decides).
    #[serde(default)]
    pub use_ssl: Option<bool>,
    /// Whether https certificates are verified. Default true; false is for
    /// tests only and logs a warning.
    #[serde(default = "default_true")]
    pub verify_ssl: bool,
    /// A Transit mount whose `random` endpoint generates keys for
    /// `create_key`, instead of the OS random source (keymgr extension).
    #[serde(default)]
    pub transit_mountpoint: Option<String>,
    /// Retries of a retryable failure before giving up. Default 4.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Whether records with no owning project (as Castellan writes them)
    /// are visible to every context. Default true.
    #[serde(default = "default_true")]
    pub legacy_records_visible: bool,
}

fn default_url() -> String {
    "http://127.0.0.1:8200".into()
}
fn default_mount() -> String {
    "secret".into()
}
fn default_version() -> u8 {
    2
}
fn default_timeout() -> f64 {
    10.0
}
fn default_retries() -> u32 {
    4
}
fn default_true() -> bool {
    true
}

/// `vault_url` as one string (commas allowed) or a list of strings.
fn url_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum UrlOrList {
        One(String),
        Many(Vec<String>),
    }
    Ok(match <UrlOrList as serde::Deserialize>::deserialize(d)? {
        UrlOrList::One(s) => s,
        UrlOrList::Many(v) => v.join(","),
    })
}

impl std::fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("vault_url", &self.vault_url)
            .field(
                "root_token_id",
                &self.root_token_id.as_ref().map(|_| "[REDACTED]"),
            )
            .field("root_token_file", &self.root_token_file)
            .field("auth_method", &self.auth_method)
            .field(
                "approle_role_id",
                &self.approle_role_id.as_ref().map(|_| "[REDACTED]"),
            )
            .field(
                "approle_secret_id",
                &self.approle_secret_id.as_ref().map(|_| "[REDACTED]"),
            )
            .field("token_role", &self.token_role)
            .field("token_file", &self.token_file)
            .field("kv_mountpoint", &self.kv_mountpoint)
            .field("kv_path", &self.kv_path)
            .field("kv_version", &self.kv_version)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("verify_ssl", &self.verify_ssl)
            .field("transit_mountpoint", &self.transit_mountpoint)
            .finish_non_exhaustive()
    }
}

impl VaultConfig {
    /// A config for one node with a static token; everything else default.
    pub fn with_token(url: impl Into<String>, token: impl Into<String>) -> Self {
        VaultConfig {
            vault_url: url.into(),
            root_token_id: Some(SecretString::from(token.into())),
            ..Self::empty()
        }
    }

    fn empty() -> Self {
        VaultConfig {
            vault_url: default_url(),
            root_token_id: None,
            root_token_file: None,
            auth_method: None,
            approle_role_id: None,
            approle_secret_id: None,
            token_role: None,
            token_file: None,
            auth_path: None,
            kv_mountpoint: default_mount(),
            kv_path: None,
            kv_version: default_version(),
            namespace: None,
            ssl_ca_crt_file: None,
            timeout: default_timeout(),
            use_ssl: None,
            verify_ssl: true,
            transit_mountpoint: None,
            max_retries: default_retries(),
            legacy_records_visible: true,
        }
    }

    /// A config for AppRole login on one node.
    pub fn with_approle(
        url: impl Into<String>,
        role_id: impl Into<String>,
        secret_id: impl Into<String>,
    ) -> Self {
        VaultConfig {
            vault_url: url.into(),
            auth_method: Some(AuthMethod::Approle),
            approle_role_id: Some(SecretString::from(role_id.into())),
            approle_secret_id: Some(SecretString::from(secret_id.into())),
            ..Self::empty()
        }
    }

    /// The node base URLs, without trailing slashes.
    pub fn nodes(&self) -> Result<Vec<String>> {
        let nodes: Vec<String> = self
            .vault_url
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if nodes.is_empty() {
            return Err(Error::config("[vault] vault_url is empty"));
        }
        for n in &nodes {
            if !(n.starts_with("http://") || n.starts_with("https://")) {
                return Err(Error::config(format!(
                    "[vault] vault_url {n:?} must start with http:// or https://"
                )));
            }
        }
        Ok(nodes)
    }

    /// The file of a static token: `root_token_file`, or `token_file` when
    /// no JWT role, no AppRole and no static token are configured.
    pub fn static_token_file(&self) -> Option<PathBuf> {
        if self.root_token_id.is_some() {
            return None;
        }
        if let Some(p) = &self.root_token_file {
            return Some(p.clone());
        }
        let login_method = matches!(
            self.auth_method,
            Some(AuthMethod::Approle | AuthMethod::Jwt | AuthMethod::Kubernetes)
        );
        match (&self.token_file, &self.token_role, &self.approle_role_id) {
            (Some(p), None, None) if !login_method => Some(p.clone()),
            _ => None,
        }
    }

    /// The request timeout.
    pub fn timeout(&self) -> Result<Duration> {
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 3600.0) {
            return Err(Error::config(format!(
                "[vault] timeout {} must be between 0 and 3600 seconds",
                self.timeout
            )));
        }
        Ok(Duration::from_secs_f64(self.timeout))
    }

    /// Checks the options that do not need the network.
    pub fn validate(&self) -> Result<()> {
        self.nodes()?;
        self.timeout()?;
        if !matches!(self.kv_version, 1 | 2) {
            return Err(Error::config(format!(
                "[vault] kv_version {} must be 1 or 2",
                self.kv_version
            )));
        }
        let bad_seg = |s: &str| s.split('/').any(|p| p == ".." || p == ".");
        if self.kv_mountpoint.trim_matches('/').is_empty() || bad_seg(&self.kv_mountpoint) {
            return Err(Error::config("[vault] kv_mountpoint must be a mount name"));
        }
        if self
            .transit_mountpoint
            .as_deref()
            .is_some_and(|t| t.trim_matches('/').is_empty() || bad_seg(t))
        {
            return Err(Error::config(
                "[vault] transit_mountpoint must be a mount name",
            ));
        }
        if self.kv_path.as_deref().is_some_and(bad_seg) {
            return Err(Error::config(
                "[vault] kv_path must not contain . or .. segments",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> VaultConfig {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn vault_url_takes_a_list_or_commas() {
        let a = parse("vault_url = [\"http://a:1\", \"https://b:2/\"]");
        let b = parse("vault_url = \"http://a:1 , https://b:2/\"");
        assert_eq!(a.nodes().unwrap(), vec!["http://a:1", "https://b:2"]);
        assert_eq!(a.nodes().unwrap(), b.nodes().unwrap());
        assert!(parse("vault_url = []").nodes().is_err());
        assert!(parse("vault_url = \"a:1\"").nodes().is_err());
    }

    #[test]
    fn defaults_are_castellans() {
        let c = parse("");
        assert_eq!(c.nodes().unwrap(), vec!["http://127.0.0.1:8200"]);
        assert_eq!((c.kv_mountpoint.as_str(), c.kv_version), ("secret", 2));
        assert_eq!(c.timeout().unwrap(), Duration::from_secs(10));
        assert!(c.verify_ssl && c.legacy_records_visible);
    }

    #[test]
    fn token_file_is_a_static_token_unless_a_login_is_configured() {
        let c = parse("token_file = \"/t\"");
        assert_eq!(c.static_token_file(), Some(PathBuf::from("/t")));
        let c = parse("root_token_file = \"/r\"\ntoken_file = \"/t\"\ntoken_role = \"x\"");
        assert_eq!(c.static_token_file(), Some(PathBuf::from("/r")));
        let c = parse("token_file = \"/t\"\ntoken_role = \"x\"\nauth_method = \"jwt\"");
        assert_eq!(c.static_token_file(), None);
        let c = parse("token_file = \"/t\"\nauth_method = \"kubernetes\"");
        assert_eq!(c.static_token_file(), None);
        let c = parse("token_file = \"/t\"\nroot_token_id = \"x\"");
        assert_eq!(c.static_token_file(), None);
    }

    #[test]
    fn bad_values_are_config_errors_naming_the_option() {
        for (t, opt) in [
            ("timeout = 0", "timeout"),
            ("timeout = -1.5", "timeout"),
            ("kv_version = 3", "kv_version"),
            ("kv_mountpoint = \"/\"", "kv_mountpoint"),
            ("kv_path = \"a/../b\"", "kv_path"),
            ("transit_mountpoint = \"..\"", "transit_mountpoint"),
        ] {
            let e = parse(t).validate().unwrap_err();
            assert_eq!(e.kind(), keymgr_core::ErrorKind::Config);
            assert!(e.to_string().contains(opt), "{t}: {e}");
        }
        assert!(toml::from_str::<VaultConfig>("no_such_option = 1").is_err());
    }

    #[test]
    fn debug_hides_credentials() {
        let c = parse(
            "root_token_id = \"tok-123\"\napprole_role_id = \"role-456\"\napprole_secret_id = \"sec-789\"",
        );
        let d = format!("{c:?}");
        for s in ["tok-123", "role-456", "sec-789"] {
            assert!(!d.contains(s), "{d}");
        }
    }
}
