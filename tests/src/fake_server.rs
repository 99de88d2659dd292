//! Scripted TCP servers on loopback for bad-input tests: a server that never answers, one that
//! answers with bytes of another protocol, one that closes at once, an RTSP server whose
//! replies follow a script (a status per method, a wrong CSeq, a challenge), an RTMP server
//! that completes the handshake and then closes or goes quiet, and a port nobody listens on.
//!
//! Each [`FakeServer`] binds `127.0.0.1:0` (its own free port), serves every connection in its
//! own thread (std only, no runtime), records what it received and stops when dropped.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// The RTMP handshake's packet size (C1, S1, S2, C2).
const RTMP_PACKET: usize = 1536;

/// What a [`FakeServer`] does with each connection.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Accepts and reads everything, never answers, never closes (until dropped or the client
    /// leaves).
    Silent,
    /// Closes each connection right after accepting it.
    CloseAfterAccept,
    /// Answers every read (whatever the client sent) with these bytes, and never closes.
    Garbage(Vec<u8>),
    /// Sends these bytes as soon as a client connects (as an SSH server sends its banner),
    /// then reads without answering.
    Banner(Vec<u8>),
    /// An RTSP server answering each request as the script says.
    Rtsp(RtspScript),
    /// Completes the plain RTMP handshake (S0, S1, S2 for C0, C1; reads C2), then closes.
    RtmpCloseAfterHandshake,
    /// Completes the plain RTMP handshake, then reads without answering (no reply to
    /// `connect`).
    RtmpSilentAfterHandshake,
}

/// The replies of a [`Behaviour::Rtsp`] server: 200 to every method unless scripted, with
/// the headers a RECORD client needs (`Public`, `Session`, the request's `Transport`).
#[derive(Debug, Clone)]
pub struct RtspScript {
    statuses: HashMap<String, u16>,
    challenge: Option<String>,
    cseq_offset: u32,
}

impl RtspScript {
    /// A server that accepts everything over TCP: OPTIONS, ANNOUNCE, SETUP (interleaved),
    /// RECORD, GET_PARAMETER, TEARDOWN all get 200 (it closes the connection after TEARDOWN).
    pub fn accept_all() -> RtspScript {
        RtspScript {
            statuses: HashMap::new(),
            challenge: Some(r#"Basic realm="fake""#.to_string()),
            cseq_offset: 0,
        }
    }

    /// Accepts everything except `method` (e.g. "ANNOUNCE"), which always gets `status`.
    pub fn fail(method: &str, status: u16) -> RtspScript {
        RtspScript::accept_all().with_status(method, status)
    }

    /// Answers every `method` request with `status`.
    pub fn with_status(mut self, method: &str, status: u16) -> RtspScript {
        self.statuses.insert(method.to_ascii_uppercase(), status);
        self
    }

    /// The `WWW-Authenticate` value sent with a 401 (default `Basic realm="fake"`); `None`
    /// sends a 401 without one.
    pub fn with_challenge(mut self, challenge: Option<&str>) -> RtspScript {
        self.challenge = challenge.map(str::to_string);
        self
    }

    /// Replies carry the request's CSeq plus `offset` (a server answering another request).
    pub fn with_cseq_offset(mut self, offset: u32) -> RtspScript {
        self.cseq_offset = offset;
        self
    }

    fn status_of(&self, method: &str) -> u16 {
        self.statuses.get(method).copied().unwrap_or(200)
    }
}

/// The reason phrase of an RTSP status code (RFC 2326 §7.1.1).
pub fn rtsp_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        451 => "Parameter Not Understood",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        457 => "Invalid Range",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        _ => "Unknown",
    }
}

/// One RTSP request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// The method ("ANNOUNCE").
    pub method: String,
    /// The request URL as sent (credentials would show here: clients must not send them).
    pub url: String,
    /// The CSeq header's value, if any.
    pub cseq: Option<u32>,
    /// Whether an `Authorization` header came with it.
    pub authorization: bool,
    /// The status the server answered.
    pub status: u16,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    connections: AtomicUsize,
    bytes_in: AtomicUsize,
    requests: Mutex<Vec<SeenRequest>>,
}

/// A scripted TCP server on a free loopback port; stopped (its threads joined) on drop.
#[derive(Debug)]
pub struct FakeServer {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and serves every connection with `behaviour`.
    pub fn start(behaviour: Behaviour) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(&listener, &behaviour, &shared))
        };
        FakeServer {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Bytes received so far, over all connections.
    pub fn bytes_received(&self) -> usize {
        self.shared.bytes_in.load(Ordering::SeqCst)
    }

    /// The RTSP requests received so far ([`Behaviour::Rtsp`] only), in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// A TCP port on loopback that refuses connections: bound, then released (nothing listens on
/// it until some other program happens to take it).
pub fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn accept_loop(listener: &TcpListener, behaviour: &Behaviour, shared: &Arc<Shared>) {
    let mut workers = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let behaviour = behaviour.clone();
                let shared = Arc::clone(shared);
                workers.push(std::thread::spawn(move || {
                    // A client that resets the connection ends its thread; nothing to report.
                    let _ = serve(stream, &behaviour, &shared);
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Reads what is there (waiting up to [`POLL`]): `Ok(None)` on EOF or stop, `Ok(Some(0))` when
/// nothing arrived in time.
fn read_some(
    stream: &mut TcpStream,
    buf: &mut [u8],
    shared: &Shared,
) -> std::io::Result<Option<usize>> {
    if shared.stop.load(Ordering::SeqCst) {
        return Ok(None);
    }
    match stream.read(buf) {
        Ok(0) => Ok(None),
        Ok(n) => {
            shared.bytes_in.fetch_add(n, Ordering::SeqCst);
            Ok(Some(n))
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(Some(0)),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Some(0)),
        Err(e) => Err(e),
    }
}

/// Reads and discards until the client leaves or the server stops.
fn drain(stream: &mut TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    while read_some(stream, &mut buf, shared)?.is_some() {}
    Ok(())
}

fn serve(mut stream: TcpStream, behaviour: &Behaviour, shared: &Shared) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(POLL))?;
    // A client that stops reading must not hold the thread (and the drop) forever.
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let _ = stream.set_nodelay(true);
    match behaviour {
        Behaviour::CloseAfterAccept => {
            let _ = stream.shutdown(Shutdown::Both);
            Ok(())
        }
        Behaviour::Silent => drain(&mut stream, shared),
        Behaviour::Banner(bytes) => {
            stream.write_all(bytes)?;
            drain(&mut stream, shared)
        }
        Behaviour::Garbage(bytes) => {
            let mut buf = [0u8; 16 * 1024];
            while let Some(n) = read_some(&mut stream, &mut buf, shared)? {
                if n > 0 {
                    stream.write_all(bytes)?;
                }
            }
            Ok(())
        }
        Behaviour::Rtsp(script) => serve_rtsp(stream, script, shared),
        Behaviour::RtmpCloseAfterHandshake => {
            if rtmp_handshake(&mut stream, shared)? {
                let _ = stream.shutdown(Shutdown::Both);
            }
            Ok(())
        }
        Behaviour::RtmpSilentAfterHandshake => {
            if rtmp_handshake(&mut stream, shared)? {
                drain(&mut stream, shared)?;
            }
            Ok(())
        }
    }
}

/// Reads until `buf` holds `want` bytes; false when the client left (or the server stopped).
fn read_at_least(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    want: usize,
    shared: &Shared,
) -> std::io::Result<bool> {
    let mut chunk = [0u8; 4096];
    while buf.len() < want {
        match read_some(stream, &mut chunk, shared)? {
            None => return Ok(false),
            Some(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(true)
}

/// The plain (non-digest) RTMP handshake as a server: C0 C1 in, S0 S1 S2 out, C2 in. Returns
/// false when the client left before it completed.
fn rtmp_handshake(stream: &mut TcpStream, shared: &Shared) -> std::io::Result<bool> {
    let mut buf = Vec::new();
    if !read_at_least(stream, &mut buf, 1 + RTMP_PACKET, shared)? {
        return Ok(false);
    }
    let mut reply = Vec::with_capacity(1 + 2 * RTMP_PACKET);
    reply.push(3);
    // S1: time 0, zero field 0, then filler without a digest, so the client echoes it.
    reply.extend((0..RTMP_PACKET).map(|i| if i < 8 { 0 } else { (i % 251) as u8 }));
    // S2: the client's C1 echoed.
    reply.extend_from_slice(&buf[1..=RTMP_PACKET]);
    stream.write_all(&reply)?;
    read_at_least(stream, &mut buf, 1 + 2 * RTMP_PACKET, shared)
}

/// One request parsed from the buffer.
struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Takes one complete item off the front of `buf`: `Some(None)` for an interleaved binary
/// frame (`$`, channel, length), `Some(Some(request))` for a request with its body, `None`
/// while incomplete.
fn take_request(buf: &mut Vec<u8>) -> Option<Option<Request>> {
    if buf.first() == Some(&b'$') {
        if buf.len() < 4 {
            return None;
        }
        let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if buf.len() < len {
            return None;
        }
        buf.drain(..len);
        return Some(None);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default();
    let mut parts = start.split_whitespace();
    let method = parts.next().unwrap_or_default().to_ascii_uppercase();
    let url = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if buf.len() < end + body {
        return None;
    }
    buf.drain(..end + body);
    Some(Some(Request {
        method,
        url,
        headers,
    }))
}

fn serve_rtsp(mut stream: TcpStream, script: &RtspScript, shared: &Shared) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while let Some(item) = take_request(&mut buf) {
            let Some(req) = item else { continue };
            let status = script.status_of(&req.method);
            let cseq = req.header("CSeq").and_then(|c| c.parse::<u32>().ok());
            if let Ok(mut seen) = shared.requests.lock() {
                seen.push(SeenRequest {
                    method: req.method.clone(),
                    url: req.url.clone(),
                    cseq,
                    authorization: req.header("Authorization").is_some(),
                    status,
                });
            }
            stream.write_all(rtsp_reply(&req, cseq, status, script).as_bytes())?;
            if req.method == "TEARDOWN" && status == 200 {
                let _ = stream.shutdown(Shutdown::Write);
                return drain(&mut stream, shared);
            }
        }
        match read_some(&mut stream, &mut chunk, shared)? {
            None => return Ok(()),
            Some(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn rtsp_reply(req: &Request, cseq: Option<u32>, status: u16, script: &RtspScript) -> String {
    let mut reply = format!("RTSP/1.0 {status} {}\r\n", rtsp_reason(status));
    if let Some(c) = cseq {
        reply.push_str(&format!("CSeq: {}\r\n", c.wrapping_add(script.cseq_offset)));
    }
    reply.push_str("Server: mpegcoder-fake-server\r\n");
    if status == 401 {
        if let Some(ch) = &script.challenge {
            reply.push_str(&format!("WWW-Authenticate: {ch}\r\n"));
        }
    }
    if status == 200 {
        match req.method.as_str() {
            "OPTIONS" => reply
                .push_str("Public: OPTIONS, ANNOUNCE, SETUP, RECORD, TEARDOWN, GET_PARAMETER\r\n"),
            "SETUP" => {
                reply.push_str("Session: fake4711;timeout=60\r\n");
                if let Some(t) = req.header("Transport") {
                    reply.push_str(&format!("Transport: {t}\r\n"));
                }
            }
            "RECORD" | "GET_PARAMETER" | "TEARDOWN" => {
                reply.push_str("Session: fake4711\r\n");
            }
            _ => {}
        }
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(port: u16) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    fn read_reply(s: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).to_string()
    }

    #[test]
    fn rtsp_script_answers_each_method_with_its_status_and_cseq() {
        let server = FakeServer::start(Behaviour::Rtsp(RtspScript::fail("ANNOUNCE", 401)));
        let mut s = connect(server.port());
        s.write_all(b"OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            .unwrap();
        let r = read_reply(&mut s);
        assert!(r.starts_with("RTSP/1.0 200 OK\r\nCSeq: 1\r\n"), "{r}");
        assert!(r.contains("Public: "), "{r}");
        // A body split from its header, then an interleaved frame before the next request.
        s.write_all(b"ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nv=")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"0\r\n").unwrap();
        let r = read_reply(&mut s);
        assert!(
            r.starts_with("RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\n"),
            "{r}"
        );
        assert!(r.contains("WWW-Authenticate: Basic realm=\"fake\""), "{r}");
        s.write_all(b"$\x00\x00\x03abcSETUP rtsp://h/x/0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
            .unwrap();
        let r = read_reply(&mut s);
        assert!(r.contains("CSeq: 3\r\n"), "{r}");
        assert!(
            r.contains("Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"),
            "{r}"
        );
        assert!(r.contains("Session: fake4711"), "{r}");
        let seen = server.requests();
        let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(methods, ["OPTIONS", "ANNOUNCE", "SETUP"]);
        assert_eq!(seen[1].status, 401);
        assert_eq!(seen[2].cseq, Some(3));
    }

    #[test]
    fn wrong_cseq_and_missing_challenge() {
        let script = RtspScript::fail("OPTIONS", 401)
            .with_challenge(None)
            .with_cseq_offset(5);
        let server = FakeServer::start(Behaviour::Rtsp(script));
        let mut s = connect(server.port());
        s.write_all(b"OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            .unwrap();
        let r = read_reply(&mut s);
        assert!(
            r.starts_with("RTSP/1.0 401 Unauthorized\r\nCSeq: 6\r\n"),
            "{r}"
        );
        assert!(!r.contains("WWW-Authenticate"), "{r}");
    }

    #[test]
    fn garbage_banner_close_and_silent() {
        let garbage = FakeServer::start(Behaviour::Garbage(b"xyz".to_vec()));
        let mut s = connect(garbage.port());
        s.write_all(b"hello").unwrap();
        let mut got = [0u8; 3];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"xyz");

        let banner = FakeServer::start(Behaviour::Banner(b"SSH-2.0-x\r\n".to_vec()));
        let mut s = connect(banner.port());
        let mut got = [0u8; 11];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"SSH-2.0-x\r\n");

        let closing = FakeServer::start(Behaviour::CloseAfterAccept);
        let mut s = connect(closing.port());
        let mut one = [0u8; 1];
        assert!(matches!(s.read(&mut one), Ok(0) | Err(_)));

        let silent = FakeServer::start(Behaviour::Silent);
        let mut s = connect(silent.port());
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.write_all(b"OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            .unwrap();
        let e = s
            .read(&mut one)
            .expect_err("a silent server answers nothing");
        assert!(matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        ));
        assert_eq!(silent.connections(), 1);
        std::thread::sleep(Duration::from_millis(100));
        assert!(silent.bytes_received() > 0);
    }

    #[test]
    fn rtmp_handshake_then_close() {
        let server = FakeServer::start(Behaviour::RtmpCloseAfterHandshake);
        let mut s = connect(server.port());
        let c1: Vec<u8> = (0..RTMP_PACKET).map(|i| (i % 7) as u8).collect();
        s.write_all(&[3]).unwrap();
        s.write_all(&c1).unwrap();
        let mut s0s1s2 = vec![0u8; 1 + 2 * RTMP_PACKET];
        s.read_exact(&mut s0s1s2).unwrap();
        assert_eq!(s0s1s2[0], 3);
        assert_eq!(&s0s1s2[1 + RTMP_PACKET..], &c1[..]);
        s.write_all(&s0s1s2[1..=RTMP_PACKET]).unwrap();
        let mut one = [0u8; 1];
        assert!(matches!(s.read(&mut one), Ok(0) | Err(_)));
    }

    #[test]
    fn refused_port_refuses() {
        let port = refused_port();
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
