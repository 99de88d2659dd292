//! The shared [`Rational`] (from `mpegcoder-types`) and its conversions to and from FFmpeg's.

pub use mpegcoder_types::{rescale, ParseRationalError, Rational};

/// Conversions between [`Rational`] and FFmpeg's rational.
pub(crate) trait FfRational: Sized {
    /// Converts an FFmpeg rational; negative or zero-denominator values become `0/1`.
    fn from_ff(r: ffmpeg_next::Rational) -> Self;
    /// Converts to an FFmpeg rational, saturating parts above `i32::MAX`.
    fn to_ff(self) -> ffmpeg_next::Rational;
}

impl FfRational for Rational {
    fn from_ff(r: ffmpeg_next::Rational) -> Rational {
        match (u32::try_from(r.numerator()), u32::try_from(r.denominator())) {
            (Ok(num), Ok(den)) if den != 0 => Rational { num, den },
            _ => Rational::UNKNOWN,
        }
    }

    fn to_ff(self) -> ffmpeg_next::Rational {
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        ffmpeg_next::Rational::new(clamp(self.num), clamp(self.den))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_ffmpeg() {
        let r = Rational::from_ff(ffmpeg_next::Rational::new(30000, 1001));
        assert_eq!(r, Rational::new(30000, 1001));
        assert_eq!(
            Rational::from_ff(ffmpeg_next::Rational::new(-1, 2)),
            Rational::UNKNOWN
        );
        assert_eq!(
            Rational::from_ff(ffmpeg_next::Rational::new(1, 0)),
            Rational::UNKNOWN
        );
        let ff = Rational::new(u32::MAX, 2).to_ff();
        assert_eq!((ff.numerator(), ff.denominator()), (i32::MAX, 2));
    }
}
