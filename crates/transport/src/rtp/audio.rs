//! RTP packetization of audio frames, passed through as encoded:
//!
//! - **AAC**, RFC 3640 `mpeg4-generic` in the AAC-hbr mode (§3.3.6): each packet starts with
//!   the 16-bit AU-headers-length (in bits), then one 16-bit AU header per frame (13-bit
//!   AU-size, 3-bit AU-Index / AU-Index-delta, both 0 since frames are consecutive), then the
//!   frames. Consecutive frames share a packet while they fit the payload limit and span no
//!   more than the aggregation bound; a frame larger than the limit is fragmented (§3.2.3),
//!   each fragment carrying the AU header with the whole frame's size. The marker bit is set
//!   on every packet that ends an access unit (§3.2.1: complete AUs, or the last fragment).
//!   The RTP timestamp is the first frame's, in samples (§4.1: the clock rate is the sampling
//!   rate).
//! - **MP3**, RFC 2250 §3.5 (`MPA`, payload type 14, 90 kHz clock): a 4-byte header (16 bits
//!   zero, 16-bit fragment offset), then the frame or a fragment of it.
//! - **Opus**, RFC 7587 §4.2: one Opus packet per RTP packet, 48 kHz clock.
//! - **G.711** (`PCMU`, `PCMA`, RFC 3551 §4.5.14): the samples; a run longer than the limit is
//!   split, each part stamped with its first sample.
//!
//! For MP3, Opus and G.711 the marker bit is set on the first packet of the stream only (RFC
//! 3551 §4.1, the start of a talkspurt). Packets are zero-copy slices of the frames, as for
//! video.

use std::time::Duration;

use bytes::Bytes;

use super::{Kind, Packetizer, PacketizerConfig, RtpError, RtpPacket, RTP_HEADER_LEN};
use crate::audio::{AudioCodec, AudioFrame, AudioTrack};
use crate::TimeBase;

/// The most frames one AAC packet aggregates (bounded by the inline header storage of an
/// [`RtpPacket`]: 2 bytes of AU-headers-length plus 2 per frame).
pub const MAX_AAC_FRAMES_PER_PACKET: usize = (super::HEADER_CAP - RTP_HEADER_LEN - 2) / 2;

/// The largest AAC frame an AAC-hbr AU header can describe (13-bit AU-size).
pub const MAX_AAC_FRAME: usize = (1 << 13) - 1;

/// The default RTP payload type of a codec: the static ones of RFC 3551 (PCMU 0, PCMA 8,
/// MPA 14), else the dynamic type 97 (the video uses 96).
pub fn default_payload_type(codec: AudioCodec) -> u8 {
    match codec {
        AudioCodec::Pcmu => 0,
        AudioCodec::Pcma => 8,
        AudioCodec::Mp3 => 14,
        _ => 97,
    }
}

/// Packetizes the audio frames of one track. Frames go in with [`push`](Self::push); AAC
/// frames may be held back to share a packet with the next ones, so call
/// [`flush`](Self::flush) when the stream stops or ends (and when
/// [`pending_since`](Self::pending_since) says a frame has waited long enough).
#[derive(Debug, Clone)]
pub struct AudioPacketizer {
    rtp: Packetizer,
    codec: AudioCodec,
    channels: u8,
    clock_rate: u32,
    /// AAC samples per frame at the clock rate (the spacing of consecutive frames).
    frame_ticks: u32,
    /// The longest span of frames one packet carries, in clock ticks.
    max_span: u64,
    /// AAC frames waiting for a packet: RTP timestamp and data.
    pending: Vec<(u32, Bytes)>,
    pending_bytes: usize,
    frames: u64,
    first_packet: bool,
}

impl AudioPacketizer {
    /// A packetizer for `track`: payload type, payload limit and random choices from `cfg`;
    /// AAC frames share a packet while they span at most `aggregation` (zero: one frame per
    /// packet).
    pub fn new(
        track: &AudioTrack,
        cfg: PacketizerConfig,
        aggregation: Duration,
    ) -> Result<AudioPacketizer, RtpError> {
        let rtp = Packetizer::try_new(cfg)?;
        let clock_rate = track.rtp_clock_rate().max(1);
        let frame_ticks = track.aac_config().map_or(0, |c| {
            // Frame length in samples at the sampling rate, which is the clock rate for AAC.
            c.frame_length
        });
        let max_span = (aggregation.as_nanos() * u128::from(clock_rate) / 1_000_000_000)
            .try_into()
            .unwrap_or(u64::MAX);
        Ok(AudioPacketizer {
            rtp,
            codec: track.codec,
            channels: track.channels,
            clock_rate,
            frame_ticks,
            max_span,
            pending: Vec::with_capacity(MAX_AAC_FRAMES_PER_PACKET),
            pending_bytes: 0,
            frames: 0,
            first_packet: true,
        })
    }

    /// The RTP timestamp of a frame: its pts at the clock rate plus the random offset.
    pub fn rtp_timestamp(&self, frame: &AudioFrame) -> u32 {
        self.rtp_timestamp_of(frame.pts_in(self.time_base()))
    }

    fn rtp_timestamp_of(&self, ticks: i64) -> u32 {
        // The low 32 bits: RTP timestamps wrap modulo 2^32 (RFC 3550 §5.1).
        (ticks as u32).wrapping_add(self.rtp.timestamp_offset())
    }

    /// The time base of RTP timestamps (1 / clock rate).
    pub fn time_base(&self) -> TimeBase {
        TimeBase::new(1, self.clock_rate)
    }

    /// The RTP clock rate.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The SSRC of every packet.
    pub fn ssrc(&self) -> u32 {
        self.rtp.ssrc()
    }

    /// The payload type of every packet.
    pub fn payload_type(&self) -> u8 {
        self.rtp.payload_type()
    }

    /// The random offset added to every timestamp.
    pub fn timestamp_offset(&self) -> u32 {
        self.rtp.timestamp_offset()
    }

    /// Packets produced so far.
    pub fn packets_sent(&self) -> u64 {
        self.rtp.packets_sent()
    }

    /// Payload octets produced so far (RTP headers excluded).
    pub fn octets_sent(&self) -> u64 {
        self.rtp.octets_sent()
    }

    /// Frames taken so far (sent or pending).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The sequence number of the first packet.
    pub fn initial_sequence(&self) -> u16 {
        self.rtp.initial_sequence()
    }

    /// The RTP timestamp of the oldest frame held back for aggregation, if any.
    pub fn pending_since(&self) -> Option<u32> {
        self.pending.first().map(|(ts, _)| *ts)
    }

    /// Takes one frame: appends the packets that are complete to `out` (AAC frames may stay
    /// pending). On error nothing is appended and the frame is not taken.
    pub fn push(&mut self, frame: &AudioFrame, out: &mut Vec<RtpPacket>) -> Result<(), RtpError> {
        if frame.data.is_empty() {
            return Err(RtpError::EmptyAudioFrame { pts: frame.pts });
        }
        let ts = self.rtp_timestamp(frame);
        let max = self.rtp.config().max_payload;
        match self.codec {
            AudioCodec::Aac => {
                if frame.data.len() > MAX_AAC_FRAME {
                    return Err(RtpError::FrameTooLarge {
                        len: frame.data.len(),
                        limit: MAX_AAC_FRAME,
                    });
                }
                self.frames += 1;
                self.push_aac(ts, frame.data.clone(), max, out);
            }
            AudioCodec::Mp3 => {
                self.frames += 1;
                self.push_mpa(ts, &frame.data, max, out);
            }
            AudioCodec::Opus => {
                if frame.data.len() > max {
                    // RFC 7587 §4.2: an Opus packet is never fragmented.
                    return Err(RtpError::FrameTooLarge {
                        len: frame.data.len(),
                        limit: max,
                    });
                }
                self.frames += 1;
                let marker = std::mem::take(&mut self.first_packet);
                self.push_packet(ts, marker, &[], std::slice::from_ref(&frame.data), out);
            }
            AudioCodec::Pcmu | AudioCodec::Pcma => {
                self.frames += 1;
                // One byte per sample per channel; split at whole sample groups.
                let channels = usize::from(self.channels.max(1));
                let chunk = (max / channels).max(1) * channels;
                let mut pos = 0;
                while pos < frame.data.len() {
                    let end = (pos + chunk).min(frame.data.len());
                    let at = ts.wrapping_add((pos / channels) as u32);
                    let marker = std::mem::take(&mut self.first_packet);
                    self.push_packet(at, marker, &[], &[frame.data.slice(pos..end)], out);
                    pos = end;
                }
            }
        }
        Ok(())
    }

    /// Emits the AAC frames held back, as one packet.
    pub fn flush(&mut self, out: &mut Vec<RtpPacket>) {
        if self.pending.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let ts = frames.first().map_or(0, |(ts, _)| *ts);
        // AU-headers-length in bits (§3.2.1), then one 16-bit header per frame: AU-size in
        // the high 13 bits, AU-Index (first) / AU-Index-delta (others) 0 in the low 3.
        let mut header = [0u8; 2 + 2 * MAX_AAC_FRAMES_PER_PACKET];
        let n = frames.len().min(MAX_AAC_FRAMES_PER_PACKET);
        header[..2].copy_from_slice(&((16 * n) as u16).to_be_bytes());
        for (k, (_, data)) in frames.iter().take(n).enumerate() {
            let size = (data.len() as u16) << 3;
            header[2 + 2 * k..4 + 2 * k].copy_from_slice(&size.to_be_bytes());
        }
        let parts: Vec<Bytes> = frames.into_iter().take(n).map(|(_, d)| d).collect();
        self.push_packet(ts, true, &header[..2 + 2 * n], &parts, out);
        self.pending = Vec::with_capacity(MAX_AAC_FRAMES_PER_PACKET);
    }

    fn push_aac(&mut self, ts: u32, data: Bytes, max: usize, out: &mut Vec<RtpPacket>) {
        let fits_alone = 4 + data.len() <= max;
        if !fits_alone {
            self.flush(out);
            self.fragment_aac(ts, &data, max, out);
            return;
        }
        if let Some((first, _)) = self.pending.first() {
            let last = self.pending.last().map_or(*first, |(t, _)| *t);
            let contiguous = ts == last.wrapping_add(self.frame_ticks);
            let n = self.pending.len();
            let size = 2 + 2 * (n + 1) + self.pending_bytes + data.len();
            let span = u64::from(ts.wrapping_sub(*first)) + u64::from(self.frame_ticks);
            if !contiguous
                || n >= MAX_AAC_FRAMES_PER_PACKET
                || size > max
                || span > self.max_span.max(u64::from(self.frame_ticks))
            {
                self.flush(out);
            }
        }
        self.pending_bytes += data.len();
        self.pending.push((ts, data));
        // Send as soon as the packet spans the bound: waiting longer only adds delay.
        let first = self.pending.first().map_or(ts, |(t, _)| *t);
        let span = u64::from(ts.wrapping_sub(first)) + 2 * u64::from(self.frame_ticks);
        if span > self.max_span || self.pending.len() >= MAX_AAC_FRAMES_PER_PACKET {
            self.flush(out);
        }
    }

    /// §3.2.3: each fragment carries one AU header with the size of the whole frame.
    fn fragment_aac(&mut self, ts: u32, data: &Bytes, max: usize, out: &mut Vec<RtpPacket>) {
        let mut header = [0u8; 4];
        header[..2].copy_from_slice(&16u16.to_be_bytes());
        header[2..4].copy_from_slice(&((data.len() as u16) << 3).to_be_bytes());
        let chunk = max.saturating_sub(4).max(1);
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + chunk).min(data.len());
            let last = end == data.len();
            self.push_packet(ts, last, &header, &[data.slice(pos..end)], out);
            pos = end;
        }
    }

    /// RFC 2250 §3.5: MBZ (16 bits) and the fragment offset (16 bits) before each part.
    fn push_mpa(&mut self, ts: u32, data: &Bytes, max: usize, out: &mut Vec<RtpPacket>) {
        let chunk = max.saturating_sub(4).max(1);
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + chunk).min(data.len());
            let offset = u16::try_from(pos).unwrap_or(u16::MAX);
            let [o0, o1] = offset.to_be_bytes();
            let marker = std::mem::take(&mut self.first_packet);
            self.push_packet(ts, marker, &[0, 0, o0, o1], &[data.slice(pos..end)], out);
            pos = end;
        }
    }

    /// One packet: the RTP header, `payload_header`, then `parts`.
    fn push_packet(
        &mut self,
        ts: u32,
        marker: bool,
        payload_header: &[u8],
        parts: &[Bytes],
        out: &mut Vec<RtpPacket>,
    ) {
        let payload: usize = payload_header.len() + parts.iter().map(Bytes::len).sum::<usize>();
        self.rtp.octets_sent += payload as u64;
        let pkt = self.rtp.new_packet(ts, Kind::Single, out);
        if marker {
            pkt.header[1] |= 0x80;
        }
        let hl = RTP_HEADER_LEN + payload_header.len();
        if let Some(dst) = pkt.header.get_mut(RTP_HEADER_LEN..hl) {
            dst.copy_from_slice(payload_header);
        }
        pkt.header_len = hl as u8;
        let n = parts.len().min(pkt.parts.len());
        for (slot, part) in pkt.parts.iter_mut().zip(parts.iter()) {
            *slot = Some(part.clone());
        }
        pkt.n_parts = n as u8;
        pkt.len = RTP_HEADER_LEN + payload;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn aac_track() -> AudioTrack {
        // AAC LC, 48 kHz, stereo.
        AudioTrack::aac(Bytes::from_static(&[0x11, 0x90])).unwrap()
    }

    fn cfg(max_payload: usize) -> PacketizerConfig {
        PacketizerConfig::default()
            .with_payload_type(97)
            .with_max_payload(max_payload)
            .with_ssrc(Some(7))
            .with_initial_sequence(Some(100))
            .with_timestamp_offset(Some(1000))
    }

    fn frame(n: i64, len: usize) -> AudioFrame {
        let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(n as u8)).collect();
        AudioFrame::new(Bytes::from(data), n * 1024, TimeBase::new(1, 48_000))
    }

    /// What a receiver reads from AAC-hbr packets (RFC 3640 §3.2): (timestamp, frames) per
    /// complete packet, fragments joined.
    fn depacketize_aac(packets: &[RtpPacket]) -> Vec<(u32, bool, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut frag: Vec<u8> = Vec::new();
        for p in packets {
            let b = p.to_bytes();
            let payload = &b[RTP_HEADER_LEN..];
            let bits = u16::from_be_bytes([payload[0], payload[1]]) as usize;
            assert_eq!(bits % 16, 0);
            let n = bits / 16;
            let mut at = 2 + 2 * n;
            let mut frames = Vec::new();
            for k in 0..n {
                let h = u16::from_be_bytes([payload[2 + 2 * k], payload[3 + 2 * k]]);
                assert_eq!(h & 0x7, 0, "AU-Index / delta is 0");
                let size = usize::from(h >> 3);
                let rest = &payload[at..];
                if n == 1 && rest.len() < size {
                    // A fragment.
                    frag.extend_from_slice(rest);
                    if p.marker() {
                        assert_eq!(frag.len(), size);
                        frames.push(std::mem::take(&mut frag));
                    }
                    at = payload.len();
                } else {
                    frames.push(rest[..size].to_vec());
                    at += size;
                }
            }
            assert_eq!(at, payload.len(), "no bytes after the AUs");
            if !frames.is_empty() {
                out.push((p.timestamp(), p.marker(), frames));
            }
        }
        out
    }

    #[test]
    fn aac_frames_share_packets_within_the_bound_and_the_payload_limit() {
        let mut p =
            AudioPacketizer::new(&aac_track(), cfg(1400), Duration::from_millis(50)).unwrap();
        let mut out = Vec::new();
        for n in 0..6 {
            p.push(&frame(n, 200), &mut out).unwrap();
        }
        p.flush(&mut out);
        let rx = depacketize_aac(&out);
        // 50 ms holds two frames (42.7 ms), not three (64 ms).
        assert_eq!(rx.len(), 3);
        for (k, (ts, marker, frames)) in rx.iter().enumerate() {
            assert!(*marker);
            assert_eq!(*ts, 1000 + 2048 * k as u32);
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[0], frame(2 * k as i64, 200).data.to_vec());
        }
        assert_eq!(p.frames(), 6);
        assert_eq!(p.packets_sent(), 3);
        assert_eq!(
            p.octets_sent(),
            out.iter().map(|p| p.payload_len() as u64).sum::<u64>()
        );
        let seqs: Vec<u16> = out.iter().map(RtpPacket::sequence).collect();
        assert_eq!(seqs, vec![100, 101, 102]);

        // Zero bound: one frame per packet, sent at once (nothing pending).
        let mut p = AudioPacketizer::new(&aac_track(), cfg(1400), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        p.push(&frame(0, 10), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert!(p.pending_since().is_none());

        // The payload limit splits a group: 4 frames of 300 bytes under 700 bytes.
        let mut p = AudioPacketizer::new(&aac_track(), cfg(700), Duration::from_secs(1)).unwrap();
        let mut out = Vec::new();
        for n in 0..4 {
            p.push(&frame(n, 300), &mut out).unwrap();
        }
        p.flush(&mut out);
        let rx = depacketize_aac(&out);
        assert_eq!(rx.iter().map(|r| r.2.len()).collect::<Vec<_>>(), vec![2, 2]);
        assert!(out.iter().all(|p| p.payload_len() <= 700));
    }

    #[test]
    fn a_gap_in_timestamps_starts_a_new_packet() {
        let mut p = AudioPacketizer::new(&aac_track(), cfg(1400), Duration::from_secs(1)).unwrap();
        let mut out = Vec::new();
        p.push(&frame(0, 10), &mut out).unwrap();
        p.push(&frame(5, 10), &mut out).unwrap();
        p.flush(&mut out);
        let rx = depacketize_aac(&out);
        assert_eq!(rx.len(), 2);
        assert_eq!(rx[1].0, 1000 + 5 * 1024);
    }

    #[test]
    fn large_aac_frames_are_fragmented() {
        let mut p =
            AudioPacketizer::new(&aac_track(), cfg(100), Duration::from_millis(50)).unwrap();
        let mut out = Vec::new();
        p.push(&frame(0, 20), &mut out).unwrap();
        p.push(&frame(1, 250), &mut out).unwrap();
        p.flush(&mut out);
        // The pending small frame goes first, then three fragments of the large one.
        assert_eq!(out.len(), 4);
        assert_eq!(
            out.iter().map(RtpPacket::marker).collect::<Vec<_>>(),
            vec![true, false, false, true]
        );
        let rx = depacketize_aac(&out);
        assert_eq!(rx.len(), 2);
        assert_eq!(rx[1].2[0], frame(1, 250).data.to_vec());
        assert!(out.iter().all(|p| p.payload_len() <= 100));
        let too_big = AudioFrame::new(Bytes::from(vec![1; 9000]), 0, TimeBase::new(1, 48_000));
        assert!(matches!(
            p.push(&too_big, &mut Vec::new()),
            Err(RtpError::FrameTooLarge { .. })
        ));
        assert!(p.push(&frame(2, 0), &mut Vec::new()).is_err());
    }

    #[test]
    fn other_codecs() {
        let mp3 = AudioTrack::new(AudioCodec::Mp3, 44_100, 2).unwrap();
        let mut p =
            AudioPacketizer::new(&mp3, cfg(100).with_payload_type(14), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        let f = AudioFrame::new(Bytes::from(vec![7; 150]), 1152, TimeBase::new(1, 44_100));
        p.push(&f, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        let b0 = out[0].to_bytes();
        let b1 = out[1].to_bytes();
        // 1152 samples at 44.1 kHz = 2351 ticks of 90 kHz, plus the offset.
        assert_eq!(out[0].timestamp(), 1000 + 2351);
        assert_eq!(&b0[12..16], &[0, 0, 0, 0]);
        assert_eq!(&b1[12..16], &[0, 0, 0, 96]);
        assert_eq!(b0.len() - 16 + b1.len() - 16, 150);
        assert!(out[0].marker() && !out[1].marker());

        let pcmu = AudioTrack::new(AudioCodec::Pcmu, 8000, 1).unwrap();
        let mut p =
            AudioPacketizer::new(&pcmu, cfg(100).with_payload_type(0), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        let f = AudioFrame::new(Bytes::from(vec![0x7f; 160]), 160, TimeBase::new(1, 8000));
        p.push(&f, &mut out).unwrap();
        assert_eq!(
            out.iter().map(RtpPacket::timestamp).collect::<Vec<_>>(),
            vec![1160, 1260]
        );
        assert_eq!(out[0].payload_type(), 0);

        let opus = AudioTrack::new(AudioCodec::Opus, 48_000, 2).unwrap();
        let mut p = AudioPacketizer::new(&opus, cfg(100), Duration::ZERO).unwrap();
        let mut out = Vec::new();
        let f = AudioFrame::new(Bytes::from(vec![1; 80]), 960, TimeBase::new(1, 48_000));
        p.push(&f, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamp(), 1960);
        let big = AudioFrame::new(Bytes::from(vec![1; 101]), 0, TimeBase::new(1, 48_000));
        assert!(p.push(&big, &mut out).is_err());
        assert_eq!(default_payload_type(AudioCodec::Aac), 97);
    }
}
