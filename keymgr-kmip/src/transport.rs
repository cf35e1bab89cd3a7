//! TLS with a client certificate, TTLV framing, one deadline per exchange,
//! version negotiation and a small pool of idle connections.
//!
//! Reads (Get, Get Attributes, Locate, Discover Versions) may go over an
//! idle pooled connection and are sent once more on a fresh connection if
//! that one turns out dead. Writes (Create, Register, Modify Attribute,
//! Revoke, Destroy) always open a fresh connection and are never repeated:
//! a write whose answer is lost is reported as `Unavailable` (the server
//! may or may not have done it), never sent twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keymgr_core::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use crate::config::KmipConfig;
use crate::errors;
use crate::model::{self, op, tag, Outcome, Version};
use crate::ttlv::{self, Item};

/// The most connections open to the server at once; more concurrent calls
/// wait their turn (within their deadline). Every connection is kept for
/// reuse, so a busy client holds at most this many TLS sessions (PyKMIP,
/// for one, runs a thread per connection).
const MAX_CONNECTIONS: usize = 16;

type Conn = TlsStream<TcpStream>;

/// The connection to one KMIP server.
pub(crate) struct Transport {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    addr: String,
    deadline: Duration,
    pinned: Option<Version>,
    version: OnceCell<Version>,
    idle: Mutex<Vec<Conn>>,
    permits: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("addr", &self.addr)
            .field("deadline", &self.deadline)
            .field("version", &self.version.get())
            .finish()
    }
}

fn read_pem(path: &std::path::Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| Error::config(format!("kmip {what} {}: {e}", path.display())))
}

/// The rustls client configuration: the CA file as the only roots, the
/// client certificate chain and key.
fn tls_config(cfg: &KmipConfig) -> Result<rustls::ClientConfig> {
    let ca = read_pem(&cfg.ca_certs, "ca_certs")?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        let c = c.map_err(|e| Error::config(format!("kmip ca_certs: not PEM: {e}")))?;
        roots
            .add(c)
            .map_err(|e| Error::config(format!("kmip ca_certs: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::config("kmip ca_certs holds no certificate"));
    }
    let cert = read_pem(&cfg.certfile, "certfile")?;
    let chain = CertificateDer::pem_slice_iter(&cert)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config(format!("kmip certfile: not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::config("kmip certfile holds no certificate"));
    }
    let key = read_pem(&cfg.keyfile, "keyfile")?;
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|_| Error::config("kmip keyfile holds no PEM private key"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("kmip TLS: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| Error::config(format!("kmip certfile/keyfile: {e}")))
}

/// Whether an exchange failed before or after the request may have been
/// acted on.
enum Failed {
    /// No connection (TCP or TLS): nothing was sent.
    Connect(String),
    /// The server refused the client certificate during the handshake.
    Refused(String),
    /// The request may have been sent, but no answer came: safe to repeat
    /// a read, not a write.
    Io(String),
    /// The deadline passed.
    Timeout,
    /// An answer came but is not a KMIP response (or is too large).
    Bad(String),
}

/// Whether a TLS handshake failed on an alert the server sends about the
/// client's certificate (unknown CA, wrong key usage, expired, revoked...).
fn refused_our_certificate(e: &std::io::Error) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::AlertReceived(
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired
        ))
    )
}

impl Transport {
    pub(crate) fn new(cfg: &KmipConfig) -> Result<Self> {
        cfg.validate()?;
        let server_name = ServerName::try_from(cfg.host.trim().to_string())
            .map_err(|_| Error::config(format!("kmip host {:?} is not a valid name", cfg.host)))?;
        Ok(Transport {
            connector: TlsConnector::from(Arc::new(tls_config(cfg)?)),
            server_name,
            addr: format!("{}:{}", cfg.host.trim(), cfg.port),
            deadline: cfg.deadline()?,
            pinned: cfg.pinned_version()?,
            version: OnceCell::new(),
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(MAX_CONNECTIONS),
        })
    }

    async fn connect(&self) -> std::result::Result<Conn, Failed> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| Failed::Connect(format!("connect to {}: {e}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                let msg = format!("TLS with {}: {e}", self.addr);
                if refused_our_certificate(&e) {
                    Failed::Refused(msg)
                } else {
                    Failed::Connect(msg)
                }
            })
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_CONNECTIONS {
                idle.push(conn);
            }
        }
    }

    /// Writes `request` and reads one framed answer.
    async fn round_trip(conn: &mut Conn, request: &[u8]) -> std::result::Result<Item, Failed> {
        conn.write_all(request)
            .await
            .map_err(|e| Failed::Io(format!("send: {e}")))?;
        conn.flush()
            .await
            .map_err(|e| Failed::Io(format!("send: {e}")))?;
        let mut head = [0u8; 8];
        conn.read_exact(&mut head)
            .await
            .map_err(|e| Failed::Io(format!("the connection closed before an answer: {e}")))?;
        let total = ttlv::frame_len(&head).unwrap_or(8);
        if total > ttlv::MAX_MESSAGE {
            return Err(Failed::Bad(format!(
                "an answer of {total} bytes is larger than the {} byte limit",
                ttlv::MAX_MESSAGE
            )));
        }
        let mut buf = Zeroizing::new(vec![0u8; total]);
        buf[..8].copy_from_slice(&head);
        conn.read_exact(&mut buf[8..]).await.map_err(|e| {
            Failed::Bad(format!(
                "the connection closed in the middle of an answer: {e}"
            ))
        })?;
        ttlv::decode(&buf).map_err(|e| Failed::Bad(format!("the answer is not TTLV: {e}")))
    }

    /// One exchange within the deadline, on `conn` (or a new connection).
    async fn exchange_once(
        &self,
        conn: Option<Conn>,
        request: &[u8],
    ) -> std::result::Result<(Item, Conn), Failed> {
        let fut = async {
            let mut conn = match conn {
                Some(c) => c,
                None => self.connect().await?,
            };
            let answer = Self::round_trip(&mut conn, request).await?;
            Ok((answer, conn))
        };
        match tokio::time::timeout(self.deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(Failed::Timeout),
        }
    }

    /// Sends one message of `batch` (operation, payload) items with
    /// `version`; one result per item, in order.
    async fn send(
        &self,
        version: Version,
        batch: Vec<(u32, Vec<Item>)>,
        what: &str,
    ) -> Result<Vec<Result<Item>>> {
        let operations: Vec<u32> = batch.iter().map(|(op, _)| *op).collect();
        let request = ttlv::encode(&model::request(version, batch));
        let _permit = tokio::time::timeout(self.deadline, self.permits.acquire())
            .await
            .map_err(|_| errors::timeout(what, self.deadline))?
            .map_err(|_| errors::unavailable(what, "the client is shutting down"))?;
        let read = operations.iter().all(|op| {
            matches!(
                *op,
                op::GET | op::GET_ATTRIBUTES | op::LOCATE | op::DISCOVER_VERSIONS
            )
        });
        let pooled = if read { self.take_idle() } else { None };
        let was_pooled = pooled.is_some();
        let mut result = self.exchange_once(pooled, &request).await;
        if was_pooled && matches!(result, Err(Failed::Io(_) | Failed::Connect(_))) {
            // A dead idle connection: a read is safe to send again.
            tracing::debug!(what, "kmip: idle connection was dead, reconnecting");
            result = self.exchange_once(None, &request).await;
        }
        let (answer, conn) = match result {
            Ok(v) => v,
            Err(Failed::Timeout) => return Err(errors::timeout(what, self.deadline)),
            Err(Failed::Refused(reason)) => {
                return Err(Error::Unauthenticated {
                    what: what.to_string(),
                    reason: format!("the server refused the client certificate: {reason}"),
                })
            }
            Err(Failed::Io(reason) | Failed::Bad(reason)) if !read => {
                return Err(errors::unavailable(
                    what,
                    format!("{reason} (the server may have carried out the request)"),
                ))
            }
            Err(Failed::Connect(reason) | Failed::Io(reason) | Failed::Bad(reason)) => {
                return Err(errors::unavailable(what, reason))
            }
        };
        match model::outcomes(&answer, &operations) {
            Ok(outcomes) => {
                self.put_idle(conn);
                Ok(outcomes
                    .into_iter()
                    .map(|o| match o {
                        Outcome::Success(payload) => Ok(payload),
                        Outcome::Failure { reason, message } => {
                            Err(errors::failure(what, reason, &message))
                        }
                        Outcome::NotDone => Err(Error::Backend {
                            what: what.to_string(),
                            status: 0,
                            message: "not carried out: an earlier item of the batch failed".into(),
                        }),
                    })
                    .collect())
            }
            Err(model::Malformed(why)) => Err(errors::unavailable(
                what,
                format!("the server's answer is not a KMIP response: {why}"),
            )),
        }
    }

    /// The protocol version in use: the pinned one, or the best of
    /// [`model::SUPPORTED`] the server offers (asked once, with Discover
    /// Versions in a KMIP 1.2 message).
    pub(crate) async fn version(&self) -> Result<Version> {
        if let Some(v) = self.pinned {
            return Ok(v);
        }
        self.version
            .get_or_try_init(|| async {
                let what = "KMIP Discover Versions";
                let offered: Vec<Item> = model::SUPPORTED.iter().map(|v| v.item()).collect();
                let payload = self
                    .send(
                        Version::new(1, 2),
                        vec![(op::DISCOVER_VERSIONS, offered)],
                        what,
                    )
                    .await?
                    .remove(0)?;
                let server: Vec<Version> = payload
                    .children_with(tag::PROTOCOL_VERSION)
                    .filter_map(Version::from_item)
                    .collect();
                let chosen = server
                    .iter()
                    .find(|v| model::SUPPORTED.contains(v))
                    .copied()
                    .ok_or_else(|| Error::Unavailable {
                        what: what.into(),
                        reason: format!(
                            "the server offers none of KMIP 1.2-1.4 (it offers {})",
                            server
                                .iter()
                                .map(|v| v.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })?;
                tracing::debug!(version = %chosen, "kmip: negotiated");
                Ok(chosen)
            })
            .await
            .copied()
    }

    /// Sends one operation with the negotiated version.
    pub(crate) async fn call(
        &self,
        operation: u32,
        payload: Vec<Item>,
        what: &str,
    ) -> Result<Item> {
        let v = self.version().await?;
        self.send(v, vec![(operation, payload)], what)
            .await?
            .remove(0)
    }

    /// Sends several operations in one message (one round trip), with the
    /// negotiated version; one result per operation, in order.
    pub(crate) async fn call_batch(
        &self,
        batch: Vec<(u32, Vec<Item>)>,
        what: &str,
    ) -> Result<Vec<Result<Item>>> {
        let v = self.version().await?;
        self.send(v, batch, what).await
    }
}
