//! The pacing core: deadlines, release instants, late policies, discontinuities, pause.
//!
//! Everything here is a pure function of the calls made: `now` always comes in as an argument.
//! Internally every point in time is a signed nanosecond offset (`i128`) from the instant given
//! to [`Pacer::start`], and converted back to an `Instant` only on the way out.

use std::time::{Duration, Instant};

use crate::config::{LatePolicy, Mode, PacerConfig};
use crate::error::PacerError;
use crate::time::{duration_ns, instant_at, ns_duration, ns_since, Scale, TimeBase, NS_LIMIT};

/// Why a frame got the release instant it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timing {
    /// On schedule: released at its deadline minus at most `max_lead` (or at once in the
    /// non-blocking mode, where the caller is early or on time).
    OnTime,
    /// Within the initial burst after [`Pacer::start`]: released at once.
    Burst,
    /// Handed over after its deadline but within the late threshold: released at once.
    Late,
    /// Part of the backlog after a stall, spaced so the stream advances no faster than the
    /// catch-up speed bound.
    CatchUp,
    /// Late beyond the threshold; the clock was re-based so that this frame is due now.
    Rebased,
}

/// When a frame may leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Release {
    /// The instant the frame may be sent. It may already be past: then send it at once.
    pub at: Instant,
    /// The frame's deadline: the instant at which it plays, `t0 + (ts − ts0) / rate` after any
    /// re-basing. `at` is earlier by at most `max_lead` (plus the initial burst), or later when
    /// the frame is late or catching up.
    pub due: Instant,
    /// Why `at` is what it is.
    pub timing: Timing,
}

/// The pacer's answer for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a frame must be sent at its release instant, or dropped"]
pub enum Decision {
    /// Send the frame at [`Release::at`], then report [`Pacer::released`].
    Send(Release),
    /// Do not send the frame (only under [`LatePolicy::DropNonKey`]).
    Drop,
}

impl Decision {
    /// The release instant, or `None` for a dropped frame.
    #[must_use]
    pub fn release_at(&self) -> Option<Instant> {
        match self {
            Decision::Send(release) => Some(release.at),
            Decision::Drop => None,
        }
    }
}

/// Counters since the pacer was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacerStats {
    /// Frames passed to [`Pacer::schedule`].
    pub scheduled: u64,
    /// Frames known to have been sent: reported with [`Pacer::released`], or assumed sent
    /// when the next frame is scheduled.
    pub released: u64,
    /// Frames handed over after their deadline.
    pub late: u64,
    /// Frames handed over later than the late threshold that started a late-policy action
    /// (a catch-up run, a re-base, or a run of drops).
    pub stalls: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Re-bases of the clock, of every cause: late policy, timestamp discontinuity, explicit.
    pub rebases: u64,
    /// Timestamp discontinuities detected (backward steps, forward jumps beyond the threshold).
    pub discontinuities: u64,
    /// Largest lateness seen at [`Pacer::schedule`].
    pub max_lateness: Duration,
}

/// The current mapping of timestamps to deadlines: `base_ts` plays at `base_due`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    base_ts: i64,
    base_due: i128,
}

/// The last frame scheduled (sent or dropped).
#[derive(Debug, Clone, Copy)]
struct Seen {
    ts: i64,
    due: i128,
}

/// The last frame given a release instant and not yet reported as sent.
#[derive(Debug, Clone, Copy)]
struct Pending {
    due: i128,
    at: i128,
    scheduled: i128,
}

/// The last frame known to have been sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    due: i128,
    at: i128,
}

/// The gap between the last deadline and the first of a new segment.
#[derive(Debug, Clone, Copy)]
enum Gap {
    /// The last deadline step seen.
    LastInterval,
    /// A given length, in nanoseconds.
    Fixed(i128),
}

/// Everything that changes after construction; reset by [`Pacer::start`].
#[derive(Debug, Clone)]
struct State {
    /// Start of the stream, moved later by pauses.
    start: i128,
    /// Latest `now` seen: inputs going backwards are clamped to it.
    latest: i128,
    paused_at: Option<i128>,
    /// The initial burst window is still open (no re-base, no frame beyond it yet).
    burst_open: bool,
    segment: Option<Segment>,
    last: Option<Seen>,
    /// The last positive step between consecutive deadlines: the gap put after a re-base.
    interval: i128,
    /// An explicit re-base for the next frame.
    rebase_request: Option<Gap>,
    pending: Option<Pending>,
    sent: Option<Sent>,
    /// No frame may be released before this: the last release instant (given or reported).
    floor: i128,
    catching_up: bool,
    dropping: bool,
}

impl State {
    fn fresh(burst: bool) -> State {
        State {
            start: 0,
            latest: 0,
            paused_at: None,
            burst_open: burst,
            segment: None,
            last: None,
            interval: 0,
            rebase_request: None,
            pending: None,
            sent: None,
            floor: 0,
            catching_up: false,
            dropping: false,
        }
    }

    /// Moves every absolute time later by `shift` (a pause's length).
    fn shift(&mut self, shift: i128) {
        let later = |t: &mut i128| *t = t.saturating_add(shift).min(NS_LIMIT);
        later(&mut self.start);
        later(&mut self.floor);
        if let Some(segment) = &mut self.segment {
            later(&mut segment.base_due);
        }
        if let Some(last) = &mut self.last {
            later(&mut last.due);
        }
        if let Some(pending) = &mut self.pending {
            later(&mut pending.due);
            later(&mut pending.at);
            later(&mut pending.scheduled);
        }
        if let Some(sent) = &mut self.sent {
            later(&mut sent.due);
            later(&mut sent.at);
        }
    }
}

/// Decides when each frame of a timestamped stream may leave so that it plays in real time
/// (scaled by the rate) against a monotonic clock. See the crate documentation for the model.
///
/// The pacer never reads a clock: every method that needs the time takes `now`.
#[derive(Debug, Clone)]
pub struct Pacer {
    config: PacerConfig,
    time_base: TimeBase,
    /// Ticks to wall nanoseconds at the configured rate.
    wall: Scale,
    /// Ticks to stream nanoseconds (for the forward-jump threshold).
    stream: Scale,
    /// Wall time to the least wall time it may be sent in while catching up.
    catch_up: Scale,
    max_lead: i128,
    initial_burst: i128,
    late_threshold: i128,
    max_forward_jump: i128,
    max_backward_step: i128,
    anchor: Option<Instant>,
    state: State,
    stats: PacerStats,
}

impl Pacer {
    /// A pacer for timestamps in `time_base` ticks.
    ///
    /// # Errors
    ///
    /// [`PacerError::ZeroTimeBase`] if the time base has a zero part;
    /// [`PacerError::CatchUpTooSlow`] if the catch-up speed of the late policy is not faster
    /// than real time.
    pub fn new(config: PacerConfig, time_base: TimeBase) -> Result<Pacer, PacerError> {
        if !time_base.is_valid() {
            return Err(PacerError::ZeroTimeBase {
                num: time_base.num,
                den: time_base.den,
            });
        }
        let catch_up = match config.late_policy {
            LatePolicy::CatchUp { max_speed } => {
                if max_speed.num() <= max_speed.den() {
                    return Err(PacerError::CatchUpTooSlow {
                        num: max_speed.num(),
                        den: max_speed.den(),
                    });
                }
                Scale::slowed_by(max_speed)
            }
            LatePolicy::Rebase | LatePolicy::DropNonKey => Scale::new(1, 1),
        };
        let initial_burst = duration_ns(config.initial_burst);
        Ok(Pacer {
            config,
            time_base,
            wall: Scale::ticks_to_wall(time_base, config.rate),
            stream: Scale::ticks_to_stream(time_base),
            catch_up,
            max_lead: duration_ns(config.max_lead),
            initial_burst,
            late_threshold: duration_ns(config.late_threshold),
            max_forward_jump: duration_ns(config.max_forward_jump),
            max_backward_step: duration_ns(config.max_backward_step),
            anchor: None,
            state: State::fresh(initial_burst > 0),
            stats: PacerStats::default(),
        })
    }

    /// Marks the start: the first frame scheduled afterwards is due at `now`. Calling it again
    /// starts over (the timestamp mapping and all pending state are forgotten; the statistics
    /// are kept). If [`Pacer::schedule`] is called first, it starts the pacer at its `now`.
    pub fn start(&mut self, now: Instant) {
        self.anchor = Some(now);
        self.state = State::fresh(self.initial_burst > 0);
    }

    /// Decides when the frame with timestamp `ts` (in time-base ticks, given in send / DTS
    /// order) may leave, handed over at `now`.
    ///
    /// In the blocking mode, sleep until [`Release::at`] (e.g. with
    /// [`crate::clock::sleep_until`]), send, then call [`Pacer::released`]. In the non-blocking
    /// mode `at` is `now`: send at once and call [`Pacer::released`]. If `released` is not
    /// called, the frame counts as sent at `max(at, now)` when the next frame is scheduled.
    ///
    /// A paused pacer is resumed at `now` first.
    pub fn schedule(&mut self, ts: i64, is_key: bool, now: Instant) -> Decision {
        let anchor = match self.anchor {
            Some(anchor) => anchor,
            None => {
                self.start(now);
                now
            }
        };
        if self.state.paused_at.is_some() {
            self.resume(now);
        }
        let n = self.observe(now);
        self.settle_pending();
        self.stats.scheduled = self.stats.scheduled.saturating_add(1);

        let due = self.place(ts);
        let lateness = n.saturating_sub(due);
        if lateness > 0 {
            self.stats.late = self.stats.late.saturating_add(1);
            self.stats.max_lateness = self.stats.max_lateness.max(ns_duration(lateness));
        }
        let stalled = lateness > self.late_threshold;

        if self.state.dropping {
            if !is_key {
                return self.drop_frame();
            }
            self.state.dropping = false;
            if stalled {
                return self.rebase_and_send(anchor, n);
            }
        }

        let blocking = self.config.mode == Mode::Blocking;
        let (paced, burst) = self.paced(due);
        if self.state.catching_up {
            let spaced = self.spaced(due);
            if spaced > paced {
                return self.send(anchor, due, spaced, Timing::CatchUp);
            }
            // Back on schedule.
            self.state.catching_up = false;
        }

        if stalled {
            match self.config.late_policy {
                LatePolicy::CatchUp { .. } if blocking => {
                    self.count_stall();
                    self.state.catching_up = true;
                    let at = paced.max(self.spaced(due));
                    return self.send(anchor, due, at, Timing::CatchUp);
                }
                // The non-blocking mode cannot hold frames back: count it and send at once.
                LatePolicy::CatchUp { .. } => self.count_stall(),
                LatePolicy::Rebase => {
                    self.count_stall();
                    return self.rebase_and_send(anchor, n);
                }
                LatePolicy::DropNonKey => {
                    self.count_stall();
                    if !is_key {
                        self.state.dropping = true;
                        return self.drop_frame();
                    }
                    return self.rebase_and_send(anchor, n);
                }
            }
        }

        let (at, timing) = match (blocking, lateness > 0) {
            (true, true) => (paced, Timing::Late),
            (true, false) if burst => (paced, Timing::Burst),
            (true, false) => (paced, Timing::OnTime),
            (false, true) => (n, Timing::Late),
            (false, false) => (n, Timing::OnTime),
        };
        self.send(anchor, due, at, timing)
    }

    /// Reports that the frame of the last [`Decision::Send`] was actually sent at `now`.
    /// Keeps [`Pacer::lead`] exact and spaces a catch-up run from the real send times.
    /// Calling it twice, or after a drop, does nothing.
    pub fn released(&mut self, now: Instant) {
        if self.anchor.is_none() {
            return;
        }
        let n = self.observe(now);
        if let Some(pending) = self.state.pending.take() {
            self.record_sent(pending.due, n);
        }
    }

    /// How far the last sent frame is ahead of the playing time at `now`: its deadline minus
    /// `now` (minus the frozen playing time while paused), or zero when it is not ahead.
    /// A frame counts as sent once reported, or once its release instant has passed.
    #[must_use]
    pub fn lead(&self, now: Instant) -> Duration {
        let Some(anchor) = self.anchor else {
            return Duration::ZERO;
        };
        let mut n = ns_since(anchor, now);
        if let Some(paused_at) = self.state.paused_at {
            n = n.min(paused_at);
        }
        let due = match self.state.pending {
            Some(pending) if pending.at <= n => Some(pending.due),
            _ => self.state.sent.map(|sent| sent.due),
        };
        due.map_or(Duration::ZERO, |due| ns_duration(due.saturating_sub(n)))
    }

    /// Half of [`Pacer::lead`], never negative: how long a caller that paces itself (the
    /// non-blocking mode) should sleep before handing over the next frame. This is mpegCoder's
    /// `getParameter('waitRef')`.
    #[must_use]
    pub fn wait_ref(&self, now: Instant) -> Duration {
        self.lead(now) / 2
    }

    /// Freezes the playing time at `now`. Does nothing if not started or already paused.
    pub fn pause(&mut self, now: Instant) {
        if self.anchor.is_none() || self.state.paused_at.is_some() {
            return;
        }
        let n = self.observe(now);
        self.state.paused_at = Some(n);
    }

    /// Resumes after [`Pacer::pause`]: the start and every deadline move later by the length
    /// of the pause. Does nothing if not paused.
    pub fn resume(&mut self, now: Instant) {
        let Some(paused_at) = self.state.paused_at else {
            return;
        };
        let n = self.observe(now);
        self.state.paused_at = None;
        self.state.shift(n.saturating_sub(paused_at).max(0));
    }

    /// Re-bases the clock at the next scheduled frame, whatever its timestamp: that frame is
    /// due `gap` after the last frame's deadline (`None`: the last frame interval seen). For a
    /// loop restart, where timestamps start over. The late policy still applies to that frame.
    pub fn rebase(&mut self, gap: Option<Duration>) {
        self.state.rebase_request =
            Some(gap.map_or(Gap::LastInterval, |gap| Gap::Fixed(duration_ns(gap))));
    }

    /// The configuration given at construction.
    pub fn config(&self) -> &PacerConfig {
        &self.config
    }

    /// The time base of the timestamps.
    pub fn time_base(&self) -> TimeBase {
        self.time_base
    }

    /// Counters since construction.
    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    /// The start instant, moved later by pauses; `None` before [`Pacer::start`].
    pub fn start_instant(&self) -> Option<Instant> {
        self.anchor
            .map(|anchor| instant_at(anchor, self.state.start))
    }

    /// Whether [`Pacer::pause`] is in effect.
    pub fn is_paused(&self) -> bool {
        self.state.paused_at.is_some()
    }

    /// Whether a catch-up run after a stall is in progress.
    pub fn is_catching_up(&self) -> bool {
        self.state.catching_up
    }

    /// Whether frames are being dropped up to the next key frame.
    pub fn is_dropping(&self) -> bool {
        self.state.dropping
    }

    /// `now` as an offset from the start anchor, never earlier than a previous `now`.
    fn observe(&mut self, now: Instant) -> i128 {
        let n = self
            .anchor
            .map_or(0, |anchor| ns_since(anchor, now))
            .max(self.state.latest);
        self.state.latest = n;
        n
    }

    /// Counts the pending frame as sent at `max(at, scheduled)` if it was never reported.
    fn settle_pending(&mut self) {
        if let Some(pending) = self.state.pending.take() {
            self.record_sent(pending.due, pending.at.max(pending.scheduled));
        }
    }

    fn record_sent(&mut self, due: i128, at: i128) {
        self.state.sent = Some(Sent { due, at });
        self.state.floor = self.state.floor.max(at);
        self.stats.released = self.stats.released.saturating_add(1);
    }

    /// The deadline of `ts`, handling the first frame, explicit re-bases and discontinuities.
    fn place(&mut self, ts: i64) -> i128 {
        let request = self.state.rebase_request.take();
        let (segment, due) = match (self.state.segment, self.state.last) {
            (Some(segment), Some(last)) => {
                let step = i128::from(ts) - i128::from(last.ts);
                let jumped = (step < 0 && self.stream.floor(-step) > self.max_backward_step)
                    || self.stream.floor(step) > self.max_forward_jump;
                if request.is_some() || jumped {
                    if request.is_none() {
                        self.stats.discontinuities = self.stats.discontinuities.saturating_add(1);
                    }
                    self.stats.rebases = self.stats.rebases.saturating_add(1);
                    self.state.burst_open = false;
                    let gap = match request {
                        Some(Gap::Fixed(gap)) => gap,
                        Some(Gap::LastInterval) | None => self.state.interval,
                    };
                    let base_due = last.due.saturating_add(gap).min(NS_LIMIT);
                    (
                        Segment {
                            base_ts: ts,
                            base_due,
                        },
                        base_due,
                    )
                } else {
                    let offset = i128::from(ts) - i128::from(segment.base_ts);
                    let due = segment
                        .base_due
                        .saturating_add(self.wall.floor(offset))
                        .clamp(-NS_LIMIT, NS_LIMIT);
                    if due > last.due {
                        self.state.interval = due - last.due;
                    }
                    (segment, due)
                }
            }
            _ => (
                Segment {
                    base_ts: ts,
                    base_due: self.state.start,
                },
                self.state.start,
            ),
        };
        self.state.segment = Some(segment);
        self.state.last = Some(Seen { ts, due });
        due
    }

    /// The on-schedule release instant of a frame due at `due`, and whether the initial burst
    /// made it earlier than `due − max_lead`.
    fn paced(&mut self, due: i128) -> (i128, bool) {
        let mut earliest = due.saturating_sub(self.max_lead);
        let mut burst = false;
        if self.state.burst_open {
            if due.saturating_sub(self.state.start) <= self.initial_burst {
                burst = earliest > self.state.start;
                earliest = earliest.min(self.state.start);
            } else {
                self.state.burst_open = false;
            }
        }
        (earliest.max(self.state.floor), burst)
    }

    /// The earliest release that keeps a catch-up run within its speed bound: the last send
    /// plus the deadline step divided by the speed, rounded up.
    fn spaced(&self, due: i128) -> i128 {
        match self.state.sent {
            Some(sent) => sent
                .at
                .saturating_add(self.catch_up.ceil(due.saturating_sub(sent.due)))
                .min(NS_LIMIT),
            None => -NS_LIMIT,
        }
    }

    /// Shifts the mapping so that the current frame (the last placed) is due at `n`, and
    /// releases it at once.
    fn rebase_and_send(&mut self, anchor: Instant, n: i128) -> Decision {
        if let Some(last) = &mut self.state.last {
            let shift = n.saturating_sub(last.due).max(0);
            last.due = last.due.saturating_add(shift);
            if let Some(segment) = &mut self.state.segment {
                segment.base_due = segment.base_due.saturating_add(shift);
            }
        }
        self.state.burst_open = false;
        self.stats.rebases = self.stats.rebases.saturating_add(1);
        let due = self.state.last.map_or(n, |last| last.due);
        self.send(anchor, due, n, Timing::Rebased)
    }

    fn count_stall(&mut self) {
        self.stats.stalls = self.stats.stalls.saturating_add(1);
    }

    fn drop_frame(&mut self) -> Decision {
        self.stats.dropped = self.stats.dropped.saturating_add(1);
        Decision::Drop
    }

    fn send(&mut self, anchor: Instant, due: i128, at: i128, timing: Timing) -> Decision {
        let at = at.max(self.state.floor);
        self.state.floor = at;
        self.state.pending = Some(Pending {
            due,
            at,
            scheduled: self.state.latest,
        });
        Decision::Send(Release {
            at: instant_at(anchor, at),
            due: instant_at(anchor, due),
            timing,
        })
    }
}
