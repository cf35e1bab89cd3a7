//! The `[barbican]` configuration: Castellan's option names plus the
//! Keystone credentials.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use keymgr_core::{Error, Result};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// Which catalog interface of the `key-manager` service to use
/// (Castellan's `barbican_endpoint_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointType {
    /// The public endpoint (the default, as in Castellan).
    #[default]
    Public,
    /// The internal endpoint.
    Internal,
    /// The admin endpoint.
    Admin,
}

impl EndpointType {
    /// The interface name used in Keystone's catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointType::Public => "public",
            EndpointType::Internal => "internal",
            EndpointType::Admin => "admin",
        }
    }
}

/// How the key manager authenticates to Keystone v3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// User name or id, password, optional project scope (keystoneauth `password`).
    #[default]
    #[serde(alias = "v3password")]
    Password,
    /// An existing token exchanged for a (re-)scoped one (keystoneauth `token`).
    #[serde(alias = "v3token")]
    Token,
    /// An application credential: id + secret, or name + secret + user
    /// (keystoneauth `v3applicationcredential`).
    #[serde(alias = "v3applicationcredential", alias = "applicationcredential")]
    ApplicationCredential,
}

/// The configuration of a [`crate::BarbicanKeyManager`].
///
/// Option names follow Castellan's `[barbican]` section where Castellan has
/// one (`barbican_endpoint`, `barbican_api_version`, `auth_endpoint`,
/// `barbican_endpoint_type`, `barbican_region_name`, `number_of_retries`,
/// `retry_delay`, `verify_ssl`, `verify_ssl_path`), and keystoneauth's
/// names for the credentials. Unknown options are refused, so a typo is an
/// error rather than a silently ignored setting.
///
/// As in Castellan, `number_of_retries` and `retry_delay` govern the polling
/// of key orders (`create_key` waits at most `number_of_retries *
/// retry_delay` seconds). Transient HTTP failures have their own knobs,
/// `http_retries` and `http_retry_delay`.
///
/// ```
/// let cfg: keymgr_barbican::BarbicanConfig = serde_json::from_value(serde_json::json!({
///     "auth_endpoint": "http://127.0.0.1:5000/v3",
///     "username": "cinder", "password": "pw", "user_domain_name": "Default",
///     "project_name": "service", "project_domain_name": "Default",
///     "barbican_endpoint_type": "internal",
/// })).unwrap();
/// assert!(cfg.validate().is_ok());
/// assert!(!format!("{cfg:?}").contains("\"pw\""));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BarbicanConfig {
    /// Barbican's URL (e.g. `http://host:9311`); when unset it is looked up
    /// in the service catalog (type `key-manager`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub barbican_endpoint: Option<String>,
    /// The API version path segment, `v1`.
    #[serde(default = "default_api_version", deserialize_with = "de_string")]
    pub barbican_api_version: String,
    /// Keystone's URL, with or without the trailing `/v3`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub auth_endpoint: Option<String>,
    /// Catalog interface: `public`, `internal` or `admin`.
    #[serde(default)]
    pub barbican_endpoint_type: EndpointType,
    /// Catalog region; any region when unset.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub barbican_region_name: Option<String>,
    /// Key order polls before giving up (Castellan's meaning); default 60.
    #[serde(default = "default_number_of_retries")]
    pub number_of_retries: u32,
    /// Seconds between key order polls at most (Castellan's meaning); default 1.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: f64,
    /// Verify TLS certificates; default true.
    #[serde(default = "default_true")]
    pub verify_ssl: bool,
    /// A PEM file of CA certificates to trust besides the system's.
    #[serde(default)]
    pub verify_ssl_path: Option<PathBuf>,
    /// Seconds one call may take, retries included (one deadline); default 10.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Retries of an idempotent call after a connection error, 5xx or 429; default 3.
    #[serde(default = "default_http_retries")]
    pub http_retries: u32,
    /// First retry delay in seconds, doubled each time (jittered, at most 5 s); default 0.25.
    #[serde(default = "default_http_retry_delay")]
    pub http_retry_delay: f64,
    /// Highest Barbican microversion to use, e.g. `"1.1"`; the newest both
    /// sides know (1.2) when unset.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub max_microversion: Option<String>,

    /// `password` (default), `token` or `application_credential`.
    #[serde(default)]
    pub auth_type: AuthType,
    /// User name (with `user_domain_name` or `user_domain_id`).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub username: Option<String>,
    /// User id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub user_id: Option<String>,
    /// Password (`auth_type = password`).
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub password: Option<SecretString>,
    /// Domain name of the user.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub user_domain_name: Option<String>,
    /// Domain id of the user.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub user_domain_id: Option<String>,
    /// Project to scope to, by name (with a project domain).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub project_name: Option<String>,
    /// Project to scope to, by id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub project_id: Option<String>,
    /// Domain name of the project.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub project_domain_name: Option<String>,
    /// Domain id of the project.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub project_domain_id: Option<String>,
    /// A token (`auth_type = token`).
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub token: Option<SecretString>,
    /// Application credential id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub application_credential_id: Option<String>,
    /// Application credential name (with the user).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub application_credential_name: Option<String>,
    /// Application credential secret.
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub application_credential_secret: Option<SecretString>,

    /// Service user name: when service credentials are set, calls made on
    /// behalf of a user (a `Context` with a user token) also send this
    /// service's token as `X-Service-Token`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service_username: Option<String>,
    /// Service user id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service_user_id: Option<String>,
    /// Service user password.
    #[serde(default, deserialize_with = "de_opt_secret")]
    pub service_password: Option<SecretString>,
    /// Service user domain name.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service_user_domain_name: Option<String>,
    /// Service user domain id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service_user_domain_id: Option<String>,
    /// Service project name.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service_project_name: Option<String>,
    /// Service project id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service_project_id: Option<String>,
    /// Service project domain name.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service_project_domain_name: Option<String>,
    /// Service project domain id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub service_project_domain_id: Option<String>,
}

fn default_api_version() -> String {
    "v1".into()
}
fn default_number_of_retries() -> u32 {
    60
}
fn default_retry_delay() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> f64 {
    10.0
}
fn default_http_retries() -> u32 {
    3
}
fn default_http_retry_delay() -> f64 {
    0.25
}

impl Default for BarbicanConfig {
    fn default() -> Self {
        BarbicanConfig {
            barbican_endpoint: None,
            barbican_api_version: default_api_version(),
            auth_endpoint: None,
            barbican_endpoint_type: EndpointType::Public,
            barbican_region_name: None,
            number_of_retries: default_number_of_retries(),
            retry_delay: default_retry_delay(),
            verify_ssl: true,
            verify_ssl_path: None,
            timeout: default_timeout(),
            http_retries: default_http_retries(),
            http_retry_delay: default_http_retry_delay(),
            max_microversion: None,
            auth_type: AuthType::Password,
            username: None,
            user_id: None,
            password: None,
            user_domain_name: None,
            user_domain_id: None,
            project_name: None,
            project_id: None,
            project_domain_name: None,
            project_domain_id: None,
            token: None,
            application_credential_id: None,
            application_credential_name: None,
            application_credential_secret: None,
            service_username: None,
            service_user_id: None,
            service_password: None,
            service_user_domain_name: None,
            service_user_domain_id: None,
            service_project_name: None,
            service_project_id: None,
            service_project_domain_name: None,
            service_project_domain_id: None,
        }
    }
}

impl fmt::Debug for BarbicanConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<SecretString>| s.as_ref().map(|_| "[REDACTED]");
        f.debug_struct("BarbicanConfig")
            .field("barbican_endpoint", &self.barbican_endpoint)
            .field("barbican_api_version", &self.barbican_api_version)
            .field("auth_endpoint", &self.auth_endpoint)
            .field("barbican_endpoint_type", &self.barbican_endpoint_type)
            .field("barbican_region_name", &self.barbican_region_name)
            .field("number_of_retries", &self.number_of_retries)
            .field("retry_delay", &self.retry_delay)
            .field("verify_ssl", &self.verify_ssl)
            .field("verify_ssl_path", &self.verify_ssl_path)
            .field("timeout", &self.timeout)
            .field("http_retries", &self.http_retries)
            .field("http_retry_delay", &self.http_retry_delay)
            .field("max_microversion", &self.max_microversion)
            .field("auth_type", &self.auth_type)
            .field("username", &self.username)
            .field("user_id", &self.user_id)
            .field("password", &redacted(&self.password))
            .field("user_domain_name", &self.user_domain_name)
            .field("user_domain_id", &self.user_domain_id)
            .field("project_name", &self.project_name)
            .field("project_id", &self.project_id)
            .field("project_domain_name", &self.project_domain_name)
            .field("project_domain_id", &self.project_domain_id)
            .field("token", &redacted(&self.token))
            .field("application_credential_id", &self.application_credential_id)
            .field(
                "application_credential_name",
                &self.application_credential_name,
            )
            .field(
                "application_credential_secret",
                &redacted(&self.application_credential_secret),
            )
            .field("service_username", &self.service_username)
            .field("service_user_id", &self.service_user_id)
            .field("service_password", &redacted(&self.service_password))
            .field("service_project_name", &self.service_project_name)
            .field("service_project_id", &self.service_project_id)
            .finish_non_exhaustive()
    }
}

impl BarbicanConfig {
    /// A password configuration: user and project by name in `domain`.
    pub fn password(
        auth_endpoint: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
        project_name: impl Into<String>,
        domain: impl Into<String>,
    ) -> Self {
        let domain = domain.into();
        BarbicanConfig {
            auth_endpoint: Some(auth_endpoint.into()),
            auth_type: AuthType::Password,
            username: Some(username.into()),
            password: Some(SecretString::from(password.into())),
            user_domain_name: Some(domain.clone()),
            project_name: Some(project_name.into()),
            project_domain_name: Some(domain),
            ..BarbicanConfig::default()
        }
    }

    /// An application credential configuration (by id and secret).
    pub fn application_credential(
        auth_endpoint: impl Into<String>,
        id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        BarbicanConfig {
            auth_endpoint: Some(auth_endpoint.into()),
            auth_type: AuthType::ApplicationCredential,
            application_credential_id: Some(id.into()),
            application_credential_secret: Some(SecretString::from(secret.into())),
            ..BarbicanConfig::default()
        }
    }

    /// Whether service-token credentials are configured.
    pub fn has_service_credentials(&self) -> bool {
        self.service_username.is_some() || self.service_user_id.is_some()
    }

    /// Checks that the options fit together, naming the one that does not.
    pub fn validate(&self) -> Result<()> {
        let bad = |r: String| Err(Error::config(format!("[barbican] {r}")));
        match &self.auth_endpoint {
            None => return bad("auth_endpoint (Keystone's URL) is required".into()),
            Some(u) => check_url("auth_endpoint", u)?,
        }
        if let Some(u) = &self.barbican_endpoint {
            check_url("barbican_endpoint", u)?;
        }
        if self.barbican_api_version.trim_matches('/') != "v1" {
            return bad(format!(
                "barbican_api_version {:?}: only v1 is supported",
                self.barbican_api_version
            ));
        }
        for (name, v) in [
            ("retry_delay", self.retry_delay),
            ("timeout", self.timeout),
            ("http_retry_delay", self.http_retry_delay),
        ] {
            if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
                return bad(format!(
                    "{name} = {v}: expected seconds between 0 and 86400"
                ));
            }
        }
        if self.timeout <= 0.0 {
            return bad("timeout must be more than 0 seconds".into());
        }
        if self.http_retries > 100 {
            return bad(format!("http_retries = {}: at most 100", self.http_retries));
        }
        if let Some(m) = &self.max_microversion {
            parse_microversion(m)?;
        }
        if !self.verify_ssl && self.verify_ssl_path.is_some() {
            return bad("verify_ssl_path is set but verify_ssl is false".into());
        }
        match self.auth_type {
            AuthType::Password => {
                if self.password.is_none() {
                    return bad("auth_type = password needs `password`".into());
                }
                check_user(
                    "",
                    &self.user_id,
                    &self.username,
                    &self.user_domain_id,
                    &self.user_domain_name,
                )?;
                self.check_project()?;
            }
            AuthType::Token => {
                if self.token.is_none() {
                    return bad("auth_type = token needs `token`".into());
                }
                self.check_project()?;
            }
            AuthType::ApplicationCredential => {
                if self.application_credential_secret.is_none() {
                    return bad(
                        "auth_type = application_credential needs application_credential_secret"
                            .into(),
                    );
                }
                if self.application_credential_id.is_none() {
                    if self.application_credential_name.is_none() {
                        return bad("auth_type = application_credential needs application_credential_id, or application_credential_name with the user".into());
                    }
                    check_user(
                        "",
                        &self.user_id,
                        &self.username,
                        &self.user_domain_id,
                        &self.user_domain_name,
                    )?;
                }
                if self.project_id.is_some() || self.project_name.is_some() {
                    return bad("an application credential is bound to its project: leave project_id and project_name unset".into());
                }
            }
        }
        if self.has_service_credentials() {
            if self.service_password.is_none() {
                return bad("service credentials need service_password".into());
            }
            check_user(
                "service_",
                &self.service_user_id,
                &self.service_username,
                &self.service_user_domain_id,
                &self.service_user_domain_name,
            )?;
            if self.service_project_name.is_some()
                && self.service_project_domain_id.is_none()
                && self.service_project_domain_name.is_none()
            {
                return bad(
                    "service_project_name needs service_project_domain_name or service_project_domain_id"
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn check_project(&self) -> Result<()> {
        if self.project_name.is_some()
            && self.project_id.is_none()
            && self.project_domain_id.is_none()
            && self.project_domain_name.is_none()
        {
            return Err(Error::config(
                "[barbican] project_name needs project_domain_name or project_domain_id",
            ));
        }
        Ok(())
    }

    pub(crate) fn timeout_duration(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

fn check_user(
    prefix: &str,
    id: &Option<String>,
    name: &Option<String>,
    domain_id: &Option<String>,
    domain_name: &Option<String>,
) -> Result<()> {
    if id.is_some() {
        return Ok(());
    }
    if name.is_none() {
        return Err(Error::config(format!(
            "[barbican] {prefix}user_id or {prefix}username is required"
        )));
    }
    if domain_id.is_none() && domain_name.is_none() {
        return Err(Error::config(format!(
            "[barbican] {prefix}username needs {prefix}user_domain_name or {prefix}user_domain_id"
        )));
    }
    Ok(())
}

fn check_url(name: &str, u: &str) -> Result<()> {
    let url = url::Url::parse(u)
        .map_err(|e| Error::config(format!("[barbican] {name} {u:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::config(format!(
            "[barbican] {name} {u:?} must be http or https"
        )));
    }
    Ok(())
}

/// Parses `1.N` into N.
pub(crate) fn parse_microversion(s: &str) -> Result<u8> {
    let bad = || {
        Error::config(format!(
            "[barbican] microversion {s:?}: expected 1.N (1.0, 1.1, 1.2)"
        ))
    };
    let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
    if major != "1" {
        return Err(bad());
    }
    minor.parse::<u8>().map_err(|_| bad())
}

// Options may come from environment variables, where the facade types
// digits as integers: accept numbers and booleans where a string is meant.
struct Stringish;

impl<'de> serde::de::Visitor<'de> for Stringish {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<String, E> {
        Ok(String::new())
    }
    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<String, E> {
        Ok(String::new())
    }
}

fn de_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    d.deserialize_any(Stringish)
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let s = d.deserialize_any(Stringish)?;
    Ok(if s.is_empty() { None } else { Some(s) })
}

fn de_opt_secret<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<SecretString>, D::Error> {
    let s = zeroize::Zeroizing::new(d.deserialize_any(Stringish)?);
    Ok(if s.is_empty() {
        None
    } else {
        Some(SecretString::from(s.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(s: &str) -> std::result::Result<BarbicanConfig, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn castellan_names_parse_and_validate() {
        let cfg = from_toml(
            r#"
            barbican_endpoint = "https://kms:9311"
            barbican_api_version = "v1"
            auth_endpoint = "https://keystone:5000/v3"
            barbican_endpoint_type = "internal"
            barbican_region_name = "RegionTwo"
            number_of_retries = 5
            retry_delay = 2
            verify_ssl = true
            timeout = 10
            auth_type = "password"
            username = "cinder"
            password = 1234
            user_domain_name = "Default"
            project_id = 42
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.barbican_endpoint_type, EndpointType::Internal);
        assert_eq!(cfg.project_id.as_deref(), Some("42"));
        assert_eq!(cfg.retry_delay, 2.0);
        assert!(!format!("{cfg:?}").contains("1234"));
    }

    #[test]
    fn typos_and_bad_combinations_are_refused() {
        assert!(from_toml("auth_endpont = \"http://k\"").is_err());
        assert!(from_toml("barbican_endpoint_type = \"private\"").is_err());
        let cases = [
            ("", "auth_endpoint"),
            ("auth_endpoint = \"ftp://k\"", "http"),
            ("auth_endpoint = \"http://k\"", "password"),
            (
                "auth_endpoint = \"http://k\"\npassword = \"p\"\nusername = \"u\"",
                "user_domain",
            ),
            (
                "auth_endpoint = \"http://k\"\npassword = \"p\"\nuser_id = \"u\"\nproject_name = \"p\"",
                "project_domain",
            ),
            (
                "auth_endpoint = \"http://k\"\nauth_type = \"application_credential\"\napplication_credential_id = \"i\"",
                "application_credential_secret",
            ),
            (
                "auth_endpoint = \"http://k\"\nauth_type = \"v3applicationcredential\"\napplication_credential_id = \"i\"\napplication_credential_secret = \"s\"\nproject_id = \"p\"",
                "bound to its project",
            ),
            (
                "auth_endpoint = \"http://k\"\nauth_type = \"token\"\nmax_microversion = \"2.0\"\ntoken = \"t\"",
                "microversion",
            ),
            (
                "auth_endpoint = \"http://k\"\nauth_type = \"token\"\ntoken = \"t\"\ntimeout = -1",
                "timeout",
            ),
            (
                "auth_endpoint = \"http://k\"\nauth_type = \"token\"\ntoken = \"t\"\nservice_username = \"nova\"\nservice_password = \"x\"",
                "service_user_domain",
            ),
        ];
        for (text, needle) in cases {
            let err = from_toml(text).unwrap().validate().unwrap_err();
            assert!(err.to_string().contains(needle), "{text:?}: {err}");
            assert_eq!(err.kind(), keymgr_core::ErrorKind::Config);
        }
    }

    #[test]
    fn microversions_parse() {
        assert_eq!(parse_microversion("1.2").unwrap(), 2);
        assert_eq!(parse_microversion("1.0").unwrap(), 0);
        for bad in ["1", "2.1", "1.x", "", "1.300"] {
            assert!(parse_microversion(bad).is_err(), "{bad}");
        }
    }
}
