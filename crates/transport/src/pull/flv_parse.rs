//! Parsing FLV video and audio tag bodies (what RTMP video and audio messages carry) and
//! extending 32-bit RTMP timestamps. Pure functions, no I/O; the inverse of
//! [`crate::rtmp::flv`]. Audio: see [`parse_audio_tag`] (FLV spec v10.1 E.4.2.1).
//!
//! An RTMP video message (RTMP spec §7.1.5, message type 9) is the body of an FLV video tag
//! (Adobe FLV spec v10.1, Annex E.4.3.1, `VIDEODATA`):
//!
//! ```text
//! byte 0     FrameType (UB[4]) | CodecID (UB[4]; 7 = AVC)
//! AVC only (AVCVIDEOPACKET):
//! byte 1     AVCPacketType: 0 sequence header, 1 NALU, 2 end of sequence
//! bytes 2-4  CompositionTime (SI24, milliseconds; meaningful for NALU tags)
//! bytes 5..  AVCDecoderConfigurationRecord (type 0) | length-prefixed NAL units (type 1)
//! ```
//!
//! FrameType 5 ("video info/command frame") carries no picture: E.4.3.1 replaces the video
//! payload with one byte (start/end of client-side seeking), so such tags are reported as
//! [`VideoTagBody::Command`] whatever the codec.
//!
//! Enhanced RTMP (Veovera, "Enhanced RTMP" v1/v2) sets the top bit of byte 0 (`IsExHeader`):
//! then bits 4–6 are the frame type, the low nibble a `PacketType` and bytes 1–4 a FourCC.
//! `avc1` is understood (SequenceStart, CodedFrames with a composition time, CodedFramesX
//! without one, SequenceEnd); every other FourCC is reported as [`VideoTagBody::OtherCodec`].

use bytes::Bytes;

use crate::audio::AudioCodec;
use crate::h264::{AvcDecoderConfig, H264Error};
use crate::rtmp::flv::CODEC_ID_AVC;

/// What one FLV video tag body carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideoTagBody {
    /// An AVC sequence header: the decoder configuration (SPS, PPS, NAL length size).
    SequenceHeader(AvcDecoderConfig),
    /// One AVC access unit.
    Nalu {
        /// FrameType 1 (key frame: "a seekable frame" for AVC).
        key: bool,
        /// pts − dts in milliseconds (the SI24 CompositionTime, sign-extended).
        composition_time_ms: i32,
        /// The NAL units with their length prefixes, as sent (a slice of the tag body). The
        /// prefix size is the sequence header's `lengthSizeMinusOne + 1`.
        data: Bytes,
    },
    /// AVC end of sequence: no more pictures of this configuration.
    EndOfSequence,
    /// A video info / command frame (FrameType 5): no picture.
    Command,
    /// Video in another codec.
    OtherCodec {
        /// The codec's name (e.g. `Sorenson H.263`, `HEVC`, or an Enhanced RTMP FourCC).
        codec: String,
    },
}

/// Why a video tag body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvParseError {
    /// The body is empty.
    #[error("empty video tag")]
    Empty,
    /// The body ends inside its header.
    #[error("video tag of {len} bytes is too short for its {what}")]
    Truncated {
        /// The header part that is cut off.
        what: &'static str,
        /// The body's length.
        len: usize,
    },
    /// An AVCPacketType (or Enhanced RTMP PacketType) this parser does not know.
    #[error("unknown AVC packet type {0}")]
    UnknownPacketType(u8),
    /// The AVC sequence header's decoder configuration record is invalid.
    #[error("invalid AVC sequence header: {0}")]
    Config(#[from] H264Error),
}

/// The name of an FLV `CodecID` (FLV spec E.4.3.1; 12 is the widespread non-standard HEVC id).
pub fn codec_name(codec_id: u8) -> String {
    match codec_id {
        2 => "Sorenson H.263".into(),
        3 => "Screen video".into(),
        4 => "On2 VP6".into(),
        5 => "On2 VP6 with alpha".into(),
        6 => "Screen video v2".into(),
        7 => "AVC".into(),
        12 => "HEVC".into(),
        other => format!("unknown (CodecID {other})"),
    }
}

/// Parses one FLV video tag body. Zero-copy: NAL unit data is a slice of `body`.
pub fn parse_video_tag(body: &Bytes) -> Result<VideoTagBody, FlvParseError> {
    let first = *body.first().ok_or(FlvParseError::Empty)?;
    if first & 0x80 != 0 {
        return parse_enhanced(first, body);
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0f;
    if frame_type == 5 {
        return Ok(VideoTagBody::Command);
    }
    if codec_id != CODEC_ID_AVC {
        return Ok(VideoTagBody::OtherCodec {
            codec: codec_name(codec_id),
        });
    }
    let header = body.get(..5).ok_or(FlvParseError::Truncated {
        what: "AVC packet header",
        len: body.len(),
    })?;
    let composition_time_ms = si24([header[2], header[3], header[4]]);
    match header[1] {
        0 => Ok(VideoTagBody::SequenceHeader(AvcDecoderConfig::parse(
            &body.slice(5..),
        )?)),
        1 => Ok(VideoTagBody::Nalu {
            key: frame_type == 1,
            composition_time_ms,
            data: body.slice(5..),
        }),
        2 => Ok(VideoTagBody::EndOfSequence),
        other => Err(FlvParseError::UnknownPacketType(other)),
    }
}

/// Enhanced RTMP's extended video header: `IsExHeader | FrameType(3) | PacketType(4)`, FourCC.
fn parse_enhanced(first: u8, body: &Bytes) -> Result<VideoTagBody, FlvParseError> {
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0f;
    let fourcc = body.get(1..5).ok_or(FlvParseError::Truncated {
        what: "Enhanced RTMP FourCC",
        len: body.len(),
    })?;
    if fourcc != b"avc1" {
        return Ok(VideoTagBody::OtherCodec {
            codec: String::from_utf8_lossy(fourcc).into_owned(),
        });
    }
    if frame_type == 5 {
        return Ok(VideoTagBody::Command);
    }
    match packet_type {
        // SequenceStart: the avcC record follows the FourCC.
        0 => Ok(VideoTagBody::SequenceHeader(AvcDecoderConfig::parse(
            &body.slice(5..),
        )?)),
        // CodedFrames: SI24 composition time, then NAL units.
        1 => {
            let ct = body.get(5..8).ok_or(FlvParseError::Truncated {
                what: "composition time",
                len: body.len(),
            })?;
            Ok(VideoTagBody::Nalu {
                key: frame_type == 1,
                composition_time_ms: si24([ct[0], ct[1], ct[2]]),
                data: body.slice(8..),
            })
        }
        // SequenceEnd.
        2 => Ok(VideoTagBody::EndOfSequence),
        // CodedFramesX: composition time implied 0.
        3 => Ok(VideoTagBody::Nalu {
            key: frame_type == 1,
            composition_time_ms: 0,
            data: body.slice(5..),
        }),
        other => Err(FlvParseError::UnknownPacketType(other)),
    }
}

/// A big-endian signed 24-bit value (two's complement), sign-extended.
fn si24(b: [u8; 3]) -> i32 {
    // Put the 24 bits at the top of an i32, then shift back arithmetically.
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

/// Turns 32-bit RTMP timestamps into an unbounded millisecond timeline.
///
/// RTMP timestamps are 32 bits and roll over every 49 days 17 hours 2 minutes 47.296 seconds;
/// RTMP spec §3 ("Timestamps") says they must be compared with serial-number arithmetic
/// (RFC 1982): each timestamp is taken as the one nearest the previous, within ±2^31 ms. So
/// the timeline keeps counting across a wrap, and a small step back (a B-frame stream's
/// server re-stamping, or a reordered audio/video pair) stays a small step back instead of
/// becoming a jump of 49 days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimestampExtender {
    last: Option<(u32, i64)>,
}

impl TimestampExtender {
    /// An extender that has seen no timestamp yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The position of `timestamp` on the unbounded timeline (the first one is taken as is).
    pub fn extend(&mut self, timestamp: u32) -> i64 {
        let extended = match self.last {
            None => i64::from(timestamp),
            Some((last, last_ext)) => {
                // The wrapping difference read as signed is the serial-number distance.
                let delta = timestamp.wrapping_sub(last) as i32;
                last_ext + i64::from(delta)
            }
        };
        self.last = Some((timestamp, extended));
        extended
    }
}

// ---- audio ------------------------------------------------------------------------------

pub use crate::rtmp::flv_audio::{
    SOUND_FORMAT_AAC, SOUND_FORMAT_MP3, SOUND_FORMAT_MP3_8K, SOUND_FORMAT_PCMA, SOUND_FORMAT_PCMU,
};

/// What one FLV audio tag body carries.
///
/// An RTMP audio message (RTMP spec §7.1.4, message type 8) is the body of an FLV audio tag
/// (FLV spec v10.1, E.4.2.1 `AUDIODATA`):
///
/// ```text
/// byte 0     SoundFormat (UB[4]) | SoundRate (UB[2]) | SoundSize (UB[1]) | SoundType (UB[1])
/// AAC only (AACAUDIODATA):
/// byte 1     AACPacketType: 0 sequence header, 1 raw
/// bytes 2..  AudioSpecificConfig (type 0, ISO/IEC 14496-3 §1.6.2.1) | one raw AAC frame (type 1)
/// other formats: bytes 1.. are the encoded audio (one MP3 frame, G.711 samples)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioTagBody {
    /// An AAC sequence header: the AudioSpecificConfig, as sent (a slice of the tag body).
    AacSequenceHeader(Bytes),
    /// One raw AAC frame (`raw_data_block`, no ADTS header), a slice of the tag body.
    AacFrame(Bytes),
    /// A frame of a codec that needs no configuration (MP3, G.711).
    Frame {
        /// The codec.
        codec: AudioCodec,
        /// Samples per second: for MP3 from its frame header (ISO/IEC 11172-3 §2.4.2.3, which
        /// can say 48 kHz where the FLV header cannot), else from the FLV header; 8 000 for
        /// G.711, whose rate E.4.2.1 does not express.
        sample_rate: u32,
        /// Channels (from the MP3 frame header, else `SoundType`).
        channels: u8,
        /// The encoded audio after the header byte (a slice of the tag body).
        data: Bytes,
    },
    /// Audio in a format this parser does not hand out (ADPCM, Nellymoser, Speex, linear PCM…).
    Unsupported {
        /// The `SoundFormat` value.
        sound_format: u8,
        /// Its name in E.4.2.1.
        name: &'static str,
    },
}

/// Why an audio tag body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioTagError {
    /// The body is empty.
    #[error("empty audio tag")]
    Empty,
    /// The body ends inside its header, or carries no audio after it.
    #[error("audio tag of {len} bytes is too short for its {what}")]
    Truncated {
        /// The part that is missing.
        what: &'static str,
        /// The body's length.
        len: usize,
    },
    /// An AACPacketType other than 0 and 1.
    #[error("unknown AAC packet type {0}")]
    UnknownPacketType(u8),
}

/// The name of an FLV `SoundFormat` (FLV spec v10.1 E.4.2.1).
pub fn sound_format_name(sound_format: u8) -> &'static str {
    match sound_format {
        0 => "linear PCM, platform endian",
        1 => "ADPCM",
        2 => "MP3",
        3 => "linear PCM, little endian",
        4 => "Nellymoser 16 kHz mono",
        5 => "Nellymoser 8 kHz mono",
        6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        10 => "AAC",
        11 => "Speex",
        14 => "MP3 8 kHz",
        15 => "device-specific sound",
        _ => "reserved",
    }
}

/// `SoundRate` (UB[2]) in Hz: 5.5, 11, 22 or 44 kHz (E.4.2.1).
fn sound_rate(first: u8) -> u32 {
    match (first >> 2) & 0x03 {
        0 => 5_512,
        1 => 11_025,
        2 => 22_050,
        _ => 44_100,
    }
}

/// Parses one FLV audio tag body. Zero-copy: the audio data is a slice of `body`.
pub fn parse_audio_tag(body: &Bytes) -> Result<AudioTagBody, AudioTagError> {
    let first = *body.first().ok_or(AudioTagError::Empty)?;
    let sound_format = first >> 4;
    let channels = if first & 0x01 == 1 { 2 } else { 1 };
    let payload = |from: usize, what| {
        if body.len() > from {
            Ok(body.slice(from..))
        } else {
            Err(AudioTagError::Truncated {
                what,
                len: body.len(),
            })
        }
    };
    match sound_format {
        SOUND_FORMAT_AAC => {
            // E.4.2.1: for AAC, SoundRate and SoundType are always 3 and 1; the
            // AudioSpecificConfig is what counts, so they are not checked.
            let packet_type = *body.get(1).ok_or(AudioTagError::Truncated {
                what: "AACPacketType",
                len: body.len(),
            })?;
            match packet_type {
                0 => Ok(AudioTagBody::AacSequenceHeader(payload(
                    2,
                    "AudioSpecificConfig",
                )?)),
                1 => Ok(AudioTagBody::AacFrame(payload(2, "raw AAC frame")?)),
                other => Err(AudioTagError::UnknownPacketType(other)),
            }
        }
        SOUND_FORMAT_MP3 | SOUND_FORMAT_MP3_8K => {
            let data = payload(1, "MP3 frame")?;
            let flv_rate = if sound_format == SOUND_FORMAT_MP3_8K {
                8_000
            } else {
                sound_rate(first)
            };
            let (sample_rate, channels) = mp3_header(&data).unwrap_or((flv_rate, channels));
            Ok(AudioTagBody::Frame {
                codec: AudioCodec::Mp3,
                sample_rate,
                channels,
                data,
            })
        }
        SOUND_FORMAT_PCMA | SOUND_FORMAT_PCMU => Ok(AudioTagBody::Frame {
            codec: if sound_format == SOUND_FORMAT_PCMA {
                AudioCodec::Pcma
            } else {
                AudioCodec::Pcmu
            },
            sample_rate: 8_000,
            channels,
            data: payload(1, "G.711 samples")?,
        }),
        other => Ok(AudioTagBody::Unsupported {
            sound_format: other,
            name: sound_format_name(other),
        }),
    }
}

/// The sampling frequency and channel count of an MPEG audio frame header (ISO/IEC 11172-3
/// §2.4.1.3 and §2.4.2.3, with the lower rates of ISO/IEC 13818-3 and the unofficial
/// MPEG 2.5), or `None` if `data` does not start with one.
fn mp3_header(data: &[u8]) -> Option<(u32, u8)> {
    let h = data.get(..4)?;
    // 11-bit syncword; version 01 and layer 00 are reserved.
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x03;
    if version == 1 || (h[1] >> 1) & 0x03 == 0 {
        return None;
    }
    let base = match (h[2] >> 2) & 0x03 {
        0 => 44_100,
        1 => 48_000,
        2 => 32_000,
        _ => return None,
    };
    let rate = match version {
        3 => base,     // MPEG-1
        2 => base / 2, // MPEG-2 LSF
        _ => base / 4, // MPEG-2.5
    };
    // Mode 3: single channel.
    let channels = if h[3] >> 6 == 3 { 1 } else { 2 };
    Some((rate, channels))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::h264::split_length_prefixed;
    use crate::rtmp::flv::{self, FrameType};
    use proptest::prelude::*;

    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    fn config() -> AvcDecoderConfig {
        AvcDecoderConfig::from_parameter_sets(&Bytes::from_static(SPS), &Bytes::from_static(PPS))
            .unwrap()
    }

    #[test]
    fn reads_what_the_publisher_writes() {
        let header = flv::sequence_header_body(&config()).unwrap();
        assert_eq!(
            parse_video_tag(&header).unwrap(),
            VideoTagBody::SequenceHeader(config())
        );
        let idr = Bytes::from_static(&[0x65, 0x88, 0x84]);
        let sei = Bytes::from_static(&[0x06, 0x05]);
        let body = flv::nalu_body(FrameType::Key, 67, &[sei.clone(), idr.clone()]).unwrap();
        let VideoTagBody::Nalu {
            key,
            composition_time_ms,
            data,
        } = parse_video_tag(&body).unwrap()
        else {
            panic!("not a NALU tag")
        };
        assert!(key);
        assert_eq!(composition_time_ms, 67);
        assert_eq!(split_length_prefixed(&data, 4).unwrap(), vec![sei, idr]);
        assert_eq!(
            parse_video_tag(&flv::end_of_sequence_body()).unwrap(),
            VideoTagBody::EndOfSequence
        );
    }

    #[test]
    fn exact_bytes() {
        // 0x27: inter frame, AVC; NALU; CT −33 = 0xFFFFDF; one 2-byte NAL unit.
        let body = Bytes::from_static(&[0x27, 0x01, 0xff, 0xff, 0xdf, 0, 0, 0, 2, 0x41, 0x9a]);
        assert_eq!(
            parse_video_tag(&body).unwrap(),
            VideoTagBody::Nalu {
                key: false,
                composition_time_ms: -33,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x41, 0x9a]),
            }
        );
        // Largest and smallest SI24.
        assert_eq!(si24([0x7f, 0xff, 0xff]), (1 << 23) - 1);
        assert_eq!(si24([0x80, 0x00, 0x00]), -(1 << 23));
        assert_eq!(si24([0x00, 0x00, 0x43]), 67);
    }

    #[test]
    fn other_codecs_commands_and_damage() {
        // Sorenson H.263 inter frame; HEVC with the non-standard CodecID 12.
        assert_eq!(
            parse_video_tag(&Bytes::from_static(&[0x22, 0, 0])).unwrap(),
            VideoTagBody::OtherCodec {
                codec: "Sorenson H.263".into()
            }
        );
        assert_eq!(
            parse_video_tag(&Bytes::from_static(&[0x1c, 0, 0, 0, 0])).unwrap(),
            VideoTagBody::OtherCodec {
                codec: "HEVC".into()
            }
        );
        // FrameType 5: a command frame, whatever follows.
        assert_eq!(
            parse_video_tag(&Bytes::from_static(&[0x57, 0x00])).unwrap(),
            VideoTagBody::Command
        );
        assert_eq!(
            parse_video_tag(&Bytes::new()).unwrap_err(),
            FlvParseError::Empty
        );
        assert!(matches!(
            parse_video_tag(&Bytes::from_static(&[0x17, 0x01, 0x00])).unwrap_err(),
            FlvParseError::Truncated { len: 3, .. }
        ));
        assert_eq!(
            parse_video_tag(&Bytes::from_static(&[0x17, 0x07, 0, 0, 0])).unwrap_err(),
            FlvParseError::UnknownPacketType(7)
        );
        // A sequence header whose record is cut short.
        let header = flv::sequence_header_body(&config()).unwrap();
        assert!(matches!(
            parse_video_tag(&header.slice(..header.len() - 2)).unwrap_err(),
            FlvParseError::Config(_)
        ));
    }

    #[test]
    fn enhanced_rtmp_headers() {
        let record = config().to_bytes().unwrap();
        // IsExHeader | key frame (1) << 4 | SequenceStart (0), "avc1", record.
        let mut seq = vec![0x90];
        seq.extend_from_slice(b"avc1");
        seq.extend_from_slice(&record);
        assert_eq!(
            parse_video_tag(&Bytes::from(seq)).unwrap(),
            VideoTagBody::SequenceHeader(config())
        );
        // Inter frame (2) CodedFrames (1) with CT 40, then CodedFramesX (3) without one.
        let mut coded = vec![0xa1];
        coded.extend_from_slice(b"avc1");
        coded.extend_from_slice(&[0, 0, 40, 0, 0, 0, 1, 0x41]);
        assert_eq!(
            parse_video_tag(&Bytes::from(coded)).unwrap(),
            VideoTagBody::Nalu {
                key: false,
                composition_time_ms: 40,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            }
        );
        let mut coded_x = vec![0x93];
        coded_x.extend_from_slice(b"avc1");
        coded_x.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        assert_eq!(
            parse_video_tag(&Bytes::from(coded_x)).unwrap(),
            VideoTagBody::Nalu {
                key: true,
                composition_time_ms: 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
            }
        );
        let mut hevc = vec![0x90];
        hevc.extend_from_slice(b"hvc1");
        assert_eq!(
            parse_video_tag(&Bytes::from(hevc)).unwrap(),
            VideoTagBody::OtherCodec {
                codec: "hvc1".into()
            }
        );
        assert!(matches!(
            parse_video_tag(&Bytes::from_static(&[0x90, b'a'])).unwrap_err(),
            FlvParseError::Truncated { .. }
        ));
    }

    #[test]
    fn timestamps_extend_across_the_wrap_and_step_back() {
        let mut ext = TimestampExtender::new();
        assert_eq!(ext.extend(u32::MAX - 19), i64::from(u32::MAX) - 19);
        // 33 ms later, past the wrap.
        assert_eq!(ext.extend(13), (1i64 << 32) + 13);
        // A small step back stays small.
        assert_eq!(ext.extend(3), (1i64 << 32) + 3);
        assert_eq!(ext.extend(u32::MAX), i64::from(u32::MAX));
        let mut ext = TimestampExtender::new();
        assert_eq!(ext.extend(1000), 1000);
        assert_eq!(ext.extend(1033), 1033);
    }

    #[test]
    fn aac_sequence_headers_and_frames() {
        // 0xaf: AAC (10), 44 kHz (3), 16-bit, stereo; AACPacketType 0; AAC LC 48 kHz stereo.
        let body = Bytes::from_static(&[0xaf, 0x00, 0x11, 0x90]);
        assert_eq!(
            parse_audio_tag(&body).unwrap(),
            AudioTagBody::AacSequenceHeader(Bytes::from_static(&[0x11, 0x90]))
        );
        let body = Bytes::from_static(&[0xaf, 0x01, 0x21, 0x10, 0x04]);
        assert_eq!(
            parse_audio_tag(&body).unwrap(),
            AudioTagBody::AacFrame(Bytes::from_static(&[0x21, 0x10, 0x04]))
        );
        // Some muxers write mono / other rates in the header byte of AAC: ignored.
        let body = Bytes::from_static(&[0xa2, 0x01, 0x42]);
        assert_eq!(
            parse_audio_tag(&body).unwrap(),
            AudioTagBody::AacFrame(Bytes::from_static(&[0x42]))
        );
    }

    #[test]
    fn mp3_and_g711_frames() {
        // 0x2f: MP3, 44 kHz, 16-bit, stereo; an MPEG-1 layer III header at 48 kHz, joint stereo.
        let mut mp3 = vec![0x2f, 0xff, 0xfb, 0x94, 0x64];
        mp3.extend_from_slice(&[0u8; 8]);
        let Ok(AudioTagBody::Frame {
            codec,
            sample_rate,
            channels,
            data,
        }) = parse_audio_tag(&Bytes::from(mp3.clone()))
        else {
            panic!("not an MP3 frame")
        };
        assert_eq!((codec, sample_rate, channels), (AudioCodec::Mp3, 48_000, 2));
        assert_eq!(&data[..], &mp3[1..]);
        // MPEG-2 (22.05 kHz), single channel.
        let body = Bytes::from_static(&[0x2e, 0xff, 0xf3, 0x80, 0xc4, 0]);
        assert!(matches!(
            parse_audio_tag(&body).unwrap(),
            AudioTagBody::Frame {
                codec: AudioCodec::Mp3,
                sample_rate: 22_050,
                channels: 1,
                ..
            }
        ));
        // No frame header to read: the FLV header's rate (11 kHz) and type (mono) stand.
        let body = Bytes::from_static(&[0x26, 1, 2, 3]);
        assert!(matches!(
            parse_audio_tag(&body).unwrap(),
            AudioTagBody::Frame {
                codec: AudioCodec::Mp3,
                sample_rate: 11_025,
                channels: 1,
                ..
            }
        ));
        // MP3 8 kHz (14).
        let body = Bytes::from_static(&[0xe2, 1, 2]);
        assert!(matches!(
            parse_audio_tag(&body).unwrap(),
            AudioTagBody::Frame {
                codec: AudioCodec::Mp3,
                sample_rate: 8_000,
                ..
            }
        ));
        // G.711 A-law (7) and µ-law (8), mono: 8 kHz whatever SoundRate says.
        let body = Bytes::from_static(&[0x72, 0xd5, 0xd5, 0x55]);
        assert_eq!(
            parse_audio_tag(&body).unwrap(),
            AudioTagBody::Frame {
                codec: AudioCodec::Pcma,
                sample_rate: 8_000,
                channels: 1,
                data: Bytes::from_static(&[0xd5, 0xd5, 0x55]),
            }
        );
        let body = Bytes::from_static(&[0x83, 0xff]);
        assert!(matches!(
            parse_audio_tag(&body).unwrap(),
            AudioTagBody::Frame {
                codec: AudioCodec::Pcmu,
                channels: 2,
                ..
            }
        ));
    }

    #[test]
    fn other_sound_formats_and_damaged_audio_tags() {
        // Speex (11), Nellymoser (6), ADPCM (1), reserved (9).
        for (byte, format, name) in [
            (0xb2u8, 11u8, "Speex"),
            (0x6a, 6, "Nellymoser"),
            (0x1f, 1, "ADPCM"),
            (0x9f, 9, "reserved"),
        ] {
            assert_eq!(
                parse_audio_tag(&Bytes::from(vec![byte, 0, 0])).unwrap(),
                AudioTagBody::Unsupported {
                    sound_format: format,
                    name
                }
            );
        }
        assert_eq!(
            parse_audio_tag(&Bytes::new()).unwrap_err(),
            AudioTagError::Empty
        );
        // AAC without its packet type, sequence header without a config, frame without data.
        for body in [&[0xaf][..], &[0xaf, 0x00], &[0xaf, 0x01]] {
            assert!(
                matches!(
                    parse_audio_tag(&Bytes::copy_from_slice(body)).unwrap_err(),
                    AudioTagError::Truncated { len, .. } if len == body.len()
                ),
                "{body:?}"
            );
        }
        assert_eq!(
            parse_audio_tag(&Bytes::from_static(&[0xaf, 0x02, 0x00])).unwrap_err(),
            AudioTagError::UnknownPacketType(2)
        );
        // MP3 and G.711 tags with nothing after the header byte.
        for byte in [0x2f, 0x72, 0x82] {
            assert!(matches!(
                parse_audio_tag(&Bytes::from(vec![byte])).unwrap_err(),
                AudioTagError::Truncated { len: 1, .. }
            ));
        }
        assert!(AudioTagError::UnknownPacketType(2)
            .to_string()
            .contains("AAC packet type 2"));
    }

    proptest! {
        #[test]
        fn nalu_tags_round_trip(
            key in any::<bool>(),
            ct in flv::MIN_COMPOSITION_TIME..=flv::MAX_COMPOSITION_TIME,
            nals in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 1..200), 1..6),
        ) {
            let nalus: Vec<Bytes> = nals.into_iter().map(Bytes::from).collect();
            let frame = if key { FrameType::Key } else { FrameType::Inter };
            let body = flv::nalu_body(frame, ct, &nalus).unwrap();
            let VideoTagBody::Nalu { key: k, composition_time_ms, data } =
                parse_video_tag(&body).unwrap() else { panic!("not a NALU tag") };
            prop_assert_eq!(k, key);
            prop_assert_eq!(composition_time_ms, ct);
            prop_assert_eq!(split_length_prefixed(&data, 4).unwrap(), nalus);
        }

        #[test]
        fn any_bytes_parse_or_fail_without_panicking(
            body in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let _ = parse_video_tag(&Bytes::from(body));
        }

        #[test]
        fn any_audio_bytes_parse_or_fail_without_panicking(
            body in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let _ = parse_audio_tag(&Bytes::from(body));
        }

        #[test]
        fn extended_timestamps_follow_steady_steps(start in any::<u32>(), step in 1u32..2000, n in 1usize..200) {
            let mut ext = TimestampExtender::new();
            let first = ext.extend(start);
            for i in 1..=n {
                let ts = start.wrapping_add(step.wrapping_mul(i as u32));
                prop_assert_eq!(ext.extend(ts), first + i as i64 * i64::from(step));
            }
        }
    }
}
