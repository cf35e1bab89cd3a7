//! TLS: a server certificate from a private CA is trusted only through
//! `verify_ssl_path`, or with `verify_ssl = false`. The server is Python's
//! `ssl` module serving Barbican's version document (what the client
//! fetches first, without credentials); certificates come from `openssl`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use keymgr_barbican::{BarbicanConfig, BarbicanKeyManager};
use keymgr_core::ErrorKind;

const SERVER: &str = r#"
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"versions": [{"id": "v1", "min_version": "1.0", "max_version": "1.2"}]}).encode()
        self.send_response(300)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip(why: &str) {
    if keymgr_test_support::testenv::tools_required() {
        panic!("{why}, and KEYMGR_REQUIRE_TOOLS=1");
    }
    eprintln!("skipping TLS test: {why}");
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn a_private_ca_is_trusted_only_when_configured() {
    let python = std::env::var("KEYMGR_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("srv.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ok = openssl(
        d,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=keymgr test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    ) && openssl(
        d,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    ) && openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "1",
            "-extfile",
            "srv.ext",
        ],
    );
    if !ok {
        return skip("openssl could not make test certificates (is openssl installed?)");
    }
    let child = match Command::new(&python)
        .arg("-c")
        .arg(SERVER)
        .arg(d.join("srv.pem"))
        .arg(d.join("srv.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return skip(&format!("cannot run {python}: {e}")),
    };
    let mut child = Kill(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("server port");
    let url = format!("https://127.0.0.1:{port}");

    let cfg = |ca: Option<&Path>, verify: bool| {
        let mut c = BarbicanConfig::password("http://127.0.0.1:9/v3", "u", "p", "p", "Default");
        c.barbican_endpoint = Some(url.clone());
        c.verify_ssl_path = ca.map(Path::to_path_buf);
        c.verify_ssl = verify;
        c.http_retries = 0;
        c.timeout = 10.0;
        BarbicanKeyManager::new(c).unwrap()
    };

    let err = cfg(None, true).microversion().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    assert_eq!(
        cfg(Some(&d.join("ca.pem")), true)
            .microversion()
            .await
            .unwrap(),
        "1.2"
    );
    assert_eq!(cfg(None, false).microversion().await.unwrap(), "1.2");

    // A file that is not PEM certificates is a configuration error.
    let mut c = BarbicanConfig::password("http://k/v3", "u", "p", "p", "Default");
    c.verify_ssl_path = Some(d.join("srv.ext"));
    assert_eq!(
        BarbicanKeyManager::new(c).unwrap_err().kind(),
        ErrorKind::Config
    );
}
