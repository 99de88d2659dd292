//! Audio passthrough: [`AudioParams`] of an input's audio streams, [`AudioSelection`], and
//! the timestamps of demuxed audio packets.
//!
//! Audio is never decoded here: its packets go out as the container stores them, next to the
//! video, so that a publisher can carry them untouched.

use bytes::Bytes;
use ff::format::context::Input;
use ff::media;
use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::input::NOPTS;
use crate::rational::FfRational;
use crate::{EncodedPacket, Rational};

/// Which audio stream of an input to pass through, next to the video
/// ([`crate::OpenOptions::audio`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AudioSelection {
    /// No audio: audio packets are read and dropped (the default).
    #[default]
    None,
    /// The first audio stream, if the input has one (an input without audio is not an
    /// error: there is then no audio).
    First,
    /// The audio stream with this ordinal among the input's audio streams, counted from 0
    /// (like ffmpeg's `-map 0:a:N`). Opening fails with [`crate::CodecError::NoAudioStream`]
    /// when the input has fewer audio streams.
    Index(usize),
}

/// Parameters of one audio stream of an input, serializable like [`crate::VideoParams`].
///
/// The stream is passed through without decoding: these are what a publisher needs to
/// describe it (RTSP SDP, FLV audio tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioParams {
    /// Index of the stream in the container (FFmpeg's stream index, counting every kind).
    pub stream_index: usize,
    /// Ordinal among the input's audio streams, from 0 (ffmpeg's `-map 0:a:N`).
    pub ordinal: usize,
    /// Codec name as FFmpeg spells it: `aac`, `mp3`, `opus`, `pcm_mulaw`, `pcm_alaw`, `ac3`,
    /// ...
    pub codec: String,
    /// Samples per second (0 when the container does not say).
    pub sample_rate: u32,
    /// Number of channels (0 when the container does not say).
    pub channels: u32,
    /// Seconds per tick of the packets' timestamps.
    pub time_base: Rational,
    /// Codec extradata as stored: for AAC in MP4/MKV the AudioSpecificConfig; empty for AAC
    /// in MPEG-TS (whose packets carry ADTS headers instead), MP3 and G.711; the `OpusHead`
    /// for Opus. Serialized as a sequence of bytes.
    pub extradata: Bytes,
    /// Bit rate in bits/s, when the container says (`None` otherwise).
    pub bit_rate: Option<u64>,
    /// Samples per channel in one packet (1024 for AAC LC, 1152 for MP3, 960 for 20 ms
    /// Opus); 0 when unknown or variable (G.711).
    pub frame_size: u32,
    /// Timestamp of the stream start in ticks of `time_base` (0 when unknown). For AAC in
    /// MP4 this is where playback starts; the encoder's priming packet may come before it
    /// (negative timestamps).
    pub start_time: i64,
}

impl AudioParams {
    /// Duration of one frame of `frame_size` samples in ticks of `time_base`; `None` when
    /// the frame size or sample rate is unknown.
    #[must_use]
    pub fn frame_ticks(&self) -> Option<i64> {
        if self.frame_size == 0 || self.sample_rate == 0 {
            return None;
        }
        let ticks = crate::rescale(
            i64::from(self.frame_size),
            Rational::new(1, self.sample_rate),
            self.time_base,
        );
        (ticks > 0).then_some(ticks)
    }
}

/// Every audio stream of `input`, in container order.
pub(crate) fn audio_streams(input: &Input) -> Vec<AudioParams> {
    input
        .streams()
        .filter(|s| s.parameters().medium() == media::Type::Audio)
        .enumerate()
        .map(|(ordinal, stream)| {
            let parameters = stream.parameters();
            let raw = crate::ffi::audio_codecpar(&parameters);
            let mut time_base = Rational::from_ff(stream.time_base());
            if !time_base.is_valid() && raw.sample_rate > 0 {
                // Demuxers always set a time base; should one not, samples are the natural
                // unit.
                time_base = Rational::new(1, raw.sample_rate);
            }
            AudioParams {
                stream_index: stream.index(),
                ordinal,
                codec: parameters.id().name().to_owned(),
                sample_rate: raw.sample_rate,
                channels: raw.channels,
                time_base,
                extradata: raw.extradata,
                bit_rate: u64::try_from(parameters.bit_rate()).ok().filter(|b| *b > 0),
                frame_size: raw.frame_size,
                start_time: match stream.start_time() {
                    NOPTS => 0,
                    s => s,
                },
            }
        })
        .collect()
}

/// Turns demuxed packets of one audio stream into [`EncodedPacket`]s, filling in missing
/// timestamps and durations.
#[derive(Debug, Clone)]
pub(crate) struct AudioStamper {
    time_base: Rational,
    frame_ticks: Option<i64>,
    start_time: i64,
    /// Where the next packet starts if it has no timestamp: previous pts + duration.
    next_pts: Option<i64>,
}

impl AudioStamper {
    pub(crate) fn new(params: &AudioParams) -> AudioStamper {
        AudioStamper {
            time_base: params.time_base,
            frame_ticks: params.frame_ticks(),
            start_time: params.start_time,
            next_pts: None,
        }
    }

    /// Forgets the previous packet (after the input was repositioned).
    pub(crate) fn reset(&mut self) {
        self.next_pts = None;
    }

    /// The packet with its timestamps: pts, else dts, else previous pts + previous duration
    /// (else the stream start); dts, else pts. The duration is the stored one, else one
    /// frame of `frame_size` samples, else 0 (unknown).
    pub(crate) fn stamp(&mut self, packet: &ff::Packet) -> EncodedPacket {
        let pts = packet
            .pts()
            .or(packet.dts())
            .unwrap_or_else(|| self.next_pts.unwrap_or(self.start_time));
        let dts = packet.dts().unwrap_or(pts);
        let duration = match packet.duration() {
            d if d > 0 => d,
            _ => self.frame_ticks.unwrap_or(0),
        };
        self.next_pts = Some(pts.saturating_add(duration));
        EncodedPacket {
            data: Bytes::copy_from_slice(packet.data().unwrap_or(&[])),
            pts,
            dts,
            key: true,
            duration,
            time_base: self.time_base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aac() -> AudioParams {
        AudioParams {
            stream_index: 1,
            ordinal: 0,
            codec: "aac".into(),
            sample_rate: 48_000,
            channels: 1,
            time_base: Rational::new(1, 90_000),
            extradata: Bytes::from_static(&[0x11, 0x88]),
            bit_rate: Some(69_000),
            frame_size: 1024,
            start_time: 900,
        }
    }

    #[test]
    fn frame_ticks_follow_the_time_base() {
        assert_eq!(aac().frame_ticks(), Some(1920));
        let mut p = aac();
        p.frame_size = 0;
        assert_eq!(p.frame_ticks(), None);
    }

    #[test]
    fn missing_timestamps_are_filled_in() {
        let mut s = AudioStamper::new(&aac());
        let mut packet = ff::Packet::copy(&[1, 2, 3]);
        let a = s.stamp(&packet);
        // No timestamps at all: the stream start, then previous + one frame.
        assert_eq!((a.pts, a.dts, a.duration, a.key), (900, 900, 1920, true));
        assert_eq!(&a.data[..], &[1, 2, 3]);
        let b = s.stamp(&packet);
        assert_eq!((b.pts, b.dts), (2820, 2820));
        packet.set_dts(Some(5000));
        let c = s.stamp(&packet);
        assert_eq!((c.pts, c.dts), (5000, 5000));
        packet.set_pts(Some(7000));
        packet.set_duration(100);
        let d = s.stamp(&packet);
        assert_eq!((d.pts, d.dts, d.duration), (7000, 5000, 100));
        packet.set_pts(None);
        packet.set_dts(None);
        assert_eq!(s.stamp(&packet).pts, 7100);
        s.reset();
        assert_eq!(s.stamp(&packet).pts, 900);
    }

    #[test]
    fn params_round_trip_through_json() {
        let p = aac();
        let json = serde_json::to_string(&p).expect("serialize");
        assert!(json.contains("\"extradata\":[17,136]"), "{json}");
        assert!(json.contains("\"time_base\":\"1/90000\""), "{json}");
        let back: AudioParams = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, p);
    }
}
