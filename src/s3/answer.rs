//! Reading an HTTP/1.1 answer out of the bytes a connection has received: its head, then its body by
//! the framing the head gives. No I/O here — `wire` reads, this decides — so every byte that comes
//! from the network goes through code that is tested on arbitrary input and on every split of valid
//! answers (the proptests below; `cargo test answer::`).
//!
//! The rules, from RFC 9112 §6, and where they are stricter than a browser's:
//! - an answer with both `Transfer-Encoding` and `Content-Length`, with `Content-Length`s that differ,
//!   or with a transfer coding other than `chunked` is refused (each is how a request smuggler or a
//!   broken proxy desynchronises a connection; a refused answer closes it);
//! - sizes are checked before they are added: a chunk size of `ffffffffffffffff` is an error, not a
//!   wrapped sum (the crash that made this module);
//! - heads, chunk lines and trailers are capped at `MAX_HEAD`, bodies at `MAX_BODY`, interim (1xx)
//!   answers at `MAX_INTERIM`;
//! - a connection is reusable only when the answer ended by its framing, the server did not say it
//!   closes, and nothing is left unread after it.
//!
//! Input from the network must never panic: the lints below refuse unchecked arithmetic and indexing
//! in this file.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

/// An answer's head larger than this is refused (S3's are under 2 KiB); so are a chunk line and a
/// chunked body's trailers.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// An answer's body larger than this is refused (the direct sender's requests are answered with a few
/// hundred bytes of XML).
pub(super) const MAX_BODY: usize = 4 * 1024 * 1024;
/// Interim answers (100 Continue, 102 Processing, 103 Early Hints) accepted before the final one.
pub(super) const MAX_INTERIM: usize = 8;
const MAX_HEADERS: usize = 64;

/// An answer: status, headers and the whole body.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A whole answer, and what it says of its connection.
#[derive(Debug)]
pub(super) struct Decoded {
    pub answer: Answer,
    /// The connection can carry another request: the answer ended by its framing, the server did not
    /// say it closes, and no byte is left unread after it.
    pub reusable: bool,
    /// How long the server keeps the connection open when idle (`Keep-Alive: timeout=N`), if it said.
    pub keep_alive: Option<Duration>,
}

/// Why an answer cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Malformed {
    #[error("the connection was closed before an answer came")]
    ClosedBeforeAnswer,
    #[error("the connection was closed in the middle of the answer's head")]
    ClosedInHead,
    #[error("the connection was closed in the middle of the answer's body")]
    ClosedInBody,
    #[error("a malformed answer: {0}")]
    Head(String),
    #[error("the answer's head is over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("more than {MAX_INTERIM} interim (1xx) answers")]
    TooManyInterim,
    #[error("an answer with status {0}, which no request of ours asks for")]
    Unexpected(u16),
    #[error("an answer framed both by Content-Length and by Transfer-Encoding")]
    BothFramings,
    #[error("a bad Content-Length: {0}")]
    BadLength(String),
    #[error("a transfer coding other than chunked: {0}")]
    UnsupportedCoding(String),
    #[error("an answer over the size limit ({MAX_BODY} bytes)")]
    BodyTooLarge,
    #[error("a bad chunk size {0:?}")]
    BadChunkSize(String),
    #[error("a chunk without its CRLF")]
    ChunkWithoutCrlf,
    #[error("a chunk line over the size limit")]
    ChunkLineTooLarge,
}

/// Where the reading of an answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// So many bytes of a Content-Length body still to come.
    Length(usize),
    ChunkSize,
    /// So many bytes of the current chunk still to come.
    ChunkData(usize),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// Neither length nor chunks: the body ends when the server closes the connection.
    UntilClose,
}

/// Reads one answer out of a connection's buffer, taking from its front what it has read.
#[derive(Debug)]
pub(super) struct Decoder {
    state: State,
    /// The request was a HEAD: its answer has no body, whatever its headers say.
    head_only: bool,
    interim: usize,
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    /// Bytes of chunk lines and trailers taken so far, capped like a head.
    overhead: usize,
    reusable: bool,
}

impl Decoder {
    pub fn new(head_only: bool) -> Decoder {
        Decoder {
            state: State::Head,
            head_only,
            interim: 0,
            status: 0,
            headers: HeaderMap::new(),
            body: Vec::new(),
            overhead: 0,
            reusable: true,
        }
    }

    /// Takes what it can of the answer from the front of `buffer`: the whole answer once it is
    /// there, None while more is needed. `closed`: the server has closed the connection, and
    /// `buffer` holds all it will ever send.
    pub fn decode(
        &mut self,
        buffer: &mut BytesMut,
        closed: bool,
    ) -> Result<Option<Decoded>, Malformed> {
        loop {
            match self.state {
                State::Head => {
                    let Some((status, headers, length)) = parse_head(buffer)? else {
                        if buffer.len() > MAX_HEAD {
                            return Err(Malformed::HeadTooLarge);
                        }
                        if closed {
                            return Err(if buffer.is_empty() && self.interim == 0 {
                                Malformed::ClosedBeforeAnswer
                            } else {
                                Malformed::ClosedInHead
                            });
                        }
                        return Ok(None);
                    };
                    buffer.advance(length);
                    if status == 101 {
                        // Switching protocols: never asked for.
                        return Err(Malformed::Unexpected(status));
                    }
                    if (100..200).contains(&status) {
                        self.interim = self.interim.saturating_add(1);
                        if self.interim > MAX_INTERIM {
                            return Err(Malformed::TooManyInterim);
                        }
                        continue;
                    }
                    if !(200..600).contains(&status) {
                        return Err(Malformed::Unexpected(status));
                    }
                    self.status = status;
                    self.reusable = !connection_says(&headers, "close");
                    self.state = self.framing(&headers)?;
                    self.headers = headers;
                }
                State::Length(0) => return Ok(Some(self.finish(buffer))),
                State::Length(remaining) => {
                    if buffer.is_empty() {
                        return self.wait(closed);
                    }
                    let taken = remaining.min(buffer.len());
                    self.take(buffer, taken)?;
                    self.state = State::Length(remaining.saturating_sub(taken));
                }
                State::ChunkSize => {
                    let Some(line) = self.line(buffer)? else {
                        return self.wait(closed);
                    };
                    let size = chunk_size(&line)?;
                    if size > MAX_BODY.saturating_sub(self.body.len()) {
                        return Err(Malformed::BodyTooLarge);
                    }
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(remaining) => {
                    if buffer.is_empty() {
                        return self.wait(closed);
                    }
                    let taken = remaining.min(buffer.len());
                    self.take(buffer, taken)?;
                    let left = remaining.saturating_sub(taken);
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkEnd => {
                    let Some(end) = buffer.get(..2) else {
                        if buffer.first().is_some_and(|&byte| byte != b'\r') {
                            return Err(Malformed::ChunkWithoutCrlf);
                        }
                        return self.wait(closed);
                    };
                    if end != b"\r\n" {
                        return Err(Malformed::ChunkWithoutCrlf);
                    }
                    buffer.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(line) = self.line(buffer)? else {
                        return self.wait(closed);
                    };
                    if line.is_empty() {
                        return Ok(Some(self.finish(buffer)));
                    }
                }
                State::UntilClose => {
                    let taken = buffer.len();
                    self.take(buffer, taken)?;
                    if closed {
                        return Ok(Some(self.finish(buffer)));
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// How the body after a final head of `headers` is framed (RFC 9112 §6.3).
    fn framing(&mut self, headers: &HeaderMap) -> Result<State, Malformed> {
        if self.head_only || self.status == 204 || self.status == 304 {
            return Ok(State::Length(0));
        }
        let codings = list(headers, "transfer-encoding")?;
        let lengths = list(headers, "content-length")?;
        // A header that is there with nothing in it frames nothing: refused, not taken as absent.
        if headers.contains_key("content-length") && lengths.is_empty() {
            return Err(Malformed::BadLength(String::new()));
        }
        if headers.contains_key("transfer-encoding") && codings.is_empty() {
            return Err(Malformed::UnsupportedCoding(String::new()));
        }
        if !codings.is_empty() {
            if !lengths.is_empty() {
                return Err(Malformed::BothFramings);
            }
            return match codings.as_slice() {
                [only] if only.eq_ignore_ascii_case("chunked") => Ok(State::ChunkSize),
                _ => Err(Malformed::UnsupportedCoding(codings.join(", "))),
            };
        }
        let Some(first) = lengths.first() else {
            self.reusable = false;
            return Ok(State::UntilClose);
        };
        if lengths.iter().any(|length| length != first) {
            return Err(Malformed::BadLength(lengths.join(", ")));
        }
        let length = decimal(first).ok_or_else(|| Malformed::BadLength(first.clone()))?;
        if length > MAX_BODY {
            return Err(Malformed::BodyTooLarge);
        }
        Ok(State::Length(length))
    }

    /// Moves `count` bytes from the front of `buffer` to the body.
    fn take(&mut self, buffer: &mut BytesMut, count: usize) -> Result<(), Malformed> {
        let taken = buffer.get(..count).ok_or(Malformed::ClosedInBody)?;
        if taken.len() > MAX_BODY.saturating_sub(self.body.len()) {
            return Err(Malformed::BodyTooLarge);
        }
        self.body.extend_from_slice(taken);
        buffer.advance(count);
        Ok(())
    }

    /// The next line (without its CRLF), taken from `buffer`; None when it has not all come.
    fn line(&mut self, buffer: &mut BytesMut) -> Result<Option<String>, Malformed> {
        let Some(end) = buffer.windows(2).position(|pair| pair == b"\r\n") else {
            if buffer.len() > MAX_HEAD.saturating_sub(self.overhead) {
                return Err(Malformed::ChunkLineTooLarge);
            }
            return Ok(None);
        };
        let consumed = end.saturating_add(2);
        self.overhead = self.overhead.saturating_add(consumed);
        if self.overhead > MAX_HEAD {
            return Err(Malformed::ChunkLineTooLarge);
        }
        let line = buffer.get(..end).unwrap_or_default();
        let line = String::from_utf8_lossy(line).into_owned();
        buffer.advance(consumed);
        Ok(Some(line))
    }

    /// More is needed: fine unless the connection is closed.
    fn wait(&self, closed: bool) -> Result<Option<Decoded>, Malformed> {
        if closed {
            Err(Malformed::ClosedInBody)
        } else {
            Ok(None)
        }
    }

    fn finish(&mut self, buffer: &BytesMut) -> Decoded {
        let headers = std::mem::take(&mut self.headers);
        let keep_alive = keep_alive_timeout(&headers);
        Decoded {
            reusable: self.reusable && buffer.is_empty() && keep_alive != Some(Duration::ZERO),
            keep_alive,
            answer: Answer {
                status: self.status,
                headers,
                body: Bytes::from(std::mem::take(&mut self.body)),
            },
        }
    }
}

/// A whole head at the start of `buffer`: status, headers and its length; None when more is needed.
fn parse_head(buffer: &[u8]) -> Result<Option<(u16, HeaderMap, usize)>, Malformed> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let length = match response.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(Malformed::Head(error.to_string())),
    };
    if length > MAX_HEAD {
        return Err(Malformed::HeadTooLarge);
    }
    let status = response.code.unwrap_or(0);
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for header in response.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| Malformed::Head(format!("a bad header name {:?}", header.name)))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| Malformed::Head(format!("a bad value for header {name}")))?;
        headers.append(name, value);
    }
    if response.version == Some(0) && !connection_says(&headers, "keep-alive") {
        // HTTP/1.0 closes unless it says otherwise.
        headers.insert("connection", HeaderValue::from_static("close"));
    }
    Ok(Some((status, headers, length)))
}

/// Whether a Connection header of `headers` names `token`.
pub(super) fn connection_says(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all("connection").iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// Every comma-separated element of every `name` header, trimmed; empty elements dropped.
fn list(headers: &HeaderMap, name: &str) -> Result<Vec<String>, Malformed> {
    let mut elements = Vec::new();
    for value in headers.get_all(name) {
        let value = value
            .to_str()
            .map_err(|_| Malformed::Head(format!("a bad value for header {name}")))?;
        elements.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(str::to_string),
        );
    }
    Ok(elements)
}

/// A decimal size: ASCII digits only (no sign, no space), and no larger than a usize holds.
fn decimal(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A chunk line's size: hex digits, then optional extensions after `;`.
fn chunk_size(line: &str) -> Result<usize, Malformed> {
    let digits = line.split(';').next().unwrap_or_default().trim();
    // 15 hex digits hold any size below 2^60, far past MAX_BODY; more is an attack or garbage.
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Malformed::BadChunkSize(line.chars().take(40).collect()));
    }
    usize::from_str_radix(digits, 16)
        .map_err(|_| Malformed::BadChunkSize(line.chars().take(40).collect()))
}

/// `Keep-Alive: timeout=N` in seconds, when given and well formed.
fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("keep-alive")?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (name, seconds) = part.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        decimal(seconds.trim())
            .map(|seconds| Duration::from_secs(u64::try_from(seconds).unwrap_or(u64::MAX)))
    })
}

#[cfg(test)]
#[expect(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    reason = "tests"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `bytes` fed in the pieces `cuts` gives (positions), then the close if `close`.
    fn feed(
        bytes: &[u8],
        cuts: &[usize],
        close: bool,
        head_only: bool,
    ) -> Result<Decoded, Malformed> {
        let mut decoder = Decoder::new(head_only);
        let mut buffer = BytesMut::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        for cut in cuts {
            buffer.extend_from_slice(&bytes[at..cut.max(at)]);
            at = cut.max(at);
            if let Some(decoded) = decoder.decode(&mut buffer, false)? {
                let reusable = decoded.reusable && at == bytes.len();
                return Ok(Decoded {
                    reusable,
                    ..decoded
                });
            }
        }
        if close && let Some(decoded) = decoder.decode(&mut buffer, true)? {
            return Ok(decoded);
        }
        Err(Malformed::ClosedInBody)
    }

    fn whole(bytes: &[u8]) -> Result<Decoded, Malformed> {
        feed(bytes, &[], true, false)
    }

    fn error(bytes: &[u8]) -> Malformed {
        whole(bytes).unwrap_err()
    }

    #[test]
    fn valid_answers_are_read_whole_with_what_they_say_of_the_connection() {
        let decoded = whole(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5, max=100\r\n\r\nhello",
        )
        .unwrap();
        assert_eq!(
            (decoded.answer.status, &decoded.answer.body[..]),
            (200, &b"hello"[..])
        );
        assert!(decoded.reusable);
        assert_eq!(decoded.keep_alive, Some(Duration::from_secs(5)));

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n \r\n6;x=y\r\n<done>\r\n0\r\nx-trailer: 1\r\n\r\n";
        assert_eq!(&whole(chunked).unwrap().answer.body[..], b" <done>");

        let interim =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n";
        let decoded = whole(interim).unwrap();
        assert_eq!(decoded.answer.status, 204);
        assert!(decoded.answer.body.is_empty() && decoded.reusable);

        // A HEAD's answer has no body whatever its Content-Length says.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
        let decoded = feed(head, &[], false, true).unwrap();
        assert!(decoded.answer.body.is_empty() && decoded.reusable);

        // Repeated equal lengths are one length (RFC 9112 §6.3).
        assert_eq!(
            &whole(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")
                .unwrap()
                .answer
                .body[..],
            b"ok"
        );

        // Ended by the close: read whole, not reusable.
        let decoded = whole(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").unwrap();
        assert_eq!(&decoded.answer.body[..], b"until the end");
        assert!(!decoded.reusable);

        for closing in [
            &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=0\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(
                !whole(closing).unwrap().reusable,
                "{:?}",
                String::from_utf8_lossy(closing)
            );
        }
    }

    #[test]
    fn bytes_after_the_answer_leave_the_connection_unusable() {
        let mut buffer =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200"[..]);
        let decoded = Decoder::new(false)
            .decode(&mut buffer, false)
            .unwrap()
            .unwrap();
        assert_eq!(&decoded.answer.body[..], b"ok");
        assert!(!decoded.reusable);
    }

    #[test]
    fn malformed_answers_are_refused_by_name() {
        let cases: &[(&[u8], Malformed)] = &[
            // The crash: a size that wraps an unchecked sum.
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n",
                Malformed::BadChunkSize("ffffffffffffffff".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nfffffffffffff\r\n",
                Malformed::BodyTooLarge,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
                Malformed::BothFramings,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                Malformed::BadLength("3, 4".into()),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", Malformed::BadLength("+3".into())),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: \r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                Malformed::BadLength(String::new()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: ,\r\n\r\nabc",
                Malformed::BadLength(String::new()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: \r\n\r\nabc",
                Malformed::UnsupportedCoding(String::new()),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", Malformed::BadLength("-1".into())),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                Malformed::BadLength("99999999999999999999999".into()),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 4194305\r\n\r\n", Malformed::BodyTooLarge),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                Malformed::UnsupportedCoding("gzip, chunked".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
                Malformed::BadChunkSize("+5".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhelo\r\n0\r\n\r\n",
                Malformed::ChunkWithoutCrlf,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                Malformed::ClosedInBody,
            ),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", Malformed::Unexpected(101)),
            (b"HTTP/1.1 600 Nope\r\n\r\n", Malformed::Unexpected(600)),
            (b"", Malformed::ClosedBeforeAnswer),
            (b"HTTP/1.1 200 OK\r\ncontent-le", Malformed::ClosedInHead),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", Malformed::ClosedInBody),
        ];
        for (answer, expected) in cases {
            assert_eq!(
                &error(answer),
                expected,
                "{:?}",
                String::from_utf8_lossy(answer)
            );
        }
        assert!(matches!(error(b"NOT HTTP\r\n\r\n"), Malformed::Head(_)));
        let interims = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1);
        assert_eq!(error(&interims), Malformed::TooManyInterim);
        let mut long = b"HTTP/1.1 200 OK\r\nx-long: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(error(&long), Malformed::HeadTooLarge);
        let mut trailers = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
        for _ in 0..(MAX_HEAD / 8) {
            trailers.extend_from_slice(b"x: 123\r\n");
        }
        assert_eq!(error(&trailers), Malformed::ChunkLineTooLarge);
    }

    /// Valid answers of every framing, as a server could send them.
    fn valid_answer() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        let body = proptest::collection::vec(any::<u8>(), 0..300);
        (
            body,
            0..4u8,
            0..3usize,
            proptest::collection::vec(1..64usize, 0..6),
        )
            .prop_map(|(body, framing, interim, chunk_sizes)| {
                let mut answer = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(interim);
                answer.extend_from_slice(b"HTTP/1.1 200 OK\r\nx-amz-version-id: v\r\n");
                match framing {
                    0 => {
                        answer.extend_from_slice(
                            format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                        );
                        answer.extend_from_slice(&body);
                    }
                    1 | 2 => {
                        answer.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                        let mut rest = &body[..];
                        let mut sizes = chunk_sizes.iter().cycle();
                        while !rest.is_empty() {
                            let size = (*sizes.next().unwrap_or(&7)).min(rest.len());
                            let extension = if framing == 2 { ";name=value" } else { "" };
                            answer.extend_from_slice(format!("{size:x}{extension}\r\n").as_bytes());
                            answer.extend_from_slice(&rest[..size]);
                            answer.extend_from_slice(b"\r\n");
                            rest = &rest[size..];
                        }
                        answer.extend_from_slice(b"0\r\n");
                        if framing == 2 {
                            answer.extend_from_slice(b"x-amz-checksum: abc\r\n");
                        }
                        answer.extend_from_slice(b"\r\n");
                    }
                    _ => {
                        answer.extend_from_slice(b"Connection: close\r\n\r\n");
                        answer.extend_from_slice(&body);
                    }
                }
                (answer, body)
            })
    }

    proptest! {
        // 512 cases in `cargo test` (about a second); PROPTEST_CASES=1000000 for a long run by hand.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512)
        ))]

        /// However the bytes of a valid answer are split across reads, the same answer is read.
        #[test]
        fn any_split_of_a_valid_answer_reads_the_same_answer(
            (answer, body) in valid_answer(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let decoded = feed(&answer, &cuts, true, false).unwrap();
            prop_assert_eq!(decoded.answer.status, 200);
            prop_assert_eq!(&decoded.answer.body[..], &body[..]);
            prop_assert_eq!(decoded.answer.headers["x-amz-version-id"].to_str().unwrap(), "v");
        }

        /// Arbitrary bytes, or a valid answer with bytes changed, split anywhere: an answer or an
        /// error, never a panic, and never a body longer than the one declared.
        #[test]
        fn arbitrary_bytes_never_panic_nor_read_past_a_declared_length(
            (answer, _) in valid_answer(),
            noise in proptest::collection::vec(any::<u8>(), 0..200),
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            close in any::<bool>(),
            head_only in any::<bool>(),
        ) {
            let mut garbled = answer.clone();
            for (at, byte) in changes {
                let at = at % garbled.len();
                garbled[at] = byte;
            }
            for bytes in [&noise[..], &garbled[..], &[&answer[..], &noise[..]].concat()[..]] {
                if let Ok(decoded) = feed(bytes, &cuts, close, head_only) {
                    let declared = decoded.answer.headers.get("content-length")
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| decimal(value.split(',').next()?.trim()));
                    if let Some(length) = declared {
                        prop_assert!(decoded.answer.body.len() <= length);
                    }
                    prop_assert!(decoded.answer.body.len() <= bytes.len());
                }
            }
        }

        /// Garbage after a chunked head: whatever the sizes say, the body stays within the limit.
        #[test]
        fn chunk_lines_of_any_text_never_panic(
            lines in proptest::collection::vec("[0-9a-fA-F;= xX+-]{0,24}", 1..6),
        ) {
            let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for line in lines {
                answer.extend_from_slice(line.as_bytes());
                answer.extend_from_slice(b"\r\nabc\r\n");
            }
            if let Ok(decoded) = whole(&answer) {
                prop_assert!(decoded.answer.body.len() <= answer.len());
            }
        }
    }
}
