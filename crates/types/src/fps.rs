//! Frame-rate conversion by timestamps: the one schedule that both the pusher (`--fps`, drop or
//! repeat frames like ffmpeg's `-r`) and the puller (`target_fps`, drop only) use.

use crate::rational::{Rational, TimeBase};

/// The output schedule of a constant frame rate: slot `k` starts `k / rate` seconds after the
/// first frame's presentation time (the origin). Every slot time is computed from the origin,
/// never summed, so there is no drift; times are compared at nanosecond precision.
///
/// Two ways to use it:
/// - [`slots_before`](Self::slots_before) for a constant output rate: keep the latest frame;
///   when the next one arrives, the kept one fills every slot that starts before it (0 slots:
///   it is dropped; 2 or more: it is repeated). [`finish`](Self::finish) fills the slots up
///   to the end of the stream.
/// - [`keep`](Self::keep) for decimation: a frame is kept when a slot started at or before
///   it since the last kept frame (several slots collapse into one: frames are never
///   repeated). Timestamps rounded to milliseconds (FLV) wobble around the true times, so a
///   frame up to a quarter of a period (at most 2 ms) early still counts. A jump back by more
///   than three periods (a new stream, a timestamp reset) restarts the schedule there.
#[derive(Debug, Clone)]
pub struct FrameRateConverter {
    rate: Rational,
    /// Origin in nanoseconds of the input's timeline.
    origin_ns: Option<i128>,
    /// The next slot not yet consumed.
    next_slot: u64,
}

impl FrameRateConverter {
    /// A converter to `rate` frames per second; `None` when the rate is not valid.
    pub fn new(rate: Rational) -> Option<FrameRateConverter> {
        rate.is_valid().then_some(FrameRateConverter {
            rate,
            origin_ns: None,
            next_slot: 0,
        })
    }

    /// The output frame rate.
    pub fn rate(&self) -> Rational {
        self.rate
    }

    /// The output time base (one tick per output frame: `1 / rate`).
    pub fn output_time_base(&self) -> TimeBase {
        self.rate.invert()
    }

    /// Index of the next output slot.
    pub fn next_slot(&self) -> u64 {
        self.next_slot
    }

    /// Nanoseconds from the origin to the start of slot `k`, rounded down.
    fn slot_ns(&self, k: u64) -> i128 {
        // k < 2^64, 10^9 < 2^30, den < 2^32: the product fits in 126 bits.
        i128::from(k) * 1_000_000_000 * i128::from(self.rate.den) / i128::from(self.rate.num)
    }

    fn period_ns(&self) -> i128 {
        self.slot_ns(1).max(1)
    }

    /// Consumes the slots that start strictly before `pts` (ticks of `time_base`) and returns
    /// how many there were: the number of times the frame kept so far fills the output. The
    /// first call sets the origin at `pts` (and returns 0).
    pub fn slots_before(&mut self, pts: i64, time_base: TimeBase) -> u64 {
        let t = time_base.ticks_to_nanos(pts);
        let origin = *self.origin_ns.get_or_insert(t);
        let start = self.next_slot;
        while origin + self.slot_ns(self.next_slot) < t {
            self.next_slot += 1;
        }
        self.next_slot - start
    }

    /// The slots left before `end` (the end of the last frame), for the last frame kept.
    pub fn finish(&mut self, end: i64, time_base: TimeBase) -> u64 {
        if self.origin_ns.is_none() {
            return 0;
        }
        self.slots_before(end, time_base)
    }

    /// Decimation: whether to keep a frame presented at `pts` (ticks of `time_base`). See the
    /// type's docs.
    pub fn keep(&mut self, pts: i64, time_base: TimeBase) -> bool {
        let t = time_base.ticks_to_nanos(pts);
        let period = self.period_ns();
        let Some(origin) = self.origin_ns else {
            self.origin_ns = Some(t);
            self.next_slot = 1;
            return true;
        };
        let next = origin + self.slot_ns(self.next_slot);
        if t < next - 3 * period {
            // Presentation time jumped back: restart the schedule from this frame.
            self.origin_ns = Some(t);
            self.next_slot = 1;
            return true;
        }
        let tolerance = (period / 4).min(2_000_000);
        if t + tolerance < next {
            return false;
        }
        while origin + self.slot_ns(self.next_slot) <= t + tolerance {
            self.next_slot += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(num: u32, den: u32) -> FrameRateConverter {
        FrameRateConverter::new(Rational::new(num, den)).expect("valid rate")
    }

    /// Frames (by input index) in output order, with the converter's constant-rate use.
    fn constant_rate(
        c: &mut FrameRateConverter,
        pts: &[i64],
        tb: TimeBase,
        end: i64,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pending: Option<usize> = None;
        for (i, &p) in pts.iter().enumerate() {
            let n = c.slots_before(p, tb);
            if let Some(prev) = pending {
                out.extend(std::iter::repeat_n(prev, n as usize));
            }
            pending = Some(i);
        }
        if let Some(prev) = pending {
            out.extend(std::iter::repeat_n(prev, c.finish(end, tb) as usize));
        }
        out
    }

    #[test]
    fn constant_rate_drops_and_repeats_without_duplicating_time() {
        let tb = Rational::new(1, 30);
        // 30 fps → 10 fps keeps every third frame.
        let pts: Vec<i64> = (0..30).collect();
        let out = constant_rate(&mut conv(10, 1), &pts, tb, 30);
        assert_eq!(out, (0..30).step_by(3).collect::<Vec<_>>());
        // 30 fps → 60 fps shows every frame twice.
        let pts: Vec<i64> = (0..5).collect();
        let out = constant_rate(&mut conv(60, 1), &pts, tb, 5);
        assert_eq!(out, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
        // NTSC → 25 fps over 100 s: exactly 2500 output frames.
        let ntsc = Rational::new(1001, 30000);
        let pts: Vec<i64> = (0..2997).collect();
        let out = constant_rate(&mut conv(25, 1), &pts, ntsc, 2997);
        assert_eq!(out.len(), 2500);
    }

    fn kept(c: &mut FrameRateConverter, pts: impl IntoIterator<Item = i64>, den: u32) -> Vec<i64> {
        pts.into_iter()
            .filter(|&p| c.keep(p, Rational::new(1, den)))
            .collect()
    }

    #[test]
    fn thirty_to_ten_keeps_every_third_frame_exact_and_rounded() {
        // 90 kHz RTP timestamps: exact 3000 ticks per frame.
        let k = kept(&mut conv(10, 1), (0..300).map(|i| i * 3000), 90_000);
        assert_eq!(k.len(), 100);
        assert!(k.iter().enumerate().all(|(i, &p)| p == i as i64 * 9000));
        // Milliseconds rounded as FLV stores them: 0, 33, 67, 100, ...
        let ms: Vec<i64> = (0..300).map(|i| (i * 1000 + 15) / 30).collect();
        let k = kept(&mut conv(10, 1), ms.clone(), 1000);
        assert_eq!(k.len(), 100);
        assert!(k.iter().enumerate().all(|(i, &p)| p == ms[i * 3]));
    }

    #[test]
    fn never_more_than_the_target_and_no_drift() {
        // 30 → 29 fps over 10 s: 290 frames, within one.
        let k = kept(&mut conv(29, 1), (0..300).map(|i| i * 3000), 90_000);
        assert!((289..=291).contains(&k.len()), "{}", k.len());
        // 25 → 30 fps: nothing to drop, nothing duplicated.
        assert_eq!(
            kept(&mut conv(30, 1), (0..250).map(|i| i * 40), 1000).len(),
            250
        );
    }

    #[test]
    fn gaps_and_jumps_restart_the_schedule() {
        let mut c = conv(10, 1);
        let ms = Rational::MILLIS;
        // 0, then a 5 s gap: the frame after the gap is kept and the schedule goes on after it.
        assert!(c.keep(0, ms));
        assert!(c.keep(5000, ms));
        assert!(!c.keep(5050, ms));
        assert!(c.keep(5100, ms));
        // A jump back to 0: kept, and the schedule follows the new times.
        assert!(c.keep(0, ms));
        assert!(!c.keep(33, ms));
        assert!(c.keep(100, ms));
    }

    #[test]
    fn invalid_rates_are_refused() {
        assert!(FrameRateConverter::new(Rational::new(0, 1)).is_none());
        assert!(FrameRateConverter::new(Rational::new(30, 0)).is_none());
    }
}
