//! Property: GOPs partition the frames exactly, for several GOP sizes and B-frame settings,
//! whatever random access happens in between; exact seeks agree with sequential decoding.

mod common;

use common::*;
use mpegcoder_codec::{Decoder, DecoderOptions, Frame, PixelLayout, Position};
use proptest::prelude::*;

/// (GOP size, max B-frames) of the generated clips.
const VARIANTS: &[(u32, u32)] = &[(1, 0), (5, 0), (8, 2), (10, 3), (30, 1), (6, 1)];

fn yuv() -> DecoderOptions {
    DecoderOptions::default().with_output(PixelLayout::Yuv420p)
}

fn summary(f: &Frame) -> (u64, String, bool) {
    (f.index, f.md5_hex().expect("md5"), f.key)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn gops_partition_the_frames(
        variant in 0..VARIANTS.len(),
        ts in any::<bool>(),
        probes in proptest::collection::vec(0u64..30, 0..5),
        reset in 0u64..30,
    ) {
        if !have_ffmpeg("gops_partition_the_frames") {
            return Ok(());
        }
        let (gop, bf) = VARIANTS[variant];
        let path = h264_clip("1", gop, bf, if ts { "ts" } else { "mp4" });
        let seq: Vec<(u64, String, bool)> = {
            let mut d = Decoder::open(&path, yuv()).expect("open");
            d.frames().map(|f| summary(&f.expect("decode"))).collect()
        };
        prop_assert_eq!(seq.len(), 30);

        // Successive GOPs, with random exact seeks in between.
        let mut d = Decoder::open(&path, yuv()).expect("open");
        let mut gops: Vec<Vec<(u64, String, bool)>> = Vec::new();
        let mut probes = probes.into_iter();
        while let Some(g) = d.extract_gop().expect("gop") {
            gops.push(g.iter().map(summary).collect());
            if let Some(p) = probes.next() {
                let got: Vec<_> = d.extract_frame(p, 2).expect("extract").iter().map(summary).collect();
                let want = &seq[p as usize..(p as usize + 2).min(seq.len())];
                prop_assert_eq!(&got[..], want, "exact seek to {}", p);
            }
        }
        let flat: Vec<_> = gops.iter().flatten().cloned().collect();
        prop_assert_eq!(&flat, &seq, "every frame in exactly one GOP, in order");
        for g in &gops {
            prop_assert!(g[0].2, "GOP starting at {} starts with a key frame", g[0].0);
            prop_assert!(g[1..].iter().all(|f| !f.2), "only the first frame is a key frame");
            prop_assert!(g.len() <= gop as usize, "GOP of {} frames for -g {}", g.len(), gop);
        }

        // Resetting to a frame gives the GOP that contains it.
        d.reset_gop_position(Position::Frame(reset)).expect("reset");
        let g: Vec<_> = d.extract_gop().expect("gop").expect("a GOP").iter().map(summary).collect();
        let first = g[0].0;
        prop_assert!(first <= reset && reset < first + g.len() as u64);
        prop_assert!(gops.contains(&g), "the same GOP as sequential extraction");
    }
}
