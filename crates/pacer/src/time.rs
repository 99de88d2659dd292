//! Rational time bases and rates, and exact scaling of tick counts into nanoseconds.
//!
//! All deadline arithmetic is integer: a tick difference is multiplied by a reduced fraction
//! `p / q` and floored, with intermediate products kept in 128 bits by splitting both the
//! multiplicand and the multiplier at the divisor. Results that cannot be represented saturate
//! at ±[`NS_LIMIT`] nanoseconds (about 40 trillion years), so no input can overflow or panic.

use std::fmt;
use std::time::{Duration, Instant};

use crate::error::PacerError;

/// Nanoseconds in one second.
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Saturation bound of every internal nanosecond value: ±2^100 ns. Far beyond any `Instant`,
/// and small enough that sums and differences of two such values never overflow `i128`.
pub(crate) const NS_LIMIT: i128 = 1 << 100;

/// The time base of timestamps: the one shared [`mpegcoder_types::TimeBase`].
pub use mpegcoder_types::TimeBase;

/// A speed as an exact fraction `num / den`, always kept reduced: 1/1 plays in real time, 2/1
/// twice as fast, 1/2 at half speed. Used both for the playback rate and for the catch-up speed
/// bound of [`crate::LatePolicy::CatchUp`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    num: u32,
    den: u32,
}

impl Rate {
    /// Real time (1/1).
    pub const REAL_TIME: Rate = Rate { num: 1, den: 1 };
    /// The default catch-up speed bound, 21/20 = 1.05×.
    pub const CATCH_UP_DEFAULT: Rate = Rate { num: 21, den: 20 };

    /// The rate `num / den`, reduced to lowest terms.
    ///
    /// # Errors
    ///
    /// [`PacerError::ZeroRate`] if either part is zero.
    pub fn new(num: u32, den: u32) -> Result<Rate, PacerError> {
        if num == 0 || den == 0 {
            return Err(PacerError::ZeroRate { num, den });
        }
        let g = gcd_u128(u128::from(num), u128::from(den));
        // `g` divides both, so the quotients fit back into u32.
        let num = u32::try_from(u128::from(num) / g).unwrap_or(num);
        let den = u32::try_from(u128::from(den) / g).unwrap_or(den);
        Ok(Rate { num, den })
    }

    /// The rate nearest to `speed` in thousandths (`1.05` becomes 21/20, `0.5` becomes 1/2).
    ///
    /// # Errors
    ///
    /// [`PacerError::RateOutOfRange`] for non-finite or non-positive values, values that round
    /// to zero, and values above `u32::MAX / 1000`.
    pub fn from_f64(speed: f64) -> Result<Rate, PacerError> {
        let out_of_range = PacerError::RateOutOfRange { value: speed };
        if !speed.is_finite() || speed <= 0.0 {
            return Err(out_of_range);
        }
        let thousandths = (speed * 1000.0).round();
        if !(1.0..=f64::from(u32::MAX)).contains(&thousandths) {
            return Err(out_of_range);
        }
        // In range and integral, so the conversion is exact.
        let thousandths = thousandths as u32;
        Rate::new(thousandths, 1000)
    }

    /// Numerator of the reduced fraction.
    pub const fn num(self) -> u32 {
        self.num
    }

    /// Denominator of the reduced fraction.
    pub const fn den(self) -> u32 {
        self.den
    }

    /// The rate as a float, for display.
    #[must_use]
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

impl Default for Rate {
    fn default() -> Self {
        Rate::REAL_TIME
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

fn gcd_u128(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        let r = a % b;
        a = b;
        b = r;
    }
    a.max(1)
}

/// Multiplication by the exact fraction `p / q` (`q < 2^64`), with floor or ceiling rounding
/// and saturation at ±[`NS_LIMIT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scale {
    p: u128,
    q: u128,
}

impl Scale {
    /// `p / q` reduced. A zero `q` is treated as 1 (callers never pass one).
    pub(crate) fn new(p: u128, q: u128) -> Scale {
        let q = q.max(1);
        let g = gcd_u128(p, q);
        Scale { p: p / g, q: q / g }
    }

    /// Ticks of `time_base` to wall nanoseconds when played at `rate`:
    /// `ticks · (tb.num / tb.den) · 10^9 · (rate.den / rate.num)`.
    pub(crate) fn ticks_to_wall(time_base: TimeBase, rate: Rate) -> Scale {
        Scale::new(
            u128::from(time_base.num) * NANOS_PER_SEC * u128::from(rate.den),
            u128::from(time_base.den) * u128::from(rate.num),
        )
    }

    /// Ticks of `time_base` to stream nanoseconds (real time, whatever the playback rate).
    pub(crate) fn ticks_to_stream(time_base: TimeBase) -> Scale {
        Scale::new(
            u128::from(time_base.num) * NANOS_PER_SEC,
            u128::from(time_base.den),
        )
    }

    /// Wall time to the shortest wall time in which that much stream may be sent at `speed`:
    /// multiplication by `speed.den / speed.num`.
    pub(crate) fn slowed_by(speed: Rate) -> Scale {
        Scale::new(u128::from(speed.den), u128::from(speed.num))
    }

    /// `floor(x · p / q)`, saturated to ±[`NS_LIMIT`].
    pub(crate) fn floor(self, x: i128) -> i128 {
        let Some((magnitude, inexact)) = mul_div(x.unsigned_abs(), self.p, self.q) else {
            return if x < 0 { -NS_LIMIT } else { NS_LIMIT };
        };
        let magnitude = i128::try_from(magnitude).unwrap_or(NS_LIMIT).min(NS_LIMIT);
        if x < 0 {
            // floor(-m) is -m when exact and -(m + 1) otherwise.
            -(magnitude + i128::from(inexact)).min(NS_LIMIT)
        } else {
            magnitude
        }
    }

    /// `ceil(x · p / q)`, saturated to ±[`NS_LIMIT`].
    pub(crate) fn ceil(self, x: i128) -> i128 {
        -self.floor(x.saturating_neg())
    }
}

/// `floor(m · p / q)` and whether the division left a remainder, or `None` if the quotient
/// does not fit in 128 bits. Exact for every `m`, `p` and any `q < 2^64`: writing
/// `m = mq·q + mr` and `p = pq·q + pr`, `m·p/q = mq·p + mr·pq + mr·pr/q`, where only the last
/// term is fractional and `mr·pr < q² < 2^128`.
fn mul_div(m: u128, p: u128, q: u128) -> Option<(u128, bool)> {
    let q = q.max(1);
    let (mq, mr) = (m / q, m % q);
    let (pq, pr) = (p / q, p % q);
    let tail = mr.checked_mul(pr)?;
    let whole = mq
        .checked_mul(p)?
        .checked_add(mr.checked_mul(pq)?)?
        .checked_add(tail / q)?;
    Some((whole, tail % q != 0))
}

/// Signed nanoseconds from `anchor` to `t`, saturated to ±[`NS_LIMIT`].
pub(crate) fn ns_since(anchor: Instant, t: Instant) -> i128 {
    match t.checked_duration_since(anchor) {
        Some(ahead) => duration_ns(ahead),
        None => -duration_ns(anchor.saturating_duration_since(t)),
    }
}

/// A duration in nanoseconds as `i128`, saturated to [`NS_LIMIT`].
pub(crate) fn duration_ns(d: Duration) -> i128 {
    i128::try_from(d.as_nanos())
        .unwrap_or(NS_LIMIT)
        .min(NS_LIMIT)
}

/// A non-negative nanosecond count as a `Duration` (negative values give zero, values beyond
/// `u64::MAX` nanoseconds saturate there).
pub(crate) fn ns_duration(ns: i128) -> Duration {
    if ns <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// The instant `ns` nanoseconds after (or before, when negative) `anchor`. An offset the
/// platform's `Instant` cannot represent saturates to a representable instant in the same
/// direction (centuries away for any platform `Instant` based on 64-bit seconds).
pub(crate) fn instant_at(anchor: Instant, ns: i128) -> Instant {
    let mut offset = ns_duration(ns.saturating_abs());
    loop {
        let moved = if ns >= 0 {
            anchor.checked_add(offset)
        } else {
            anchor.checked_sub(offset)
        };
        match moved {
            Some(t) => return t,
            None if offset.is_zero() => return anchor,
            None => offset /= 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates_reduce_and_round_to_thousandths() {
        assert_eq!(Rate::new(42, 40).map(|r| (r.num(), r.den())), Ok((21, 20)));
        let r = Rate::from_f64(1.05).expect("1.05 is a valid rate");
        assert_eq!((r.num(), r.den()), (21, 20));
        let r = Rate::from_f64(0.5).expect("0.5 is a valid rate");
        assert_eq!((r.num(), r.den()), (1, 2));
        let r = Rate::from_f64(2.0).expect("2 is a valid rate");
        assert_eq!((r.num(), r.den()), (2, 1));
        assert!(Rate::from_f64(0.0004).is_err());
        assert!(Rate::from_f64(-1.0).is_err());
        assert!(Rate::from_f64(f64::NAN).is_err());
        assert!(Rate::from_f64(f64::INFINITY).is_err());
        assert!(Rate::from_f64(1e12).is_err());
        assert!(Rate::new(0, 1).is_err());
        assert!(TimeBase::checked(1, 0).is_none());
        assert!(matches!(
            crate::Pacer::new(crate::PacerConfig::default(), TimeBase::new(1, 0)),
            Err(PacerError::ZeroTimeBase { num: 1, den: 0 })
        ));
    }

    #[test]
    fn scaling_is_exact_for_ntsc() {
        // 1001/30000 s per frame in a 1/30000 time base, at real time.
        let s = Scale::ticks_to_wall(TimeBase::new(1, 30_000), Rate::REAL_TIME);
        assert_eq!(s.floor(1001), 33_366_666);
        assert_eq!(s.floor(-1001), -33_366_667);
        assert_eq!(s.ceil(1001), 33_366_667);
        assert_eq!(s.floor(30_000), 1_000_000_000);
    }

    #[test]
    fn extremes_saturate() {
        let s = Scale::ticks_to_wall(
            TimeBase::new(u32::MAX, 1),
            Rate::new(1, u32::MAX).expect("valid"),
        );
        assert_eq!(s.floor(i128::from(i64::MAX)), NS_LIMIT);
        assert_eq!(s.floor(i128::from(i64::MIN)), -NS_LIMIT);
        assert_eq!(s.floor(i128::MIN), -NS_LIMIT);
        assert_eq!(s.ceil(i128::MAX), NS_LIMIT);
        assert_eq!(s.floor(0), 0);
    }

    proptest! {
        #[test]
        fn mul_div_matches_direct_arithmetic(
            x in -(1i128 << 32)..(1i128 << 32),
            tb_num in 1u32..=u32::MAX,
            tb_den in 1u32..=u32::MAX,
            r_num in 1u32..=100_000,
            r_den in 1u32..=100_000,
        ) {
            // Small enough for the direct product to fit in i128: 32 + 32 + 30 + 17 bits.
            let tb = TimeBase::new(tb_num, tb_den);
            let rate = Rate::new(r_num, r_den).expect("non-zero");
            let s = Scale::ticks_to_wall(tb, rate);
            let p = i128::from(tb_num) * 1_000_000_000 * i128::from(rate.den());
            let q = i128::from(tb_den) * i128::from(rate.num());
            prop_assert_eq!(s.floor(x), (x * p).div_euclid(q));
            prop_assert_eq!(s.ceil(x), -(-x * p).div_euclid(q));
        }

        #[test]
        fn mul_div_is_exact_for_huge_values(
            x in any::<i64>(),
            tb_num in 1u32..=1000,
            tb_den in 1u32..=u32::MAX,
        ) {
            // Rate 1 and a small numerator: x·p fits in i128 for every i64 x.
            let s = Scale::ticks_to_wall(TimeBase::new(tb_num, tb_den), Rate::REAL_TIME);
            let p = i128::from(tb_num) * 1_000_000_000;
            let direct = (i128::from(x) * p).div_euclid(i128::from(tb_den));
            prop_assert_eq!(s.floor(i128::from(x)), direct.clamp(-NS_LIMIT, NS_LIMIT));
        }

        #[test]
        fn floor_is_monotonic(a in any::<i64>(), b in any::<i64>(), n in 1u32.., d in 1u32..) {
            let s = Scale::ticks_to_wall(TimeBase::new(n, d), Rate::REAL_TIME);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(s.floor(i128::from(lo)) <= s.floor(i128::from(hi)));
        }

        #[test]
        fn rate_from_f64_is_within_half_a_thousandth(speed in 0.001f64..1000.0) {
            let r = Rate::from_f64(speed).expect("in range");
            prop_assert!((r.as_f64() - speed).abs() <= 0.000_500_1);
        }

        #[test]
        fn rate_from_any_f64_never_panics(speed in any::<f64>()) {
            if let Ok(r) = Rate::from_f64(speed) {
                prop_assert!(r.num() > 0 && r.den() > 0);
            }
        }
    }
}
