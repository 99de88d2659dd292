//! [`VideoParams`]: what a decoder knows about its video stream.

use serde::{Deserialize, Serialize};

use crate::Rational;

/// Where [`VideoParams::frame_count`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FrameCountSource {
    /// Stored in the container header (MP4 sample count): exact.
    Container,
    /// Counted by reading every packet of the stream ([`crate::Decoder::build_index`]): exact.
    Index,
    /// Duration times average frame rate: an estimate.
    Estimate,
    /// Not known (0).
    Unknown,
}

impl FrameCountSource {
    /// True for counts that are exact.
    #[must_use]
    pub fn is_exact(self) -> bool {
        matches!(self, FrameCountSource::Container | FrameCountSource::Index)
    }
}

/// Parameters of a video stream, serializable so they can cross threads and processes (the
/// original mpegCoder's `configDict`). [`crate::EncoderConfig::from_params`] turns them into an
/// encoder configuration.
///
/// All bit rates are in bits per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoParams {
    /// Coded width in pixels (before any `width_dst` scaling).
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Nominal frame rate (FFmpeg's `r_frame_rate`: the lowest rate that represents all
    /// timestamps); `0/1` when unknown.
    pub frame_rate: Rational,
    /// Average frame rate (frames / duration); differs from the nominal one for
    /// variable-frame-rate streams. `0/1` when unknown.
    pub avg_frame_rate: Rational,
    /// Seconds per tick of the stream's timestamps.
    pub time_base: Rational,
    /// Timestamp of the stream start in ticks of `time_base` (0 when unknown).
    pub start_time: i64,
    /// Duration in seconds, if the container knows it (or, after indexing, the frame count
    /// divided by the frame rate for streams without timestamps).
    pub duration_s: Option<f64>,
    /// Number of frames; see `frame_count_source` for how exact it is.
    pub frame_count: u64,
    /// Where `frame_count` comes from.
    pub frame_count_source: FrameCountSource,
    /// Codec name as FFmpeg spells it (`h264`, `hevc`, `mpeg4`, ...).
    pub codec: String,
    /// Bit rate in bits/s: the stream's, else the container's; `None` when unknown.
    pub bit_rate: Option<u64>,
    /// Pixel format name (`yuv420p`, ...).
    pub pixel_format: String,
    /// Largest distance between key frames, in frames. Known after indexing; `None` before.
    pub gop_size: Option<u32>,
    /// Most consecutive B-frames (frames shown before a frame decoded earlier). Measured by
    /// indexing; before that `Some(0)` when the stream declares no frame reordering, else
    /// `None`.
    pub max_b_frames: Option<u32>,
}

impl VideoParams {
    /// The best known frame rate: the nominal one, else the average, else 25/1.
    #[must_use]
    pub fn best_frame_rate(&self) -> Rational {
        if self.frame_rate.is_valid() {
            self.frame_rate
        } else if self.avg_frame_rate.is_valid() {
            self.avg_frame_rate
        } else {
            Rational::new(25, 1)
        }
    }
}
