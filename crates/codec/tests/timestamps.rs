//! The demuxer's decoding times when the container stores none for the first packets
//! (Matroska with B-frames: the packets before the reordering delay have no DTS).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mpegcoder_codec::{DemuxedPacket, Demuxer, OpenOptions};

#[test]
fn matroska_with_b_frames_gets_increasing_decoding_times_from_the_start() {
    if !have_ffmpeg("matroska_with_b_frames") {
        return;
    }
    let mkv = h264_clip("2", 15, 2, "mkv");
    let mut demuxer = Demuxer::open(&mkv, &OpenOptions::default()).unwrap();
    let mut packets = Vec::new();
    while let Some(p) = demuxer.next_packet().unwrap() {
        packets.push(p);
    }
    assert_eq!(packets.len(), 60);
    // Decoding times never go back and never pass the presentation time.
    for (i, w) in packets.windows(2).enumerate() {
        assert!(
            w[0].dts <= w[1].dts,
            "packet {}: dts {} after {}",
            i + 1,
            w[1].dts,
            w[0].dts
        );
    }
    for (i, p) in packets.iter().enumerate() {
        assert!(p.dts <= p.pts, "packet {i}: dts {} > pts {}", p.dts, p.pts);
    }
    // The first packets precede the first stored dts one frame (33 ms in Matroska's
    // milliseconds) apart.
    let dts: Vec<i64> = packets.iter().take(4).map(|p| p.dts).collect();
    assert_eq!(dts, vec![-66, -33, 0, 33], "{dts:?}");
    // next_media hands out the same video packets, and a rewind starts over alike.
    demuxer.rewind().unwrap();
    let mut again = Vec::new();
    while let Some(m) = demuxer.next_media().unwrap() {
        if let DemuxedPacket::Video(p) = m {
            again.push((p.pts, p.dts));
        }
    }
    let first: Vec<(i64, i64)> = packets.iter().map(|p| (p.pts, p.dts)).collect();
    assert_eq!(again, first);
}
