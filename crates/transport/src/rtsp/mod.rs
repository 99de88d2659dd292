//! RTSP 1.0 (RFC 2326) publishing with ANNOUNCE / SETUP / RECORD.
//!
//! Two layers:
//! - [`RtspPublisherCore`]: the sans-IO session state machine. Bytes in
//!   ([`handle_input`](RtspPublisherCore::handle_input)), actions out
//!   ([`poll_transmit`](RtspPublisherCore::poll_transmit),
//!   [`poll_event`](RtspPublisherCore::poll_event),
//!   [`poll_timeout`](RtspPublisherCore::poll_timeout)), media in
//!   ([`send`](RtspPublisherCore::send)). It never reads a clock or touches a socket.
//! - [`RtspPublisher`]: that core under the one session driver ([`crate::session`]): a task
//!   owning the connection, fed through a bounded channel.
//!
//! What the publisher does, in order: OPTIONS (learns whether the server takes GET_PARAMETER
//! as a keepalive) → ANNOUNCE with the SDP of the track (RFC 6184 §8.2: packetization-mode=1,
//! profile-level-id, sprop-parameter-sets) → SETUP of `streamid=0` over TCP interleaved
//! (`interleaved=0-1`) or UDP (an even/odd `client_port` pair) → RECORD → RTP packets, RTCP
//! sender reports every 5 s and keepalives at half the session timeout → RTCP BYE →
//! TEARDOWN. Basic and Digest authentication (MD5, SHA-256, `qop=auth`) answer a 401 and are
//! reused for later requests. Credentials in the URL are never printed: URLs in errors,
//! `Display` and `Debug` have them removed.
//!
//! Key frames without in-band SPS/PPS get the track's SPS and PPS put in front (see
//! [`RtspOptions::prepend_parameter_sets`]), so a recorder or a late reader finds them in the
//! stream.
//!
//! ```no_run
//! # async fn demo(track: mpegcoder_transport::VideoTrack,
//! #               frames: Vec<mpegcoder_transport::AccessUnit>)
//! #               -> Result<(), mpegcoder_transport::rtsp::RtspError> {
//! use mpegcoder_transport::rtsp::{RtspOptions, RtspPublisher};
//! use mpegcoder_transport::{Track, Transport};
//!
//! let options = RtspOptions::default().with_transport(Transport::Tcp);
//! let tracks = [Track::H264(track)];
//! let mut publisher =
//!     RtspPublisher::connect("rtsp://user:pass@127.0.0.1:8554/cam", &tracks, options).await?;
//! for au in frames {
//!     publisher.send(au).await?; // waits only when the send queue is full
//! }
//! let stats = publisher.close().await?; // BYE, TEARDOWN, and its reply
//! println!("{} frames, {} bytes", stats.frames, stats.bytes);
//! # Ok(())
//! # }
//! ```

pub mod auth;
mod core;
mod driver;
pub mod error;
pub mod headers;
pub mod message;
pub mod sdp;
pub mod url;

pub use self::core::{
    ConnectionInfo, Negotiated, NegotiatedTransport, PublishStats, RtspOptions, RtspPublisherCore,
    State,
};
pub use driver::RtspPublisher;
pub use error::{Method, RtspError, StatusError, Step};
pub use url::{Credentials, RtspUrl};
