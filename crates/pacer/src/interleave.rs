//! [`Interleaver`]: merges the units of several tracks, each in its own timestamp order, into
//! one stream in timestamp order, so that one [`crate::Pacer`] can pace them all on one
//! timeline.
//!
//! Containers store tracks interleaved only roughly (an MP4 holds chunks of a fraction of a
//! second to a second per track), and an encoder hands out video later than the audio read
//! with it (its lookahead). A unit is released once every track that has not ended holds a
//! later or equal unit, so nothing released can be followed by an earlier one. Two bounds
//! keep a track that stops delivering (a short audio track, a gap) from holding the others:
//! once the queued units span more than `max_wait` of stream time, or more than `max_queued`
//! units wait, the earliest is released anyway.
//!
//! A source whose timestamps jump back (a new program in MPEG-TS, a concatenated file) jumps
//! on each track at a slightly different place: a track's unit more than
//! [`Interleaver::with_max_backward_step`] before that track's previous one starts a new
//! segment of the track, and units are ordered by segment first, then by timestamp, so
//! nothing of the old timeline of one track is held back behind the new timeline of another.

use std::collections::VecDeque;
use std::time::Duration;

/// Merges tracks into timestamp order. Timestamps are nanoseconds on the stream's one
/// timeline (any common unit works).
#[derive(Debug, Clone)]
pub struct Interleaver<T> {
    /// Per track: (segment, timestamp) and the unit.
    queues: Vec<VecDeque<((u32, i128), T)>>,
    ended: Vec<bool>,
    /// Per track: its current segment and its last timestamp.
    last: Vec<(u32, Option<i128>)>,
    max_backward: i128,
    max_wait: i128,
    max_queued: usize,
    queued: usize,
    forced: u64,
}

impl<T> Interleaver<T> {
    /// An interleaver of `tracks` tracks that waits for a silent track at most `max_wait` of
    /// stream time and at most `max_queued` units (at least 1).
    pub fn new(tracks: usize, max_wait: Duration, max_queued: usize) -> Interleaver<T> {
        Interleaver {
            queues: (0..tracks).map(|_| VecDeque::new()).collect(),
            ended: vec![false; tracks],
            last: vec![(0, None); tracks],
            max_backward: 1_000_000_000,
            max_wait: i128::try_from(max_wait.as_nanos()).unwrap_or(i128::MAX),
            max_queued: max_queued.max(1),
            queued: 0,
            forced: 0,
        }
    }

    /// How far a track's unit may be before that track's previous one (in the timestamps'
    /// unit: nanoseconds for a [`Duration`]) before it starts a new segment (default 1 s).
    pub fn with_max_backward_step(mut self, step: Duration) -> Self {
        self.max_backward = i128::try_from(step.as_nanos()).unwrap_or(i128::MAX);
        self
    }

    /// Adds a unit of `track` with timestamp `ts`. A track's units must come in its own
    /// order; a unit pushed to a track out of range is released on its own.
    pub fn push(&mut self, track: usize, ts: i128, item: T) {
        let (Some(queue), Some(last)) = (self.queues.get_mut(track), self.last.get_mut(track))
        else {
            // An unknown track: treat it as a track of its own that never waits.
            let segment = self.last.iter().map(|l| l.0).max().unwrap_or(0);
            self.queues.push(VecDeque::from([((segment, ts), item)]));
            self.ended.push(true);
            self.last.push((segment, Some(ts)));
            self.queued += 1;
            return;
        };
        if last
            .1
            .is_some_and(|prev| ts < prev.saturating_sub(self.max_backward))
        {
            last.0 += 1;
        }
        last.1 = Some(ts);
        queue.push_back(((last.0, ts), item));
        self.queued += 1;
    }

    /// Marks `track` as finished: no more units will come, so nothing waits for it.
    pub fn end(&mut self, track: usize) {
        if let Some(e) = self.ended.get_mut(track) {
            *e = true;
        }
    }

    /// Marks every track as finished (the end of the input): [`pop`](Self::pop) then hands
    /// out everything queued, in order.
    pub fn end_all(&mut self) {
        self.ended.iter_mut().for_each(|e| *e = true);
    }

    /// The next unit in timestamp order, if it may be released now.
    pub fn pop(&mut self) -> Option<T> {
        let (index, (segment, ts)) = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|(key, _)| (i, *key)))
            // The earliest; on a tie the lower track first.
            .min_by_key(|&(i, key)| (key, i))?;
        let waiting = self
            .queues
            .iter()
            .zip(&self.ended)
            .any(|(q, ended)| q.is_empty() && !ended);
        if waiting {
            // The stream time queued after this unit, within its segment.
            let newest = self
                .queues
                .iter()
                .filter_map(|q| {
                    q.iter()
                        .rev()
                        .find(|((s, _), _)| *s == segment)
                        .map(|((_, t), _)| *t)
                })
                .max()
                .unwrap_or(ts);
            let span = newest.saturating_sub(ts);
            if span <= self.max_wait && self.queued < self.max_queued {
                return None;
            }
            self.forced += 1;
        }
        let (_, item) = self.queues.get_mut(index)?.pop_front()?;
        self.queued -= 1;
        Some(item)
    }

    /// Units waiting.
    pub fn len(&self) -> usize {
        self.queued
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Units released without waiting for every track (a silent track hit a bound).
    pub fn forced(&self) -> u64 {
        self.forced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_in_order_and_waits_for_a_live_track() {
        let mut il = Interleaver::new(2, Duration::from_secs(5), 1000);
        // Video 0, 33, 66 ms; audio arrives later in a chunk.
        for ts in [0, 33, 66] {
            il.push(0, ts, ("v", ts));
        }
        assert_eq!(il.pop(), None, "audio may still bring earlier units");
        for ts in [0, 21, 42, 64, 85] {
            il.push(1, ts, ("a", ts));
        }
        let mut out = Vec::new();
        while let Some(x) = il.pop() {
            out.push(x);
        }
        // Released while the video still has a unit queued; the audio at 85 waits for the
        // video after 66.
        assert_eq!(
            out,
            vec![
                ("v", 0),
                ("a", 0),
                ("a", 21),
                ("v", 33),
                ("a", 42),
                ("a", 64),
                ("v", 66)
            ]
        );
        il.end(0);
        assert_eq!(il.pop(), Some(("a", 85)));
        assert!(il.is_empty());
        assert_eq!(il.forced(), 0);
    }

    #[test]
    fn a_silent_track_is_not_waited_for_beyond_the_bounds() {
        let mut il = Interleaver::new(2, Duration::from_nanos(100), 1000);
        il.push(0, 0, 0);
        il.push(0, 100, 1);
        assert_eq!(il.pop(), None);
        il.push(0, 101, 2);
        assert_eq!(il.pop(), Some(0));
        assert_eq!(il.pop(), None, "100 to 101 is within the bound");
        assert_eq!(il.forced(), 1);
        let mut il = Interleaver::new(2, Duration::from_secs(60), 3);
        il.push(0, 0, 0);
        il.push(0, 1, 1);
        assert_eq!(il.pop(), None);
        il.push(0, 2, 2);
        assert_eq!(il.pop(), Some(0));
        il.end_all();
        assert_eq!((il.pop(), il.pop(), il.pop()), (Some(1), Some(2), None));
    }
}
