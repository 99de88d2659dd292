//! RTSP/1.0 message framing: the requests the publisher writes, and an incremental parser for
//! what a server sends on the connection — responses, requests from the server, and interleaved
//! binary data (RFC 2326 §10.12).
//!
//! The parser never panics and bounds its memory: a header section may be at most
//! [`MAX_HEADER_BYTES`] long and a body at most [`MAX_BODY_BYTES`]; anything else is a
//! [`ParseError`] with the byte offset (in the server's stream) where it went wrong.

use std::fmt::Write as _;

use bytes::{Buf, Bytes, BytesMut};

/// Longest accepted start line plus headers, in bytes.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Longest accepted message body, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most header lines accepted in one message.
pub const MAX_HEADERS: usize = 128;

/// A header line: name and value (surrounding white space and folding removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name as the server wrote it.
    pub name: String,
    /// The value.
    pub value: String,
}

/// Headers of a message, in order. Names compare case-insensitively (RFC 2326 §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The `CSeq` value, if present and numeric.
    pub fn cseq(&self) -> Option<u32> {
        self.get("CSeq").and_then(|v| v.trim().parse().ok())
    }
}

/// A response from the server (RFC 2326 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase (may be empty).
    pub reason: String,
    /// The headers.
    pub headers: Headers,
    /// The body (`Content-Length` bytes).
    pub body: Bytes,
}

/// A request sent by the server to the client (RFC 2326 allows e.g. OPTIONS as a keepalive,
/// ANNOUNCE, REDIRECT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRequest {
    /// The method name.
    pub method: String,
    /// The request URI.
    pub uri: String,
    /// The headers.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// One message from the server's side of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A response to one of our requests.
    Response(Response),
    /// A request from the server.
    Request(ServerRequest),
    /// Interleaved binary data (`$`, channel, 16-bit length, data; RFC 2326 §10.12).
    Data {
        /// The channel number.
        channel: u8,
        /// The data (an RTP or RTCP packet).
        payload: Bytes,
    },
}

/// Where and why the server's byte stream stopped being valid RTSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the stream (for [`MessageDecoder`]) or in the buffer (for
    /// [`parse_message`]).
    pub offset: u64,
    /// What is wrong.
    pub reason: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for ParseError {}

fn err(offset: usize, reason: &'static str) -> ParseError {
    ParseError {
        offset: offset as u64,
        reason,
    }
}

/// Parses one message at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only the beginning of a message, and `Ok(Some((message,
/// consumed)))` once it is complete. Empty lines between messages are skipped (and counted in
/// `consumed`). Lines may end in CRLF or, leniently, in a bare LF.
pub fn parse_message(buf: &[u8]) -> Result<Option<(Incoming, usize)>, ParseError> {
    parse_at(buf, &mut 0)
}

/// `scanned`: how far a previous call has already searched `buf` for the end of the header
/// section without finding it (an optimisation for input that arrives in small pieces); updated
/// when this call returns `Ok(None)`.
fn parse_at(buf: &[u8], scanned: &mut usize) -> Result<Option<(Incoming, usize)>, ParseError> {
    let scan_from = std::mem::take(scanned);
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let Some(msg) = buf.get(start..).filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    if msg.first() == Some(&b'$') {
        let Some(&[_, channel, hi, lo]) = msg.get(..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(payload) = msg.get(4..4 + len) else {
            return Ok(None);
        };
        return Ok(Some((
            Incoming::Data {
                channel,
                payload: Bytes::copy_from_slice(payload),
            },
            start + 4 + len,
        )));
    }
    // Judge the start line as soon as its first bytes are here, so that a peer that does not
    // speak RTSP (random bytes, another protocol's banner) is refused at once rather than after
    // a timeout. Checked first on every call, so the result does not depend on how the bytes
    // were split.
    if start_line_refused(msg) {
        return Err(err(start, "invalid start line"));
    }
    let Some(head_len) = find_header_end(msg, scan_from.saturating_sub(start)) else {
        if msg.len() > MAX_HEADER_BYTES {
            return Err(err(start + MAX_HEADER_BYTES, "header section too long"));
        }
        *scanned = buf.len();
        return Ok(None);
    };
    if head_len > MAX_HEADER_BYTES {
        return Err(err(start + MAX_HEADER_BYTES, "header section too long"));
    }
    let head = msg.get(..head_len).unwrap_or_default();
    let mut lines = split_lines(head);
    let (first, _) = lines.next().unwrap_or((&[], 0));
    let first = std::str::from_utf8(first).map_err(|_| err(start, "invalid start line"))?;
    let kind = parse_start_line(first).ok_or_else(|| err(start, "invalid start line"))?;
    let mut headers: Vec<Header> = Vec::new();
    for (line, off) in lines {
        if line.is_empty() {
            break;
        }
        let at = start + off;
        if line.first().is_some_and(|&c| c == b' ' || c == b'\t') {
            // Folded continuation of the previous header (RFC 2326 §4.2 via RFC 2616 §2.2).
            let cont = std::str::from_utf8(line).map_err(|_| err(at, "header is not UTF-8"))?;
            let last = headers
                .last_mut()
                .ok_or_else(|| err(at, "continuation line before any header"))?;
            last.value.push(' ');
            last.value.push_str(cont.trim());
            continue;
        }
        let line = std::str::from_utf8(line).map_err(|_| err(at, "header is not UTF-8"))?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| err(at, "header line without ':'"))?;
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(err(at, "invalid header name"));
        }
        if headers.len() >= MAX_HEADERS {
            return Err(err(at, "too many headers"));
        }
        headers.push(Header {
            name: name.to_string(),
            value: value.trim().to_string(),
        });
    }
    let headers = Headers(headers);
    let body_len = match headers.get("Content-Length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| err(start, "invalid Content-Length"))?,
    };
    if body_len > MAX_BODY_BYTES {
        return Err(err(start, "body too long"));
    }
    let Some(body) = msg.get(head_len..head_len + body_len) else {
        return Ok(None);
    };
    let body = Bytes::copy_from_slice(body);
    let consumed = start + head_len + body_len;
    let message = match kind {
        StartLine::Response { status, reason } => Incoming::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
        StartLine::Request { method, uri } => Incoming::Request(ServerRequest {
            method,
            uri,
            headers,
            body,
        }),
    };
    Ok(Some((message, consumed)))
}

enum StartLine {
    Response { status: u16, reason: String },
    Request { method: String, uri: String },
}

/// True when the start line at the beginning of `msg` (complete or not) cannot become a valid
/// one: a complete line that does not parse, or a partial one whose method (or `RTSP/`
/// version) already holds a byte no valid line has there. Monotonic: once true for some
/// bytes, true for every extension of them.
fn start_line_refused(msg: &[u8]) -> bool {
    match msg.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = msg.get(..end).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            std::str::from_utf8(line)
                .ok()
                .and_then(parse_start_line)
                .is_none()
        }
        None => {
            const RTSP: &[u8] = b"RTSP/";
            if msg.len() <= RTSP.len() && RTSP.starts_with(msg) {
                return false;
            }
            if let Some(rest) = msg.strip_prefix(RTSP) {
                // RTSP-Version: digits and one '.', up to the space (RFC 2326 §7.1).
                let version = rest.split(|&b| b == b' ').next().unwrap_or_default();
                return !version.iter().all(|&b| b.is_ascii_digit() || b == b'.')
                    || version.iter().filter(|&&b| b == b'.').count() > 1;
            }
            // Method = token (RFC 2326 §6.1); a '\r' may be the line's end.
            let method = msg.split(|&b| b == b' ').next().unwrap_or_default();
            let method = method.strip_suffix(b"\r").unwrap_or(method);
            !method.iter().all(|&b| is_token_char(b))
        }
    }
}

fn parse_start_line(line: &str) -> Option<StartLine> {
    if let Some(rest) = line.strip_prefix("RTSP/") {
        // Status-Line = RTSP-Version SP Status-Code SP Reason-Phrase (RFC 2326 §7.1).
        let (version, rest) = rest.split_once(' ')?;
        let (major, minor) = version.split_once('.')?;
        if major.is_empty()
            || minor.is_empty()
            || !(major.bytes().chain(minor.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let rest = rest.trim_start();
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let status = code.parse::<u16>().ok()?;
        if !(100..=999).contains(&status) {
            return None;
        }
        return Some(StartLine::Response {
            status,
            reason: reason.trim().to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP RTSP-Version (RFC 2326 §6.1).
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(is_token_char)
        || uri.is_empty()
        || !version.starts_with("RTSP/")
    {
        return None;
    }
    Some(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Finds the end of the header section (just past the empty line), searching from `from`.
fn find_header_end(msg: &[u8], from: usize) -> Option<usize> {
    // Back up so a terminator straddling the previous search end is found.
    let mut i = from.saturating_sub(3);
    let limit = msg.len().min(MAX_HEADER_BYTES + 4);
    while i < limit {
        if msg.get(i) == Some(&b'\n') {
            match (msg.get(i + 1), msg.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Lines of a header section (without their CRLF or LF), each with its offset.
fn split_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let rest = head.get(pos..).filter(|r| !r.is_empty())?;
        let start = pos;
        let (line, adv) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => (rest.get(..nl).unwrap_or_default(), nl + 1),
            None => (rest, rest.len()),
        };
        pos += adv;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some((line, start))
    })
}

/// An incremental parser over the server's byte stream: push bytes in as they arrive, take
/// complete messages out.
#[derive(Debug, Default)]
pub struct MessageDecoder {
    buf: BytesMut,
    /// Bytes of the stream consumed before `buf`.
    consumed: u64,
    /// How far the header-end search got in `buf` without success.
    scanned: usize,
    failed: bool,
}

impl MessageDecoder {
    /// An empty decoder.
    pub fn new() -> MessageDecoder {
        MessageDecoder::default()
    }

    /// Appends bytes received from the server.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that do not form a complete message yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Total bytes of the stream consumed as complete messages.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. After an error the
    /// stream cannot be resynchronised and every later call returns the same error.
    /// The first bytes of what is still unparsed (after a failure: the message that failed),
    /// escaped for an error line: at most 40 bytes of its first line.
    pub fn excerpt(&self) -> String {
        let msg = self.buf.iter().skip_while(|&&b| b == b'\r' || b == b'\n');
        let line: Vec<u8> = msg.take_while(|&&b| b != b'\n').take(40).copied().collect();
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        format!("\"{}\"", line.escape_ascii())
    }

    pub fn next_message(&mut self) -> Result<Option<Incoming>, ParseError> {
        if self.failed {
            return Err(ParseError {
                offset: self.consumed,
                reason: "stream already failed",
            });
        }
        match parse_at(&self.buf, &mut self.scanned) {
            Ok(Some((msg, used))) => {
                self.buf.advance(used.min(self.buf.len()));
                self.consumed += used as u64;
                Ok(Some(msg))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = true;
                self.consumed += e.offset;
                Err(ParseError {
                    offset: self.consumed,
                    reason: e.reason,
                })
            }
        }
    }
}

/// An RTSP/1.0 request to write (RFC 2326 §6).
#[derive(Debug, Clone)]
pub struct Request {
    /// The method name.
    pub method: &'static str,
    /// The request URI (never with credentials).
    pub uri: String,
    /// Headers, in order (`CSeq` first by convention).
    pub headers: Vec<(String, String)>,
    /// The body; `Content-Length` is added when it is not empty.
    pub body: Bytes,
}

impl Request {
    /// Serialises the request.
    pub fn to_bytes(&self) -> Bytes {
        let mut s = String::with_capacity(256);
        let _ = write!(s, "{} {} RTSP/1.0\r\n", self.method, self.uri);
        for (name, value) in &self.headers {
            // Values come from our own state; strip line breaks so no header can be injected.
            let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            let _ = write!(s, "{name}: {value}\r\n");
        }
        if !self.body.is_empty() {
            let _ = write!(s, "Content-Length: {}\r\n", self.body.len());
        }
        s.push_str("\r\n");
        let mut out = BytesMut::with_capacity(s.len() + self.body.len());
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(&self.body);
        out.freeze()
    }
}

/// A minimal response to a request from the server (RFC 2326 §7).
pub fn response_bytes(status: u16, reason: &str, cseq: Option<u32>) -> Bytes {
    let mut s = format!("RTSP/1.0 {status} {reason}\r\n");
    if let Some(c) = cseq {
        let _ = write!(s, "CSeq: {c}\r\n");
    }
    s.push_str("\r\n");
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const REPLY: &[u8] = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 12345678;timeout=60\r\n\
Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nX-Folded: a,\r\n  b\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn parses_response_with_folding_and_body() {
        let (msg, used) = parse_message(REPLY).unwrap().unwrap();
        assert_eq!(used, REPLY.len());
        let Incoming::Response(r) = msg else {
            panic!("not a response")
        };
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        assert_eq!(r.headers.cseq(), Some(3));
        assert_eq!(r.headers.get("session"), Some("12345678;timeout=60"));
        assert_eq!(r.headers.get("X-FOLDED"), Some("a, b"));
        assert_eq!(&r.body[..], b"body");
        // Every proper prefix is incomplete, never an error.
        for n in 0..REPLY.len() {
            assert_eq!(parse_message(&REPLY[..n]).unwrap(), None, "prefix {n}");
        }
    }

    #[test]
    fn parses_interleaved_data_requests_and_lenient_forms() {
        let data = b"$\x01\x00\x03abcRTSP/1.0 404 Not Found\nCSeq: 2\n\n";
        let (msg, used) = parse_message(data).unwrap().unwrap();
        assert_eq!(
            msg,
            Incoming::Data {
                channel: 1,
                payload: Bytes::from_static(b"abc")
            }
        );
        let (msg, _) = parse_message(&data[used..]).unwrap().unwrap();
        assert!(matches!(
            msg,
            Incoming::Response(Response { status: 404, .. })
        ));
        let req = b"\r\nOPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n";
        let (msg, used) = parse_message(req).unwrap().unwrap();
        assert_eq!(used, req.len());
        let Incoming::Request(r) = msg else {
            panic!("not a request")
        };
        assert_eq!((r.method.as_str(), r.uri.as_str()), ("OPTIONS", "*"));
        // No reason phrase.
        let (msg, _) = parse_message(b"RTSP/1.0 200\r\nCSeq: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(
            msg,
            Incoming::Response(Response { status: 200, .. })
        ));
    }

    #[test]
    fn errors_carry_stream_offsets() {
        let mut d = MessageDecoder::new();
        d.push(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
        assert!(d.next_message().unwrap().is_some());
        d.push(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nbroken line\r\n\r\n");
        let e = d.next_message().unwrap_err();
        assert_eq!(e.offset, 28 + 26);
        assert_eq!(e.reason, "header line without ':'");
        assert!(d.next_message().is_err());

        let e = parse_message(b"HTTP/1.1 200 OK\r\n\r\n").unwrap_err();
        assert_eq!((e.offset, e.reason), (0, "invalid start line"));
        let e = parse_message(b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n").unwrap_err();
        assert_eq!(e.reason, "invalid Content-Length");
        let e = parse_message(b"RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n").unwrap_err();
        assert_eq!(e.reason, "body too long");
        let huge = vec![b'a'; MAX_HEADER_BYTES + 10];
        assert_eq!(
            parse_message(&huge).unwrap_err().reason,
            "header section too long"
        );
    }

    #[test]
    fn serialises_requests_without_injection() {
        let r = Request {
            method: "ANNOUNCE",
            uri: "rtsp://h/p".into(),
            headers: vec![
                ("CSeq".into(), "2".into()),
                ("X".into(), "a\r\nEvil: 1".into()),
            ],
            body: Bytes::from_static(b"v=0\r\n"),
        };
        assert_eq!(
            &r.to_bytes()[..],
            b"ANNOUNCE rtsp://h/p RTSP/1.0\r\nCSeq: 2\r\nX: aEvil: 1\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
    }

    proptest! {
        /// Any bytes, pushed in any pieces: never a panic, and the same messages as parsing the
        /// whole at once.
        #[test]
        fn decoder_never_panics_and_ignores_chunking(
            data in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let run = |pieces: &[&[u8]]| {
                let mut d = MessageDecoder::new();
                let mut out = Vec::new();
                for p in pieces {
                    d.push(p);
                    loop {
                        match d.next_message() {
                            Ok(Some(m)) => out.push(Ok(m)),
                            Ok(None) => break,
                            Err(e) => { out.push(Err(e)); return out; }
                        }
                    }
                }
                out
            };
            let whole = run(&[&data]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for p in points { pieces.push(&data[last..p]); last = p; }
            pieces.push(&data[last..]);
            prop_assert_eq!(run(&pieces), whole);
        }
    }
}
