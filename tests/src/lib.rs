//! Cross-crate test support: the backends the test environment started,
//! a log capture for secret-hygiene checks, and a bounded load driver.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use keymgr::{Config, KeyManager};
use keymgr_test_support::env::{OpenStackEnv, VaultEnv};

pub mod faults;
pub mod load;
pub mod mixed;

/// A backend under test with the context to use.
pub struct Backend {
    /// Short name for messages.
    pub name: &'static str,
    /// The key manager.
    pub km: Arc<dyn KeyManager>,
    /// A context that may use it.
    pub ctx: keymgr::Context,
    /// Credentials in its configuration that must never be logged.
    pub credentials: Vec<String>,
}

/// Every backend available here: the embedded one always, Vault and
/// Barbican when the test environment started them. A missing server is
/// reported on stderr, or is a panic when servers are required.
pub fn backends(state_dir: &std::path::Path) -> Vec<Backend> {
    let mut out = Vec::new();
    let mut mock = Config::new(keymgr::BackendKind::Mock);
    mock.section.insert(
        "path".into(),
        toml::Value::String(state_dir.join("store.sealed").to_string_lossy().into()),
    );
    out.push(Backend {
        name: "mock",
        km: keymgr::build(&mock).expect("mock backend"),
        ctx: keymgr::Context::new("hygiene", "tester"),
        credentials: Vec::new(),
    });
    if let Some(env) = VaultEnv::load() {
        let (c, token) = vault_config(&env, None);
        out.push(Backend {
            name: "vault",
            km: keymgr::build(&c).expect("vault backend"),
            ctx: keymgr::Context::new("hygiene", "tester"),
            credentials: vec![token],
        });
    }
    if let Some(env) = OpenStackEnv::load() {
        let (c, pw) = barbican_config(&env, None, None);
        out.push(Backend {
            name: "barbican",
            km: keymgr::build(&c).expect("barbican backend"),
            ctx: keymgr::Context::new("", "tester"),
            credentials: vec![pw],
        });
    }
    out
}

/// A Vault backend configuration for the test environment's OpenBao,
/// reached at `addr` (default: the server itself), and its token.
pub fn vault_config(env: &VaultEnv, addr: Option<&str>) -> (Config, String) {
    let mut c = Config::new(keymgr::BackendKind::Vault);
    c.section.insert(
        "vault_url".into(),
        toml::Value::String(addr.unwrap_or(&env.addr).to_string()),
    );
    c.section.insert(
        "root_token_id".into(),
        toml::Value::String(env.root_token.clone()),
    );
    (c, env.root_token.clone())
}

/// A Barbican backend configuration for user A of the test environment,
/// with Keystone at `auth` and Barbican at `endpoint` (defaults: the real
/// servers; the catalog is used when no endpoint is given), and its password.
pub fn barbican_config(
    env: &OpenStackEnv,
    auth: Option<&str>,
    endpoint: Option<&str>,
) -> (Config, String) {
    let user = &env.user_a;
    let mut c = Config::new(keymgr::BackendKind::Barbican);
    for (k, v) in [
        ("auth_endpoint", auth.unwrap_or(&env.keystone_url)),
        ("auth_type", "password"),
        ("username", &user.name),
        ("password", &user.password),
        ("user_domain_name", &env.domain),
        ("project_name", &user.project),
        ("project_domain_name", &env.domain),
    ] {
        c.section
            .insert(k.into(), toml::Value::String(v.to_string()));
    }
    if let Some(e) = endpoint {
        c.section
            .insert("barbican_endpoint".into(), toml::Value::String(e.into()));
    }
    // The test Barbican answers one request at a time: under the 64-way
    // load each request queues behind the others, far past the 10 s default.
    c.section
        .insert("timeout".into(), toml::Value::Integer(120));
    (c, user.password.clone())
}

/// A process-wide TRACE log capture (tracing events and `log` records).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the capture as the global subscriber at TRACE. Call once per test binary.
    pub fn install() -> LogCapture {
        let cap = LogCapture::default();
        let writer = cap.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the log capture must be the only global subscriber");
        cap
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Bytes logged so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Whether nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The forms a secret may leak in: raw text, hex (both cases), base64 (standard and URL-safe).
pub fn leak_forms(secret: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    let mut forms = vec![
        hex::encode(secret),
        hex::encode_upper(secret),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        forms.push(text.to_string());
    }
    // Trailing base64 padding may be cut by a log line; match its stable prefix.
    forms.iter_mut().for_each(|f| {
        while f.ends_with('=') {
            f.pop();
        }
    });
    forms.retain(|f| f.len() >= 8);
    forms
}

/// Panics naming the form if any form of `secret` appears in `text`.
pub fn assert_no_secret(text: &str, secret: &[u8], what: &str) {
    for form in leak_forms(secret) {
        assert!(
            !text.contains(&form),
            "{what} leaked into the logs as {form:?}"
        );
    }
}

/// A 4 MiB file `v.img` in `dir`, formatted as a small LUKS2 volume (1 MiB
/// keyslots area, PBKDF2 at test cost) unlocked by `passphrase`.
pub fn small_luks2_volume(dir: &Path, passphrase: &[u8]) -> PathBuf {
    let img = dir.join("v.img");
    std::fs::write(&img, vec![0u8; 4 << 20]).unwrap();
    let opts = luks::FormatOptions {
        pbkdf: luks::PbkdfOptions::fast_for_tests(luks::PbkdfType::Pbkdf2),
        luks2_keyslots_size: Some(1 << 20),
        ..Default::default()
    };
    luks::format(&img, &opts, passphrase).unwrap();
    img
}
