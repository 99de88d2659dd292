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

use std::collections::VecDeque;
use std::time::Duration;

/// Merges tracks into timestamp order. Timestamps are nanoseconds on the stream's one
/// timeline (any common unit works).
#[derive(Debug, Clone)]
pub struct Interleaver<T> {
    queues: Vec<VecDeque<(i128, T)>>,
    ended: Vec<bool>,
    max_wait: i128,
    max_queued: usize,
    queued: usize,
    /// The latest timestamp pushed on any track.
    newest: Option<i128>,
    forced: u64,
}

impl<T> Interleaver<T> {
    /// An interleaver of `tracks` tracks that waits for a silent track at most `max_wait` of
    /// stream time and at most `max_queued` units (at least 1).
    pub fn new(tracks: usize, max_wait: Duration, max_queued: usize) -> Interleaver<T> {
        Interleaver {
            queues: (0..tracks).map(|_| VecDeque::new()).collect(),
            ended: vec![false; tracks],
            max_wait: i128::try_from(max_wait.as_nanos()).unwrap_or(i128::MAX),
            max_queued: max_queued.max(1),
            queued: 0,
            newest: None,
            forced: 0,
        }
    }

    /// Adds a unit of `track` with timestamp `ts`. A track's units must come in its own
    /// order; a unit pushed to a track out of range is released on its own.
    pub fn push(&mut self, track: usize, ts: i128, item: T) {
        let Some(queue) = self.queues.get_mut(track) else {
            // An unknown track: treat it as a track of its own that never waits.
            self.queues.push(VecDeque::from([(ts, item)]));
            self.ended.push(true);
            self.queued += 1;
            return;
        };
        queue.push_back((ts, item));
        self.queued += 1;
        self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
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
        let (index, ts) = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|(ts, _)| (i, *ts)))
            // The earliest; on a tie the lower track first.
            .min_by_key(|&(i, ts)| (ts, i))?;
        let waiting = self
            .queues
            .iter()
            .zip(&self.ended)
            .any(|(q, ended)| q.is_empty() && !ended);
        if waiting {
            let span = self.newest.map_or(0, |n| n.saturating_sub(ts));
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
