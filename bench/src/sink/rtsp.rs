//! The RTSP RECORD sink: answers every request a publisher makes with 200 and records when
//! each RTP packet with the marker bit (the end of an access unit) arrives, over TCP
//! interleaved or UDP. Over UDP it answers the publisher's sender reports with receiver
//! reports, so a publisher that waits for the last packet to be acknowledged before TEARDOWN
//! is not held up.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Conn, FrameArrival, Read, Session};

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body (an SDP) accepted.
const MAX_BODY: usize = 1 << 20;
/// After TEARDOWN (or the end of the connection), UDP receiving goes on until no datagram
/// came for this long: the last packets may still sit in the socket buffer.
const UDP_DRAIN_QUIET: Duration = Duration::from_millis(300);
/// Receive buffer asked for the UDP sockets.
const UDP_RECV_BUFFER: usize = 4 << 20;
/// The SSRC the sink uses in its receiver reports.
const SINK_SSRC: u32 = 0x5EED_0001;

/// An RTSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `OPTIONS`, `ANNOUNCE`, ...
    pub method: String,
    /// The request URI.
    pub uri: String,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (an SDP for ANNOUNCE).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One unit of the RTSP connection's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// An interleaved frame (RFC 2326 §10.12): `$`, channel, 16-bit length, data.
    Interleaved {
        /// The channel.
        channel: u8,
        /// The data (an RTP or RTCP packet).
        data: &'a [u8],
    },
    /// A request.
    Request(Request),
}

/// Takes the next complete item off the front of `buf`: `Ok(Some((item, consumed)))`,
/// `Ok(None)` when more bytes are needed, `Err` for bytes that cannot be RTSP.
pub fn next_item(buf: &[u8]) -> Result<Option<(Item<'_>, usize)>, String> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == b'$' {
        let Some(head) = buf.get(..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        return Ok(buf.get(4..4 + len).map(|data| {
            (
                Item::Interleaved {
                    channel: head[1],
                    data,
                },
                4 + len,
            )
        }));
    }
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("request head longer than {MAX_HEAD} bytes"));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(uri), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {request_line:?}"));
    };
    if !version.starts_with("RTSP/") {
        return Err(format!("not an RTSP request: {request_line:?}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {line:?}"));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request = Request {
        method: method.to_string(),
        uri: uri.to_string(),
        headers,
        body: Vec::new(),
    };
    let body_len = match request.header("Content-Length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("bad Content-Length {v:?}"))?,
        None => 0,
    };
    if body_len > MAX_BODY {
        return Err(format!("request body of {body_len} bytes is too large"));
    }
    let body_start = head_end + 4;
    let Some(body) = buf.get(body_start..body_start + body_len) else {
        return Ok(None);
    };
    request.body = body.to_vec();
    Ok(Some((Item::Request(request), body_start + body_len)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The fields of an RTP header the sink needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit: for H.264, the last packet of an access unit.
    pub marker: bool,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Sender's SSRC.
    pub ssrc: u32,
}

/// Parses an RTP header (RFC 3550 §5.1); `None` for anything shorter than 12 bytes or not
/// version 2.
pub fn rtp_header(packet: &[u8]) -> Option<RtpHeader> {
    let h = packet.get(..12)?;
    if h[0] >> 6 != 2 {
        return None;
    }
    Some(RtpHeader {
        marker: h[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([h[2], h[3]]),
        timestamp: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ssrc: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
    })
}

/// Extended highest sequence number tracking (RFC 3550 A.1, without probation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequenceTracker {
    max: Option<u16>,
    cycles: u32,
}

impl SequenceTracker {
    /// Takes a received sequence number into account.
    pub fn update(&mut self, seq: u16) {
        match self.max {
            None => self.max = Some(seq),
            Some(max) => {
                let delta = seq.wrapping_sub(max);
                if delta != 0 && delta < 0x8000 {
                    if seq < max {
                        self.cycles = self.cycles.wrapping_add(1 << 16);
                    }
                    self.max = Some(seq);
                }
            }
        }
    }

    /// The extended highest sequence number received (0 before any packet).
    pub fn extended(&self) -> u32 {
        self.cycles | u32::from(self.max.unwrap_or(0))
    }
}

/// The sender SSRCs of the sender reports (PT 200) in a compound RTCP packet.
pub fn sender_reports(data: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(h) = rest.get(..4) {
        if h[0] >> 6 != 2 {
            break;
        }
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        let Some(packet) = rest.get(..len) else {
            break;
        };
        if h[1] == 200 {
            if let Some(s) = packet.get(4..8) {
                out.push(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
            }
        }
        rest = &rest[len..];
    }
    out
}

/// A receiver report (PT 201) with one report block for `source`: nothing lost, `extended`
/// the extended highest sequence number received.
pub fn receiver_report(source: u32, extended: u32) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = 0x81; // V=2, P=0, RC=1
    p[1] = 201;
    p[2..4].copy_from_slice(&7u16.to_be_bytes()); // 8 words − 1
    p[4..8].copy_from_slice(&SINK_SSRC.to_be_bytes());
    p[8..12].copy_from_slice(&source.to_be_bytes());
    // Fraction lost, cumulative lost: 0.
    p[16..20].copy_from_slice(&extended.to_be_bytes());
    // Jitter, LSR, DLSR: 0.
    p
}

/// Values of `key=a-b` in a Transport header.
fn port_pair(transport: &str, key: &str) -> Option<(u16, u16)> {
    transport.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        if !k.eq_ignore_ascii_case(key) {
            return None;
        }
        let (a, b) = v.split_once('-').unwrap_or((v, v));
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    })
}

/// Serves one RTSP connection into `session`.
pub(crate) fn serve(mut conn: Conn<'_>, session: &mut Session) -> Result<(), String> {
    conn.configure()?;
    let peer_ip = conn
        .stream
        .peer_addr()
        .map(|a| a.ip())
        .map_err(|e| format!("peer address: {e}"))?;
    let session_id = format!("{:08X}", 0x1000_0000u32.wrapping_add(session.id as u32));
    let mut rtp_channel: Option<u8> = None;
    let mut udp: Option<UdpReceiver> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let result = loop {
        let (n, at) = match conn.read(&mut chunk) {
            Ok(Read::Data(n, at)) => (n, at),
            Ok(Read::Eof) => break Ok(()),
            Err(e) => break Err(e),
        };
        pending.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut consumed = 0;
        let step = loop {
            let item = match next_item(&pending[consumed..]) {
                Ok(Some((item, len))) => {
                    consumed += len;
                    item
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            match item {
                Item::Interleaved { channel, data } => {
                    if Some(channel) == rtp_channel {
                        session.media_packets += 1;
                        session.media_bytes += data.len() as u64;
                        if let Some(h) = rtp_header(data).filter(|h| h.marker) {
                            session.frames.push(FrameArrival {
                                at,
                                timestamp: h.timestamp,
                            });
                        }
                    }
                }
                Item::Request(req) => {
                    let media_seen = &conn.media_seen;
                    let reply =
                        match answer(&req, &session_id, peer_ip, &mut rtp_channel, media_seen) {
                            Ok((reply, new_udp)) => {
                                if new_udp.is_some() {
                                    udp = new_udp;
                                }
                                reply
                            }
                            Err(e) => break Err(e),
                        };
                    if req.method.eq_ignore_ascii_case("ANNOUNCE") {
                        session.name = uri_path(&req.uri);
                    }
                    if req.method.eq_ignore_ascii_case("TEARDOWN") {
                        session.ended_cleanly = true;
                        if let Some(u) = &udp {
                            u.stop.store(true, Ordering::SeqCst);
                        }
                    }
                    if let Err(e) = conn.write_all(reply.as_bytes()) {
                        break Err(e);
                    }
                }
            }
        };
        pending.drain(..consumed);
        if let Err(e) = step {
            break Err(e);
        }
    };
    if let Some(u) = udp {
        let tally = u.finish();
        session.frames = tally.frames;
        session.media_packets += tally.packets;
        session.media_bytes += tally.bytes;
    }
    result
}

fn uri_path(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.find('/')
        .map_or(String::new(), |i| rest[i..].to_string())
}

/// The reply to `req`, and the UDP receiver a UDP SETUP started.
fn answer(
    req: &Request,
    session_id: &str,
    peer_ip: IpAddr,
    rtp_channel: &mut Option<u8>,
    media_seen: &Arc<AtomicBool>,
) -> Result<(String, Option<UdpReceiver>), String> {
    let cseq = req.header("CSeq").unwrap_or("0");
    let mut extra = String::new();
    let mut udp = None;
    match req.method.to_ascii_uppercase().as_str() {
        "OPTIONS" => {
            extra.push_str(
                "Public: OPTIONS, ANNOUNCE, SETUP, RECORD, GET_PARAMETER, SET_PARAMETER, \
                 TEARDOWN\r\n",
            );
        }
        "ANNOUNCE" | "GET_PARAMETER" | "SET_PARAMETER" => {}
        "SETUP" => {
            let transport = req
                .header("Transport")
                .ok_or("SETUP without a Transport header")?;
            // The first alternative the client offers.
            let offer = transport.split(',').next().unwrap_or_default().trim();
            let reply_transport = if offer.to_ascii_uppercase().contains("/TCP") {
                let (rtp, _) = port_pair(offer, "interleaved").unwrap_or((0, 1));
                let channel = u8::try_from(rtp).map_err(|_| "interleaved channel above 255")?;
                *rtp_channel = Some(channel);
                if port_pair(offer, "interleaved").is_some() {
                    offer.to_string()
                } else {
                    format!("{offer};interleaved=0-1")
                }
            } else {
                let (rtp, rtcp) =
                    port_pair(offer, "client_port").ok_or("UDP SETUP without client_port")?;
                let receiver = UdpReceiver::start(
                    SocketAddr::new(peer_ip, rtp),
                    SocketAddr::new(peer_ip, rtcp),
                    Arc::clone(media_seen),
                )
                .map_err(|e| format!("binding UDP ports: {e}"))?;
                let t = format!(
                    "{offer};server_port={}-{}",
                    receiver.rtp_port,
                    receiver.rtp_port + 1
                );
                udp = Some(receiver);
                t
            };
            extra.push_str(&format!("Transport: {reply_transport}\r\n"));
            extra.push_str(&format!("Session: {session_id};timeout=60\r\n"));
        }
        "RECORD" | "TEARDOWN" => {
            extra.push_str(&format!("Session: {session_id}\r\n"));
        }
        _ => {
            return Ok((
                format!("RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n"),
                None,
            ))
        }
    }
    Ok((
        format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n"),
        udp,
    ))
}

/// What the UDP RTP thread received.
#[derive(Debug, Default)]
struct Tally {
    frames: Vec<FrameArrival>,
    packets: u64,
    bytes: u64,
}

/// The two threads receiving a UDP session: RTP (recording frames) and RTCP (answering
/// sender reports).
struct UdpReceiver {
    rtp_port: u16,
    stop: Arc<AtomicBool>,
    rtp: JoinHandle<Tally>,
    rtcp: JoinHandle<()>,
}

impl UdpReceiver {
    fn start(
        peer_rtp: SocketAddr,
        peer_rtcp: SocketAddr,
        media_seen: Arc<AtomicBool>,
    ) -> std::io::Result<UdpReceiver> {
        let (rtp, rtcp) = bind_pair()?;
        let rtp_port = rtp.local_addr()?.port();
        for s in [&rtp, &rtcp] {
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            s.set_write_timeout(Some(Duration::from_secs(1)))?;
        }
        let _ = socket2::SockRef::from(&rtp).set_recv_buffer_size(UDP_RECV_BUFFER);
        let stop = Arc::new(AtomicBool::new(false));
        // Source SSRC (high 32 bits) and extended highest sequence (low 32 bits).
        let progress = Arc::new(AtomicU64::new(0));
        let rtp = {
            let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
            std::thread::Builder::new()
                .name(format!("sink-rtp-{rtp_port}"))
                .spawn(move || receive_rtp(&rtp, peer_rtp.ip(), &stop, &progress, &media_seen))?
        };
        let rtcp = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("sink-rtcp-{rtp_port}"))
                .spawn(move || answer_rtcp(&rtcp, peer_rtcp, &stop, &progress))?
        };
        Ok(UdpReceiver {
            rtp_port,
            stop,
            rtp,
            rtcp,
        })
    }

    /// Stops receiving (after the drain) and returns what arrived.
    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.rtcp.join();
        self.rtp.join().unwrap_or_default()
    }
}

fn bind_pair() -> std::io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..64 {
        let rtp = UdpSocket::bind("127.0.0.1:0")?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
            return Ok((rtp, rtcp));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free even/odd UDP port pair",
    ))
}

fn receive_rtp(
    sock: &UdpSocket,
    peer: IpAddr,
    stop: &AtomicBool,
    progress: &AtomicU64,
    media_seen: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    let mut seq = SequenceTracker::default();
    let mut buf = vec![0u8; 65_536];
    let mut last_datagram = Instant::now();
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                let at = Instant::now();
                last_datagram = at;
                if from.ip() != peer {
                    continue;
                }
                let data = buf.get(..n).unwrap_or_default();
                let Some(h) = rtp_header(data) else {
                    continue;
                };
                media_seen.store(true, Ordering::Relaxed);
                tally.packets += 1;
                tally.bytes += n as u64;
                seq.update(h.sequence);
                progress.store(
                    (u64::from(h.ssrc) << 32) | u64::from(seq.extended()),
                    Ordering::SeqCst,
                );
                if h.marker {
                    tally.frames.push(FrameArrival {
                        at,
                        timestamp: h.timestamp,
                    });
                }
            }
            Err(_) => {
                if stop.load(Ordering::SeqCst) && last_datagram.elapsed() >= UDP_DRAIN_QUIET {
                    return tally;
                }
            }
        }
    }
}

fn answer_rtcp(sock: &UdpSocket, peer: SocketAddr, stop: &AtomicBool, progress: &AtomicU64) {
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if from.ip() != peer.ip() {
            continue;
        }
        let reports = sender_reports(buf.get(..n).unwrap_or_default());
        let p = progress.load(Ordering::SeqCst);
        let (ssrc, extended) = ((p >> 32) as u32, p as u32);
        if reports.contains(&ssrc) {
            let _ = sock.send_to(&receiver_report(ssrc, extended), from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_and_interleaved_frames_at_any_split() {
        let sdp = b"v=0\r\ns=x\r\n";
        let mut stream = format!(
            "ANNOUNCE rtsp://127.0.0.1:1/cam RTSP/1.0\r\nCSeq: 2\r\ncontent-length: {}\r\n\r\n",
            sdp.len()
        )
        .into_bytes();
        stream.extend_from_slice(sdp);
        stream.extend_from_slice(&[b'$', 0, 0, 3, 0x80, 0xE0, 0x01]);
        stream.extend_from_slice(b"TEARDOWN rtsp://127.0.0.1:1/cam RTSP/1.0\r\nCSeq: 3\r\n\r\n");
        for split in 0..=stream.len() {
            // Feed the first `split` bytes, then the rest, like two reads.
            let mut buf = stream[..split].to_vec();
            let mut items: Vec<(Option<Request>, Vec<u8>)> = Vec::new();
            for more in [&stream[split..], &[][..]] {
                while let Some((item, n)) = next_item(&buf).expect("valid") {
                    items.push(match item {
                        Item::Request(r) => (Some(r), Vec::new()),
                        Item::Interleaved { channel, data } => {
                            (None, [&[channel][..], data].concat())
                        }
                    });
                    buf.drain(..n);
                }
                buf.extend_from_slice(more);
            }
            assert!(buf.is_empty(), "split {split}");
            assert_eq!(items.len(), 3, "split {split}");
            let announce = items[0].0.as_ref().expect("a request");
            assert_eq!(announce.method, "ANNOUNCE");
            assert_eq!(announce.header("CSeq"), Some("2"));
            assert_eq!(announce.body, sdp);
            assert_eq!(items[1], (None, vec![0, 0x80, 0xE0, 0x01]));
            let teardown = items[2].0.as_ref().expect("a request");
            assert_eq!(teardown.method, "TEARDOWN");
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(next_item(b"\x16\x03\x01 hello\r\n\r\n").is_err());
        assert!(next_item(b"GET / HTTP/1.1\r\n\r\n").is_err());
        assert!(next_item(b"OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n").is_err());
        assert!(next_item(b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(next_item(&vec![b'A'; MAX_HEAD + 1]).is_err());
        assert_eq!(next_item(b"$\x00\xff\xff\x00"), Ok(None));
        assert_eq!(next_item(b""), Ok(None));
    }

    #[test]
    fn rtp_headers_and_sequence_extension() {
        let p = [0x80, 0xE0, 0xFF, 0xFE, 0, 0, 0x0B, 0xB8, 0, 0, 0, 7, 0x65];
        assert_eq!(
            rtp_header(&p),
            Some(RtpHeader {
                marker: true,
                sequence: 0xFFFE,
                timestamp: 3000,
                ssrc: 7
            })
        );
        assert_eq!(rtp_header(&p[..11]), None);
        assert_eq!(rtp_header(&[0x40; 12]), None);
        let mut t = SequenceTracker::default();
        for s in [0xFFFE, 0xFFFF, 0xFFFD, 0, 1] {
            t.update(s);
        }
        assert_eq!(t.extended(), 0x1_0001);
    }

    #[test]
    fn answers_sender_reports_with_receiver_reports() {
        // An SR (7 words after the header: no report blocks) followed by an SDES.
        let mut compound = vec![0x80, 200, 0, 6, 0, 0, 0x12, 0x34];
        compound.extend_from_slice(&[0; 20]);
        compound.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0x12, 0x34]);
        assert_eq!(sender_reports(&compound), vec![0x1234]);
        assert!(sender_reports(&compound[..10]).is_empty());
        let rr = receiver_report(0x1234, 0x1_0005);
        assert_eq!(&rr[..4], &[0x81, 201, 0, 7]);
        assert_eq!(&rr[8..12], &[0, 0, 0x12, 0x34]);
        assert_eq!(&rr[16..20], &[0, 1, 0, 5]);
    }

    #[test]
    fn transport_ports() {
        let t = "RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record";
        assert_eq!(port_pair(t, "client_port"), Some((5000, 5001)));
        assert_eq!(
            port_pair("RTP/AVP/TCP;interleaved=2-3", "interleaved"),
            Some((2, 3))
        );
        assert_eq!(port_pair("RTP/AVP/TCP", "interleaved"), None);
        assert_eq!(uri_path("rtsp://h:1/a/b"), "/a/b");
    }
}
