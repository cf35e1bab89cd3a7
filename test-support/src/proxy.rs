//! The one fault-injecting HTTP/1.1 proxy of the workspace's tests, on
//! 127.0.0.1, placed between a client and a real server (OpenBao,
//! Keystone, Barbican). It is for fault injection only: every answer that
//! is not an injected fault comes from the real server.
//!
//! Each client request is read whole, then, according to the [`Rule`]s set
//! with [`FaultProxy::inject`], either forwarded unchanged over a fresh
//! upstream connection, or answered with a [`Fault`]: a reset before or after
//! the upstream saw the request, a status (with or without `Retry-After`),
//! a redirect to the real server, a body of the test's choosing, a delay
//! past the client's timeout, a truncated or non-JSON body, or a wrong
//! `Content-Type`. Every connection is closed after one exchange, so clients
//! reconnect for each request. [`FaultProxy::seen`] lists the requests
//! received; [`FaultProxy::counters`] tells how many faults of each kind
//! were injected.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use keymgr_test_support::proxy::{Fault, FaultProxy, Rule};
//!
//! let proxy = FaultProxy::start("http://127.0.0.1:8200").await?;
//! // The next two GETs of a path containing `/v1/secret/` answer 503.
//! proxy.inject(Rule::once(Fault::Status(503)).method("GET").path("/v1/secret/").times(2));
//! let client_url = proxy.url(""); // give this to the client under test
//! # let _ = client_url;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One way to break an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Reset the client connection without forwarding the request.
    ResetBefore,
    /// Forward the request, let the server act on it, then reset the client
    /// connection without an answer (the ambiguous failure).
    ResetAfter,
    /// Answer this status (e.g. 500, 502, 503) without forwarding, with a
    /// JSON body whose message contains `injected fault`.
    Status(u16),
    /// As [`Fault::Status`], with `Retry-After: SECONDS`.
    RetryAfter(u16, u64),
    /// Answer 307 with the same path on the upstream server, without forwarding.
    Redirect,
    /// Answer this status and exactly this body (labelled JSON, whether or
    /// not it is) without forwarding.
    Body(u16, Arc<str>),
    /// Wait this long before doing anything (past the client's timeout), then
    /// drop the connection without forwarding.
    Delay(Duration),
    /// Forward, then send the answer's head and only half its body.
    Truncate,
    /// Forward, then replace the answer's body by an HTML page.
    NotJson,
    /// Forward, then answer with the body unchanged but `Content-Type: text/html`.
    WrongContentType,
}

impl Fault {
    /// A short stable name for counters and messages.
    pub fn name(&self) -> String {
        match self {
            Fault::ResetBefore => "reset-before".into(),
            Fault::ResetAfter => "reset-after".into(),
            Fault::Status(s) => format!("status-{s}"),
            Fault::RetryAfter(s, _) => format!("status-{s}-retry-after"),
            Fault::Redirect => "redirect".into(),
            Fault::Body(s, _) => format!("body-{s}"),
            Fault::Delay(_) => "delay".into(),
            Fault::Truncate => "truncated-body".into(),
            Fault::NotJson => "non-json-body".into(),
            Fault::WrongContentType => "wrong-content-type".into(),
        }
    }

    /// Whether the upstream server sees (and acts on) the request.
    pub fn reaches_server(&self) -> bool {
        matches!(
            self,
            Fault::ResetAfter | Fault::Truncate | Fault::NotJson | Fault::WrongContentType
        )
    }
}

/// When to inject a fault.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The fault.
    pub fault: Fault,
    /// Only requests with this method (e.g. `POST`), if set.
    pub method: Option<String>,
    /// Only requests whose path contains this text, if set.
    pub path_contains: Option<String>,
    /// Inject on every `every`-th matching request (1: each one).
    pub every: u64,
    /// How many more injections this rule may make.
    pub remaining: u64,
    seen: u64,
}

impl Rule {
    /// A rule injecting `fault` once, on the next request.
    pub fn once(fault: Fault) -> Rule {
        Rule {
            fault,
            method: None,
            path_contains: None,
            every: 1,
            remaining: 1,
            seen: 0,
        }
    }

    /// Restricts the rule to one method.
    pub fn method(mut self, m: &str) -> Rule {
        self.method = Some(m.to_ascii_uppercase());
        self
    }

    /// Restricts the rule to paths containing `p`.
    pub fn path(mut self, p: &str) -> Rule {
        self.path_contains = Some(p.to_string());
        self
    }

    /// Injects on every `n`-th matching request, `times` times in all.
    pub fn every(mut self, n: u64, times: u64) -> Rule {
        self.every = n.max(1);
        self.remaining = times;
        self
    }

    /// Injects `times` times in a row on matching requests.
    pub fn times(mut self, times: u64) -> Rule {
        self.remaining = times;
        self
    }
}

/// What the proxy did so far.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Requests received from clients.
    pub requests: u64,
    /// Requests forwarded to the upstream server.
    pub forwarded: u64,
    /// Faults injected, by [`Fault::name`].
    pub injected: BTreeMap<String, u64>,
    /// The requests received, in order.
    pub log: Vec<Seen>,
}

/// A request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its method, upper case.
    pub method: String,
    /// Its path with the query.
    pub path: String,
    /// The names of its headers, lower case (never their values: they may be tokens).
    pub headers: Vec<String>,
}

impl Seen {
    /// Whether the request carried the header `name` (any case).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

impl Counters {
    /// Total faults injected.
    pub fn total_injected(&self) -> u64 {
        self.injected.values().sum()
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    counters: Counters,
}

/// A running fault-injecting proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream`
    /// (`host:port`, or an `http://` URL whose host and port are used).
    pub async fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let upstream = format!("http://{}", authority(upstream));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let upstream_url = upstream.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let (st, up) = (st.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, &up, &st).await;
                });
            }
        });
        Ok(FaultProxy {
            addr,
            upstream: upstream_url,
            state,
            task,
        })
    }

    /// The upstream server's base URL, `http://host:port`.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path` (e.g. `/v3`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Adds a rule (rules are tried in the order added; the first that matches applies).
    pub fn inject(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Removes every rule not yet used up.
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Rules still able to inject (remaining > 0).
    pub fn pending(&self) -> usize {
        let st = self.state.lock().unwrap();
        st.rules.iter().filter(|r| r.remaining > 0).count()
    }

    /// A copy of the counters.
    pub fn counters(&self) -> Counters {
        self.state.lock().unwrap().counters.clone()
    }

    /// The requests received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().counters.log.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn authority(upstream: &str) -> String {
    let s = upstream
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    s.split('/').next().unwrap_or(s).to_string()
}

fn pick(state: &Mutex<State>, seen: Seen) -> Option<Fault> {
    let (method, path) = (seen.method.as_str(), seen.path.as_str());
    let mut st = state.lock().unwrap();
    st.counters.requests += 1;
    st.counters.log.push(seen.clone());
    let mut chosen = None;
    for r in st.rules.iter_mut() {
        if r.remaining == 0 {
            continue;
        }
        if r.method.as_deref().is_some_and(|m| m != method) {
            continue;
        }
        if r.path_contains
            .as_deref()
            .is_some_and(|p| !path.contains(p))
        {
            continue;
        }
        r.seen += 1;
        if r.seen.is_multiple_of(r.every) {
            r.remaining -= 1;
            chosen = Some(r.fault.clone());
        }
        break;
    }
    if let Some(f) = &chosen {
        *st.counters.injected.entry(f.name()).or_default() += 1;
    }
    chosen
}

/// Reads one HTTP message head (up to and including the blank line) and
/// returns (head, rest already read).
async fn read_head(conn: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(pos + 4);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > 1 << 20 {
            return Ok(None);
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The head with `name` removed and `extra` lines appended.
fn rewrite_head(head: &str, drop: &[&str], extra: &[String]) -> String {
    let mut out = String::new();
    for (i, l) in head.split("\r\n").enumerate() {
        if l.is_empty() {
            continue;
        }
        if i > 0 {
            if let Some((k, _)) = l.split_once(':') {
                if drop.iter().any(|d| k.trim().eq_ignore_ascii_case(d)) {
                    continue;
                }
            }
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    for e in extra {
        out.push_str(e);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

async fn reset(conn: TcpStream) {
    // SO_LINGER 0 makes close send a reset; with a zero timeout it never blocks.
    #[allow(deprecated)]
    let _ = conn.set_linger(Some(Duration::ZERO));
    drop(conn);
}

/// The JSON body of an injected status: Vault's `errors` list and
/// Barbican's `code`, `title` and `description`.
fn injected_body(code: u16) -> String {
    format!("{{\"errors\":[\"injected fault {code}\"],\"code\":{code},\"title\":\"Injected\",\"description\":\"fault injected by the test proxy\"}}")
}

/// Answers `code` with the `extra` header lines and `body` (labelled JSON),
/// then closes the connection.
async fn answer(
    mut conn: TcpStream,
    code: u16,
    extra: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for e in extra {
        head.push_str(e);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    conn.shutdown().await
}

async fn serve(
    mut conn: TcpStream,
    upstream_url: &str,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    let upstream = authority(upstream_url);
    let Some((head, mut body)) = read_head(&mut conn).await? else {
        return Ok(());
    };
    let head = String::from_utf8_lossy(&head).into_owned();
    let len: usize = header_value(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while body.len() < len {
        let mut chunk = vec![0u8; (len - body.len()).min(65536)];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let first = head.lines().next().unwrap_or("").to_string();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_ascii_uppercase();
    let path = parts.next().unwrap_or("").to_string();
    let headers = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, _)| k.trim().to_ascii_lowercase())
        .collect();
    let seen = Seen {
        method: method.clone(),
        path: path.clone(),
        headers,
    };
    let fault = pick(state, seen);

    match &fault {
        Some(Fault::ResetBefore) => {
            reset(conn).await;
            return Ok(());
        }
        Some(Fault::Status(code)) => {
            return answer(conn, *code, &[], injected_body(*code).as_bytes()).await;
        }
        Some(Fault::RetryAfter(code, secs)) => {
            let extra = [format!("Retry-After: {secs}")];
            return answer(conn, *code, &extra, injected_body(*code).as_bytes()).await;
        }
        Some(Fault::Redirect) => {
            let extra = [format!("Location: {upstream_url}{path}")];
            return answer(conn, 307, &extra, b"").await;
        }
        Some(Fault::Body(code, text)) => {
            return answer(conn, *code, &[], text.as_bytes()).await;
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(*d).await;
            reset(conn).await;
            return Ok(());
        }
        _ => {}
    }

    // Forward over a fresh connection, asking the server to close after answering.
    let mut up = TcpStream::connect(upstream).await?;
    let fwd_head = rewrite_head(
        &head,
        &["connection", "keep-alive", "proxy-connection"],
        &["Connection: close".into()],
    );
    up.write_all(fwd_head.as_bytes()).await?;
    up.write_all(&body).await?;
    state.lock().unwrap().counters.forwarded += 1;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).await?;

    let (rhead, rbody) = match find(&answer, b"\r\n\r\n") {
        Some(p) => (
            String::from_utf8_lossy(&answer[..p + 4]).into_owned(),
            answer[p + 4..].to_vec(),
        ),
        None => (String::new(), answer.clone()),
    };
    match fault {
        Some(Fault::ResetAfter) => {
            reset(conn).await;
        }
        Some(Fault::Truncate) => {
            // Keep the declared length but send half the body (at least one byte short).
            let cut = rbody.len() / 2;
            conn.write_all(rhead.as_bytes()).await?;
            conn.write_all(&rbody[..cut]).await?;
            conn.flush().await?;
            reset(conn).await;
        }
        Some(Fault::NotJson) => {
            let page = b"<html><body><h1>502 Bad Gateway</h1>upstream said something</body></html>";
            let h = rewrite_head(
                &rhead,
                &[
                    "content-length",
                    "transfer-encoding",
                    "content-type",
                    "connection",
                ],
                &[
                    "Content-Type: application/json".into(),
                    format!("Content-Length: {}", page.len()),
                    "Connection: close".into(),
                ],
            );
            conn.write_all(h.as_bytes()).await?;
            conn.write_all(page).await?;
            conn.shutdown().await?;
        }
        Some(Fault::WrongContentType) => {
            let h = rewrite_head(
                &rhead,
                &["content-type", "connection"],
                &["Content-Type: text/html".into(), "Connection: close".into()],
            );
            conn.write_all(h.as_bytes()).await?;
            conn.write_all(&rbody).await?;
            conn.shutdown().await?;
        }
        _ => {
            let h = if rhead.is_empty() {
                rhead
            } else {
                rewrite_head(&rhead, &["connection"], &["Connection: close".into()])
            };
            conn.write_all(h.as_bytes()).await?;
            conn.write_all(&rbody).await?;
            conn.shutdown().await?;
        }
    }
    Ok(())
}
