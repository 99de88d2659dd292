//! The crate's error type.

use std::error::Error;
use std::fmt;

/// Why a pacer value could not be built. Scheduling itself never fails: every input to
/// [`crate::Pacer::schedule`] has a defined outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum PacerError {
    /// A time base with a zero numerator or denominator (`num / den` seconds per tick).
    ZeroTimeBase {
        /// The numerator given.
        num: u32,
        /// The denominator given.
        den: u32,
    },
    /// A rate with a zero numerator or denominator.
    ZeroRate {
        /// The numerator given.
        num: u32,
        /// The denominator given.
        den: u32,
    },
    /// A rate given as a float that is not finite, not positive, rounds to zero at millesimal
    /// precision, or is too large (above `u32::MAX / 1000`).
    RateOutOfRange {
        /// The value given.
        value: f64,
    },
    /// The catch-up speed of [`crate::LatePolicy::CatchUp`] must be faster than real time
    /// (`num > den`), or a late stream would never catch up.
    CatchUpTooSlow {
        /// The numerator given.
        num: u32,
        /// The denominator given.
        den: u32,
    },
}

impl fmt::Display for PacerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacerError::ZeroTimeBase { num, den } => {
                write!(f, "time base {num}/{den} has a zero part")
            }
            PacerError::ZeroRate { num, den } => write!(f, "rate {num}/{den} has a zero part"),
            PacerError::RateOutOfRange { value } => write!(
                f,
                "rate {value} is not a finite number between 0.001 and {}",
                u32::MAX / 1000
            ),
            PacerError::CatchUpTooSlow { num, den } => write!(
                f,
                "catch-up speed {num}/{den} is not faster than real time (it must exceed 1)"
            ),
        }
    }
}

impl Error for PacerError {}
