//! [`KmipConfig`]: where the KMIP server is and the client certificate.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use keymgr_core::{Error, Result};

/// Configuration of the KMIP backend (the `[kmip]` section).
///
/// The option names are PyKMIP's client options (`host`, `port`,
/// `certfile`, `keyfile`, `ca_certs`), plus keymgr's `timeout` and
/// `kmip_version`:
///
/// ```toml
/// [kmip]
/// host = "kmip.example.com"
/// port = 5696
/// certfile = "/etc/keymgr/kmip-client.crt"   # PEM client certificate (chain)
/// keyfile = "/etc/keymgr/kmip-client.key"    # PEM private key (PKCS#8, PKCS#1 or SEC1)
/// ca_certs = "/etc/keymgr/kmip-ca.crt"       # PEM CA certificates for the server
/// timeout = 10                               # seconds, one deadline per exchange
/// kmip_version = "1.2"                       # optional: pin instead of Discover Versions
/// ```
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmipConfig {
    /// The server's host name or IP address (also the TLS server name).
    pub host: String,
    /// The server's port (KMIP's registered port 5696 by default).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The client certificate (PEM; the leaf first, then any intermediates).
    pub certfile: PathBuf,
    /// The client certificate's private key (PEM).
    pub keyfile: PathBuf,
    /// The CA certificates that sign the server's certificate (PEM).
    pub ca_certs: PathBuf,
    /// Seconds allowed for one exchange (connect, TLS, request and answer).
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// A protocol version to use (`"1.2"`, `"1.3"`, `"1.4"`) instead of
    /// asking the server with Discover Versions.
    #[serde(default, deserialize_with = "version_text")]
    pub kmip_version: Option<String>,
}

/// `kmip_version` as text, also when given as a number (`1.2` in TOML or
/// `KEYMGR_KMIP_KMIP_VERSION=1.2`, which the facade reads as a number).
fn version_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum V {
        Text(String),
        Number(f64),
    }
    Ok(Some(match <V as serde::Deserialize>::deserialize(d)? {
        V::Text(s) => s,
        V::Number(n) => format!("{n:.1}"),
    }))
}

fn default_port() -> u16 {
    5696
}

fn default_timeout() -> f64 {
    10.0
}

impl fmt::Debug for KmipConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmipConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .field("ca_certs", &self.ca_certs)
            .field("timeout", &self.timeout)
            .field("kmip_version", &self.kmip_version)
            .finish()
    }
}

impl KmipConfig {
    /// A configuration with the default port, timeout and negotiation.
    pub fn new(
        host: impl Into<String>,
        certfile: impl Into<PathBuf>,
        keyfile: impl Into<PathBuf>,
        ca_certs: impl Into<PathBuf>,
    ) -> Self {
        KmipConfig {
            host: host.into(),
            port: default_port(),
            certfile: certfile.into(),
            keyfile: keyfile.into(),
            ca_certs: ca_certs.into(),
            timeout: default_timeout(),
            kmip_version: None,
        }
    }

    /// The per-exchange deadline, after checking `timeout`.
    pub(crate) fn deadline(&self) -> Result<Duration> {
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 3600.0) {
            return Err(Error::config(format!(
                "kmip timeout {} must be between 0 and 3600 seconds",
                self.timeout
            )));
        }
        Ok(Duration::from_secs_f64(self.timeout))
    }

    /// The pinned version, if any, after checking it is one this client speaks.
    pub(crate) fn pinned_version(&self) -> Result<Option<crate::model::Version>> {
        let Some(v) = &self.kmip_version else {
            return Ok(None);
        };
        crate::model::SUPPORTED
            .iter()
            .find(|s| s.to_string() == v.trim())
            .copied()
            .map(Some)
            .ok_or_else(|| {
                Error::config(format!(
                    "kmip_version {v:?} is not supported: use 1.2, 1.3 or 1.4"
                ))
            })
    }

    /// Checks the values that can be checked without the network.
    pub fn validate(&self) -> Result<()> {
        if self.host.trim().is_empty() {
            return Err(Error::config("kmip host is empty"));
        }
        if self.port == 0 {
            return Err(Error::config("kmip port is 0"));
        }
        self.deadline()?;
        self.pinned_version()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pykmip_option_names_parse() {
        let c: KmipConfig = toml::from_str(
            "host = \"127.0.0.1\"\nport = 5696\ncertfile = \"c.pem\"\nkeyfile = \"k.pem\"\n\
             ca_certs = \"ca.pem\"\ntimeout = 2.5\nkmip_version = \"1.2\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.deadline().unwrap(), Duration::from_millis(2500));
        assert_eq!(
            c.pinned_version().unwrap(),
            Some(crate::model::Version::new(1, 2))
        );
    }

    #[test]
    fn bad_values_are_config_errors() {
        let mut c = KmipConfig::new("h", "c", "k", "ca");
        c.kmip_version = Some("1.0".into());
        assert!(c.validate().unwrap_err().to_string().contains("1.0"));
        let mut c = KmipConfig::new("h", "c", "k", "ca");
        c.timeout = 0.0;
        assert!(c.validate().is_err());
        assert!(toml::from_str::<KmipConfig>("host = \"h\"\nbogus = 1\n").is_err());
        let c: KmipConfig = toml::from_str(
            "host = \"h\"\ncertfile = \"c\"\nkeyfile = \"k\"\nca_certs = \"a\"\nkmip_version = 1.3\n",
        )
        .unwrap();
        assert_eq!(c.kmip_version.as_deref(), Some("1.3"));
    }
}
