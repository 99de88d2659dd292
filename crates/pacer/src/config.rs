//! Pacer configuration: mode, rate, allowed lead, initial burst, late policy, jump threshold.

use std::time::Duration;

use crate::time::Rate;

/// Whether the pacer holds frames back or only accounts for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Each frame gets a release instant no earlier than its deadline minus
    /// [`PacerConfig::max_lead`]; the caller sleeps until then (mpegCoder's `ServeFrameBlock`).
    #[default]
    Blocking,
    /// Every frame may leave at once (the release instant is `now`); the pacer still records
    /// it, so [`crate::Pacer::lead`] and [`crate::Pacer::wait_ref`] tell a caller that paces
    /// itself how far ahead it is (mpegCoder's `ServeFrame` + `getParameter('waitRef')`).
    NonBlocking,
}

/// What happens to a frame handed over more than [`PacerConfig::late_threshold`] after its
/// deadline (after a stall of the decoder, the encoder, the network or the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePolicy {
    /// Keep every frame and every deadline; send the backlog no faster than `max_speed` times
    /// the playback rate until the stream is back on schedule. Only the blocking mode can hold
    /// frames back; in the non-blocking mode this policy sends at once and only counts the stall.
    CatchUp {
        /// Upper bound on the catch-up speed; must exceed 1 (default 21/20 = 1.05×).
        max_speed: Rate,
    },
    /// Shift the clock so that the late frame is due now: it leaves at once and the following
    /// frames keep their spacing from there. The stream falls behind by the stall, with no burst.
    Rebase,
    /// Drop the late frame if it is not a key frame, and every following frame up to the next
    /// key frame (those reference the dropped one, a decoder could not use them). That key frame
    /// is sent on schedule if it is on time, else the clock is re-based on it as with
    /// [`LatePolicy::Rebase`]. Key frames are never dropped.
    DropNonKey,
}

impl LatePolicy {
    /// The default policy: catch up at no more than 1.05× the playback rate.
    pub const DEFAULT: LatePolicy = LatePolicy::CatchUp {
        max_speed: Rate::CATCH_UP_DEFAULT,
    };
}

impl Default for LatePolicy {
    fn default() -> Self {
        LatePolicy::DEFAULT
    }
}

/// How a [`crate::Pacer`] paces. Start from [`PacerConfig::default`] and change what you need
/// with the `with_*` setters: `PacerConfig::default().with_rate(Rate::from_f64(2.0)?)`. The
/// fields stay public for reading and changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacerConfig {
    /// Blocking (hold frames until due) or non-blocking (account only). Default blocking.
    pub mode: Mode,
    /// Playback speed: a frame `Δts` after the first is due `Δts / rate` after the start.
    /// Default real time.
    pub rate: Rate,
    /// How long before its deadline a frame may leave in the blocking mode. Default 10 ms.
    pub max_lead: Duration,
    /// Frames due within this long of [`crate::Pacer::start`] leave at once (a buffer prefill
    /// for players). Default zero: no burst beyond `max_lead`.
    pub initial_burst: Duration,
    /// Frames later than this after their deadline are a stall and follow `late_policy`; frames
    /// less late leave at once. Default 200 ms.
    pub late_threshold: Duration,
    /// What to do after a stall. Default catch up at ≤ 1.05×.
    pub late_policy: LatePolicy,
    /// A timestamp step forward larger than this (in stream time, before `rate`) is a
    /// discontinuity and re-bases the clock instead of stalling the stream. Default 3 s.
    pub max_forward_jump: Duration,
    /// A timestamp step backward up to this long is not a discontinuity: the frame keeps its
    /// own deadline (earlier than the previous one, so it leaves at once). For several tracks
    /// paced on one timeline whose units come only roughly in order. Default zero: any step
    /// back is a discontinuity.
    pub max_backward_step: Duration,
}

impl PacerConfig {
    /// Default allowed lead of the blocking mode.
    pub const DEFAULT_MAX_LEAD: Duration = Duration::from_millis(10);
    /// Default lateness beyond which a frame counts as a stall.
    pub const DEFAULT_LATE_THRESHOLD: Duration = Duration::from_millis(200);
    /// Default largest forward timestamp step that is not a discontinuity.
    pub const DEFAULT_MAX_FORWARD_JUMP: Duration = Duration::from_secs(3);

    /// Sets blocking (hold frames until due) or non-blocking (account only) pacing.
    #[must_use]
    pub const fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the playback speed (1/1 = real time).
    #[must_use]
    pub const fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = rate;
        self
    }

    /// Sets how long before its deadline a frame may leave in the blocking mode.
    #[must_use]
    pub const fn with_max_lead(mut self, max_lead: Duration) -> Self {
        self.max_lead = max_lead;
        self
    }

    /// Sets the span after the start within which frames leave at once (zero: no burst).
    #[must_use]
    pub const fn with_initial_burst(mut self, initial_burst: Duration) -> Self {
        self.initial_burst = initial_burst;
        self
    }

    /// Sets the lateness beyond which a frame is a stall handled by the late policy.
    #[must_use]
    pub const fn with_late_threshold(mut self, late_threshold: Duration) -> Self {
        self.late_threshold = late_threshold;
        self
    }

    /// Sets what happens after a stall.
    #[must_use]
    pub const fn with_late_policy(mut self, late_policy: LatePolicy) -> Self {
        self.late_policy = late_policy;
        self
    }

    /// Sets the largest forward timestamp step (stream time) that is not a discontinuity.
    #[must_use]
    pub const fn with_max_forward_jump(mut self, max_forward_jump: Duration) -> Self {
        self.max_forward_jump = max_forward_jump;
        self
    }

    /// Sets the largest backward timestamp step (stream time) that is not a discontinuity.
    #[must_use]
    pub const fn with_max_backward_step(mut self, max_backward_step: Duration) -> Self {
        self.max_backward_step = max_backward_step;
        self
    }
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            mode: Mode::Blocking,
            rate: Rate::REAL_TIME,
            max_lead: PacerConfig::DEFAULT_MAX_LEAD,
            initial_burst: Duration::ZERO,
            late_threshold: PacerConfig::DEFAULT_LATE_THRESHOLD,
            late_policy: LatePolicy::DEFAULT,
            max_forward_jump: PacerConfig::DEFAULT_MAX_FORWARD_JUMP,
            max_backward_step: Duration::ZERO,
        }
    }
}
