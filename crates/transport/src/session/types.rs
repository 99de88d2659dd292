//! The values that cross between a session core, its driver and the user.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::audio::{AudioFrame, AudioTrack};
use crate::h264::{AccessUnit, VideoTrack};
use crate::rtmp::ServerStatus;
use crate::rtp::RtpPacket;
use crate::TimeBase;

/// A track of a publishing session. A session carries a list of them, at most one of each
/// kind; media units go to the track of their kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Track {
    /// H.264 video (RFC 6184 over RTP; FLV AVC video tags over RTMP).
    H264(VideoTrack),
    /// Audio passed through (see [`crate::audio`] for the codecs each protocol carries).
    Audio(AudioTrack),
}

impl Track {
    /// The video track, if this is one.
    pub fn video(&self) -> Option<&VideoTrack> {
        match self {
            Track::H264(t) => Some(t),
            Track::Audio(_) => None,
        }
    }

    /// The audio track, if this is one.
    pub fn audio(&self) -> Option<&AudioTrack> {
        match self {
            Track::Audio(t) => Some(t),
            Track::H264(_) => None,
        }
    }

    /// The kind, for messages: `video` or `audio`.
    pub fn kind(&self) -> &'static str {
        match self {
            Track::H264(_) => "video",
            Track::Audio(_) => "audio",
        }
    }
}

impl From<AudioTrack> for Track {
    fn from(t: AudioTrack) -> Self {
        Track::Audio(t)
    }
}

impl From<VideoTrack> for Track {
    fn from(t: VideoTrack) -> Self {
        Track::H264(t)
    }
}

impl From<&VideoTrack> for Track {
    fn from(t: &VideoTrack) -> Self {
        Track::H264(t.clone())
    }
}

/// One unit of media for the session's track of its kind, in decoding order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Media {
    /// An H.264 access unit.
    H264(AccessUnit),
    /// An audio frame.
    Audio(AudioFrame),
}

impl Media {
    /// The decoding timestamp converted to `to` (rounded to the nearest tick).
    pub fn dts_in(&self, to: TimeBase) -> i64 {
        match self {
            Media::H264(au) => au.dts_in(to),
            Media::Audio(f) => f.pts_in(to),
        }
    }

    /// The decoding timestamp in its own time base.
    pub fn dts(&self) -> i64 {
        match self {
            Media::H264(au) => au.dts,
            Media::Audio(f) => f.pts,
        }
    }

    /// The time base of its timestamps.
    pub fn time_base(&self) -> TimeBase {
        match self {
            Media::H264(au) => au.time_base,
            Media::Audio(f) => f.time_base,
        }
    }

    /// True for a random access point: a key frame, or any audio frame (each decodes on its
    /// own).
    pub fn is_key(&self) -> bool {
        match self {
            Media::H264(au) => au.key,
            Media::Audio(_) => true,
        }
    }

    /// Bytes of payload (NAL units without framing; the encoded audio frame).
    pub fn payload_len(&self) -> usize {
        match self {
            Media::H264(au) => au.payload_len(),
            Media::Audio(f) => f.data.len(),
        }
    }

    /// The access unit, if this is video.
    pub fn video(&self) -> Option<&AccessUnit> {
        match self {
            Media::H264(au) => Some(au),
            Media::Audio(_) => None,
        }
    }

    /// The audio frame, if this is audio.
    pub fn audio(&self) -> Option<&AudioFrame> {
        match self {
            Media::Audio(f) => Some(f),
            Media::H264(_) => None,
        }
    }

    /// `video` or `audio`.
    pub fn kind(&self) -> &'static str {
        match self {
            Media::H264(_) => "video",
            Media::Audio(_) => "audio",
        }
    }
}

impl From<AudioFrame> for Media {
    fn from(f: AudioFrame) -> Self {
        Media::Audio(f)
    }
}

/// A copy (the data is shared, not copied).
impl From<&AudioFrame> for Media {
    fn from(f: &AudioFrame) -> Self {
        Media::Audio(f.clone())
    }
}

impl From<AccessUnit> for Media {
    fn from(au: AccessUnit) -> Self {
        Media::H264(au)
    }
}

/// A copy (the NAL units are shared, not copied).
impl From<&AccessUnit> for Media {
    fn from(au: &AccessUnit) -> Self {
        Media::H264(au.clone())
    }
}

// The large variant is the common one (one per RTP packet); boxing it would allocate per
// packet, which the zero-copy media path avoids.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Part {
    Bytes(Bytes),
    Interleaved { prefix: [u8; 4], packet: RtpPacket },
}

/// Bytes for the connection, zero-copy: a request, an RTMP chunk run, or all interleaved RTP
/// packets of one access unit, which stay slices of the access unit. Written with one vectored
/// write where the connection allows it.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    parts: Vec<Part>,
    len: usize,
}

impl Chunks {
    /// One buffer.
    pub fn bytes(b: Bytes) -> Chunks {
        Chunks {
            len: b.len(),
            parts: vec![Part::Bytes(b)],
        }
    }

    /// Room for `n` interleaved packets.
    pub(crate) fn with_capacity(n: usize) -> Chunks {
        Chunks {
            parts: Vec::with_capacity(n),
            len: 0,
        }
    }

    /// Appends an RTP packet as an interleaved frame (RFC 2326 §10.12: `$`, channel, 16-bit
    /// length, packet).
    pub(crate) fn push_interleaved(&mut self, channel: u8, packet: RtpPacket) {
        // The packetizer's payload limit keeps packets under 64 KiB.
        let len = u16::try_from(packet.len()).unwrap_or(u16::MAX);
        let [hi, lo] = len.to_be_bytes();
        self.len += 4 + usize::from(len);
        self.parts.push(Part::Interleaved {
            prefix: [b'$', channel, hi, lo],
            packet,
        });
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order, for a vectored write.
    pub fn io_slices<'a>(&'a self, out: &mut Vec<IoSlice<'a>>) {
        for p in &self.parts {
            match p {
                Part::Bytes(b) => out.push(IoSlice::new(b)),
                Part::Interleaved { prefix, packet } => {
                    out.push(IoSlice::new(prefix));
                    packet.io_slices(out);
                }
            }
        }
    }

    /// The bytes, copied into one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for p in &self.parts {
            match p {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::Interleaved { prefix, packet } => {
                    out.extend_from_slice(prefix);
                    packet.write_to(&mut out);
                }
            }
        }
        out.freeze()
    }
}

/// Something a core wants done to the connection. Do each completely, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Transmit {
    /// Bytes for the connection (TCP, or TLS over it). Report progress with
    /// [`SessionCore::handle_written`](super::SessionCore::handle_written).
    Stream(Chunks),
    /// Every byte before this has been written: close our side of the connection (TCP FIN,
    /// after TLS close_notify), then keep reading until the server closes its side.
    Shutdown,
    /// RTP datagrams, from our RTP port of track `socket` to `dest`.
    RtpDatagrams {
        /// The track whose UDP port pair sends them (the index into the session's pairs).
        socket: usize,
        /// The server's RTP port.
        dest: SocketAddr,
        /// One datagram each.
        packets: Vec<RtpPacket>,
    },
    /// One compound RTCP datagram, from our RTCP port of track `socket` to `dest`.
    RtcpDatagram {
        /// The track whose UDP port pair sends it.
        socket: usize,
        /// The server's RTCP port.
        dest: SocketAddr,
        /// The datagram.
        data: Bytes,
    },
}

impl Transmit {
    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        match self {
            Transmit::Stream(c) => c.len(),
            Transmit::Shutdown => 0,
            Transmit::RtpDatagrams { packets, .. } => packets.iter().map(RtpPacket::len).sum(),
            Transmit::RtcpDatagram { data, .. } => data.len(),
        }
    }

    /// True when there are no bytes (a shutdown, or an empty buffer).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a receiver reported about our stream (RTCP receiver report, RFC 3550 §6.4.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceptionReport {
    /// Fraction of our packets lost since the previous report, 0.0–1.0.
    pub fraction_lost: f64,
    /// Packets lost since the start (may be negative when duplicates arrived).
    pub cumulative_lost: i64,
    /// Interarrival jitter.
    pub jitter: Duration,
    /// Round-trip time from the report's LSR and DLSR fields (§6.4.1), when the receiver had
    /// seen one of our sender reports.
    pub round_trip: Option<Duration>,
    /// The highest sequence number received, extended with its cycle count.
    pub extended_highest_sequence: u32,
}

/// Something that happened in a session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The server accepted the publish (RTSP: RECORD answered; RTMP:
    /// `NetStream.Publish.Start`): media may be sent.
    Publishing,
    /// A receiver report about our stream.
    ReceiverReport(ReceptionReport),
    /// The server sent an RTCP BYE.
    ServerBye,
    /// An RTMP status message the session does not act on (e.g.
    /// `NetStream.Unpublish.Success`).
    ServerStatus(ServerStatus),
    /// The server acknowledged receiving this many bytes (RTMP spec §5.4.3).
    Acknowledged(u32),
    /// The session ended cleanly; the driver may drop the connection.
    Closed,
}

/// Counters of a publishing session, and what the server reported.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct PublisherStats {
    /// Video access units sent.
    pub frames: u64,
    /// Video payload bytes sent: RTP payload octets (RTSP) or FLV tag body bytes (RTMP).
    pub bytes: u64,
    /// Audio frames sent.
    pub audio_frames: u64,
    /// Audio payload bytes sent, counted the same way.
    pub audio_bytes: u64,
    /// Bytes written to the connection (every protocol byte over TCP; RTP and RTCP over UDP).
    pub bytes_written: u64,
    /// Media units a core refused after the up-front check, dropped (see the module docs).
    pub media_errors: u64,
    /// The latest receiver report, if the server sends them (RTSP).
    pub reception: Option<ReceptionReport>,
    /// Receiver reports received.
    pub receiver_reports: u64,
    /// The server sent an RTCP BYE.
    pub server_bye: bool,
    /// The last status message from the server (RTMP), other than the ones the session acts
    /// on.
    pub last_status: Option<ServerStatus>,
    /// The last acknowledgement from the server, in bytes received (RTMP).
    pub acknowledged: Option<u32>,
    /// The protocol's own counters.
    pub protocol: ProtocolStats,
}

impl PublisherStats {
    /// The RTSP publisher's own counters (RTP packets, octets), for an RTSP session.
    pub fn rtsp(&self) -> Option<&crate::rtsp::PublishStats> {
        match &self.protocol {
            ProtocolStats::Rtsp(s) => Some(s),
            _ => None,
        }
    }

    /// The RTMP publisher's own counters (key frames, sequence headers, acknowledgements),
    /// for an RTMP session.
    pub fn rtmp(&self) -> Option<&crate::rtmp::PublishStats> {
        match &self.protocol {
            ProtocolStats::Rtmp(s) => Some(s),
            _ => None,
        }
    }
}

/// The counters only one protocol has.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub enum ProtocolStats {
    /// None (a bare core or an empty report).
    #[default]
    None,
    /// An RTSP session's.
    Rtsp(crate::rtsp::PublishStats),
    /// An RTMP session's.
    Rtmp(crate::rtmp::PublishStats),
}
