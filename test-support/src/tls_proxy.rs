//! A fault-injecting TCP proxy in front of a real TLS server that does not
//! speak HTTP (the PyKMIP server of the keymgr-kmip tests).
//!
//! TLS runs end to end through it (keymgr to PyKMIP); the proxy only reads
//! TLS record headers to know when the client has sent application data
//! (a KMIP request), then acts on the server's answer. Every answer that
//! is not an injected fault comes from the real server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFault {
    /// Forward both ways.
    Pass,
    /// Accept TCP and never answer (not even the TLS handshake).
    Silent,
    /// Forward the request, then close without any of the answer.
    LoseAnswer,
    /// Forward the request, then only the first 7 bytes of the answer's
    /// TLS record, then close (a torn record).
    TornAnswer,
}

/// The proxy; it listens on a loopback port until dropped with the runtime.
pub struct TlsFaultProxy {
    /// The loopback port it listens on.
    pub port: u16,
    mode: Arc<Mutex<TlsFault>>,
    /// Connections open now, and the most open at once.
    open: Arc<(AtomicUsize, AtomicUsize)>,
}

impl TlsFaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> TlsFaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(TlsFault::Pass));
        let m = mode.clone();
        let open = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let o = open.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, m, o) = (upstream.clone(), m.clone(), o.clone());
                tokio::spawn(async move {
                    let now = o.0.fetch_add(1, Ordering::SeqCst) + 1;
                    o.1.fetch_max(now, Ordering::SeqCst);
                    serve(client, upstream, m).await;
                    o.0.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        TlsFaultProxy { port, mode, open }
    }

    /// The most connections that were open at once.
    pub fn max_open(&self) -> usize {
        self.open.1.load(Ordering::SeqCst)
    }

    /// What to do from now on (to new and pooled connections alike).
    pub fn set(&self, mode: TlsFault) {
        *self.mode.lock().unwrap() = mode;
    }
}

/// One connection: `Silent` is decided at accept, the other modes for
/// each answer (so pooled connections are faulted too).
async fn serve(mut client: TcpStream, upstream: String, mode: Arc<Mutex<TlsFault>>) {
    if *mode.lock().unwrap() == TlsFault::Silent {
        let mut sink = [0u8; 1024];
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let sent_request = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = sent_request.clone();
    // Client -> server, watching TLS record headers for application data (23).
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while pending.len() >= 5 {
                let len = u16::from_be_bytes([pending[3], pending[4]]) as usize;
                if pending.len() < 5 + len {
                    break;
                }
                if pending[0] == 23 {
                    flag.store(true, Ordering::SeqCst);
                }
                pending.drain(..5 + len);
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let answering = sent_request.load(Ordering::SeqCst);
        let now = *mode.lock().unwrap();
        match now {
            TlsFault::LoseAnswer if answering => break,
            TlsFault::TornAnswer if answering => {
                let _ = cw.write_all(&buf[..n.min(7)]).await;
                break;
            }
            _ => {
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = cw.shutdown().await;
    up.abort();
}
