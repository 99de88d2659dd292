//! Several tracks on one timeline: the interleaver's order, and audio and video paced by one
//! pacer without drift, on virtual time.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mpegcoder_pacer::{
    Clock, Decision, Interleaver, Pacer, PacerConfig, TimeBase, Timing, VirtualClock,
};
use proptest::prelude::*;

/// Ticks of `tb` to nanoseconds, rounded to the nearest.
fn ns(ticks: i64, tb: (u32, u32)) -> i128 {
    let (num, den) = (i128::from(tb.0), i128::from(tb.1));
    (i128::from(ticks) * num * 1_000_000_000 * 2 + den).div_euclid(2 * den)
}

proptest! {
    /// Whatever order the tracks' units arrive in (each track in its own order), every unit
    /// comes out exactly once, each track's order is kept, and without a forced release the
    /// whole output is in timestamp order.
    #[test]
    fn interleaver_keeps_every_unit_and_the_order(
        steps in proptest::collection::vec((0usize..3, 0i128..50_000_000), 1..300),
        max_wait_ms in 0u64..3000,
        max_queued in 1usize..400,
    ) {
        let mut il = Interleaver::new(3, Duration::from_millis(max_wait_ms), max_queued);
        let mut next_ts = [0i128; 3];
        let mut out: Vec<(usize, i128, usize)> = Vec::new();
        for (n, (track, step)) in steps.iter().enumerate() {
            next_ts[*track] += step;
            il.push(*track, next_ts[*track], (*track, next_ts[*track], n));
            while let Some(u) = il.pop() {
                out.push(u);
            }
        }
        il.end_all();
        while let Some(u) = il.pop() {
            out.push(u);
        }
        prop_assert!(il.is_empty());
        let mut seen: Vec<usize> = out.iter().map(|u| u.2).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..steps.len()).collect::<Vec<_>>());
        for track in 0..3 {
            let ts: Vec<i128> = out.iter().filter(|u| u.0 == track).map(|u| u.1).collect();
            prop_assert!(ts.windows(2).all(|w| w[0] <= w[1]), "track {} reordered", track);
        }
        if il.forced() == 0 {
            prop_assert!(out.windows(2).all(|w| w[0].1 <= w[1].1), "{:?}", out);
        }
    }

    /// 48 kHz AAC (1024-sample frames) and video at any frame rate, each in its own time
    /// base, merged and paced on one nanosecond timeline: every unit is due exactly at
    /// `t0 + its time`, however long the stream (no drift between the tracks), and leaves no
    /// more than `max_lead` early.
    #[test]
    fn audio_and_video_on_one_timeline_do_not_drift(
        fps in prop_oneof![Just((30u32, 1u32)), Just((30000, 1001)), Just((25, 1)), Just((60, 1))],
        video_tb in prop_oneof![Just((1u32, 90_000u32)), Just((1, 15_360)), Just((1001, 30_000))],
        audio_rate in prop_oneof![Just(48_000u32), Just(44_100), Just(8_000)],
        seconds in 1u32..120,
    ) {
        let clock = VirtualClock::new();
        let t0 = clock.now();
        let mut pacer = Pacer::new(
            PacerConfig::default().with_max_backward_step(Duration::from_secs(1)),
            TimeBase::new(1, 1_000_000_000),
        ).unwrap();
        pacer.start(t0);
        let mut il = Interleaver::new(2, Duration::from_secs(5), 10_000);
        // Frame n of the video at n / fps, in ticks of its time base (rounded down, as a
        // muxer stores them); audio frame k at 1024 k samples.
        let video_ticks = |n: i64| {
            (i128::from(n) * i128::from(fps.1) * i128::from(video_tb.1)
                / (i128::from(fps.0) * i128::from(video_tb.0))) as i64
        };
        let frames = i64::from(seconds) * i64::from(fps.0) / i64::from(fps.1);
        let audio_frames = i64::from(seconds) * i64::from(audio_rate) / 1024;
        let (mut v, mut a) = (0i64, 0i64);
        let mut released = 0u64;
        let mut check = |pacer: &mut Pacer, clock: &VirtualClock, t: i128| -> Result<(), TestCaseError> {
            let Decision::Send(r) = pacer.schedule(i64::try_from(t).unwrap(), true, clock.now()) else {
                return Err(TestCaseError::fail("dropped"));
            };
            let due = r.due.duration_since(t0).as_nanos() as i128;
            prop_assert_eq!(due, t, "deadline of the unit at {} ns", t);
            prop_assert_ne!(r.timing, Timing::Rebased);
            clock.advance_to(r.at.max(clock.now()));
            let early = r.due.saturating_duration_since(clock.now());
            prop_assert!(early <= Duration::from_millis(10));
            pacer.released(clock.now());
            released += 1;
            Ok(())
        };
        let mut round = 0i128;
        while v < frames || a < audio_frames {
            // Feed them in file order: half a second of video, then half a second of audio
            // (as an MP4 stores them in chunks).
            round += 1;
            let until = round * 500_000_000;
            while v < frames && ns(video_ticks(v), video_tb) < until {
                let t = ns(video_ticks(v), video_tb);
                il.push(0, t, t);
                v += 1;
            }
            if v >= frames {
                il.end(0);
            }
            while a < audio_frames && ns(a * 1024, (1, audio_rate)) < until {
                let t = ns(a * 1024, (1, audio_rate));
                il.push(1, t, t);
                a += 1;
            }
            if a >= audio_frames {
                il.end(1);
            }
            while let Some(t) = il.pop() {
                check(&mut pacer, &clock, t)?;
            }
        }
        il.end_all();
        while let Some(t) = il.pop() {
            check(&mut pacer, &clock, t)?;
        }
        prop_assert_eq!(released, (frames + audio_frames) as u64);
        prop_assert_eq!(il.forced(), 0);
    }
}

/// Units a little out of order across tracks keep their own deadlines (they leave at once)
/// instead of re-basing the clock, when the backward step is within the tolerance; beyond
/// it, or with the default of zero, a step back is a discontinuity.
#[test]
fn small_backward_steps_keep_their_deadlines() {
    let t0 = Instant::now();
    let ms = |n: u64| Duration::from_millis(n);
    let tb = TimeBase::new(1, 1000);
    let mut p = Pacer::new(PacerConfig::default().with_max_backward_step(ms(100)), tb).unwrap();
    p.start(t0);
    let send = |p: &mut Pacer, ts: i64, now: Instant| match p.schedule(ts, true, now) {
        Decision::Send(r) => {
            p.released(now);
            r
        }
        Decision::Drop => panic!("dropped"),
    };
    assert_eq!(send(&mut p, 0, t0).due, t0);
    assert_eq!(send(&mut p, 40, t0 + ms(30)).due, t0 + ms(40));
    // Audio at 30 ms after video at 40 ms: due at 30 ms, already past, sent at once.
    let r = send(&mut p, 30, t0 + ms(31));
    assert_eq!(r.due, t0 + ms(30));
    assert_eq!(p.stats().discontinuities, 0);
    // The next video keeps the original mapping.
    assert_eq!(send(&mut p, 80, t0 + ms(70)).due, t0 + ms(80));
    // 200 ms back is beyond the tolerance: a discontinuity, re-based after the last one.
    let r = send(&mut p, -120, t0 + ms(80));
    assert_eq!(p.stats().discontinuities, 1);
    assert!(r.due > t0 + ms(80));

    let mut strict = Pacer::new(PacerConfig::default(), tb).unwrap();
    strict.start(t0);
    send(&mut strict, 40, t0);
    send(&mut strict, 30, t0);
    assert_eq!(strict.stats().discontinuities, 1);
}

/// A timestamp jump in the source (both tracks jump together, forward by more than the
/// forward-jump threshold, or back) re-bases the one clock once: after it, audio and video
/// deadlines keep exactly the source's spacing against each other, with no stall and no
/// burst.
#[test]
fn a_jump_of_both_tracks_rebases_them_together() {
    let clock = VirtualClock::new();
    let t0 = clock.now();
    for jump_s in [30i128, -30] {
        let mut pacer = Pacer::new(
            PacerConfig::default().with_max_backward_step(Duration::from_secs(1)),
            TimeBase::new(1, 1_000_000_000),
        )
        .unwrap();
        pacer.start(t0);
        let mut il = Interleaver::new(2, Duration::from_secs(5), 10_000);
        // 4 s of 30 fps video and 48 kHz AAC; after 2 s both tracks jump by `jump_s`.
        let shift = |t: i128| {
            if t >= 2_000_000_000 {
                t + jump_s * 1_000_000_000
            } else {
                t
            }
        };
        for n in 0..120i128 {
            let t = n * 1_000_000_000 / 30;
            il.push(0, shift(t), ("v", t));
        }
        for k in 0..187i128 {
            let t = k * 1024 * 1_000_000_000 / 48_000;
            il.push(1, shift(t), ("a", t));
        }
        il.end_all();
        let mut dues = Vec::new();
        let mut pushed = Vec::new();
        while let Some((kind, t)) = il.pop() {
            pushed.push((kind, t));
        }
        // Pace in the order a reader would have handed them over: the interleaver's.
        for (kind, t) in &pushed {
            let ts = i64::try_from(shift(*t)).unwrap();
            let Decision::Send(r) = pacer.schedule(ts, true, clock.now()) else {
                panic!("dropped")
            };
            clock.advance_to(r.at.max(clock.now()));
            pacer.released(clock.now());
            dues.push((*kind, *t, r.due.duration_since(t0).as_nanos() as i128));
        }
        assert_eq!(pacer.stats().discontinuities, 1, "jump {jump_s} s");
        // Before and after the jump, every unit is due at its source time plus one constant
        // (zero before; the re-base's after), for both tracks alike.
        let offset = |after: bool| -> Vec<i128> {
            dues.iter()
                .filter(|(_, t, _)| (*t >= 2_000_000_000) == after)
                .map(|(_, t, due)| due - t)
                .collect()
        };
        for after in [false, true] {
            let o = offset(after);
            assert!(
                o.iter().all(|x| (x - o[0]).abs() <= 1),
                "jump {jump_s} s, after {after}: offsets {:?}",
                &o[..o.len().min(10)]
            );
        }
        // The re-base puts the first unit after the jump one frame interval after the last
        // one before it: no stall of the jump's length, no burst.
        let gap = offset(true)[0] - offset(false)[0];
        assert!(
            gap.abs() < 40_000_000,
            "jump {jump_s} s: re-based by {gap} ns"
        );
    }
}
