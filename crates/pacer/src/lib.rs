//! Pacing of timestamped frames against a monotonic clock: decides *when* each frame of a
//! pushed stream may leave so that it plays in real time, without bursts, drift or stalls.
//! This is mpegCoder's `waitRef` / `ServeFrameBlock`, done with absolute integer deadlines.
//!
//! The core ([`Pacer`]) never reads a clock: every call takes `now: Instant`. Only the
//! [`clock`] module reads time ([`MonotonicClock`]) or simulates it ([`VirtualClock`]).
//!
//! # Deadlines
//!
//! Timestamps are integer ticks of a rational [`TimeBase`]; the playback [`Rate`] is an exact
//! fraction too. After [`Pacer::start`] at `t0`, with `ts0` the first timestamp scheduled,
//!
//! ```text
//! due(ts) = t0 + floor((ts − ts0) · tb.num · 10⁹ · rate.den / (tb.den · rate.num)) ns
//! ```
//!
//! Every deadline is computed from the segment base (`t0`, `ts0`), never from the previous
//! frame, with 128-bit integers (no floats, no summed sleeps): after any number of frames,
//! 30000/1001 fps included, a deadline is exactly where this formula puts it. Extreme inputs
//! saturate instead of overflowing.
//!
//! # Release
//!
//! [`Pacer::schedule`]`(ts, is_key, now)` returns a [`Decision`]: send at an absolute
//! [`Release::at`] (possibly already past: send at once), or drop.
//! - [`Mode::Blocking`]: `at = due − max_lead`, never before the previous frame's release and
//!   never before the start. The caller sleeps until `at` (e.g. [`clock::sleep_until`]), sends,
//!   and calls [`Pacer::released`]; [`clock::serve_blocking`] does all three.
//! - [`Mode::NonBlocking`]: `at = now`; the pacer records the frame so that
//!   [`Pacer::lead`] (how far the last sent frame's deadline is ahead of `now`) and
//!   [`Pacer::wait_ref`] (= lead / 2, mpegCoder's `waitRef`) stay true for a caller that sleeps
//!   by itself.
//! - [`PacerConfig::initial_burst`]: frames due within that long of the start leave at once
//!   (default zero: no burst beyond `max_lead`).
//!
//! # Late frames
//!
//! A frame handed over after its deadline but within [`PacerConfig::late_threshold`] leaves at
//! once. Later than that is a stall, and [`PacerConfig::late_policy`] decides:
//! - [`LatePolicy::CatchUp`] (default, ≤ 1.05×): deadlines are kept; the backlog is sent spaced
//!   so that the stream advances at most `max_speed` times as fast as the wall clock (measured
//!   from the actual send times), until it is back on schedule. Blocking mode only.
//! - [`LatePolicy::Rebase`]: the clock shifts so the late frame is due now; no backlog.
//! - [`LatePolicy::DropNonKey`]: non-key frames are dropped up to the next key frame, which is
//!   sent (re-basing the clock if it is still late).
//!
//! In the blocking mode no stall is ever followed by an unpaced burst of more than
//! `late_threshold` worth of stream (the frames that were late by less than that).
//!
//! # Several tracks
//!
//! Audio and video are paced by one pacer on one timeline (their timestamps in one time base,
//! e.g. nanoseconds), so they never drift apart. [`Interleaver`] merges the tracks into
//! timestamp order first; [`PacerConfig::max_backward_step`] lets units that come only roughly
//! in order keep their own deadlines instead of re-basing the clock.
//!
//! # Discontinuities and pause
//!
//! A timestamp lower than the previous one (by more than
//! [`PacerConfig::max_backward_step`], default zero), a step forward of more than
//! [`PacerConfig::max_forward_jump`] (stream time), or an explicit [`Pacer::rebase`] (loop
//! restart) starts a new segment: the frame is due one frame interval (or the given gap) after
//! the previous deadline, so deadlines never go backwards. [`Pacer::pause`] freezes the
//! playing time; [`Pacer::resume`] moves the start and every deadline later by the pause.
//!
//! # Blocking callers (threads)
//!
//! ```
//! use std::time::Duration;
//! use mpegcoder_pacer::{clock, Clock, Pacer, PacerConfig, TimeBase, VirtualClock};
//!
//! # fn main() -> Result<(), mpegcoder_pacer::PacerError> {
//! let clock = VirtualClock::new(); // MonotonicClock::new() in production
//! let mut pacer = Pacer::new(PacerConfig::default(), TimeBase::new(1, 90_000))?;
//! pacer.start(clock.now());
//! let mut sent = 0;
//! for n in 0..90 {
//!     // 30 fps on a 90 kHz clock: a frame every 3000 ticks.
//!     clock::serve_blocking(&mut pacer, &clock, n * 3000, n % 30 == 0, || sent += 1);
//! }
//! assert_eq!(sent, 90);
//! // The 90th frame is due 89/30 s after the start; it left max_lead (10 ms) early.
//! assert_eq!(clock.elapsed(), Duration::from_nanos(2_966_666_666) - Duration::from_millis(10));
//! # Ok(())
//! # }
//! ```
//!
//! # Async callers
//!
//! The crate is std only and never blocks by itself. Runtime timers are coarse (tokio's wheel
//! has 1 ms resolution and rounds up), so an async sender should take the release instant from
//! [`Pacer::schedule`], sleep with its runtime until [`clock::coarse_wake`]`(at, 2 ms)`, then
//! finish with a short yield loop, and report the send:
//!
//! ```text
//! let clock = MonotonicClock::new();
//! if let Decision::Send(r) = pacer.schedule(dts, key, clock.now()) {
//!     let wake = clock::coarse_wake(r.at, Duration::from_millis(2));
//!     tokio::time::sleep_until(wake.into()).await;
//!     while clock.now() < r.at {
//!         tokio::task::yield_now().await;
//!     }
//!     send(frame).await?;
//!     pacer.released(clock.now());
//! }
//! ```
//!
//! Or, without the yield loop, await [`sleep_until_async`]`(r.at)`: a future woken by one shared
//! timer thread that sleeps precisely (no runtime timer, no spinning).
//!
//! Alternatively run the sending loop on a dedicated thread with [`clock::sleep_until`].
#![forbid(unsafe_code)]

pub mod clock;
mod config;
mod error;
mod interleave;
mod pacer;
mod time;

pub use clock::{sleep_until_async, PreciseSleep};
pub use clock::{Clock, MonotonicClock, SleepTail, VirtualClock};
pub use config::{LatePolicy, Mode, PacerConfig};
pub use error::PacerError;
pub use interleave::Interleaver;
pub use pacer::{Decision, Pacer, PacerStats, Release, Timing};
pub use time::{Rate, TimeBase};
