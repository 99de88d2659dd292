//! RTMP publishing of H.264 in FLV video tags, and of audio in FLV audio tags, over rml_rtmp.
//!
//! Layers, bottom up:
//! - [`flv`]: pure functions building FLV video tag bodies (AVC sequence header, NALU tags
//!   with composition times, end of sequence) and the tag timeline (negative-DTS shift,
//!   32-bit wrap); [`flv_audio`]: FLV audio tag bodies (AAC sequence header and raw frames,
//!   MP3, G.711).
//! - [`url`]: `rtmp://[user:pass@]host[:port]/app[/instance]/key[?query]` → `tcUrl`, app,
//!   stream key; credentials are never printed.
//! - `connect`: the handshake and `connect` step every RTMP client session starts with,
//!   shared by the publisher and the player.
//! - [`RtmpPublisherCore`]: the sans-IO session around rml_rtmp's `Handshake` and
//!   `ClientSession` — bytes in, bytes and events out, access units in, its own timeouts. No
//!   sockets, no clocks.
//! - [`RtmpPublisher`]: that core under the one session driver ([`crate::session`]).
//!
//! ```no_run
//! # async fn example(track: mpegcoder_transport::VideoTrack,
//! #                  frames: Vec<mpegcoder_transport::AccessUnit>)
//! #     -> Result<(), mpegcoder_transport::rtmp::RtmpError> {
//! use mpegcoder_transport::rtmp::{RtmpOptions, RtmpPublisher};
//! use mpegcoder_transport::session::Track;
//!
//! let tracks = [Track::H264(track)];
//! let mut publisher =
//!     RtmpPublisher::connect("rtmp://127.0.0.1/live/cam", &tracks, RtmpOptions::default())
//!         .await?;
//! for au in frames {
//!     publisher.send(au).await?; // pace before this call; send itself does not wait for time
//! }
//! let stats = publisher.close().await?; // confirmed by the server closing its side
//! println!("{} frames, {} bytes", stats.frames, stats.bytes_written);
//! # Ok(())
//! # }
//! ```
//!
//! rml_rtmp 0.8.0 is pinned: its sessions read the system clock for command timestamps and
//! its chunk serializer leaves 32-bit timestamp wrap to the caller, so this module passes
//! every media timestamp explicitly and wraps it itself (see [`flv::wire_timestamp`]).

pub(crate) mod connect;
mod driver;
#[cfg(test)]
mod driver_tests;
mod error;
pub mod flv;
pub mod flv_audio;
mod options;
pub mod session;
pub mod url;

pub use self::connect::RtmpStartError;
pub use self::driver::RtmpPublisher;
pub use self::error::{RtmpError, Step};
pub use self::options::RtmpOptions;
pub use self::session::{
    PublishEvent, PublishState, PublishStats, RefusedStep, RtmpPublisherCore, ServerRefusal,
    ServerStatus,
};
pub use self::url::{RtmpUrl, UrlError};
