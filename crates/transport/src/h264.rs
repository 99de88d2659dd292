//! H.264 byte work shared by every transport: Annex B and length-prefixed NAL unit framing,
//! the avcC decoder configuration record, SPS facts, and the [`AccessUnit`] that publishers send.
//!
//! Everything here is zero-copy where it can be: NAL units are [`Bytes`] slices of the buffer
//! they came in.

use bytes::{BufMut, Bytes, BytesMut};
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, ByteReader};

use crate::TimeBase;

/// NAL unit types used by the transports (ITU-T H.264 Table 7-1).
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
    /// End of sequence.
    pub const END_OF_SEQUENCE: u8 = 10;
    /// End of stream.
    pub const END_OF_STREAM: u8 = 11;
    /// Filler data.
    pub const FILLER: u8 = 12;
    /// RFC 6184 §5.7.1 aggregation packet (single-time aggregation, STAP-A).
    pub const STAP_A: u8 = 24;
    /// RFC 6184 §5.8 fragmentation unit FU-A.
    pub const FU_A: u8 = 28;
}

/// The `nal_unit_type` of a NAL unit (low five bits of its first byte); 0 for an empty slice.
pub fn nal_unit_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Errors from parsing H.264 framing and parameter sets.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum H264Error {
    /// A length prefix points past the end of the buffer.
    #[error("length-prefixed NAL unit at byte {offset} claims {claimed} bytes but only {available} remain")]
    TruncatedNal {
        /// Byte offset of the length prefix.
        offset: usize,
        /// Length the prefix claims.
        claimed: usize,
        /// Bytes actually left.
        available: usize,
    },
    /// The NAL length size is not 1, 2 or 4 bytes.
    #[error("unsupported NAL length size {0} (must be 1, 2 or 4)")]
    BadLengthSize(u8),
    /// An avcC (AVCDecoderConfigurationRecord) could not be parsed.
    #[error("invalid avcC record: {0}")]
    BadAvcC(&'static str),
    /// No SPS or no PPS was found where one is required.
    #[error("missing {0} parameter set")]
    MissingParameterSet(&'static str),
    /// The SPS could not be parsed.
    #[error("invalid SPS: {0}")]
    BadSps(String),
    /// A NAL unit is larger than the framing can express.
    #[error("NAL unit of {0} bytes is too large for its length prefix")]
    NalTooLarge(usize),
}

/// Splits an Annex B byte stream (ITU-T H.264 Annex B) into NAL units without start codes.
///
/// Accepts 3- and 4-byte start codes and any number of leading zero bytes; drops the
/// `trailing_zero_8bits` after each NAL unit (B.2: the last byte of a NAL unit is never zero,
/// 7.4.1). Bytes before the first start code are ignored; a buffer without any start code is
/// taken as one bare NAL unit. Empty NAL units are skipped. Zero-copy: each item is a slice of
/// `data`.
pub fn split_annexb(data: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    for_each_annexb_nal(data, |start, end| out.push(data.slice(start..end)));
    out
}

/// Calls `f(start, end)` for each NAL unit of an Annex B buffer (see [`split_annexb`]).
fn for_each_annexb_nal(data: &[u8], mut f: impl FnMut(usize, usize)) {
    let Some(first) = find_start_code(data, 0) else {
        let end = trim_trailing_zeros(data, 0, data.len());
        if end > 0 {
            f(0, end);
        }
        return;
    };
    let mut nal_start = first.1;
    loop {
        match find_start_code(data, nal_start) {
            Some((sc_pos, next_start)) => {
                let end = trim_trailing_zeros(data, nal_start, sc_pos);
                if end > nal_start {
                    f(nal_start, end);
                }
                nal_start = next_start;
            }
            None => {
                let end = trim_trailing_zeros(data, nal_start, data.len());
                if end > nal_start {
                    f(nal_start, end);
                }
                return;
            }
        }
    }
}

/// Finds the next `00 00 01` at or after `from`; returns (position of its first zero, index
/// just past the `01`).
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip quickly: a start code needs data[i+2] == 1 and two zeros before it.
        let b2 = data[i + 2];
        if b2 > 1 {
            i += 3;
            continue;
        }
        if b2 == 1 && data[i] == 0 && data[i + 1] == 0 {
            return Some((i, i + 3));
        }
        i += 1;
    }
    None
}

fn trim_trailing_zeros(data: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && data[end - 1] == 0 {
        end -= 1;
    }
    end
}

/// Splits length-prefixed NAL units (the "AVCC" framing of MP4/FLV, ISO/IEC 14496-15 §5.3.4.2)
/// into slices of `data`. `length_size` is 1, 2 or 4.
pub fn split_length_prefixed(data: &Bytes, length_size: u8) -> Result<Vec<Bytes>, H264Error> {
    let ls = usize::from(length_size);
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(H264Error::BadLengthSize(length_size));
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if pos + ls > data.len() {
            return Err(H264Error::TruncatedNal {
                offset: pos,
                claimed: ls,
                available: data.len() - pos,
            });
        }
        let len = data[pos..pos + ls]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let start = pos + ls;
        if len > data.len() - start {
            return Err(H264Error::TruncatedNal {
                offset: pos,
                claimed: len,
                available: data.len() - start,
            });
        }
        if len > 0 {
            out.push(data.slice(start..start + len));
        }
        pos = start + len;
    }
    Ok(out)
}

/// Writes NAL units as an Annex B stream with 4-byte start codes.
pub fn write_annexb<'a>(nalus: impl IntoIterator<Item = &'a Bytes>, out: &mut BytesMut) {
    for nal in nalus {
        out.put_slice(&[0, 0, 0, 1]);
        out.put_slice(nal);
    }
}

/// Writes NAL units with big-endian length prefixes of `length_size` bytes (1, 2 or 4).
pub fn write_length_prefixed<'a>(
    nalus: impl IntoIterator<Item = &'a Bytes>,
    length_size: u8,
    out: &mut BytesMut,
) -> Result<(), H264Error> {
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(H264Error::BadLengthSize(length_size));
    }
    let max = if length_size == 4 {
        u32::MAX as usize
    } else {
        (1usize << (8 * usize::from(length_size))) - 1
    };
    for nal in nalus {
        if nal.len() > max {
            return Err(H264Error::NalTooLarge(nal.len()));
        }
        let len = nal.len() as u32;
        out.put_slice(&len.to_be_bytes()[4 - usize::from(length_size)..]);
        out.put_slice(nal);
    }
    Ok(())
}

/// Converts an Annex B buffer into 4-byte length-prefixed NAL units.
pub fn annexb_to_length_prefixed(data: &Bytes) -> Result<Bytes, H264Error> {
    let nalus = split_annexb(data);
    let mut out = BytesMut::with_capacity(data.len() + 4 * nalus.len());
    write_length_prefixed(&nalus, 4, &mut out)?;
    Ok(out.freeze())
}

/// Converts length-prefixed NAL units into an Annex B buffer with 4-byte start codes.
pub fn length_prefixed_to_annexb(data: &Bytes, length_size: u8) -> Result<Bytes, H264Error> {
    let nalus = split_length_prefixed(data, length_size)?;
    let mut out = BytesMut::with_capacity(data.len() + 4 * nalus.len());
    write_annexb(&nalus, &mut out);
    Ok(out.freeze())
}

/// The AVCDecoderConfigurationRecord ("avcC", ISO/IEC 14496-15 §5.3.3.1): the H.264 decoder
/// configuration carried in MP4 sample entries and in the FLV AVC sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    /// `AVCProfileIndication` (the SPS's profile_idc).
    pub profile_idc: u8,
    /// `profile_compatibility` (the SPS's constraint flags byte).
    pub profile_compatibility: u8,
    /// `AVCLevelIndication` (the SPS's level_idc).
    pub level_idc: u8,
    /// Size in bytes of the NAL unit length prefix of samples (1, 2 or 4).
    pub length_size: u8,
    /// Sequence parameter sets (NAL units, header byte included).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets (NAL units, header byte included).
    pub pps: Vec<Bytes>,
}

impl AvcDecoderConfig {
    /// Builds a record from one SPS and one PPS, with 4-byte length prefixes.
    pub fn from_parameter_sets(sps: &Bytes, pps: &Bytes) -> Result<Self, H264Error> {
        if sps.len() < 4 {
            return Err(H264Error::BadSps(format!(
                "SPS of {} bytes is too short",
                sps.len()
            )));
        }
        if pps.is_empty() {
            return Err(H264Error::MissingParameterSet("PPS"));
        }
        Ok(AvcDecoderConfig {
            profile_idc: sps[1],
            profile_compatibility: sps[2],
            level_idc: sps[3],
            length_size: 4,
            sps: vec![sps.clone()],
            pps: vec![pps.clone()],
        })
    }

    /// Parses a record. Trailing high-profile extension fields (chroma format and bit depths,
    /// §5.3.3.1.2) are accepted and ignored.
    pub fn parse(data: &Bytes) -> Result<Self, H264Error> {
        let mut pos = 0usize;
        let byte = |pos: &mut usize| -> Result<u8, H264Error> {
            let b = *data
                .get(*pos)
                .ok_or(H264Error::BadAvcC("record ends early"))?;
            *pos += 1;
            Ok(b)
        };
        let version = byte(&mut pos)?;
        if version != 1 {
            return Err(H264Error::BadAvcC("configurationVersion is not 1"));
        }
        let profile_idc = byte(&mut pos)?;
        let profile_compatibility = byte(&mut pos)?;
        let level_idc = byte(&mut pos)?;
        let length_size = (byte(&mut pos)? & 0x03) + 1;
        if length_size == 3 {
            return Err(H264Error::BadLengthSize(3));
        }
        let read_sets = |count: usize, pos: &mut usize| -> Result<Vec<Bytes>, H264Error> {
            let mut sets = Vec::with_capacity(count);
            for _ in 0..count {
                let hi = byte(pos)?;
                let lo = byte(pos)?;
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if *pos + len > data.len() {
                    return Err(H264Error::BadAvcC("parameter set runs past the end"));
                }
                sets.push(data.slice(*pos..*pos + len));
                *pos += len;
            }
            Ok(sets)
        };
        let num_sps = usize::from(byte(&mut pos)? & 0x1f);
        let sps = read_sets(num_sps, &mut pos)?;
        let num_pps = usize::from(byte(&mut pos)?);
        let pps = read_sets(num_pps, &mut pos)?;
        Ok(AvcDecoderConfig {
            profile_idc,
            profile_compatibility,
            level_idc,
            length_size,
            sps,
            pps,
        })
    }

    /// Serialises the record (without the high-profile extension fields, which FLV and RTMP
    /// peers do not need; decoders read chroma format and bit depth from the SPS itself).
    pub fn to_bytes(&self) -> Result<Bytes, H264Error> {
        if self.sps.is_empty() {
            return Err(H264Error::MissingParameterSet("SPS"));
        }
        if self.pps.is_empty() {
            return Err(H264Error::MissingParameterSet("PPS"));
        }
        if !matches!(self.length_size, 1 | 2 | 4) {
            return Err(H264Error::BadLengthSize(self.length_size));
        }
        if self.sps.len() > 31 || self.pps.len() > 255 {
            return Err(H264Error::BadAvcC("too many parameter sets"));
        }
        let mut out = BytesMut::with_capacity(
            11 + self
                .sps
                .iter()
                .chain(&self.pps)
                .map(|s| s.len() + 2)
                .sum::<usize>(),
        );
        out.put_u8(1);
        out.put_u8(self.profile_idc);
        out.put_u8(self.profile_compatibility);
        out.put_u8(self.level_idc);
        out.put_u8(0xfc | (self.length_size - 1));
        out.put_u8(0xe0 | self.sps.len() as u8);
        for s in &self.sps {
            let len = u16::try_from(s.len()).map_err(|_| H264Error::NalTooLarge(s.len()))?;
            out.put_u16(len);
            out.put_slice(s);
        }
        out.put_u8(self.pps.len() as u8);
        for p in &self.pps {
            let len = u16::try_from(p.len()).map_err(|_| H264Error::NalTooLarge(p.len()))?;
            out.put_u16(len);
            out.put_slice(p);
        }
        Ok(out.freeze())
    }
}

/// Facts read from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// Displayed width in pixels (cropping applied).
    pub width: u32,
    /// Displayed height in pixels (cropping applied).
    pub height: u32,
    /// profile_idc.
    pub profile_idc: u8,
    /// The constraint_set flags byte.
    pub constraint_flags: u8,
    /// level_idc.
    pub level_idc: u8,
    /// Frame rate from the VUI timing info, as (time_scale, 2 × num_units_in_tick), if present.
    pub frame_rate: Option<(u32, u32)>,
    /// `max_num_reorder_frames` from the VUI bitstream restriction, if present (H.264
    /// §E.2.1): the most frames that precede any frame in decoding order and follow it in
    /// output order (0: presentation order is decoding order). libx264 always writes it.
    pub max_num_reorder_frames: Option<u32>,
}

impl SpsInfo {
    /// Parses an SPS NAL unit (header byte included).
    pub fn parse(sps: &[u8]) -> Result<SpsInfo, H264Error> {
        if nal_unit_type(sps) != nal_type::SPS {
            return Err(H264Error::BadSps(format!(
                "NAL unit type {} is not an SPS",
                nal_unit_type(sps)
            )));
        }
        let parsed =
            SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(sps)))
                .map_err(|e| H264Error::BadSps(format!("{e:?}")))?;
        let (width, height) = parsed
            .pixel_dimensions()
            .map_err(|e| H264Error::BadSps(format!("{e:?}")))?;
        let frame_rate = parsed
            .vui_parameters
            .as_ref()
            .and_then(|v| v.timing_info.as_ref())
            .and_then(|t| {
                let den = t.num_units_in_tick.checked_mul(2)?;
                (den > 0 && t.time_scale > 0).then_some((t.time_scale, den))
            });
        let max_num_reorder_frames = parsed
            .vui_parameters
            .as_ref()
            .and_then(|v| v.bitstream_restrictions.as_ref())
            .map(|r| r.max_num_reorder_frames);
        Ok(SpsInfo {
            width,
            height,
            max_num_reorder_frames,
            profile_idc: sps.get(1).copied().unwrap_or(0),
            constraint_flags: sps.get(2).copied().unwrap_or(0),
            level_idc: sps.get(3).copied().unwrap_or(0),
            frame_rate,
        })
    }

    /// The `profile-level-id` of RFC 6184 §8.1: profile_idc, constraint flags and level_idc as
    /// six hexadecimal digits.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// The static description of a published H.264 video track: parameter sets and the facts a
/// server or player wants before the first frame (SDP, FLV metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// The sequence parameter set (NAL unit with header byte).
    pub sps: Bytes,
    /// The picture parameter set (NAL unit with header byte).
    pub pps: Bytes,
    /// Facts read from the SPS.
    pub info: SpsInfo,
    /// Nominal frame rate as num/den frames per second, if known.
    pub frame_rate: Option<(u32, u32)>,
    /// Nominal bit rate in bits per second, if known.
    pub bitrate: Option<u64>,
    /// Encoder name for metadata (e.g. "libx264"), if known.
    pub encoder: Option<String>,
}

impl VideoTrack {
    /// Builds a track from one SPS and one PPS.
    pub fn new(sps: Bytes, pps: Bytes) -> Result<VideoTrack, H264Error> {
        if pps.is_empty() || nal_unit_type(&pps) != nal_type::PPS {
            return Err(H264Error::MissingParameterSet("PPS"));
        }
        let info = SpsInfo::parse(&sps)?;
        Ok(VideoTrack {
            frame_rate: info.frame_rate,
            sps,
            pps,
            info,
            bitrate: None,
            encoder: None,
        })
    }

    /// Builds a track from codec extradata: an avcC record (first byte 1, as in MP4 and FLV)
    /// or Annex B parameter sets (as libx264 writes with a global header).
    pub fn from_extradata(extradata: &Bytes) -> Result<VideoTrack, H264Error> {
        if extradata.first() == Some(&1) {
            let cfg = AvcDecoderConfig::parse(extradata)?;
            let sps = cfg
                .sps
                .into_iter()
                .next()
                .ok_or(H264Error::MissingParameterSet("SPS"))?;
            let pps = cfg
                .pps
                .into_iter()
                .next()
                .ok_or(H264Error::MissingParameterSet("PPS"))?;
            VideoTrack::new(sps, pps)
        } else {
            VideoTrack::from_nalus(&split_annexb(extradata))
        }
    }

    /// Builds a track from the first SPS and PPS found among `nalus`.
    pub fn from_nalus(nalus: &[Bytes]) -> Result<VideoTrack, H264Error> {
        let sps = nalus
            .iter()
            .find(|n| nal_unit_type(n) == nal_type::SPS)
            .ok_or(H264Error::MissingParameterSet("SPS"))?;
        let pps = nalus
            .iter()
            .find(|n| nal_unit_type(n) == nal_type::PPS)
            .ok_or(H264Error::MissingParameterSet("PPS"))?;
        VideoTrack::new(sps.clone(), pps.clone())
    }

    /// Sets the nominal frame rate (num/den frames per second).
    pub fn with_frame_rate(mut self, num: u32, den: u32) -> Self {
        if num > 0 && den > 0 {
            self.frame_rate = Some((num, den));
        }
        self
    }

    /// Sets the nominal bit rate in bits per second.
    pub fn with_bitrate(mut self, bits_per_second: u64) -> Self {
        self.bitrate = Some(bits_per_second);
        self
    }

    /// Sets the encoder name reported in metadata.
    pub fn with_encoder(mut self, name: impl Into<String>) -> Self {
        self.encoder = Some(name.into());
        self
    }

    /// The avcC record for this track (FLV sequence header, MP4).
    pub fn avc_config(&self) -> Result<AvcDecoderConfig, H264Error> {
        AvcDecoderConfig::from_parameter_sets(&self.sps, &self.pps)
    }

    /// Displayed width in pixels.
    pub fn width(&self) -> u32 {
        self.info.width
    }

    /// Displayed height in pixels.
    pub fn height(&self) -> u32 {
        self.info.height
    }
}

/// One encoded picture (an H.264 access unit) with its timing, as publishers send it.
///
/// Timestamps are integer ticks of `time_base`; `dts` is non-decreasing in send order and
/// `pts >= dts`. NAL units carry no start codes or length prefixes and are slices of the
/// encoder's or demuxer's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Presentation timestamp in `time_base` ticks.
    pub pts: i64,
    /// Decoding timestamp in `time_base` ticks.
    pub dts: i64,
    /// The time base of `pts` and `dts`.
    pub time_base: TimeBase,
    /// True when the picture is a random access point (IDR).
    pub key: bool,
    /// The NAL units of the picture, in order.
    pub nalus: Vec<Bytes>,
}

impl AccessUnit {
    /// An access unit from an Annex B buffer (zero-copy: NAL units are slices of `data`).
    pub fn from_annexb(data: &Bytes, pts: i64, dts: i64, time_base: TimeBase, key: bool) -> Self {
        AccessUnit {
            pts,
            dts,
            time_base,
            key,
            nalus: split_annexb(data),
        }
    }

    /// An access unit from length-prefixed NAL units (MP4/FLV framing), zero-copy.
    pub fn from_length_prefixed(
        data: &Bytes,
        length_size: u8,
        pts: i64,
        dts: i64,
        time_base: TimeBase,
        key: bool,
    ) -> Result<Self, H264Error> {
        Ok(AccessUnit {
            pts,
            dts,
            time_base,
            key,
            nalus: split_length_prefixed(data, length_size)?,
        })
    }

    /// Total size of the NAL units in bytes (without framing).
    pub fn payload_len(&self) -> usize {
        self.nalus.iter().map(Bytes::len).sum()
    }

    /// True when the access unit contains an IDR slice.
    pub fn has_idr(&self) -> bool {
        self.nalus.iter().any(|n| nal_unit_type(n) == nal_type::IDR)
    }

    /// True when the access unit carries an SPS and a PPS in-band.
    pub fn has_parameter_sets(&self) -> bool {
        self.nalus.iter().any(|n| nal_unit_type(n) == nal_type::SPS)
            && self.nalus.iter().any(|n| nal_unit_type(n) == nal_type::PPS)
    }

    /// `pts` converted to another time base (rounded to the nearest tick).
    pub fn pts_in(&self, to: TimeBase) -> i64 {
        self.time_base.rescale(self.pts, to)
    }

    /// `dts` converted to another time base (rounded to the nearest tick).
    pub fn dts_in(&self, to: TimeBase) -> i64 {
        self.time_base.rescale(self.dts, to)
    }

    /// The access unit as an Annex B buffer with 4-byte start codes (copies).
    pub fn to_annexb(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.payload_len() + 4 * self.nalus.len());
        write_annexb(&self.nalus, &mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An SPS written by libx264 for 320x240 High profile, level 1.3 (from a real encode).
    const SPS_320X240: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    #[test]
    fn splits_three_and_four_byte_start_codes_and_trailing_zeros() {
        let data = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 0, 1, 0x65, 4, 5, 0, 0,
        ]);
        let nalus = split_annexb(&data);
        assert_eq!(
            nalus,
            vec![
                Bytes::from_static(&[0x67, 1, 2]),
                Bytes::from_static(&[0x68, 3]),
                Bytes::from_static(&[0x65, 4, 5]),
            ]
        );
        // Leading garbage before the first start code is ignored; no start code = one NAL.
        assert_eq!(
            split_annexb(&Bytes::from_static(&[9, 9, 0, 0, 1, 0x41, 7])),
            vec![Bytes::from_static(&[0x41, 7])]
        );
        assert_eq!(
            split_annexb(&Bytes::from_static(&[0x41, 7, 0])),
            vec![Bytes::from_static(&[0x41, 7])]
        );
        assert!(split_annexb(&Bytes::new()).is_empty());
        assert!(split_annexb(&Bytes::from_static(&[0, 0, 0, 1])).is_empty());
    }

    #[test]
    fn length_prefixed_rejects_truncation() {
        let data = Bytes::from_static(&[0, 0, 0, 3, 0x65, 1]);
        assert_eq!(
            split_length_prefixed(&data, 4),
            Err(H264Error::TruncatedNal {
                offset: 0,
                claimed: 3,
                available: 2
            })
        );
        assert_eq!(
            split_length_prefixed(&data, 3),
            Err(H264Error::BadLengthSize(3))
        );
        let ok = Bytes::from_static(&[0, 2, 0x65, 1, 0, 1, 0x41]);
        assert_eq!(
            split_length_prefixed(&ok, 2).expect("valid"),
            vec![Bytes::from_static(&[0x65, 1]), Bytes::from_static(&[0x41])]
        );
    }

    #[test]
    fn sps_facts_and_profile_level_id() {
        let info = SpsInfo::parse(SPS_320X240).expect("valid SPS");
        assert_eq!((info.width, info.height), (320, 240));
        assert_eq!(info.profile_level_id(), "64000d");
        // libx264 writes the VUI bitstream restriction (§E.2.1).
        assert_eq!(info.max_num_reorder_frames, Some(2));
        assert!(SpsInfo::parse(PPS).is_err());
        assert!(SpsInfo::parse(&[0x67, 0x64]).is_err());
    }

    #[test]
    fn avcc_round_trip_and_values() {
        let sps = Bytes::from_static(SPS_320X240);
        let pps = Bytes::from_static(PPS);
        let cfg = AvcDecoderConfig::from_parameter_sets(&sps, &pps).expect("valid");
        let bytes = cfg.to_bytes().expect("serialises");
        // ISO/IEC 14496-15 §5.3.3.1: version 1, profile, compat, level, 0xFC|3, 0xE0|1, len, SPS,
        // 1, len, PPS.
        let mut expected = vec![1, 0x64, 0x00, 0x0d, 0xff, 0xe1, 0, SPS_320X240.len() as u8];
        expected.extend_from_slice(SPS_320X240);
        expected.extend_from_slice(&[1, 0, PPS.len() as u8]);
        expected.extend_from_slice(PPS);
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(AvcDecoderConfig::parse(&bytes).expect("parses"), cfg);
        let track = VideoTrack::from_extradata(&bytes).expect("track");
        assert_eq!((track.width(), track.height()), (320, 240));
        // Truncated record.
        assert!(AvcDecoderConfig::parse(&bytes.slice(..bytes.len() - 1)).is_err());
        // Annex B extradata gives the same track.
        let mut annexb = BytesMut::new();
        write_annexb([&sps, &pps], &mut annexb);
        assert_eq!(
            VideoTrack::from_extradata(&annexb.freeze()).expect("track"),
            track
        );
    }

    proptest! {
        #[test]
        fn annexb_and_length_prefixed_round_trip(
            nals in proptest::collection::vec(
                (1u8..=23, proptest::collection::vec(any::<u8>(), 0..300)), 0..12),
            long_codes in proptest::collection::vec(any::<bool>(), 12),
        ) {
            // NAL units as an encoder would emit them: header byte, no 00 00 0x (x<=3)
            // sequences (emulation prevention), and a non-zero last byte.
            let nalus: Vec<Bytes> = nals.iter().map(|(t, body)| {
                let mut v = vec![0x60 | t];
                let mut zeros = 0;
                for &b in body {
                    if zeros >= 2 && b <= 3 { v.push(3); zeros = 0; }
                    v.push(b);
                    zeros = if b == 0 { zeros + 1 } else { 0 };
                }
                if v.last() == Some(&0) { v.push(0x80); }
                Bytes::from(v)
            }).collect();
            let mut annexb = BytesMut::new();
            for (i, n) in nalus.iter().enumerate() {
                if long_codes[i] { annexb.put_slice(&[0, 0, 0, 1]); } else { annexb.put_slice(&[0, 0, 1]); }
                annexb.put_slice(n);
            }
            let annexb = annexb.freeze();
            prop_assert_eq!(&split_annexb(&annexb), &nalus);
            let lp = annexb_to_length_prefixed(&annexb).expect("convert");
            prop_assert_eq!(&split_length_prefixed(&lp, 4).expect("split"), &nalus);
            let back = length_prefixed_to_annexb(&lp, 4).expect("convert");
            prop_assert_eq!(&split_annexb(&back), &nalus);
        }
    }
}
