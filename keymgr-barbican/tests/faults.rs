//! Fault injection: a scripted stand-in for Keystone and Barbican on
//! loopback answers with the failures a real server gives only by accident
//! (503s, 429s, 401s on a cached token, hangs, slow orders), to check the
//! retry, re-authentication and polling rules. Behaviour against the real
//! servers is tested in `barbican.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keymgr_barbican::{BarbicanConfig, BarbicanKeyManager};
use keymgr_core::{Context, ErrorKind, KeyManager, KeySpec, NewSecret, SecretId, SecretKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    token: Option<String>,
    service_token: Option<String>,
}

enum Answer {
    Reply(u16, Vec<(String, String)>, String),
    Hang,
}

fn reply(status: u16, body: &str) -> Answer {
    Answer::Reply(status, vec![], body.to_string())
}

type Handler = Arc<dyn Fn(&Req, usize) -> Answer + Send + Sync>;

struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    fn count(&self, method: &str, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .count()
    }
    fn tokens(&self, prefix: &str) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .map(|r| r.token.clone())
            .collect()
    }
}

const SID: &str = "7668ed32-2724-4bae-b797-86aa3f929b3b";
const OID: &str = "1258c03d-021d-471d-bf3c-b08b56f164b5";

/// Starts the fake. Keystone's token call and Barbican's version document
/// are answered here; `barbican` answers everything under `/v1`, given the
/// request and how many requests with the same method and path came before.
async fn fake(barbican: impl Fn(&Req, usize) -> Answer + Send + Sync + 'static) -> Fake {
    fake_with(3600.0, barbican).await
}

/// As [`fake`], with tokens that live `lifetime` seconds.
async fn fake_with(
    lifetime: f64,
    barbican: impl Fn(&Req, usize) -> Answer + Send + Sync + 'static,
) -> Fake {
    let issued = time::macros::datetime!(2098-12-31 23:00:00 UTC);
    let expires = issued + time::Duration::seconds_f64(lifetime);
    let fmt = &time::format_description::well_known::Rfc3339;
    let token_body = format!(
        r#"{{"token": {{"expires_at": "{}", "issued_at": "{}",
            "user": {{"id": "u"}}, "project": {{"id": "p", "name": "proj"}}, "catalog": []}}}}"#,
        expires.format(fmt).unwrap(),
        issued.format(fmt).unwrap()
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::<Req>::new()));
    let handler: Handler = Arc::new(barbican);
    let (seen2, url2) = (seen.clone(), url.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (seen, handler, url) = (seen2.clone(), handler.clone(), url2.clone());
            let token_body = token_body.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.lines();
                let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
                let mut token = None;
                let mut service_token = None;
                let mut len = 0usize;
                for l in lines {
                    if let Some((k, v)) = l.split_once(':') {
                        match k.trim().to_ascii_lowercase().as_str() {
                            "x-auth-token" => token = Some(v.trim().to_string()),
                            "x-service-token" => service_token = Some(v.trim().to_string()),
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req = Req {
                    method: first.first().unwrap_or(&"").to_string(),
                    path: first.get(1).unwrap_or(&"").to_string(),
                    token,
                    service_token,
                };
                let before = {
                    let mut s = seen.lock().unwrap();
                    let before = s
                        .iter()
                        .filter(|r| r.method == req.method && r.path == req.path)
                        .count();
                    s.push(req.clone());
                    before
                };
                let answer = if req.path.starts_with("/v3/auth/tokens") {
                    let n = seen
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|r| r.path.starts_with("/v3/auth"))
                        .count();
                    Answer::Reply(
                        201,
                        vec![("X-Subject-Token".into(), format!("tok-{n}"))],
                        token_body,
                    )
                } else if req.path == "/" {
                    reply(
                        300,
                        r#"{"versions": [{"id": "v1", "min_version": "1.0", "max_version": "1.2"}]}"#,
                    )
                } else {
                    handler(&req, before)
                };
                match answer {
                    Answer::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                    Answer::Reply(status, headers, body) => {
                        let body = body.replace("{URL}", &url);
                        let mut out = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                            body.len()
                        );
                        for (k, v) in headers {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        out.push_str(&body);
                        let _ = sock.write_all(out.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    }
                }
            });
        }
    });
    Fake { url, seen }
}

fn km(fake: &Fake, retries: u32, timeout: f64) -> BarbicanKeyManager {
    let mut cfg = BarbicanConfig::password(&fake.url, "u", "pw", "proj", "Default");
    cfg.barbican_endpoint = Some(fake.url.clone());
    cfg.http_retries = retries;
    cfg.http_retry_delay = 0.01;
    cfg.timeout = timeout;
    cfg.retry_delay = 0.2;
    cfg.number_of_retries = 10;
    BarbicanKeyManager::new(cfg).unwrap()
}

fn secret_json() -> String {
    format!(
        r#"{{"secret_ref": "{{URL}}/v1/secrets/{SID}", "name": "n", "secret_type": "opaque",
            "content_types": {{"default": "application/octet-stream"}}, "consumers": []}}"#
    )
}

fn ctx() -> Context {
    Context::new("p", "u")
}

#[tokio::test]
async fn idempotent_reads_are_retried_through_5xx_and_429() {
    let f = fake(|req, n| match (req.method.as_str(), n) {
        ("GET", 0) => reply(503, r#"{"code": 503, "title": "x", "description": "busy"}"#),
        ("GET", 1) => Answer::Reply(429, vec![("Retry-After".into(), "0".into())], "{}".into()),
        _ => reply(200, &secret_json()),
    })
    .await;
    let id: SecretId = SID.parse().unwrap();
    let m = km(&f, 3, 5.0).metadata(&ctx(), &id).await.unwrap();
    assert_eq!(m.id, id);
    assert_eq!(f.count("GET", "/v1/secrets/"), 3);
    // One token for all of it.
    assert_eq!(f.count("POST", "/v3/auth/tokens"), 1);
}

#[tokio::test]
async fn retries_stop_at_the_limit_and_report_the_status() {
    let f = fake(|_, _| {
        reply(
            503,
            r#"{"code": 503, "title": "x", "description": "down for maintenance"}"#,
        )
    })
    .await;
    let err = km(&f, 2, 5.0)
        .metadata(&ctx(), &SID.parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("down for maintenance"), "{err}");
    assert_eq!(f.count("GET", "/v1/secrets/"), 3);
}

#[tokio::test]
async fn a_store_is_never_repeated_after_it_was_sent() {
    let f = fake(|_, _| reply(500, r#"{"code": 500, "title": "x", "description": "oops"}"#)).await;
    let err = km(&f, 5, 5.0)
        .store(&ctx(), NewSecret::new(SecretKind::Opaque, vec![1u8]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.is_retryable());
    assert_eq!(f.count("POST", "/v1/secrets"), 1, "POST retried blindly");
    let err = km(&f, 5, 5.0)
        .create_key(&ctx(), &KeySpec::aes(256))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        f.count("POST", "/v1/orders"),
        1,
        "order POST retried blindly"
    );
}

#[tokio::test]
async fn a_hung_server_times_out_and_only_reads_are_retried() {
    let f = fake(|_, _| Answer::Hang).await;
    let m = km(&f, 1, 0.3);
    let t0 = std::time::Instant::now();
    let err = m.metadata(&ctx(), &SID.parse().unwrap()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(f.count("GET", "/v1/secrets/"), 2);
    let err = m
        .store(&ctx(), NewSecret::new(SecretKind::Opaque, vec![1u8]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(f.count("POST", "/v1/secrets"), 1);
}

#[tokio::test]
async fn a_401_renews_the_token_once() {
    // The first token is refused (revoked behind our back), the next works.
    let f = fake(|req, _| {
        if req.token.as_deref() == Some("tok-1") {
            reply(401, r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#)
        } else {
            reply(200, &secret_json())
        }
    })
    .await;
    let m = km(&f, 0, 5.0);
    m.metadata(&ctx(), &SID.parse().unwrap()).await.unwrap();
    assert_eq!(
        f.tokens("/v1/secrets/"),
        vec![Some("tok-1".into()), Some("tok-2".into())]
    );
    // The renewed token is kept.
    m.metadata(&ctx(), &SID.parse().unwrap()).await.unwrap();
    assert_eq!(f.count("POST", "/v3/auth/tokens"), 2);

    // Always 401: one renewal, then Unauthenticated with the reason.
    let f = fake(|_, _| reply(401, r#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#)).await;
    let err = km(&f, 0, 5.0)
        .metadata(&ctx(), &SID.parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(err.to_string().contains("requires authentication"));
    assert_eq!(f.count("GET", "/v1/secrets/"), 2);

    // A user's token cannot be renewed here: no second try.
    let f = fake(|_, _| reply(401, "{}")).await;
    let err = km(&f, 0, 5.0)
        .metadata(&ctx().with_user_token("users-token"), &SID.parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert_eq!(f.tokens("/v1/"), vec![Some("users-token".into())]);
    assert_eq!(f.count("POST", "/v3/auth/tokens"), 0, "no own auth needed");
}

#[tokio::test]
async fn key_orders_are_polled_then_deleted() {
    let f = fake(|req, n| match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/orders") => reply(
            202,
            &format!(r#"{{"order_ref": "{{URL}}/v1/orders/{OID}"}}"#),
        ),
        ("GET", p) if p.starts_with("/v1/orders/") && n < 3 => {
            reply(200, r#"{"status": "PENDING"}"#)
        }
        ("GET", p) if p.starts_with("/v1/orders/") => reply(
            200,
            &format!(r#"{{"status": "ACTIVE", "secret_ref": "{{URL}}/v1/secrets/{SID}"}}"#),
        ),
        ("DELETE", _) => reply(204, ""),
        _ => reply(404, "{}"),
    })
    .await;
    let t0 = std::time::Instant::now();
    let id = km(&f, 0, 5.0)
        .create_key(&ctx(), &KeySpec::aes(512))
        .await
        .unwrap();
    assert_eq!(id, SID.parse().unwrap());
    assert_eq!(f.count("GET", "/v1/orders/"), 4);
    assert_eq!(
        f.count("DELETE", "/v1/orders/"),
        1,
        "finished order deleted"
    );
    // Quick first checks: 20 + 40 + 80 ms of waiting, not seconds.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    // An order that fails carries Barbican's reason and status.
    let f = fake(|req, _| match req.method.as_str() {
        "POST" => reply(202, &format!(r#"{{"order_ref": "{{URL}}/v1/orders/{OID}"}}"#)),
        "GET" => reply(
            200,
            r#"{"status": "ERROR", "error_status_code": "400", "error_reason": "Secret generation type not supported"}"#,
        ),
        _ => reply(204, ""),
    })
    .await;
    let err = km(&f, 0, 5.0)
        .create_key(&ctx(), &KeySpec::aes(128))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not supported"), "{err}");

    // An order that never finishes: Timeout after number_of_retries * retry_delay.
    let f = fake(|req, _| match req.method.as_str() {
        "POST" => reply(
            202,
            &format!(r#"{{"order_ref": "{{URL}}/v1/orders/{OID}"}}"#),
        ),
        _ => reply(200, r#"{"status": "PENDING"}"#),
    })
    .await;
    let mut cfg = BarbicanConfig::password(&f.url, "u", "pw", "proj", "Default");
    cfg.barbican_endpoint = Some(f.url.clone());
    cfg.retry_delay = 0.1;
    cfg.number_of_retries = 5;
    let t0 = std::time::Instant::now();
    let err = BarbicanKeyManager::new(cfg)
        .unwrap()
        .create_key(&ctx(), &KeySpec::aes(128))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains(OID), "{err}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_retried_delete_that_finds_nothing_succeeded() {
    let f = fake(|req, n| match (req.method.as_str(), n) {
        ("DELETE", 0) => reply(503, "{}"),
        ("DELETE", _) => reply(
            404,
            r#"{"code": 404, "title": "Not Found", "description": "Secret not found."}"#,
        ),
        _ => reply(200, r#"{"consumers": []}"#),
    })
    .await;
    let m = km(&f, 2, 5.0);
    m.delete(&ctx(), &SID.parse().unwrap(), false)
        .await
        .unwrap();
    assert_eq!(f.count("DELETE", "/v1/secrets/"), 2);
    // Without an uncertain first attempt, 404 is NotFound.
    let f = fake(|_, _| {
        reply(
            404,
            r#"{"code": 404, "title": "Not Found", "description": "Secret not found."}"#,
        )
    })
    .await;
    let err = km(&f, 2, 5.0)
        .delete(&ctx(), &SID.parse().unwrap(), false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn another_project_without_a_token_is_refused_before_sending() {
    let f = fake(|_, _| reply(200, &secret_json())).await;
    let err = km(&f, 0, 5.0)
        .metadata(&Context::new("other", "u"), &SID.parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert_eq!(f.count("GET", "/v1/"), 0);
    // By id, by name, or empty: all the authenticated project.
    for p in ["p", "proj", ""] {
        km(&f, 0, 5.0)
            .metadata(&Context::new(p, "u"), &SID.parse().unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn tokens_are_reused_until_shortly_before_they_expire() {
    // A token living 2 s is used for 1.5 s (a quarter of its life kept as margin).
    let f = fake_with(2.0, |_, _| reply(200, &secret_json())).await;
    let m = km(&f, 0, 5.0);
    let id: SecretId = SID.parse().unwrap();
    for _ in 0..3 {
        m.metadata(&ctx(), &id).await.unwrap();
    }
    assert_eq!(f.count("POST", "/v3/auth/tokens"), 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    m.metadata(&ctx(), &id).await.unwrap();
    assert_eq!(
        f.count("POST", "/v3/auth/tokens"),
        2,
        "an expiring token was reused"
    );
    assert_eq!(f.tokens("/v1/").last().unwrap().as_deref(), Some("tok-2"));

    // Concurrent first calls share one authentication.
    let f = fake(|_, _| reply(200, &secret_json())).await;
    let m = km(&f, 0, 5.0);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.metadata(&ctx(), &SID.parse().unwrap()).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(f.count("POST", "/v3/auth/tokens"), 1);
}

#[tokio::test]
async fn user_calls_carry_the_service_token_and_renew_it_on_401() {
    // The first service token is refused once; the user's token is fine.
    let f = fake(|req, _| {
        if req.service_token.as_deref() == Some("tok-1") {
            reply(401, "{}")
        } else {
            reply(200, &secret_json())
        }
    })
    .await;
    let mut cfg = BarbicanConfig::password(&f.url, "u", "pw", "proj", "Default");
    cfg.barbican_endpoint = Some(f.url.clone());
    cfg.service_username = Some("nova".into());
    cfg.service_password = Some("svc-pw".to_string().into());
    cfg.service_user_domain_name = Some("Default".into());
    let m = BarbicanKeyManager::new(cfg).unwrap();
    let user = Context::new("any-project", "alice").with_user_token("alice-token");
    m.metadata(&user, &SID.parse().unwrap()).await.unwrap();
    let seen: Vec<_> = f
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .map(|r| (r.token.clone(), r.service_token.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some("alice-token".into()), Some("tok-1".into())),
            (Some("alice-token".into()), Some("tok-2".into())),
        ]
    );
}

#[tokio::test]
async fn an_oversized_answer_is_an_error_not_a_cut_payload() {
    let f = fake(|req, _| {
        if req.path.ends_with("/payload") {
            reply(200, &"k".repeat((16 << 20) + 10))
        } else {
            reply(200, &secret_json())
        }
    })
    .await;
    let err = km(&f, 0, 30.0)
        .get(&ctx(), &SID.parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.to_string().contains("longer than"), "{err}");
}
