//! FLV video tag bodies for H.264 and the tag timeline. Pure functions, no I/O.
//!
//! RTMP video messages (RTMP spec §7.1.5, message type 9) carry exactly the body of an FLV
//! video tag: the `VIDEODATA` header and, for AVC, an `AVCVIDEOPACKET` (Adobe FLV spec v10.1,
//! Annex E.4.3.1):
//!
//! ```text
//! byte 0     FrameType (UB[4]: 1 key frame, 2 inter frame) | CodecID (UB[4]: 7 = AVC)
//! byte 1     AVCPacketType (0 sequence header, 1 NALU, 2 end of sequence)
//! bytes 2-4  CompositionTime (SI24, big-endian, milliseconds; 0 unless AVCPacketType is 1)
//! bytes 5..  AVCDecoderConfigurationRecord (type 0), NAL units with 4-byte big-endian length
//!            prefixes (type 1, the record's lengthSizeMinusOne is 3), nothing (type 2)
//! ```
//!
//! The tag (message) timestamp is the decoding time in milliseconds; the composition time is
//! `pts − dts`, so a player presents at `timestamp + CompositionTime` (E.4.3.1: "See ISO 14496-12,
//! 8.15.3 for an explanation of composition times").
//!
//! Copies: a NALU body is built once per frame into one buffer (5-byte header, then each NAL
//! unit behind its length prefix), because an RTMP message is one contiguous payload; rml_rtmp's
//! chunk serializer copies it once more into the chunked wire buffer.

use bytes::{BufMut, Bytes, BytesMut};

use crate::h264::{AvcDecoderConfig, H264Error};

/// FLV `CodecID` of AVC / H.264 (FLV spec E.4.3.1; also `videocodecid` in `onMetaData`).
pub const CODEC_ID_AVC: u8 = 7;

/// Bytes before the payload of an AVC video tag body (VIDEODATA byte + AVCVIDEOPACKET header).
pub const AVC_HEADER_LEN: usize = 5;

/// Largest composition time a signed 24-bit field holds, in milliseconds.
pub const MAX_COMPOSITION_TIME: i32 = (1 << 23) - 1;
/// Smallest composition time a signed 24-bit field holds, in milliseconds.
pub const MIN_COMPOSITION_TIME: i32 = -(1 << 23);

/// FLV `FrameType` (FLV spec E.4.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// 1: key frame (for AVC, a seekable frame).
    Key = 1,
    /// 2: inter frame (for AVC, a non-seekable frame).
    Inter = 2,
}

/// `AVCPacketType` (FLV spec E.4.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvcPacketType {
    /// 0: AVC sequence header (an AVCDecoderConfigurationRecord).
    SequenceHeader = 0,
    /// 1: AVC NALU.
    Nalu = 1,
    /// 2: AVC end of sequence (the body is empty).
    EndOfSequence = 2,
}

/// Errors building FLV bodies or timestamps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// `pts − dts` does not fit the signed 24-bit CompositionTime field.
    #[error("composition time {0} ms does not fit FLV's signed 24-bit field")]
    CompositionTimeOutOfRange(i64),
    /// A NAL unit is larger than a 4-byte length prefix can express.
    #[error("NAL unit of {0} bytes is too large for FLV")]
    NalTooLarge(usize),
    /// Decoding timestamps went backwards.
    #[error("DTS went backwards: {dts_ms} ms after {previous_ms} ms")]
    NonMonotonicDts {
        /// The previous access unit's DTS (milliseconds, before shifting).
        previous_ms: i64,
        /// This access unit's DTS (milliseconds, before shifting).
        dts_ms: i64,
    },
    /// A unit is earlier than the first unit of the stream (of another track).
    #[error("timestamp {dts_ms} ms is before the stream's start at {start_ms} ms")]
    BeforeStart {
        /// The unit's DTS in milliseconds.
        dts_ms: i64,
        /// The stream's first DTS in milliseconds.
        start_ms: i64,
    },
    /// The decoder configuration record could not be written.
    #[error("cannot build the AVC sequence header: {0}")]
    Config(#[from] H264Error),
}

/// The 5-byte header of an AVC video tag body.
pub fn avc_header(
    frame: FrameType,
    packet: AvcPacketType,
    composition_time_ms: i32,
) -> Result<[u8; AVC_HEADER_LEN], FlvError> {
    let ct = composition_time_bytes(composition_time_ms)?;
    Ok([
        ((frame as u8) << 4) | CODEC_ID_AVC,
        packet as u8,
        ct[0],
        ct[1],
        ct[2],
    ])
}

/// A composition time as FLV's SI24: 24-bit two's complement, big-endian.
pub fn composition_time_bytes(ms: i32) -> Result<[u8; 3], FlvError> {
    if !(MIN_COMPOSITION_TIME..=MAX_COMPOSITION_TIME).contains(&ms) {
        return Err(FlvError::CompositionTimeOutOfRange(i64::from(ms)));
    }
    let b = ms.to_be_bytes();
    Ok([b[1], b[2], b[3]])
}

/// The AVC sequence header tag body: key frame, AVCPacketType 0, composition time 0, then the
/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) with 4-byte NAL lengths.
pub fn sequence_header_body(config: &AvcDecoderConfig) -> Result<Bytes, FlvError> {
    let mut config = config.clone();
    // NALU tags below always use 4-byte length prefixes; the record must say so.
    config.length_size = 4;
    let record = config.to_bytes()?;
    let mut out = BytesMut::with_capacity(AVC_HEADER_LEN + record.len());
    out.put_slice(&avc_header(
        FrameType::Key,
        AvcPacketType::SequenceHeader,
        0,
    )?);
    out.put_slice(&record);
    Ok(out.freeze())
}

/// A NALU tag body: frame type, AVCPacketType 1, the composition time (pts − dts in ms) and
/// the NAL units, each behind a 4-byte big-endian length. Built once, into one buffer.
pub fn nalu_body(
    frame: FrameType,
    composition_time_ms: i32,
    nalus: &[Bytes],
) -> Result<Bytes, FlvError> {
    let header = avc_header(frame, AvcPacketType::Nalu, composition_time_ms)?;
    let len = AVC_HEADER_LEN + nalus.iter().map(|n| 4 + n.len()).sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(&header);
    for nal in nalus {
        let n = u32::try_from(nal.len()).map_err(|_| FlvError::NalTooLarge(nal.len()))?;
        out.put_u32(n);
        out.put_slice(nal);
    }
    Ok(out.freeze())
}

/// The AVC end-of-sequence tag body (AVCPacketType 2, empty payload), sent before unpublishing.
pub fn end_of_sequence_body() -> Bytes {
    // Key frame type as ffmpeg and OBS write it; composition time 0.
    Bytes::from_static(&[(1 << 4) | CODEC_ID_AVC, 2, 0, 0, 0])
}

/// The timestamps of one video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagTime {
    /// The shifted DTS in milliseconds on an unbounded timeline (≥ 0).
    pub dts_ms: i64,
    /// The RTMP/FLV tag timestamp: `dts_ms` modulo 2^32 (see [`wire_timestamp`]).
    pub timestamp: u32,
    /// pts − dts in milliseconds.
    pub composition_time_ms: i32,
}

/// Maps access-unit DTS/PTS (already in milliseconds) to tag timestamps.
///
/// - **Negative DTS**: libx264 with B-frames starts at `dts < 0` (the first frames are decoded
///   before they are shown). FLV tag timestamps are unsigned, so the whole timeline is shifted
///   by `−first_dts` when the first DTS is negative (and left alone otherwise). The shift is
///   applied to DTS only: the composition time `pts − dts` is unchanged, so presentation times
///   move by the same amount and every frame keeps `pts ≥ dts`.
/// - **Monotonic**: a DTS below the previous one is rejected ([`FlvError::NonMonotonicDts`]);
///   the timeline is not changed, so the caller may skip that access unit and go on.
/// - **32-bit wrap**: see [`wire_timestamp`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagTimeline {
    shift_ms: Option<i64>,
    last_dts_ms: Option<i64>,
    last: Option<TagTime>,
}

impl TagTimeline {
    /// A timeline that has seen no access unit yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tag timestamps of an access unit with these DTS and PTS in milliseconds.
    pub fn next(&mut self, dts_ms: i64, pts_ms: i64) -> Result<TagTime, FlvError> {
        let cts = pts_ms.saturating_sub(dts_ms);
        let composition_time_ms = i32::try_from(cts)
            .ok()
            .filter(|c| (MIN_COMPOSITION_TIME..=MAX_COMPOSITION_TIME).contains(c))
            .ok_or(FlvError::CompositionTimeOutOfRange(cts))?;
        if let Some(previous_ms) = self.last_dts_ms {
            if dts_ms < previous_ms {
                return Err(FlvError::NonMonotonicDts {
                    previous_ms,
                    dts_ms,
                });
            }
        }
        let shift = *self.shift_ms.get_or_insert(dts_ms.saturating_neg().max(0));
        let shifted = dts_ms.saturating_add(shift);
        if shifted < 0 {
            // Earlier than the start of the stream another track set: FLV timestamps are
            // unsigned.
            return Err(FlvError::BeforeStart {
                dts_ms,
                start_ms: shift.saturating_neg(),
            });
        }
        let time = TagTime {
            dts_ms: shifted,
            timestamp: wire_timestamp(shifted),
            composition_time_ms,
        };
        self.last_dts_ms = Some(dts_ms);
        self.last = Some(time);
        Ok(time)
    }

    /// The last tag's timestamps, if any.
    pub fn last(&self) -> Option<TagTime> {
        self.last
    }

    /// The shift added to every DTS (milliseconds), once the first access unit was seen.
    pub fn shift_ms(&self) -> Option<i64> {
        self.shift_ms
    }

    /// Uses `shift_ms` as the shift if none was chosen yet: the timelines of the tracks of
    /// one stream share the shift of the stream's first unit, so they stay aligned.
    pub fn share_shift(&mut self, shift_ms: Option<i64>) {
        if self.shift_ms.is_none() {
            self.shift_ms = shift_ms;
        }
    }
}

/// The 32-bit RTMP/FLV timestamp of a millisecond time: the value modulo 2^32.
///
/// RTMP timestamps are 32 bits (RTMP spec §5.3.1.3, the extended timestamp carries the full
/// 32 bits); the spec (§3, "Timestamps") says they roll over every 49 days, 17 hours,
/// 2 minutes and 47.296 seconds and must be compared with serial-number arithmetic
/// (RFC 1982). So past 2^32 ms (≈ 49.7 days) of stream time the tag timestamp wraps to 0 and
/// keeps counting. rml_rtmp's chunk serializer computes header deltas with wrapping
/// subtraction, so a wrapped timestamp is sent as a small positive delta; a receiver that
/// keeps 32-bit time (nginx-rtmp, rml_rtmp) stays consistent, while an FLV file written by the
/// receiver will show its timestamps starting again near 0.
pub fn wire_timestamp(ms: i64) -> u32 {
    // rem_euclid keeps negative inputs in range too; the cast is then lossless.
    ms.rem_euclid(1 << 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libx264's 320x240 High profile SPS and PPS (as in h264.rs's tests).
    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    #[test]
    fn sequence_header_bytes() {
        let cfg = AvcDecoderConfig::from_parameter_sets(
            &Bytes::from_static(SPS),
            &Bytes::from_static(PPS),
        )
        .expect("valid parameter sets");
        let body = sequence_header_body(&cfg).expect("body");
        // 0x17: FrameType 1 (key) << 4 | CodecID 7; AVCPacketType 0; CompositionTime 0.
        let mut expected = vec![0x17, 0x00, 0x00, 0x00, 0x00];
        // AVCDecoderConfigurationRecord: version 1, profile 0x64, compat 0x00, level 0x0d,
        // 0xff (6 reserved bits + lengthSizeMinusOne 3), 0xe1 (3 reserved bits + 1 SPS),
        // SPS length 25, SPS, 1 PPS, PPS length 6, PPS.
        expected.extend_from_slice(&[0x01, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0x00, 25]);
        expected.extend_from_slice(SPS);
        expected.extend_from_slice(&[0x01, 0x00, 0x06]);
        expected.extend_from_slice(PPS);
        assert_eq!(&body[..], &expected[..]);

        // A record with 2-byte lengths is rewritten to 4, matching the NALU tags.
        let mut two = cfg.clone();
        two.length_size = 2;
        assert_eq!(sequence_header_body(&two).expect("body"), body);
    }

    #[test]
    fn key_and_inter_nalu_bytes() {
        let idr = Bytes::from_static(&[0x65, 0x88, 0x84]);
        let sei = Bytes::from_static(&[0x06, 0x05]);
        let body = nalu_body(FrameType::Key, 0, &[sei.clone(), idr.clone()]).expect("body");
        assert_eq!(
            &body[..],
            &[
                0x17, 0x01, 0x00, 0x00, 0x00, // key, AVC NALU, CT 0
                0x00, 0x00, 0x00, 0x02, 0x06, 0x05, // SEI
                0x00, 0x00, 0x00, 0x03, 0x65, 0x88, 0x84, // IDR
            ][..]
        );
        let p = Bytes::from_static(&[0x41, 0x9a]);
        // Inter frame, CT +67 ms = 0x000043.
        let body = nalu_body(FrameType::Inter, 67, &[p]).expect("body");
        assert_eq!(
            &body[..],
            &[0x27, 0x01, 0x00, 0x00, 0x43, 0x00, 0x00, 0x00, 0x02, 0x41, 0x9a][..]
        );
        // A NAL unit longer than 16 bits gets a full 4-byte length.
        let big = Bytes::from(vec![0x41; 0x1_0203]);
        let body = nalu_body(FrameType::Inter, 0, &[big]).expect("body");
        assert_eq!(&body[5..9], &[0x00, 0x01, 0x02, 0x03]);
        assert_eq!(body.len(), 5 + 4 + 0x1_0203);
    }

    #[test]
    fn composition_times_are_signed_24_bit() {
        assert_eq!(composition_time_bytes(0), Ok([0, 0, 0]));
        assert_eq!(composition_time_bytes(1), Ok([0, 0, 1]));
        assert_eq!(composition_time_bytes(0x12_3456), Ok([0x12, 0x34, 0x56]));
        // Two's complement: −1 = 0xFFFFFF, −33 = 0xFFFFDF.
        assert_eq!(composition_time_bytes(-1), Ok([0xff, 0xff, 0xff]));
        assert_eq!(composition_time_bytes(-33), Ok([0xff, 0xff, 0xdf]));
        assert_eq!(
            composition_time_bytes(MAX_COMPOSITION_TIME),
            Ok([0x7f, 0xff, 0xff])
        );
        assert_eq!(
            composition_time_bytes(MIN_COMPOSITION_TIME),
            Ok([0x80, 0x00, 0x00])
        );
        assert!(composition_time_bytes(MAX_COMPOSITION_TIME + 1).is_err());
        assert!(composition_time_bytes(MIN_COMPOSITION_TIME - 1).is_err());
        let body = nalu_body(FrameType::Inter, -33, &[Bytes::from_static(&[0x01])])
            .expect("negative CT is representable");
        assert_eq!(&body[..5], &[0x27, 0x01, 0xff, 0xff, 0xdf]);
    }

    #[test]
    fn end_of_sequence_bytes() {
        assert_eq!(&end_of_sequence_body()[..], &[0x17, 0x02, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn negative_first_dts_is_shifted_keeping_composition_times() {
        // libx264, 30 fps, 2 B-frames: dts −67, −33, 0, 33 …; pts 0, 133, 67, 33 …
        let mut tl = TagTimeline::new();
        let frames = [(-67, 0), (-33, 133), (0, 67), (33, 33), (67, 100)];
        let times: Vec<TagTime> = frames
            .iter()
            .map(|&(d, p)| tl.next(d, p).expect("monotonic"))
            .collect();
        assert_eq!(tl.shift_ms(), Some(67));
        let ts: Vec<u32> = times.iter().map(|t| t.timestamp).collect();
        assert_eq!(ts, vec![0, 34, 67, 100, 134]);
        let ct: Vec<i32> = times.iter().map(|t| t.composition_time_ms).collect();
        assert_eq!(ct, vec![67, 166, 67, 0, 33]);
        // A non-negative start is not shifted.
        let mut tl = TagTimeline::new();
        assert_eq!(tl.next(1000, 1040).expect("ok").timestamp, 1000);
        assert_eq!(tl.shift_ms(), Some(0));
    }

    #[test]
    fn dts_going_backwards_is_rejected_without_changing_state() {
        let mut tl = TagTimeline::new();
        tl.next(100, 100).expect("first");
        assert_eq!(
            tl.next(99, 120),
            Err(FlvError::NonMonotonicDts {
                previous_ms: 100,
                dts_ms: 99
            })
        );
        // Equal DTS is allowed (non-decreasing), and the timeline goes on.
        assert_eq!(tl.next(100, 100).expect("equal").timestamp, 100);
        assert_eq!(tl.last().map(|t| t.dts_ms), Some(100));
        assert!(matches!(
            tl.next(200, 200 + (1 << 23)),
            Err(FlvError::CompositionTimeOutOfRange(_))
        ));
    }

    #[test]
    fn timestamps_wrap_at_32_bits() {
        const WRAP: i64 = 1 << 32;
        assert_eq!(wire_timestamp(0), 0);
        assert_eq!(wire_timestamp(WRAP - 1), u32::MAX);
        assert_eq!(wire_timestamp(WRAP), 0);
        assert_eq!(wire_timestamp(WRAP + 33), 33);
        assert_eq!(wire_timestamp(3 * WRAP + 7), 7);
        let mut tl = TagTimeline::new();
        let a = tl.next(WRAP - 20, WRAP - 20).expect("ok");
        let b = tl.next(WRAP + 13, WRAP + 80).expect("ok");
        assert_eq!((a.timestamp, b.timestamp), (u32::MAX - 19, 13));
        assert_eq!(b.dts_ms, WRAP + 13);
        assert_eq!(b.composition_time_ms, 67);
        // Serial-number difference across the wrap is the real 33 ms step.
        assert_eq!(b.timestamp.wrapping_sub(a.timestamp), 33);
    }
}
