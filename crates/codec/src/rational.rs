//! Exact rational numbers for frame rates and time bases.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative rational number `num / den`: a frame rate (frames per second) or a time base
/// (seconds per tick).
///
/// `0/1` stands for "unknown" where FFmpeg does not know a value. Serialized (serde) as the
/// string `"num/den"`, e.g. `"30000/1001"`; deserialization also accepts a bare integer `"25"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    /// Numerator.
    pub num: u32,
    /// Denominator; 0 only in invalid values (see [`Rational::is_valid`]).
    pub den: u32,
}

impl Rational {
    /// The "unknown" value `0/1`.
    pub const UNKNOWN: Rational = Rational { num: 0, den: 1 };

    /// `num / den`, stored as given (not reduced).
    pub const fn new(num: u32, den: u32) -> Rational {
        Rational { num, den }
    }

    /// True when both parts are non-zero.
    pub const fn is_valid(self) -> bool {
        self.num != 0 && self.den != 0
    }

    /// The value as a float (0.0 when the denominator is 0).
    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
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

    /// Converts an FFmpeg rational; negative or zero-denominator values become `0/1`.
    pub(crate) fn from_ff(r: ffmpeg_next::Rational) -> Rational {
        match (u32::try_from(r.numerator()), u32::try_from(r.denominator())) {
            (Ok(num), Ok(den)) if den != 0 => Rational { num, den },
            _ => Rational::UNKNOWN,
        }
    }

    /// Converts to an FFmpeg rational, saturating parts above `i32::MAX`.
    pub(crate) fn to_ff(self) -> ffmpeg_next::Rational {
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        ffmpeg_next::Rational::new(clamp(self.num), clamp(self.den))
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
/// nearest tick (halves away from zero). Exact: computed in 128 bits. Returns 0 when either
/// time base is invalid.
pub fn rescale(ts: i64, from: Rational, to: Rational) -> i64 {
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

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// Error from parsing a [`Rational`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rational {text:?}: expected \"num/den\" or an integer")]
pub struct ParseRationalError {
    /// The text that failed to parse.
    pub text: String,
}

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

impl Serialize for Rational {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rational {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reduce_and_invert() {
        assert_eq!(Rational::new(60, 2).reduce(), Rational::new(30, 1));
        assert_eq!(Rational::new(30, 1).invert(), Rational::new(1, 30));
        assert_eq!(Rational::new(0, 7).reduce(), Rational::UNKNOWN);
    }
}
