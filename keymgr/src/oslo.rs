//! The oslo.config INI files of the OpenStack services (`cinder.conf`,
//! `nova.conf`, ...): a strict reader of their syntax, and the mapping of
//! Castellan's options onto the facade's [`Config`].
//!
//! Syntax, as oslo.config's parser: `[section]` headers; `key = value` or
//! `key: value` (the first `=` or `:` splits, blanks around key and value
//! are dropped, one pair of matching quotes around the value is removed);
//! lines starting with `#` or `;` are comments; a line starting with a
//! blank continues the previous value (joined with a newline), and a blank
//! line ends it. Section names are case-insensitive except `DEFAULT`; when
//! an option appears twice, the last one wins. As in oslo.config, an
//! option of a group is read from that group's section only: `[DEFAULT]`
//! values are not inherited by `[key_manager]`, `[barbican]` or `[vault]`
//! (oslo.config looks there only for options declared with a `DEFAULT`
//! deprecated group, and Castellan declares none).
//!
//! Mapping (Castellan's options):
//! - `[key_manager]`: `backend` (or the older `api_class`): `barbican`,
//!   `vault` or Castellan's class paths (see [`BackendKind`]); unset means
//!   `barbican`, Castellan's default. `fixed_key`: see
//!   [`crate::MigrationKeyManager`]. The keystoneauth credentials Castellan
//!   reads there (`auth_type` = `password`/`keystone_password` or
//!   `token`/`keystone_token`, `token`, `username`, `password`, `auth_url`,
//!   `user_id`, `user_domain_id`, `user_domain_name`, `project_id`,
//!   `project_name`, `project_domain_id`, `project_domain_name`,
//!   `reauthenticate`) become the Barbican backend's credentials
//!   (`auth_url` is also Castellan's old name of `[barbican] auth_endpoint`).
//!   `trust_id`, `domain_id` and `domain_name` (trust and domain scope) are
//!   refused: keymgr scopes to a project.
//! - `[barbican]`: `barbican_endpoint`, `barbican_api_version`,
//!   `auth_endpoint`, `retry_delay`, `number_of_retries`, `verify_ssl`,
//!   `verify_ssl_path` (ignored when `verify_ssl` is false, as Castellan
//!   does), `barbican_endpoint_type`, `barbican_region_name`,
//!   `timeout`; `send_service_user_token` takes the service user from
//!   `[barbican_service_user]` (`auth_type` password, `username`/`user_id`,
//!   `password`, user and project domain, `project_name`/`project_id`,
//!   `default_domain_id`/`default_domain_name`, `auth_url` equal to the
//!   Keystone above). keystoneauth's session options that Castellan does not
//!   use either (`cafile`, `certfile`, `keyfile`, `insecure`,
//!   `collect_timing`, `split_loggers`) are accepted and have no effect.
//! - `[vault]`: `vault_url`, `root_token_id`, `auth_method`,
//!   `approle_role_id`, `approle_secret_id`, `token_role`, `token_file`,
//!   `auth_path`, `kv_mountpoint`, `kv_path`, `kv_version`, `use_ssl`,
//!   `ssl_ca_crt_file`, `namespace`, `timeout`.
//!
//! Only these key manager sections are strict: an option they do not have,
//! a value of the wrong type, or a `$` substitution (oslo.config would
//! expand `$name`; write the value out, or `$$` for a `$`) is a `Config`
//! error naming section and option. The services' own sections
//! (`[DEFAULT]`, `[database]`, `[keystone_authtoken]`, ...) are ignored.
//! A file without `[key_manager]` configures no key manager and is refused.

use std::collections::BTreeMap;

use keymgr_core::{Error, Result};

use crate::fixed_key::FixedKey;
use crate::{BackendKind, Config};

/// An option's value and the line it was read from.
#[derive(Clone, PartialEq, Eq)]
pub struct IniValue {
    /// The value, continuation lines joined with `\n`.
    pub value: String,
    /// The 1-based line of its key.
    pub line: usize,
}

/// A parsed INI file: sections by normalised name (lower case except
/// `DEFAULT`), each option's last value.
///
/// `Debug` lists section and option names, never values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IniFile {
    sections: BTreeMap<String, BTreeMap<String, IniValue>>,
}

impl std::fmt::Debug for IniFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: BTreeMap<&str, Vec<&str>> = self
            .sections
            .iter()
            .map(|(s, o)| (s.as_str(), o.keys().map(String::as_str).collect()))
            .collect();
        f.debug_struct("IniFile").field("sections", &names).finish()
    }
}

/// Where and why INI text does not parse (the line's text is not repeated:
/// it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct IniError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn normalise_section(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_string()
    } else {
        name.to_lowercase()
    }
}

impl IniFile {
    /// Parses oslo.config INI text (see the module documentation).
    pub fn parse(text: &str) -> std::result::Result<Self, IniError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut file = IniFile::default();
        let mut section: Option<String> = None;
        // The option being read: (key, its line, value lines).
        let mut pending: Option<(String, usize, Vec<String>)> = None;
        let flush = |file: &mut IniFile,
                     section: &Option<String>,
                     pending: &mut Option<(String, usize, Vec<String>)>|
         -> std::result::Result<(), IniError> {
            if let Some((key, line, value)) = pending.take() {
                let Some(s) = section else {
                    return Err(IniError {
                        line,
                        reason: "an option before any [section] header",
                    });
                };
                file.sections.entry(s.clone()).or_default().insert(
                    key,
                    IniValue {
                        value: value.join("\n"),
                        line,
                    },
                );
            }
            Ok(())
        };
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = raw.trim_end();
            if line.is_empty() {
                flush(&mut file, &section, &mut pending)?;
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match &mut pending {
                    Some((_, _, value)) => value.push(line.trim_start().to_string()),
                    None => {
                        return Err(IniError {
                            line: lineno,
                            reason: "a continuation line (starting with a blank) follows no option",
                        })
                    }
                }
                continue;
            }
            flush(&mut file, &section, &mut pending)?;
            if line.starts_with('[') {
                if !line.ends_with(']') {
                    return Err(IniError {
                        line: lineno,
                        reason: "a section header must end with ]",
                    });
                }
                if line.len() <= 2 {
                    return Err(IniError {
                        line: lineno,
                        reason: "an empty section name",
                    });
                }
                let name = normalise_section(&line[1..line.len() - 1]);
                file.sections.entry(name.clone()).or_default();
                section = Some(name);
            } else if line.starts_with(['#', ';']) {
                continue;
            } else {
                let split = line.find(['=', ':']).ok_or(IniError {
                    line: lineno,
                    reason: "no '=' or ':' in an option line",
                })?;
                let key = line[..split].trim();
                if key.is_empty() {
                    return Err(IniError {
                        line: lineno,
                        reason: "an empty option name",
                    });
                }
                let mut value = line[split + 1..].trim();
                let b = value.as_bytes();
                if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
                    value = &value[1..value.len() - 1];
                }
                pending = Some((key.to_string(), lineno, vec![value.to_string()]));
            }
        }
        flush(&mut file, &section, &mut pending)?;
        Ok(file)
    }

    /// Whether the file has `section` (any case except `DEFAULT`).
    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(&normalise_section(section))
    }

    /// The options of `section`, by name (empty when it is absent).
    pub fn section(&self, section: &str) -> impl Iterator<Item = (&str, &IniValue)> {
        self.sections
            .get(&normalise_section(section))
            .into_iter()
            .flat_map(|s| s.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// The value of `option` in `section` itself (no `[DEFAULT]` fallback,
    /// as oslo.config).
    pub fn get(&self, section: &str, option: &str) -> Option<&IniValue> {
        self.sections.get(&normalise_section(section))?.get(option)
    }

    /// The section names, normalised.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }
}

/// How an option's text becomes a TOML value.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Float,
    Bool,
}

/// What the facade does with one option of a key manager section.
#[derive(Clone, Copy)]
enum Use {
    /// Becomes this option of the backend's section, typed.
    To(&'static str, Ty),
    /// Read by the mapping itself.
    Own,
    /// Accepted, no effect (Castellan does not use it either).
    Ignored,
    /// Refused with this reason.
    Refused(&'static str),
}

/// An option the backend's section takes under the same name, a string.
const fn kept(name: &'static str) -> (&'static str, Use) {
    kept_as(name, Ty::Str)
}

/// An option the backend's section takes under the same name, typed.
const fn kept_as(name: &'static str, ty: Ty) -> (&'static str, Use) {
    (name, Use::To(name, ty))
}

/// Keystone scopes other than a project, refused in `[key_manager]` and
/// `[barbican_service_user]`.
const SCOPES_REFUSED: &[(&str, &str)] = &[
    (
        "trust_id",
        "trust scope is not supported: scope to a project",
    ),
    (
        "domain_id",
        "domain scope is not supported: scope to a project",
    ),
    (
        "domain_name",
        "domain scope is not supported: scope to a project",
    ),
];

const KEY_MANAGER: &[(&str, Use)] = &[
    ("backend", Use::Own),
    ("api_class", Use::Own),
    ("fixed_key", Use::Own),
    ("auth_type", Use::Own),
    ("auth_url", Use::Own),
    kept("token"),
    kept("username"),
    kept("password"),
    kept("user_id"),
    kept("user_domain_id"),
    kept("user_domain_name"),
    kept("project_id"),
    kept("project_name"),
    kept("project_domain_id"),
    kept("project_domain_name"),
    ("reauthenticate", Use::Ignored),
];

/// keystoneauth's session options, which Castellan registers and never uses.
const SESSION_IGNORED: &[&str] = &[
    "cafile",
    "certfile",
    "keyfile",
    "insecure",
    "collect_timing",
    "split_loggers",
];

const BARBICAN: &[(&str, Use)] = &[
    kept("barbican_endpoint"),
    kept("barbican_api_version"),
    ("auth_endpoint", Use::Own),
    kept_as("retry_delay", Ty::Float),
    kept_as("number_of_retries", Ty::Int),
    kept_as("verify_ssl", Ty::Bool),
    kept("verify_ssl_path"),
    kept("barbican_endpoint_type"),
    kept("barbican_region_name"),
    ("send_service_user_token", Use::Own),
    kept_as("timeout", Ty::Float),
];

const SERVICE_USER: &[(&str, Use)] = &[
    ("auth_type", Use::Own),
    ("auth_url", Use::Own),
    ("default_domain_id", Use::Own),
    ("default_domain_name", Use::Own),
    ("username", Use::To("service_username", Ty::Str)),
    ("user_id", Use::To("service_user_id", Ty::Str)),
    ("password", Use::To("service_password", Ty::Str)),
    ("user_domain_id", Use::To("service_user_domain_id", Ty::Str)),
    (
        "user_domain_name",
        Use::To("service_user_domain_name", Ty::Str),
    ),
    ("project_id", Use::To("service_project_id", Ty::Str)),
    ("project_name", Use::To("service_project_name", Ty::Str)),
    (
        "project_domain_id",
        Use::To("service_project_domain_id", Ty::Str),
    ),
    (
        "project_domain_name",
        Use::To("service_project_domain_name", Ty::Str),
    ),
    ("timeout", Use::Ignored),
    (
        "auth_section",
        Use::Refused("auth_section is not supported: put the options in [barbican_service_user]"),
    ),
    (
        "system_scope",
        Use::Refused("system scope is not supported: scope to a project"),
    ),
];

const VAULT: &[(&str, Use)] = &[
    kept("vault_url"),
    kept("root_token_id"),
    kept("auth_method"),
    kept("approle_role_id"),
    kept("approle_secret_id"),
    kept("token_role"),
    kept("token_file"),
    kept("auth_path"),
    kept("kv_mountpoint"),
    kept("kv_path"),
    kept_as("kv_version", Ty::Int),
    kept_as("use_ssl", Ty::Bool),
    kept("ssl_ca_crt_file"),
    kept("namespace"),
    kept_as("timeout", Ty::Float),
];

/// The key manager sections and their options.
fn table_of(section: &str) -> Option<&'static [(&'static str, Use)]> {
    match section {
        "key_manager" => Some(KEY_MANAGER),
        "barbican" => Some(BARBICAN),
        "barbican_service_user" => Some(SERVICE_USER),
        "vault" => Some(VAULT),
        _ => None,
    }
}

fn usage(section: &str, option: &str) -> Option<Use> {
    let table = table_of(section)?;
    if let Some((_, u)) = table.iter().find(|(n, _)| *n == option) {
        return Some(*u);
    }
    if section != "key_manager" && SESSION_IGNORED.contains(&option) {
        return Some(Use::Ignored);
    }
    if matches!(section, "key_manager" | "barbican_service_user") {
        if let Some((_, why)) = SCOPES_REFUSED.iter().find(|(n, _)| *n == option) {
            return Some(Use::Refused(why));
        }
    }
    None
}

fn err(section: &str, option: &str, why: impl std::fmt::Display) -> Error {
    Error::config(format!("[{section}] {option}: {why}"))
}

/// Parses `v` as oslo.config parses a `BoolOpt`.
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// The option's text without oslo.config's `$$` escape; `$name` is refused.
fn unescape(section: &str, option: &str, v: &IniValue) -> Result<String> {
    let mut out = String::with_capacity(v.value.len());
    let mut chars = v.value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if chars.peek() == Some(&'$') {
                chars.next();
            } else {
                return Err(err(
                    section,
                    option,
                    format!(
                        "line {}: oslo.config would substitute a `$` reference here, which keymgr does not: write the value out (`$$` for a `$`)",
                        v.line
                    ),
                ));
            }
        }
        out.push(c);
    }
    Ok(out)
}

fn typed(section: &str, option: &str, v: &IniValue, ty: Ty) -> Result<toml::Value> {
    let text = unescape(section, option, v)?;
    let t = text.trim();
    let bad = |what: &str| err(section, option, format!("line {}: expected {what}", v.line));
    Ok(match ty {
        Ty::Str => toml::Value::String(text),
        Ty::Int => toml::Value::Integer(t.parse().map_err(|_| bad("an integer"))?),
        Ty::Float => toml::Value::Float(t.parse().map_err(|_| bad("a number"))?),
        Ty::Bool => toml::Value::Boolean(parse_bool(t).ok_or_else(|| bad("true or false"))?),
    })
}

/// Checks every option of every key manager section present.
fn check_names(ini: &IniFile) -> Result<()> {
    for section in ["key_manager", "barbican", "barbican_service_user", "vault"] {
        for (option, v) in ini.section(section) {
            match usage(section, option) {
                None => {
                    return Err(err(
                        section,
                        option,
                        format!("line {}: not an option of this section", v.line),
                    ))
                }
                Some(Use::Refused(why)) => return Err(err(section, option, why)),
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Copies the `Use::To` options of `section` into `out`.
fn copy_mapped(ini: &IniFile, section: &str, out: &mut toml::Table) -> Result<()> {
    for (option, v) in ini.section(section) {
        if let Some(Use::To(name, ty)) = usage(section, option) {
            out.insert(name.to_string(), typed(section, option, v, ty)?);
        }
    }
    Ok(())
}

fn string_opt(ini: &IniFile, section: &str, option: &str) -> Result<Option<String>> {
    ini.get(section, option)
        .map(|v| unescape(section, option, v))
        .transpose()
}

/// Keystone's URL without trailing slashes or `/v3`, for comparing.
fn keystone_base(url: &str) -> &str {
    let u = url.trim().trim_end_matches('/');
    u.strip_suffix("/v3").unwrap_or(u)
}

/// The facade's configuration from oslo.config INI text (see the module
/// documentation).
pub fn config_from_ini(text: &str) -> Result<Config> {
    let ini =
        IniFile::parse(text).map_err(|e| Error::config(format!("not a valid INI file: {e}")))?;
    if !ini.has_section("key_manager") {
        return Err(Error::config(
            "no [key_manager] section: this file configures no key manager",
        ));
    }
    check_names(&ini)?;
    let backend = string_opt(&ini, "key_manager", "backend")?;
    let api_class = string_opt(&ini, "key_manager", "api_class")?;
    let name = match (backend, api_class) {
        (Some(b), Some(a)) if b.trim() != a.trim() => {
            return Err(Error::config(
                "[key_manager] backend and its old name api_class disagree: keep backend",
            ))
        }
        (Some(b), _) | (None, Some(b)) => b,
        (None, None) => "barbican".into(),
    };
    let kind: BackendKind = name
        .parse()
        .map_err(|e: Error| Error::config(format!("[key_manager] backend: {e}")))?;
    let mut config = Config::new(kind);
    if let Some(hex) = string_opt(&ini, "key_manager", "fixed_key")? {
        config.fixed_key = Some(
            FixedKey::from_hex(&hex).map_err(|e| Error::config(format!("[key_manager] {e}")))?,
        );
    }
    match kind {
        BackendKind::Barbican => barbican(&ini, &mut config.section)?,
        BackendKind::Vault => copy_mapped(&ini, "vault", &mut config.section)?,
        BackendKind::Mock => {
            return Err(Error::config(
                "[key_manager] backend: the embedded store is not a Castellan backend; configure it in a keymgr TOML file",
            ))
        }
        BackendKind::Kmip => {
            return Err(Error::config(
                "[key_manager] backend: kmip is not a Castellan backend; configure it in a keymgr TOML file ([kmip])",
            ))
        }
    }
    Ok(config)
}

fn barbican(ini: &IniFile, out: &mut toml::Table) -> Result<()> {
    copy_mapped(ini, "key_manager", out)?;
    copy_mapped(ini, "barbican", out)?;
    if let Some(t) = string_opt(ini, "key_manager", "auth_type")? {
        let mapped = match t.trim().to_ascii_lowercase().as_str() {
            "password" | "keystone_password" | "v3password" => "password",
            "token" | "keystone_token" | "v3token" => "token",
            _ => {
                return Err(err(
                    "key_manager",
                    "auth_type",
                    format!("{t:?}: expected password, keystone_password, token or keystone_token"),
                ))
            }
        };
        out.insert("auth_type".into(), toml::Value::String(mapped.into()));
    }
    let auth = match (
        string_opt(ini, "barbican", "auth_endpoint")?,
        string_opt(ini, "key_manager", "auth_url")?,
    ) {
        (Some(a), _) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    if let Some(a) = &auth {
        out.insert("auth_endpoint".into(), toml::Value::String(a.clone()));
    }
    // Castellan ignores verify_ssl_path when verify_ssl is false.
    if out.get("verify_ssl").and_then(toml::Value::as_bool) == Some(false) {
        out.remove("verify_ssl_path");
    }
    let send = match ini.get("barbican", "send_service_user_token") {
        Some(v) => typed("barbican", "send_service_user_token", v, Ty::Bool)?
            .as_bool()
            .unwrap_or(false),
        None => false,
    };
    if !send {
        return Ok(());
    }
    const S: &str = "barbican_service_user";
    if ini.section(S).next().is_none() {
        return Err(err(
            "barbican",
            "send_service_user_token",
            "is true but [barbican_service_user] configures no service user",
        ));
    }
    if let Some(t) = string_opt(ini, S, "auth_type")? {
        if !matches!(
            t.trim().to_ascii_lowercase().as_str(),
            "password" | "v3password"
        ) {
            return Err(err(
                S,
                "auth_type",
                format!("{t:?}: only password is supported for the service user"),
            ));
        }
    }
    if let Some(u) = string_opt(ini, S, "auth_url")? {
        if auth.as_deref().map(keystone_base) != Some(keystone_base(&u)) {
            return Err(err(
                S,
                "auth_url",
                "differs from the Keystone of [barbican] auth_endpoint: keymgr authenticates the service user at the same Keystone",
            ));
        }
    }
    copy_mapped(ini, S, out)?;
    let default_id = string_opt(ini, S, "default_domain_id")?;
    let default_name = string_opt(ini, S, "default_domain_name")?;
    for (id_opt, name_opt) in [
        ("service_user_domain_id", "service_user_domain_name"),
        ("service_project_domain_id", "service_project_domain_name"),
    ] {
        if out.contains_key(id_opt) || out.contains_key(name_opt) {
            continue;
        }
        if let Some(d) = &default_id {
            out.insert(id_opt.into(), toml::Value::String(d.clone()));
        } else if let Some(d) = &default_name {
            out.insert(name_opt.into(), toml::Value::String(d.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
