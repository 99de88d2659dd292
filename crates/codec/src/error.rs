//! The error types of the codec layer: [`CodecError`] and FFmpeg's own [`FfmpegError`].

use std::fmt;

use crate::frame::PixelLayout;

/// An error code reported by FFmpeg, kept as the [`source`](std::error::Error::source) of a
/// [`CodecError`]. It displays as FFmpeg's own description of the code (e.g. "Invalid data
/// found when processing input").
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FfmpegError(ffmpeg_next::Error);

impl FfmpegError {
    /// Wraps an error of ffmpeg-next (kept private so that the public API does not depend on
    /// the ffmpeg-next version).
    pub(crate) fn new(e: ffmpeg_next::Error) -> FfmpegError {
        // FFmpeg's error texts are registered by its initialisation (done once).
        crate::input::init();
        FfmpegError(e)
    }

    /// The error of an FFmpeg error code (a negative `AVERROR` value), e.g.
    /// `AVERROR_INVALIDDATA`, for callers that build errors of their own.
    #[must_use]
    pub fn from_code(code: i32) -> FfmpegError {
        FfmpegError::new(ffmpeg_next::Error::from(std::ffi::c_int::from(code)))
    }

    /// FFmpeg's error code: a negative `AVERROR` value (`AVERROR(errno)` for system errors).
    #[must_use]
    pub fn code(&self) -> i32 {
        std::ffi::c_int::from(self.0)
    }
}

impl fmt::Display for FfmpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for FfmpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FfmpegError")
            .field("code", &self.code())
            .field("message", &self.0.to_string())
            .finish()
    }
}

impl std::error::Error for FfmpegError {}

/// Everything that can go wrong while opening, demuxing, decoding, converting or encoding.
///
/// Variants about an input carry the input's URL (with any `user:password@` removed). Where
/// FFmpeg reported the problem, its error is the [`source`](std::error::Error::source) (an
/// [`FfmpegError`]) and is not repeated in the message: print the source chain, e.g.
/// "cannot open clip.mp4: Invalid data found when processing input".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The input file does not exist.
    #[error("cannot open {url}: no such file or directory")]
    NotFound {
        /// The input.
        url: String,
    },
    /// The URL or path cannot be handed to FFmpeg (empty, not UTF-8, or contains a NUL byte).
    #[error("invalid input {url:?}: {reason}")]
    InvalidUrl {
        /// The input, lossily converted to text.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// FFmpeg could not open or recognise the input (not a media file, truncated header,
    /// network error, ...).
    #[error("cannot open {url}")]
    Open {
        /// The input.
        url: String,
        /// FFmpeg's error.
        source: FfmpegError,
    },
    /// The input opened, but its video stream cannot be used (e.g. it has no valid time
    /// base, or it changed when the input was reopened).
    #[error("{url}: unusable video stream: {reason}")]
    InvalidStream {
        /// The input.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The input has no video stream (e.g. an audio-only file).
    #[error("{url}: no video stream")]
    NoVideoStream {
        /// The input.
        url: String,
    },
    /// The audio stream asked for with [`crate::AudioSelection::Index`] does not exist.
    #[error("{url}: no audio stream {index} (the input has {})", audio_streams(*count))]
    NoAudioStream {
        /// The input.
        url: String,
        /// The requested ordinal among the audio streams.
        index: usize,
        /// Audio streams in the input.
        count: usize,
    },
    /// No FFmpeg decoder is available for the stream's codec.
    #[error("{url}: no decoder for codec {codec}")]
    UnsupportedCodec {
        /// The input.
        url: String,
        /// The codec name.
        codec: String,
    },
    /// The decoder could not be opened.
    #[error("{url}: cannot open the {codec} decoder")]
    DecoderOpen {
        /// The input.
        url: String,
        /// The codec name.
        codec: String,
        /// FFmpeg's error.
        source: FfmpegError,
    },
    /// Reading a packet from the input failed (I/O error, truncated data).
    #[error("{url}: read failed")]
    Read {
        /// The input.
        url: String,
        /// FFmpeg's error.
        source: FfmpegError,
    },
    /// A local input is cut short or damaged: the packet of frame `frame` could not be read
    /// whole (the demuxer flagged it corrupt), or the file ends before frames its index
    /// lists. Every frame before it was complete and has been returned; nothing after it is.
    /// Network inputs are not checked this way (a lost packet there is concealed by the
    /// decoder, as ffmpeg does).
    #[error("{url}: input is truncated or corrupt{} ({detail})", at_frame(*frame))]
    Damaged {
        /// The input.
        url: String,
        /// The first video frame that is not complete, counted from 0 in decoding (stored)
        /// order: the number of complete frames before it. `None` when it cannot be told
        /// (after a seek, in an input without an index).
        frame: Option<u64>,
        /// What is wrong, e.g. "only 599 of its 845 bytes could be read; the file ends at
        /// byte 60000".
        detail: String,
    },
    /// The decoder failed in a way it cannot recover from.
    #[error("{url}: decoding failed")]
    Decode {
        /// The input (for a [`crate::PacketDecoder`], the text `packets`).
        url: String,
        /// FFmpeg's error.
        source: FfmpegError,
    },
    /// FFmpeg could not seek in the input.
    #[error("{url}: seek failed")]
    Seek {
        /// The input.
        url: String,
        /// FFmpeg's error.
        source: FfmpegError,
    },
    /// After seeking, decoding did not reach the requested frame (the input is damaged or
    /// shorter than its index says).
    #[error("{url}: seek failed: {reason}")]
    SeekMissed {
        /// The input.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The input does not support the requested random access.
    #[error("{url}: cannot seek: {reason}")]
    NotSeekable {
        /// The input.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// A frame index past the end of the stream was requested.
    #[error("{url}: frame {index} is out of range (the stream has {frame_count} frames)")]
    FrameOutOfRange {
        /// The input.
        url: String,
        /// The requested frame.
        index: u64,
        /// Frames in the stream.
        frame_count: u64,
    },
    /// A time outside the stream was requested.
    #[error("{url}: time {seconds} s is out of range (the stream lasts {duration_s} s)")]
    TimeOutOfRange {
        /// The input.
        url: String,
        /// The requested time, seconds from the first frame.
        seconds: f64,
        /// Time from the first to the end of the last frame.
        duration_s: f64,
    },
    /// An argument or option is invalid.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument or option.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A frame size of zero (or too large for FFmpeg) was given.
    #[error("invalid frame size {width}x{height}")]
    InvalidFrameSize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A frame buffer does not have the size its layout and dimensions require.
    #[error("frame buffer has {actual} bytes, but {layout} {width}x{height} needs {expected}")]
    BufferSize {
        /// The pixel layout.
        layout: PixelLayout,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A frame of another size than the encoder was configured for was given to it.
    #[error("frame is {actual_width}x{actual_height}, but the encoder expects {expected_width}x{expected_height}")]
    FrameSizeMismatch {
        /// Configured source width.
        expected_width: u32,
        /// Configured source height.
        expected_height: u32,
        /// Width of the frame given.
        actual_width: u32,
        /// Height of the frame given.
        actual_height: u32,
    },
    /// A frame has a pixel layout that the operation does not accept.
    #[error("frame is {actual}, expected {expected}")]
    WrongLayout {
        /// The layout required.
        expected: PixelLayout,
        /// The layout given.
        actual: PixelLayout,
    },
    /// swscale cannot convert between the two formats or sizes.
    #[error("cannot convert {from} {from_width}x{from_height} to {to} {to_width}x{to_height}")]
    Scale {
        /// Source pixel format name.
        from: String,
        /// Source width.
        from_width: u32,
        /// Source height.
        from_height: u32,
        /// Destination pixel format name.
        to: String,
        /// Destination width.
        to_width: u32,
        /// Destination height.
        to_height: u32,
        /// FFmpeg's error.
        source: FfmpegError,
    },
    /// The encoder configuration is invalid.
    #[error("invalid encoder config: {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The encoder is not available in this FFmpeg build.
    #[error("encoder {name} is not available in this FFmpeg build")]
    EncoderNotFound {
        /// The encoder's name.
        name: &'static str,
    },
    /// libx264 refused the configuration.
    #[error("cannot open the {name} encoder")]
    EncoderOpen {
        /// The encoder's name.
        name: &'static str,
        /// FFmpeg's error.
        source: FfmpegError,
    },
    /// Encoding a frame failed.
    #[error("encoding failed")]
    Encode {
        /// FFmpeg's error.
        source: FfmpegError,
    },
    /// Frame timestamps given to the encoder must increase strictly.
    #[error("frame pts {pts} is not after the previous frame's pts {previous} (encoder time base {time_base})")]
    NonMonotonicPts {
        /// The offending pts, in the encoder time base.
        pts: i64,
        /// The previous frame's pts.
        previous: i64,
        /// The encoder time base.
        time_base: crate::Rational,
    },
    /// The encoder was used after [`crate::Encoder::finish`].
    #[error("the encoder has already been finished")]
    Finished,
}

/// " at frame 57", or nothing when the frame is not known.
fn at_frame(frame: Option<u64>) -> String {
    frame.map(|n| format!(" at frame {n}")).unwrap_or_default()
}

/// "no audio streams", "1 audio stream, number 0", "3 audio streams, numbered 0 to 2".
fn audio_streams(count: usize) -> String {
    match count {
        0 => "no audio streams".to_owned(),
        1 => "1 audio stream, number 0".to_owned(),
        n => format!("{n} audio streams, numbered 0 to {}", n - 1),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// The error and its sources joined by ": ", as a CLI prints them.
    fn one_line(e: &CodecError) -> String {
        let mut line = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            line.push_str(": ");
            line.push_str(&cause.to_string());
            next = cause.source();
        }
        line
    }

    #[test]
    fn ffmpeg_causes_are_sources_and_not_repeated() {
        let cause = FfmpegError::new(ffmpeg_next::Error::InvalidData);
        let text = "Invalid data found when processing input";
        assert_eq!(cause.to_string(), text);
        let url = || "clip.mp4".to_owned();
        let errors = [
            CodecError::Open {
                url: url(),
                source: cause,
            },
            CodecError::DecoderOpen {
                url: url(),
                codec: "h264".into(),
                source: cause,
            },
            CodecError::Read {
                url: url(),
                source: cause,
            },
            CodecError::Decode {
                url: url(),
                source: cause,
            },
            CodecError::Seek {
                url: url(),
                source: cause,
            },
            CodecError::Scale {
                from: "rgb24".into(),
                from_width: 2,
                from_height: 2,
                to: "yuv420p".into(),
                to_width: 2,
                to_height: 2,
                source: cause,
            },
            CodecError::EncoderOpen {
                name: "libx264",
                source: cause,
            },
            CodecError::Encode { source: cause },
        ];
        for e in &errors {
            let message = e.to_string();
            let source = e.source().expect("the FFmpeg error is the source");
            assert_eq!(source.downcast_ref::<FfmpegError>(), Some(&cause), "{e:?}");
            assert!(!message.contains(text), "said twice: {message}");
            assert_eq!(one_line(e), format!("{message}: {text}"));
        }
        assert_eq!(
            one_line(&errors[0]),
            "cannot open clip.mp4: Invalid data found when processing input"
        );
    }

    #[test]
    fn own_reasons_are_in_the_message_without_a_source() {
        let errors = [
            CodecError::InvalidUrl {
                url: "x".into(),
                reason: "empty",
            },
            CodecError::InvalidStream {
                url: "x.mp4".into(),
                reason: "it has no valid time base",
            },
            CodecError::SeekMissed {
                url: "x.mp4".into(),
                reason: "the stream ended at frame 3 before frame 9".into(),
            },
            CodecError::InvalidConfig {
                field: "gop_size",
                reason: "0 must be at least 1".into(),
            },
        ];
        for e in &errors {
            assert!(e.source().is_none(), "{e:?}");
        }
        assert_eq!(
            errors[1].to_string(),
            "x.mp4: unusable video stream: it has no valid time base"
        );
        let audio = |count| CodecError::NoAudioStream {
            url: "x.mp4".into(),
            index: 5,
            count,
        };
        assert_eq!(
            audio(2).to_string(),
            "x.mp4: no audio stream 5 (the input has 2 audio streams, numbered 0 to 1)"
        );
        assert_eq!(
            audio(1).to_string(),
            "x.mp4: no audio stream 5 (the input has 1 audio stream, number 0)"
        );
        assert_eq!(
            audio(0).to_string(),
            "x.mp4: no audio stream 5 (the input has no audio streams)"
        );
    }

    #[test]
    fn ffmpeg_error_keeps_its_code() {
        let e = FfmpegError::new(ffmpeg_next::Error::Other {
            errno: ffmpeg_next::util::error::ENOENT,
        });
        assert_eq!(e.code(), -ffmpeg_next::util::error::ENOENT);
        assert_eq!(e.to_string(), "No such file or directory");
        assert!(format!("{e:?}").contains("No such file or directory"));
        assert!(e.source().is_none());
    }
}
