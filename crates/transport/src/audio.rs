//! Audio tracks and frames, and the AAC byte work every transport needs: the
//! AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) and ADTS headers (ISO/IEC 14496-3 §1.A.2).
//!
//! Audio always passes through: a session carries the encoded frames as they came (one AAC
//! `raw_data_block` per frame, without ADTS header; one MP3 frame; one Opus packet; a run of
//! G.711 samples). What each protocol can carry:
//!
//! | codec | RTSP (RTP) | RTMP (FLV) |
//! |---|---|---|
//! | AAC | RFC 3640 `mpeg4-generic`, AAC-hbr | SoundFormat 10 |
//! | MP3 | RFC 2250 `MPA` (payload type 14) | SoundFormat 2 |
//! | Opus | RFC 7587 `opus/48000/2` | – |
//! | G.711 µ-law / A-law | RFC 3551 `PCMU` / `PCMA` (payload types 0 / 8) | SoundFormat 8 / 7 |

use bytes::{BufMut, Bytes, BytesMut};

use crate::TimeBase;

/// An audio codec a session may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioCodec {
    /// MPEG-4 AAC (frames without ADTS headers; the track holds the AudioSpecificConfig).
    Aac,
    /// MPEG-1/2 Layer III.
    Mp3,
    /// Opus (RFC 6716).
    Opus,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl AudioCodec {
    /// Every codec a session can carry.
    pub const ALL: [AudioCodec; 5] = [
        AudioCodec::Aac,
        AudioCodec::Mp3,
        AudioCodec::Opus,
        AudioCodec::Pcmu,
        AudioCodec::Pcma,
    ];

    /// The codec of an FFmpeg codec name ([`name`](Self::name), or the name of one of its
    /// decoders: `mp3float`).
    pub fn from_name(name: &str) -> Option<AudioCodec> {
        match name {
            "mp3float" => Some(AudioCodec::Mp3),
            _ => AudioCodec::ALL.into_iter().find(|c| c.name() == name),
        }
    }

    /// The names of every codec, for messages: `aac, mp3, opus, pcm_mulaw, pcm_alaw`.
    pub fn supported() -> String {
        let names: Vec<&str> = AudioCodec::ALL.iter().map(|c| c.name()).collect();
        names.join(", ")
    }

    /// The codec's usual name (`aac`, `mp3`, `opus`, `pcm_mulaw`, `pcm_alaw`, as FFmpeg
    /// spells them).
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Opus => "opus",
            AudioCodec::Pcmu => "pcm_mulaw",
            AudioCodec::Pcma => "pcm_alaw",
        }
    }
}

impl std::fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors from parsing AAC configurations and ADTS headers, or describing an audio track.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioError {
    /// The AudioSpecificConfig is too short or malformed.
    #[error("invalid AAC AudioSpecificConfig: {0}")]
    BadConfig(&'static str),
    /// An ADTS header is malformed (no sync word, impossible length, reserved values).
    #[error("invalid ADTS header at byte {offset}: {reason}")]
    BadAdts {
        /// Byte offset of the header.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The track's parameters cannot work (zero sample rate, no channels).
    #[error("invalid {codec} track: {reason}")]
    BadTrack {
        /// The codec.
        codec: AudioCodec,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The sampling frequencies of `samplingFrequencyIndex` 0–12 (ISO/IEC 14496-3 Table 1.18).
pub const AAC_SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// What an AAC AudioSpecificConfig says (ISO/IEC 14496-3 §1.6.2.1), as far as transports need
/// it. The bytes themselves are kept as given for the SDP `config=` and the FLV sequence
/// header, never rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// `audioObjectType` (2 = AAC LC, 5 = SBR, 29 = PS…), escapes resolved.
    pub object_type: u8,
    /// The sampling frequency of the core decoder, in Hz.
    pub sample_rate: u32,
    /// `channelConfiguration` (1 mono, 2 stereo, … 7 for 7.1); 0 means "given in a program
    /// config element".
    pub channel_config: u8,
    /// Samples per frame: 960 with `frameLengthFlag` set, else 1024.
    pub frame_length: u32,
}

impl AacConfig {
    /// Parses an AudioSpecificConfig.
    pub fn parse(asc: &[u8]) -> Result<AacConfig, AudioError> {
        let mut r = Bits::new(asc);
        let bad = AudioError::BadConfig;
        let mut object_type = r.read(5).ok_or(bad("too short"))? as u8;
        if object_type == 31 {
            // audioObjectTypeExt (§1.6.2.1: 32 + 6 bits).
            object_type = 32 + r.read(6).ok_or(bad("too short"))? as u8;
        }
        if object_type == 0 {
            return Err(bad("audio object type 0 (null)"));
        }
        let index = r.read(4).ok_or(bad("too short"))?;
        let sample_rate = match index {
            0xf => r.read(24).ok_or(bad("too short"))?,
            i => *AAC_SAMPLE_RATES
                .get(i as usize)
                .ok_or(bad("reserved sampling frequency index"))?,
        };
        if sample_rate == 0 {
            return Err(bad("sampling frequency 0"));
        }
        let channel_config = r.read(4).ok_or(bad("too short"))? as u8;
        // GASpecificConfig (§4.4.1) starts with frameLengthFlag for the AAC object types
        // (1–4, 6, 7, 17, 19–23); SBR/PS (5, 29) carry an extension first, whose core
        // decoder frame is 1024 samples either way unless the flag follows.
        let ga = matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=23);
        let frame_length = if ga && r.read(1) == Some(1) {
            960
        } else {
            1024
        };
        Ok(AacConfig {
            object_type,
            sample_rate,
            channel_config,
            frame_length,
        })
    }

    /// A two-byte AudioSpecificConfig for an object type, sampling frequency index and
    /// channel configuration (what an ADTS header describes, §1.A.2.2.1: its `profile` is the
    /// object type minus one).
    pub fn build(object_type: u8, frequency_index: u8, channel_config: u8) -> Bytes {
        let v: u16 = (u16::from(object_type & 0x1f) << 11)
            | (u16::from(frequency_index & 0x0f) << 7)
            | (u16::from(channel_config & 0x0f) << 3);
        Bytes::copy_from_slice(&v.to_be_bytes())
    }

    /// The number of channels the configuration implies (7 means 7.1: 8 channels); 0 when it
    /// is given elsewhere.
    pub fn channels(&self) -> u8 {
        match self.channel_config {
            7 => 8,
            c @ 1..=6 => c,
            _ => 0,
        }
    }

    /// `samplingFrequencyIndex` of the rate, if it has one.
    pub fn frequency_index(&self) -> Option<u8> {
        AAC_SAMPLE_RATES
            .iter()
            .position(|r| *r == self.sample_rate)
            .map(|i| i as u8)
    }
}

/// Reads big-endian bit fields.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, pos: 0 }
    }

    fn read(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Some(v)
    }
}

/// The static description of a published audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AudioTrack {
    /// The codec.
    pub codec: AudioCodec,
    /// Samples per second (the RTP clock rate, except Opus's fixed 48 000, RFC 7587 §4.1).
    pub sample_rate: u32,
    /// Channels.
    pub channels: u8,
    /// AAC: the AudioSpecificConfig as the source stored it. Empty for the other codecs.
    pub config: Bytes,
    /// Nominal bit rate in bits per second, if known.
    pub bitrate: Option<u64>,
}

impl AudioTrack {
    /// An AAC track from its AudioSpecificConfig (the MP4 `esds` / FLV sequence header bytes).
    pub fn aac(config: Bytes) -> Result<AudioTrack, AudioError> {
        let parsed = AacConfig::parse(&config)?;
        Ok(AudioTrack {
            codec: AudioCodec::Aac,
            sample_rate: parsed.sample_rate,
            channels: parsed.channels().max(1),
            config,
            bitrate: None,
        })
    }

    /// A track of another codec (MP3, Opus, G.711), which needs no configuration bytes.
    pub fn new(
        codec: AudioCodec,
        sample_rate: u32,
        channels: u8,
    ) -> Result<AudioTrack, AudioError> {
        if codec == AudioCodec::Aac {
            return Err(AudioError::BadTrack {
                codec,
                reason: "AAC needs its AudioSpecificConfig (use AudioTrack::aac)",
            });
        }
        if sample_rate == 0 {
            return Err(AudioError::BadTrack {
                codec,
                reason: "sample rate 0",
            });
        }
        if channels == 0 {
            return Err(AudioError::BadTrack {
                codec,
                reason: "no channels",
            });
        }
        Ok(AudioTrack {
            codec,
            sample_rate,
            channels,
            config: Bytes::new(),
            bitrate: None,
        })
    }

    /// Sets the nominal bit rate in bits per second.
    pub fn with_bitrate(mut self, bits_per_second: u64) -> Self {
        self.bitrate = Some(bits_per_second);
        self
    }

    /// The parsed AudioSpecificConfig of an AAC track.
    pub fn aac_config(&self) -> Option<AacConfig> {
        match self.codec {
            AudioCodec::Aac => AacConfig::parse(&self.config).ok(),
            _ => None,
        }
    }

    /// The RTP clock rate of the track (RFC 3640 §4.1: the sampling rate for AAC; RFC 7587
    /// §4.1: always 48 000 for Opus; RFC 2250 §3: 90 000 for MPEG audio; RFC 3551 §4.5.14:
    /// 8 000 for G.711 at its usual rate).
    pub fn rtp_clock_rate(&self) -> u32 {
        match self.codec {
            AudioCodec::Opus => 48_000,
            AudioCodec::Mp3 => 90_000,
            _ => self.sample_rate,
        }
    }

    /// The time base of the track's samples (1 / sample rate).
    pub fn sample_time_base(&self) -> TimeBase {
        TimeBase::new(1, self.sample_rate.max(1))
    }
}

/// One encoded audio frame with its timing. Audio frames are decoded in presentation order,
/// so one timestamp serves as both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// Presentation (= decoding) timestamp in `time_base` ticks.
    pub pts: i64,
    /// The time base of `pts`.
    pub time_base: TimeBase,
    /// The encoded frame: an AAC `raw_data_block` without ADTS header, an MP3 frame, an
    /// Opus packet, or G.711 samples.
    pub data: Bytes,
}

impl AudioFrame {
    /// A frame.
    pub fn new(data: Bytes, pts: i64, time_base: TimeBase) -> AudioFrame {
        AudioFrame {
            pts,
            time_base,
            data,
        }
    }

    /// The timestamp converted to `to` (rounded to the nearest tick).
    pub fn pts_in(&self, to: TimeBase) -> i64 {
        self.time_base.rescale(self.pts, to)
    }
}

/// Length of an ADTS header without CRC (ISO/IEC 14496-3 §1.A.2.2).
pub const ADTS_HEADER_LEN: usize = 7;

/// What one ADTS header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// `profile_ObjectType` + 1: the audio object type (2 = AAC LC).
    pub object_type: u8,
    /// `sampling_frequency_index`.
    pub frequency_index: u8,
    /// `channel_configuration`.
    pub channel_config: u8,
    /// Header bytes: 7, or 9 with a CRC.
    pub header_len: usize,
    /// The whole frame, header included (`aac_frame_length`).
    pub frame_len: usize,
    /// `number_of_raw_data_blocks_in_frame` + 1.
    pub blocks: u8,
}

impl AdtsHeader {
    /// Parses the ADTS header at the start of `data` (`offset` only names it in errors).
    pub fn parse(data: &[u8], offset: usize) -> Result<AdtsHeader, AudioError> {
        let bad = |reason| AudioError::BadAdts { offset, reason };
        let h = data
            .get(..ADTS_HEADER_LEN)
            .ok_or(bad("fewer than 7 bytes"))?;
        if h[0] != 0xff || h[1] & 0xf0 != 0xf0 {
            return Err(bad("no syncword"));
        }
        if h[1] & 0x06 != 0 {
            return Err(bad("layer is not 0"));
        }
        let protection_absent = h[1] & 0x01 == 1;
        let profile = h[2] >> 6;
        let frequency_index = (h[2] >> 2) & 0x0f;
        if usize::from(frequency_index) >= AAC_SAMPLE_RATES.len() {
            return Err(bad("reserved sampling frequency index"));
        }
        let channel_config = ((h[2] & 0x01) << 2) | (h[3] >> 6);
        let frame_len =
            (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let header_len = if protection_absent { 7 } else { 9 };
        if frame_len < header_len {
            return Err(bad("frame length shorter than the header"));
        }
        Ok(AdtsHeader {
            object_type: profile + 1,
            frequency_index,
            channel_config,
            header_len,
            frame_len,
            blocks: (h[6] & 0x03) + 1,
        })
    }

    /// The AudioSpecificConfig the header describes.
    pub fn config(&self) -> Bytes {
        AacConfig::build(self.object_type, self.frequency_index, self.channel_config)
    }
}

/// True when `data` starts with an ADTS syncword (how a demuxer hands AAC from MPEG-TS or a
/// raw `.aac` file).
pub fn is_adts(data: &[u8]) -> bool {
    data.len() >= ADTS_HEADER_LEN && data[0] == 0xff && data[1] & 0xf6 == 0xf0
}

/// Splits a buffer of ADTS frames into the raw frames they carry (zero-copy slices) and the
/// header of the first. Frames with several raw data blocks are kept whole (their block
/// boundaries are only known to a decoder), which both RFC 3640 and FLV carry as one unit.
pub fn split_adts(data: &Bytes) -> Result<(AdtsHeader, Vec<Bytes>), AudioError> {
    let mut frames = Vec::new();
    let mut first = None;
    let mut pos = 0;
    while pos < data.len() {
        let h = AdtsHeader::parse(data.get(pos..).unwrap_or_default(), pos)?;
        let end = pos + h.frame_len;
        if end > data.len() {
            return Err(AudioError::BadAdts {
                offset: pos,
                reason: "frame runs past the end of the buffer",
            });
        }
        frames.push(data.slice(pos + h.header_len..end));
        first.get_or_insert(h);
        pos = end;
    }
    match first {
        Some(h) => Ok((h, frames)),
        None => Err(AudioError::BadAdts {
            offset: 0,
            reason: "empty buffer",
        }),
    }
}

/// Writes the 7-byte ADTS header (no CRC) of a raw AAC frame of `payload_len` bytes described
/// by `config` (ISO/IEC 14496-3 §1.A.2.2.1), then the frame: what a `.aac` file holds.
pub fn write_adts(config: &AacConfig, frame: &[u8], out: &mut BytesMut) -> Result<(), AudioError> {
    let index = config.frequency_index().ok_or(AudioError::BadConfig(
        "ADTS cannot express this sampling frequency",
    ))?;
    // ADTS has two bits for the object type: 1 (Main) to 4 (LTP).
    if !(1..=4).contains(&config.object_type) {
        return Err(AudioError::BadConfig(
            "ADTS can only carry AAC Main, LC, SSR or LTP (object types 1–4)",
        ));
    }
    let len = ADTS_HEADER_LEN + frame.len();
    if len >= 1 << 13 {
        return Err(AudioError::BadConfig("frame too long for ADTS"));
    }
    let profile = config.object_type - 1;
    let ch = config.channel_config & 0x07;
    out.reserve(len);
    out.put_u8(0xff);
    // MPEG-4, layer 0, protection absent.
    out.put_u8(0xf1);
    out.put_u8((profile << 6) | (index << 2) | (ch >> 2));
    out.put_u8(((ch & 0x03) << 6) | ((len >> 11) as u8 & 0x03));
    out.put_u8((len >> 3) as u8);
    // The low 3 bits of the length, then a buffer fullness of 0x7ff (variable bit rate).
    out.put_u8((((len & 0x07) as u8) << 5) | 0x1f);
    out.put_u8(0xfc);
    out.put_slice(frame);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_common_configs() {
        // AAC LC, 44.1 kHz, stereo (what ffmpeg's native encoder writes).
        let c = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            c,
            AacConfig {
                object_type: 2,
                sample_rate: 44_100,
                channel_config: 2,
                frame_length: 1024
            }
        );
        // AAC LC, 48 kHz, mono.
        let c = AacConfig::parse(&[0x11, 0x88]).unwrap();
        assert_eq!((c.sample_rate, c.channels()), (48_000, 1));
        // Explicit frequency: object type 2, index 15, 24 bits of 0x00_5622 (22050), stereo.
        let c = AacConfig::parse(&[0x17, 0x80, 0x2b, 0x11, 0x10]).unwrap();
        assert_eq!(c.sample_rate, 22_050);
        assert_eq!(c.channel_config, 2);
        // frameLengthFlag set: 960 samples.
        assert_eq!(AacConfig::parse(&[0x12, 0x14]).unwrap().frame_length, 960);
        // Escape object type 31 → 32 + 6 bits.
        let c = AacConfig::parse(&[0xf8, 0x08, 0x40]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channel_config),
            (32, 44_100, 2)
        );
        assert!(AacConfig::parse(&[0x12]).is_err());
        assert!(AacConfig::parse(&[]).is_err());
        assert!(
            AacConfig::parse(&[0x16, 0x90]).is_err(),
            "reserved index 13"
        );
        assert_eq!(AacConfig::build(2, 4, 2), Bytes::from_static(&[0x12, 0x10]));
    }

    #[test]
    fn adts_round_trip() {
        let config = AacConfig::parse(&[0x12, 0x10]).unwrap();
        let mut out = BytesMut::new();
        write_adts(&config, &[1, 2, 3, 4, 5], &mut out).unwrap();
        write_adts(&config, &[9; 300], &mut out).unwrap();
        let data = out.freeze();
        assert!(is_adts(&data));
        let (h, frames) = split_adts(&data).unwrap();
        assert_eq!(h.config(), Bytes::from_static(&[0x12, 0x10]));
        assert_eq!((h.header_len, h.frame_len, h.blocks), (7, 12, 1));
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0][..], &[1, 2, 3, 4, 5]);
        assert_eq!(&frames[1][..], &[9; 300][..]);
        // Truncated and garbage input are errors, not panics.
        assert!(split_adts(&data.slice(..data.len() - 1)).is_err());
        assert!(split_adts(&Bytes::from_static(&[0xff, 0xf1, 0x50])).is_err());
        assert!(split_adts(&Bytes::from_static(&[0u8; 16])).is_err());
        // SBR object type 5 cannot be written as ADTS.
        let he = AacConfig {
            object_type: 5,
            ..config
        };
        assert!(write_adts(&he, &[1], &mut BytesMut::new()).is_err());
    }

    #[test]
    fn tracks() {
        let t = AudioTrack::aac(Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!(
            (t.sample_rate, t.channels, t.rtp_clock_rate()),
            (44_100, 2, 44_100)
        );
        assert!(AudioTrack::aac(Bytes::new()).is_err());
        for c in AudioCodec::ALL {
            assert_eq!(AudioCodec::from_name(c.name()), Some(c));
        }
        assert_eq!(AudioCodec::from_name("mp3float"), Some(AudioCodec::Mp3));
        assert_eq!(AudioCodec::from_name("vorbis"), None);
        assert_eq!(
            AudioCodec::supported(),
            "aac, mp3, opus, pcm_mulaw, pcm_alaw"
        );
        let o = AudioTrack::new(AudioCodec::Opus, 48_000, 2).unwrap();
        assert_eq!(o.rtp_clock_rate(), 48_000);
        assert!(AudioTrack::new(AudioCodec::Pcmu, 0, 1).is_err());
        assert!(AudioTrack::new(AudioCodec::Aac, 8000, 1).is_err());
        let f = AudioFrame::new(Bytes::from_static(&[1]), 1024, TimeBase::new(1, 44_100));
        assert_eq!(f.pts_in(TimeBase::MILLIS), 23);
    }
}
