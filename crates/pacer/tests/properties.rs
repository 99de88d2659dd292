//! Property tests: the pacer against a naive reference model, driven by a simulated caller with
//! arbitrary frame rates, time bases, playback rates, timestamp jumps, call-time jitter,
//! stalls, pauses and loop restarts, on virtual time.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mpegcoder_pacer::{
    Clock, Decision, LatePolicy, Mode, Pacer, PacerConfig, Rate, TimeBase, Timing, VirtualClock,
};
use proptest::prelude::*;

const NANOS: i128 = 1_000_000_000;

/// How the next timestamp relates to the previous one.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The next frame of the frame-rate grid.
    Next,
    /// The same timestamp again.
    Repeat,
    /// Back by this many ticks (at least one).
    Back(u32),
    /// Forward by this much stream time (ms) on top of a normal step.
    Forward(u32),
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Frame {
        step: Step,
        key: bool,
        /// Caller's work before handing the frame over.
        work_us: u32,
        /// An extra stall before handing it over (usually zero).
        stall_ms: u32,
        /// How late the caller's sleep wakes up.
        overshoot_us: u32,
        /// Whether the caller reports the send with `released`.
        report: bool,
    },
    Pause(u32),
    Restart(Option<u32>),
}

#[derive(Debug, Clone)]
struct Scenario {
    tb: (u32, u32),
    /// Frames per second as a fraction.
    fps: (u32, u32),
    rate: (u32, u32),
    mode: Mode,
    max_lead_us: u32,
    burst_ms: u32,
    threshold_ms: u32,
    policy: LatePolicy,
    forward_jump_ms: u32,
    first_ts: i64,
    events: Vec<Event>,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        90 => Just(Step::Next),
        3 => Just(Step::Repeat),
        3 => (1u32..200_000).prop_map(Step::Back),
        4 => (0u32..10_000).prop_map(Step::Forward),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let frame = (
        step(),
        prop::bool::weighted(0.1),
        prop_oneof![1 => Just(0u32), 3 => 0u32..5_000],
        prop_oneof![92 => Just(0u32), 5 => 1u32..300, 3 => 300u32..4_000],
        0u32..300,
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(step, key, work_us, stall_ms, overshoot_us, report)| Event::Frame {
                step,
                key,
                work_us,
                stall_ms,
                overshoot_us,
                report,
            },
        );
    prop_oneof![
        96 => frame,
        2 => (0u32..3_000).prop_map(Event::Pause),
        2 => prop::option::of(0u32..500).prop_map(Event::Restart),
    ]
}

fn policy() -> impl Strategy<Value = LatePolicy> {
    prop_oneof![
        Just(LatePolicy::DEFAULT),
        (1u32..=100, 1u32..=100).prop_map(|(den, extra)| LatePolicy::CatchUp {
            max_speed: Rate::new(den + extra, den).unwrap(),
        }),
        Just(LatePolicy::Rebase),
        Just(LatePolicy::DropNonKey),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let tb = prop_oneof![
        Just((1u32, 90_000u32)),
        Just((1, 15_360)),
        Just((1, 1000)),
        Just((1001, 30_000)),
        (1u32..=1000, 1u32..=100_000),
    ];
    let fps = prop_oneof![
        Just((30_000u32, 1001u32)),
        Just((25, 1)),
        Just((24_000, 1001)),
        Just((60, 1)),
        (1u32..=1001).prop_flat_map(|den| (den * 5..=den * 120, Just(den))),
    ];
    let rate = prop_oneof![
        Just((1u32, 1u32)),
        Just((2, 1)),
        Just((1, 2)),
        (1u32..=8, 1u32..=8),
    ];
    let mode = prop_oneof![3 => Just(Mode::Blocking), 1 => Just(Mode::NonBlocking)];
    (
        (tb, fps, rate, mode),
        (
            prop_oneof![3 => 0u32..50_000, 1 => 0u32..300_000],
            prop_oneof![Just(0u32), 1u32..1_000],
            50u32..500,
            policy(),
            1_000u32..5_000,
        ),
        -(1i64 << 40)..(1i64 << 40),
        prop::collection::vec(event(), 1..250),
    )
        .prop_map(
            |(
                (tb, fps, rate, mode),
                (max_lead_us, burst_ms, threshold_ms, policy, forward_jump_ms),
                first_ts,
                events,
            )| Scenario {
                tb,
                fps,
                rate,
                mode,
                max_lead_us,
                burst_ms,
                threshold_ms,
                policy,
                forward_jump_ms,
                first_ts,
                events,
            },
        )
}

/// The reference model: the deadline rules written out naively, plus the caller's record.
#[derive(Debug, Default)]
struct Model {
    start: i128,
    seg_ts: i64,
    seg_due: i128,
    last_ts: Option<i64>,
    last_due: i128,
    interval: i128,
    restart: Option<Option<i128>>,
    rebased_once: bool,
    dropping: bool,
    /// Deadline and actual send time of the last frame sent.
    sent: Option<(i128, i128)>,
    /// Timing of the last frame sent.
    sent_timing: Option<Timing>,
    /// Largest release instant handed out so far.
    last_at: i128,
}

struct Check {
    s: Scenario,
    tb: TimeBase,
    max_lead: i128,
    burst: i128,
    threshold: i128,
    forward_jump: i128,
}

impl Check {
    /// Wall nanoseconds of a tick difference at the playback rate, floored.
    fn wall(&self, ticks: i128) -> i128 {
        let (n, d) = self.s.tb;
        let (rn, rd) = self.s.rate;
        (ticks * i128::from(n) * NANOS * i128::from(rd)).div_euclid(i128::from(d) * i128::from(rn))
    }

    /// Stream nanoseconds of a tick difference, floored.
    fn stream(&self, ticks: i128) -> i128 {
        let (n, d) = self.s.tb;
        (ticks * i128::from(n) * NANOS).div_euclid(i128::from(d))
    }

    /// Ticks of the frame-rate grid at frame `k`.
    fn grid(&self, k: i128) -> i128 {
        let (n, d) = self.s.tb;
        let (fn_, fd) = self.s.fps;
        (k * i128::from(fd) * i128::from(d)).div_euclid(i128::from(fn_) * i128::from(n))
    }

    fn catch_up_speed(&self) -> Option<(i128, i128)> {
        match self.s.policy {
            LatePolicy::CatchUp { max_speed } => {
                Some((i128::from(max_speed.num()), i128::from(max_speed.den())))
            }
            _ => None,
        }
    }

    fn run(&self) -> Result<(), TestCaseError> {
        let s = &self.s;
        let config = PacerConfig::default()
            .with_mode(s.mode)
            .with_rate(Rate::new(s.rate.0, s.rate.1).unwrap())
            .with_max_lead(Duration::from_micros(u64::from(s.max_lead_us)))
            .with_initial_burst(Duration::from_millis(u64::from(s.burst_ms)))
            .with_late_threshold(Duration::from_millis(u64::from(s.threshold_ms)))
            .with_late_policy(s.policy)
            .with_max_forward_jump(Duration::from_millis(u64::from(s.forward_jump_ms)));
        let blocking = s.mode == Mode::Blocking;
        let mut pacer = Pacer::new(config, self.tb).unwrap();
        let origin = VirtualClock::new().now();
        let at = |ns: i128| origin + Duration::from_nanos(u64::try_from(ns).unwrap());
        let since = |t: Instant| i128::try_from(t.duration_since(origin).as_nanos()).unwrap();
        pacer.start(origin);

        let mut m = Model::default();
        let mut now: i128 = 0;
        let mut frame: i128 = 0; // index on the frame-rate grid
        let mut offset: i128 = i128::from(s.first_ts); // added to the grid (jumps move it)
        let mut drops = 0u64;

        for (i, event) in s.events.iter().enumerate() {
            match *event {
                Event::Pause(ms) => {
                    let length = i128::from(ms) * 1_000_000;
                    let lead_before = pacer.lead(at(now));
                    pacer.pause(at(now));
                    prop_assert_eq!(pacer.lead(at(now + length)), lead_before, "frozen lead");
                    now += length;
                    pacer.resume(at(now));
                    prop_assert_eq!(pacer.lead(at(now)), lead_before, "lead after resume");
                    m.start += length;
                    m.seg_due += length;
                    m.last_due += length;
                    m.last_at += length;
                    if let Some((due, sent)) = m.sent {
                        m.sent = Some((due + length, sent + length));
                    }
                    continue;
                }
                Event::Restart(gap) => {
                    pacer.rebase(gap.map(|ms| Duration::from_millis(u64::from(ms))));
                    m.restart = Some(gap.map(|ms| i128::from(ms) * 1_000_000));
                    // Timestamps start over from the first one.
                    offset = i128::from(s.first_ts) - self.grid(frame);
                    continue;
                }
                Event::Frame { .. } => {}
            }
            let Event::Frame {
                step,
                key,
                work_us,
                stall_ms,
                overshoot_us,
                report,
            } = *event
            else {
                continue;
            };

            // The timestamp.
            let previous_ts = self.grid(frame) + offset;
            match step {
                Step::Next => frame += 1,
                Step::Repeat => {}
                Step::Back(ticks) => offset -= i128::from(ticks),
                Step::Forward(ms) => {
                    frame += 1;
                    let (n, d) = s.tb;
                    offset += i128::from(ms) * i128::from(d) / (1000 * i128::from(n));
                }
            }
            let ts = i64::try_from(if m.last_ts.is_none() {
                previous_ts
            } else {
                self.grid(frame) + offset
            })
            .unwrap();

            // The reference deadline.
            let mut due = match m.last_ts {
                None => {
                    // A restart before the first frame has nothing to continue from.
                    m.restart = None;
                    m.seg_ts = ts;
                    m.seg_due = m.start;
                    m.start
                }
                Some(last_ts) => {
                    let step_ticks = i128::from(ts) - i128::from(last_ts);
                    let jumped = ts < last_ts || self.stream(step_ticks) > self.forward_jump;
                    if let Some(gap) = m.restart.take().map(|gap| gap.unwrap_or(m.interval)) {
                        m.seg_ts = ts;
                        m.seg_due = m.last_due + gap;
                        m.rebased_once = true;
                        m.seg_due
                    } else if jumped {
                        m.seg_ts = ts;
                        m.seg_due = m.last_due + m.interval;
                        m.rebased_once = true;
                        m.seg_due
                    } else {
                        let due = m.seg_due + self.wall(i128::from(ts) - i128::from(m.seg_ts));
                        if due > m.last_due {
                            m.interval = due - m.last_due;
                        }
                        due
                    }
                }
            };
            prop_assert!(
                m.last_ts.is_none() || due >= m.last_due,
                "deadlines never go back"
            );
            m.last_ts = Some(ts);
            m.last_due = due;

            now += i128::from(work_us) * 1000 + i128::from(stall_ms) * 1_000_000;
            let lateness = now - due;
            let stalled = lateness > self.threshold;
            let decision = pacer.schedule(ts, key, at(now));
            let ctx = format!("event {i}, ts {ts}, now {now}, due {due}, {decision:?}");

            let release = match decision {
                Decision::Drop => {
                    prop_assert_eq!(s.policy, LatePolicy::DropNonKey, "{}", ctx);
                    prop_assert!(!key, "a key frame was dropped: {}", ctx);
                    prop_assert!(m.dropping || stalled, "drop without a stall: {}", ctx);
                    m.dropping = true;
                    drops += 1;
                    continue;
                }
                Decision::Send(release) => release,
            };
            let (rel_at, rel_due) = (since(release.at), since(release.due));
            if s.policy == LatePolicy::DropNonKey {
                prop_assert!(key || !(m.dropping || stalled), "should drop: {}", ctx);
                m.dropping = false;
            }

            // Re-basing on a late frame: only after a stall, and then it is due now.
            let rebase_expected = match s.policy {
                LatePolicy::Rebase => stalled,
                LatePolicy::DropNonKey => stalled && key,
                LatePolicy::CatchUp { .. } => false,
            };
            prop_assert_eq!(
                release.timing == Timing::Rebased,
                rebase_expected,
                "{}",
                ctx
            );
            if rebase_expected {
                m.seg_due += now - due;
                m.last_due = now;
                m.rebased_once = true;
                due = now;
            }
            prop_assert_eq!(rel_due, due, "deadline differs from the model: {}", ctx);

            // Release order: never before the previous release instant or actual send.
            let floor = m.last_at.max(m.sent.map_or(0, |(_, sent)| sent));
            prop_assert!(
                rel_at >= floor,
                "released before the previous frame: {}",
                ctx
            );

            if blocking {
                let in_burst = !m.rebased_once && due - m.start <= self.burst && self.burst > 0;
                let earliest = if in_burst {
                    (due - self.max_lead).min(m.start)
                } else {
                    due - self.max_lead
                };
                prop_assert!(rel_at >= earliest, "released too early: {}", ctx);
                let after_catch_up = m.sent_timing == Some(Timing::CatchUp);
                match release.timing {
                    Timing::OnTime | Timing::Burst | Timing::Late => {
                        // On schedule: exactly as early as allowed, no later.
                        prop_assert_eq!(rel_at, earliest.max(floor), "{}", ctx);
                        prop_assert!(!stalled, "a stall treated as on time: {}", ctx);
                        prop_assert_eq!(release.timing == Timing::Late, lateness > 0, "{}", ctx);
                        if lateness > 0 {
                            prop_assert!(rel_at <= now, "late frame held back: {}", ctx);
                        }
                    }
                    Timing::CatchUp => {
                        prop_assert!(self.catch_up_speed().is_some(), "{}", ctx);
                        prop_assert!(
                            stalled || after_catch_up,
                            "catch-up without a stall: {}",
                            ctx
                        );
                    }
                    Timing::Rebased => prop_assert_eq!(rel_at, now, "{}", ctx),
                    _ => prop_assert!(false, "unknown timing: {}", ctx),
                }
                if stalled && self.catch_up_speed().is_some() {
                    prop_assert_eq!(release.timing, Timing::CatchUp, "{}", ctx);
                }
                // Catch-up spacing, exactly: the last send plus the deadline step over the
                // speed, rounded up; a run ends only once that is no later than on schedule.
                if let (Some((num, den)), Some((prev_due, prev_sent))) =
                    (self.catch_up_speed(), m.sent)
                {
                    let spaced = prev_sent + ((due - prev_due) * den + num - 1).div_euclid(num);
                    if release.timing == Timing::CatchUp {
                        prop_assert_eq!(rel_at, earliest.max(floor).max(spaced), "{}", ctx);
                        prop_assert!(
                            stalled || spaced > earliest.max(floor),
                            "catch-up run not ended on schedule: {}",
                            ctx
                        );
                    } else if after_catch_up {
                        prop_assert!(spaced <= rel_at, "catch-up ended early: {}", ctx);
                    }
                }
            } else {
                prop_assert_eq!(rel_at, now, "non-blocking releases at once: {}", ctx);
            }

            // The caller: waits (blocking), sends, reports.
            let wakes = if blocking { rel_at.max(now) } else { now };
            // Before the send: the lead is the previous frame's, unless this one may leave.
            let shown = if rel_at <= now {
                Some(due)
            } else {
                m.sent.map(|(d, _)| d)
            };
            let lead = pacer.lead(at(now));
            prop_assert_eq!(lead, ns(shown.map_or(0, |d| (d - now).max(0))), "{}", ctx);
            prop_assert_eq!(pacer.wait_ref(at(now)), lead / 2);
            let sent = if report {
                let sent = wakes + i128::from(overshoot_us) * 1000;
                pacer.released(at(sent));
                sent
            } else {
                wakes
            };
            now = sent;

            // Catch-up speed bound, measured on the actual send times.
            if let (Some((num, den)), Some((prev_due, prev_sent))) = (self.catch_up_speed(), m.sent)
            {
                if release.timing == Timing::CatchUp || m.sent_timing == Some(Timing::CatchUp) {
                    prop_assert!(
                        (due - prev_due) * den <= (sent - prev_sent) * num,
                        "catch-up faster than {}/{}: {} ns of stream in {} ns, {}",
                        num,
                        den,
                        due - prev_due,
                        sent - prev_sent,
                        ctx
                    );
                }
            }
            m.sent = Some((due, sent));
            m.sent_timing = Some(release.timing);
            m.last_at = m.last_at.max(rel_at);

            // After the send: lead = deadline − now, wait_ref = lead / 2.
            let lead = pacer.lead(at(now));
            prop_assert_eq!(lead, ns((due - now).max(0)), "{}", ctx);
            prop_assert_eq!(pacer.wait_ref(at(now)), lead / 2);
            if !blocking {
                // A self-pacing caller sleeps for wait_ref, as mpegCoder's examples do.
                now += i128::try_from(pacer.wait_ref(at(now)).as_nanos()).unwrap();
            }
        }
        prop_assert_eq!(pacer.stats().dropped, drops);
        Ok(())
    }
}

fn ns(n: i128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap())
}

fn ms_ns(ms: u32) -> i128 {
    i128::from(ms) * 1_000_000
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// The pacer agrees with the reference model on every deadline, and every release obeys
    /// the rules: not earlier than due − max_lead (or the burst), in order, on time when
    /// possible, late frames at once within the threshold, stalls per policy, catch-up within
    /// its speed bound, lead and wait_ref exact.
    #[test]
    fn pacer_matches_the_reference_model(s in scenario()) {
        let check = Check {
            tb: TimeBase::new(s.tb.0, s.tb.1),
            max_lead: i128::from(s.max_lead_us) * 1000,
            burst: ms_ns(s.burst_ms),
            threshold: ms_ns(s.threshold_ms),
            forward_jump: ms_ns(s.forward_jump_ms),
            s,
        };
        check.run()?;
    }

    /// Any input at all: no panic, release instants and deadlines never go back, and
    /// wait_ref is always half the lead.
    #[test]
    fn arbitrary_inputs_never_panic_and_stay_ordered(
        tb in (1u32.., 1u32..),
        rate in (1u32.., 1u32..),
        speed in (2u32.., 1u32..),
        policy_pick in 0u8..3,
        blocking in any::<bool>(),
        durations in prop::array::uniform4(prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::MAX),
            (0u64..10_000_000_000).prop_map(Duration::from_nanos),
        ]),
        calls in prop::collection::vec(
            (any::<i64>(), any::<bool>(), -1_000_000_000i64..5_000_000_000, 0u8..8),
            1..120,
        ),
    ) {
        let max_speed = Rate::new(speed.0.max(speed.1.saturating_add(1)), speed.1).unwrap();
        let late_policy = match policy_pick {
            0 => LatePolicy::CatchUp { max_speed },
            1 => LatePolicy::Rebase,
            _ => LatePolicy::DropNonKey,
        };
        let config = PacerConfig::default()
            .with_mode(if blocking { Mode::Blocking } else { Mode::NonBlocking })
            .with_rate(Rate::new(rate.0, rate.1).unwrap())
            .with_max_lead(durations[0])
            .with_initial_burst(durations[1])
            .with_late_threshold(durations[2])
            .with_late_policy(late_policy)
            .with_max_forward_jump(durations[3]);
        let mut pacer = Pacer::new(config, TimeBase::new(tb.0, tb.1)).unwrap();
        // Start a day into the virtual clock so that `now` can also go back before the start.
        let clock = VirtualClock::new();
        clock.advance(Duration::from_secs(86_400));
        let origin = clock.now();
        let mut now = origin;
        let mut last: Option<(Instant, Instant)> = None;
        for (ts, key, step_ns, action) in calls {
            let step = Duration::from_nanos(step_ns.unsigned_abs());
            now = if step_ns >= 0 { now + step } else { now - step };
            match action {
                0 => pacer.pause(now),
                1 => pacer.resume(now),
                2 => pacer.rebase(Some(step)),
                3 => pacer.start(origin),
                _ => {}
            }
            if action == 3 {
                last = None;
            }
            if let Decision::Send(r) = pacer.schedule(ts, key, now) {
                if let Some((at, due)) = last {
                    prop_assert!(r.at >= at, "release went back");
                    prop_assert!(r.due >= due, "deadline went back");
                }
                last = Some((r.at, r.due));
            }
            if action == 4 {
                pacer.released(now);
            }
            prop_assert_eq!(pacer.wait_ref(now), pacer.lead(now) / 2);
        }
    }
}
