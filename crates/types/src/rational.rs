//! Exact rational numbers for frame rates and time bases, and exact conversion of timestamps
//! between time bases.

use std::fmt;
use std::str::FromStr;

/// A non-negative rational number `num / den`: a frame rate (frames per second) or a time base
/// (seconds per tick, see [`TimeBase`]).
///
/// `0/1` ([`Rational::UNKNOWN`]) stands for "unknown" where a container does not know a value;
/// [`Rational::is_valid`] tells a usable value from it. Stored as given (not reduced).
/// Displayed and parsed as `"num/den"` (parsing also accepts a bare integer, `"25"`); with the
/// `serde` feature it (de)serializes as that string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    /// Numerator.
    pub num: u32,
    /// Denominator; 0 only in invalid values.
    pub den: u32,
}

/// A time base: one timestamp tick lasts `num / den` seconds (1/90000 for RTP video, 1/1000 for
/// FLV, 1/15360 for a typical MP4 video track).
pub type TimeBase = Rational;

impl Rational {
    /// The "unknown" value `0/1`.
    pub const UNKNOWN: Rational = Rational { num: 0, den: 1 };
    /// The RTP clock of H.264 video (RFC 6184 §8.2.1: the clock rate MUST be 90000).
    pub const RTP_VIDEO: TimeBase = Rational {
        num: 1,
        den: 90_000,
    };
    /// Milliseconds, the unit of FLV and RTMP timestamps.
    pub const MILLIS: TimeBase = Rational { num: 1, den: 1000 };
    /// Microseconds.
    pub const MICROS: TimeBase = Rational {
        num: 1,
        den: 1_000_000,
    };
    /// Nanoseconds.
    pub const NANOS: TimeBase = Rational {
        num: 1,
        den: 1_000_000_000,
    };

    /// `num / den`, stored as given (not reduced, not checked).
    pub const fn new(num: u32, den: u32) -> Rational {
        Rational { num, den }
    }

    /// `num / den` when both parts are non-zero (a usable time base or frame rate).
    pub const fn checked(num: u32, den: u32) -> Option<Rational> {
        if num == 0 || den == 0 {
            None
        } else {
            Some(Rational { num, den })
        }
    }

    /// True when both parts are non-zero.
    pub const fn is_valid(self) -> bool {
        self.num != 0 && self.den != 0
    }

    /// The value as a float (0.0 when the denominator is 0). For display and statistics only.
    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
    }

    /// The rational nearest to `value` in thousandths (29.97 becomes 29970/1000), or `None`
    /// for values that are not finite, not positive, round to zero or exceed `u32::MAX / 1000`.
    pub fn from_f64_thousandths(value: f64) -> Option<Rational> {
        if !value.is_finite() || value <= 0.0 {
            return None;
        }
        let thousandths = (value * 1000.0).round();
        if !(1.0..=f64::from(u32::MAX)).contains(&thousandths) {
            return None;
        }
        // In range and integral, so the conversion is exact.
        Some(Rational::new(thousandths as u32, 1000).reduce())
    }

    /// `den / num`: turns a frame rate into the duration of one frame, and back.
    pub const fn invert(self) -> Rational {
        Rational {
            num: self.den,
            den: self.num,
        }
    }

    /// The same value in lowest terms (`0/x` becomes `0/1`).
    pub fn reduce(self) -> Rational {
        if self.num == 0 {
            return Rational::UNKNOWN;
        }
        let g = gcd(self.num, self.den);
        if g == 0 {
            return self;
        }
        Rational {
            num: self.num / g,
            den: self.den / g,
        }
    }

    /// Converts `ts` ticks of this time base into ticks of `to` (see [`rescale`]).
    pub fn rescale(self, ts: i64, to: TimeBase) -> i64 {
        rescale(ts, self, to)
    }

    /// `ts` ticks of this time base as seconds (for display and statistics only).
    pub fn seconds(self, ts: i64) -> f64 {
        if self.den == 0 {
            return 0.0;
        }
        ts as f64 * f64::from(self.num) / f64::from(self.den)
    }

    /// `ts` ticks of this time base in nanoseconds, rounded down; saturates at the `i128`
    /// range instead of overflowing (0 for an invalid time base).
    pub fn ticks_to_nanos(self, ts: i64) -> i128 {
        if self.den == 0 {
            return 0;
        }
        // |ts| < 2^63, num < 2^32, 10^9 < 2^30: the product fits in 126 bits.
        let n = i128::from(ts) * i128::from(self.num) * 1_000_000_000;
        n.div_euclid(i128::from(self.den))
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Converts `ts` ticks of time base `from` into ticks of time base `to`, rounding to the
/// nearest tick (halves away from zero). Exact: the product is formed in 128 bits, so no
/// precision is lost and repeated conversions of growing timestamps never drift. Returns 0
/// when either time base is invalid; results beyond `i64` saturate.
pub fn rescale(ts: i64, from: TimeBase, to: TimeBase) -> i64 {
    let num = i128::from(ts) * i128::from(from.num) * i128::from(to.den);
    let den = i128::from(from.den) * i128::from(to.num);
    if den == 0 {
        return 0;
    }
    let half = den / 2;
    let q = if num >= 0 {
        (num + half) / den
    } else {
        (num - half) / den
    };
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl Default for Rational {
    /// [`Rational::UNKNOWN`].
    fn default() -> Self {
        Rational::UNKNOWN
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Debug for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// Error from parsing a [`Rational`] from text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseRationalError {
    /// The text that failed to parse.
    pub text: String,
}

impl fmt::Display for ParseRationalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid rational {:?}: expected \"num/den\" or an integer",
            self.text
        )
    }
}

impl std::error::Error for ParseRationalError {}

impl FromStr for Rational {
    type Err = ParseRationalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseRationalError { text: s.to_owned() };
        let t = s.trim();
        let (n, d) = match t.split_once('/') {
            Some((n, d)) => (n.trim(), d.trim()),
            None => (t, "1"),
        };
        let num: u32 = n.parse().map_err(|_| err())?;
        let den: u32 = d.parse().map_err(|_| err())?;
        if den == 0 {
            return Err(err());
        }
        Ok(Rational { num, den })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Rational {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Rational {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_display_round_trip() {
        let r: Rational = "30000/1001".parse().expect("parses");
        assert_eq!(r, Rational::new(30000, 1001));
        assert_eq!(r.to_string(), "30000/1001");
        assert_eq!(
            "25".parse::<Rational>().expect("parses"),
            Rational::new(25, 1)
        );
        assert!("1/0".parse::<Rational>().is_err());
        assert!("x/2".parse::<Rational>().is_err());
        assert!("-1/2".parse::<Rational>().is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_is_a_string() {
        let json = serde_json::to_string(&Rational::new(1, 15360)).expect("serializes");
        assert_eq!(json, "\"1/15360\"");
        let back: Rational = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, Rational::new(1, 15360));
    }

    #[test]
    fn rescale_is_exact_and_rounds() {
        assert_eq!(
            rescale(512, Rational::new(1, 15360), Rational::new(1, 90000)),
            3000
        );
        assert_eq!(
            rescale(1, Rational::new(1001, 60000), Rational::new(1, 90000)),
            1502
        );
        assert_eq!(
            rescale(-1, Rational::new(1001, 60000), Rational::new(1, 90000)),
            -1502
        );
        assert_eq!(rescale(5, Rational::new(1, 0), Rational::new(1, 90000)), 0);
    }

    #[test]
    fn converts_exactly_and_rounds_to_nearest() {
        let mp4 = Rational::checked(1, 15360).expect("valid");
        // 30 fps in a 1/15360 time base: 512 ticks per frame = 3000 RTP ticks = 33.33 ms.
        assert_eq!(mp4.rescale(512, TimeBase::RTP_VIDEO), 3000);
        assert_eq!(mp4.rescale(512, TimeBase::MILLIS), 33);
        assert_eq!(mp4.rescale(1024, TimeBase::MILLIS), 67);
        assert_eq!(mp4.rescale(-512, TimeBase::MILLIS), -33);
        assert_eq!(mp4.rescale(-1024, TimeBase::MILLIS), -67);
        let ntsc = Rational::checked(1001, 30000).expect("valid");
        // 24 h of 29.97 fps frames lands exactly on 90 kHz ticks (3003 per frame).
        let frames = 24 * 3600 * 30000 / 1001;
        assert_eq!(ntsc.rescale(frames, TimeBase::RTP_VIDEO), frames * 3003);
        assert_eq!(Rational::checked(0, 1), None);
        assert_eq!(Rational::checked(1, 0), None);
    }

    #[test]
    fn reduce_invert_and_floats() {
        assert_eq!(Rational::new(60, 2).reduce(), Rational::new(30, 1));
        assert_eq!(Rational::new(30, 1).invert(), Rational::new(1, 30));
        assert_eq!(Rational::new(0, 7).reduce(), Rational::UNKNOWN);
        assert_eq!(
            Rational::from_f64_thousandths(29.97),
            Some(Rational::new(2997, 100))
        );
        assert_eq!(
            Rational::from_f64_thousandths(0.5),
            Some(Rational::new(1, 2))
        );
        assert_eq!(Rational::from_f64_thousandths(0.0001), None);
        assert_eq!(Rational::from_f64_thousandths(f64::NAN), None);
        assert_eq!(Rational::from_f64_thousandths(-3.0), None);
        assert_eq!(TimeBase::MILLIS.ticks_to_nanos(-1), -1_000_000);
        assert_eq!(Rational::new(1, 3).ticks_to_nanos(1), 333_333_333);
        assert_eq!(Rational::new(1, 3).ticks_to_nanos(-1), -333_333_334);
    }

    proptest! {
        #[test]
        fn rescale_round_trips_through_a_finer_base(ts in -(1i64 << 32)..(1i64 << 32), den in 1u32..100_000) {
            // Any tick of 1/den is a whole number of nanoseconds only when den divides 10^9, but
            // going to a finer base and back always returns the original tick.
            let from = Rational::new(1, den);
            let fine = TimeBase::NANOS;
            let there = rescale(ts, from, fine);
            prop_assert_eq!(rescale(there, fine, from), ts);
        }
    }
}
