//! [`Continuity`]: keeps the timestamps of every track continuous across a jump of the
//! source's clock (an MPEG-TS program change, concatenated recordings, a camera's clock
//! reset), the way ffmpeg corrects "timestamp discontinuities" of such inputs.
//!
//! A track's unit more than [`BACK`] before the track's previous one, or more than [`AHEAD`]
//! after it, is a jump: from it on the track is shifted so that the unit follows the previous
//! one by one unit's duration. The tracks of a source jump together, each at a slightly
//! different place in the file, so a track jumping by (nearly) the amount another track
//! jumped by just before takes that track's correction, and they stay aligned.

/// A step back larger than this is a jump (smaller ones are reordering, B-frames).
pub(crate) const BACK: i128 = 1_000_000_000;
/// A step forward larger than this is a jump (smaller ones are gaps the pacer waits out).
pub(crate) const AHEAD: i128 = 10_000_000_000;
/// Jumps of two tracks within this much of each other are the same jump.
const SAME_JUMP: i128 = 1_000_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Track {
    /// The last unit's timestamp as read (nanoseconds).
    last: Option<i128>,
    /// Added to every timestamp of the track.
    offset: i128,
}

/// Timestamp corrections of up to two tracks (0: video, 1: audio). Timestamps in
/// nanoseconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Continuity {
    tracks: [Track; 2],
    /// The last jump: its size as read, the correction it got, and which track took it.
    last_jump: Option<(i128, i128, usize)>,
    jumps: u64,
}

impl Continuity {
    /// The correction (nanoseconds) to add to a unit of `track` read at `ts`; `unit` is one
    /// unit's duration (the step a jump is replaced with).
    pub(crate) fn offset(&mut self, track: usize, ts: i128, unit: i128) -> i128 {
        let Some(t) = self.tracks.get(track).copied() else {
            return 0;
        };
        let mut offset = t.offset;
        if let Some(last) = t.last {
            let step = ts - last;
            if !(-BACK..=AHEAD).contains(&step) {
                let jump = step - unit.max(0);
                let correction = match self.last_jump {
                    // The other track made this jump already: take its correction.
                    Some((size, correction, by))
                        if by != track && (size - jump).abs() <= SAME_JUMP =>
                    {
                        correction
                    }
                    _ => {
                        self.jumps += 1;
                        -jump
                    }
                };
                self.last_jump = Some((jump, correction, track));
                offset += correction;
                tracing::debug!(
                    track,
                    jump_ms = (jump / 1_000_000) as i64,
                    "timestamp jump in the input: the tracks continue without it"
                );
            }
        }
        if let Some(t) = self.tracks.get_mut(track) {
            t.last = Some(ts);
            t.offset = offset;
        }
        offset
    }

    /// Distinct jumps corrected so far.
    pub(crate) fn jumps(&self) -> u64 {
        self.jumps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;

    #[test]
    fn both_tracks_continue_across_a_jump_with_one_correction() {
        for jump in [-30_000 * MS, 40_000 * MS] {
            let mut c = Continuity::default();
            let mut out = Vec::new();
            // Video every 33 ms, audio every 21 ms, interleaved as read; the source clock
            // jumps at 1 s (video first, audio two units later).
            let video: Vec<i128> = (0..60).map(|n| n * 33 * MS).collect();
            let audio: Vec<i128> = (0..90).map(|n| n * 21 * MS).collect();
            let raw = |t: i128| if t >= 1000 * MS { t + jump } else { t };
            let mut units: Vec<(usize, i128)> = video
                .iter()
                .map(|t| (0, *t))
                .chain(audio.iter().map(|t| (1, *t)))
                .collect();
            // Read order: by source time, the audio of the jump a little later.
            units.sort_by_key(|(track, t)| t + if *track == 1 { 30 * MS } else { 0 });
            for (track, t) in units {
                let unit = if track == 0 { 33 * MS } else { 21 * MS };
                let r = raw(t);
                out.push((track, t, r + c.offset(track, r, unit)));
            }
            assert_eq!(c.jumps(), 1, "jump {jump}");
            // After the jump, every unit is at its source time plus one constant, the same
            // for both tracks.
            let after: Vec<i128> = out
                .iter()
                .filter(|(_, t, _)| *t >= 1000 * MS)
                .map(|(_, t, o)| o - t)
                .collect();
            assert!(after.iter().all(|x| *x == after[0]), "{after:?}");
            // And the first video unit after the jump follows the last one before it by one
            // frame (the correction replaces the jump by a unit's duration).
            assert!(after[0].abs() <= 33 * MS, "{}", after[0]);
            // Before the jump, nothing moved.
            assert!(out
                .iter()
                .filter(|(_, t, _)| *t < 1000 * MS)
                .all(|(_, t, o)| t == o));
        }
    }

    #[test]
    fn small_steps_and_gaps_are_not_jumps() {
        let mut c = Continuity::default();
        for ts in [0, 100 * MS, 50 * MS, 5_000 * MS, 4_200 * MS] {
            assert_eq!(c.offset(0, ts, 33 * MS), 0);
        }
        assert_eq!(c.jumps(), 0);
        // An unknown track is left alone.
        assert_eq!(c.offset(7, 0, 0), 0);
    }
}
