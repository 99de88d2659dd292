//! The error type of the codec layer.

use crate::frame::PixelLayout;

/// Everything that can go wrong while opening, demuxing, decoding, converting or encoding.
///
/// Variants about an input carry the input's URL (with any `user:password@` removed) and, where
/// FFmpeg reported the problem, FFmpeg's own error text.
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
    #[error("cannot open {url}: {message}")]
    Open {
        /// The input.
        url: String,
        /// FFmpeg's error text.
        message: String,
    },
    /// The input has no video stream (e.g. an audio-only file).
    #[error("{url}: no video stream")]
    NoVideoStream {
        /// The input.
        url: String,
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
    #[error("{url}: cannot open the {codec} decoder: {message}")]
    DecoderOpen {
        /// The input.
        url: String,
        /// The codec name.
        codec: String,
        /// FFmpeg's error text.
        message: String,
    },
    /// Reading a packet from the input failed (I/O error, truncated data).
    #[error("{url}: read failed: {message}")]
    Read {
        /// The input.
        url: String,
        /// FFmpeg's error text.
        message: String,
    },
    /// The decoder failed in a way it cannot recover from.
    #[error("{url}: decoding failed: {message}")]
    Decode {
        /// The input (for a [`crate::PacketDecoder`], the text `packets`).
        url: String,
        /// FFmpeg's error text.
        message: String,
    },
    /// Seeking failed.
    #[error("{url}: seek failed: {message}")]
    Seek {
        /// The input.
        url: String,
        /// FFmpeg's error text or what went wrong.
        message: String,
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
    #[error("cannot convert {from} {from_width}x{from_height} to {to} {to_width}x{to_height}: {message}")]
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
        /// FFmpeg's error text.
        message: String,
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
    #[error("cannot open the {name} encoder: {message}")]
    EncoderOpen {
        /// The encoder's name.
        name: &'static str,
        /// FFmpeg's error text.
        message: String,
    },
    /// Encoding a frame failed.
    #[error("encoding failed: {message}")]
    Encode {
        /// FFmpeg's error text.
        message: String,
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
