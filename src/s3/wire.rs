//! The direct sender's HTTP/1.1: one request at a time on a connection taken from a pool, written in
//! one piece, and its answer read into the connection's own buffer and decoded by `answer`.
//!
//! Why not hyper's client: a backfill keeps thousands of small requests in flight, one connection
//! each, and hyper's client gives every connection a task of its own, an 8 KiB header buffer, an
//! 8 KiB read buffer and a dispatch channel of 32 slots (~8 KiB): ~30 KiB a connection, 120 MiB at
//! 4,096 in flight, and two task wake-ups per request between the caller and the connection's task.
//! Here a connection is its socket and a buffer the size of the answers it has read (under 1 KiB for
//! a copy's), and the caller's task does the exchange itself.
//!
//! What it guarantees: no input from the network can panic it (`answer` is proptested and linted
//! against unchecked arithmetic and indexing); a connection goes back to the pool only after an
//! answer that ended by its own framing with nothing unread after it, and only for as long as the
//! server keeps it open (`Keep-Alive: timeout=`, at most `IDLE`); the pool holds at most `MAX_IDLE`
//! connections an origin; a failure says whether the request can have reached the server
//! (`Failure`), by where it happened, never by its message.
//!
//! What it does not do, because the direct sender never needs it: request bodies (every request it
//! sends is a PUT or DELETE without one: `Request` cannot carry one), pipelining, upgrades, HTTP/2
//! (S3 has none). Proxies: `proxy` decides and tunnels; here a forwarded request names its whole URL.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

pub(super) use super::answer::Answer;
use super::answer::{Decoder, Malformed};
use super::aws::error_chain;
use super::net::CONNECT_TIMEOUT;
pub(super) use super::net::Origin;
use super::proxy::Proxy;

/// Connections idle this long are closed rather than reused: S3 closes them after about 20 s, and a
/// request written to a connection the server is closing may or may not have been carried out.
const IDLE: Duration = Duration::from_secs(15);
/// A server's `Keep-Alive: timeout=` is trusted less this margin: a request sent just as the server
/// gives up on the connection may or may not be carried out.
const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);
/// Idle connections kept an origin; more are closed. Above the concurrency a run uses, so a run
/// never reconnects because of it, and a bound whatever the caller does.
const MAX_IDLE: usize = 8192;
/// A connection's buffer is given back after an answer larger than this.
const KEEP_BUFFER: usize = 16 * 1024;

/// A request as it goes on the wire: its head (request line, headers, empty line) and no body.
pub(super) struct Request {
    head: Vec<u8>,
    /// A HEAD: its answer has no body, whatever its headers say.
    head_only: bool,
}

impl Request {
    /// The request as it goes on the wire; `proxy`: the proxy it goes through, if any. An https
    /// request goes through its tunnel as it is; an http one is forwarded, so it names its whole URL
    /// (absolute form) and carries the proxy's credentials.
    pub fn of(
        request: &hyper::Request<http_body_util::Empty<Bytes>>,
        proxy: Option<&Proxy>,
    ) -> Request {
        let forwarded = proxy.filter(|_| request.uri().scheme_str() == Some("http"));
        let absolute;
        let target = match forwarded {
            Some(_) => {
                absolute = request.uri().to_string();
                absolute.as_str()
            }
            None => request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/"),
        };
        let mut head = Vec::with_capacity(512 + target.len());
        head.extend_from_slice(request.method().as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in request.headers() {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        if let Some(authorization) = forwarded.and_then(|proxy| proxy.authorization.as_ref()) {
            head.extend_from_slice(b"proxy-authorization: ");
            head.extend_from_slice(authorization.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        Request {
            head,
            head_only: request.method() == hyper::Method::HEAD,
        }
    }
}

/// Why an exchange failed, by where it failed: whether the request can have reached the server.
#[derive(Debug)]
pub(super) enum Failure {
    /// No connection could be made (name, TCP, the connect timeout): nothing was sent.
    Connect(io::Error),
    /// The TLS handshake failed: nothing was sent. `certificate`: the server's certificate was
    /// refused, which sending again will not change.
    Tls { error: io::Error, certificate: bool },
    /// The request could not be written whole: no server acts on part of a request head.
    NotSent(io::Error),
    /// The request was written and no whole answer came back (cut off, garbled, malformed): it may
    /// have been carried out.
    Unanswered(io::Error),
}

impl Failure {
    /// Whether the server can have carried the request out.
    pub fn maybe_sent(&self) -> bool {
        matches!(self, Failure::Unanswered(_))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // With its causes: rustls's reason for refusing a certificate is one.
            Failure::Connect(error) | Failure::Tls { error, .. } => {
                write!(f, "cannot connect: {}", error_chain(error))
            }
            Failure::NotSent(error) => write!(f, "cannot send the request: {}", error_chain(error)),
            Failure::Unanswered(error) => write!(f, "{}", error_chain(error)),
        }
    }
}

/// The connections of one sender, idle ones pooled by origin.
pub(super) struct Wire {
    tls: tokio_rustls::TlsConnector,
    idle: Mutex<HashMap<Origin, Vec<Connection>>>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").finish_non_exhaustive()
    }
}

impl Wire {
    pub fn new(mut tls: rustls::ClientConfig) -> Wire {
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Wire {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `request` to `origin` (through `proxy`, if any) and reads the answer.
    pub async fn exchange(
        &self,
        origin: &Origin,
        proxy: Option<&Proxy>,
        request: &Request,
    ) -> Result<Answer, Failure> {
        let mut connection = match self.take_idle(origin) {
            Some(connection) => connection,
            // Boxed: connecting (DNS, TCP, TLS) is rare and its future large; every request in flight
            // would otherwise carry its room.
            None => Box::pin(self.connect(origin, proxy)).await?,
        };
        let answer = connection.exchange(request).await?;
        if connection.reusable {
            connection.idle_since = Instant::now();
            if connection.buffer.capacity() > KEEP_BUFFER {
                connection.buffer = BytesMut::new();
            }
            let mut idle = self.idle.lock().expect("pool lock");
            // The origin is cloned for its first connection only, not for every answer.
            let connections = match idle.get_mut(origin) {
                Some(connections) => connections,
                None => idle.entry(origin.clone()).or_default(),
            };
            // Oldest first: those idle past IDLE (the server is closing them) are let go, found by a
            // binary search (a scan of a thousand idle connections per answer cost 10% of the CPU of
            // a copy). One a server gave less time (Keep-Alive: timeout=) is let go when taken.
            let now = Instant::now();
            let stale = connections
                .partition_point(|c| now.saturating_duration_since(c.idle_since) >= IDLE);
            connections.drain(..stale);
            if connections.len() < MAX_IDLE {
                connections.push(connection);
            }
        }
        Ok(answer)
    }

    /// An idle connection to `origin` that is still open, the most recently used first (the least
    /// likely to be closing); stale ones are dropped.
    fn take_idle(&self, origin: &Origin) -> Option<Connection> {
        let mut idle = self.idle.lock().expect("pool lock");
        let connections = idle.get_mut(origin)?;
        while let Some(mut connection) = connections.pop() {
            if !connection.stale() && connection.is_open() {
                return Some(connection);
            }
        }
        None
    }

    /// A connection to `origin`: directly, through `proxy`'s CONNECT tunnel (https), or to `proxy`
    /// itself (http, forwarded). Each step within the connect timeout.
    async fn connect(&self, origin: &Origin, proxy: Option<&Proxy>) -> Result<Connection, Failure> {
        let tcp = super::proxy::connect(origin, proxy)
            .await
            .map_err(Failure::Connect)?;
        let stream = if origin.https {
            let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(|e| Failure::Connect(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
            let handshake = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(name, tcp));
            let tls = handshake
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no TLS handshake within {} s", CONNECT_TIMEOUT.as_secs()),
                    ))
                })
                .map_err(|error| {
                    let certificate = error
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                        .is_some_and(|inner| matches!(inner, rustls::Error::InvalidCertificate(_)));
                    Failure::Tls { error, certificate }
                })?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        Ok(Connection {
            stream,
            buffer: BytesMut::new(),
            reusable: true,
            idle_since: Instant::now(),
            idle_limit: IDLE,
        })
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

struct Connection {
    stream: Stream,
    /// What has been read and not yet decoded.
    buffer: BytesMut,
    /// False once the server said it closes the connection, an answer's end was its close, or
    /// bytes came that belong to no answer.
    reusable: bool,
    idle_since: Instant,
    /// How long it may stay idle and still be used: `IDLE`, or less if the server said so.
    idle_limit: Duration,
}

impl Connection {
    fn stale(&self) -> bool {
        self.idle_since.elapsed() >= self.idle_limit
    }

    /// Whether an idle connection can carry a request: the server has not closed it (nor sent
    /// anything, which an idle HTTP/1.1 connection never receives but a timeout's 408 or a close).
    fn is_open(&mut self) -> bool {
        use futures::FutureExt;
        let mut byte = [0u8; 1];
        // A read that would wait means nothing came: open.
        self.stream.read(&mut byte).now_or_never().is_none()
    }

    async fn exchange(&mut self, request: &Request) -> Result<Answer, Failure> {
        let written = async {
            self.stream.write_all(&request.head).await?;
            self.stream.flush().await
        };
        if let Err(error) = written.await {
            self.reusable = false;
            return Err(Failure::NotSent(error));
        }
        self.buffer.clear();
        let mut decoder = Decoder::new(request.head_only);
        let mut closed = false;
        loop {
            match decoder.decode(&mut self.buffer, closed) {
                Ok(Some(decoded)) => {
                    self.reusable &= decoded.reusable;
                    if let Some(timeout) = decoded.keep_alive {
                        self.idle_limit = timeout.saturating_sub(KEEP_ALIVE_MARGIN).min(IDLE);
                        self.reusable &= !self.idle_limit.is_zero();
                    }
                    return Ok(decoded.answer);
                }
                Ok(None) if closed => {
                    return Err(Failure::Unanswered(malformed_error(
                        Malformed::ClosedInBody,
                    )));
                }
                Ok(None) => {}
                Err(malformed) => {
                    self.reusable = false;
                    return Err(Failure::Unanswered(malformed_error(malformed)));
                }
            }
            if self.buffer.capacity() - self.buffer.len() < 512 {
                self.buffer.reserve(self.buffer.len().max(1024));
            }
            match self.stream.read_buf(&mut self.buffer).await {
                Ok(0) => {
                    self.reusable = false;
                    closed = true;
                }
                Ok(_) => {}
                Err(error) => {
                    self.reusable = false;
                    return Err(Failure::Unanswered(error));
                }
            }
        }
    }
}

fn malformed_error(malformed: Malformed) -> io::Error {
    let kind = match malformed {
        Malformed::ClosedBeforeAnswer | Malformed::ClosedInHead | Malformed::ClosedInBody => {
            io::ErrorKind::UnexpectedEof
        }
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server on 127.0.0.1 that answers each connection's requests with `answers` in turn (one per
    /// request, each written in pieces of `piece` bytes), then closes it if `close_after`. Counts
    /// connections.
    async fn server(
        answers: Vec<Vec<u8>>,
        piece: usize,
        close_after: bool,
    ) -> (Origin, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answers = answers.clone();
                tokio::spawn(async move {
                    for answer in answers {
                        // Reads one request head.
                        let mut request = Vec::new();
                        let mut byte = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut byte).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&byte[..n]),
                            }
                        }
                        for part in answer.chunks(piece) {
                            socket.write_all(part).await.unwrap();
                            socket.flush().await.unwrap();
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    if !close_after {
                        // Keeps the connection open until the client goes.
                        let _ = socket.read(&mut [0u8; 16]).await;
                    }
                });
            }
        });
        let origin = Origin {
            https: false,
            host: "127.0.0.1".into(),
            port,
        };
        (origin, connections)
    }

    fn wire() -> Wire {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Wire::new(tls)
    }

    fn request() -> Request {
        Request {
            head: b"PUT /b/k HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".to_vec(),
            head_only: false,
        }
    }

    #[tokio::test]
    async fn answers_by_length_by_chunks_and_after_an_interim_answer_are_read_whole() {
        let answers = vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-amz-version-id: v1\r\n\r\nhello".to_vec(),
            // S3 answers a long copy with whitespace chunks while it works, then the XML.
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n \r\n2\r\n  \r\n6;x=y\r\n<done>\r\n0\r\nx-trailer: 1\r\n\r\n".to_vec(),
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nx-amz-delete-marker: true\r\n\r\n".to_vec(),
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 7\r\n\r\n<Error>".to_vec(),
        ];
        // Whole, and in pieces of 1 and 3 bytes (heads and bodies split across reads).
        for piece in [4096, 1, 3] {
            let (origin, connections) = server(answers.clone(), piece, false).await;
            let wire = wire();
            let first = wire.exchange(&origin, None, &request()).await.unwrap();
            assert_eq!(first.status, 200);
            assert_eq!(&first.body[..], b"hello");
            assert_eq!(first.headers["x-amz-version-id"], "v1");
            let second = wire.exchange(&origin, None, &request()).await.unwrap();
            assert_eq!(&second.body[..], b"   <done>");
            let third = wire.exchange(&origin, None, &request()).await.unwrap();
            assert_eq!(third.status, 204);
            assert!(third.body.is_empty());
            let fourth = wire.exchange(&origin, None, &request()).await.unwrap();
            assert_eq!((fourth.status, &fourth.body[..]), (404, &b"<Error>"[..]));
            // One connection carried all four.
            assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_used_again() {
        // The server answers one request a connection and closes it (without saying so): the next
        // request goes on a new connection instead of failing on the closed one.
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
        let (origin, connections) = server(vec![answer], 4096, true).await;
        let wire = wire();
        for _ in 0..3 {
            let answered = wire.exchange(&origin, None, &request()).await.unwrap();
            assert_eq!(&answered.body[..], b"ok");
            // Gives the server's close time to arrive.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn connection_close_and_an_answer_ended_by_its_close_are_not_pooled() {
        let answers = vec![
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            b"HTTP/1.0 200 OK\r\n\r\nuntil the end".to_vec(),
        ];
        let (origin, _) = server(answers, 4096, true).await;
        let wire = wire();
        let answered = wire.exchange(&origin, None, &request()).await.unwrap();
        assert_eq!(&answered.body[..], b"ok");
        assert!(wire.idle.lock().unwrap().values().all(Vec::is_empty));
    }

    #[tokio::test]
    async fn an_answer_cut_off_or_garbled_is_an_exchange_failure() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "before an answer came"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-le",
                "middle of the answer's head",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
                "middle of the answer's body",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
                "middle of the answer's body",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (b"NOT HTTP\r\n\r\n", "malformed answer"),
            // The crash of issue 26: a chunk size that wrapped an unchecked sum and panicked.
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n",
                "bad chunk size",
            ),
        ];
        for (answer, expected) in cases {
            let (origin, _) = server(vec![answer.to_vec()], 4096, true).await;
            let failure = wire()
                .exchange(&origin, None, &request())
                .await
                .unwrap_err();
            assert!(matches!(failure, Failure::Unanswered(_)), "{failure:?}");
            assert!(
                failure.to_string().contains(expected),
                "{failure} for {answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let origin = Origin {
            https: false,
            host: "127.0.0.1".into(),
            port,
        };
        let failure = wire()
            .exchange(&origin, None, &request())
            .await
            .unwrap_err();
        assert!(matches!(failure, Failure::Connect(_)), "{failure:?}");
    }

    #[test]
    fn the_head_is_the_request_line_the_headers_and_an_empty_line() {
        let request = hyper::Request::builder()
            .method("PUT")
            .uri("http://127.0.0.1:9000/bucket/a%20key?partNumber=1&uploadId=x")
            .header("host", "127.0.0.1:9000")
            .header("content-length", "0")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(
            String::from_utf8(Request::of(&request, None).head).unwrap(),
            "PUT /bucket/a%20key?partNumber=1&uploadId=x HTTP/1.1\r\nhost: 127.0.0.1:9000\r\n\
             content-length: 0\r\n\r\n"
        );
        let origin = Origin::of(&"https://s3.us-east-1.amazonaws.com".parse().unwrap()).unwrap();
        assert_eq!(
            (origin.https, origin.host.as_str(), origin.port),
            (true, "s3.us-east-1.amazonaws.com", 443)
        );
        let origin = Origin::of(&"http://[::1]:8333".parse().unwrap()).unwrap();
        assert_eq!((origin.host.as_str(), origin.port), ("::1", 8333));
    }

    #[tokio::test]
    async fn a_connection_with_bytes_after_the_answer_is_not_reused() {
        // Two answers to one request: the second belongs to no request and must not be read as the
        // answer to the next one.
        let answers = vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale".to_vec(),
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh".to_vec(),
        ];
        let (origin, connections) = server(answers, 4096, false).await;
        let wire = wire();
        assert_eq!(
            &wire.exchange(&origin, None, &request()).await.unwrap().body[..],
            b"ok"
        );
        // The next request goes on a new connection, whose first answer is "ok" again.
        assert_eq!(
            &wire.exchange(&origin, None, &request()).await.unwrap().body[..],
            b"ok"
        );
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn keep_alive_timeout_is_honoured() {
        // timeout=1 leaves no time once the margin is taken: never pooled.
        let short =
            b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\ncontent-length: 0\r\n\r\n".to_vec();
        let (origin, connections) = server(vec![short.clone(), short], 4096, false).await;
        let wire = wire();
        wire.exchange(&origin, None, &request()).await.unwrap();
        wire.exchange(&origin, None, &request()).await.unwrap();
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
        // timeout=2: reused at once, not after a second.
        let long =
            b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=2\r\ncontent-length: 0\r\n\r\n".to_vec();
        let (origin, connections) =
            server(vec![long.clone(), long.clone(), long], 4096, false).await;
        wire.exchange(&origin, None, &request()).await.unwrap();
        wire.exchange(&origin, None, &request()).await.unwrap();
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        wire.exchange(&origin, None, &request()).await.unwrap();
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_written_was_not_sent() {
        // A server that closes every connection at once, with a reset: the write fails.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                socket.set_zero_linger().unwrap();
                drop(socket);
            }
        });
        let origin = Origin {
            https: false,
            host: "127.0.0.1".into(),
            port,
        };
        let wire = wire();
        let mut connection = Box::pin(wire.connect(&origin, None)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A head larger than the socket's buffers, so the write meets the reset.
        let big = Request {
            head: vec![b'x'; 8 << 20],
            head_only: false,
        };
        let failure = connection.exchange(&big).await.unwrap_err();
        assert!(matches!(failure, Failure::NotSent(_)), "{failure:?}");
        assert!(!failure.maybe_sent());
    }
}
