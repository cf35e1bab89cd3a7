//! The small part of Keystone v3 a key manager client needs: getting a
//! token (password, token, application credential), keeping it until
//! shortly before it expires, and reading the service catalog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keymgr_core::{Error, OffsetDateTime, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{AuthType, BarbicanConfig};
use crate::errors::status_error;
use crate::transport::{exchange, RetryPolicy};
use keymgr_http::TokenCache;

/// A user, by id or by name in a domain.
#[derive(Debug, Clone)]
struct UserRef {
    id: Option<String>,
    name: Option<String>,
    domain_id: Option<String>,
    domain_name: Option<String>,
}

impl UserRef {
    fn to_json(&self) -> Value {
        let mut u = serde_json::Map::new();
        if let Some(id) = &self.id {
            u.insert("id".into(), json!(id));
        } else if let Some(name) = &self.name {
            u.insert("name".into(), json!(name));
            u.insert(
                "domain".into(),
                domain_json(&self.domain_id, &self.domain_name),
            );
        }
        Value::Object(u)
    }
}

fn domain_json(id: &Option<String>, name: &Option<String>) -> Value {
    match (id, name) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(name)) => json!({ "name": name }),
        (None, None) => json!({}),
    }
}

/// What to authenticate with.
#[derive(Clone)]
enum Method {
    Password {
        user: UserRef,
        password: SecretString,
    },
    Token(SecretString),
    AppCred {
        id: Option<String>,
        name: Option<String>,
        user: UserRef,
        secret: SecretString,
    },
}

/// The project to scope to, when one is named.
#[derive(Debug, Clone)]
enum Scope {
    Id(String),
    Name {
        name: String,
        domain_id: Option<String>,
        domain_name: Option<String>,
    },
}

/// A Keystone token and what came with it.
pub(crate) struct Token {
    pub secret: SecretString,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub user_id: String,
    pub catalog: Vec<CatalogService>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"[REDACTED]")
            .field("project_id", &self.project_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// One service of the catalog.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// One endpoint of a catalog service.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CatalogEndpoint {
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

/// The URL of `service_type` at `interface` in `region` (any region when
/// `None`), from a token's catalog.
pub(crate) fn find_endpoint(
    catalog: &[CatalogService],
    service_type: &str,
    interface: &str,
    region: Option<&str>,
) -> Option<String> {
    catalog
        .iter()
        .filter(|s| s.service_type == service_type)
        .flat_map(|s| s.endpoints.iter())
        .find(|e| {
            e.interface == interface
                && region.is_none_or(|r| {
                    e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r)
                })
        })
        .map(|e| e.url.clone())
}

/// A Keystone v3 client for one set of credentials, caching its token.
pub(crate) struct Keystone {
    /// `.../v3`
    url: String,
    method: Method,
    scope: Option<Scope>,
    cache: TokenCache<Token>,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("url", &self.url)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// `.../v3` from an `auth_endpoint` given with or without it.
pub(crate) fn v3_url(auth_endpoint: &str) -> String {
    let base = auth_endpoint.trim_end_matches('/');
    if base.ends_with("/v3") {
        base.to_string()
    } else {
        format!("{base}/v3")
    }
}

impl Keystone {
    /// The client for the configuration's main credentials.
    pub(crate) fn main(cfg: &BarbicanConfig) -> Result<Self> {
        let url = v3_url(cfg.auth_endpoint.as_deref().unwrap_or_default());
        let user = UserRef {
            id: cfg.user_id.clone(),
            name: cfg.username.clone(),
            domain_id: cfg.user_domain_id.clone(),
            domain_name: cfg.user_domain_name.clone(),
        };
        let missing = |what: &str| Error::config(format!("[barbican] {what} is required"));
        let method = match cfg.auth_type {
            AuthType::Password => Method::Password {
                user,
                password: cfg.password.clone().ok_or_else(|| missing("password"))?,
            },
            AuthType::Token => Method::Token(cfg.token.clone().ok_or_else(|| missing("token"))?),
            AuthType::ApplicationCredential => Method::AppCred {
                id: cfg.application_credential_id.clone(),
                name: cfg.application_credential_name.clone(),
                user,
                secret: cfg
                    .application_credential_secret
                    .clone()
                    .ok_or_else(|| missing("application_credential_secret"))?,
            },
        };
        let scope = match cfg.auth_type {
            AuthType::ApplicationCredential => None,
            _ => scope_of(
                &cfg.project_id,
                &cfg.project_name,
                &cfg.project_domain_id,
                &cfg.project_domain_name,
            ),
        };
        Ok(Keystone {
            url,
            method,
            scope,
            cache: TokenCache::default(),
        })
    }

    /// The client for the service-token credentials, if configured.
    pub(crate) fn service(cfg: &BarbicanConfig) -> Result<Option<Self>> {
        if !cfg.has_service_credentials() {
            return Ok(None);
        }
        let url = v3_url(cfg.auth_endpoint.as_deref().unwrap_or_default());
        let password = cfg
            .service_password
            .clone()
            .ok_or_else(|| Error::config("[barbican] service_password is required"))?;
        Ok(Some(Keystone {
            url,
            method: Method::Password {
                user: UserRef {
                    id: cfg.service_user_id.clone(),
                    name: cfg.service_username.clone(),
                    domain_id: cfg.service_user_domain_id.clone(),
                    domain_name: cfg.service_user_domain_name.clone(),
                },
                password,
            },
            scope: scope_of(
                &cfg.service_project_id,
                &cfg.service_project_name,
                &cfg.service_project_domain_id,
                &cfg.service_project_domain_name,
            ),
            cache: TokenCache::default(),
        }))
    }

    /// The cached token while it is fresh, else a new one. Concurrent
    /// callers wait for one authentication rather than each doing one.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
    ) -> Result<Arc<Token>> {
        self.cache.get(|| self.authenticate(http, policy)).await
    }

    /// Forgets `stale` (after a 401), unless another caller already replaced it.
    pub(crate) async fn invalidate(&self, stale: &Arc<Token>) {
        self.cache.invalidate(stale).await;
    }

    fn request_body(&self) -> Value {
        let identity = match &self.method {
            Method::Password { user, password } => {
                let mut u = user.to_json();
                u["password"] = json!(password.expose_secret());
                json!({ "methods": ["password"], "password": { "user": u } })
            }
            Method::Token(t) => {
                json!({ "methods": ["token"], "token": { "id": t.expose_secret() } })
            }
            Method::AppCred {
                id,
                name,
                user,
                secret,
            } => {
                let mut ac = serde_json::Map::new();
                if let Some(id) = id {
                    ac.insert("id".into(), json!(id));
                } else if let Some(name) = name {
                    ac.insert("name".into(), json!(name));
                    ac.insert("user".into(), user.to_json());
                }
                ac.insert("secret".into(), json!(secret.expose_secret()));
                json!({ "methods": ["application_credential"], "application_credential": ac })
            }
        };
        let mut auth = json!({ "identity": identity });
        match &self.scope {
            Some(Scope::Id(id)) => auth["scope"] = json!({ "project": { "id": id } }),
            Some(Scope::Name {
                name,
                domain_id,
                domain_name,
            }) => {
                auth["scope"] = json!({ "project": {
                    "name": name,
                    "domain": domain_json(domain_id, domain_name),
                }})
            }
            None => {}
        }
        json!({ "auth": auth })
    }

    /// Gets a new token, and when to stop using it.
    async fn authenticate(
        &self,
        http: &reqwest::Client,
        policy: &RetryPolicy,
    ) -> Result<(Token, Option<Instant>)> {
        let what = "keystone authentication";
        // The body holds the password: build it once, zeroized after use.
        let mut doc = self.request_body();
        let body = serde_json::to_vec(&doc).map(zeroize::Zeroizing::new);
        scrub(&mut doc);
        let body = body.map_err(|e| Error::Backend {
            what: what.into(),
            status: 0,
            message: e.to_string(),
        })?;
        let url = format!("{}/auth/tokens", self.url);
        // Getting a token changes nothing on the server: safe to repeat.
        let reply = exchange(policy, what, true, || {
            http.post(&url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .body(body.to_vec())
        })
        .await?;
        if !reply.is_success() {
            return Err(status_error(what, reply.status, &reply.body));
        }
        let secret = reply
            .headers
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(|v| SecretString::from(v.to_string()))
            .ok_or_else(|| Error::Backend {
                what: what.into(),
                status: reply.status,
                message: "the answer has no X-Subject-Token header".into(),
            })?;
        let parsed: TokenBody = reply.json(what)?;
        let t = parsed.token;
        let fresh_until = fresh_until(t.expires_at.as_deref(), t.issued_at.as_deref());
        tracing::debug!(
            user = %t.user.id,
            project = ?t.project.as_ref().map(|p| &p.id),
            "keystone token obtained"
        );
        let token = Token {
            secret,
            project_id: t.project.as_ref().map(|p| p.id.clone()),
            project_name: t.project.as_ref().and_then(|p| p.name.clone()),
            user_id: t.user.id,
            catalog: t.catalog.unwrap_or_default(),
        };
        Ok((token, Some(fresh_until)))
    }
}

/// Overwrites every string of a JSON document (the auth request holds the
/// password or secret) before it is dropped.
fn scrub(v: &mut Value) {
    match v {
        Value::String(s) => zeroize::Zeroize::zeroize(s),
        Value::Array(a) => a.iter_mut().for_each(scrub),
        Value::Object(o) => o.values_mut().for_each(scrub),
        _ => {}
    }
}

fn scope_of(
    id: &Option<String>,
    name: &Option<String>,
    domain_id: &Option<String>,
    domain_name: &Option<String>,
) -> Option<Scope> {
    match (id, name) {
        (Some(id), _) => Some(Scope::Id(id.clone())),
        (None, Some(name)) => Some(Scope::Name {
            name: name.clone(),
            domain_id: domain_id.clone(),
            domain_name: domain_name.clone(),
        }),
        (None, None) => None,
    }
}

/// When to stop using a token: a minute before `expires_at`, or a quarter
/// of its lifetime before when it lives less than four minutes. Measured on
/// the local monotonic clock from the lifetime Keystone states
/// (`expires_at - issued_at`), so a skewed local clock does not matter.
fn fresh_until(expires_at: Option<&str>, issued_at: Option<&str>) -> Instant {
    let parse = |s: &str| crate::model::parse_time(s);
    let lifetime = match (expires_at.and_then(parse), issued_at.and_then(parse)) {
        (Some(e), Some(i)) => e - i,
        (Some(e), None) => e - OffsetDateTime::now_utc(),
        _ => time::Duration::minutes(5),
    };
    // Keystone's numbers are not trusted to be sane: at most a week.
    let lifetime = Duration::try_from(lifetime)
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(7 * 86_400));
    keymgr_http::refresh_at(lifetime)
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenJson,
}

#[derive(Deserialize)]
struct TokenJson {
    expires_at: Option<String>,
    issued_at: Option<String>,
    user: IdName,
    project: Option<IdName>,
    catalog: Option<Vec<CatalogService>>,
}

#[derive(Deserialize)]
struct IdName {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(cfg: &BarbicanConfig) -> Keystone {
        Keystone::main(cfg).unwrap()
    }

    #[test]
    fn password_body_names_user_project_and_domains() {
        let cfg = BarbicanConfig::password("http://k:5000", "alice", "pw", "demo", "Default");
        let k = ks(&cfg);
        assert_eq!(k.url, "http://k:5000/v3");
        let b = k.request_body();
        assert_eq!(b["auth"]["identity"]["methods"], json!(["password"]));
        let u = &b["auth"]["identity"]["password"]["user"];
        assert_eq!(u["name"], "alice");
        assert_eq!(u["domain"]["name"], "Default");
        assert_eq!(u["password"], "pw");
        assert_eq!(b["auth"]["scope"]["project"]["name"], "demo");
        assert_eq!(b["auth"]["scope"]["project"]["domain"]["name"], "Default");
        assert!(!format!("{k:?}").contains("pw\""));
    }

    #[test]
    fn ids_win_over_names_and_app_creds_have_no_scope() {
        let mut cfg = BarbicanConfig::password("http://k/v3/", "alice", "pw", "demo", "Default");
        cfg.user_id = Some("uid".into());
        cfg.project_id = Some("pid".into());
        let b = ks(&cfg).request_body();
        assert_eq!(
            b["auth"]["identity"]["password"]["user"],
            json!({"id": "uid", "password": "pw"})
        );
        assert_eq!(b["auth"]["scope"], json!({"project": {"id": "pid"}}));

        let cfg = BarbicanConfig::application_credential("http://k", "acid", "s3");
        let b = ks(&cfg).request_body();
        assert_eq!(
            b["auth"]["identity"]["application_credential"],
            json!({"id": "acid", "secret": "s3"})
        );
        assert!(b["auth"].get("scope").is_none());

        let mut cfg = BarbicanConfig::application_credential("http://k", "x", "s3");
        cfg.application_credential_id = None;
        cfg.application_credential_name = Some("backup".into());
        cfg.username = Some("alice".into());
        cfg.user_domain_id = Some("default".into());
        let b = ks(&cfg).request_body();
        assert_eq!(
            b["auth"]["identity"]["application_credential"],
            json!({"name": "backup", "user": {"name": "alice", "domain": {"id": "default"}}, "secret": "s3"})
        );

        let cfg = BarbicanConfig {
            auth_endpoint: Some("http://k".into()),
            auth_type: AuthType::Token,
            token: Some(SecretString::from("tok")),
            project_id: Some("p".into()),
            ..BarbicanConfig::default()
        };
        cfg.validate().unwrap();
        let b = ks(&cfg).request_body();
        assert_eq!(b["auth"]["identity"]["token"]["id"], "tok");
        assert_eq!(b["auth"]["scope"]["project"]["id"], "p");
    }

    #[test]
    fn scrub_clears_every_string() {
        let mut v = json!({"a": ["pw", {"b": "secret"}], "n": 1});
        scrub(&mut v);
        assert_eq!(v, json!({"a": ["", {"b": ""}], "n": 1}));
    }

    #[test]
    fn catalog_lookup_by_interface_and_region() {
        let catalog: Vec<CatalogService> = serde_json::from_value(json!([
            {"type": "identity", "endpoints": [{"interface": "public", "region_id": "R1", "url": "http://id"}]},
            {"type": "key-manager", "endpoints": [
                {"interface": "public", "region_id": "R1", "region": "R1", "url": "http://pub1"},
                {"interface": "internal", "region_id": "R1", "url": "http://int1"},
                {"interface": "public", "region_id": "R2", "url": "http://pub2"}
            ]}
        ]))
        .unwrap();
        assert_eq!(
            find_endpoint(&catalog, "key-manager", "public", None).as_deref(),
            Some("http://pub1")
        );
        assert_eq!(
            find_endpoint(&catalog, "key-manager", "public", Some("R2")).as_deref(),
            Some("http://pub2")
        );
        assert_eq!(
            find_endpoint(&catalog, "key-manager", "internal", Some("R1")).as_deref(),
            Some("http://int1")
        );
        assert_eq!(find_endpoint(&catalog, "key-manager", "admin", None), None);
        assert_eq!(
            find_endpoint(&catalog, "key-manager", "internal", Some("R2")),
            None
        );
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let t = fresh_until(
            Some("2030-01-01T01:00:00.000000Z"),
            Some("2030-01-01T00:00:00.000000Z"),
        );
        let left = t - Instant::now();
        assert!(
            left <= Duration::from_secs(3540) && left > Duration::from_secs(3530),
            "{left:?}"
        );
        let t = fresh_until(Some("2030-01-01T00:02:00Z"), Some("2030-01-01T00:00:00Z"));
        let left = t - Instant::now();
        assert!(
            left <= Duration::from_secs(90) && left > Duration::from_secs(85),
            "{left:?}"
        );
        // Already expired per Keystone's own clock: not reused.
        let t = fresh_until(Some("2030-01-01T00:00:00Z"), Some("2030-01-01T00:00:00Z"));
        assert!(t <= Instant::now());
    }
}
