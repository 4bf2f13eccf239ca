//! A seeded, fault-injecting HTTP proxy for the chaos test and the soak run: some requests are answered
//! with 503 SlowDown or 500 InternalError, some CopyObjects with a 200 whose body is an error, some
//! connections are cut before the request is forwarded (none of these reach the server); some are
//! forwarded and applied but their answer is lost (the connection is cut), cut short or held back.
//! The random faults can be limited to some kinds of request. One request per connection, so every
//! answer ends the connection.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// The kinds of request the random faults can be limited to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ListObjectVersions, ListObjectsV2, ListMultipartUploads.
    List,
    Head,
    /// CopyObject.
    Copy,
    PartCopy,
    Delete,
    /// Everything else: multipart create/complete/abort, tagging, bucket settings.
    Other,
}

impl Kind {
    /// The kind of a request from its lowercased head.
    fn of(head: &str) -> Kind {
        let line = head.lines().next().unwrap_or("");
        if head.contains("\r\nx-amz-copy-source:") {
            return if line.contains("partnumber=") {
                Kind::PartCopy
            } else {
                Kind::Copy
            };
        }
        let listing = ["?versions", "?list-type=2", "?uploads "]
            .iter()
            .any(|query| line.contains(query))
            || (line.starts_with("get ") && line.contains("?uploads&"));
        match line.split(' ').next() {
            Some("head") => Kind::Head,
            Some("delete") => Kind::Delete,
            Some("get") if listing => Kind::List,
            _ => Kind::Other,
        }
    }
}

/// Per mille of requests that get each fault.
#[derive(Clone, Copy, Default)]
pub struct Faults {
    /// The random faults below hit only these kinds of request (empty: every kind).
    pub kinds: &'static [Kind],
    pub slow_down: u32,
    pub internal_error: u32,
    /// Forwarded and applied by the server, then the connection is cut: the answer is lost.
    pub reset_after_applied: u32,
    /// Forwarded and applied, then only half of the answer arrives.
    pub truncated: u32,
    /// CopyObject only: 200 OK whose body is an error (not forwarded).
    pub error_in_200: u32,
    /// The connection is cut before the request is forwarded: the server never sees it.
    pub reset_before: u32,
    /// Forwarded and applied; the answer is replaced by the next of `MALFORMED` (in turn) and the
    /// connection cut: a broken or hostile server, or something on the path.
    pub malformed: u32,
    /// Forwarded and applied; the answer is held back for `delay` before it is sent.
    pub delayed: u32,
    pub delay: std::time::Duration,
    /// After this many requests (0: never), every CopyObject is answered 403 AccessDenied, as when the
    /// destination's permissions change in the middle of a run.
    pub deny_copies_after: u64,
    /// Copies (CopyObject, UploadPartCopy) of source keys containing this text are answered 403
    /// InvalidObjectState, as S3 answers for a version archived in GLACIER or DEEP_ARCHIVE.
    pub archived: Option<&'static str>,
    /// The first this many copies (CopyObject, UploadPartCopy) are held: never forwarded, never
    /// answered, the connection kept open for two minutes — a request that never answers.
    pub hold_copies: u64,
    /// The first this many copies (CopyObject) are held `late_by`, unanswered, then forwarded to the
    /// server (which applies them) after the client gave up: a write that lands late.
    pub late_copies: u64,
    pub late_by: std::time::Duration,
    /// After this many requests (0: never), every connection is cut before forwarding, until healed:
    /// the endpoint goes down in the middle of a run.
    pub down_after: u64,
}

#[derive(Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub slow_down: AtomicU64,
    pub internal_error: AtomicU64,
    pub reset_after_applied: AtomicU64,
    pub truncated: AtomicU64,
    pub error_in_200: AtomicU64,
    pub denied: AtomicU64,
    pub archived: AtomicU64,
    pub reset_before: AtomicU64,
    pub delayed: AtomicU64,
    pub malformed: AtomicU64,
    pub held: AtomicU64,
    pub late: AtomicU64,
    /// Late copies the server has applied (after their clients gave up).
    pub late_applied: AtomicU64,
    /// Requests that set Object Lock on the new version (x-amz-object-lock-mode).
    pub object_lock_headers: AtomicU64,
    /// Requests that set a website redirect (x-amz-website-redirect-location).
    pub website_redirect_headers: AtomicU64,
    /// The request line (method, path and query) of every request, in arrival order.
    pub request_lines: Mutex<Vec<String>>,
    /// The User-Agent of every copy (CopyObject, UploadPartCopy): which client sent it.
    pub copy_agents: Mutex<Vec<String>>,
    /// Set: no more faults, every request is forwarded as it is (the fault was fixed).
    pub healed: std::sync::atomic::AtomicBool,
}

/// Answers no well-behaved server sends, each named: the body of each ends the connection.
pub const MALFORMED: &[(&str, &[u8])] = &[
    (
        "a chunk size that wraps an unchecked sum",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n",
    ),
    (
        "a chunk size past the body limit",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffff\r\nabc",
    ),
    (
        "both Content-Length and chunked",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "two Content-Lengths that differ",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n<a/>",
    ),
    (
        "a signed Content-Length",
        b"HTTP/1.1 200 OK\r\nContent-Length: +4\r\n\r\n<a/>",
    ),
    (
        "a Content-Length past any integer",
        b"HTTP/1.1 200 OK\r\nContent-Length: 184467440737095516160\r\n\r\n<a/>",
    ),
    (
        "a Content-Length past the body limit",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4294967296\r\n\r\n<a/>",
    ),
    (
        "a transfer coding other than chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n<a/>",
    ),
    (
        "a chunk without its CRLF",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
    ),
    (
        "a switch of protocols never asked for",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    ),
    (
        "an endless run of interim answers",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n",
    ),
    ("not HTTP at all", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n"),
    ("a status out of range", b"HTTP/1.1 999 Nine\r\nContent-Length: 0\r\n\r\n"),
    (
        "a control byte in a header value",
        b"HTTP/1.1 200 OK\r\nx-amz-version-id: a\x00b\r\nContent-Length: 0\r\n\r\n",
    ),
    (
        "a chunk size with a sign",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+4\r\n<a/>\r\n0\r\n\r\n",
    ),
];

pub struct ChaosProxy {
    pub endpoint: String,
    pub counts: Arc<Counts>,
}

/// Reads one HTTP/1.1 request (head and Content-Length body); None at the end of the connection.
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    data.extend(body);
    Some(data)
}

/// The request with `Connection: close`, so the server's answer ends at EOF.
fn closing(request: &[u8]) -> Vec<u8> {
    let split = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 2;
    let head = String::from_utf8_lossy(&request[..split]);
    let mut out: String = head
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    out.push_str("Connection: close\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&request[split..]);
    bytes
}

fn error_response(status: &str, code: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the chaos proxy</Message><RequestId>chaos</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl ChaosProxy {
    pub fn start(upstream: u16, faults: Faults, seed: u64) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        let shared = Arc::clone(&counts);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (counts, rng) = (Arc::clone(&shared), Arc::clone(&rng));
                std::thread::spawn(move || serve(client, upstream, faults, &counts, &rng));
            }
        });
        ChaosProxy { endpoint, counts }
    }
}

fn serve(
    mut client: TcpStream,
    upstream: u16,
    faults: Faults,
    counts: &Counts,
    rng: &Mutex<fastrand::Rng>,
) {
    // One request per connection: every answer is followed by a close, so the engine reconnects.
    let Some(request) = read_request(&mut client) else {
        return;
    };
    let number = counts.requests.fetch_add(1, Relaxed) + 1;
    let head = String::from_utf8_lossy(&request[..request.len().min(2048)]).to_ascii_lowercase();
    let kind = Kind::of(&head);
    let is_copy = kind == Kind::Copy;
    let faults = if counts.healed.load(Relaxed) {
        Faults::default()
    } else {
        faults
    };
    if faults.down_after > 0 && number > faults.down_after {
        counts.reset_before.fetch_add(1, Relaxed);
        return;
    }
    if is_copy && faults.deny_copies_after > 0 && number > faults.deny_copies_after {
        counts.denied.fetch_add(1, Relaxed);
        let _ = client.write_all(&error_response("403 Forbidden", "AccessDenied"));
        return;
    }
    if let Some(line) = head.lines().next() {
        counts.request_lines.lock().unwrap().push(line.to_string());
    }
    if is_copy {
        let agent = head
            .lines()
            .find_map(|line| line.strip_prefix("user-agent:"))
            .unwrap_or("")
            .trim();
        counts.copy_agents.lock().unwrap().push(agent.to_string());
    }
    if is_copy
        && counts
            .held
            .fetch_update(Relaxed, Relaxed, |n| {
                (n < faults.hold_copies).then_some(n + 1)
            })
            .is_ok()
    {
        std::thread::sleep(std::time::Duration::from_secs(120));
        return;
    }
    if is_copy
        && counts
            .late
            .fetch_update(Relaxed, Relaxed, |n| {
                (n < faults.late_copies).then_some(n + 1)
            })
            .is_ok()
    {
        std::thread::sleep(faults.late_by);
        if let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream))
            && server.write_all(&closing(&request)).is_ok()
        {
            let _ = server.read_to_end(&mut Vec::new());
            counts.late_applied.fetch_add(1, Relaxed);
        }
        return;
    }
    if head.contains("\r\nx-amz-object-lock-mode:") {
        counts.object_lock_headers.fetch_add(1, Relaxed);
    }
    if head.contains("\r\nx-amz-website-redirect-location:") {
        counts.website_redirect_headers.fetch_add(1, Relaxed);
    }
    let copy_source = head
        .lines()
        .find_map(|line| line.strip_prefix("x-amz-copy-source:"));
    if let (Some(pattern), Some(source)) = (faults.archived, copy_source)
        && source.contains(pattern)
    {
        counts.archived.fetch_add(1, Relaxed);
        let _ = client.write_all(&error_response("403 Forbidden", "InvalidObjectState"));
        return;
    }
    // Requests of other kinds than the faults are limited to roll past every threshold.
    let targeted = faults.kinds.is_empty() || faults.kinds.contains(&kind);
    let roll = if targeted {
        rng.lock().unwrap().u32(0..1000)
    } else {
        1000
    };
    let mut threshold = 0;
    let mut hit = |per_mille: u32| {
        threshold += per_mille;
        roll < threshold
    };
    if hit(faults.slow_down) {
        counts.slow_down.fetch_add(1, Relaxed);
        let _ = client.write_all(&error_response("503 Slow Down", "SlowDown"));
        return;
    }
    if hit(faults.internal_error) {
        counts.internal_error.fetch_add(1, Relaxed);
        let _ = client.write_all(&error_response(
            "500 Internal Server Error",
            "InternalError",
        ));
        return;
    }
    if is_copy && hit(faults.error_in_200) {
        counts.error_in_200.fetch_add(1, Relaxed);
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>injected: a 200 whose body is an error</Message></Error>";
        let _ = client.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        return;
    }
    if hit(faults.reset_before) {
        counts.reset_before.fetch_add(1, Relaxed);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let reset = hit(faults.reset_after_applied);
    let truncate = !reset && hit(faults.truncated);
    let delay = !reset && !truncate && hit(faults.delayed);
    let malformed = !reset && !truncate && !delay && hit(faults.malformed);
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if server.write_all(&closing(&request)).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer);
    if reset {
        counts.reset_after_applied.fetch_add(1, Relaxed);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if truncate && answer.len() > 1 {
        counts.truncated.fetch_add(1, Relaxed);
        let _ = client.write_all(&answer[..answer.len() / 2]);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if malformed {
        let number = counts.malformed.fetch_add(1, Relaxed) as usize;
        let _ = client.write_all(MALFORMED[number % MALFORMED.len()].1);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if delay {
        counts.delayed.fetch_add(1, Relaxed);
        std::thread::sleep(faults.delay);
    }
    let _ = client.write_all(&answer);
}
