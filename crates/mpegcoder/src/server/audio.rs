//! The audio a server passes through: what the stream is ([`AudioStream`], plain data like the
//! rest of the configuration), the transport track it is announced as, and its packets as
//! audio frames (ADTS headers stripped).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::{EncodedPacket, Rational};
use crate::transport::audio::{is_adts, split_adts, AacConfig};
use crate::transport::{AudioCodec, AudioFrame, AudioTrack, TimeBase};

use super::ServerError;

/// An encoded audio stream passed through next to the video, never re-encoded: from a
/// demuxer (`mpegcoder push`) or the user's own encoder.
///
/// Codecs: `aac` over RTSP (RFC 3640) and RTMP; `mp3` over both; `opus` over RTSP; G.711
/// (`pcm_mulaw`, `pcm_alaw`) over both. Names as FFmpeg spells them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AudioStream {
    /// The codec: `aac`, `mp3`, `opus`, `pcm_mulaw` or `pcm_alaw`.
    pub codec: String,
    /// AAC: the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), as MP4 and MKV store it.
    /// Empty when the packets carry ADTS headers (MPEG-TS, `.aac`): then it is read from the
    /// first packet.
    pub extradata: Bytes,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// The time base of the packets' timestamps.
    pub time_base: Rational,
    /// The bit rate in bits/s, when known (announced in the SDP and `onMetaData`).
    pub bit_rate: Option<u64>,
}

impl AudioStream {
    /// An AAC stream described by its AudioSpecificConfig, with packets stamped in
    /// `time_base` (often 1 / sample rate). The sample rate and channels come from the
    /// configuration.
    pub fn aac(config: Bytes, time_base: Rational) -> Result<AudioStream, ServerError> {
        let parsed = AacConfig::parse(&config).map_err(|e| ServerError::Audio(e.to_string()))?;
        Ok(AudioStream {
            codec: "aac".into(),
            extradata: config,
            sample_rate: parsed.sample_rate,
            channels: u32::from(parsed.channels().max(1)),
            time_base,
            bit_rate: None,
        })
    }

    /// A stream of `codec` (FFmpeg's name) without configuration bytes.
    pub fn new(
        codec: impl Into<String>,
        sample_rate: u32,
        channels: u32,
        time_base: Rational,
    ) -> AudioStream {
        AudioStream {
            codec: codec.into(),
            extradata: Bytes::new(),
            sample_rate,
            channels,
            time_base,
            bit_rate: None,
        }
    }

    /// Announces a bit rate in bits/s.
    pub fn with_bit_rate(mut self, bit_rate: Option<u64>) -> Self {
        self.bit_rate = bit_rate;
        self
    }

    /// Sets the AudioSpecificConfig (AAC).
    pub fn with_extradata(mut self, extradata: Bytes) -> Self {
        self.extradata = extradata;
        self
    }

    /// The transport's codec, if it is one a session can carry at all.
    pub fn transport_codec(&self) -> Option<AudioCodec> {
        codec_of(&self.codec)
    }
}

/// The transport codec of an FFmpeg codec name.
pub fn codec_of(name: &str) -> Option<AudioCodec> {
    AudioCodec::from_name(name)
}

/// The transport track announcing `stream`.
pub(super) fn track_of(stream: &AudioStream) -> Result<AudioTrack, ServerError> {
    let codec = codec_of(&stream.codec).ok_or_else(|| {
        ServerError::Audio(format!(
            "{} audio cannot be passed through (supported: {})",
            stream.codec,
            AudioCodec::supported()
        ))
    })?;
    let track = match codec {
        AudioCodec::Aac => {
            if stream.extradata.is_empty() {
                return Err(ServerError::Audio(
                    "AAC audio without its AudioSpecificConfig (give the stream's extradata, \
                     or the first ADTS frame's header)"
                        .into(),
                ));
            }
            AudioTrack::aac(stream.extradata.clone())
        }
        other => AudioTrack::new(
            other,
            stream.sample_rate,
            u8::try_from(stream.channels).unwrap_or(u8::MAX),
        ),
    }
    .map_err(|e| ServerError::Audio(e.to_string()))?;
    Ok(match stream.bit_rate.filter(|b| *b > 0) {
        Some(b) => track.with_bitrate(b),
        None => track,
    })
}

/// The AudioSpecificConfig an ADTS-framed AAC packet describes.
pub fn config_from_adts(packet: &[u8]) -> Option<Bytes> {
    let data = Bytes::copy_from_slice(packet);
    split_adts(&data).ok().map(|(h, _)| h.config())
}

/// The frames of one audio packet: the packet itself, or for ADTS-framed AAC the raw frames
/// it holds, each stamped one frame duration after the previous.
pub(super) fn packet_frames(
    packet: &EncodedPacket,
    stream: &AudioStream,
    frame_length: u32,
) -> Result<Vec<AudioFrame>, ServerError> {
    let tb = if packet.time_base.is_valid() {
        packet.time_base
    } else {
        stream.time_base
    };
    if codec_of(&stream.codec) == Some(AudioCodec::Aac) && is_adts(&packet.data) {
        let (_, frames) =
            split_adts(&packet.data).map_err(|e| ServerError::Audio(e.to_string()))?;
        let samples = TimeBase::new(1, stream.sample_rate.max(1));
        return Ok(frames
            .into_iter()
            .enumerate()
            .map(|(k, data)| {
                let offset = samples.rescale(i64::from(frame_length) * k as i64, tb);
                AudioFrame::new(data, packet.pts.saturating_add(offset), tb)
            })
            .collect());
    }
    Ok(vec![AudioFrame::new(packet.data.clone(), packet.pts, tb)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn tracks_and_adts_packets() {
        let s = AudioStream::aac(Bytes::from_static(&[0x11, 0x90]), Rational::new(1, 48_000))
            .unwrap()
            .with_bit_rate(Some(128_000));
        let t = track_of(&s).unwrap();
        assert_eq!(
            (t.codec, t.sample_rate, t.channels),
            (AudioCodec::Aac, 48_000, 2)
        );
        assert_eq!(t.bitrate, Some(128_000));
        assert!(AudioStream::aac(Bytes::new(), Rational::new(1, 48_000)).is_err());
        let e = track_of(&AudioStream::new(
            "vorbis",
            48_000,
            2,
            Rational::new(1, 48_000),
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("vorbis audio cannot be passed through"),
            "{e}"
        );

        // Two ADTS frames in one packet: two raw frames, 1024 samples apart.
        let cfg = AacConfig::parse(&[0x11, 0x90]).unwrap();
        let mut data = BytesMut::new();
        crate::transport::audio::write_adts(&cfg, &[1, 2, 3], &mut data).unwrap();
        crate::transport::audio::write_adts(&cfg, &[4, 5], &mut data).unwrap();
        let packet = EncodedPacket {
            data: data.freeze(),
            pts: 90_000,
            dts: 90_000,
            key: true,
            duration: 0,
            time_base: Rational::new(1, 90_000),
        };
        assert_eq!(
            config_from_adts(&packet.data),
            Some(Bytes::from_static(&[0x11, 0x90]))
        );
        let frames = packet_frames(&packet, &s, 1024).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0].data[..], &[1, 2, 3]);
        assert_eq!(frames[1].pts, 90_000 + 1920);
    }
}
