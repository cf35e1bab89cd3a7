//! The fault proxy in front of the real OpenBao dev server: what it forwards
//! comes from the server, each fault changes exactly what it says, and the
//! request log and counters tell what happened.

use keymgr_test_support::env::VaultEnv;
use keymgr_test_support::proxy::{Fault, FaultProxy, Rule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One exchange over a fresh connection: the answer's head and body, or
/// `None` when the connection ended (or was reset) before any byte came.
async fn exchange(proxy: &FaultProxy, path: &str, token: &str) -> Option<(String, Vec<u8>)> {
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: {token}\r\nConnection: close\r\n\r\n",
        proxy.addr()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    Some((head, answer[end + 4..].to_vec()))
}

fn status(head: &str) -> u16 {
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

const HEALTH: &str = "/v1/sys/health";

#[tokio::test]
async fn forwards_the_real_answer_and_injects_each_fault_as_told() {
    let Some(env) = VaultEnv::load() else {
        return;
    };
    let proxy = FaultProxy::start(&env.addr).await.unwrap();
    let token = env.root_token.as_str();
    assert_eq!(proxy.upstream(), env.addr.trim_end_matches('/'));

    // Nothing injected: the server's own answer.
    let (head, body) = exchange(&proxy, HEALTH, token).await.unwrap();
    assert_eq!(status(&head), 200, "{head}");
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["sealed"], false, "{health}");

    // A status, with and without Retry-After, never reaching the server.
    let forwarded = proxy.counters().forwarded;
    proxy.inject(Rule::once(Fault::Status(503)).method("get").path("/sys/"));
    let (head, body) = exchange(&proxy, HEALTH, token).await.unwrap();
    assert_eq!(status(&head), 503);
    assert!(String::from_utf8_lossy(&body).contains("injected fault 503"));
    proxy.inject(Rule::once(Fault::RetryAfter(429, 7)));
    let (head, _) = exchange(&proxy, HEALTH, token).await.unwrap();
    assert_eq!(
        (status(&head), header(&head, "retry-after")),
        (429, Some("7"))
    );
    assert_eq!(
        proxy.counters().forwarded,
        forwarded,
        "faults answered alone"
    );

    // A redirect to the same path on the real server.
    proxy.inject(Rule::once(Fault::Redirect));
    let (head, _) = exchange(&proxy, HEALTH, token).await.unwrap();
    assert_eq!(status(&head), 307);
    let location = format!("{}{HEALTH}", proxy.upstream());
    assert_eq!(header(&head, "location"), Some(location.as_str()));

    // A body of the test's choosing.
    proxy.inject(Rule::once(Fault::Body(200, "not json".into())));
    let (head, body) = exchange(&proxy, HEALTH, token).await.unwrap();
    assert_eq!((status(&head), body.as_slice()), (200, &b"not json"[..]));

    // The real body under the wrong label; half the real body.
    proxy.inject(Rule::once(Fault::WrongContentType));
    let (head, body) = exchange(&proxy, HEALTH, token).await.unwrap();
    assert_eq!(header(&head, "content-type"), Some("text/html"));
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    proxy.inject(Rule::once(Fault::Truncate));
    let (head, body) = exchange(&proxy, HEALTH, token).await.unwrap();
    let declared: usize = header(&head, "content-length").unwrap().parse().unwrap();
    assert!(body.len() < declared, "{} of {declared} bytes", body.len());

    // A reset before forwarding: no answer at all.
    proxy.inject(Rule::once(Fault::ResetBefore));
    assert!(exchange(&proxy, HEALTH, token).await.is_none());

    // Every second matching request, twice: forwarded, injected, forwarded, injected.
    proxy.inject(Rule::once(Fault::Status(500)).every(2, 2));
    let mut got = Vec::new();
    for _ in 0..5 {
        let (head, _) = exchange(&proxy, HEALTH, token).await.unwrap();
        got.push(status(&head));
    }
    assert_eq!(got, [200, 500, 200, 500, 200]);
    assert_eq!(proxy.pending(), 0);

    // The log and counters.
    let c = proxy.counters();
    assert_eq!(c.requests, 13);
    assert_eq!(c.injected["status-500"], 2);
    assert_eq!(c.total_injected(), 9);
    let seen = proxy.seen();
    assert_eq!(seen.len(), 13);
    assert!(seen
        .iter()
        .all(|s| s.method == "GET" && s.path == HEALTH && s.has_header("X-Vault-Token")));
}
