//! Zero drift: a day of virtual time at 30000/1001 fps ends exactly where integer math puts it.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mpegcoder_pacer::{clock, Clock, Decision, Pacer, PacerConfig, TimeBase, Timing, VirtualClock};

/// 24 hours of 29.97 fps: frames 0 ..= 2_589_410 (the last is at 86399.98 s).
const FRAMES: i64 = 86_400 * 30_000 / 1001 + 1;

#[test]
fn a_day_at_ntsc_rate_has_zero_drift() {
    // The time base is one tick per 1/30000 s; a frame lasts 1001 ticks.
    let tb = TimeBase::new(1, 30_000);
    let config = PacerConfig::default().with_max_lead(Duration::ZERO);
    let mut pacer = Pacer::new(config, tb).unwrap();
    let vclock = VirtualClock::new();
    let t0 = vclock.now();
    pacer.start(t0);

    let mut sent = 0u64;
    for n in 0..FRAMES {
        clock::serve_blocking(&mut pacer, &vclock, n * 1001, n % 300 == 0, || sent += 1);
        if n % 100_003 == 0 {
            // Spot checks along the way: the deadline formula, floored to the nanosecond.
            let exact = u64::try_from(n).unwrap() * 1001 * 1_000_000_000 / 30_000;
            assert_eq!(vclock.elapsed(), Duration::from_nanos(exact), "frame {n}");
        }
    }

    // floor(2_589_410 · 1001 / 30000 s) = 86 399.980 333 333 s, to the nanosecond.
    let last = Duration::from_nanos(86_399_980_333_333);
    assert_eq!(vclock.elapsed(), last);
    assert_eq!(vclock.now(), t0 + last);
    // The next frame's deadline, computed afresh, is also exact.
    match pacer.schedule(FRAMES * 1001, false, vclock.now()) {
        Decision::Send(r) => {
            assert_eq!(r.due, t0 + Duration::from_nanos(86_400_013_700_000));
            assert_eq!(r.timing, Timing::OnTime);
        }
        Decision::Drop => panic!("an on-time frame was dropped"),
    }
    let stats = pacer.stats();
    assert_eq!(sent, u64::try_from(FRAMES).unwrap());
    assert_eq!((stats.late, stats.stalls, stats.rebases), (0, 0, 0));
    // Summing a per-frame sleep of the rounded frame duration (33 366 666 ns) would be off by
    // 1.7 ms after the same day: the test would see that.
    let summed = Duration::from_nanos(33_366_666 * (u64::try_from(FRAMES).unwrap() - 1));
    assert!(last - summed > Duration::from_millis(1));
}
