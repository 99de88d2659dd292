//! FFmpeg decoding and libx264 encoding for mpegcoder: the only crate that links FFmpeg.
//!
//! - [`Decoder`]: frames of a file or URL in presentation order (RGB24 for users, YUV420P for
//!   the encoder), exact seeking ([`Decoder::extract_frame`],
//!   [`Decoder::extract_frame_by_time`]) and GOPs ([`Decoder::extract_gop`]). Its
//!   [`VideoParams`] are serializable, like the original mpegCoder's `configDict`.
//! - [`Demuxer`]: the stored H.264 packets and extradata, for passthrough without re-encoding;
//!   with an audio stream selected ([`OpenOptions::with_audio`], [`AudioSelection`]) also that
//!   stream's packets, interleaved in container order ([`Demuxer::next_media`]).
//! - Audio (AAC, MP3, Opus, G.711, ...) is never decoded: its packets pass through untouched,
//!   described by [`AudioParams`] (codec, sample rate, channels, AudioSpecificConfig). A
//!   [`Decoder`] with an audio stream selected queues the audio packets it reads while
//!   decoding the video ([`Decoder::take_audio_packets`]).
//! - [`Encoder`]: libx264 from decoder frames or RGB24 buffers; Annex B access units with SPS/PPS
//!   before the first frame and before every IDR. Configured by a plain [`EncoderConfig`].
//!   The preset, tune and profile are checked against libx264's names before it opens
//!   ([`X264Option`]).
//! - A local file that is cut short or damaged ends with [`CodecError::Damaged`] after its
//!   last complete frame, from the [`Decoder`] and the [`Demuxer`] alike, naming the frame.
//! - [`PacketDecoder`]: H.264 access units from the network back into frames.
//! - [`frame_md5`]: the per-frame MD5 that `ffmpeg -f framemd5` prints, to prove what arrived.
//!
//! FFmpeg's own log output is silenced (see [`set_ffmpeg_log_level`]). Bit rates are always
//! in bits per second.
//!
//! ```no_run
//! use mpegcoder_codec::{Decoder, DecoderOptions, Encoder, PixelLayout};
//!
//! # fn main() -> Result<(), mpegcoder_codec::CodecError> {
//! // Decode to YUV420P and re-encode with the source's parameters at 1 Mb/s.
//! let options = DecoderOptions::default().with_output(PixelLayout::Yuv420p);
//! let mut decoder = Decoder::open("input.mp4", options)?;
//! println!("{}x{} at {} fps", decoder.params().width, decoder.params().height,
//!          decoder.params().frame_rate);
//! let mut encoder = Encoder::new(decoder.encoder_config().with_bit_rate(1_000_000))?;
//! let sps_pps = encoder.extradata().clone();
//! # let _ = sps_pps;
//! while let Some(frame) = decoder.next_frame()? {
//!     for packet in encoder.encode(&frame)? {
//!         println!("pts {} dts {} key {} {} bytes", packet.pts, packet.dts, packet.key,
//!                  packet.data.len());
//!     }
//! }
//! for packet in encoder.finish()? {
//!     println!("pts {} dts {}", packet.pts, packet.dts);
//! }
//! # Ok(())
//! # }
//! ```

mod audio;
mod convert;
mod decoder;
mod encoder;
mod error;
mod ffi;
mod frame;
mod index;
mod input;
mod packet_decoder;
mod params;
mod rational;
mod x264;

pub use audio::{AudioParams, AudioSelection};
pub use decoder::{Decoder, DecoderOptions, Frames, Position};
pub use encoder::{EncodedPacket, Encoder, EncoderConfig};
pub use error::{CodecError, FfmpegError};
pub use frame::{frame_md5, yuv420p_md5, Frame, PixelLayout};
pub use index::{FrameIndex, IndexEntry};
pub use input::{DemuxedPacket, Demuxer, OpenOptions, PacketFormat};
pub use packet_decoder::{PacketDecoder, PacketDecoderOptions};
pub use params::{FrameCountSource, VideoParams};
pub use rational::{rescale, ParseRationalError, Rational};
pub use x264::{X264Option, X264_PRESETS, X264_PROFILES, X264_TUNES};

/// How much FFmpeg itself writes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FfmpegLogLevel {
    /// Nothing (the default: errors reach the caller as [`CodecError`]s).
    Quiet,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warning,
    /// Informational messages too.
    Info,
    /// Debugging output.
    Debug,
}

/// Sets FFmpeg's log level for the whole process (default [`FfmpegLogLevel::Quiet`]).
pub fn set_ffmpeg_log_level(level: FfmpegLogLevel) {
    use ffmpeg_next::util::log::{set_level, Level};
    input::init();
    set_level(match level {
        FfmpegLogLevel::Quiet => Level::Quiet,
        FfmpegLogLevel::Error => Level::Error,
        FfmpegLogLevel::Warning => Level::Warning,
        FfmpegLogLevel::Info => Level::Info,
        FfmpegLogLevel::Debug => Level::Debug,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    /// Decoders, encoders and their outputs can move to other threads (a decoder thread
    /// feeding an encoder through a queue).
    #[test]
    fn pipeline_types_are_send() {
        assert_send::<Decoder>();
        assert_send::<Demuxer>();
        assert_send::<DemuxedPacket>();
        assert_send::<AudioParams>();
        assert_send::<Encoder>();
        assert_send::<PacketDecoder>();
        assert_send::<Frame>();
        assert_send::<EncodedPacket>();
        assert_send::<VideoParams>();
        assert_send::<EncoderConfig>();
        assert_send::<CodecError>();
    }
}
