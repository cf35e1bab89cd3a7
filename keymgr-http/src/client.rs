//! The pooled HTTP client both backends start from, and the CA bundle
//! they trust.

use std::path::Path;
use std::time::Duration;

/// A client builder with the settings every backend uses: `timeout` as
/// each request's ceiling, a connect timeout of at most 10 s, idle
/// connections kept 60 s, and `user_agent`.
pub fn client_builder(user_agent: &'static str, timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
}

/// Why a CA bundle could not be used.
#[derive(Debug)]
pub enum CaError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The file is not a PEM certificate bundle.
    NotPem(reqwest::Error),
    /// The file holds no PEM certificate.
    Empty,
}

/// The certificates of the PEM bundle at `path` (at least one).
pub fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, CaError> {
    let pem = std::fs::read(path).map_err(CaError::Read)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(CaError::NotPem)?;
    if certs.is_empty() || !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(CaError::Empty);
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_must_be_there_and_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("keymgr-http-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            read_ca_bundle(&dir.join("missing.pem")),
            Err(CaError::Read(_))
        ));
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        assert!(matches!(read_ca_bundle(&empty), Err(CaError::Empty)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
