//! One driver model for every publishing session, RTSP and RTMP alike.
//!
//! A session is a sans-IO core ([`SessionCore`]: [`RtspPublisherCore`](crate::rtsp::RtspPublisherCore),
//! [`RtmpPublisherCore`](crate::rtmp::RtmpPublisherCore)) driven by one tokio task that owns
//! the connection. The core takes bytes, media and the time as arguments and hands back bytes
//! to write, events and its next deadline; it never reads a clock or touches a socket, and
//! every timeout (a reply that does not come, a server that stops reading, a close that does
//! not finish) lives in it, so it is tested on virtual time. The task ([`Session`]) only moves
//! bytes and timers. The same rules hold for both protocols:
//!
//! - **Errors.** A media unit the session cannot carry ([`MediaError`]: no NAL unit, a NAL type
//!   RTP cannot carry, DTS going backwards, a composition time out of range) is refused by
//!   [`Session::send`] at once, before it is queued, and the session goes on. Anything else
//!   that goes wrong ends the session: `send` and [`Session::close`] return that error from
//!   then on. (A unit a core still refuses after the check, e.g. in-band parameter sets that
//!   do not parse, is dropped, counted in [`PublisherStats::media_errors`] and logged.)
//! - **`close`** ends the publish gracefully (RTSP: RTCP BYE, TEARDOWN; RTMP: end of sequence,
//!   `deleteStream`, then our side of the connection closed) and waits, bounded by the
//!   options' timeouts, until the server confirmed (the TEARDOWN reply; the server closing its
//!   side after reading everything). A drain that does not finish is an error naming the
//!   server and what it did not confirm.
//! - **Drop** without `close` does the same in the background while the runtime runs; its
//!   outcome is only logged.
//! - **Backpressure.** `send` waits while the session's queue is full (1 MiB by default); a
//!   server that stops reading fails the session after the write timeout.
//!
//! The driver loop, written out for a core of your own (this is what [`Session`] does):
//!
//! ```no_run
//! # use std::time::Instant;
//! # use mpegcoder_transport::session::{SessionCore, SessionEvent, Transmit};
//! # fn write_all(_: &[u8]) {}
//! # fn read_some() -> Option<Vec<u8>> { None }
//! # fn sleep_until(_: Instant) {}
//! // `now` is the driver's one clock read (the core never reads one).
//! fn drive<C: SessionCore>(core: &mut C, now: impl Fn() -> Instant) -> Result<(), C::Error> {
//!     loop {
//!         while let Some(event) = core.poll_event() {
//!             if matches!(event, SessionEvent::Closed) {
//!                 return Ok(());
//!             }
//!         }
//!         while let Some(t) = core.poll_transmit() {
//!             if let Transmit::Stream(chunks) = t {
//!                 let bytes = chunks.to_bytes();
//!                 write_all(&bytes);
//!                 core.handle_written(now(), bytes.len());
//!             }
//!         }
//!         // Wait for whichever comes first: bytes from the server, or the core's deadline.
//!         match read_some() {
//!             Some(data) => core.handle_input(now(), &data)?,
//!             None => {
//!                 if let Some(deadline) = core.poll_timeout() {
//!                     sleep_until(deadline);
//!                 }
//!                 core.handle_timeout(now())?;
//!             }
//!         }
//!     }
//! }
//! ```

mod check;
mod driver;
mod types;

pub use self::check::{MediaCheck, MediaError};
pub use self::driver::{Session, SessionIo, SessionStream, UdpPair};
pub use self::types::{
    Chunks, Media, ProtocolStats, PublisherStats, ReceptionReport, SessionEvent, Track, Transmit,
};

use std::time::{Duration, Instant};

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

/// A sans-IO publishing session. See the [module docs](self) for the rules every core
/// follows and the loop that drives it.
pub trait SessionCore: Send + 'static {
    /// The session's error: `Clone`, so that every later call can return the same failure.
    type Error: std::error::Error + Clone + Send + Sync + From<MediaError> + 'static;
    /// What the session negotiated, available once it is publishing.
    type Info: Clone + Send + Sync + 'static;

    /// Bytes read from the connection, in any split.
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), Self::Error>;

    /// A datagram received on our RTCP port (RTSP over UDP); other cores ignore it.
    fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        let _ = (now, data);
    }

    /// The server closed the connection (a read returned no bytes, or it was reset).
    fn handle_eof(&mut self, now: Instant) -> Result<(), Self::Error>;

    /// `bytes` more of the stream transmits were written to the connection.
    fn handle_written(&mut self, now: Instant, bytes: usize);

    /// Handles the deadline returned by [`poll_timeout`](Self::poll_timeout).
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error>;

    /// A socket operation failed: the core records the failure and returns it typed.
    fn handle_io_error(
        &mut self,
        now: Instant,
        during: &'static str,
        error: std::io::Error,
    ) -> Self::Error;

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next thing to write, in order.
    #[must_use]
    fn poll_transmit(&mut self) -> Option<Transmit>;

    /// The next event.
    #[must_use]
    fn poll_event(&mut self) -> Option<SessionEvent>;

    /// True when publishing and the send queue has room: [`send`](Self::send) accepts a unit.
    #[must_use]
    fn can_send(&self) -> bool;

    /// Queues one media unit for its track.
    fn send(&mut self, now: Instant, media: &Media) -> Result<(), Self::Error>;

    /// Starts the graceful end of the session; [`SessionEvent::Closed`] tells when it is over.
    fn close(&mut self, now: Instant) -> Result<(), Self::Error>;

    /// The error the session failed with, if it failed.
    #[must_use]
    fn failure(&self) -> Option<&Self::Error>;

    /// What the session negotiated, once publishing.
    #[must_use]
    fn info(&self) -> Option<Self::Info>;

    /// Counters so far, and what the server reported.
    #[must_use]
    fn publisher_stats(&self) -> PublisherStats;

    /// The error `send` returns once the session is over without a failure (after `close`).
    #[must_use]
    fn closed_error(&self) -> Self::Error;

    /// The URL of the session, credentials removed.
    #[must_use]
    fn url(&self) -> String;
}
