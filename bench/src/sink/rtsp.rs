//! The RTSP RECORD sink: answers every request a publisher makes with 200 and records when
//! each RTP packet with the marker bit arrives, over TCP interleaved or UDP. The ANNOUNCE's
//! SDP names the media sections; each SETUP is matched to one (by its `a=control`, else by
//! order) and gets its own interleaved channel pair or UDP port pair. For video the marker
//! ends an access unit (a frame); for audio it ends a packet of whole frames (RFC 3640: for
//! AAC, the frames are counted from the AU headers). Over UDP it answers the publisher's
//! sender reports with receiver reports, so a publisher that waits for the last packet to be
//! acknowledged before TEARDOWN is not held up.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::digest::AuDigest;
use super::{AudioArrival, Conn, FrameArrival, Progress, Read, SenderReport, Session};

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

/// Where the payload of an RTP packet starts (after the CSRCs and the header extension);
/// `None` when the packet is shorter than its header says.
pub fn rtp_payload_offset(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    let mut at = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let ext = packet.get(at + 2..at + 4)?;
        at += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (at <= packet.len()).then_some(at)
}

/// The number of AU headers at the start of an RFC 3640 AAC-hbr payload (16-bit headers:
/// AU-headers-length in bits / 16); `None` when it is too short to hold them.
pub fn aac_hbr_frames(payload: &[u8]) -> Option<u32> {
    let len = payload.get(..2)?;
    let bits = u32::from(u16::from_be_bytes([len[0], len[1]]));
    let frames = bits / 16;
    (payload.len() >= 2 + 2 * frames as usize).then_some(frames)
}

/// What a media section of an SDP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// `m=video`.
    Video,
    /// `m=audio`.
    Audio,
    /// Anything else (application, text, ...): received but not recorded.
    Other,
}

/// One media section of an ANNOUNCE's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpMedia {
    /// `m=` type.
    pub kind: MediaKind,
    /// Its `a=control` value.
    pub control: Option<String>,
    /// Encoding name of its first `a=rtpmap`, upper case (`H264`, `MPEG4-GENERIC`).
    pub encoding: Option<String>,
    /// Clock rate of its first `a=rtpmap`.
    pub clock_rate: Option<u32>,
}

/// The media sections of `sdp`, in order.
pub fn sdp_media(sdp: &str) -> Vec<SdpMedia> {
    let mut out: Vec<SdpMedia> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            out.push(SdpMedia {
                kind: match m.split_whitespace().next().unwrap_or_default() {
                    "video" => MediaKind::Video,
                    "audio" => MediaKind::Audio,
                    _ => MediaKind::Other,
                },
                control: None,
                encoding: None,
                clock_rate: None,
            });
            continue;
        }
        let Some(media) = out.last_mut() else {
            continue;
        };
        if let Some(c) = line.strip_prefix("a=control:") {
            media.control.get_or_insert_with(|| c.trim().to_string());
        } else if let Some(r) = line.strip_prefix("a=rtpmap:") {
            // `<pt> <name>/<rate>[/<channels>]`
            let mut spec = r.split_whitespace().nth(1).unwrap_or_default().split('/');
            if media.encoding.is_none() {
                media.encoding = spec.next().map(str::to_ascii_uppercase);
                media.clock_rate = spec.next().and_then(|v| v.parse().ok());
            }
        }
    }
    out
}

/// The media section a SETUP of `uri` is for: the one whose `a=control` the URI ends with
/// (or equals, for an absolute control URL), else the `nth` section (SETUPs in SDP order).
pub fn setup_target(uri: &str, media: &[SdpMedia], nth: usize) -> Option<usize> {
    let matched = media.iter().position(|m| {
        m.control.as_deref().is_some_and(|c| {
            if c.contains("://") {
                c.trim_end_matches('/') == uri.trim_end_matches('/')
            } else {
                let c = c.trim_start_matches('/');
                !c.is_empty() && c != "*" && uri.trim_end_matches('/').ends_with(&format!("/{c}"))
            }
        })
    });
    matched.or_else(|| (nth < media.len()).then_some(nth))
}

/// Records one RTP packet of a track of `kind` received at `at`: every video packet's
/// payload goes into `digest`; a video packet with the marker bit is a frame; an audio packet
/// with it completes `frames` audio frames.
fn record_rtp(
    kind: MediaKind,
    aac: bool,
    data: &[u8],
    at: Instant,
    digest: &mut AuDigest,
    frames: &mut Vec<FrameArrival>,
    audio: &mut Vec<AudioArrival>,
) {
    let Some(h) = rtp_header(data) else {
        return;
    };
    if kind == MediaKind::Video {
        if let Some(payload) = rtp_payload_offset(data).and_then(|o| data.get(o..)) {
            digest.rtp_payload(payload);
        }
    }
    if !h.marker {
        return;
    }
    match kind {
        MediaKind::Video => {
            let (key, hash) = digest.finish();
            frames.push(FrameArrival {
                at,
                timestamp: h.timestamp,
                key,
                hash,
            });
        }
        MediaKind::Audio => {
            let count = if aac {
                rtp_payload_offset(data)
                    .and_then(|o| aac_hbr_frames(data.get(o..).unwrap_or_default()))
                    .unwrap_or(0)
            } else {
                1
            };
            audio.push(AudioArrival {
                at,
                timestamp: h.timestamp,
                frames: count,
            });
        }
        MediaKind::Other => {}
    }
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

/// The sender reports (PT 200) in a compound RTCP packet: sender SSRC, and the NTP and RTP
/// timestamps (RFC 3550 §6.4.1).
pub fn sender_report_times(data: &[u8]) -> Vec<(u32, SenderReport)> {
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
            if let Some(b) = packet.get(4..20) {
                let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                out.push((
                    word(0),
                    SenderReport {
                        ntp: u64::from(word(4)) << 32 | u64::from(word(8)),
                        rtp: word(12),
                    },
                ));
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

/// A track the publisher set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SetupTrack {
    kind: MediaKind,
    /// RFC 3640 (`mpeg4-generic`): audio frames are counted from the AU headers.
    aac: bool,
}

/// The tracks of one RTSP session: the ANNOUNCE's media sections, and where each SETUP's
/// packets arrive.
#[derive(Default)]
struct Tracks {
    media: Vec<SdpMedia>,
    setups: usize,
    /// Interleaved RTP channel of each TCP track.
    interleaved: Vec<(u8, SetupTrack)>,
    /// The access unit being received on an interleaved video track.
    digest: AuDigest,
    /// The receiver of each UDP track.
    udp: Vec<UdpReceiver>,
}

impl Tracks {
    /// The track of the next SETUP, for `uri`.
    fn next_setup(&mut self, uri: &str, session: &mut Session) -> SetupTrack {
        let nth = self.setups;
        self.setups += 1;
        let Some(m) = setup_target(uri, &self.media, nth).and_then(|i| self.media.get(i)) else {
            // No SDP to go by: the first track is the video, the others are not recorded.
            let kind = if nth == 0 {
                MediaKind::Video
            } else {
                MediaKind::Other
            };
            return SetupTrack { kind, aac: false };
        };
        if m.kind == MediaKind::Audio {
            session.audio_clock_rate = m.clock_rate;
        }
        SetupTrack {
            kind: m.kind,
            aac: m.encoding.as_deref() == Some("MPEG4-GENERIC"),
        }
    }

    fn on_interleaved(&mut self, channel: u8, data: &[u8], at: Instant, session: &mut Session) {
        let Some((_, track)) = self.interleaved.iter().find(|(c, _)| *c == channel) else {
            // A track's RTCP channel (the one after its RTP channel): keep its first SR.
            let rtcp = self
                .interleaved
                .iter()
                .find(|(c, _)| c.checked_add(1) == Some(channel));
            if let (Some((_, track)), Some(&(_, sr))) = (rtcp, sender_report_times(data).first()) {
                note_sender_report(track.kind, sr, session);
            }
            return;
        };
        match track.kind {
            MediaKind::Video => {
                session.media_packets += 1;
                session.media_bytes += data.len() as u64;
            }
            MediaKind::Audio => {
                session.audio_packets += 1;
                session.audio_bytes += data.len() as u64;
            }
            MediaKind::Other => return,
        }
        let (kind, aac) = (track.kind, track.aac);
        record_rtp(
            kind,
            aac,
            data,
            at,
            &mut self.digest,
            &mut session.frames,
            &mut session.audio,
        );
    }
}

/// Keeps the first sender report of a track.
fn note_sender_report(kind: MediaKind, sr: SenderReport, session: &mut Session) {
    match kind {
        MediaKind::Video => {
            session.video_sender_report.get_or_insert(sr);
        }
        MediaKind::Audio => {
            session.audio_sender_report.get_or_insert(sr);
        }
        MediaKind::Other => {}
    }
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
    let mut tracks = Tracks {
        digest: AuDigest::new(conn.shared.hash),
        ..Tracks::default()
    };
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
                    let before = session.frames.len();
                    tracks.on_interleaved(channel, data, at, session);
                    conn.count_frames(session.frames.len() - before);
                }
                Item::Request(req) => {
                    if req.method.eq_ignore_ascii_case("RECORD") {
                        session.ready_at.get_or_insert(at);
                    }
                    let udp = UdpContext {
                        media_seen: &conn.media_seen,
                        progress: &conn.shared.progress,
                        hash: conn.shared.hash,
                    };
                    let reply = match answer(&req, &session_id, peer_ip, &mut tracks, session, &udp)
                    {
                        Ok(reply) => reply,
                        Err(e) => break Err(e),
                    };
                    if req.method.eq_ignore_ascii_case("TEARDOWN") {
                        session.ended_cleanly = true;
                        for u in &tracks.udp {
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
    for u in std::mem::take(&mut tracks.udp) {
        let kind = u.track.kind;
        let (tally, sr) = u.finish();
        if let Some(sr) = sr {
            note_sender_report(kind, sr, session);
        }
        match kind {
            MediaKind::Video => {
                session.frames = tally.frames;
                session.media_packets += tally.packets;
                session.media_bytes += tally.bytes;
            }
            MediaKind::Audio => {
                session.audio = tally.audio;
                session.audio_packets += tally.packets;
                session.audio_bytes += tally.bytes;
            }
            MediaKind::Other => {}
        }
    }
    result
}

fn uri_path(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    rest.find('/')
        .map_or(String::new(), |i| rest[i..].to_string())
}

/// What a UDP receiver started by a SETUP shares with its connection and its sink.
struct UdpContext<'a> {
    media_seen: &'a Arc<AtomicBool>,
    progress: &'a Arc<Progress>,
    hash: bool,
}

/// The reply to `req`; an ANNOUNCE names the tracks, a SETUP sets one up (a UDP SETUP
/// starts its receiver).
fn answer(
    req: &Request,
    session_id: &str,
    peer_ip: IpAddr,
    tracks: &mut Tracks,
    session: &mut Session,
    udp: &UdpContext<'_>,
) -> Result<String, String> {
    let cseq = req.header("CSeq").unwrap_or("0");
    let mut extra = String::new();
    match req.method.to_ascii_uppercase().as_str() {
        "OPTIONS" => {
            extra.push_str(
                "Public: OPTIONS, ANNOUNCE, SETUP, RECORD, GET_PARAMETER, SET_PARAMETER, \
                 TEARDOWN\r\n",
            );
        }
        "ANNOUNCE" => {
            session.name = uri_path(&req.uri);
            tracks.media = sdp_media(&String::from_utf8_lossy(&req.body));
        }
        "GET_PARAMETER" | "SET_PARAMETER" => {}
        "SETUP" => {
            let transport = req
                .header("Transport")
                .ok_or("SETUP without a Transport header")?;
            // The first alternative the client offers.
            let offer = transport.split(',').next().unwrap_or_default().trim();
            let nth = tracks.setups;
            let track = tracks.next_setup(&req.uri, session);
            let reply_transport = if offer.to_ascii_uppercase().contains("/TCP") {
                let default = u16::try_from(2 * nth).unwrap_or(u16::MAX);
                let asked = port_pair(offer, "interleaved");
                let (rtp, _) = asked.unwrap_or((default, default.saturating_add(1)));
                let channel = u8::try_from(rtp).map_err(|_| "interleaved channel above 255")?;
                tracks.interleaved.push((channel, track));
                if asked.is_some() {
                    offer.to_string()
                } else {
                    format!("{offer};interleaved={channel}-{}", u16::from(channel) + 1)
                }
            } else {
                let (rtp, rtcp) =
                    port_pair(offer, "client_port").ok_or("UDP SETUP without client_port")?;
                let receiver = UdpReceiver::start(
                    SocketAddr::new(peer_ip, rtp),
                    SocketAddr::new(peer_ip, rtcp),
                    track,
                    udp,
                )
                .map_err(|e| format!("binding UDP ports: {e}"))?;
                let t = format!(
                    "{offer};server_port={}-{}",
                    receiver.rtp_port,
                    receiver.rtp_port + 1
                );
                tracks.udp.push(receiver);
                t
            };
            extra.push_str(&format!("Transport: {reply_transport}\r\n"));
            extra.push_str(&format!("Session: {session_id};timeout=60\r\n"));
        }
        "RECORD" | "TEARDOWN" => {
            extra.push_str(&format!("Session: {session_id}\r\n"));
        }
        _ => {
            return Ok(format!(
                "RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n"
            ))
        }
    }
    Ok(format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n"))
}

/// What the UDP RTP thread received.
#[derive(Debug, Default)]
struct Tally {
    frames: Vec<FrameArrival>,
    audio: Vec<AudioArrival>,
    packets: u64,
    bytes: u64,
}

/// The two threads receiving a UDP session: RTP (recording frames) and RTCP (answering
/// sender reports).
struct UdpReceiver {
    rtp_port: u16,
    track: SetupTrack,
    stop: Arc<AtomicBool>,
    rtp: JoinHandle<Tally>,
    rtcp: JoinHandle<Option<SenderReport>>,
}

impl UdpReceiver {
    fn start(
        peer_rtp: SocketAddr,
        peer_rtcp: SocketAddr,
        track: SetupTrack,
        context: &UdpContext<'_>,
    ) -> std::io::Result<UdpReceiver> {
        let media_seen = Arc::clone(context.media_seen);
        let sink = Arc::clone(context.progress);
        let hash = context.hash;
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
                .spawn(move || {
                    let flags = ReceiveFlags {
                        stop: &stop,
                        progress: &progress,
                        media_seen: &media_seen,
                        sink: &sink,
                    };
                    receive_rtp(&rtp, peer_rtp.ip(), track, hash, &flags)
                })?
        };
        let rtcp = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("sink-rtcp-{rtp_port}"))
                .spawn(move || answer_rtcp(&rtcp, peer_rtcp, &stop, &progress))?
        };
        Ok(UdpReceiver {
            rtp_port,
            track,
            stop,
            rtp,
            rtcp,
        })
    }

    /// Stops receiving (after the drain) and returns what arrived, with the first sender
    /// report.
    fn finish(self) -> (Tally, Option<SenderReport>) {
        self.stop.store(true, Ordering::SeqCst);
        let sr = self.rtcp.join().unwrap_or_default();
        (self.rtp.join().unwrap_or_default(), sr)
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

/// What a UDP RTP receiver reads and updates besides its socket.
struct ReceiveFlags<'a> {
    /// Stop after the drain.
    stop: &'a AtomicBool,
    /// Source SSRC and extended highest sequence, for the receiver reports.
    progress: &'a AtomicU64,
    /// The connection is not idle.
    media_seen: &'a AtomicBool,
    /// The sink's frame counter and kill flag.
    sink: &'a Progress,
}

fn receive_rtp(
    sock: &UdpSocket,
    peer: IpAddr,
    track: SetupTrack,
    hash: bool,
    flags: &ReceiveFlags<'_>,
) -> Tally {
    let ReceiveFlags {
        stop,
        progress,
        media_seen,
        sink,
    } = *flags;
    let mut tally = Tally::default();
    let mut digest = AuDigest::new(hash);
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
                let before = tally.frames.len();
                record_rtp(
                    track.kind,
                    track.aac,
                    data,
                    at,
                    &mut digest,
                    &mut tally.frames,
                    &mut tally.audio,
                );
                let added = tally.frames.len() - before;
                if added > 0 {
                    sink.frames.fetch_add(added as u64, Ordering::SeqCst);
                }
            }
            Err(_) => {
                if stop.load(Ordering::SeqCst) && last_datagram.elapsed() >= UDP_DRAIN_QUIET {
                    return tally;
                }
            }
        }
        if sink.killed.load(Ordering::SeqCst) {
            return tally;
        }
    }
}

/// Answers sender reports until stopped; returns the first one.
fn answer_rtcp(
    sock: &UdpSocket,
    peer: SocketAddr,
    stop: &AtomicBool,
    progress: &AtomicU64,
) -> Option<SenderReport> {
    let mut buf = vec![0u8; 2048];
    let mut first = None;
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if from.ip() != peer.ip() {
            continue;
        }
        let reports = sender_report_times(buf.get(..n).unwrap_or_default());
        if let Some(&(_, sr)) = reports.first() {
            first.get_or_insert(sr);
        }
        let p = progress.load(Ordering::SeqCst);
        let (ssrc, extended) = ((p >> 32) as u32, p as u32);
        if reports.iter().any(|(s, _)| *s == ssrc) {
            let _ = sock.send_to(&receiver_report(ssrc, extended), from);
        }
    }
    first
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
        compound[8..16].copy_from_slice(&[0xE0, 0, 0, 1, 0x80, 0, 0, 0]);
        compound[16..20].copy_from_slice(&90_000u32.to_be_bytes());
        let sr = SenderReport {
            ntp: 0xE000_0001_8000_0000,
            rtp: 90_000,
        };
        assert_eq!(sender_report_times(&compound), vec![(0x1234, sr)]);
        assert!(sender_report_times(&compound[..10]).is_empty());
        // Half a second of NTP time later, 0.5 s of 90 kHz ticks earlier.
        let later = SenderReport {
            ntp: 0xE000_0002_0000_0000,
            rtp: 0,
        };
        assert!((sr.ntp_seconds_until(&later) - 0.5).abs() < 1e-9);
        assert!((sr.seconds_of(45_000, 90_000) + 0.5).abs() < 1e-9);
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

    const AV_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n\
        m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:streamid=0\r\n\
        m=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n\
        a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3\r\n\
        a=control:streamid=1\r\n";

    #[test]
    fn media_sections_and_setup_targets() {
        let media = sdp_media(AV_SDP);
        assert_eq!(media.len(), 2);
        assert_eq!(media[0].kind, MediaKind::Video);
        assert_eq!(media[0].clock_rate, Some(90_000));
        assert_eq!(
            media[1],
            SdpMedia {
                kind: MediaKind::Audio,
                control: Some("streamid=1".into()),
                encoding: Some("MPEG4-GENERIC".into()),
                clock_rate: Some(48_000),
            }
        );
        let base = "rtsp://127.0.0.1:8554/bench";
        assert_eq!(
            setup_target(&format!("{base}/streamid=1"), &media, 0),
            Some(1)
        );
        assert_eq!(
            setup_target(&format!("{base}/streamid=0"), &media, 1),
            Some(0)
        );
        // No match: SDP order.
        assert_eq!(
            setup_target(&format!("{base}/trackID=9"), &media, 1),
            Some(1)
        );
        assert_eq!(setup_target(base, &media, 2), None);
        let absolute = sdp_media("m=audio 0 RTP/AVP 97\r\na=control:rtsp://h/x/a\r\n");
        assert_eq!(setup_target("rtsp://h/x/a", &absolute, 5), Some(0));
    }

    #[test]
    fn aac_hbr_frames_and_rtp_payloads() {
        // Two AU headers (32 bits), then the frames.
        assert_eq!(aac_hbr_frames(&[0, 32, 0, 0x50, 0, 0x50, 1, 2]), Some(2));
        assert_eq!(aac_hbr_frames(&[0, 16, 0, 0x50]), Some(1));
        assert_eq!(aac_hbr_frames(&[0, 32, 0, 0x50]), None);
        assert_eq!(aac_hbr_frames(&[0]), None);
        let mut p = vec![0x80, 97, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(rtp_payload_offset(&p), Some(12));
        // One CSRC and a one-word extension.
        p[0] = 0x91;
        p.extend_from_slice(&[0, 0, 0, 9, 0xBE, 0xDE, 0, 1, 0, 0, 0, 0]);
        assert_eq!(rtp_payload_offset(&p), Some(24));
        assert_eq!(rtp_payload_offset(&p[..18]), None);
    }

    /// A publisher's two SETUPs over TCP (the second without channels: the sink picks 2-3),
    /// then video on 0, audio on 2, an SR on each RTCP channel.
    #[test]
    fn records_both_tracks_of_an_interleaved_session() {
        use std::io::{Read as _, Write as _};
        let sink = super::super::Sink::start(super::super::SinkKind::Rtsp, Duration::from_secs(5))
            .expect("sink");
        let url = sink.url("bench");
        let mut c = std::net::TcpStream::connect(
            url.trim_start_matches("rtsp://")
                .split('/')
                .next()
                .expect("authority"),
        )
        .expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let request = |c: &mut std::net::TcpStream, head: String, body: &str| -> String {
            c.write_all(format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
                .expect("write");
            let mut buf = [0u8; 2048];
            let n = c.read(&mut buf).expect("reply");
            let reply = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(reply.starts_with("RTSP/1.0 200 OK"), "{reply}");
            reply
        };
        request(
            &mut c,
            format!("ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\n"),
            AV_SDP,
        );
        request(
            &mut c,
            format!("SETUP {url}/streamid=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n"),
            "",
        );
        let reply = request(
            &mut c,
            format!("SETUP {url}/streamid=1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;mode=record\r\n"),
            "",
        );
        assert!(reply.contains("interleaved=2-3"), "{reply}");
        request(&mut c, format!("RECORD {url} RTSP/1.0\r\nCSeq: 4\r\n"), "");
        let rtp = |pt_marker: u8, ts: u32, payload: &[u8]| {
            let mut p = vec![0x80, pt_marker, 0, 1];
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 7]);
            p.extend_from_slice(payload);
            p
        };
        let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 7, 0xE0, 0, 0, 1, 0, 0, 0, 0];
        sr.extend_from_slice(&1000u32.to_be_bytes());
        sr.extend_from_slice(&[0; 8]);
        let mut stream = Vec::new();
        for (channel, packet) in [
            (0u8, rtp(0x60, 3000, &[0x7c, 0x85])), // a fragment: no marker
            (0, rtp(0xE0, 3000, &[0x7c, 0x45])),
            (2, rtp(0xE1, 5000, &[0, 32, 0, 8, 0, 8, 1, 2])),
            (3, sr.clone()),
            (1, sr.clone()),
            (2, rtp(0xE1, 7048, &[0, 16, 0, 8, 1])),
        ] {
            stream.extend_from_slice(&[b'$', channel]);
            stream.extend_from_slice(&(packet.len() as u16).to_be_bytes());
            stream.extend_from_slice(&packet);
        }
        c.write_all(&stream).expect("media");
        request(
            &mut c,
            format!("TEARDOWN {url} RTSP/1.0\r\nCSeq: 5\r\n"),
            "",
        );
        drop(c);
        let sessions = sink.finish(1, Duration::from_secs(5));
        let s = &sessions[0];
        assert_eq!(s.error, None);
        assert!(s.ended_cleanly);
        assert_eq!(
            s.frames.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
            vec![3000]
        );
        assert_eq!((s.media_packets, s.audio_packets), (2, 2));
        let audio: Vec<(u32, u32)> = s.audio.iter().map(|a| (a.timestamp, a.frames)).collect();
        assert_eq!(audio, vec![(5000, 2), (7048, 1)]);
        assert_eq!(s.audio_clock_rate, Some(48_000));
        let expected = SenderReport {
            ntp: 0xE000_0001_0000_0000,
            rtp: 1000,
        };
        assert_eq!(s.audio_sender_report, Some(expected));
        assert_eq!(s.video_sender_report, Some(expected));
    }
}
