//! Example-based tests of the pacer's documented behaviour, one rule at a time.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mpegcoder_pacer::{
    clock, Clock, Decision, LatePolicy, Mode, Pacer, PacerConfig, PacerError, Rate, Release,
    TimeBase, Timing, VirtualClock,
};

const MS: Duration = Duration::from_millis(1);

fn origin() -> Instant {
    VirtualClock::new().now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn send(d: Decision) -> Release {
    match d {
        Decision::Send(r) => r,
        Decision::Drop => panic!("expected a send, got a drop"),
    }
}

/// A 30 fps stream on a 90 kHz clock.
fn rtp() -> TimeBase {
    TimeBase::new(1, 90_000)
}

const FRAME: i64 = 3000;

fn pacer(config: PacerConfig) -> Pacer {
    Pacer::new(config, rtp()).unwrap()
}

#[test]
fn deadlines_follow_timestamps_scaled_by_rate() {
    let t0 = origin();
    let tb = TimeBase::new(1, 15_360);
    for (rate, expected) in [
        (Rate::REAL_TIME, ms(1000)),
        (Rate::from_f64(2.0).unwrap(), ms(500)),
        (Rate::from_f64(0.5).unwrap(), ms(2000)),
    ] {
        let config = PacerConfig::default()
            .with_rate(rate)
            .with_mode(Mode::NonBlocking);
        let mut p = Pacer::new(config, tb).unwrap();
        p.start(t0);
        // The first timestamp need not be zero: deadlines count from it.
        assert_eq!(send(p.schedule(-7_000, true, t0)).due, t0);
        let r = send(p.schedule(-7_000 + 15_360, false, t0));
        assert_eq!(r.due, t0 + expected, "rate {rate}");
        assert_eq!(r.at, t0, "non-blocking releases at once");
    }
}

#[test]
fn blocking_releases_max_lead_early_and_never_before_start() {
    let t0 = origin();
    let mut p = pacer(PacerConfig::default().with_max_lead(ms(20)));
    p.start(t0);
    let first = send(p.schedule(0, true, t0));
    assert_eq!(
        (first.at, first.due, first.timing),
        (t0, t0, Timing::OnTime)
    );
    p.released(t0);
    let second = send(p.schedule(FRAME, false, t0 + MS));
    assert_eq!(second.due, t0 + Duration::from_nanos(33_333_333));
    assert_eq!(second.at, second.due - ms(20));
    assert_eq!(second.timing, Timing::OnTime);
}

#[test]
fn schedule_without_start_starts_at_its_now() {
    let t0 = origin() + ms(5);
    let mut p = pacer(PacerConfig::default());
    assert_eq!(p.start_instant(), None);
    assert_eq!(send(p.schedule(900, true, t0)).due, t0);
    assert_eq!(p.start_instant(), Some(t0));
}

#[test]
fn non_blocking_wait_ref_is_half_the_lead() {
    // mpegCoder's ServeFrame + waitRef: 30 frames pushed at once are one second ahead.
    let t0 = origin();
    let mut p = pacer(PacerConfig::default().with_mode(Mode::NonBlocking));
    p.start(t0);
    assert_eq!(p.wait_ref(t0), Duration::ZERO);
    for n in 0..31 {
        let r = send(p.schedule(n * FRAME, n == 0, t0));
        assert_eq!(r.at, t0);
        p.released(t0);
    }
    assert_eq!(p.lead(t0), ms(1000));
    assert_eq!(p.wait_ref(t0), ms(500));
    assert_eq!(p.wait_ref(t0 + ms(400)), ms(300));
    // Never negative: past the last deadline the lead is zero.
    assert_eq!(p.lead(t0 + ms(1500)), Duration::ZERO);
    assert_eq!(p.wait_ref(t0 + ms(1500)), Duration::ZERO);
}

#[test]
fn lead_counts_a_frame_only_once_it_may_have_left() {
    let t0 = origin();
    let mut p = pacer(PacerConfig::default().with_max_lead(ms(30)));
    p.start(t0);
    send(p.schedule(0, true, t0));
    p.released(t0);
    let r = send(p.schedule(30 * FRAME, false, t0)); // due in 1 s
    assert_eq!(r.at, t0 + ms(970));
    // Not yet released: the last sent frame is the first one, due at t0.
    assert_eq!(p.lead(t0 + ms(100)), Duration::ZERO);
    assert_eq!(p.lead(r.at - Duration::from_nanos(1)), Duration::ZERO);
    // From its release instant on it counts, even before it is reported.
    assert_eq!(p.lead(r.at), ms(30));
    p.released(t0 + ms(975));
    assert_eq!(p.lead(t0 + ms(975)), ms(25));
    assert_eq!(p.wait_ref(t0 + ms(975)), Duration::from_micros(12_500));
}

#[test]
fn initial_burst_releases_the_first_frames_at_once() {
    let t0 = origin();
    let mut p = pacer(
        PacerConfig::default()
            .with_initial_burst(ms(500))
            .with_max_lead(Duration::ZERO),
    );
    p.start(t0);
    let mut now = t0;
    for n in 0..30 {
        let r = send(p.schedule(n * FRAME, n == 0, now));
        let due_ms = n as u64 * 100 / 3;
        if due_ms <= 500 {
            assert_eq!(r.at, t0, "frame {n} is inside the burst");
            if n > 0 {
                assert_eq!(r.timing, Timing::Burst);
            }
        } else {
            assert_eq!(r.at, r.due, "frame {n} is paced");
            assert_eq!(r.timing, Timing::OnTime);
        }
        now = now.max(r.at);
        p.released(now);
    }
}

#[test]
fn slightly_late_frames_leave_at_once() {
    let t0 = origin();
    let mut p = pacer(PacerConfig::default());
    p.start(t0);
    send(p.schedule(0, true, t0));
    p.released(t0);
    let now = t0 + ms(150); // frame 1 is due at 33 ms: 117 ms late, threshold 200 ms
    let r = send(p.schedule(FRAME, false, now));
    assert_eq!(r.timing, Timing::Late);
    assert!(r.at <= now);
    p.released(now);
    // Exactly at the threshold is still just late ...
    let due = t0 + Duration::from_nanos(66_666_666);
    let r = send(p.schedule(2 * FRAME, false, due + ms(200)));
    assert_eq!((r.due, r.timing), (due, Timing::Late));
    p.released(due + ms(200));
    assert_eq!(p.stats().late, 2);
    assert_eq!(p.stats().stalls, 0);
    // ... one nanosecond more is a stall.
    let r = send(p.schedule(3 * FRAME, false, t0 + ms(300) + Duration::from_nanos(1)));
    assert_eq!(r.timing, Timing::CatchUp);
    assert_eq!(p.stats().stalls, 1);
}

#[test]
fn catch_up_after_a_stall_is_rate_bounded_and_ends_on_schedule() {
    let t0 = origin();
    let config = PacerConfig::default().with_max_lead(Duration::ZERO);
    let mut p = pacer(config);
    let vclock = VirtualClock::starting_at(t0);
    p.start(t0);
    for n in 0..10 {
        clock::serve_blocking(&mut p, &vclock, n * FRAME, n == 0, || ());
    }
    vclock.advance(ms(2000)); // a two-second stall
    let mut previous: Option<Release> = None;
    let mut previous_sent = vclock.now();
    let mut caught_up_at = None;
    for n in 10..3000 {
        let r = send(p.schedule(n * FRAME, n % 30 == 0, vclock.now()));
        vclock.sleep_until(r.at);
        p.released(vclock.now());
        if let Some(prev) = previous {
            if prev.timing == Timing::CatchUp || r.timing == Timing::CatchUp {
                // Stream advance over wall advance ≤ 21/20.
                let stream = (r.due - prev.due).as_nanos();
                let wall = (vclock.now() - previous_sent).as_nanos();
                assert!(
                    stream * 20 <= wall * 21,
                    "frame {n}: {stream} ns in {wall} ns"
                );
            }
        }
        if r.timing == Timing::OnTime && caught_up_at.is_none() {
            caught_up_at = Some(n);
        }
        if caught_up_at.is_some() {
            assert_eq!(r.timing, Timing::OnTime);
            assert_eq!(r.at, r.due);
        }
        previous = Some(r);
        previous_sent = vclock.now();
    }
    // Two seconds of backlog at 1.05×: 2 s · 21 = 42 s of stream, about 1260 frames.
    let caught = caught_up_at.expect("caught up");
    assert!(
        (1250..=1275).contains(&caught),
        "caught up at frame {caught}"
    );
    assert_eq!(p.stats().stalls, 1);
    assert_eq!(p.stats().dropped, 0);
    assert!(!p.is_catching_up());
}

#[test]
fn rebase_policy_restarts_the_clock_at_the_late_frame() {
    let t0 = origin();
    let mut p = pacer(
        PacerConfig::default()
            .with_max_lead(Duration::ZERO)
            .with_late_policy(LatePolicy::Rebase),
    );
    p.start(t0);
    for n in 0..5 {
        send(p.schedule(n * FRAME, n == 0, t0));
    }
    let late = t0 + ms(3000);
    let r = send(p.schedule(5 * FRAME, false, late));
    assert_eq!((r.at, r.due, r.timing), (late, late, Timing::Rebased));
    p.released(late);
    let next = send(p.schedule(6 * FRAME, false, late + MS));
    // Frame 6 keeps its distance from frame 5: 200 ms − floor(166.67 ms).
    assert_eq!(
        next.due,
        late + Duration::from_nanos(200_000_000 - 166_666_666)
    );
    assert_eq!(next.timing, Timing::OnTime);
    assert_eq!(p.stats().rebases, 1);
    assert_eq!(p.stats().stalls, 1);
}

#[test]
fn drop_policy_drops_up_to_the_next_key_frame_and_never_a_key_frame() {
    let t0 = origin();
    let mut p = pacer(
        PacerConfig::default()
            .with_max_lead(Duration::ZERO)
            .with_late_policy(LatePolicy::DropNonKey),
    );
    p.start(t0);
    send(p.schedule(0, true, t0));
    p.released(t0);
    let late = t0 + ms(1000);
    // Frame 1 is 967 ms late: dropped, and so is everything up to the next key frame, even
    // frames that would be on time.
    assert_eq!(p.schedule(FRAME, false, late), Decision::Drop);
    assert!(p.is_dropping());
    for n in 2..60 {
        assert_eq!(p.schedule(n * FRAME, false, late), Decision::Drop, "{n}");
    }
    // Key frame 60 is due at 2 s: on time, sent on schedule.
    let r = send(p.schedule(60 * FRAME, true, late));
    assert_eq!((r.at, r.timing), (t0 + ms(2000), Timing::OnTime));
    p.released(r.at);
    assert_eq!(p.stats().dropped, 59);

    // A late key frame is never dropped: the clock is re-based on it.
    let later = t0 + ms(9000);
    let r = send(p.schedule(61 * FRAME, true, later));
    assert_eq!((r.at, r.due, r.timing), (later, later, Timing::Rebased));
    assert!(!p.is_dropping());
}

#[test]
fn timestamp_discontinuities_never_move_deadlines_back() {
    let t0 = origin();
    let mut p = pacer(PacerConfig::default().with_mode(Mode::NonBlocking));
    p.start(t0);
    let frame = Duration::from_nanos(33_333_333);
    let mut dues = Vec::new();
    for n in 0..10 {
        dues.push(send(p.schedule(n * FRAME, n == 0, t0)).due);
    }
    // Backward jump: continues one interval (the last deadline step) after the last deadline.
    let back = send(p.schedule(2 * FRAME, false, t0)).due;
    assert_eq!(back, dues[9] + (dues[9] - dues[8]));
    // ... and the new segment runs from there.
    let next = send(p.schedule(3 * FRAME, false, t0)).due;
    assert_eq!(next, back + frame);
    // A forward step of exactly the threshold (3 s) is played as a gap.
    let gap = send(p.schedule(3 * FRAME + 3 * 90_000, false, t0)).due;
    assert_eq!(gap, next + ms(3000));
    // One tick more is a discontinuity: one interval (the last step, 3 s) after the last.
    let jump_ts = 3 * FRAME + 6 * 90_000 + 1;
    let jump = send(p.schedule(jump_ts, false, t0)).due;
    assert_eq!(jump, gap + ms(3000));
    // A step back by a single tick is a discontinuity too.
    let back_one = send(p.schedule(jump_ts - 1, false, t0)).due;
    assert_eq!(back_one, jump + ms(3000));
    assert_eq!(p.stats().discontinuities, 3);
    assert_eq!(p.stats().rebases, 3);
}

#[test]
fn explicit_rebase_for_a_loop_restart() {
    let t0 = origin();
    let mut p = pacer(PacerConfig::default().with_mode(Mode::NonBlocking));
    p.start(t0);
    let mut last = t0;
    for n in 0..30 {
        last = send(p.schedule(1000 + n * FRAME, n == 0, t0)).due;
    }
    p.rebase(Some(ms(40)));
    let restart = send(p.schedule(1000, true, t0)).due;
    assert_eq!(restart, last + ms(40));
    p.rebase(None); // gap: the last interval
    let again = send(p.schedule(1000, true, t0)).due;
    assert_eq!(again, restart + Duration::from_nanos(33_333_333));
    assert_eq!(p.stats().discontinuities, 0);
    assert_eq!(p.stats().rebases, 2);
}

#[test]
fn pause_freezes_playing_time_and_resume_shifts_deadlines() {
    let t0 = origin();
    let mut p = pacer(PacerConfig::default().with_max_lead(Duration::ZERO));
    p.start(t0);
    send(p.schedule(0, true, t0));
    p.released(t0);
    let r = send(p.schedule(30 * FRAME, false, t0));
    p.released(t0); // sent early: one second of lead
    p.pause(t0 + ms(200));
    assert!(p.is_paused());
    assert_eq!(p.lead(t0 + ms(200)), ms(800));
    assert_eq!(p.lead(t0 + ms(5000)), ms(800), "frozen while paused");
    p.resume(t0 + ms(5200));
    assert_eq!(p.start_instant(), Some(t0 + ms(5000)));
    assert_eq!(p.lead(t0 + ms(5200)), ms(800));
    let next = send(p.schedule(60 * FRAME, false, t0 + ms(5200)));
    assert_eq!(next.due, r.due + ms(5000) + ms(1000));
    assert_eq!(next.timing, Timing::OnTime);
}

#[test]
fn scheduling_while_paused_resumes() {
    let t0 = origin();
    let mut p = pacer(PacerConfig::default());
    p.start(t0);
    send(p.schedule(0, true, t0));
    p.pause(t0 + ms(10));
    let r = send(p.schedule(FRAME, false, t0 + ms(110)));
    assert!(!p.is_paused());
    assert_eq!(r.due, t0 + ms(100) + Duration::from_nanos(33_333_333));
}

#[test]
fn now_going_backwards_is_clamped() {
    let t0 = origin() + ms(1000);
    let mut p = pacer(PacerConfig::default().with_mode(Mode::NonBlocking));
    p.start(t0);
    let a = send(p.schedule(0, true, t0 + ms(50)));
    let b = send(p.schedule(FRAME, false, t0 - ms(500)));
    assert!(b.at >= a.at);
}

#[test]
fn extreme_inputs_do_not_panic_and_stay_ordered() {
    let t0 = origin();
    for (num, den) in [(1, 1), (u32::MAX, 1), (1, u32::MAX), (u32::MAX, u32::MAX)] {
        for policy in [
            LatePolicy::DEFAULT,
            LatePolicy::Rebase,
            LatePolicy::DropNonKey,
        ] {
            let config = PacerConfig::default()
                .with_rate(Rate::new(1, u32::MAX).unwrap())
                .with_late_policy(policy)
                .with_max_lead(Duration::MAX)
                .with_initial_burst(Duration::MAX)
                .with_late_threshold(Duration::MAX)
                .with_max_forward_jump(Duration::MAX);
            let mut p = Pacer::new(config, TimeBase::new(num, den)).unwrap();
            p.start(t0);
            let mut last: Option<Release> = None;
            for ts in [i64::MIN, i64::MAX, 0, i64::MAX, i64::MIN, -1, i64::MAX] {
                if let Decision::Send(r) = p.schedule(ts, true, t0) {
                    if let Some(l) = last {
                        assert!(r.due >= l.due && r.at >= l.at);
                    }
                    last = Some(r);
                }
                p.released(t0);
                assert_eq!(p.wait_ref(t0), p.lead(t0) / 2);
            }
            p.rebase(Some(Duration::MAX));
            p.pause(t0);
            p.resume(t0 + ms(1));
            let _ = p.schedule(0, false, t0);
        }
    }
}

#[test]
fn catch_up_must_be_faster_than_real_time() {
    for (num, den) in [(1, 1), (1, 2), (999, 1000)] {
        let config = PacerConfig::default().with_late_policy(LatePolicy::CatchUp {
            max_speed: Rate::new(num, den).unwrap(),
        });
        assert!(matches!(
            Pacer::new(config, rtp()),
            Err(PacerError::CatchUpTooSlow { .. })
        ));
    }
}

#[test]
fn virtual_clock_moves_only_when_told_or_slept_on() {
    let c = VirtualClock::new();
    let t = c.now();
    assert_eq!(c.now(), t);
    c.advance(ms(5));
    assert_eq!(c.now(), t + ms(5));
    c.sleep_until(t + ms(3)); // in the past: no move
    assert_eq!(c.now(), t + ms(5));
    let shared = c.clone();
    shared.sleep_until(t + ms(50));
    assert_eq!(c.now(), t + ms(50));
    assert_eq!(c.elapsed(), ms(50));
}

#[test]
fn serve_blocking_does_not_call_send_for_a_drop() {
    let c = VirtualClock::new();
    let mut p = pacer(PacerConfig::default().with_late_policy(LatePolicy::DropNonKey));
    p.start(c.now());
    assert_eq!(clock::serve_blocking(&mut p, &c, 0, true, || 1), Some(1));
    c.advance(ms(1000));
    assert_eq!(clock::serve_blocking(&mut p, &c, FRAME, false, || 2), None);
    assert_eq!(p.stats().released, 1);
}

#[test]
fn monotonic_sleep_never_returns_before_its_deadline() {
    use mpegcoder_pacer::{MonotonicClock, SleepTail};
    for tail in [SleepTail::DEFAULT, SleepTail::NONE] {
        let c = MonotonicClock::with_tail(tail);
        for wait_us in [0, 300, 2_000] {
            let deadline = c.now() + Duration::from_micros(wait_us);
            c.sleep_until(deadline);
            assert!(c.now() >= deadline);
        }
        // A past deadline returns at once.
        let past = c.now();
        c.sleep_until(past);
        assert!(c.now() >= past);
    }
}
