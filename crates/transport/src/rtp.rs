//! RTP packetization of H.264 (RFC 3550, RFC 6184 packetization-mode=1), and of audio
//! ([`AudioPacketizer`]: AAC per RFC 3640, MP3 per RFC 2250, Opus per RFC 7587, G.711).
//!
//! [`Packetizer`] turns each [`AccessUnit`] into RTP packets:
//!
//! - a NAL unit that fits in the payload limit goes out as a *single NAL unit packet*
//!   (RFC 6184 §5.6);
//! - consecutive NAL units that fit together (typically SPS + PPS ahead of an IDR slice, or an
//!   SEI) are aggregated into one *STAP-A* (§5.7.1);
//! - a NAL unit larger than the limit is split into *FU-A* fragments (§5.8).
//!
//! All packets of an access unit carry the same 90 kHz timestamp, derived from its `pts`
//! (§5.1, §8.2.1), and the last one has the marker bit set (§5.1). Sequence numbers
//! increase by one per packet and wrap at 2^16; timestamps wrap at 2^32. The initial
//! sequence number, the timestamp offset and the SSRC are random unless configured
//! (RFC 3550 §5.1).
//!
//! Access unit delimiters (NAL type 9) and empty NAL units are dropped. Delimiters are
//! optional in H.264 and redundant on RTP, where the marker bit and the shared timestamp
//! already delimit access units (RFC 6184 §5.1); a receiver that writes a format needing them
//! (MPEG-TS) adds them back.
//!
//! Packets are zero-copy: an [`RtpPacket`] holds its header bytes inline and [`Bytes`] slices
//! of the access unit's NAL units. Write it with [`RtpPacket::io_slices`] (vectored I/O) or copy
//! it into a datagram or interleaved frame with [`RtpPacket::write_to`]. Reusing the output
//! `Vec` across calls to [`Packetizer::packetize`] means no allocation per packet in steady
//! state.

use std::fmt;
use std::io::IoSlice;

use bytes::{BufMut, Bytes, BytesMut};

use crate::h264::{nal_type, nal_unit_type, AccessUnit};
use crate::TimeBase;

mod audio;
pub use audio::{default_payload_type, AudioPacketizer, MAX_AAC_FRAME, MAX_AAC_FRAMES_PER_PACKET};

/// Length of the fixed RTP header without CSRCs or extensions (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// The smallest usable payload limit: an FU-A needs its two header bytes plus at least one
/// byte of the fragmented NAL unit (RFC 6184 §5.8).
pub const MIN_PAYLOAD: usize = 3;

/// The largest payload limit: the whole RTP packet must fit the 16-bit length of an RTSP
/// interleaved frame (RFC 2326 §10.12) and of a STAP-A NAL unit size (RFC 6184 §5.7.1).
pub const MAX_PAYLOAD: usize = u16::MAX as usize - RTP_HEADER_LEN;

/// Default payload limit: 1400 bytes of payload + 12 (RTP) + 8 (UDP) + 20 (IPv4) stays under
/// a 1500-byte Ethernet MTU with room for IP options, tunnels and the 4-byte RTSP interleave
/// prefix.
pub const DEFAULT_MAX_PAYLOAD: usize = 1400;

/// The default dynamic payload type for H.264 (RFC 3551 §3 leaves 96–127 dynamic).
pub const DEFAULT_PAYLOAD_TYPE: u8 = 96;

/// The most NAL units one STAP-A aggregates; more small NAL units start another STAP-A. This
/// bounds the inline storage of an [`RtpPacket`].
pub const MAX_STAP_NALUS: usize = 8;

/// Bytes of header kept inline: RTP header + STAP-A NAL header + one 2-byte size per NAL
/// unit (the FU-A indicator and header need only 2).
const HEADER_CAP: usize = RTP_HEADER_LEN + 1 + 2 * MAX_STAP_NALUS;

/// Errors from RTP packetization.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtpError {
    /// The configured payload limit cannot be used.
    #[error("maximum RTP payload of {max_payload} bytes is outside {MIN_PAYLOAD}..={MAX_PAYLOAD}")]
    InvalidMaxPayload {
        /// The configured value.
        max_payload: usize,
    },
    /// The payload type does not fit the 7-bit PT field (RFC 3550 §5.1).
    #[error("RTP payload type {0} is over 127")]
    InvalidPayloadType(u8),
    /// Nothing is left to send once empty NAL units and access unit delimiters are dropped.
    #[error("access unit at pts {pts} has no NAL unit to send (empty, or only delimiters)")]
    EmptyAccessUnit {
        /// The access unit's pts, in its own time base.
        pts: i64,
    },
    /// An audio frame without data.
    #[error("audio frame at pts {pts} is empty")]
    EmptyAudioFrame {
        /// The frame's pts, in its own time base.
        pts: i64,
    },
    /// An audio frame larger than its payload format can carry.
    #[error("audio frame of {len} bytes is larger than the {limit} bytes RTP can carry for it")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A NAL unit type that RFC 6184 cannot carry: 24–29 would be read as aggregation or
    /// fragmentation packets, and receivers ignore 0, 30 and 31 (RFC 6184 §5.2, Table 3).
    #[error("NAL unit {index} of the access unit has type {nal_type}, which RTP cannot carry")]
    UnsupportedNalType {
        /// Index of the NAL unit within the access unit.
        index: usize,
        /// Its `nal_unit_type`.
        nal_type: u8,
    },
}

/// Settings of a [`Packetizer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacketizerConfig {
    /// RTP payload type, 0–127 (the SDP `rtpmap` number; 96 by default).
    pub payload_type: u8,
    /// Largest RTP payload in bytes (not counting the 12-byte RTP header), in
    /// [`MIN_PAYLOAD`]`..=`[`MAX_PAYLOAD`]. Default [`DEFAULT_MAX_PAYLOAD`].
    pub max_payload: usize,
    /// Synchronization source; `None` picks a random one (RFC 3550 §8.1).
    pub ssrc: Option<u32>,
    /// First sequence number; `None` picks a random one (RFC 3550 §5.1).
    pub initial_sequence: Option<u16>,
    /// Added to every 90 kHz timestamp; `None` picks a random one (RFC 3550 §5.1).
    pub timestamp_offset: Option<u32>,
}

impl Default for PacketizerConfig {
    fn default() -> Self {
        PacketizerConfig {
            payload_type: DEFAULT_PAYLOAD_TYPE,
            max_payload: DEFAULT_MAX_PAYLOAD,
            ssrc: None,
            initial_sequence: None,
            timestamp_offset: None,
        }
    }
}

impl PacketizerConfig {
    /// Sets the RTP payload type (0–127).
    #[must_use]
    pub fn with_payload_type(mut self, payload_type: u8) -> Self {
        self.payload_type = payload_type;
        self
    }

    /// Sets the largest RTP payload in bytes.
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Fixes the SSRC (`None`: random).
    #[must_use]
    pub fn with_ssrc(mut self, ssrc: Option<u32>) -> Self {
        self.ssrc = ssrc;
        self
    }

    /// Fixes the first sequence number (`None`: random).
    #[must_use]
    pub fn with_initial_sequence(mut self, sequence: Option<u16>) -> Self {
        self.initial_sequence = sequence;
        self
    }

    /// Fixes the timestamp offset (`None`: random).
    #[must_use]
    pub fn with_timestamp_offset(mut self, offset: Option<u32>) -> Self {
        self.timestamp_offset = offset;
        self
    }

    /// Checks the payload type and payload limit.
    pub fn validate(&self) -> Result<(), RtpError> {
        if self.payload_type > 127 {
            return Err(RtpError::InvalidPayloadType(self.payload_type));
        }
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&self.max_payload) {
            return Err(RtpError::InvalidMaxPayload {
                max_payload: self.max_payload,
            });
        }
        Ok(())
    }
}

/// Packetizes H.264 access units into RTP packets (RFC 6184, packetization-mode=1).
///
/// See the [module documentation](self) for the packetization rules.
#[derive(Debug, Clone)]
pub struct Packetizer {
    cfg: PacketizerConfig,
    /// `Err` when the configuration is invalid; reported by every [`Packetizer::packetize`].
    valid: Result<(), RtpError>,
    ssrc: u32,
    initial_sequence: u16,
    next_sequence: u16,
    timestamp_offset: u32,
    last_timestamp: u32,
    packets_sent: u64,
    octets_sent: u64,
}

impl Packetizer {
    /// Creates a packetizer. An invalid configuration (see [`PacketizerConfig::validate`]) does
    /// not panic: every call to [`Packetizer::packetize`] then returns the error. Use
    /// [`Packetizer::try_new`] to learn about it at once.
    pub fn new(cfg: PacketizerConfig) -> Packetizer {
        let initial_sequence = cfg.initial_sequence.unwrap_or_else(rand::random);
        let timestamp_offset = cfg.timestamp_offset.unwrap_or_else(rand::random);
        Packetizer {
            valid: cfg.validate(),
            ssrc: cfg.ssrc.unwrap_or_else(rand::random),
            initial_sequence,
            next_sequence: initial_sequence,
            timestamp_offset,
            last_timestamp: timestamp_offset,
            packets_sent: 0,
            octets_sent: 0,
            cfg,
        }
    }

    /// Creates a packetizer, rejecting an invalid configuration.
    pub fn try_new(cfg: PacketizerConfig) -> Result<Packetizer, RtpError> {
        cfg.validate()?;
        Ok(Packetizer::new(cfg))
    }

    /// The configuration, with the random choices still `None` as given.
    pub fn config(&self) -> &PacketizerConfig {
        &self.cfg
    }

    /// The synchronization source identifier of every packet.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The payload type of every packet.
    pub fn payload_type(&self) -> u8 {
        self.cfg.payload_type
    }

    /// The sequence number of the first packet (the RTSP `RTP-Info` `seq`).
    pub fn initial_sequence(&self) -> u16 {
        self.initial_sequence
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// The offset added to every 90 kHz timestamp (a pts of 0 maps to it).
    pub fn timestamp_offset(&self) -> u32 {
        self.timestamp_offset
    }

    /// The RTP timestamp of an access unit: its pts in 90 kHz ticks plus the offset, modulo
    /// 2^32 (RFC 6184 §5.1: the sampling timestamp of the picture; §8.2.1: 90 kHz clock).
    pub fn rtp_timestamp(&self, au: &AccessUnit) -> u32 {
        self.rtp_timestamp_of_ticks(au.pts_in(TimeBase::RTP_VIDEO))
    }

    /// The RTP timestamp of an access unit's *decoding* time (dts). The pacer sends access
    /// units at their dts, so this is the value to pair with the send instant when mapping
    /// RTP time to wall-clock time for a sender report (see [`crate::rtcp::rtp_timestamp_at`]).
    pub fn rtp_timestamp_dts(&self, au: &AccessUnit) -> u32 {
        self.rtp_timestamp_of_ticks(au.dts_in(TimeBase::RTP_VIDEO))
    }

    fn rtp_timestamp_of_ticks(&self, ticks_90k: i64) -> u32 {
        // Truncating to the low 32 bits is the modulo-2^32 wrap RTP timestamps use, for
        // negative ticks too (two's complement).
        (ticks_90k as u32).wrapping_add(self.timestamp_offset)
    }

    /// Packets produced so far (the RTCP sender report's packet count, RFC 3550 §6.4.1).
    pub fn packets_sent(&self) -> u64 {
        self.packets_sent
    }

    /// Payload octets produced so far, RTP headers excluded (the sender report's octet count,
    /// RFC 3550 §6.4.1).
    pub fn octets_sent(&self) -> u64 {
        self.octets_sent
    }

    /// Sequence number of the last packet produced (the initial sequence number minus one
    /// before any).
    pub fn last_sequence(&self) -> u16 {
        self.next_sequence.wrapping_sub(1)
    }

    /// Timestamp of the last access unit packetized (the timestamp offset before any).
    pub fn last_timestamp(&self) -> u32 {
        self.last_timestamp
    }

    /// Appends the RTP packets of one access unit to `out`, which the caller clears and reuses
    /// (no allocation in steady state).
    ///
    /// On error nothing is appended and no sequence number is used.
    pub fn packetize(&mut self, au: &AccessUnit, out: &mut Vec<RtpPacket>) -> Result<(), RtpError> {
        self.valid.clone()?;
        let mut any = false;
        for (index, nal) in au.nalus.iter().enumerate() {
            if is_dropped(nal) {
                continue;
            }
            let t = nal_unit_type(nal);
            if t == 0 || t >= nal_type::STAP_A {
                return Err(RtpError::UnsupportedNalType { index, nal_type: t });
            }
            any = true;
        }
        if !any {
            return Err(RtpError::EmptyAccessUnit { pts: au.pts });
        }

        let timestamp = self.rtp_timestamp(au);
        let max = self.cfg.max_payload;
        let first_packet = out.len();
        let nalus = au.nalus.as_slice();
        let mut i = 0;
        while let Some(nal) = nalus.get(i) {
            if is_dropped(nal) {
                i += 1;
                continue;
            }
            if nal.len() > max {
                self.push_fu_a(nal, timestamp, out);
                i += 1;
                continue;
            }
            // Greedily aggregate the following NAL units that still fit (§5.7.1: STAP-A NAL
            // header, then a 16-bit size before each NAL unit).
            let mut size = 1 + 2 + nal.len();
            let mut count = 1;
            let mut end = i + 1;
            let mut j = i + 1;
            while count < MAX_STAP_NALUS {
                let Some(next) = nalus.get(j) else { break };
                j += 1;
                if is_dropped(next) {
                    continue;
                }
                if size + 2 + next.len() > max {
                    break;
                }
                size += 2 + next.len();
                count += 1;
                end = j;
            }
            if count == 1 {
                self.push_single(nal, timestamp, out);
                i += 1;
            } else {
                self.push_stap_a(nalus.get(i..end).unwrap_or_default(), timestamp, out);
                i = end;
            }
        }
        // §5.1: the marker bit is set on the last packet of the access unit.
        if out.len() > first_packet {
            if let Some(last) = out.last_mut() {
                last.header[1] |= 0x80;
            }
        }
        self.last_timestamp = timestamp;
        Ok(())
    }

    /// Appends a packet with the 12-byte RTP header (RFC 3550 §5.1: V=2, P=0, X=0, CC=0, M=0)
    /// and the next sequence number, and returns it to be filled in place (building it on the
    /// stack and moving it into `out` would copy the whole struct for every packet).
    fn new_packet<'o>(
        &mut self,
        timestamp: u32,
        kind: Kind,
        out: &'o mut Vec<RtpPacket>,
    ) -> &'o mut RtpPacket {
        let seq = self.next_sequence;
        self.next_sequence = seq.wrapping_add(1);
        self.packets_sent += 1;
        out.push(RtpPacket::EMPTY);
        let last = out.len() - 1;
        // Just pushed: the index is in bounds.
        let pkt = &mut out[last];
        let [s0, s1] = seq.to_be_bytes();
        let [t0, t1, t2, t3] = timestamp.to_be_bytes();
        let [c0, c1, c2, c3] = self.ssrc.to_be_bytes();
        pkt.header[..RTP_HEADER_LEN].copy_from_slice(&[
            0x80,
            self.cfg.payload_type & 0x7f,
            s0,
            s1,
            t0,
            t1,
            t2,
            t3,
            c0,
            c1,
            c2,
            c3,
        ]);
        pkt.kind = kind;
        pkt
    }

    /// §5.6: a single NAL unit packet is the NAL unit itself as the payload.
    fn push_single(&mut self, nal: &Bytes, timestamp: u32, out: &mut Vec<RtpPacket>) {
        self.octets_sent += nal.len() as u64;
        let pkt = self.new_packet(timestamp, Kind::Single, out);
        pkt.header_len = RTP_HEADER_LEN as u8;
        pkt.n_parts = 1;
        pkt.len = RTP_HEADER_LEN + nal.len();
        pkt.parts[0] = Some(nal.clone());
    }

    /// §5.7.1: STAP-A NAL header (F = OR of the F bits, NRI = highest NRI, type 24), then each
    /// NAL unit preceded by its 16-bit size.
    fn push_stap_a(&mut self, nalus: &[Bytes], timestamp: u32, out: &mut Vec<RtpPacket>) {
        let pkt = self.new_packet(timestamp, Kind::StapA, out);
        let mut n = 0usize;
        let mut f = 0u8;
        let mut nri = 0u8;
        let mut len = RTP_HEADER_LEN + 1;
        for nal in nalus.iter().filter(|n| !is_dropped(n)) {
            let (Some(slot), Some(size)) = (
                pkt.parts.get_mut(n),
                pkt.header.get_mut(13 + 2 * n..15 + 2 * n),
            ) else {
                break;
            };
            let hdr = nal.first().copied().unwrap_or(0);
            f |= hdr & 0x80;
            nri = nri.max(hdr & 0x60);
            // The caller only aggregates NAL units no larger than MAX_PAYLOAD, so this fits.
            size.copy_from_slice(&(nal.len() as u16).to_be_bytes());
            *slot = Some(nal.clone());
            len += 2 + nal.len();
            n += 1;
        }
        pkt.header[RTP_HEADER_LEN] = f | nri | nal_type::STAP_A;
        pkt.header_len = (RTP_HEADER_LEN + 1 + 2 * n) as u8;
        pkt.n_parts = n as u8;
        pkt.len = len;
        self.octets_sent += (len - RTP_HEADER_LEN) as u64;
    }

    /// §5.8: FU indicator (F and NRI of the NAL unit, type 28) and FU header (S, E, R=0, the
    /// NAL unit type), then a fragment of the NAL unit without its header byte. The caller
    /// only fragments NAL units longer than the payload limit, so there are always at least
    /// two fragments and no FU has both S and E set.
    fn push_fu_a(&mut self, nal: &Bytes, timestamp: u32, out: &mut Vec<RtpPacket>) {
        let hdr = nal.first().copied().unwrap_or(0);
        let indicator = (hdr & 0xe0) | nal_type::FU_A;
        let chunk = self.cfg.max_payload.saturating_sub(2).max(1);
        let mut pos = 1;
        while pos < nal.len() {
            let end = pos.saturating_add(chunk).min(nal.len());
            let mut fu_header = hdr & 0x1f;
            if pos == 1 {
                fu_header |= 0x80;
            }
            if end == nal.len() {
                fu_header |= 0x40;
            }
            self.octets_sent += (2 + end - pos) as u64;
            let pkt = self.new_packet(timestamp, Kind::FuA, out);
            pkt.header[RTP_HEADER_LEN] = indicator;
            pkt.header[RTP_HEADER_LEN + 1] = fu_header;
            pkt.header_len = (RTP_HEADER_LEN + 2) as u8;
            pkt.n_parts = 1;
            pkt.len = RTP_HEADER_LEN + 2 + (end - pos);
            pkt.parts[0] = Some(nal.slice(pos..end));
            pos = end;
        }
    }
}

/// NAL units never sent: empty ones and access unit delimiters (see the module docs).
fn is_dropped(nal: &Bytes) -> bool {
    nal.is_empty() || nal_unit_type(nal) == nal_type::AUD
}

/// The payload structure of a packet (RFC 6184 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadKind {
    /// One whole NAL unit (§5.6).
    Single,
    /// Several whole NAL units with 16-bit sizes (§5.7.1).
    StapA,
    /// A fragment of one NAL unit (§5.8).
    FuA,
}

type Kind = PayloadKind;

/// One RTP packet, zero-copy: its header bytes inline and [`Bytes`] slices of the access
/// unit's NAL units. No heap allocation is made to build one.
#[derive(Clone)]
pub struct RtpPacket {
    /// RTP header, then the STAP-A NAL header and sizes, or the FU indicator and header.
    header: [u8; HEADER_CAP],
    header_len: u8,
    kind: Kind,
    n_parts: u8,
    /// Total length in bytes on the wire.
    len: usize,
    /// NAL unit slices; only the first `n_parts` are used.
    parts: [Option<Bytes>; MAX_STAP_NALUS],
}

impl RtpPacket {
    /// A blank packet that [`Packetizer`] fills in place. Unused part slots are `None`, which
    /// costs nothing to drop (an empty `Bytes` is dropped through its vtable).
    const EMPTY: RtpPacket = RtpPacket {
        header: [0; HEADER_CAP],
        header_len: 0,
        kind: Kind::Single,
        n_parts: 0,
        len: RTP_HEADER_LEN,
        parts: [const { None }; MAX_STAP_NALUS],
    };

    /// Length in bytes on the wire (header included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a packet has at least its 12-byte header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Payload length in bytes (the RTP header excluded).
    pub fn payload_len(&self) -> usize {
        self.len - RTP_HEADER_LEN
    }

    /// The payload structure.
    pub fn payload_kind(&self) -> PayloadKind {
        self.kind
    }

    /// The 12-byte RTP header.
    pub fn header(&self) -> &[u8] {
        self.header.get(..RTP_HEADER_LEN).unwrap_or_default()
    }

    /// Sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.header[2], self.header[3]])
    }

    /// RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ])
    }

    /// Synchronization source identifier.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([
            self.header[8],
            self.header[9],
            self.header[10],
            self.header[11],
        ])
    }

    /// Payload type.
    pub fn payload_type(&self) -> u8 {
        self.header[1] & 0x7f
    }

    /// Marker bit: set on the last packet of an access unit.
    pub fn marker(&self) -> bool {
        self.header[1] & 0x80 != 0
    }

    /// Calls `f` with each contiguous piece of the packet, in wire order.
    #[inline]
    fn for_each_slice<'a>(&'a self, mut f: impl FnMut(&'a [u8])) {
        let n = usize::from(self.n_parts);
        let parts = self.parts.get(..n).unwrap_or_default();
        match self.kind {
            Kind::StapA => {
                // RTP header, STAP-A NAL header, first size | NAL | size | NAL ...
                let mut at = RTP_HEADER_LEN + 1;
                for (k, part) in parts.iter().flatten().enumerate() {
                    let from = if k == 0 { 0 } else { at };
                    f(self.header.get(from..at + 2).unwrap_or_default());
                    at += 2;
                    f(part);
                }
            }
            Kind::Single | Kind::FuA => {
                f(self
                    .header
                    .get(..usize::from(self.header_len))
                    .unwrap_or_default());
                for part in parts.iter().flatten() {
                    f(part);
                }
            }
        }
    }

    /// Appends the packet's pieces to `out`, for a vectored write (`write_vectored`,
    /// `sendmsg`). At most `2 + 2 ×` [`MAX_STAP_NALUS`] slices.
    pub fn io_slices<'a>(&'a self, out: &mut Vec<IoSlice<'a>>) {
        self.for_each_slice(|s| out.push(IoSlice::new(s)));
    }

    /// Copies the packet into a contiguous buffer (a UDP datagram, or after an RTSP interleave
    /// prefix).
    pub fn write_to(&self, buf: &mut BytesMut) {
        buf.reserve(self.len);
        self.for_each_slice(|s| buf.put_slice(s));
    }

    /// Copies the packet as an RTSP interleaved binary frame (RFC 2326 §10.12): `$`, the
    /// channel, the 16-bit length, then the packet. The payload limit keeps the length in
    /// range.
    pub fn write_interleaved_to(&self, channel: u8, buf: &mut BytesMut) {
        buf.reserve(4 + self.len);
        buf.put_u8(b'$');
        buf.put_u8(channel);
        buf.put_u16(u16::try_from(self.len).unwrap_or(u16::MAX));
        self.for_each_slice(|s| buf.put_slice(s));
    }

    /// The packet as one contiguous buffer (copies).
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.len);
        self.write_to(&mut buf);
        buf.freeze()
    }
}

impl fmt::Debug for RtpPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpPacket")
            .field("kind", &self.kind)
            .field("sequence", &self.sequence())
            .field("timestamp", &self.timestamp())
            .field("marker", &self.marker())
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn au(nalus: Vec<Bytes>, pts: i64, key: bool) -> AccessUnit {
        AccessUnit {
            pts,
            dts: pts,
            time_base: TimeBase::RTP_VIDEO,
            key,
            nalus,
        }
    }

    fn fixed(max_payload: usize) -> Packetizer {
        Packetizer::try_new(PacketizerConfig {
            payload_type: 96,
            max_payload,
            ssrc: Some(0x1234_5678),
            initial_sequence: Some(0xfffe),
            timestamp_offset: Some(0xffff_ff00),
        })
        .unwrap()
    }

    /// A NAL unit of `len` bytes with header byte `hdr` and a recognisable body.
    fn nal(hdr: u8, len: usize, seed: u8) -> Bytes {
        let mut v = Vec::with_capacity(len);
        if len > 0 {
            v.push(hdr);
        }
        for k in 1..len {
            v.push(seed.wrapping_add((k % 251) as u8).wrapping_mul(7) | 1);
        }
        Bytes::from(v)
    }

    /// What a receiver reconstructs: the RTP header fields and the NAL units of each access
    /// unit, checked against RFC 3550 §5.1 and RFC 6184 §5.6–5.8 on the way.
    #[derive(Debug, Default)]
    struct Received {
        /// (timestamp, NAL units) per access unit, split at the marker bit.
        aus: Vec<(u32, Vec<Bytes>)>,
        sequences: Vec<u16>,
        max_payload_seen: usize,
    }

    fn depacketize(packets: &[Bytes], pt: u8, ssrc: u32) -> Result<Received, String> {
        let mut r = Received::default();
        let mut cur: Vec<Bytes> = Vec::new();
        let mut cur_ts: Option<u32> = None;
        let mut frag: Option<Vec<u8>> = None;
        for p in packets {
            if p.len() < 13 {
                return Err(format!("packet of {} bytes", p.len()));
            }
            if p[0] != 0x80 {
                return Err(format!("first byte {:02x}: want V=2 P=0 X=0 CC=0", p[0]));
            }
            if p[1] & 0x7f != pt {
                return Err("payload type".into());
            }
            let marker = p[1] & 0x80 != 0;
            r.sequences.push(u16::from_be_bytes([p[2], p[3]]));
            let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
            if u32::from_be_bytes([p[8], p[9], p[10], p[11]]) != ssrc {
                return Err("ssrc".into());
            }
            if *cur_ts.get_or_insert(ts) != ts {
                return Err("timestamp changed within an access unit".into());
            }
            let payload = p.slice(12..);
            r.max_payload_seen = r.max_payload_seen.max(payload.len());
            let t = payload[0] & 0x1f;
            match t {
                1..=23 => {
                    if frag.is_some() {
                        return Err("single NAL inside a fragmented NAL".into());
                    }
                    cur.push(payload.clone());
                }
                24 => {
                    if frag.is_some() {
                        return Err("STAP-A inside a fragmented NAL".into());
                    }
                    let mut rest = &payload[1..];
                    let (mut f, mut nri, mut n) = (0, 0, 0);
                    while !rest.is_empty() {
                        if rest.len() < 3 {
                            return Err("STAP-A tail".into());
                        }
                        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                        if len == 0 || len > rest.len() - 2 {
                            return Err("STAP-A size".into());
                        }
                        let unit = &rest[2..2 + len];
                        f |= unit[0] & 0x80;
                        nri = nri.max(unit[0] & 0x60);
                        cur.push(Bytes::copy_from_slice(unit));
                        rest = &rest[2 + len..];
                        n += 1;
                    }
                    if n < 2 {
                        return Err("STAP-A with fewer than two NAL units".into());
                    }
                    if payload[0] & 0xe0 != f | nri {
                        return Err("STAP-A F/NRI".into());
                    }
                }
                28 => {
                    if payload.len() < 3 {
                        return Err("FU-A without data".into());
                    }
                    let (ind, hdr) = (payload[0], payload[1]);
                    let (s, e) = (hdr & 0x80 != 0, hdr & 0x40 != 0);
                    if s && e {
                        return Err("FU-A with S and E".into());
                    }
                    if hdr & 0x20 != 0 {
                        return Err("FU-A R bit".into());
                    }
                    let header = (ind & 0xe0) | (hdr & 0x1f);
                    match (&mut frag, s) {
                        (None, true) => frag = Some(vec![header]),
                        (Some(buf), false) => {
                            if buf[0] != header {
                                return Err("FU-A header changed".into());
                            }
                        }
                        _ => return Err("FU-A start bit out of order".into()),
                    }
                    if let Some(buf) = &mut frag {
                        buf.extend_from_slice(&payload[2..]);
                    }
                    if e {
                        cur.push(Bytes::from(frag.take().unwrap()));
                    } else if marker {
                        return Err("marker on a non-final fragment".into());
                    }
                }
                _ => return Err(format!("payload type {t}")),
            }
            if marker {
                if frag.is_some() {
                    return Err("marker inside a fragmented NAL".into());
                }
                r.aus.push((ts, std::mem::take(&mut cur)));
                cur_ts = None;
            }
        }
        if !cur.is_empty() || frag.is_some() {
            return Err("stream ends without a marker".into());
        }
        Ok(r)
    }

    fn wire(packets: &[RtpPacket]) -> Vec<Bytes> {
        packets.iter().map(RtpPacket::to_bytes).collect()
    }

    #[test]
    fn single_nal_packet_header_layout() {
        let mut p = fixed(1400);
        let mut out = Vec::new();
        let slice = Bytes::from_static(&[0x41, 0xaa, 0xbb]);
        p.packetize(&au(vec![slice.clone()], 3000, false), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        // RFC 3550 §5.1: V=2 P=0 X=0 CC=0 | M=1 PT=96 | seq | ts | SSRC, then the NAL unit.
        let ts = 0xffff_ff00u32.wrapping_add(3000).to_be_bytes();
        let mut want = vec![0x80, 0x80 | 96, 0xff, 0xfe];
        want.extend_from_slice(&ts);
        want.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0x41, 0xaa, 0xbb]);
        assert_eq!(&out[0].to_bytes()[..], &want[..]);
        assert_eq!(out[0].payload_kind(), PayloadKind::Single);
        assert!(out[0].marker());
        assert_eq!(out[0].sequence(), 0xfffe);
        assert_eq!(out[0].timestamp(), 0xffff_ff00u32.wrapping_add(3000));
        assert_eq!(out[0].ssrc(), 0x1234_5678);
        assert_eq!(out[0].payload_type(), 96);
        assert_eq!((out[0].len(), out[0].payload_len()), (15, 3));
        // Zero-copy: the payload is the caller's buffer.
        let mut slices = Vec::new();
        out[0].io_slices(&mut slices);
        assert_eq!(slices.len(), 2);
        assert_eq!(slices[1].as_ptr(), slice.as_ptr());
        assert_eq!((p.packets_sent(), p.octets_sent()), (1, 3));
        assert_eq!(p.last_sequence(), 0xfffe);
        assert_eq!(p.next_sequence(), 0xffff);
        assert_eq!(p.last_timestamp(), out[0].timestamp());
    }

    #[test]
    fn fu_a_indicator_and_header() {
        let mut p = fixed(10);
        let mut out = Vec::new();
        // An IDR slice with NRI 3 (0x65) of 20 bytes: 19 body bytes in 8-byte fragments.
        let idr = nal(0x65, 20, 3);
        p.packetize(&au(vec![idr.clone()], 0, true), &mut out)
            .unwrap();
        assert_eq!(out.len(), 3);
        let bytes = wire(&out);
        // RFC 6184 §5.8: FU indicator = F|NRI|28, FU header = S|E|R|type.
        assert_eq!(&bytes[0][12..14], &[0x7c, 0x85]);
        assert_eq!(&bytes[1][12..14], &[0x7c, 0x05]);
        assert_eq!(&bytes[2][12..14], &[0x7c, 0x45]);
        assert_eq!(&bytes[0][14..], &idr[1..9]);
        assert_eq!(&bytes[1][14..], &idr[9..17]);
        assert_eq!(&bytes[2][14..], &idr[17..]);
        assert_eq!(
            out.iter().map(RtpPacket::marker).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(
            out.iter().map(RtpPacket::sequence).collect::<Vec<_>>(),
            [0xfffe, 0xffff, 0]
        );
        assert!(out.iter().all(|o| o.payload_kind() == PayloadKind::FuA));
        // A disposable slice (NRI 0) keeps NRI 0; the F bit is carried too.
        out.clear();
        p.packetize(&au(vec![nal(0x81, 12, 0)], 0, false), &mut out)
            .unwrap();
        assert_eq!(out[0].to_bytes()[12..14], [0x9c, 0x81]);
        assert_eq!(out[1].to_bytes()[12..14], [0x9c, 0x41]);
    }

    #[test]
    fn stap_a_layout_for_parameter_sets_and_aud_dropped() {
        let mut p = fixed(1400);
        let mut out = Vec::new();
        let aud = Bytes::from_static(&[0x09, 0xf0]);
        let sps = Bytes::from_static(&[0x67, 0x42, 0x00, 0x1e]);
        let pps = Bytes::from_static(&[0x68, 0xce, 0x38]);
        let sei = Bytes::from_static(&[0x06, 0x05, 0x01, 0x80]);
        let idr = nal(0x65, 3000, 9);
        p.packetize(
            &au(
                vec![aud, sps.clone(), pps.clone(), sei.clone(), idr.clone()],
                0,
                true,
            ),
            &mut out,
        )
        .unwrap();
        // STAP-A(SPS, PPS, SEI) then the IDR in 3 FU-As.
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].payload_kind(), PayloadKind::StapA);
        let stap = out[0].to_bytes();
        // RFC 6184 §5.7.1: STAP-A header (F=0, NRI = max = 3, type 24), then size + NAL each.
        let mut want = vec![0x78, 0, 4];
        want.extend_from_slice(&sps);
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(&pps);
        want.extend_from_slice(&[0, 4]);
        want.extend_from_slice(&sei);
        assert_eq!(&stap[12..], &want[..]);
        assert!(!out[0].marker());
        // io_slices: header+STAP hdr+size, NAL, size, NAL, size, NAL.
        let mut slices = Vec::new();
        out[0].io_slices(&mut slices);
        assert_eq!(slices.len(), 6);
        let joined: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(&joined[..], &stap[..]);
        let r = depacketize(&wire(&out), 96, 0x1234_5678).unwrap();
        assert_eq!(r.aus, vec![(out[0].timestamp(), vec![sps, pps, sei, idr])]);
        // An AU of only delimiters or empty NAL units is an error and uses no sequence number.
        let before = p.next_sequence();
        let only_aud = au(
            vec![Bytes::from_static(&[0x09, 0x10]), Bytes::new()],
            7,
            false,
        );
        assert_eq!(
            p.packetize(&only_aud, &mut out),
            Err(RtpError::EmptyAccessUnit { pts: 7 })
        );
        assert_eq!(p.next_sequence(), before);
    }

    #[test]
    fn small_nal_units_fill_stap_a_up_to_the_limit() {
        let mut p = fixed(100);
        let mut out = Vec::new();
        // 12 slices of 20 bytes: 1 + 4 × 22 = 89 fits, a fifth (111) does not.
        let nalus: Vec<Bytes> = (0..12).map(|k| nal(0x41, 20, k)).collect();
        p.packetize(&au(nalus.clone(), 0, false), &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|o| o.payload_len() == 89));
        let r = depacketize(&wire(&out), 96, 0x1234_5678).unwrap();
        assert_eq!(r.aus[0].1, nalus);
        // MAX_STAP_NALUS bounds the aggregation of tiny NAL units.
        out.clear();
        let tiny: Vec<Bytes> = (0..20).map(|k| nal(0x41, 2, k)).collect();
        p.packetize(&au(tiny.clone(), 0, false), &mut out).unwrap();
        assert_eq!(out.len(), 3);
        let r = depacketize(&wire(&out), 96, 0x1234_5678).unwrap();
        assert_eq!(r.aus[0].1, tiny);
    }

    #[test]
    fn stap_a_exactly_at_the_limit() {
        let mut p = fixed(100);
        let mut out = Vec::new();
        // 1 + (2 + 40) + (2 + 55) = 100: one STAP-A filling the payload exactly.
        p.packetize(
            &au(vec![nal(0x41, 40, 1), nal(0x41, 55, 2)], 0, false),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload_len(), 100);
        // One byte more does not fit: two single NAL unit packets.
        out.clear();
        p.packetize(
            &au(vec![nal(0x41, 40, 1), nal(0x41, 56, 2)], 0, false),
            &mut out,
        )
        .unwrap();
        let kinds: Vec<_> = out.iter().map(RtpPacket::payload_kind).collect();
        assert_eq!(kinds, [PayloadKind::Single, PayloadKind::Single]);
    }

    #[test]
    fn nal_of_exactly_max_payload_is_a_single_packet() {
        let mut p = fixed(50);
        let mut out = Vec::new();
        p.packetize(
            &au(vec![nal(0x41, 50, 1), nal(0x41, 51, 2)], 0, false),
            &mut out,
        )
        .unwrap();
        let kinds: Vec<_> = out.iter().map(RtpPacket::payload_kind).collect();
        assert_eq!(
            kinds,
            [PayloadKind::Single, PayloadKind::FuA, PayloadKind::FuA]
        );
        assert!(out.iter().all(|o| o.payload_len() <= 50));
    }

    #[test]
    fn rejects_bad_config_and_nal_types() {
        for max_payload in [0, 1, 2, MAX_PAYLOAD + 1] {
            let cfg = PacketizerConfig {
                max_payload,
                ..PacketizerConfig::default()
            };
            assert_eq!(
                Packetizer::try_new(cfg).err(),
                Some(RtpError::InvalidMaxPayload { max_payload })
            );
            // `new` does not panic; packetize reports the error.
            let mut p = Packetizer::new(cfg);
            let mut out = Vec::new();
            assert!(p
                .packetize(&au(vec![nal(0x41, 10, 0)], 0, false), &mut out)
                .is_err());
            assert!(out.is_empty());
        }
        let cfg = PacketizerConfig {
            payload_type: 128,
            ..PacketizerConfig::default()
        };
        assert_eq!(
            Packetizer::try_new(cfg).err(),
            Some(RtpError::InvalidPayloadType(128))
        );
        let mut p = fixed(1400);
        let mut out = Vec::new();
        for t in [0u8, 24, 28, 31] {
            assert_eq!(
                p.packetize(
                    &au(vec![nal(0x41, 5, 0), nal(0x60 | t, 5, 0)], 0, false),
                    &mut out
                ),
                Err(RtpError::UnsupportedNalType {
                    index: 1,
                    nal_type: t
                })
            );
        }
        assert!(out.is_empty());
        assert_eq!(p.packets_sent(), 0);
        // Minimum payload: FU-As of one byte each.
        let mut p = fixed(3);
        p.packetize(&au(vec![nal(0x65, 6, 0)], 0, true), &mut out)
            .unwrap();
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|o| o.payload_len() == 3));
    }

    #[test]
    fn random_defaults_and_timestamps() {
        let a = Packetizer::new(PacketizerConfig::default());
        let b = Packetizer::new(PacketizerConfig::default());
        // 2^-96 chance of a false failure.
        assert!(
            a.ssrc() != b.ssrc()
                || a.initial_sequence() != b.initial_sequence()
                || a.timestamp_offset() != b.timestamp_offset()
        );
        assert_eq!(a.config().max_payload, 1400);
        assert_eq!(a.payload_type(), 96);
        let p = fixed(1400);
        // 1/30 s at a 1/15360 time base is 3000 ticks of 90 kHz; negative pts wraps.
        let tb = TimeBase::new(1, 15360);
        let mut unit = au(vec![nal(0x41, 3, 0)], 512, false);
        unit.time_base = tb;
        assert_eq!(p.rtp_timestamp(&unit), 0xffff_ff00u32.wrapping_add(3000));
        unit.pts = -512;
        unit.dts = -1024;
        assert_eq!(p.rtp_timestamp(&unit), 0xffff_ff00 - 3000);
        assert_eq!(p.rtp_timestamp_dts(&unit), 0xffff_ff00 - 6000);
    }

    #[test]
    fn write_to_and_interleaved_match_to_bytes() {
        let mut p = fixed(100);
        let mut out = Vec::new();
        p.packetize(
            &au(
                vec![nal(0x67, 10, 0), nal(0x68, 4, 0), nal(0x65, 300, 0)],
                0,
                true,
            ),
            &mut out,
        )
        .unwrap();
        let mut buf = BytesMut::new();
        for pkt in &out {
            let start = buf.len();
            pkt.write_interleaved_to(2, &mut buf);
            assert_eq!(buf[start], b'$');
            assert_eq!(buf[start + 1], 2);
            assert_eq!(
                usize::from(u16::from_be_bytes([buf[start + 2], buf[start + 3]])),
                pkt.len()
            );
            assert_eq!(&buf[start + 4..], &pkt.to_bytes()[..]);
            let mut plain = BytesMut::new();
            pkt.write_to(&mut plain);
            assert_eq!(plain.len(), pkt.len());
        }
    }

    /// NAL sizes including the edge cases around the payload limit.
    fn nal_size(max: usize) -> impl Strategy<Value = usize> {
        prop_oneof![
            4 => 1usize..=5000,
            1 => Just(1usize),
            1 => Just(max),
            1 => max.saturating_sub(3)..=max + 1,
            // Pairs of these fill a STAP-A exactly, or overflow it by a byte or two.
            2 => (max / 2).saturating_sub(4)..=(max / 2).max(1),
            1 => 0usize..=3,
        ]
    }

    fn stream(max: usize) -> impl Strategy<Value = Vec<Vec<(u8, usize)>>> {
        let nal_t = prop_oneof![
            Just(1u8),
            Just(5),
            Just(6),
            Just(7),
            Just(8),
            Just(9),
            1u8..=23
        ];
        proptest::collection::vec(
            proptest::collection::vec((nal_t, nal_size(max)), 1..6),
            1..6,
        )
    }

    /// Interop: our packets through retina's H.264 depacketizer (retina 0.4.21). Retina exposes
    /// no way to push a `ReceivedPacket` into a `Depacketizer` from outside the crate; its
    /// public (doc-hidden, "for benchmarks and fuzzing") path is the one its own benchmark
    /// uses: `PacketHeader::validate` on the raw bytes, `InorderParser::rtp` (which checks SSRC
    /// and sequence continuity), then `testutil::DepacketizeBuf::push`.
    mod retina_interop {
        use super::*;
        use retina::client::rtp::InorderParser;
        use retina::client::{SessionOptions, Timeline, UnknownRtcpSsrcPolicy};
        use retina::codec::{CodecItem, Depacketizer, FrameFormat, ParametersRef};

        /// libx264's SPS for 320x240 High profile, level 1.3, and its PPS.
        const SPS: &[u8] = &[
            0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
        ];
        const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

        /// A GOP in decoding order with B-frame style pts: (pts, key, NAL units).
        fn gop() -> Vec<AccessUnit> {
            let p = |len: usize, seed: u8| nal(0x41, len, seed);
            let mut units = vec![au(
                vec![
                    Bytes::from_static(&[0x09, 0x10]),
                    Bytes::from_static(SPS),
                    Bytes::from_static(PPS),
                    nal(0x06, 600, 1),
                    nal(0x65, 6000, 2),
                ],
                3003,
                true,
            )];
            let rest: [(i64, Vec<Bytes>); 6] = [
                (12012, vec![p(1400, 3)]),
                (6006, vec![nal(0x01, 50, 4)]),
                (9009, vec![nal(0x01, 1399, 5)]),
                (24024, vec![p(1401, 6)]),
                (15015, vec![nal(0x01, 2, 7), nal(0x01, 3, 8)]),
                (18018, vec![p(700, 9), p(800, 10), p(9000, 11)]),
            ];
            for (k, (pts, nalus)) in rest.into_iter().enumerate() {
                let mut unit = au(nalus, pts, false);
                unit.dts = (k as i64 + 1) * 3003;
                units.push(unit);
            }
            units[0].dts = 0;
            units
        }

        fn round_trip(max_payload: usize, first_seq: u16, ts_offset: u32) {
            let mut packetizer = Packetizer::try_new(PacketizerConfig {
                payload_type: 96,
                max_payload,
                ssrc: Some(0xdead_beef),
                initial_sequence: Some(first_seq),
                timestamp_offset: Some(ts_offset),
            })
            .unwrap();
            let mut depacketizer =
                Depacketizer::new("video", "h264", 90_000, None, Some("packetization-mode=1"))
                    .unwrap();
            depacketizer.set_frame_format(FrameFormat::MP4);
            let mut parser = InorderParser::new(
                Some(0xdead_beef),
                Some(first_seq),
                UnknownRtcpSsrcPolicy::Default,
            );
            let mut timeline = Timeline::new(None, 90_000, None).unwrap();
            let mut buf = retina::testutil::DepacketizeBuf::new(1 << 16);
            let opts = SessionOptions::default();
            let stream_ctx = retina::StreamContext::dummy();
            let conn_ctx = retina::ConnectionContext::dummy();
            let pkt_ctx = retina::PacketContext::dummy();

            let units: Vec<AccessUnit> = gop()
                .into_iter()
                .chain(gop().into_iter().map(|mut u| {
                    u.pts += 21021;
                    u.dts += 21021;
                    u
                }))
                .collect();
            let mut frames = Vec::new();
            let mut packets = Vec::new();
            for unit in &units {
                packets.clear();
                packetizer.packetize(unit, &mut packets).unwrap();
                for pkt in &packets {
                    let data = pkt.to_bytes();
                    let (header, range) = retina::rtp::PacketHeader::validate(&data[..]).unwrap();
                    let meta = parser
                        .rtp(
                            &opts,
                            &stream_ctx,
                            None,
                            &conn_ctx,
                            &pkt_ctx,
                            &mut timeline,
                            0,
                            &header,
                        )
                        .unwrap()
                        .unwrap();
                    assert_eq!(meta.loss, 0);
                    let payload = &data[usize::from(range.start)..usize::from(range.end)];
                    buf.push(&mut depacketizer, meta, payload).unwrap();
                    while let Some(item) = depacketizer.pull() {
                        match item.unwrap() {
                            CodecItem::VideoFrame(f) => frames.push(f),
                            other => panic!("unexpected item {other:?}"),
                        }
                    }
                }
            }
            assert_eq!(frames.len(), units.len());
            for (unit, frame) in units.iter().zip(&frames) {
                assert_eq!(
                    frame.timestamp().timestamp() as u32,
                    packetizer.rtp_timestamp(unit)
                );
                assert_eq!(frame.is_random_access_point(), unit.key);
                assert_eq!(frame.loss(), 0);
                // Retina moves SPS/PPS to its parameters (FrameFormat::MP4) and we drop AUDs.
                let want: Vec<Bytes> = unit
                    .nalus
                    .iter()
                    .filter(|n| {
                        !matches!(
                            nal_unit_type(n),
                            nal_type::AUD | nal_type::SPS | nal_type::PPS
                        )
                    })
                    .cloned()
                    .collect();
                let got =
                    crate::h264::split_length_prefixed(&Bytes::copy_from_slice(frame.data()), 4)
                        .unwrap();
                assert_eq!(got, want);
            }
            let Some(ParametersRef::Video(params)) = depacketizer.parameters() else {
                panic!("no video parameters");
            };
            let avcc =
                crate::h264::AvcDecoderConfig::parse(&Bytes::copy_from_slice(params.extra_data()))
                    .unwrap();
            assert_eq!(
                (avcc.sps, avcc.pps),
                (vec![Bytes::from_static(SPS)], vec![Bytes::from_static(PPS)])
            );
            assert_eq!(params.pixel_dimensions(), (320, 240));
        }

        #[test]
        fn retina_depacketizes_our_stream() {
            round_trip(1400, 1000, 0);
        }

        #[test]
        fn retina_depacketizes_small_payloads_across_wraps() {
            round_trip(200, 65_500, u32::MAX - 30_000);
            round_trip(3, 65_535, u32::MAX);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn packetize_reassembles(
            (max, aus) in prop_oneof![3usize..64, 64usize..2000, Just(1400usize)]
                .prop_flat_map(|m| (Just(m), stream(m))),
            nri in 0u8..4,
            first_seq in prop_oneof![any::<u16>(), 65_520u16..],
            ts_offset in prop_oneof![any::<u32>(), (u32::MAX - 20_000)..],
        ) {
            let mut p = Packetizer::try_new(PacketizerConfig {
                payload_type: 97,
                max_payload: max,
                ssrc: Some(42),
                initial_sequence: Some(first_seq),
                timestamp_offset: Some(ts_offset),
            }).unwrap();
            let mut out = Vec::new();
            let mut expected = Vec::new();
            let mut octets = 0u64;
            for (k, spec) in aus.iter().enumerate() {
                let nalus: Vec<Bytes> = spec
                    .iter()
                    .enumerate()
                    .map(|(j, &(t, len))| nal((nri << 5) | t, len, (k * 7 + j) as u8))
                    .collect();
                let unit = au(nalus.clone(), k as i64 * 3003, false);
                let kept: Vec<Bytes> = nalus
                    .into_iter()
                    .filter(|n| !n.is_empty() && nal_unit_type(n) != nal_type::AUD)
                    .collect();
                let before = out.len();
                let r = p.packetize(&unit, &mut out);
                if kept.is_empty() {
                    prop_assert_eq!(r, Err(RtpError::EmptyAccessUnit { pts: unit.pts }));
                    continue;
                }
                prop_assert_eq!(r, Ok(()));
                prop_assert_eq!(p.last_timestamp(), p.rtp_timestamp(&unit));
                prop_assert!(out.len() > before);
                octets += out[before..].iter().map(|o| o.payload_len() as u64).sum::<u64>();
                expected.push((p.rtp_timestamp(&unit), kept));
            }
            prop_assert_eq!(p.packets_sent(), out.len() as u64);
            prop_assert_eq!(p.octets_sent(), octets);
            let bytes = wire(&out);
            for (b, o) in bytes.iter().zip(&out) {
                prop_assert_eq!(b.len(), o.len());
                prop_assert!(o.payload_len() <= max);
            }
            let r = depacketize(&bytes, 97, 42).map_err(TestCaseError::fail)?;
            prop_assert!(r.max_payload_seen <= max);
            // Marker only on the last packet of each AU, one timestamp per AU (checked by the
            // depacketizer), and the NAL units come back intact.
            prop_assert_eq!(&r.aus, &expected);
            // Consecutive sequence numbers across access units, wrapping at 2^16.
            for (k, s) in r.sequences.iter().enumerate() {
                prop_assert_eq!(*s, first_seq.wrapping_add(k as u16));
            }
            if !out.is_empty() {
                prop_assert_eq!(p.last_sequence(), out[out.len() - 1].sequence());
            }
        }
    }
}
