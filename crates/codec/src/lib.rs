//! FFmpeg decoding and libx264 encoding.
