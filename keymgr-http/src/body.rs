//! A size-capped answer body whose buffers are zeroized: answers carry key
//! material, and a misbehaving peer must not make the client hold
//! unbounded memory.

use zeroize::{Zeroize, Zeroizing};

/// The default cap on an answer body: 16 MiB, far above any secret
/// either backend stores; it only bounds memory on a misbehaving peer.
pub const DEFAULT_BODY_LIMIT: usize = 16 << 20;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The body is longer than the cap; what had arrived was wiped.
    TooLong {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The connection failed while the body was read.
    Transport(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLong { limit } => write!(f, "the answer is longer than {limit} bytes"),
            BodyError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// A body being received: grows without leaving copies behind, and is
/// wiped the moment it goes over its cap.
pub struct CappedBody {
    buf: Zeroizing<Vec<u8>>,
    limit: usize,
}

impl CappedBody {
    /// An empty body of at most `limit` bytes, with room for `expected`
    /// (a `Content-Length`, itself capped).
    pub fn new(limit: usize, expected: u64) -> Self {
        let room = usize::try_from(expected).unwrap_or(limit).min(limit);
        CappedBody {
            buf: Zeroizing::new(Vec::with_capacity(room)),
            limit,
        }
    }

    /// Appends `chunk`; over the cap, every byte received so far is wiped
    /// and [`BodyError::TooLong`] returned (never a cut body: a cut payload
    /// would be a wrong key). When the buffer must grow its bytes move to a
    /// new one and the old one is wiped as it drops
    /// (`Vec::extend_from_slice` would free it with the secret still in it).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        let need = self.buf.len().saturating_add(chunk.len());
        if need > self.limit {
            self.buf.as_mut_slice().zeroize();
            return Err(BodyError::TooLong { limit: self.limit });
        }
        if need > self.buf.capacity() {
            let room = need.max(2 * self.buf.capacity()).min(self.limit);
            let mut bigger = Zeroizing::new(Vec::with_capacity(room));
            bigger.extend_from_slice(&self.buf);
            self.buf = bigger;
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The bytes received so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The whole body.
    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.buf
    }
}

/// Reads the whole body of `resp`, at most `limit` bytes, into a buffer
/// zeroized on drop. Longer bodies are [`BodyError::TooLong`], with what
/// had arrived wiped.
pub async fn read_capped(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, BodyError> {
    let mut body = CappedBody::new(limit, resp.content_length().unwrap_or(0));
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        body.push(&chunk)?;
    }
    Ok(body.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn growth_keeps_every_byte() {
        let mut body = CappedBody::new(1 << 20, 3);
        let mut expect = Vec::new();
        for i in 0..40u8 {
            let chunk: Vec<u8> = (0..i).map(|j| i ^ j).collect();
            body.push(&chunk).unwrap();
            expect.extend_from_slice(&chunk);
            assert_eq!(body.as_bytes(), &expect[..], "after chunk {i}");
        }
    }

    #[test]
    fn going_over_the_cap_is_a_typed_error_and_wipes_what_arrived() {
        let mut body = CappedBody::new(8, 8);
        body.push(b"secret").unwrap();
        let e = body.push(b"key").unwrap_err();
        assert!(matches!(e, BodyError::TooLong { limit: 8 }), "{e:?}");
        assert!(e.to_string().contains("longer than 8 bytes"));
        assert_eq!(body.as_bytes(), &[0u8; 6], "the partial body is wiped");
        assert_eq!(CappedBody::new(8, u64::MAX).buf.capacity(), 8);
    }

    /// A one-answer HTTP server whose body is `len` bytes of `b'k'`.
    async fn serve(len: usize) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).await;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&vec![b'k'; len]).await;
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_real_answer_is_read_up_to_the_cap() {
        let url = serve(100).await;
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(&read_capped(resp, 100).await.unwrap()[..], &[b'k'; 100]);
        let url = serve(101).await;
        let resp = reqwest::get(&url).await.unwrap();
        let e = read_capped(resp, 100).await.unwrap_err();
        assert!(matches!(e, BodyError::TooLong { limit: 100 }), "{e:?}");
    }
}
