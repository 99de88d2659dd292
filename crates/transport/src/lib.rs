//! Native Rust publishing of H.264 video over RTSP (RECORD) and RTMP (publish), and pulling it
//! back. This crate does not link FFmpeg: a user with their own encoder can use it alone.
//!
//! Modules:
//! - [`h264`]: Annex B / length-prefixed NAL units, avcC records, SPS facts, [`AccessUnit`].
//! - [`time`]: rational time bases and exact timestamp conversion.
#![forbid(unsafe_code)]

pub mod h264;
pub mod time;

pub use h264::{AccessUnit, VideoTrack};
pub use time::TimeBase;
