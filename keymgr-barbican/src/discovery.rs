//! Barbican version discovery and microversion negotiation (1.0, 1.1
//! consumers, 1.2 delete refused while consumers exist).

use keymgr_core::{Error, Result};

use crate::config::parse_microversion;
use crate::errors::status_error;
use crate::keystone::find_endpoint;
use crate::manager::{lock, BarbicanKeyManager};
use crate::transport::exchange;

/// The newest Barbican microversion this client knows: 1.2.
pub const MAX_MICROVERSION: u8 = 2;

impl BarbicanKeyManager {
    /// The microversion used with the endpoint, as `1.N`.
    pub async fn microversion(&self) -> Result<String> {
        let root = self.root().await?;
        Ok(format!("1.{}", self.negotiate(&root).await?))
    }

    /// Barbican's unversioned root URL.
    pub(crate) async fn root(&self) -> Result<String> {
        let raw = match &self.inner.cfg.barbican_endpoint {
            Some(e) => e.clone(),
            None => {
                let t = self.own_token().await?;
                let cfg = &self.inner.cfg;
                find_endpoint(
                    &t.catalog,
                    "key-manager",
                    cfg.barbican_endpoint_type.as_str(),
                    cfg.barbican_region_name.as_deref(),
                )
                .ok_or_else(|| {
                    Error::config(format!(
                        "no {} key-manager endpoint{} in the service catalog; set barbican_endpoint",
                        cfg.barbican_endpoint_type.as_str(),
                        cfg.barbican_region_name
                            .as_deref()
                            .map(|r| format!(" in region {r}"))
                            .unwrap_or_default()
                    ))
                })?
            }
        };
        let trimmed = raw.trim_end_matches('/');
        let root = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
        Ok(root.to_string())
    }

    /// The microversion for `root`, negotiated once from its version document.
    pub(crate) async fn negotiate(&self, root: &str) -> Result<u8> {
        if let Some(v) = lock(&self.inner.versions).get(root) {
            return Ok(*v);
        }
        let what = "Barbican version discovery";
        let url = format!("{root}/");
        let http = &self.inner.http;
        let reply = exchange(&self.inner.policy, what, true, || {
            http.get(&url)
                .header("Accept", "application/json")
                .header("OpenStack-API-Version", "key-manager latest")
        })
        .await?;
        if reply.status >= 500 {
            // Not an answer to learn from: do not cache a guess.
            return Err(status_error(what, reply.status, &reply.body));
        }
        // A document that cannot be read means a server older than
        // microversions: 1.0.
        let doc: serde_json::Value = reply.json(what).unwrap_or(serde_json::Value::Null);
        let server_max = server_max_microversion(&doc);
        let mv = server_max.min(self.inner.max_mv);
        tracing::debug!(root, server_max, mv, "Barbican microversion negotiated");
        lock(&self.inner.versions).insert(root.to_string(), mv);
        Ok(mv)
    }

    pub(crate) async fn require_consumers(&self, what: &str) -> Result<u8> {
        let root = self.root().await?;
        let mv = self.negotiate(&root).await?;
        if mv < 1 {
            return Err(Error::invalid(
                what,
                "secret consumers need Barbican microversion 1.1 (this endpoint or configuration allows only 1.0)",
            ));
        }
        Ok(mv)
    }
}

/// The highest `1.N` the version document announces for v1 (0 when it
/// announces none, as a 1.0-only server does).
pub(crate) fn server_max_microversion(doc: &serde_json::Value) -> u8 {
    let versions = match doc.get("versions") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(obj) => obj
            .get("values")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default(),
        None => doc
            .get("version")
            .map(|v| vec![v.clone()])
            .unwrap_or_default(),
    };
    versions
        .iter()
        .filter(|v| {
            v.get("id")
                .and_then(|i| i.as_str())
                .is_none_or(|i| i == "v1")
        })
        .filter_map(|v| v.get("max_version").and_then(|m| m.as_str()))
        .filter_map(|m| parse_microversion(m).ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_documents_give_the_max_microversion() {
        let new = serde_json::json!({"versions": [{"id": "v1", "status": "CURRENT", "min_version": "1.0", "max_version": "1.2"}]});
        assert_eq!(server_max_microversion(&new), 2);
        let old = serde_json::json!({"versions": {"values": [{"id": "v1", "status": "stable"}]}});
        assert_eq!(server_max_microversion(&old), 0);
        let one = serde_json::json!({"version": {"id": "v1", "max_version": "1.1"}});
        assert_eq!(server_max_microversion(&one), 1);
        assert_eq!(server_max_microversion(&serde_json::Value::Null), 0);
    }
}
