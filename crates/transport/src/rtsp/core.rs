//! The sans-IO RTSP RECORD publisher: a state machine that takes bytes, datagrams, access units
//! and the time as arguments and hands back bytes to write, events and its next deadline. It
//! never touches a socket or reads a clock; [`super::RtspPublisher`] drives it with tokio.
//!
//! Session flow (RFC 2326 §10, Appendix A.1 client state machine): OPTIONS → ANNOUNCE (SDP)
//! → SETUP of each track (video, then audio, in the same session) → RECORD → media, with
//! keepalives → TEARDOWN. A 401 is answered once per request with the server's challenge,
//! which is then reused for every later request.
//!
//! Each track has its own SSRC, sequence numbers and RTCP: over TCP the interleaved channels
//! `2i` (RTP) and `2i + 1` (RTCP) for track `i`, over UDP its own client port pair. Sender
//! reports of every track take their NTP / RTP timestamp pair from one media clock (RFC 3550
//! §6.4.1): the media time of the last unit sent, moved on by the wall time since, so a
//! receiver can line the tracks up; all tracks share one CNAME (§6.5.1).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::audio::{AudioFrame, AudioTrack};
use crate::h264::{nal_type, nal_unit_type, AccessUnit, VideoTrack};
use crate::rtcp::{self, NtpTimestamp, ReportBlock, RtcpPacket, SenderInfo};
use crate::rtp::{default_payload_type, AudioPacketizer, Packetizer, PacketizerConfig, RtpPacket};
use crate::session::later;
use crate::session::{
    Chunks, Media, MediaError, PublisherStats, ReceptionReport, SessionCore, SessionEvent, Track,
    Transmit,
};
use crate::{redact_url, Transport};

use super::auth::{best_challenge, parse_challenges, Authenticator, Challenge};
use super::error::{Method, RtspError, StatusError, Step};
use super::headers::{public_lists, SessionHeader, TransportHeader};
use super::message::{response_bytes, Incoming, MessageDecoder, Request, Response};
use super::sdp::{self, SdpMedia, SdpParams};
use super::url::RtspUrl;

/// Fills in the length of an interleaved frame (RFC 2326 §10.12: `$`, channel, 16-bit
/// length, data) whose header was written with a zero length.
fn set_interleaved_length(buf: &mut BytesMut) {
    let len = u16::try_from(buf.len().saturating_sub(4)).unwrap_or(u16::MAX);
    if let Some(b) = buf.get_mut(2..4) {
        b.copy_from_slice(&len.to_be_bytes());
    }
}

/// How many abandoned requests' CSeqs are remembered (one at a time is outstanding, so a
/// handful covers every late reply a session can see).
const ABANDONED_KEPT: usize = 8;

/// `Transport::Auto` over TCP: how long after RECORD the publisher waits, with an RTCP
/// packet sent interleaved, for a server that answers interleaved data with error replies
/// before it starts the media (and falls back to UDP if one comes).
pub const INTERLEAVED_PROBE: Duration = Duration::from_millis(500);

/// Settings of an RTSP publisher. Start from [`RtspOptions::default`] and change what differs
/// with the `with_*` setters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtspOptions {
    /// TCP interleaved (default), UDP, or auto (TCP, then UDP when the server refuses TCP:
    /// 461/501 to SETUP, or error replies to the interleaved data at the start).
    pub transport: Transport,
    /// Limit for resolving the host and opening the connection (default 5 s).
    pub connect_timeout: Duration,
    /// Limit for each request's reply, and for a stalled write (default 10 s).
    pub request_timeout: Duration,
    /// Limit for the reply to TEARDOWN (default 2 s). Every frame has left by then: a server
    /// that never answers it does not fail a push that delivered everything.
    pub teardown_timeout: Duration,
    /// Session timeout assumed when the server's `Session` header names none (RFC 2326 §12.37:
    /// 60 s). Keepalives go out at half of it.
    pub default_session_timeout: Duration,
    /// Interval of RTCP sender reports (default 5 s, RFC 3550 §6.2).
    pub sender_report_interval: Duration,
    /// UDP only: at close, how long to wait for a receiver report acknowledging the last
    /// packet before TEARDOWN (default 1 s).
    pub udp_close_wait: Duration,
    /// After TEARDOWN was answered, how long to wait for the server to close the connection
    /// once our side is closed (default 1 s; closing with unread data would reset it).
    pub shutdown_wait: Duration,
    /// Bytes of media the publisher queues before `send` waits (default 1 MiB).
    pub send_queue_bytes: usize,
    /// Put the track's SPS and PPS in front of key frames that carry none in-band (default
    /// true): late joiners and recorders then find them in the stream, not only in the SDP.
    pub prepend_parameter_sets: bool,
    /// `User-Agent` header.
    pub user_agent: String,
    /// SDP `s=` line.
    pub session_name: String,
    /// RTP payload type, payload size, and optional fixed SSRC / sequence / timestamp offset.
    pub packetizer: PacketizerConfig,
    /// The same for the audio track. Its payload type is used for codecs without a static
    /// one (AAC, Opus: default 97); PCMU, PCMA and MP3 always use theirs (0, 8, 14).
    pub audio_packetizer: PacketizerConfig,
    /// The longest span of audio one RTP packet carries. Default zero: each frame in its own
    /// packet, sent when it is due, as the video is (GStreamer's payloaders do the same). With
    /// a bound, consecutive AAC frames share a packet while they fit it and the payload limit
    /// (50 ms puts two frames of 1024 samples at 44.1 or 48 kHz in a packet: fewer packets,
    /// and the first frame of each waits one frame for the second).
    pub audio_aggregation: Duration,
    /// Certificate checks of `rtsps://` connections (default: verified against the system's
    /// CAs); unused for `rtsp://`.
    pub tls: crate::tls::TlsOptions,
}

impl Default for RtspOptions {
    fn default() -> Self {
        RtspOptions {
            transport: Transport::Tcp,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            teardown_timeout: Duration::from_secs(2),
            default_session_timeout: Duration::from_secs(60),
            sender_report_interval: Duration::from_secs(5),
            udp_close_wait: Duration::from_secs(1),
            shutdown_wait: Duration::from_secs(1),
            send_queue_bytes: 1 << 20,
            prepend_parameter_sets: true,
            user_agent: concat!("mpegcoder/", env!("CARGO_PKG_VERSION")).to_string(),
            session_name: "mpegcoder".to_string(),
            packetizer: PacketizerConfig::default(),
            audio_packetizer: PacketizerConfig::default()
                .with_payload_type(default_payload_type(crate::audio::AudioCodec::Aac)),
            audio_aggregation: Duration::ZERO,
            tls: crate::tls::TlsOptions::default(),
        }
    }
}

impl RtspOptions {
    /// The certificate checks of `rtsps://` connections.
    pub fn with_tls(mut self, tls: crate::tls::TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// The options with another transport.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The limit for resolving the host and opening the connection.
    pub fn with_connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// The limit for each request's reply and for a stalled write.
    pub fn with_request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// The session timeout assumed when the server names none.
    pub fn with_default_session_timeout(mut self, timeout: Duration) -> Self {
        self.default_session_timeout = timeout;
        self
    }

    /// The interval of RTCP sender reports.
    pub fn with_sender_report_interval(mut self, interval: Duration) -> Self {
        self.sender_report_interval = interval;
        self
    }

    /// UDP only: the wait at close for a receiver report acknowledging the last packet.
    pub fn with_udp_close_wait(mut self, wait: Duration) -> Self {
        self.udp_close_wait = wait;
        self
    }

    /// The wait for the server to close the connection after TEARDOWN was answered.
    pub fn with_shutdown_wait(mut self, wait: Duration) -> Self {
        self.shutdown_wait = wait;
        self
    }

    /// The bytes of media queued before `send` waits.
    pub fn with_send_queue_bytes(mut self, bytes: usize) -> Self {
        self.send_queue_bytes = bytes;
        self
    }

    /// Whether key frames without in-band SPS/PPS get the track's put in front.
    pub fn with_prepend_parameter_sets(mut self, prepend: bool) -> Self {
        self.prepend_parameter_sets = prepend;
        self
    }

    /// The `User-Agent` header.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The SDP `s=` line.
    pub fn with_session_name(mut self, name: impl Into<String>) -> Self {
        self.session_name = name.into();
        self
    }

    /// The RTP packetizer settings.
    pub fn with_packetizer(mut self, packetizer: PacketizerConfig) -> Self {
        self.packetizer = packetizer;
        self
    }

    /// The RTP packetizer settings of the audio track.
    pub fn with_audio_packetizer(mut self, packetizer: PacketizerConfig) -> Self {
        self.audio_packetizer = packetizer;
        self
    }

    /// The longest span of audio one RTP packet carries (zero: one frame per packet).
    pub fn with_audio_aggregation(mut self, span: Duration) -> Self {
        self.audio_aggregation = span;
        self
    }
}

/// What the driver knows about the connection when it creates the core.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The server's address (the peer of the TCP connection): `c=` in the SDP, and where UDP
    /// media goes.
    pub server_ip: IpAddr,
    /// Our address on the connection (`o=` in the SDP).
    pub local_ip: IpAddr,
    /// UDP only: our RTP and RTCP ports (an even/odd pair, RFC 3550 §11), one pair per
    /// track in the order of the tracks. Empty over TCP.
    pub client_ports: Vec<(u16, u16)>,
    /// A random value: the SDP session id, Digest client nonces and the RTCP CNAME derive
    /// from it.
    pub seed: u64,
}

/// Counters of a publishing session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishStats {
    /// RTP packets of video sent.
    pub packets: u64,
    /// RTP payload octets of video sent (headers excluded, as in RTCP sender reports).
    pub octets: u64,
    /// Access units sent.
    pub frames: u64,
    /// RTP packets of audio sent.
    pub audio_packets: u64,
    /// RTP payload octets of audio sent.
    pub audio_octets: u64,
    /// Audio frames sent (or held back for the next packet).
    pub audio_frames: u64,
    /// Replies without a CSeq header, matched to no request (RFC 2326 §12.17).
    pub replies_without_cseq: u64,
    /// The server did not answer TEARDOWN in time (the session still ended cleanly).
    pub teardown_unanswered: bool,
    /// The lower transport in use (UDP after an `Auto` fallback).
    pub transport: Transport,
}

/// The media transport the server accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegotiatedTransport {
    /// Interleaved on the RTSP connection.
    Tcp {
        /// Channel of RTP packets.
        rtp_channel: u8,
        /// Channel of RTCP packets.
        rtcp_channel: u8,
    },
    /// UDP.
    Udp {
        /// Where RTP goes.
        server_rtp: SocketAddr,
        /// Where RTCP goes.
        server_rtcp: SocketAddr,
        /// Our RTP and RTCP ports.
        client_ports: (u16, u16),
    },
}

/// What the server accepted for one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedTrack {
    /// `video` or `audio`.
    pub kind: &'static str,
    /// The media transport.
    pub transport: NegotiatedTransport,
    /// The URL its SETUP was sent to (without credentials).
    pub setup_url: String,
    /// Its RTP SSRC.
    pub ssrc: u32,
    /// Its RTP payload type.
    pub payload_type: u8,
}

/// The outcome of the setup, once RECORD is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The session identifier.
    pub session_id: String,
    /// The session timeout (from the server, or the default).
    pub session_timeout: Duration,
    /// The media transport of the first track.
    pub transport: NegotiatedTransport,
    /// The URL the first track's SETUP was sent to (without credentials).
    pub setup_url: String,
    /// The first track's RTP SSRC.
    pub ssrc: u32,
    /// The method used for keepalives.
    pub keepalive: Method,
    /// Every track, in the order of the SDP.
    pub tracks: Vec<NegotiatedTrack>,
}

/// Where the publisher is in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Waiting for the reply to OPTIONS.
    Options,
    /// Waiting for the reply to ANNOUNCE.
    Announce,
    /// Waiting for the reply to a SETUP.
    Setup,
    /// Waiting for the reply to RECORD.
    Record,
    /// `Transport::Auto` over TCP, RECORD answered: waiting [`INTERLEAVED_PROBE`] for error
    /// replies to an interleaved RTCP packet before the media starts.
    Probing,
    /// Recording: media flows.
    Recording,
    /// UDP close: waiting for a receiver report that acknowledges the last packet.
    Draining,
    /// Waiting for the reply to TEARDOWN.
    Teardown,
    /// TEARDOWN answered: our side of the connection is closed, waiting (briefly) for the
    /// server to close its side.
    ShuttingDown,
    /// The session is over.
    Closed,
    /// A fatal error happened.
    Failed,
}

#[derive(Debug)]
struct Pending {
    method: Method,
    cseq: u32,
    uri: String,
    extra: Vec<(String, String)>,
    body: Bytes,
    deadline: Instant,
    /// Authorization was sent with this attempt.
    with_auth: bool,
    attempts: u8,
}

/// The sans-IO RTSP RECORD publisher.
///
/// Drive it with:
/// - [`handle_input`](Self::handle_input): bytes read from the RTSP connection;
/// - [`handle_rtcp`](Self::handle_rtcp): datagrams from our UDP RTCP port;
/// - [`handle_eof`](Self::handle_eof): the server closed the connection;
/// - [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout);
/// - [`send`](Self::send) for each access unit while [`can_send`](Self::can_send);
/// - [`close`](Self::close) to end the session.
///
/// After each call, write out [`poll_transmit`](Self::poll_transmit) and read
/// [`poll_event`](Self::poll_event) until they return `None`.
#[derive(Debug)]
pub struct RtspPublisherCore {
    url: RtspUrl,
    base: RtspUrl,
    /// The video track, for the SDP and the parameter sets put in front of key frames.
    video: Option<VideoTrack>,
    /// The audio track, for the SDP.
    audio_track: Option<AudioTrack>,
    /// The tracks, in SDP order.
    tracks: Vec<MediaTrack>,
    /// The track whose SETUP is under way.
    setup_index: usize,
    /// The lower transport in use: the asked one, or TCP then maybe UDP for `Auto`.
    transport: Transport,
    /// End of the interleaved probe ([`State::Probing`]).
    probe_deadline: Option<Instant>,
    opts: RtspOptions,
    conn: ConnectionInfo,
    state: State,
    cseq: u32,
    pending: Option<Pending>,
    decoder: MessageDecoder,
    auth: Option<Authenticator>,
    keepalive: Method,
    session: Option<SessionHeader>,
    negotiated: Option<Negotiated>,
    scratch: Vec<RtpPacket>,
    transmits: VecDeque<Transmit>,
    /// Bytes of media and requests queued and not yet taken by `poll_transmit`.
    queued: usize,
    /// Bytes of stream transmits queued or taken but not yet reported written.
    unwritten: usize,
    /// Since when bytes have waited to be written without any progress.
    stall_since: Option<Instant>,
    bytes_written: u64,
    events: VecDeque<SessionEvent>,
    failure: Option<RtspError>,
    receiver_reports: u64,
    /// Replies without a CSeq header, ignored (RFC 2326 §12.17).
    replies_without_cseq: u64,
    /// TEARDOWN got no reply within [`RtspOptions::teardown_timeout`].
    teardown_unanswered: bool,
    /// CSeqs of requests given up without their reply (a keepalive outstanding when
    /// TEARDOWN went out): a late reply to one of them is ignored, not taken as an error.
    abandoned: VecDeque<u32>,
    server_bye: bool,
    shutdown_deadline: Option<Instant>,
    next_keepalive: Option<Instant>,
    next_sr: Option<Instant>,
    drain_deadline: Option<Instant>,
    /// The media clock of every track's sender reports: a media time (nanoseconds, the
    /// timeline of the units' timestamps) and the instant it corresponds to; see
    /// [`RtspPublisherCore::observe_media_time`].
    sr_reference: Option<(i128, Instant)>,
    wall_anchor: (Instant, SystemTime),
    /// The oldest audio frame held back for aggregation (its RTP timestamp) and when it must
    /// go at the latest.
    audio_flush: Option<(u32, Instant)>,
    cname: String,
}

/// How one track's units become RTP packets.
#[derive(Debug)]
enum Packer {
    Video(Packetizer),
    Audio(AudioPacketizer),
}

/// One track of the session: its packetizer, what SETUP negotiated, what receivers reported.
#[derive(Debug)]
struct MediaTrack {
    kind: &'static str,
    control: String,
    packer: Packer,
    transport: Option<NegotiatedTransport>,
    setup_url: String,
    frames: u64,
    first_sequence: Option<u16>,
    /// Highest extended sequence number the server acknowledged.
    acked: Option<u32>,
    reception: Option<ReceptionReport>,
    /// A sender report went out for this track.
    reported: bool,
}

impl MediaTrack {
    /// Track `index` of the session: `a=control:streamid=<index>`.
    fn new(kind: &'static str, packer: Packer, index: usize) -> MediaTrack {
        MediaTrack {
            kind,
            control: format!("streamid={index}"),
            packer,
            transport: None,
            setup_url: String::new(),
            frames: 0,
            first_sequence: None,
            acked: None,
            reception: None,
            reported: false,
        }
    }

    fn ssrc(&self) -> u32 {
        match &self.packer {
            Packer::Video(p) => p.ssrc(),
            Packer::Audio(p) => p.ssrc(),
        }
    }

    fn payload_type(&self) -> u8 {
        match &self.packer {
            Packer::Video(p) => p.payload_type(),
            Packer::Audio(p) => p.payload_type(),
        }
    }

    fn packets_sent(&self) -> u64 {
        match &self.packer {
            Packer::Video(p) => p.packets_sent(),
            Packer::Audio(p) => p.packets_sent(),
        }
    }

    fn octets_sent(&self) -> u64 {
        match &self.packer {
            Packer::Video(p) => p.octets_sent(),
            Packer::Audio(p) => p.octets_sent(),
        }
    }

    fn clock_rate(&self) -> u32 {
        match &self.packer {
            Packer::Video(_) => 90_000,
            Packer::Audio(p) => p.clock_rate(),
        }
    }

    fn timestamp_offset(&self) -> u32 {
        match &self.packer {
            Packer::Video(p) => p.timestamp_offset(),
            Packer::Audio(p) => p.timestamp_offset(),
        }
    }

    /// True when a receiver report covered the track's last packet: its extended highest
    /// sequence number (cycles counted from our first packet, RFC 3550 A.1) reached ours.
    fn all_acknowledged(&self) -> bool {
        let sent = self.packets_sent();
        let Some(first) = self.first_sequence else {
            return true;
        };
        if sent == 0 {
            return true;
        }
        let last_ext = u64::from(first) + sent - 1;
        self.acked.is_some_and(|a| u64::from(a) >= last_ext)
    }
}

impl RtspPublisherCore {
    /// Creates the core and queues the first request (OPTIONS). `now` and `wall` are read
    /// together by the driver; later wall-clock times (for RTCP) are derived from `now`.
    pub fn new(
        url: RtspUrl,
        tracks: &[Track],
        opts: RtspOptions,
        conn: ConnectionInfo,
        now: Instant,
        wall: SystemTime,
    ) -> Result<RtspPublisherCore, RtspError> {
        let video = tracks.iter().find_map(Track::video).cloned();
        let audio = tracks.iter().find_map(Track::audio);
        if video.is_none() && audio.is_none() {
            return Err(MediaError::NoTrack { kind: "video" }.into());
        }
        let mut media = Vec::with_capacity(2);
        let mut video_ssrc = None;
        if video.is_some() {
            let packetizer = Packetizer::try_new(opts.packetizer).map_err(RtspError::Packetize)?;
            video_ssrc = Some(packetizer.ssrc());
            media.push(MediaTrack::new(
                "video",
                Packer::Video(packetizer),
                media.len(),
            ));
        }
        if let Some(audio) = audio {
            let packetizer = audio_packetizer(audio, &opts, video_ssrc)?;
            media.push(MediaTrack::new(
                "audio",
                Packer::Audio(packetizer),
                media.len(),
            ));
        }
        // Auto starts on TCP; it can fall back to UDP only with a port pair per track.
        let transport = match opts.transport {
            Transport::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        if transport == Transport::Udp && conn.client_ports.len() < media.len() {
            return Err(RtspError::Protocol {
                method: Method::Setup,
                reason: format!(
                    "UDP transport needs a local client port pair per track ({} for {} tracks)",
                    conn.client_ports.len(),
                    media.len()
                ),
                url: url.to_string(),
            });
        }
        let cname = format!("mpegcoder-{:016x}@{}", conn.seed, conn.local_ip);
        let mut core = RtspPublisherCore {
            base: url.clone(),
            url,
            video,
            audio_track: audio.cloned(),
            tracks: media,
            setup_index: 0,
            transport,
            probe_deadline: None,
            opts,
            conn,
            state: State::Options,
            cseq: 0,
            pending: None,
            decoder: MessageDecoder::new(),
            auth: None,
            keepalive: Method::Options,
            session: None,
            negotiated: None,
            scratch: Vec::new(),
            transmits: VecDeque::new(),
            queued: 0,
            unwritten: 0,
            stall_since: None,
            bytes_written: 0,
            events: VecDeque::new(),
            failure: None,
            receiver_reports: 0,
            replies_without_cseq: 0,
            teardown_unanswered: false,
            abandoned: VecDeque::new(),
            server_bye: false,
            shutdown_deadline: None,
            next_keepalive: None,
            next_sr: None,
            drain_deadline: None,
            sr_reference: None,
            wall_anchor: (now, wall),
            audio_flush: None,
            cname,
        };
        let uri = core.url.as_str().to_string();
        core.request(now, Method::Options, uri, Vec::new(), Bytes::new());
        Ok(core)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The negotiated session, once recording.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> PublishStats {
        let mut s = PublishStats {
            replies_without_cseq: self.replies_without_cseq,
            teardown_unanswered: self.teardown_unanswered,
            transport: self.transport,
            ..PublishStats::default()
        };
        for t in &self.tracks {
            match t.packer {
                Packer::Video(_) => {
                    s.packets += t.packets_sent();
                    s.octets += t.octets_sent();
                    s.frames += t.frames;
                }
                Packer::Audio(_) => {
                    s.audio_packets += t.packets_sent();
                    s.audio_octets += t.octets_sent();
                    s.audio_frames += t.frames;
                }
            }
        }
        s
    }

    /// Bytes queued for transmission and not yet taken by [`poll_transmit`](Self::poll_transmit).
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// True when recording and the send queue is under its limit: [`send`](Self::send) will
    /// accept an access unit.
    pub fn can_send(&self) -> bool {
        self.state == State::Recording && self.queued < self.opts.send_queue_bytes
    }

    /// The next thing to write, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front()?;
        self.queued = self.queued.saturating_sub(t.len());
        Some(t)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Counters in the form every session reports them.
    pub fn publisher_stats(&self) -> PublisherStats {
        let s = self.stats();
        PublisherStats {
            frames: s.frames,
            bytes: s.octets,
            audio_frames: s.audio_frames,
            audio_bytes: s.audio_octets,
            bytes_written: self.bytes_written,
            // The first track's (the video's when there is video), else any track's.
            reception: self.tracks.iter().find_map(|t| t.reception),
            receiver_reports: self.receiver_reports,
            server_bye: self.server_bye,
            protocol: crate::session::ProtocolStats::Rtsp(self.stats()),
            ..PublisherStats::default()
        }
    }

    /// `bytes` more of the stream transmits were written to the connection.
    pub fn handle_written(&mut self, now: Instant, bytes: usize) {
        self.unwritten = self.unwritten.saturating_sub(bytes);
        self.bytes_written += bytes as u64;
        self.stall_since = (self.unwritten > 0).then_some(now);
    }

    /// The error the session failed with, if it failed.
    pub fn failure(&self) -> Option<&RtspError> {
        self.failure.as_ref()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        };
        consider(self.pending.as_ref().map(|p| p.deadline));
        if !matches!(self.state, State::Closed | State::Failed) {
            consider(
                self.stall_since
                    .map(|t| later(t, self.opts.request_timeout)),
            );
        }
        consider(self.shutdown_deadline);
        match self.state {
            State::Recording => {
                if self.pending.is_none() {
                    consider(self.next_keepalive);
                }
                consider(self.next_sr);
                consider(self.audio_flush.map(|(_, at)| at));
            }
            State::Draining => consider(self.drain_deadline),
            State::Probing => consider(self.probe_deadline),
            _ => {}
        }
        t
    }

    fn url_string(&self) -> String {
        self.url.to_string()
    }

    fn fail(&mut self, e: RtspError) -> RtspError {
        self.state = State::Failed;
        self.pending = None;
        self.shutdown_deadline = None;
        self.failure.get_or_insert_with(|| e.clone());
        e
    }

    /// Gives up the outstanding request, if any, remembering its CSeq so its reply, should
    /// it still come, is recognised as late rather than as a server error.
    fn abandon_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            if self.abandoned.len() >= ABANDONED_KEPT {
                self.abandoned.pop_front();
            }
            self.abandoned.push_back(p.cseq);
        }
    }

    fn push_transmit(&mut self, now: Instant, t: Transmit) {
        let len = t.len();
        self.queued += len;
        if matches!(t, Transmit::Stream(_)) && len > 0 {
            self.unwritten += len;
            self.stall_since.get_or_insert(now);
        }
        self.transmits.push_back(t);
    }

    /// TEARDOWN answered (or nothing to tear down): close our side once everything queued is
    /// written, then wait briefly for the server to close its side.
    fn start_shutdown(&mut self, now: Instant) {
        self.abandon_pending();
        self.state = State::ShuttingDown;
        self.push_transmit(now, Transmit::Shutdown);
        self.shutdown_deadline = Some(later(now, self.opts.shutdown_wait));
    }

    fn finish_closed(&mut self) {
        self.state = State::Closed;
        self.pending = None;
        self.shutdown_deadline = None;
        self.events.push_back(SessionEvent::Closed);
    }

    fn wall_at(&self, now: Instant) -> SystemTime {
        let (at, wall) = self.wall_anchor;
        match now.checked_duration_since(at) {
            Some(d) => wall.checked_add(d).unwrap_or(wall),
            None => wall.checked_sub(at.duration_since(now)).unwrap_or(wall),
        }
    }

    // ---- requests ------------------------------------------------------------------------

    fn request(
        &mut self,
        now: Instant,
        method: Method,
        uri: String,
        extra: Vec<(String, String)>,
        body: Bytes,
    ) {
        self.send_pending(
            now,
            Pending {
                method,
                cseq: 0,
                uri,
                extra,
                body,
                deadline: now,
                with_auth: false,
                attempts: 0,
            },
        );
    }

    /// (Re)sends a request with a fresh CSeq (RFC 2326 §12.17) and current credentials.
    fn send_pending(&mut self, now: Instant, mut p: Pending) {
        self.cseq = self.cseq.wrapping_add(1);
        p.cseq = self.cseq;
        p.deadline = later(
            now,
            if p.method == Method::Teardown {
                self.opts.teardown_timeout
            } else {
                self.opts.request_timeout
            },
        );
        let mut headers = vec![
            ("CSeq".to_string(), p.cseq.to_string()),
            ("User-Agent".to_string(), self.opts.user_agent.clone()),
        ];
        if let Some(s) = &self.session {
            headers.push(("Session".to_string(), s.id.clone()));
        }
        p.with_auth = false;
        if let (Some(auth), Some(creds)) = (self.auth.as_mut(), self.url.credentials()) {
            let value = auth.authorization(creds, p.method.as_str(), &p.uri);
            headers.push(("Authorization".to_string(), value));
            p.with_auth = true;
        }
        headers.extend(p.extra.iter().cloned());
        // The request goes to the real URI (a query token is the server's to read); only
        // messages and logs show it redacted.
        let req = Request {
            method: p.method.as_str(),
            uri: p.uri.clone(),
            headers,
            body: p.body.clone(),
        };
        tracing::debug!(
            method = p.method.as_str(),
            uri = %redact_url(&p.uri),
            cseq = p.cseq,
            "RTSP request"
        );
        self.push_transmit(now, Transmit::Stream(Chunks::bytes(req.to_bytes())));
        self.pending = Some(p);
    }

    fn send_announce(&mut self, now: Instant) {
        let params = SdpParams {
            session_id: self.conn.seed >> 1,
            local_ip: self.conn.local_ip,
            server_ip: self.conn.server_ip,
            session_name: self.opts.session_name.clone(),
        };
        let described: Vec<Track> = self
            .tracks
            .iter()
            .map(|t| match &t.packer {
                Packer::Video(_) => self.video.clone().map(Track::H264),
                Packer::Audio(_) => self.audio_track.clone().map(Track::Audio),
            })
            .collect::<Option<Vec<Track>>>()
            .unwrap_or_default();
        let medias: Vec<SdpMedia<'_>> = described
            .iter()
            .zip(&self.tracks)
            .map(|(track, t)| SdpMedia {
                track,
                payload_type: t.payload_type(),
                control: &t.control,
            })
            .collect();
        let body = Bytes::from(sdp::to_bytes(&medias, &params));
        let uri = self.url.as_str().to_string();
        self.state = State::Announce;
        self.request(
            now,
            Method::Announce,
            uri,
            vec![("Content-Type".into(), "application/sdp".into())],
            body,
        );
    }

    /// SETUP of track `index` (RFC 2326 §10.4): its control URL and transport, interleaved
    /// channels `2i`–`2i+1` over TCP, its own client port pair over UDP.
    fn send_setup(&mut self, now: Instant, index: usize) -> Result<(), RtspError> {
        let control = self
            .tracks
            .get(index)
            .map(|t| t.control.clone())
            .unwrap_or_default();
        let setup_url = self.base.join_control(&control)?;
        let transport = match (self.transport, self.conn.client_ports.get(index)) {
            (Transport::Udp, Some((rtp, rtcp))) => {
                format!("RTP/AVP;unicast;client_port={rtp}-{rtcp};mode=record")
            }
            _ => format!(
                "RTP/AVP/TCP;unicast;interleaved={}-{};mode=record",
                2 * index,
                2 * index + 1
            ),
        };
        let uri = setup_url.as_str().to_string();
        self.setup_index = index;
        self.state = State::Setup;
        self.request(
            now,
            Method::Setup,
            uri,
            vec![("Transport".into(), transport)],
            Bytes::new(),
        );
        Ok(())
    }

    fn send_teardown(&mut self, now: Instant) {
        if self.session.is_none() {
            self.start_shutdown(now);
            return;
        }
        self.state = State::Teardown;
        let uri = self.base.as_str().to_string();
        self.request(now, Method::Teardown, uri, Vec::new(), Bytes::new());
    }

    // ---- input ---------------------------------------------------------------------------

    /// Handles bytes read from the RTSP connection: replies, requests from the server, and
    /// interleaved RTCP (RFC 2326 §10.12). A fatal error puts the core in [`State::Failed`].
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), RtspError> {
        if matches!(
            self.state,
            State::Failed | State::Closed | State::ShuttingDown
        ) {
            return Ok(());
        }
        self.decoder.push(data);
        loop {
            let msg = match self.decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let err = RtspError::MalformedReply {
                        offset: e.offset,
                        reason: e.reason,
                        seen: self.decoder.excerpt(),
                        url: self.url_string(),
                    };
                    return Err(self.fail(err));
                }
            };
            match msg {
                Incoming::Data { channel, payload } => {
                    let rtcp = self.tracks.iter().any(|t| {
                        matches!(t.transport, Some(NegotiatedTransport::Tcp { rtcp_channel, .. })
                            if rtcp_channel == channel)
                    });
                    if rtcp {
                        self.handle_rtcp(now, &payload);
                    }
                }
                Incoming::Request(req) => {
                    // RFC 2326 §10: a server may send OPTIONS (keepalive), GET_PARAMETER,
                    // SET_PARAMETER, ANNOUNCE or REDIRECT. We answer what we can.
                    let (status, reason) = match req.method.as_str() {
                        "OPTIONS" | "GET_PARAMETER" | "SET_PARAMETER" => (200, "OK"),
                        _ => (501, "Not Implemented"),
                    };
                    tracing::debug!(method = %req.method, status, "RTSP request from the server");
                    let bytes = response_bytes(status, reason, req.headers.cseq());
                    self.push_transmit(now, Transmit::Stream(Chunks::bytes(bytes)));
                }
                Incoming::Response(resp) => {
                    if let Err(e) = self.handle_response(now, resp) {
                        return Err(self.fail(e));
                    }
                    if matches!(
                        self.state,
                        State::Failed | State::Closed | State::ShuttingDown
                    ) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Handles a datagram received on our RTCP port (UDP), or an interleaved RTCP frame.
    /// Malformed RTCP is ignored (RFC 3550 §6.1: receivers drop invalid packets).
    pub fn handle_rtcp(&mut self, now: Instant, data: &[u8]) {
        let Ok(packets) = rtcp::parse_compound(data) else {
            return;
        };
        let arrival = NtpTimestamp::from_system_time(self.wall_at(now)).middle32();
        for p in &packets {
            for block in p.report_blocks() {
                // The report block names the source it is about (RFC 3550 §6.4.1).
                let Some(t) = self.tracks.iter_mut().find(|t| t.ssrc() == block.ssrc) else {
                    continue;
                };
                let ext = block.extended_highest_sequence;
                t.acked = Some(t.acked.map_or(ext, |a| a.max(ext)));
                let report = reception_report(block, arrival, t.clock_rate());
                t.reception = Some(report);
                self.receiver_reports += 1;
                self.events.push_back(SessionEvent::ReceiverReport(report));
            }
            if matches!(p, RtcpPacket::Bye { .. }) {
                self.server_bye = true;
                self.events.push_back(SessionEvent::ServerBye);
            }
        }
        if self.state == State::Draining && self.all_acknowledged() {
            self.finish_draining(now);
        }
    }

    /// True when receiver reports covered the last packet of every track.
    fn all_acknowledged(&self) -> bool {
        self.tracks.iter().all(MediaTrack::all_acknowledged)
    }

    /// The server closed the connection (read returned 0 bytes).
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), RtspError> {
        let _ = now;
        match self.state {
            State::Closed | State::Failed => Ok(()),
            State::Teardown | State::Draining | State::ShuttingDown => {
                // Our RTCP BYE was sent: some servers (ffmpeg's listener) end the session on
                // it and close without waiting for, or answering, TEARDOWN.
                self.finish_closed();
                Ok(())
            }
            _ => {
                let during = match &self.pending {
                    Some(p) => format!("while waiting for the reply to {}", p.method),
                    None => "while recording".to_string(),
                };
                let e = RtspError::ConnectionClosed {
                    during,
                    url: self.url_string(),
                };
                Err(self.fail(e))
            }
        }
    }

    /// An error reply that answers no request, while RTP goes interleaved on the connection:
    /// the server reads our `$` frames as requests (RFC 2326 §10.12) and rejects them. It
    /// arrives as soon as the first frame is read, so the session stops at once.
    fn check_interleaved_rejected(&self, resp: &Response) -> Result<(), RtspError> {
        let media_flowing = matches!(
            self.state,
            State::Probing | State::Recording | State::Draining | State::Teardown
        );
        let interleaved = self
            .tracks
            .iter()
            .any(|t| matches!(t.transport, Some(NegotiatedTransport::Tcp { .. })));
        if media_flowing && interleaved && resp.status >= 400 {
            return Err(RtspError::InterleavedRejected {
                status: resp.status,
                reason: resp.reason.clone(),
                url: self.url_string(),
            });
        }
        Ok(())
    }

    /// True when an `Auto` session may still switch the SETUP of the first track to UDP.
    fn may_fall_back_to_udp(&self) -> bool {
        self.opts.transport == Transport::Auto
            && self.transport == Transport::Tcp
            && self.setup_index == 0
            && self.conn.client_ports.len() >= self.tracks.len()
    }

    fn status_error(&self, p: &Pending, resp: &Response) -> StatusError {
        StatusError {
            method: p.method,
            status: resp.status,
            reason: resp.reason.clone(),
            url: redact_url(&p.uri),
            cseq: p.cseq,
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Response) -> Result<(), RtspError> {
        let Some(cseq) = resp.headers.cseq() else {
            // RFC 2326 §12.17: every reply carries its request's CSeq. One without it answers
            // nothing we can tell: never take it as the reply to the pending request.
            self.replies_without_cseq += 1;
            tracing::debug!(
                status = resp.status,
                reason = %resp.reason,
                count = self.replies_without_cseq,
                "RTSP reply without CSeq ignored"
            );
            return self.check_interleaved_rejected(&resp);
        };
        if self.abandoned.contains(&cseq) {
            // The late reply to a request given up (a keepalive outstanding at TEARDOWN).
            tracing::debug!(cseq, status = resp.status, "late RTSP reply ignored");
            return Ok(());
        }
        let Some(p) = self.pending.take() else {
            // An unsolicited reply: nothing asked for it.
            tracing::debug!(cseq, status = resp.status, "unsolicited RTSP reply ignored");
            return self.check_interleaved_rejected(&resp);
        };
        if cseq != p.cseq {
            // One request is outstanding at a time, and this CSeq is neither its own nor an
            // abandoned one's: the server's mistake. Waiting would only end in the timeout.
            let reason = format!(
                "the server replied {} {} with CSeq {cseq} to the request with CSeq {}",
                resp.status, resp.reason, p.cseq
            );
            let e = RtspError::Protocol {
                method: p.method,
                reason,
                url: redact_url(&p.uri),
            };
            return Err(e);
        }
        tracing::debug!(
            method = p.method.as_str(),
            cseq = p.cseq,
            status = resp.status,
            reason = %resp.reason,
            "RTSP reply"
        );
        if resp.status == 401 {
            return self.handle_unauthorized(now, p, &resp);
        }
        if let Some(v) = resp.headers.get("Session") {
            if let Some(s) = SessionHeader::parse(v) {
                self.session = Some(s);
            }
        }
        let ok = (200..300).contains(&resp.status);
        match p.method {
            Method::Options if self.state == State::Options => {
                // 405/501: the server does not do OPTIONS; carry on regardless.
                if !ok && !matches!(resp.status, 405 | 501) {
                    return Err(RtspError::from_status(
                        self.status_error(&p, &resp),
                        p.with_auth,
                    ));
                }
                if resp
                    .headers
                    .get_all("Public")
                    .any(|v| public_lists(v, "GET_PARAMETER"))
                {
                    self.keepalive = Method::GetParameter;
                }
                self.send_announce(now);
                Ok(())
            }
            Method::Announce => {
                if !ok {
                    return Err(RtspError::from_status(
                        self.status_error(&p, &resp),
                        p.with_auth,
                    ));
                }
                // RFC 2326 C.1.1: Content-Base, else Content-Location, else the request URL
                // is the base of relative control URLs.
                if let Some(b) = resp
                    .headers
                    .get("Content-Base")
                    .or_else(|| resp.headers.get("Content-Location"))
                {
                    self.base = self.url.with_base(b)?;
                }
                self.send_setup(now, 0)
            }
            Method::Setup => {
                // RFC 2326 §11.3.11 (461 Unsupported Transport), §11.3.4 (501): the server
                // does not take interleaved RTP. Auto asks again for UDP.
                if matches!(resp.status, 461 | 501) && self.may_fall_back_to_udp() {
                    tracing::warn!(
                        "{} answered SETUP over TCP with {} {}: sending RTP over UDP",
                        self.url_string(),
                        resp.status,
                        resp.reason
                    );
                    self.transport = Transport::Udp;
                    return self.send_setup(now, 0);
                }
                if !ok {
                    return Err(RtspError::from_status(
                        self.status_error(&p, &resp),
                        p.with_auth,
                    ));
                }
                self.finish_setup(now, &p, &resp)
            }
            Method::Record => {
                if !ok {
                    return Err(RtspError::from_status(
                        self.status_error(&p, &resp),
                        p.with_auth,
                    ));
                }
                if self.opts.transport == Transport::Auto && self.transport == Transport::Tcp {
                    // Auto over TCP: one RTCP packet interleaved, then a short wait for a
                    // server that answers interleaved data with error replies.
                    self.state = State::Probing;
                    self.probe_deadline = Some(later(now, INTERLEAVED_PROBE));
                    self.queue_probe(now);
                    return Ok(());
                }
                self.start_recording(now);
                Ok(())
            }
            Method::GetParameter | Method::Options => {
                // A keepalive (RFC 2326 §12.37).
                if self.state != State::Recording {
                    return Ok(());
                }
                if resp.status == 454 {
                    return Err(RtspError::from_status(
                        self.status_error(&p, &resp),
                        p.with_auth,
                    ));
                }
                if !ok && p.method == Method::GetParameter {
                    // The server lists GET_PARAMETER but refuses it: fall back to OPTIONS.
                    self.keepalive = Method::Options;
                }
                Ok(())
            }
            Method::Teardown => {
                if !ok && resp.status != 454 {
                    return Err(RtspError::from_status(
                        self.status_error(&p, &resp),
                        p.with_auth,
                    ));
                }
                self.start_shutdown(now);
                Ok(())
            }
        }
    }

    /// RFC 2617 §3.2 / RFC 7616 §3.3: answer the challenge and resend the request with a new
    /// CSeq. A second 401 after credentials is final unless the server says the nonce was
    /// merely stale.
    fn handle_unauthorized(
        &mut self,
        now: Instant,
        mut p: Pending,
        resp: &Response,
    ) -> Result<(), RtspError> {
        let status = self.status_error(&p, resp);
        if self.url.credentials().is_none() {
            return Err(RtspError::from_status(status, false));
        }
        let challenges = parse_challenges(resp.headers.get_all("WWW-Authenticate"));
        let Some(best) = best_challenge(&challenges).cloned() else {
            let offered: Vec<String> = resp
                .headers
                .get_all("WWW-Authenticate")
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
                .collect();
            return Err(RtspError::UnsupportedAuth {
                offered: if offered.is_empty() {
                    "no WWW-Authenticate header".into()
                } else {
                    offered.join(", ")
                },
                url: self.url_string(),
            });
        };
        let stale = matches!(&best, Challenge::Digest(d) if d.stale);
        if (p.with_auth && !stale) || p.attempts >= 3 {
            return Err(RtspError::from_status(status, true));
        }
        p.attempts += 1;
        self.auth = Some(Authenticator::new(best, self.conn.seed));
        self.send_pending(now, p);
        Ok(())
    }

    fn finish_setup(
        &mut self,
        now: Instant,
        p: &Pending,
        resp: &Response,
    ) -> Result<(), RtspError> {
        let protocol_err = |reason: String| RtspError::Protocol {
            method: Method::Setup,
            reason,
            url: redact_url(&p.uri),
        };
        if self.session.is_none() {
            return Err(protocol_err("reply has no Session header".into()));
        }
        let th = match resp.headers.get("Transport") {
            Some(v) => TransportHeader::parse(v)
                .map_err(|e| protocol_err(format!("Transport header: {e}")))?,
            None => return Err(protocol_err("reply has no Transport header".into())),
        };
        let index = self.setup_index;
        let transport = match self.transport {
            Transport::Tcp | Transport::Auto => {
                if !th.is_tcp() {
                    return Err(protocol_err(format!(
                        "asked for TCP, server chose {}",
                        th.protocol
                    )));
                }
                let asked = ((2 * index) as u8, (2 * index + 1) as u8);
                let (rtp_channel, rtcp_channel) = th.interleaved.unwrap_or(asked);
                let taken = self.tracks.iter().take(index).any(|t| {
                    matches!(t.transport, Some(NegotiatedTransport::Tcp { rtp_channel: r, rtcp_channel: c })
                        if r == rtp_channel || c == rtcp_channel || r == rtcp_channel || c == rtp_channel)
                });
                if taken {
                    return Err(protocol_err(format!(
                        "the server gave interleaved channels {rtp_channel}-{rtcp_channel}, \
                         which another track already uses"
                    )));
                }
                NegotiatedTransport::Tcp {
                    rtp_channel,
                    rtcp_channel,
                }
            }
            Transport::Udp => {
                if th.is_tcp() {
                    return Err(protocol_err(format!(
                        "asked for UDP, server chose {}",
                        th.protocol
                    )));
                }
                let (rtp, rtcp) = th
                    .server_port
                    .ok_or_else(|| protocol_err("UDP reply has no server_port".into()))?;
                let client_ports = self.conn.client_ports.get(index).copied().unwrap_or((0, 0));
                NegotiatedTransport::Udp {
                    server_rtp: SocketAddr::new(self.conn.server_ip, rtp),
                    server_rtcp: SocketAddr::new(self.conn.server_ip, rtcp),
                    client_ports,
                }
            }
        };
        if let Some(t) = self.tracks.get_mut(index) {
            t.transport = Some(transport);
            t.setup_url = redact_url(&p.uri);
        }
        if index + 1 < self.tracks.len() {
            // RFC 2326 §10.4: further SETUPs carry the Session header of the first reply.
            return self.send_setup(now, index + 1);
        }
        let tracks: Vec<NegotiatedTrack> = self
            .tracks
            .iter()
            .filter_map(|t| {
                Some(NegotiatedTrack {
                    kind: t.kind,
                    transport: t.transport?,
                    setup_url: t.setup_url.clone(),
                    ssrc: t.ssrc(),
                    payload_type: t.payload_type(),
                })
            })
            .collect();
        let Some(first) = tracks.first().cloned() else {
            return Err(protocol_err("no track was set up".into()));
        };
        self.negotiated = Some(Negotiated {
            session_id: self
                .session
                .as_ref()
                .map(|s| s.id.clone())
                .unwrap_or_default(),
            session_timeout: self.opts.default_session_timeout,
            transport: first.transport,
            setup_url: first.setup_url,
            ssrc: first.ssrc,
            keepalive: self.keepalive,
            tracks,
        });
        self.state = State::Record;
        let uri = self.base.as_str().to_string();
        self.request(
            now,
            Method::Record,
            uri,
            vec![("Range".into(), "npt=0.000-".into())],
            Bytes::new(),
        );
        Ok(())
    }

    /// RECORD answered (and the probe passed): media may flow, keepalives start.
    fn start_recording(&mut self, now: Instant) {
        self.state = State::Recording;
        self.probe_deadline = None;
        // A server's timeout is capped at a day (it is peer data).
        let timeout = self
            .session
            .as_ref()
            .and_then(|s| s.timeout)
            .unwrap_or(self.opts.default_session_timeout)
            .min(Duration::from_secs(86_400));
        self.next_keepalive = Some(later(now, timeout / 2));
        if let Some(n) = self.negotiated.as_mut() {
            n.session_timeout = timeout;
            n.keepalive = self.keepalive;
            self.events.push_back(SessionEvent::Publishing);
        }
    }

    /// The probe of [`State::Probing`]: an RTCP receiver report without report blocks, and
    /// the CNAME, on the first track's interleaved RTCP channel (RFC 3550 §6.4.2: what a
    /// participant that has not sent yet sends). A server that cannot take interleaved data
    /// answers it with an error reply; one that can reads an ordinary RTCP packet.
    fn queue_probe(&mut self, now: Instant) {
        let Some(t) = self.tracks.first() else {
            return;
        };
        let Some(NegotiatedTransport::Tcp { rtcp_channel, .. }) = t.transport else {
            return;
        };
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&[b'$', rtcp_channel, 0, 0]);
        if rtcp::write_empty_rr_compound(t.ssrc(), &self.cname, &mut buf).is_err() {
            return;
        }
        set_interleaved_length(&mut buf);
        self.push_transmit(now, Transmit::Stream(Chunks::bytes(buf.freeze())));
    }

    /// The sender report interval, at least 100 ms so a zero setting cannot spin.
    fn sr_interval(&self) -> Duration {
        self.opts
            .sender_report_interval
            .max(Duration::from_millis(100))
    }

    /// The end of the UDP close wait: RTCP BYE (RFC 3550 §6.3.7), then TEARDOWN.
    fn finish_draining(&mut self, now: Instant) {
        self.drain_deadline = None;
        self.queue_sender_report(now, true);
        self.abandon_pending();
        self.send_teardown(now);
    }

    // ---- time ----------------------------------------------------------------------------

    /// Handles timers: request timeouts, keepalives (RFC 2326 §12.37: within the session
    /// timeout), sender reports (RFC 3550 §6.2), the UDP close wait.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RtspError> {
        if matches!(self.state, State::Closed | State::Failed) {
            return Ok(());
        }
        if self
            .stall_since
            .is_some_and(|t| now >= later(t, self.opts.request_timeout))
        {
            let e = RtspError::Timeout {
                step: Step::Write,
                after: self.opts.request_timeout,
                url: self.url_string(),
            };
            return Err(self.fail(e));
        }
        if self.shutdown_deadline.is_some_and(|t| now >= t) {
            // TEARDOWN was answered: the session is over even if the server keeps the
            // connection open.
            self.finish_closed();
            return Ok(());
        }
        if let Some(p) = &self.pending {
            if now >= p.deadline && p.method == Method::Teardown {
                // Every frame has been written by now, and no transport error or error
                // reply ended the session: a server that never answers TEARDOWN (some do
                // not, over UDP) does not fail it. One warning, then a clean end.
                tracing::warn!(
                    "no reply to TEARDOWN from {} within {:?}; every frame was sent",
                    redact_url(&p.uri),
                    self.opts.teardown_timeout
                );
                self.teardown_unanswered = true;
                self.abandon_pending();
                self.start_shutdown(now);
                return Ok(());
            }
            if now >= p.deadline {
                let e = RtspError::Timeout {
                    step: Step::Request(p.method),
                    after: self.opts.request_timeout,
                    url: redact_url(&p.uri),
                };
                return Err(self.fail(e));
            }
        }
        match self.state {
            State::Probing if self.probe_deadline.is_some_and(|t| now >= t) => {
                self.start_recording(now);
            }
            State::Recording => {
                if self.audio_flush.is_some_and(|(_, at)| now >= at) {
                    self.flush_audio(now);
                }
                if self.next_sr.is_some_and(|t| now >= t) {
                    self.queue_sender_report(now, false);
                    self.next_sr = Some(later(now, self.sr_interval()));
                }
                if self.pending.is_none() && self.next_keepalive.is_some_and(|t| now >= t) {
                    let timeout = self
                        .negotiated
                        .as_ref()
                        .map_or(self.opts.default_session_timeout, |n| n.session_timeout);
                    self.next_keepalive = Some(later(now, timeout / 2));
                    let uri = self.base.as_str().to_string();
                    self.request(now, self.keepalive, uri, Vec::new(), Bytes::new());
                }
            }
            State::Draining if self.drain_deadline.is_some_and(|t| now >= t) => {
                self.finish_draining(now);
            }
            _ => {}
        }
        Ok(())
    }

    // ---- media ---------------------------------------------------------------------------

    /// Packetizes one access unit and queues its RTP packets (over TCP: one [`Transmit`] for
    /// the whole access unit). Errors about the access unit itself leave the session intact.
    pub fn send(&mut self, now: Instant, au: &AccessUnit) -> Result<(), RtspError> {
        self.check_sendable()?;
        let Some(index) = self.track_index(false) else {
            return Err(MediaError::NoTrack { kind: "video" }.into());
        };
        let with_ps;
        let au = match &self.video {
            Some(track)
                if self.opts.prepend_parameter_sets && au.key && !au.has_parameter_sets() =>
            {
                with_ps = with_parameter_sets(au, track);
                &with_ps
            }
            _ => au,
        };
        let mut packets = std::mem::take(&mut self.scratch);
        packets.clear();
        let Some(Packer::Video(packetizer)) = self.tracks.get_mut(index).map(|t| &mut t.packer)
        else {
            return Err(MediaError::NoTrack { kind: "video" }.into());
        };
        if let Err(e) = packetizer.packetize(au, &mut packets) {
            self.scratch = packets;
            return Err(RtspError::Packetize(e));
        }
        if let Some(t) = self.tracks.get_mut(index) {
            t.frames += 1;
        }
        self.observe_media_time(au.time_base.ticks_to_nanos(au.dts), now);
        self.transmit_packets(now, index, packets);
        Ok(())
    }

    /// Packetizes one audio frame and queues its RTP packets; AAC frames may wait (at most
    /// [`RtspOptions::audio_aggregation`]) to share a packet with the next ones. Errors about
    /// the frame itself leave the session intact.
    pub fn send_audio(&mut self, now: Instant, frame: &AudioFrame) -> Result<(), RtspError> {
        self.check_sendable()?;
        let Some(index) = self.track_index(true) else {
            return Err(MediaError::NoTrack { kind: "audio" }.into());
        };
        let mut packets = std::mem::take(&mut self.scratch);
        packets.clear();
        let Some(Packer::Audio(packetizer)) = self.tracks.get_mut(index).map(|t| &mut t.packer)
        else {
            return Err(MediaError::NoTrack { kind: "audio" }.into());
        };
        if let Err(e) = packetizer.push(frame, &mut packets) {
            self.scratch = packets;
            return Err(RtspError::Packetize(e));
        }
        let pending = packetizer.pending_since();
        self.audio_flush = match (pending, self.audio_flush) {
            (None, _) => None,
            (Some(ts), Some((held, at))) if held == ts => Some((held, at)),
            (Some(ts), _) => Some((ts, later(now, self.opts.audio_aggregation))),
        };
        if let Some(t) = self.tracks.get_mut(index) {
            t.frames += 1;
        }
        self.observe_media_time(frame.time_base.ticks_to_nanos(frame.pts), now);
        if packets.is_empty() {
            self.scratch = packets;
        } else {
            self.transmit_packets(now, index, packets);
        }
        Ok(())
    }

    /// The index of the audio track (`audio`) or of the video track.
    fn track_index(&self, audio: bool) -> Option<usize> {
        self.tracks
            .iter()
            .position(|t| matches!(t.packer, Packer::Audio(_)) == audio)
    }

    fn check_sendable(&self) -> Result<(), RtspError> {
        if self.state != State::Recording {
            return Err(RtspError::NotRecording(match self.state {
                State::Failed => "failed",
                State::Closed | State::Teardown | State::Draining | State::ShuttingDown => "closed",
                _ => "setup not finished",
            }));
        }
        if self.queued > self.opts.send_queue_bytes {
            return Err(RtspError::QueueFull {
                queued: self.queued,
                limit: self.opts.send_queue_bytes,
            });
        }
        Ok(())
    }

    /// Sends the audio frames held back for aggregation.
    fn flush_audio(&mut self, now: Instant) {
        self.audio_flush = None;
        let Some(index) = self.track_index(true) else {
            return;
        };
        let mut packets = Vec::new();
        if let Some(Packer::Audio(p)) = self.tracks.get_mut(index).map(|t| &mut t.packer) {
            p.flush(&mut packets);
        }
        if !packets.is_empty() {
            self.transmit_packets(now, index, packets);
        }
    }

    /// Queues one unit's packets on track `index`'s transport, and the track's first sender
    /// report right after its first packets (RFC 3550 §6.2 allows the first report early),
    /// so that a receiver can line the tracks up from the start.
    fn transmit_packets(&mut self, now: Instant, index: usize, mut packets: Vec<RtpPacket>) {
        let Some(t) = self.tracks.get_mut(index) else {
            return;
        };
        if t.first_sequence.is_none() {
            t.first_sequence = packets.first().map(RtpPacket::sequence);
        }
        let first_report = !t.reported;
        match t.transport {
            Some(NegotiatedTransport::Tcp { rtp_channel, .. }) => {
                let mut chunks = Chunks::with_capacity(packets.len());
                for p in packets.drain(..) {
                    chunks.push_interleaved(rtp_channel, p);
                }
                self.scratch = packets;
                self.push_transmit(now, Transmit::Stream(chunks));
            }
            Some(NegotiatedTransport::Udp { server_rtp, .. }) => {
                self.bytes_written += packets.iter().map(|p| p.len() as u64).sum::<u64>();
                self.push_transmit(
                    now,
                    Transmit::RtpDatagrams {
                        socket: index,
                        dest: server_rtp,
                        packets,
                    },
                );
            }
            None => self.scratch = packets,
        }
        if first_report {
            self.queue_track_report(now, index, false);
        }
        if self.next_sr.is_none() {
            self.next_sr = Some(later(now, self.sr_interval()));
        }
    }

    /// Moves the media clock of the sender reports with a unit of media time `media_ns` sent
    /// at `now`. The clock runs at wall-clock speed from its anchor, the first unit. A paced
    /// sender hands units over up to its allowed lead early, by a different amount for each
    /// track, so an early unit does not move the clock (that would shift one track's reports
    /// against the other's by the lead); a late one moves it later (the schedule slipped: a
    /// stall), and one far ahead (unpaced sending, a timestamp jump) re-anchors it.
    fn observe_media_time(&mut self, media_ns: i128, now: Instant) {
        const FAR_AHEAD: i128 = 1_000_000_000;
        let anchor = match self.sr_reference {
            Some((m0, t0)) => {
                let clock = media_ns_at(m0, t0, now);
                media_ns < clock || media_ns > clock + FAR_AHEAD
            }
            None => true,
        };
        if anchor {
            self.sr_reference = Some((media_ns, now));
        }
    }

    /// The RTP timestamp of track `t` at `now` on the media clock of every sender report.
    fn rtp_timestamp_at(&self, t: &MediaTrack, now: Instant) -> u32 {
        let Some((media_ns, at)) = self.sr_reference else {
            return t.timestamp_offset();
        };
        let ns = media_ns_at(media_ns, at, now);
        // Ticks of the track's clock, to the nearest (the packetizers round timestamps so).
        let ticks =
            (ns.saturating_mul(i128::from(t.clock_rate())) + 500_000_000).div_euclid(1_000_000_000);
        // The low 32 bits: RTP timestamps wrap modulo 2^32 (RFC 3550 §5.1).
        (ticks as u32).wrapping_add(t.timestamp_offset())
    }

    /// A sender report (with BYE when `bye`) for every track that sent packets.
    fn queue_sender_report(&mut self, now: Instant, bye: bool) {
        for index in 0..self.tracks.len() {
            let sent = self.tracks.get(index).is_some_and(|t| t.packets_sent() > 0);
            if sent || bye {
                self.queue_track_report(now, index, bye);
            }
        }
    }

    /// One track's compound RTCP packet: SR + SDES CNAME (+ BYE), RFC 3550 §6.1, on the
    /// track's RTCP channel or port.
    fn queue_track_report(&mut self, now: Instant, index: usize, bye: bool) {
        let Some(t) = self.tracks.get(index) else {
            return;
        };
        let info = SenderInfo {
            ssrc: t.ssrc(),
            ntp: NtpTimestamp::from_system_time(self.wall_at(now)),
            rtp_timestamp: self.rtp_timestamp_at(t, now),
            packet_count: t.packets_sent() as u32,
            octet_count: t.octets_sent() as u32,
        };
        let transport = t.transport;
        let mut buf = BytesMut::with_capacity(128);
        if let Some(NegotiatedTransport::Tcp { rtcp_channel, .. }) = transport {
            // Interleaved frame header; the length is filled in below.
            buf.extend_from_slice(&[b'$', rtcp_channel, 0, 0]);
        }
        let res = if bye {
            rtcp::write_bye_compound(&info, &self.cname, &mut buf)
        } else {
            rtcp::write_sr_compound(&info, &self.cname, &mut buf)
        };
        if res.is_err() {
            // Only an over-long CNAME fails, and ours is short.
            return;
        }
        let transmit = match transport {
            Some(NegotiatedTransport::Tcp { .. }) => {
                set_interleaved_length(&mut buf);
                Transmit::Stream(Chunks::bytes(buf.freeze()))
            }
            Some(NegotiatedTransport::Udp { server_rtcp, .. }) => {
                self.bytes_written += buf.len() as u64;
                Transmit::RtcpDatagram {
                    socket: index,
                    dest: server_rtcp,
                    data: buf.freeze(),
                }
            }
            None => return,
        };
        if let Some(t) = self.tracks.get_mut(index) {
            t.reported = true;
        }
        self.push_transmit(now, transmit);
    }

    /// Ends the session: RTCP BYE, then (UDP) a bounded wait for the server's receiver report
    /// to acknowledge the last packet, then TEARDOWN. The session is over at
    /// [`SessionEvent::Closed`]. Calling it again, or after a failure, does nothing.
    pub fn close(&mut self, now: Instant) -> Result<(), RtspError> {
        match self.state {
            State::Recording => {
                // The audio held back for aggregation goes first.
                self.flush_audio(now);
                let udp = matches!(
                    self.negotiated.as_ref().map(|n| n.transport),
                    Some(NegotiatedTransport::Udp { .. })
                );
                if udp {
                    // Over UDP the last packets may still sit in the server's socket buffer
                    // when TEARDOWN arrives on TCP, and a server that stops its receiver at
                    // TEARDOWN drops them: wait for a receiver report (RFC 3550 §6.4.2)
                    // covering our last sequence number, or for the limit. The BYE waits
                    // too: ffmpeg's receiver reads its RTCP socket before its RTP socket and
                    // ends the stream at a BYE, dropping the RTP still queued (measured: 2 of
                    // 60 frames recorded when the BYE went out with the last packets).
                    self.queue_sender_report(now, false);
                    self.state = State::Draining;
                    self.drain_deadline = Some(later(now, self.opts.udp_close_wait));
                    if self.all_acknowledged() {
                        self.finish_draining(now);
                    }
                } else {
                    // TCP is ordered: the server reads BYE and TEARDOWN after the media.
                    self.queue_sender_report(now, true);
                    self.abandon_pending();
                    self.send_teardown(now);
                }
                Ok(())
            }
            State::Options | State::Announce | State::Setup | State::Record | State::Probing => {
                self.abandon_pending();
                self.send_teardown(now);
                Ok(())
            }
            State::Draining
            | State::Teardown
            | State::ShuttingDown
            | State::Closed
            | State::Failed => Ok(()),
        }
    }
}

/// What a receiver report block says, in units a user reads: RFC 3550 §6.4.1 gives the loss
/// fraction in 1/256, the jitter in timestamp units, and the round trip as the arrival time
/// minus LSR minus DLSR, all three in 1/65536 s (the middle 32 bits of NTP time).
fn reception_report(block: &ReportBlock, arrival: u32, clock_rate: u32) -> ReceptionReport {
    let round_trip = (block.last_sr != 0)
        .then(|| {
            arrival
                .wrapping_sub(block.last_sr)
                .wrapping_sub(block.delay_since_last_sr)
        })
        // A "negative" round trip (clocks or a bad report): none.
        .filter(|units| *units < 0x8000_0000)
        .map(|units| Duration::from_nanos(u64::from(units) * 1_000_000_000 / 65_536));
    ReceptionReport {
        fraction_lost: f64::from(block.fraction_lost) / 256.0,
        cumulative_lost: i64::from(block.cumulative_lost),
        jitter: Duration::from_nanos(
            u64::from(block.jitter) * 1_000_000_000 / u64::from(clock_rate.max(1)),
        ),
        round_trip,
        extended_highest_sequence: block.extended_highest_sequence,
    }
}

impl SessionCore for RtspPublisherCore {
    type Error = RtspError;
    type Info = Negotiated;

    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), RtspError> {
        RtspPublisherCore::handle_input(self, now, data)
    }

    fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        self.handle_rtcp(now, data);
    }

    fn handle_eof(&mut self, now: Instant) -> Result<(), RtspError> {
        RtspPublisherCore::handle_eof(self, now)
    }

    fn handle_written(&mut self, now: Instant, bytes: usize) {
        RtspPublisherCore::handle_written(self, now, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), RtspError> {
        RtspPublisherCore::handle_timeout(self, now)
    }

    fn handle_io_error(
        &mut self,
        _now: Instant,
        during: &'static str,
        error: std::io::Error,
    ) -> RtspError {
        let e = RtspError::io(during, &self.url_string(), error);
        self.fail(e)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        RtspPublisherCore::poll_timeout(self)
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        RtspPublisherCore::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<SessionEvent> {
        RtspPublisherCore::poll_event(self)
    }

    fn can_send(&self) -> bool {
        RtspPublisherCore::can_send(self)
    }

    fn send(&mut self, now: Instant, media: &Media) -> Result<(), RtspError> {
        match media {
            Media::H264(au) => RtspPublisherCore::send(self, now, au),
            Media::Audio(f) => RtspPublisherCore::send_audio(self, now, f),
        }
    }

    fn close(&mut self, now: Instant) -> Result<(), RtspError> {
        RtspPublisherCore::close(self, now)
    }

    fn failure(&self) -> Option<&RtspError> {
        self.failure.as_ref()
    }

    fn info(&self) -> Option<Negotiated> {
        self.negotiated.clone()
    }

    fn publisher_stats(&self) -> PublisherStats {
        RtspPublisherCore::publisher_stats(self)
    }

    fn closed_error(&self) -> RtspError {
        RtspError::NotRecording("closed")
    }

    fn url(&self) -> String {
        self.url_string()
    }
}

/// The audio track's packetizer: the codec's static payload type where it has one, the
/// options' otherwise; an SSRC different from the video's (RFC 3550 §8: one per source).
fn audio_packetizer(
    track: &AudioTrack,
    opts: &RtspOptions,
    video_ssrc: Option<u32>,
) -> Result<AudioPacketizer, RtspError> {
    let mut cfg = opts.audio_packetizer;
    let pt = default_payload_type(track.codec);
    if pt < 96 {
        cfg.payload_type = pt;
    }
    let mut p =
        AudioPacketizer::new(track, cfg, opts.audio_aggregation).map_err(RtspError::Packetize)?;
    if video_ssrc == Some(p.ssrc()) {
        cfg.ssrc = Some(p.ssrc() ^ 1);
        p = AudioPacketizer::new(track, cfg, opts.audio_aggregation)
            .map_err(RtspError::Packetize)?;
    }
    Ok(p)
}

/// The media time at `now` of a clock that read `media_ns` at `at`, running at wall speed.
fn media_ns_at(media_ns: i128, at: Instant, now: Instant) -> i128 {
    let elapsed = match now.checked_duration_since(at) {
        Some(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        None => -i128::try_from(at.duration_since(now).as_nanos()).unwrap_or(i128::MAX),
    };
    media_ns.saturating_add(elapsed)
}

/// A copy of `au` with the track's SPS and PPS in front (after any access unit delimiter,
/// which must come first: H.264 §7.4.1.2.3). Zero-copy: the NAL units are shared.
fn with_parameter_sets(au: &AccessUnit, track: &VideoTrack) -> AccessUnit {
    let mut nalus = Vec::with_capacity(au.nalus.len() + 2);
    let aud = au
        .nalus
        .iter()
        .take_while(|n| nal_unit_type(n) == nal_type::AUD)
        .count();
    nalus.extend(au.nalus.iter().take(aud).cloned());
    nalus.push(track.sps.clone());
    nalus.push(track.pps.clone());
    nalus.extend(au.nalus.iter().skip(aud).cloned());
    AccessUnit {
        pts: au.pts,
        dts: au.dts,
        time_base: au.time_base,
        key: au.key,
        nalus,
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
