//! Pacing of timestamped frames against a monotonic clock.
#![forbid(unsafe_code)]
