//! A backend that accepts the connection and never answers: every call
//! fails within the configured `timeout` (one deadline covering retries)
//! plus one second, and the message names the URL.
#![cfg(any(feature = "vault", feature = "barbican"))]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Listens on a free local port, accepts every connection and never
/// answers (connections are held open until the test ends).
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = vec![];
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    port
}

/// Runs `secret get` against `config` and checks the deadline and the message.
fn fails_within(config_text: &str, timeout: Duration, port: u16) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "not-a-real-token").unwrap();
    let config = dir.path().join("keymgr.toml");
    std::fs::write(
        &config,
        config_text.replace("DIR", &dir.path().to_string_lossy()),
    )
    .unwrap();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_keymgr"))
        .arg("--config")
        .arg(&config)
        .args([
            "secret",
            "get",
            "00000000-0000-4000-8000-000000000000",
            "-o",
        ])
        .arg(dir.path().join("out"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        took < timeout + Duration::from_secs(1),
        "took {took:?} with a {timeout:?} timeout: {err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "no URL: {err}");
    assert!(err.contains("timed out after"), "{err}");
    assert!(!dir.path().join("out").exists());
    eprintln!("failed after {took:?} (timeout {timeout:?}): {err}");
}

#[cfg(feature = "vault")]
#[test]
fn vault_that_never_answers_fails_within_the_timeout() {
    let port = silent_server();
    let base = format!(
        "backend = \"vault\"\n[context]\nproject_id = \"p\"\n[vault]\nvault_url = \"http://127.0.0.1:{port}\"\nroot_token_file = \"DIR/token\"\nkv_mountpoint = \"secret\"\nkv_version = 2\n"
    );
    fails_within(
        &format!("{base}timeout = 2\n"),
        Duration::from_secs(2),
        port,
    );
    // The default timeout is 10 s.
    fails_within(&base, Duration::from_secs(10), port);
}

#[cfg(feature = "barbican")]
#[test]
fn barbican_whose_keystone_never_answers_fails_within_the_timeout() {
    let port = silent_server();
    let config = format!(
        "backend = \"barbican\"\n[barbican]\nauth_endpoint = \"http://127.0.0.1:{port}/v3\"\nauth_type = \"password\"\nusername = \"u\"\npassword = \"p\"\nuser_domain_name = \"Default\"\nproject_name = \"p\"\nproject_domain_name = \"Default\"\ntimeout = 2\n"
    );
    fails_within(&config, Duration::from_secs(2), port);
}
