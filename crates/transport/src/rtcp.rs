//! RTCP sender reports, BYE, and receiver-report parsing (RFC 3550 §6).
//!
//! A publisher sends a compound packet of a sender report (SR, §6.4.1) and an SDES packet with
//! its CNAME (§6.5.1) every few seconds, and a BYE (§6.6) when it stops. It reads the media
//! server's receiver reports (RR, §6.4.2) to learn what arrived: in particular the RTSP
//! publisher waits, over UDP, until a report block's extended highest sequence number reaches
//! the last packet it sent before it sends TEARDOWN (see [`ReportBlock::acknowledges`]).
//!
//! This module never reads a clock: wall-clock time comes in as a [`SystemTime`] or
//! [`Duration`], and monotonic time as [`Instant`] arguments.
//!
//! # RTP time of a sender report
//!
//! An SR pairs an NTP wall-clock time with the RTP timestamp of the same instant (§6.4.1). The
//! driver keeps a reference: the RTP timestamp of the decoding time of the last access unit it
//! sent ([`crate::rtp::Packetizer::rtp_timestamp_dts`]: the pacer sends on DTS) and the
//! [`Instant`] it was sent. To build an SR, the driver takes the wall-clock and monotonic
//! times of one moment and calls [`rtp_timestamp_at`]`(reference_rtp, reference_instant, now,
//! 90_000)`: the reference plus the elapsed time in 90 kHz ticks. This module reads no clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

/// RTCP packet type of a sender report (RFC 3550 §12.1).
pub const PT_SR: u8 = 200;
/// RTCP packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type of source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type of goodbye.
pub const PT_BYE: u8 = 203;
/// RTCP packet type of application-defined packets.
pub const PT_APP: u8 = 204;

/// SDES item type of the canonical end-point identifier (RFC 3550 §6.5.1).
const SDES_CNAME: u8 = 1;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Errors from writing or parsing RTCP.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpError {
    /// The buffer holds no packet.
    #[error("empty RTCP packet")]
    Empty,
    /// A packet or its header runs past the end of the buffer.
    #[error("RTCP packet at byte {offset} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// Byte offset of the packet in the compound packet.
        offset: usize,
        /// Bytes the header or length field requires.
        needed: usize,
        /// Bytes left from `offset`.
        available: usize,
    },
    /// The version field is not 2 (RFC 3550 §6.4.1).
    #[error("RTCP packet at byte {offset} has version {version}, not 2")]
    BadVersion {
        /// Byte offset of the packet.
        offset: usize,
        /// The version found.
        version: u8,
    },
    /// The padding count is zero or larger than the packet (RFC 3550 §6.4.1).
    #[error("RTCP packet at byte {offset} has an invalid padding count {padding}")]
    BadPadding {
        /// Byte offset of the packet.
        offset: usize,
        /// The padding count found in the last octet.
        padding: u8,
    },
    /// A packet's content does not fit its length (report blocks, SSRC list, BYE reason).
    #[error("RTCP packet type {packet_type} at byte {offset} is malformed: {reason}")]
    Malformed {
        /// Byte offset of the packet.
        offset: usize,
        /// Its packet type.
        packet_type: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// A CNAME longer than an SDES item can hold (255 bytes, RFC 3550 §6.5).
    #[error("CNAME of {0} bytes is longer than 255")]
    CnameTooLong(usize),
}

/// A 64-bit NTP timestamp (RFC 3550 §4, RFC 5905 §6): seconds since 1900-01-01 in the high 32
/// bits, fraction of a second in the low 32. Seconds wrap in 2036 (NTP era 1), as RTCP expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// The NTP time of a duration since the Unix epoch.
    pub fn from_unix(since_unix_epoch: Duration) -> NtpTimestamp {
        let secs = since_unix_epoch
            .as_secs()
            .wrapping_add(NTP_UNIX_OFFSET_SECS)
            & 0xffff_ffff;
        NtpTimestamp((secs << 32) | nanos_to_fraction(since_unix_epoch.subsec_nanos()))
    }

    /// The NTP time of a wall-clock time (read by the caller: this never reads the clock).
    /// Times before 1970 down to 1900 are represented too; earlier ones give 0.
    pub fn from_system_time(t: SystemTime) -> NtpTimestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => NtpTimestamp::from_unix(d),
            Err(e) => {
                let before = e.duration();
                let ntp_epoch = Duration::from_secs(NTP_UNIX_OFFSET_SECS);
                match ntp_epoch.checked_sub(before) {
                    Some(since_1900) => NtpTimestamp(
                        (since_1900.as_secs() << 32) | nanos_to_fraction(since_1900.subsec_nanos()),
                    ),
                    None => NtpTimestamp(0),
                }
            }
        }
    }

    /// Whole seconds (the SR's "NTP timestamp, most significant word").
    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Fraction of a second in units of 2^-32 s (the "least significant word").
    pub fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// The middle 32 bits, as a receiver echoes them in a report block's LSR field
    /// (RFC 3550 §6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

impl From<SystemTime> for NtpTimestamp {
    fn from(t: SystemTime) -> Self {
        NtpTimestamp::from_system_time(t)
    }
}

fn nanos_to_fraction(nanos: u32) -> u64 {
    (u64::from(nanos) << 32) / 1_000_000_000
}

/// The RTP timestamp at `now` of a clock that read `reference_rtp` at `reference_at`, running
/// at `clock_rate` Hz (90 000 for video, RFC 6184 §8.2.1): `reference_rtp + elapsed ×
/// clock_rate`, modulo 2^32. `now` may be earlier than the reference (the result then goes
/// back). Used for the RTP timestamp of a sender report (see the module docs).
pub fn rtp_timestamp_at(
    reference_rtp: u32,
    reference_at: Instant,
    now: Instant,
    clock_rate: u32,
) -> u32 {
    let ticks = |d: Duration| -> u32 {
        // Exact in 128 bits; the low 32 bits are all RTP keeps.
        ((d.as_nanos() * u128::from(clock_rate) + 500_000_000) / 1_000_000_000) as u32
    };
    match now.checked_duration_since(reference_at) {
        Some(ahead) => reference_rtp.wrapping_add(ticks(ahead)),
        None => reference_rtp.wrapping_sub(ticks(reference_at.duration_since(now))),
    }
}

/// The sender information of a sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Wall-clock time of the report.
    pub ntp: NtpTimestamp,
    /// The RTP timestamp of the same instant as `ntp`.
    pub rtp_timestamp: u32,
    /// RTP packets sent since the start (wraps at 2^32).
    pub packet_count: u32,
    /// RTP payload octets sent since the start, headers and padding excluded (wraps at 2^32).
    pub octet_count: u32,
}

/// Writes the common RTCP header (RFC 3550 §6.4.1): V=2, P=0, the 5-bit count, the packet
/// type, and the length in 32-bit words minus one.
fn put_header(out: &mut BytesMut, count: u8, packet_type: u8, total_len: usize) {
    out.put_u8(0x80 | (count & 0x1f));
    out.put_u8(packet_type);
    out.put_u16((total_len / 4).saturating_sub(1) as u16);
}

/// Appends a sender report without report blocks (RFC 3550 §6.4.1): 28 bytes, length field 6.
/// The counts are taken modulo 2^32, as the 32-bit fields wrap.
pub fn write_sender_report(
    ssrc: u32,
    ntp: NtpTimestamp,
    rtp_ts: u32,
    packet_count: u64,
    octet_count: u64,
    out: &mut BytesMut,
) {
    out.reserve(28);
    put_header(out, 0, PT_SR, 28);
    out.put_u32(ssrc);
    out.put_u64(ntp.0);
    out.put_u32(rtp_ts);
    out.put_u32(packet_count as u32);
    out.put_u32(octet_count as u32);
}

/// Appends an SDES packet with one chunk holding a CNAME item (RFC 3550 §6.5, §6.5.1): the
/// item list ends with at least one null octet, padded to a 32-bit boundary.
pub fn write_sdes_cname(ssrc: u32, cname: &str, out: &mut BytesMut) -> Result<(), RtcpError> {
    let name = cname.as_bytes();
    let name_len = u8::try_from(name.len()).map_err(|_| RtcpError::CnameTooLong(name.len()))?;
    // header 4 + SSRC 4 + type 1 + length 1 + text, then 1–4 null octets.
    let items = 2 + name.len();
    let chunk = 4 + (items + 4) / 4 * 4;
    let total = 4 + chunk;
    out.reserve(total);
    put_header(out, 1, PT_SDES, total);
    out.put_u32(ssrc);
    out.put_u8(SDES_CNAME);
    out.put_u8(name_len);
    out.put_slice(name);
    out.put_bytes(0, chunk - 4 - items);
    Ok(())
}

/// Appends a BYE packet for one source without a reason (RFC 3550 §6.6): 8 bytes.
pub fn write_bye(ssrc: u32, out: &mut BytesMut) {
    out.reserve(8);
    put_header(out, 1, PT_BYE, 8);
    out.put_u32(ssrc);
}

/// Appends the compound packet a sender sends periodically (RFC 3550 §6.1): an SR, then an
/// SDES with the CNAME.
pub fn write_sr_compound(
    info: &SenderInfo,
    cname: &str,
    out: &mut BytesMut,
) -> Result<(), RtcpError> {
    if cname.len() > 255 {
        return Err(RtcpError::CnameTooLong(cname.len()));
    }
    write_sender_report(
        info.ssrc,
        info.ntp,
        info.rtp_timestamp,
        u64::from(info.packet_count),
        u64::from(info.octet_count),
        out,
    );
    write_sdes_cname(info.ssrc, cname, out)
}

/// Appends the compound packet a sender sends when it leaves (RFC 3550 §6.1, §6.3.7): an SR,
/// an SDES with the CNAME, then a BYE.
pub fn write_bye_compound(
    info: &SenderInfo,
    cname: &str,
    out: &mut BytesMut,
) -> Result<(), RtcpError> {
    write_sr_compound(info, cname, out)?;
    write_bye(info.ssrc, out);
    Ok(())
}

/// Appends the compound packet of a participant that has not sent media yet (RFC 3550 §6.1,
/// §6.4.2): an RR without report blocks (RC = 0), then an SDES with the CNAME.
pub fn write_empty_rr_compound(
    ssrc: u32,
    cname: &str,
    out: &mut BytesMut,
) -> Result<(), RtcpError> {
    if cname.len() > 255 {
        return Err(RtcpError::CnameTooLong(cname.len()));
    }
    out.reserve(8);
    put_header(out, 0, PT_RR, 8);
    out.put_u32(ssrc);
    write_sdes_cname(ssrc, cname, out)
}

/// One reception report block of an SR or RR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on (our SSRC when the server reports on our stream).
    pub ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received: the cycle count in the high 16 bits and the
    /// highest sequence number in the low 16.
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from the source (0 if none).
    pub last_sr: u32,
    /// Delay since that SR, in units of 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// The highest sequence number received (low 16 bits of the extended number).
    pub fn highest_sequence(&self) -> u16 {
        self.extended_highest_sequence as u16
    }

    /// True when the receiver has received packet `seq` or a later one, comparing 16-bit
    /// sequence numbers in serial-number arithmetic (within half the space, as RFC 3550 A.1
    /// does). This is how a sender learns its last packet has arrived.
    pub fn acknowledges(&self, seq: u16) -> bool {
        (self.highest_sequence().wrapping_sub(seq) as i16) >= 0
    }

    fn parse(b: &[u8; 24]) -> ReportBlock {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost24 = (u32::from(b[5]) << 16) | (u32::from(b[6]) << 8) | u32::from(b[7]);
        ReportBlock {
            ssrc: word(0),
            fraction_lost: b[4],
            // Sign-extend the 24-bit field.
            cumulative_lost: ((lost24 << 8) as i32) >> 8,
            extended_highest_sequence: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        }
    }
}

/// One packet of a compound RTCP packet, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket {
    /// A sender report (§6.4.1).
    SenderReport {
        /// The sender's information.
        info: SenderInfo,
        /// Its reception report blocks.
        reports: Vec<ReportBlock>,
    },
    /// A receiver report (§6.4.2).
    ReceiverReport {
        /// SSRC of the reporter.
        ssrc: u32,
        /// Its reception report blocks.
        reports: Vec<ReportBlock>,
    },
    /// A goodbye (§6.6).
    Bye {
        /// The sources leaving.
        ssrcs: Vec<u32>,
        /// The reason, if given (lossily decoded as UTF-8).
        reason: Option<String>,
    },
    /// Any other packet type (SDES, APP, feedback…), not interpreted.
    Other {
        /// The packet type.
        packet_type: u8,
        /// The 5-bit count or subtype field.
        count: u8,
        /// Length of the packet in bytes, header included.
        len: usize,
    },
}

impl RtcpPacket {
    /// The report blocks of an SR or RR (empty for other packets).
    pub fn report_blocks(&self) -> &[ReportBlock] {
        match self {
            RtcpPacket::SenderReport { reports, .. }
            | RtcpPacket::ReceiverReport { reports, .. } => reports,
            _ => &[],
        }
    }
}

/// Parses a compound RTCP packet (a UDP datagram or an RTSP interleaved frame) from a peer.
///
/// Checks each packet's version, length and padding (RFC 3550 §6.4.1, A.2) and the content of
/// SR, RR and BYE packets; other packet types are skipped. Unlike the strict A.2 checks it does
/// not require an SR or RR first, so a lone BYE or APP is accepted. Never panics.
pub fn parse_compound(data: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if data.is_empty() {
        return Err(RtcpError::Empty);
    }
    let mut packets = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let rest = data.get(offset..).unwrap_or_default();
        let (packet, len) = parse_one(rest, offset)?;
        packets.push(packet);
        offset += len;
    }
    Ok(packets)
}

/// Parses the packet at the start of `buf`; returns it and its length.
fn parse_one(buf: &[u8], offset: usize) -> Result<(RtcpPacket, usize), RtcpError> {
    let &[b0, packet_type, l0, l1, ..] = buf else {
        return Err(RtcpError::Truncated {
            offset,
            needed: 4,
            available: buf.len(),
        });
    };
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion { offset, version });
    }
    let len = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
    let Some(packet) = buf.get(..len) else {
        return Err(RtcpError::Truncated {
            offset,
            needed: len,
            available: buf.len(),
        });
    };
    let mut content_end = len;
    if b0 & 0x20 != 0 {
        // §6.4.1: the last octet counts the padding octets, itself included.
        let padding = packet.last().copied().unwrap_or(0);
        if padding == 0 || usize::from(padding) > len - 4 {
            return Err(RtcpError::BadPadding { offset, padding });
        }
        content_end = len - usize::from(padding);
    }
    let body = packet.get(4..content_end).unwrap_or_default();
    let count = b0 & 0x1f;
    let malformed = |reason| RtcpError::Malformed {
        offset,
        packet_type,
        reason,
    };
    let parsed = match packet_type {
        PT_SR => {
            let (Some(sender), Some(blocks)) = (body.first_chunk::<24>(), body.get(24..)) else {
                return Err(malformed("sender report shorter than its sender info"));
            };
            let word = |i: usize| {
                u32::from_be_bytes([sender[i], sender[i + 1], sender[i + 2], sender[i + 3]])
            };
            let info = SenderInfo {
                ssrc: word(0),
                ntp: NtpTimestamp((u64::from(word(4)) << 32) | u64::from(word(8))),
                rtp_timestamp: word(12),
                packet_count: word(16),
                octet_count: word(20),
            };
            RtcpPacket::SenderReport {
                info,
                reports: parse_blocks(blocks, count)
                    .ok_or_else(|| malformed("report count exceeds the packet length"))?,
            }
        }
        PT_RR => {
            let (Some(ssrc), Some(blocks)) = (body.first_chunk::<4>(), body.get(4..)) else {
                return Err(malformed("receiver report without SSRC"));
            };
            RtcpPacket::ReceiverReport {
                ssrc: u32::from_be_bytes(*ssrc),
                reports: parse_blocks(blocks, count)
                    .ok_or_else(|| malformed("report count exceeds the packet length"))?,
            }
        }
        PT_BYE => {
            let n = usize::from(count);
            let Some(list) = body.get(..4 * n) else {
                return Err(malformed("source count exceeds the packet length"));
            };
            let ssrcs = list
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            // §6.6: an optional reason: a length octet and that many octets of text.
            let reason = match body.get(4 * n..) {
                Some([reason_len, text @ ..]) => {
                    let Some(text) = text.get(..usize::from(*reason_len)) else {
                        return Err(malformed("reason runs past the packet"));
                    };
                    (!text.is_empty()).then(|| String::from_utf8_lossy(text).into_owned())
                }
                _ => None,
            };
            RtcpPacket::Bye { ssrcs, reason }
        }
        _ => RtcpPacket::Other {
            packet_type,
            count,
            len,
        },
    };
    Ok((parsed, len))
}

/// Parses `count` 24-byte report blocks from the start of `blocks`; `None` if they do not fit.
/// Bytes after them (profile-specific extensions, §6.4.1) are ignored.
fn parse_blocks(blocks: &[u8], count: u8) -> Option<Vec<ReportBlock>> {
    let n = usize::from(count);
    let area = blocks.get(..24 * n)?;
    Some(
        area.chunks_exact(24)
            .filter_map(|c| c.first_chunk::<24>().map(ReportBlock::parse))
            .collect(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INFO: SenderInfo = SenderInfo {
        ssrc: 0x0102_0304,
        ntp: NtpTimestamp(0xe8f0_1234_8000_0000),
        rtp_timestamp: 0xa0b0_c0d0,
        packet_count: 7,
        octet_count: 0x0001_0000,
    };

    #[test]
    fn sender_report_layout() {
        let mut out = BytesMut::new();
        write_sender_report(
            INFO.ssrc,
            INFO.ntp,
            INFO.rtp_timestamp,
            (1 << 32) + 7,
            0x0001_0000,
            &mut out,
        );
        // RFC 3550 §6.4.1: V=2 P=0 RC=0, PT=200, length 6 (7 words), SSRC, NTP (MSW, LSW),
        // RTP timestamp, packet count (mod 2^32), octet count.
        let want = [
            0x80, 200, 0, 6, 1, 2, 3, 4, 0xe8, 0xf0, 0x12, 0x34, 0x80, 0, 0, 0, 0xa0, 0xb0, 0xc0,
            0xd0, 0, 0, 0, 7, 0, 1, 0, 0,
        ];
        assert_eq!(&out[..], &want[..]);
    }

    #[test]
    fn sdes_cname_layout_and_padding() {
        for (name, want_len) in [
            ("", 12),
            ("ab", 16),
            ("abc", 16),
            ("abcde", 16),
            ("abcdef", 20),
            ("abcdefg", 20),
        ] {
            let mut out = BytesMut::new();
            write_sdes_cname(9, name, &mut out).unwrap();
            assert_eq!(out.len(), want_len, "{name:?}");
            // V=2, SC=1, PT=202, length in words minus one.
            assert_eq!(&out[..4], &[0x81, 202, 0, (want_len / 4 - 1) as u8]);
            assert_eq!(&out[4..8], &[0, 0, 0, 9]);
            // CNAME item: type 1, length, text; then at least one null octet (§6.5).
            assert_eq!(&out[8..10], &[1, name.len() as u8]);
            assert_eq!(&out[10..10 + name.len()], name.as_bytes());
            let tail = &out[10 + name.len()..];
            assert!(!tail.is_empty() && tail.iter().all(|&b| b == 0));
        }
        let long = "x".repeat(256);
        let mut out = BytesMut::new();
        assert_eq!(
            write_sdes_cname(1, &long, &mut out),
            Err(RtcpError::CnameTooLong(256))
        );
        assert_eq!(
            write_sr_compound(&INFO, &long, &mut out),
            Err(RtcpError::CnameTooLong(256))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn bye_layout() {
        let mut out = BytesMut::new();
        write_bye(0xcafe_babe, &mut out);
        // RFC 3550 §6.6: V=2 SC=1, PT=203, length 1, SSRC.
        assert_eq!(&out[..], &[0x81, 203, 0, 1, 0xca, 0xfe, 0xba, 0xbe]);
        assert_eq!(
            parse_compound(&out).unwrap(),
            vec![RtcpPacket::Bye {
                ssrcs: vec![0xcafe_babe],
                reason: None
            }]
        );
    }

    #[test]
    fn compound_round_trip_ours_and_retina() {
        let mut out = BytesMut::new();
        write_bye_compound(&INFO, "mpegcoder@host", &mut out).unwrap();
        let packets = parse_compound(&out).unwrap();
        assert_eq!(packets.len(), 3);
        assert_eq!(
            packets[0],
            RtcpPacket::SenderReport {
                info: INFO,
                reports: vec![]
            }
        );
        assert!(matches!(
            packets[1],
            RtcpPacket::Other {
                packet_type: PT_SDES,
                count: 1,
                len: 28
            }
        ));
        assert!(matches!(&packets[2], RtcpPacket::Bye { ssrcs, .. } if ssrcs == &[INFO.ssrc]));
        // Retina's RTCP parser reads the same compound packet.
        let (first, rest) = retina::rtcp::PacketRef::parse(&out).unwrap();
        let sr = first.as_sender_report().unwrap().unwrap();
        assert_eq!(sr.ssrc(), INFO.ssrc);
        assert_eq!(sr.ntp_timestamp().0, INFO.ntp.0);
        assert_eq!(sr.rtp_timestamp(), INFO.rtp_timestamp);
        let (sdes, rest) = retina::rtcp::PacketRef::parse(rest).unwrap();
        assert_eq!(sdes.payload_type(), PT_SDES);
        let (bye, rest) = retina::rtcp::PacketRef::parse(rest).unwrap();
        assert_eq!(bye.payload_type(), PT_BYE);
        assert!(rest.is_empty());
    }

    /// A report block as RFC 3550 §6.4.1 lays it out.
    fn block(ssrc: u32, fraction: u8, lost: [u8; 3], ext_seq: u32, jitter: u32) -> Vec<u8> {
        let mut b = ssrc.to_be_bytes().to_vec();
        b.push(fraction);
        b.extend_from_slice(&lost);
        b.extend_from_slice(&ext_seq.to_be_bytes());
        b.extend_from_slice(&jitter.to_be_bytes());
        b.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        b.extend_from_slice(&0x0001_8000u32.to_be_bytes());
        b
    }

    #[test]
    fn parses_receiver_report_app_and_bye_with_reason() {
        let mut data = vec![0x81, 201, 0, 7, 0, 0, 0, 0x55];
        data.extend(block(0xdead_beef, 64, [0xff, 0xff, 0xff], 0x0001_0005, 90));
        // APP packet (not interpreted), 16 bytes with P set: SSRC, name, then 4 octets of
        // padding whose last octet counts them.
        data.extend_from_slice(&[
            0xa0, 204, 0, 3, 0, 0, 0, 1, b'n', b'a', b'm', b'e', 0, 0, 0, 4,
        ]);
        // BYE with two sources and a reason "gone" (+ 3 null octets of padding).
        data.extend_from_slice(&[0x82, 203, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 4]);
        data.extend_from_slice(b"gone");
        data.extend_from_slice(&[0, 0, 0]);
        let packets = parse_compound(&data).unwrap();
        assert_eq!(packets.len(), 3);
        let RtcpPacket::ReceiverReport { ssrc, reports } = &packets[0] else {
            panic!("not an RR: {:?}", packets[0]);
        };
        assert_eq!(*ssrc, 0x55);
        let want = ReportBlock {
            ssrc: 0xdead_beef,
            fraction_lost: 64,
            cumulative_lost: -1,
            extended_highest_sequence: 0x0001_0005,
            jitter: 90,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 0x0001_8000,
        };
        assert_eq!(reports, &[want]);
        assert_eq!(packets[0].report_blocks(), &[want]);
        assert_eq!(
            packets[1],
            RtcpPacket::Other {
                packet_type: PT_APP,
                count: 0,
                len: 16
            }
        );
        assert_eq!(
            packets[2],
            RtcpPacket::Bye {
                ssrcs: vec![1, 2],
                reason: Some("gone".into())
            }
        );
        assert!(packets[2].report_blocks().is_empty());
        // The TEARDOWN check: the highest sequence received is 5 in cycle 1.
        assert_eq!(want.highest_sequence(), 5);
        assert!(want.acknowledges(5));
        assert!(want.acknowledges(65_530));
        assert!(!want.acknowledges(6));
        // A positive 24-bit loss count.
        let mut sr = vec![0x81, 200, 0, 12];
        sr.extend_from_slice(&[0; 24]);
        sr.extend(block(1, 0, [0x00, 0x01, 0x00], 0, 0));
        let parsed = parse_compound(&sr).unwrap();
        assert_eq!(parsed[0].report_blocks()[0].cumulative_lost, 256);
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(parse_compound(&[]), Err(RtcpError::Empty));
        assert_eq!(
            parse_compound(&[0x80, 201]),
            Err(RtcpError::Truncated {
                offset: 0,
                needed: 4,
                available: 2
            })
        );
        assert_eq!(
            parse_compound(&[0x40, 201, 0, 0]),
            Err(RtcpError::BadVersion {
                offset: 0,
                version: 1
            })
        );
        // Length says 3 words, only 2 present (the second packet of a compound).
        let mut bye = BytesMut::new();
        write_bye(1, &mut bye);
        let mut data = bye.to_vec();
        data.extend_from_slice(&[0x80, 201, 0, 2, 0, 0, 0, 1]);
        assert_eq!(
            parse_compound(&data),
            Err(RtcpError::Truncated {
                offset: 8,
                needed: 12,
                available: 8
            })
        );
        // RR claiming one report block without room for it.
        assert!(matches!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Malformed {
                packet_type: PT_RR,
                ..
            })
        ));
        // SR shorter than its sender info.
        assert!(matches!(
            parse_compound(&[0x80, 200, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Malformed {
                packet_type: PT_SR,
                ..
            })
        ));
        // BYE whose reason runs past the packet.
        assert!(matches!(
            parse_compound(&[0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'a', b'b', b'c']),
            Err(RtcpError::Malformed {
                packet_type: PT_BYE,
                ..
            })
        ));
        // Padding count of zero, and larger than the packet.
        assert_eq!(
            parse_compound(&[0xa0, 204, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::BadPadding {
                offset: 0,
                padding: 0
            })
        );
        assert_eq!(
            parse_compound(&[0xa0, 204, 0, 1, 0, 0, 0, 5]),
            Err(RtcpError::BadPadding {
                offset: 0,
                padding: 5
            })
        );
    }

    #[test]
    fn ntp_timestamps() {
        let epoch = NtpTimestamp::from_unix(Duration::ZERO);
        assert_eq!((epoch.seconds(), epoch.fraction()), (2_208_988_800, 0));
        let t = NtpTimestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!((t.seconds(), t.fraction()), (2_208_988_801, 0x8000_0000));
        assert_eq!(t.middle32(), (2_208_988_801u32 << 16) | 0x8000);
        assert_eq!(
            NtpTimestamp::from(UNIX_EPOCH + Duration::from_millis(1500)),
            t
        );
        // 2036-02-07T06:28:16Z starts NTP era 1: the seconds wrap to 0.
        let era1 = NtpTimestamp::from_unix(Duration::from_secs((1 << 32) - 2_208_988_800));
        assert_eq!(era1.0, 0);
        // Before 1970, and before 1900.
        let t = NtpTimestamp::from_system_time(UNIX_EPOCH - Duration::from_secs(10));
        assert_eq!(t.seconds(), 2_208_988_790);
        let t = NtpTimestamp::from_system_time(UNIX_EPOCH - Duration::from_secs(3_000_000_000));
        assert_eq!(t.0, 0);
        // The fraction is exact to within one unit of 2^-32 s.
        let t = NtpTimestamp::from_unix(Duration::new(0, 999_999_999));
        assert_eq!(t.fraction(), u32::MAX - 4);
    }

    #[test]
    fn rtp_timestamp_follows_elapsed_time() {
        let t0 = crate::clock::test_origin(); // the test adds offsets to it
        assert_eq!(rtp_timestamp_at(1000, t0, t0, 90_000), 1000);
        assert_eq!(
            rtp_timestamp_at(1000, t0, t0 + Duration::from_millis(1500), 90_000),
            136_000
        );
        assert_eq!(
            rtp_timestamp_at(u32::MAX - 9, t0, t0 + Duration::from_secs(1), 90_000),
            89_990
        );
        // 1/3 ms at 90 kHz is 30 ticks; rounding to nearest.
        assert_eq!(
            rtp_timestamp_at(0, t0, t0 + Duration::from_nanos(333_334), 90_000),
            30
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            rtp_timestamp_at(10, t1, t0, 90_000),
            10u32.wrapping_sub(90_000)
        );
    }

    /// A compound packet of plausible headers (V=2, any type/count/padding bit) with lengths
    /// that may or may not match, to reach the inner checks more often than random bytes.
    fn plausible() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (
                any::<u8>(),
                195u8..210,
                0u16..12,
                proptest::collection::vec(any::<u8>(), 0..60),
            ),
            1..5,
        )
        .prop_map(|packets| {
            let mut v = Vec::new();
            for (b0, pt, len, body) in packets {
                v.push(0x80 | (b0 & 0x3f));
                v.push(pt);
                v.extend_from_slice(&len.to_be_bytes());
                v.extend_from_slice(&body);
            }
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parsing_never_panics(data in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            plausible(),
        ]) {
            if let Ok(packets) = parse_compound(&data) {
                prop_assert!(!packets.is_empty());
            }
        }

        #[test]
        fn written_reports_parse_back(
            ssrc in any::<u32>(), ntp in any::<u64>(), rtp in any::<u32>(),
            packets in any::<u32>(), octets in any::<u32>(), cname in "[a-z@.0-9]{0,40}",
        ) {
            let info = SenderInfo {
                ssrc,
                ntp: NtpTimestamp(ntp),
                rtp_timestamp: rtp,
                packet_count: packets,
                octet_count: octets,
            };
            let mut out = BytesMut::new();
            write_sr_compound(&info, &cname, &mut out).unwrap();
            prop_assert_eq!(out.len() % 4, 0);
            let parsed = parse_compound(&out).unwrap();
            prop_assert_eq!(
                &parsed[0],
                &RtcpPacket::SenderReport { info, reports: vec![] }
            );
            prop_assert_eq!(parsed.len(), 2);
        }
    }
}
