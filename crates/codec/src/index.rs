//! [`FrameIndex`]: every frame of a stream, found by reading its packets without decoding.

/// One frame of a [`FrameIndex`], in presentation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    /// Presentation timestamp (stream time base). Made up (decode position times one nominal
    /// frame duration) when the stream has no timestamps.
    pub pts: i64,
    /// Decode timestamp, if stored.
    pub dts: Option<i64>,
    /// The container marks the packet as a key frame (a random access point).
    pub key: bool,
}

/// Timestamps and key-frame flags of every frame of a stream, in presentation order, built by
/// [`crate::Decoder::build_index`]. It is what makes exact seeking by frame number possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameIndex {
    entries: Vec<IndexEntry>,
    has_timestamps: bool,
    max_b_frames: Option<u32>,
}

/// A packet as scanned, in decode order.
pub(crate) struct Scanned {
    pub(crate) pts: Option<i64>,
    pub(crate) dts: Option<i64>,
    pub(crate) key: bool,
}

impl FrameIndex {
    /// Builds the index from packets in decode order; `frame_ticks` is one nominal frame
    /// duration, used to make up timestamps for streams that have none.
    pub(crate) fn from_packets(packets: Vec<Scanned>, frame_ticks: i64) -> FrameIndex {
        let has_timestamps =
            !packets.is_empty() && packets.iter().all(|p| p.pts.is_some() || p.dts.is_some());
        if !has_timestamps {
            let entries = packets
                .iter()
                .enumerate()
                .map(|(i, p)| IndexEntry {
                    pts: i as i64 * frame_ticks,
                    dts: None,
                    key: p.key,
                })
                .collect();
            return FrameIndex {
                entries,
                has_timestamps: false,
                max_b_frames: None,
            };
        }
        // B-frames: frames shown before a frame that was decoded earlier. The longest run of
        // them in decode order is the stream's "max B-frames".
        let mut max_b = 0u32;
        let mut run = 0u32;
        let mut max_pts = i64::MIN;
        for p in &packets {
            let pts = p.pts.or(p.dts).unwrap_or(0);
            if pts < max_pts {
                run += 1;
                max_b = max_b.max(run);
            } else {
                run = 0;
                max_pts = pts;
            }
        }
        let mut entries: Vec<IndexEntry> = packets
            .iter()
            .map(|p| IndexEntry {
                pts: p.pts.or(p.dts).unwrap_or(0),
                dts: p.dts,
                key: p.key,
            })
            .collect();
        entries.sort_by_key(|e| e.pts);
        FrameIndex {
            entries,
            has_timestamps: true,
            max_b_frames: Some(max_b),
        }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the stream has no frames.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All frames in presentation order.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// False for streams without stored timestamps (raw `.h264`): their entries are in decode
    /// order with made-up timestamps, and exact seeking is not possible.
    pub fn has_timestamps(&self) -> bool {
        self.has_timestamps
    }

    /// Presentation positions of the key frames.
    pub fn key_frames(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.key)
            .map(|(i, _)| i as u64)
    }

    /// Largest distance between successive key frames (the whole stream when it has a single
    /// key frame); `None` without frames.
    pub fn gop_size(&self) -> Option<u32> {
        let keys: Vec<u64> = self.key_frames().collect();
        if self.entries.is_empty() {
            return None;
        }
        let max = match keys.len() {
            0 | 1 => self.entries.len() as u64,
            _ => keys.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0),
        };
        Some(u32::try_from(max).unwrap_or(u32::MAX))
    }

    /// Longest run of B-frames (frames shown before a frame decoded earlier); `None` without
    /// timestamps.
    pub fn max_b_frames(&self) -> Option<u32> {
        self.max_b_frames
    }

    /// Position of the frame shown at `pts`: the last frame whose pts is `<= pts` (the first
    /// frame when `pts` is earlier than all).
    pub fn position_at(&self, pts: i64) -> u64 {
        self.entries
            .partition_point(|e| e.pts <= pts)
            .saturating_sub(1) as u64
    }

    /// The last key frame at or before `position` (0 when there is none).
    pub fn key_frame_at_or_before(&self, position: u64) -> u64 {
        let end = usize::try_from(position)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(self.entries.len());
        self.entries[..end]
            .iter()
            .rposition(|e| e.key)
            .map_or(0, |p| p as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pts: i64, dts: i64, key: bool) -> Scanned {
        Scanned {
            pts: Some(pts),
            dts: Some(dts),
            key,
        }
    }

    #[test]
    fn b_frames_and_gops_are_measured() {
        // I0 P3 B1 B2 P6 B4 B5 | I7 ... decode order, 1 tick per frame.
        let packets = vec![
            p(0, -2, true),
            p(3, -1, false),
            p(1, 0, false),
            p(2, 1, false),
            p(6, 2, false),
            p(4, 3, false),
            p(5, 4, false),
            p(7, 5, true),
            p(8, 6, false),
        ];
        let idx = FrameIndex::from_packets(packets, 1);
        assert_eq!(idx.len(), 9);
        assert!(idx.has_timestamps());
        let pts: Vec<i64> = idx.entries().iter().map(|e| e.pts).collect();
        assert_eq!(pts, (0..9).collect::<Vec<_>>());
        assert_eq!(idx.key_frames().collect::<Vec<_>>(), vec![0, 7]);
        assert_eq!(idx.gop_size(), Some(7));
        assert_eq!(idx.max_b_frames(), Some(2));
        assert_eq!(idx.position_at(4), 4);
        assert_eq!(idx.position_at(-5), 0);
        assert_eq!(idx.position_at(100), 8);
        assert_eq!(idx.key_frame_at_or_before(6), 0);
        assert_eq!(idx.key_frame_at_or_before(7), 7);
        assert_eq!(idx.key_frame_at_or_before(99), 7);
    }

    #[test]
    fn streams_without_timestamps_are_counted() {
        let packets = (0..5)
            .map(|i| Scanned {
                pts: None,
                dts: None,
                key: i == 0,
            })
            .collect();
        let idx = FrameIndex::from_packets(packets, 40);
        assert_eq!(idx.len(), 5);
        assert!(!idx.has_timestamps());
        assert_eq!(idx.entries()[4].pts, 160);
        assert_eq!(idx.gop_size(), Some(5));
        assert_eq!(idx.max_b_frames(), None);
    }
}
