//! The small types every layer of mpegcoder shares, in one place: the codec, the pacer and the
//! transport crate all depend on this crate and on nothing else of the project, so the three
//! leaves stay independent of each other.
//!
//! - [`Rational`] (alias [`TimeBase`]): exact frame rates and time bases, and [`rescale`] of
//!   timestamps between time bases.
//! - [`FrameRateConverter`]: which frames to keep, drop or repeat to reach an output frame
//!   rate.
//! - [`Transport`]: how RTP travels for RTSP (TCP interleaved or UDP).
//! - [`redact_url`]: the one function that removes credentials and secrets from URLs before
//!   anything prints them.
//! - [`error_chain`]: an error and its causes on one line, as the command line prints them.
//!
//! std only; the `serde` feature adds (de)serialization of [`Rational`] and [`Transport`].
#![forbid(unsafe_code)]

mod chain;
mod fps;
mod rational;
mod redact;
mod transport;

pub use chain::error_chain;
pub use fps::FrameRateConverter;
pub use rational::{rescale, ParseRationalError, Rational, TimeBase};
pub use redact::{redact_url, Redacted};
pub use transport::{ParseTransportError, Transport};
