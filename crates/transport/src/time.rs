//! Rational time bases and exact conversion of timestamps between them.

use std::fmt;

/// A time base: one tick lasts `num / den` seconds (e.g. 1/90000 for RTP video, 1/1000 for FLV).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeBase {
    /// Numerator (seconds), at least 1.
    pub num: u32,
    /// Denominator, at least 1.
    pub den: u32,
}

impl TimeBase {
    /// The RTP clock of H.264 video (RFC 6184 §8.2.1: the clock rate MUST be 90000).
    pub const RTP_VIDEO: TimeBase = TimeBase {
        num: 1,
        den: 90_000,
    };
    /// Milliseconds, the unit of FLV and RTMP timestamps.
    pub const MILLIS: TimeBase = TimeBase { num: 1, den: 1000 };
    /// Nanoseconds.
    pub const NANOS: TimeBase = TimeBase {
        num: 1,
        den: 1_000_000_000,
    };

    /// A time base of `num / den` seconds; `None` when either part is zero.
    pub const fn new(num: u32, den: u32) -> Option<TimeBase> {
        if num == 0 || den == 0 {
            None
        } else {
            Some(TimeBase { num, den })
        }
    }

    /// Converts `ts` ticks of this time base into ticks of `to`, rounding to the nearest tick
    /// (halves away from zero). Exact: the product is formed in 128 bits, so no precision is
    /// lost and repeated conversions of growing timestamps never drift.
    pub fn convert(self, ts: i64, to: TimeBase) -> i64 {
        let num = i128::from(ts) * i128::from(self.num) * i128::from(to.den);
        let den = i128::from(self.den) * i128::from(to.num);
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

    /// `ts` ticks as seconds (for display and statistics only).
    pub fn seconds(self, ts: i64) -> f64 {
        ts as f64 * f64::from(self.num) / f64::from(self.den)
    }
}

impl Default for TimeBase {
    fn default() -> Self {
        TimeBase::RTP_VIDEO
    }
}

impl fmt::Debug for TimeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Display for TimeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_exactly_and_rounds_to_nearest() {
        let mp4 = TimeBase::new(1, 15360).expect("valid");
        // 30 fps in a 1/15360 time base: 512 ticks per frame = 3000 RTP ticks = 33.33 ms.
        assert_eq!(mp4.convert(512, TimeBase::RTP_VIDEO), 3000);
        assert_eq!(mp4.convert(512, TimeBase::MILLIS), 33);
        assert_eq!(mp4.convert(1024, TimeBase::MILLIS), 67);
        assert_eq!(mp4.convert(-512, TimeBase::MILLIS), -33);
        assert_eq!(mp4.convert(-1024, TimeBase::MILLIS), -67);
        let ntsc = TimeBase::new(1001, 30000).expect("valid");
        // 24 h of 29.97 fps frames lands exactly on 90 kHz ticks (3003 per frame).
        let frames = 24 * 3600 * 30000 / 1001;
        assert_eq!(ntsc.convert(frames, TimeBase::RTP_VIDEO), frames * 3003);
        assert_eq!(TimeBase::new(0, 1), None);
    }
}
