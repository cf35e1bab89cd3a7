//! A fault-injecting HTTP proxy in front of the real OpenBao dev server.
//!
//! It forwards each request to the real server unless a queued fault
//! matches it first. It is for fault injection only: every answer that is
//! not an injected fault comes from the real server.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to do to one matching request.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Forward it, then close the connection without answering (the
    /// client cannot know whether it landed).
    DropAnswer,
    /// Answer this status (with an optional `Retry-After`) without forwarding.
    Status(u16, Option<u64>),
    /// Answer 307 with the same path on the real server.
    Redirect,
    /// Answer this status and raw body (not JSON) without forwarding.
    Body(u16, &'static str),
}

/// A request the proxy saw.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Whether it carried `X-Vault-Token`.
    pub has_token: bool,
}

struct Rule {
    method: String,
    path_contains: String,
    fault: Fault,
    times: usize,
}

/// The proxy.
pub(crate) struct Proxy {
    /// Its base URL.
    pub url: String,
    upstream: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (a base URL).
    pub(crate) async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (r, s, up) = (rules.clone(), seen.clone(), upstream.to_string());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while let Ok((sock, _)) = listener.accept().await {
                let (r, s, up, http) = (r.clone(), s.clone(), up.clone(), http.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, r, s, &up, &http).await;
                });
            }
        });
        Proxy {
            url,
            upstream: upstream.to_string(),
            rules,
            seen,
        }
    }

    /// Injects `fault` into the next `times` requests with this method whose
    /// path contains `path_contains`.
    pub(crate) fn inject(&self, method: &str, path_contains: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            fault,
            times,
        });
    }

    /// The requests seen so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The real server's URL.
    pub(crate) fn upstream(&self) -> &str {
        &self.upstream
    }
}

async fn serve(
    mut sock: TcpStream,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    upstream: &str,
    http: &reqwest::Client,
) -> std::io::Result<()> {
    // Read the head, then Content-Length bytes of body.
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    for l in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let has_token = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("x-vault-token"));
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        has_token,
    });
    let fault = {
        let mut rules = rules.lock().unwrap();
        let hit = rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(&r.path_contains));
        hit.map(|r| {
            r.times -= 1;
            r.fault.clone()
        })
    };
    let reply = |status: u16, extra: &str, body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    };
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let extra = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            let msg = br#"{"errors":["injected fault"]}"#;
            sock.write_all(&reply(code, &extra, msg)).await?;
            return sock.shutdown().await;
        }
        Some(Fault::Body(code, text)) => {
            sock.write_all(&reply(code, "", text.as_bytes())).await?;
            return sock.shutdown().await;
        }
        Some(Fault::Redirect) => {
            let extra = format!("Location: {upstream}{path}\r\n");
            sock.write_all(&reply(307, &extra, b"")).await?;
            return sock.shutdown().await;
        }
        _ => {}
    }
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = http.request(m, format!("{upstream}{path}"));
    for (k, v) in &headers {
        let lk = k.to_ascii_lowercase();
        if lk.starts_with("x-vault-") || lk == "content-type" {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    let resp = req.body(body).send().await;
    if matches!(fault, Some(Fault::DropAnswer)) {
        // The write reached the server; the client never hears of it.
        drop(sock);
        return Ok(());
    }
    let resp = match resp {
        Ok(r) => r,
        Err(_) => return Ok(()),
    };
    let status = resp.status().as_u16();
    let mut extra = String::new();
    for name in ["x-vault-index", "retry-after", "location"] {
        if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
            extra.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    sock.write_all(&reply(status, &extra, &bytes)).await?;
    sock.shutdown().await
}
