//! Wire-timing statistics: fitting arrival instants to an ideal constant-rate schedule.
//!
//! Frame `n` (in arrival order) ideally arrives at `offset + n / fps`. The offset is the median
//! of `arrival_n − n / fps`, so a constant latency (connection set-up, a publisher that sends
//! every frame 10 ms early) does not count as deviation; only jitter, stalls and bursts do.
//! The steady state leaves out the first and the last second of frames (start-up and flush).
//!
//! Audio is fitted on its timestamps instead ([`AudioTiming`]): packet `k` ideally arrives at
//! `offset + (ts_k − ts_0)`, the offset again the median, and the steady state leaves out the
//! packets of the first and the last second of media time.

use serde::Serialize;

/// Seconds of frames left out at each end for the steady-state figures.
pub const EDGE_SECONDS: f64 = 1.0;
/// The window, in seconds, for counting frames at the start and at the end: a frame counts
/// when it arrived less than this long after the first (before the last), less 1 ns so that
/// rounding cannot put a frame of a perfect 30 fps schedule at exactly 100 ms inside it.
pub const BURST_WINDOW: f64 = 0.100 - 1e-9;

/// Percentiles of absolute deviations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Spread {
    /// Percentiles of `values` (absolute deviations in milliseconds); `None` when empty.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Spread {
            n: sorted.len(),
            p50_ms: nearest_rank(&sorted, 0.50),
            p99_ms: nearest_rank(&sorted, 0.99),
            max_ms: sorted.last().copied().unwrap_or(f64::NAN),
        })
    }
}

/// The value at quantile `q` of sorted `values` by the nearest-rank method (the smallest value
/// with at least `q` of the samples at or below it); NaN when empty.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or(f64::NAN)
}

/// The median of `values` (mean of the two middle values for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Signed deviation of each frame from the fitted schedule, in seconds: `arrival_n − (offset +
/// n / fps)` with the offset the median of `arrival_n − n / fps`. `arrivals` are seconds from
/// any fixed instant, in arrival order.
pub fn deviations(arrivals: &[f64], fps: f64) -> Vec<f64> {
    if arrivals.is_empty() || !(fps.is_finite() && fps > 0.0) {
        return Vec::new();
    }
    let residuals: Vec<f64> = arrivals
        .iter()
        .enumerate()
        .map(|(n, t)| t - n as f64 / fps)
        .collect();
    let offset = median(&residuals);
    residuals.iter().map(|r| r - offset).collect()
}

/// The indices of the steady state: frames from `EDGE_SECONDS · fps` up to (not including)
/// `count − EDGE_SECONDS · fps`. Empty when the stream is too short.
pub fn steady_range(count: usize, fps: f64) -> std::ops::Range<usize> {
    let edge = (EDGE_SECONDS * fps).round().max(0.0) as usize;
    if count <= 2 * edge {
        return 0..0;
    }
    edge..count - edge
}

/// Absolute steady-state deviations in milliseconds (see [`deviations`], [`steady_range`]).
pub fn steady_abs_deviations_ms(arrivals: &[f64], fps: f64) -> Vec<f64> {
    let dev = deviations(arrivals, fps);
    let range = steady_range(dev.len(), fps);
    dev.get(range)
        .unwrap_or_default()
        .iter()
        .map(|d| d.abs() * 1e3)
        .collect()
}

/// The timing figures of one received stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    /// Frames received.
    pub frames: usize,
    /// Steady-state absolute deviation from the fitted schedule.
    pub steady: Option<Spread>,
    /// Frames that arrived within 100 ms of the first one (the first included).
    pub first_100ms: usize,
    /// Frames that arrived within 100 ms before the last one (the last included).
    pub last_100ms: usize,
    /// The fitted offset of the schedule from the first arrival, ms (how much later than the
    /// first frame the schedule's frame 0 sits: positive when the start came early).
    pub offset_ms: f64,
    /// Span from the first to the last arrival, seconds.
    pub span_s: f64,
}

impl Timing {
    /// The figures of frames that arrived at `arrivals` (seconds from any fixed instant, in
    /// arrival order) for a stream of `fps` frames per second; `None` without frames.
    pub fn of(arrivals: &[f64], fps: f64) -> Option<Timing> {
        let (&first, &last) = (arrivals.first()?, arrivals.last()?);
        let dev = deviations(arrivals, fps);
        Some(Timing {
            frames: arrivals.len(),
            steady: Spread::of(&steady_abs_deviations_ms(arrivals, fps)),
            first_100ms: arrivals
                .iter()
                .filter(|&&t| t - first < BURST_WINDOW)
                .count(),
            last_100ms: arrivals
                .iter()
                .filter(|&&t| last - t < BURST_WINDOW)
                .count(),
            // The schedule's frame 0 sits at `first − dev_0`.
            offset_ms: dev.first().map_or(f64::NAN, |d| -d * 1e3),
            span_s: last - first,
        })
    }
}

/// Signed deviation of each arrival from the schedule `offset + media_n`, in seconds, with
/// the offset the median of `arrival_n − media_n`; and that offset. `arrivals` and `media`
/// (media time of each arrival, seconds) pair up; extra values of either are ignored.
pub fn schedule_deviations(arrivals: &[f64], media: &[f64]) -> (Vec<f64>, f64) {
    let residuals: Vec<f64> = arrivals.iter().zip(media).map(|(a, m)| a - m).collect();
    let offset = median(&residuals);
    (residuals.iter().map(|r| r - offset).collect(), offset)
}

/// Media times (s, from the first) of timestamps `ts` at `clock_rate` ticks per second; RTP
/// and RTMP timestamps wrap modulo 2³², so each is taken relative to the first. With
/// `grid_s`, each time is moved to the nearest multiple of it when that is within one tick
/// (RTMP's whole milliseconds of frames that are 1024 samples long).
pub fn media_times(ts: &[u32], clock_rate: u32, grid_s: Option<f64>) -> Vec<f64> {
    let Some(&first) = ts.first() else {
        return Vec::new();
    };
    let rate = f64::from(clock_rate.max(1));
    ts.iter()
        .map(|&t| {
            let m = f64::from(t.wrapping_sub(first) as i32) / rate;
            match grid_s {
                Some(g) if g > 0.0 => {
                    let snapped = (m / g).round() * g;
                    if (snapped - m).abs() <= 1.0 / rate {
                        snapped
                    } else {
                        m
                    }
                }
                _ => m,
            }
        })
        .collect()
}

/// The timing figures of one received audio track.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioTiming {
    /// Packets (RTP) or messages (RTMP) that completed frames.
    pub packets: usize,
    /// Audio frames they completed.
    pub frames: u64,
    /// Steady-state absolute deviation from the fitted schedule (per packet, from its
    /// timestamp: for an RFC 3640 packet of several frames, the first frame's).
    pub steady: Option<Spread>,
    /// Where the schedule puts the first timestamp, s after the epoch of `arrivals`.
    pub origin_s: f64,
    /// Media time from the first to the last timestamp, s.
    pub media_span_s: f64,
}

impl AudioTiming {
    /// The figures of packets that arrived at `arrivals` (seconds from any fixed instant, in
    /// arrival order) carrying `frames[k]` frames from media time `media[k]` (seconds from the
    /// first; see [`media_times`]); `None` without packets.
    pub fn of(arrivals: &[f64], media: &[f64], frames: &[u32]) -> Option<AudioTiming> {
        let n = arrivals.len().min(media.len());
        if n == 0 {
            return None;
        }
        let (dev, offset) = schedule_deviations(&arrivals[..n], &media[..n]);
        let (first, last) = (media[0], media[n - 1]);
        let steady: Vec<f64> = dev
            .iter()
            .zip(&media[..n])
            .filter(|(_, &m)| m - first >= EDGE_SECONDS && last - m > EDGE_SECONDS)
            .map(|(d, _)| d.abs() * 1e3)
            .collect();
        Some(AudioTiming {
            packets: n,
            frames: frames.iter().take(n).map(|&f| u64::from(f)).sum(),
            steady: Spread::of(&steady),
            origin_s: offset,
            media_span_s: last - first,
        })
    }

    /// Audio frames per packet.
    pub fn frames_per_packet(&self) -> f64 {
        self.frames as f64 / self.packets.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!(close(nearest_rank(&v, 0.5), 50.0));
        assert!(close(nearest_rank(&v, 0.99), 99.0));
        assert!(close(nearest_rank(&v, 1.0), 100.0));
        assert!(close(nearest_rank(&v, 0.0), 1.0));
        assert!(close(nearest_rank(&[7.0], 0.99), 7.0));
        assert!(nearest_rank(&[], 0.5).is_nan());
        assert!(close(median(&[3.0, 1.0, 2.0]), 2.0));
        assert!(close(median(&[4.0, 1.0, 2.0, 3.0]), 2.5));
    }

    #[test]
    fn a_constant_latency_is_not_deviation() {
        let arrivals: Vec<f64> = (0..300).map(|n| 5.0 + f64::from(n) / 30.0).collect();
        let t = Timing::of(&arrivals, 30.0).expect("frames");
        let s = t.steady.expect("steady state");
        assert_eq!(s.n, 240);
        assert!(s.max_ms < 1e-6, "{s:?}");
        // 0, 33.3 and 66.7 ms are within 100 ms of the first frame; 100.0 ms is not.
        assert_eq!(t.first_100ms, 3);
        assert_eq!(t.last_100ms, 3);
        assert!(t.offset_ms.abs() < 1e-6);
    }

    #[test]
    fn bursts_and_stalls_show() {
        // Eight frames at once at 210 ms, then on time.
        let mut arrivals: Vec<f64> = (0..600).map(|n| f64::from(n) / 30.0).collect();
        for a in arrivals.iter_mut().take(8) {
            *a = 0.21;
        }
        // A 50 ms stall in the steady state: one frame late.
        arrivals[300] += 0.050;
        // The last 20 frames flushed together at the end.
        let end = arrivals[579];
        for a in arrivals.iter_mut().skip(580) {
            *a = end + 0.001;
        }
        let t = Timing::of(&arrivals, 30.0).expect("frames");
        assert_eq!(t.first_100ms, 10); // frames 0..=7 at 210 ms, 8 at 267 ms, 9 at 300 ms
        assert_eq!(t.last_100ms, 23); // frames 577..=579 and the 20 flushed 1 ms after 579
        let s = t.steady.expect("steady");
        assert!((s.max_ms - 50.0).abs() < 1e-6, "{s:?}");
        assert!(s.p50_ms < 1e-6, "{s:?}");
    }

    #[test]
    fn deviation_is_fitted_on_arrival_order() {
        // A frame missing from the middle shifts every later frame one slot early.
        let arrivals: Vec<f64> = (0..100)
            .filter(|&n| n != 50)
            .map(|n| f64::from(n) / 10.0)
            .collect();
        let dev = deviations(&arrivals, 10.0);
        assert!(close(dev[10], 0.0));
        assert!(close(dev[60], 0.1), "{}", dev[60]);
        assert!(deviations(&[], 30.0).is_empty());
        assert!(deviations(&[1.0], 0.0).is_empty());
    }

    #[test]
    fn short_streams_have_no_steady_state() {
        assert_eq!(steady_range(60, 30.0), 0..0);
        assert_eq!(steady_range(61, 30.0), 30..31);
        assert!(Timing::of(&[0.0, 0.1], 30.0)
            .expect("frames")
            .steady
            .is_none());
        assert!(Timing::of(&[], 30.0).is_none());
    }

    #[test]
    fn audio_is_fitted_on_its_timestamps() {
        // 48 kHz, 1024-sample frames, one per packet, 20 s, 30 ms of constant latency; one
        // packet 2 ms late in the middle, the first ten 5 ms early (outside the steady state).
        let ts: Vec<u32> = (0..938u32)
            .map(|k| 7u32.wrapping_sub(1 << 20).wrapping_add(k * 1024))
            .collect();
        let media = media_times(&ts, 48_000, None);
        assert!(close(media[3], 3.0 * 1024.0 / 48_000.0));
        let mut arrivals: Vec<f64> = media.iter().map(|m| 0.030 + m).collect();
        arrivals[400] += 0.002;
        for a in arrivals.iter_mut().take(10) {
            *a -= 0.005;
        }
        let t = AudioTiming::of(&arrivals, &media, &vec![1; 938]).expect("packets");
        assert_eq!((t.packets, t.frames), (938, 938));
        assert!((t.origin_s - 0.030).abs() < 1e-9);
        let s = t.steady.expect("steady");
        assert!((s.max_ms - 2.0).abs() < 1e-6, "{s:?}");
        assert!(s.p50_ms < 1e-6);
        // 47 packets span the first second (0..=46 × 21.33 ms) and the last, of 938.
        assert_eq!(s.n, 938 - 47 - 47);
        assert!(close(t.frames_per_packet(), 1.0));
    }

    #[test]
    fn whole_millisecond_timestamps_snap_to_the_frame_grid() {
        let frame = 1024.0 / 48_000.0;
        let ts: Vec<u32> = (0..10)
            .map(|k| (f64::from(k) * frame * 1e3).round() as u32)
            .collect();
        assert_eq!(&ts[..4], &[0, 21, 43, 64]);
        let m = media_times(&ts, 1000, Some(frame));
        for (k, v) in m.iter().enumerate() {
            assert!(close(*v, k as f64 * frame), "{k}: {v}");
        }
        // Off the grid by more than a tick: kept as sent.
        assert!(close(media_times(&[0, 30], 1000, Some(frame))[1], 0.030));
    }
}
