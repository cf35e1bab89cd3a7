//! Vault auth methods: a static token, a token file (read again after a
//! 403), AppRole and JWT/Kubernetes logins, and the cached token.

//! The HTTP layer: nodes, login, retries, redirects, read-after-write.

use std::time::{Duration, Instant};

use keymgr_core::{Error, Result};
use keymgr_http::refresh_at;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::config::{AuthMethod, VaultConfig};

use crate::model::Access;
use crate::transport::VaultClient;

/// How to get a token.
pub(crate) enum Login {
    Static(SecretString),
    /// A token read from a file, read again after a 403 (a Vault agent
    /// sink rotates it).
    File(std::path::PathBuf),
    AppRole {
        mount: String,
        role_id: SecretString,
        secret_id: Option<SecretString>,
    },
    Jwt {
        mount: String,
        role: String,
        file: std::path::PathBuf,
    },
}

impl Login {
    /// How to get a token under `cfg`; a token file is read once now, so a
    /// missing one is a configuration error.
    pub(crate) fn from_config(cfg: &VaultConfig) -> Result<Self> {
        Ok(if let Some(t) = &cfg.root_token_id {
            Login::Static(t.clone())
        } else if let Some(p) = cfg.static_token_file() {
            // Read once now so a missing file is a configuration error.
            read_token_file(&p)?;
            Login::File(p)
        } else {
            let method = cfg.auth_method.unwrap_or(AuthMethod::Approle);
            let mount = |d: &str| cfg.auth_path.clone().unwrap_or_else(|| d.to_string());
            match method {
                AuthMethod::Token => {
                    return Err(Error::config(
                        "[vault] auth_method = token needs root_token_id or root_token_file",
                    ))
                }
                AuthMethod::Approle => Login::AppRole {
                    mount: mount("approle"),
                    role_id: cfg.approle_role_id.clone().ok_or_else(|| {
                        Error::config(
                            "[vault] approle auth needs approle_role_id (or set root_token_id)",
                        )
                    })?,
                    secret_id: cfg.approle_secret_id.clone(),
                },
                AuthMethod::Jwt | AuthMethod::Kubernetes => Login::Jwt {
                    mount: mount(if method == AuthMethod::Jwt {
                        "jwt"
                    } else {
                        "kubernetes"
                    }),
                    role: cfg.token_role.clone().ok_or_else(|| {
                        Error::config("[vault] jwt/kubernetes auth needs token_role")
                    })?,
                    file: cfg.token_file.clone().ok_or_else(|| {
                        Error::config("[vault] jwt/kubernetes auth needs token_file")
                    })?,
                },
            }
        })
    }
}

fn read_token_file(path: &std::path::Path) -> Result<SecretString> {
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read token file {}: {e}", path.display()))
        })?);
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::config(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(t.to_string()))
}

impl VaultClient {
    /// Whether the client can log in again (not a static token).
    pub(crate) fn can_relogin(&self) -> bool {
        !matches!(self.login, Login::Static(_))
    }

    pub(crate) async fn token(&self) -> Result<SecretString> {
        let t = match &self.login {
            Login::Static(t) => return Ok(t.clone()),
            // Kept until a 403 makes it read again.
            Login::File(p) => {
                self.cached
                    .get(|| async { Ok((read_token_file(p)?, None)) })
                    .await?
            }
            _ => self.cached.get(|| self.login()).await?,
        };
        Ok(SecretString::clone(&t))
    }

    pub(crate) async fn forget_token(&self) {
        self.cached.clear().await;
    }

    /// Logs in: the token and when to log in again (before its lease ends).
    pub(crate) async fn login(&self) -> Result<(SecretString, Option<Instant>)> {
        let (mount, body) = match &self.login {
            Login::Static(_) | Login::File(_) => {
                return Err(Error::config("a static Vault token cannot log in"))
            }
            Login::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let mut b = serde_json::json!({ "role_id": role_id.expose_secret() });
                if let Some(s) = secret_id {
                    b["secret_id"] = Value::String(s.expose_secret().to_string());
                }
                (mount.clone(), b)
            }
            Login::Jwt { mount, role, file } => {
                let jwt = read_token_file(file)?;
                (
                    mount.clone(),
                    serde_json::json!({ "role": role, "jwt": jwt.expose_secret() }),
                )
            }
        };
        let body = Zeroizing::new(body.to_string());
        let path = format!("auth/{mount}/login");
        let what = format!("log in to Vault at {path}");
        let ans = self
            .send_with_retries(Method::POST, &path, Some(&body), Access::Write, None, &what)
            .await?;
        match ans.status.as_u16() {
            200 => {}
            400 | 401 | 403 => {
                return Err(Error::Unauthenticated {
                    what,
                    reason: ans.errors(),
                })
            }
            s => {
                return Err(Error::Backend {
                    what,
                    status: s,
                    message: ans.errors(),
                })
            }
        }
        let auth = ans.body.get("auth");
        let token = auth
            .and_then(|a| a.get("client_token"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Backend {
                what: what.clone(),
                status: 200,
                message: "the login answer has no auth.client_token".into(),
            })?;
        let lease = auth
            .and_then(|a| a.get("lease_duration"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        tracing::debug!(mount = %mount, lease_seconds = lease, "logged in to Vault");
        Ok((
            SecretString::from(token.to_string()),
            (lease > 0).then(|| refresh_at(Duration::from_secs(lease))),
        ))
    }

    /// Whether the configured token is accepted at all (`lookup-self`).
    pub(crate) async fn token_is_valid(&self) -> bool {
        match self
            .request(
                Method::GET,
                "auth/token/lookup-self",
                None,
                Access::Read,
                "token lookup",
            )
            .await
        {
            Ok(a) => a.status.is_success(),
            Err(_) => false,
        }
    }
}
