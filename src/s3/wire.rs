//! The direct sender's HTTP/1.1: one request at a time on a connection taken from a pool, written in
//! one piece, and its answer read into the connection's own buffer.
//!
//! Why not hyper's client: a backfill keeps thousands of small requests in flight, one connection
//! each, and hyper's client gives every connection a task of its own, an 8 KiB header buffer, an
//! 8 KiB read buffer and a dispatch channel of 32 slots (~8 KiB): ~30 KiB a connection, 120 MiB at
//! 4,096 in flight, and two task wake-ups per request between the caller and the connection's task.
//! Here a connection is its socket and a buffer the size of the answers it has read (under 1 KiB for
//! a copy's), and the caller's task does the exchange itself.
//!
//! What it does not do, because the direct sender never needs it: request bodies (every request it
//! sends is a PUT or DELETE without one), pipelining, upgrades, proxies (neither does the SDK's
//! client), HTTP/2 (S3 has none).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::aws::error_chain;

/// Connections idle this long are closed rather than reused: S3 closes them after about 20 s, and a
/// request written to a connection the server is closing may or may not have been carried out.
const IDLE: Duration = Duration::from_secs(15);
/// As the SDK's clients.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer's head larger than this is refused (S3's are under 2 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// An answer's body larger than this is refused (the direct sender's requests are answered with a few
/// hundred bytes of XML).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// A connection's buffer is given back after an answer larger than this.
const KEEP_BUFFER: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// Where connections go: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of a base URL (`https://s3.us-east-1.amazonaws.com`, `http://127.0.0.1:8333`).
    pub fn of(uri: &hyper::Uri) -> Option<Origin> {
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
        Some(Origin {
            https,
            host: host.to_string(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }
}

/// An answer: status, headers and the whole body.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why an exchange failed, and whether the request can have reached the server.
#[derive(Debug)]
pub(super) enum Failure {
    /// No connection could be made (or TLS refused it): nothing was sent.
    Connect(io::Error),
    /// The request was written, or may have been, and no whole answer came back.
    Exchange(io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // With its causes: rustls's reason for refusing a certificate is one.
            Failure::Connect(error) => write!(f, "cannot connect: {}", error_chain(error)),
            Failure::Exchange(error) => write!(f, "{}", error_chain(error)),
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

    /// Sends `head` (a whole request without a body) to `origin` and reads the answer.
    pub async fn exchange(&self, origin: &Origin, head: &[u8]) -> Result<Answer, Failure> {
        let mut connection = match self.take_idle(origin) {
            Some(connection) => connection,
            // Boxed: connecting (DNS, TCP, TLS) is rare and its future large; every request in flight
            // would otherwise carry its room.
            None => Box::pin(self.connect(origin))
                .await
                .map_err(Failure::Connect)?,
        };
        let answer = connection.exchange(head).await.map_err(Failure::Exchange)?;
        if connection.reusable {
            connection.idle_since = Instant::now();
            if connection.buffer.capacity() > KEEP_BUFFER {
                connection.buffer = Vec::new();
            }
            let mut idle = self.idle.lock().expect("pool lock");
            // The origin is cloned for its first connection only, not for every answer.
            let connections = match idle.get_mut(origin) {
                Some(connections) => connections,
                None => idle.entry(origin.clone()).or_default(),
            };
            // Oldest first: those idle too long (the server is closing them) are let go.
            let stale = connections.partition_point(|c| c.idle_since.elapsed() >= IDLE);
            connections.drain(..stale);
            connections.push(connection);
        }
        Ok(answer)
    }

    /// An idle connection to `origin` that is still open, the most recently used first (the least
    /// likely to be closing); stale ones are dropped.
    fn take_idle(&self, origin: &Origin) -> Option<Connection> {
        let mut idle = self.idle.lock().expect("pool lock");
        let connections = idle.get_mut(origin)?;
        while let Some(mut connection) = connections.pop() {
            if connection.idle_since.elapsed() < IDLE && connection.is_open() {
                return Some(connection);
            }
        }
        None
    }

    async fn connect(&self, origin: &Origin) -> io::Result<Connection> {
        let connecting = async {
            let tcp = TcpStream::connect((origin.host.as_str(), origin.port)).await?;
            tcp.set_nodelay(true)?;
            let stream = if origin.https {
                let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Stream::Tls(Box::new(self.tls.connect(name, tcp).await?))
            } else {
                Stream::Plain(tcp)
            };
            Ok(Connection {
                stream,
                buffer: Vec::new(),
                reusable: true,
                idle_since: Instant::now(),
            })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no connection to {}:{} within {} s",
                        origin.host,
                        origin.port,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
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
    /// What has been read and not yet taken: the answer being read.
    buffer: Vec<u8>,
    /// False once the server said it closes the connection, or an answer's end was its close.
    reusable: bool,
    idle_since: Instant,
}

impl Connection {
    /// Whether an idle connection can carry a request: the server has not closed it (nor sent
    /// anything, which an idle HTTP/1.1 connection never receives but a timeout's 408 or a close).
    fn is_open(&mut self) -> bool {
        use futures::FutureExt;
        let mut byte = [0u8; 1];
        // A read that would wait means nothing came: open.
        self.stream.read(&mut byte).now_or_never().is_none()
    }

    async fn exchange(&mut self, head: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(head).await?;
        self.stream.flush().await?;
        self.buffer.clear();
        loop {
            let (status, headers, head_len) = self.read_head().await?;
            if (100..200).contains(&status) {
                // An interim answer (100 Continue): the real one follows.
                self.buffer.drain(..head_len);
                continue;
            }
            // The server closes the connection after this answer.
            self.reusable &= !connection_says(&headers, "close");
            let body = if status == 204 || status == 304 {
                Bytes::new()
            } else {
                self.read_body(&headers, head_len).await?
            };
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
    }

    /// Reads until the buffer holds a whole head; its status, headers and length.
    async fn read_head(&mut self) -> io::Result<(u16, HeaderMap, usize)> {
        loop {
            if let Some(parsed) = parse_head(&self.buffer)? {
                return Ok(parsed);
            }
            if self.buffer.len() > MAX_HEAD {
                return Err(invalid(format!(
                    "the answer's head is over {MAX_HEAD} bytes"
                )));
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    if self.buffer.is_empty() {
                        "the connection was closed before an answer came"
                    } else {
                        "the connection was closed in the middle of the answer's head"
                    },
                ));
            }
        }
    }

    /// Reads the body that follows a head of `head_len` bytes, by the framing its headers give.
    async fn read_body(&mut self, headers: &HeaderMap, head_len: usize) -> io::Result<Bytes> {
        let chunked = headers.get_all("transfer-encoding").iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        });
        if chunked {
            return self.read_chunked(head_len).await;
        }
        let length = match headers.get("content-length") {
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| invalid(format!("a bad Content-Length: {value:?}")))?,
            ),
            None => None,
        };
        match length {
            Some(length) => {
                if length > MAX_BODY {
                    return Err(invalid(format!("an answer of {length} bytes")));
                }
                while self.buffer.len() < head_len + length {
                    if self.fill().await? == 0 {
                        return Err(cut_off());
                    }
                }
                let body = Bytes::copy_from_slice(&self.buffer[head_len..head_len + length]);
                self.buffer.drain(..head_len + length);
                Ok(body)
            }
            None => {
                // Neither length nor chunks: the body ends when the server closes the connection.
                self.reusable = false;
                while self.fill().await? != 0 {
                    if self.buffer.len() > head_len + MAX_BODY {
                        return Err(invalid("an answer over the size limit".into()));
                    }
                }
                Ok(Bytes::copy_from_slice(&self.buffer[head_len..]))
            }
        }
    }

    /// A chunked body (S3 answers a long copy so: whitespace while it works, then the XML).
    async fn read_chunked(&mut self, head_len: usize) -> io::Result<Bytes> {
        let mut body = Vec::new();
        let mut at = head_len;
        loop {
            let line_end = self.line_at(at).await?;
            let line = std::str::from_utf8(&self.buffer[at..line_end - 2])
                .map_err(|_| invalid("a bad chunk size".into()))?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("a bad chunk size {size_text:?}")))?;
            at = line_end;
            if size == 0 {
                // Trailers, if any, up to an empty line.
                loop {
                    let end = self.line_at(at).await?;
                    let empty = end - at == 2;
                    at = end;
                    if empty {
                        break;
                    }
                }
                self.buffer.drain(..at);
                return Ok(Bytes::from(body));
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("an answer over the size limit".into()));
            }
            while self.buffer.len() < at + size + 2 {
                if self.fill().await? == 0 {
                    return Err(cut_off());
                }
            }
            body.extend_from_slice(&self.buffer[at..at + size]);
            if &self.buffer[at + size..at + size + 2] != b"\r\n" {
                return Err(invalid("a chunk without its CRLF".into()));
            }
            at += size + 2;
            // What has been taken is dropped, so a long stream of whitespace chunks holds no memory.
            self.buffer.drain(..at);
            at = 0;
        }
    }

    /// The end (after its CRLF) of the line starting at `at`, reading more as needed.
    async fn line_at(&mut self, at: usize) -> io::Result<usize> {
        loop {
            if let Some(position) = self.buffer[at..].windows(2).position(|w| w == b"\r\n") {
                return Ok(at + position + 2);
            }
            if self.buffer.len() - at > MAX_HEAD {
                return Err(invalid("a chunk line over the size limit".into()));
            }
            if self.fill().await? == 0 {
                return Err(cut_off());
            }
        }
    }

    /// Reads what is there into the buffer; 0 when the server has closed the connection.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.buffer.capacity() - self.buffer.len() < 512 {
            self.buffer.reserve(self.buffer.len().max(1024));
        }
        let read = self.stream.read_buf(&mut self.buffer).await?;
        if read == 0 {
            self.reusable = false;
        }
        Ok(read)
    }
}

/// Whether a Connection header of `headers` is `token`.
fn connection_says(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all("connection")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case(token)))
}

/// A whole head at the start of `buffer`: status, headers and its length; None when more is needed.
fn parse_head(buffer: &[u8]) -> io::Result<Option<(u16, HeaderMap, usize)>> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let length = match response.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(invalid(format!("a malformed answer: {error}"))),
    };
    let status = response.code.unwrap_or(0);
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for header in response.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| invalid(format!("a bad header name {:?}", header.name)))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| invalid(format!("a bad value for header {name}")))?;
        headers.append(name, value);
    }
    if response.version == Some(0) && !connection_says(&headers, "keep-alive") {
        // HTTP/1.0 closes unless it says otherwise.
        headers.insert("connection", HeaderValue::from_static("close"));
    }
    Ok(Some((status, headers, length)))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn cut_off() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the connection was closed in the middle of the answer's body",
    )
}

/// The request's head as it goes on the wire: request line, headers, empty line.
pub(super) fn head_of(request: &hyper::Request<http_body_util::Empty<Bytes>>) -> Vec<u8> {
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
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
    head.extend_from_slice(b"\r\n");
    head
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

    const REQUEST: &[u8] = b"PUT /b/k HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n";

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
            let first = wire.exchange(&origin, REQUEST).await.unwrap();
            assert_eq!(first.status, 200);
            assert_eq!(&first.body[..], b"hello");
            assert_eq!(first.headers["x-amz-version-id"], "v1");
            let second = wire.exchange(&origin, REQUEST).await.unwrap();
            assert_eq!(&second.body[..], b"   <done>");
            let third = wire.exchange(&origin, REQUEST).await.unwrap();
            assert_eq!(third.status, 204);
            assert!(third.body.is_empty());
            let fourth = wire.exchange(&origin, REQUEST).await.unwrap();
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
            let answered = wire.exchange(&origin, REQUEST).await.unwrap();
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
        let answered = wire.exchange(&origin, REQUEST).await.unwrap();
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
        ];
        for (answer, expected) in cases {
            let (origin, _) = server(vec![answer.to_vec()], 4096, true).await;
            let failure = wire().exchange(&origin, REQUEST).await.unwrap_err();
            assert!(matches!(failure, Failure::Exchange(_)), "{failure:?}");
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
        let failure = wire().exchange(&origin, REQUEST).await.unwrap_err();
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
            String::from_utf8(head_of(&request)).unwrap(),
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
}
