//! Decoding agrees with the ffmpeg CLI; exact seeking; GOPs; VFR timestamps; passthrough.

mod common;

use common::*;
use mpegcoder_codec::{
    Decoder, DecoderOptions, Demuxer, FrameCountSource, OpenOptions, PacketFormat, PixelLayout,
    Position, VideoParams,
};

fn yuv() -> DecoderOptions {
    DecoderOptions::default().with_output(PixelLayout::Yuv420p)
}

fn all_hashes(path: &std::path::Path) -> Vec<String> {
    let mut d = Decoder::open(path, yuv()).expect("open");
    let mut out = Vec::new();
    for (i, f) in d.frames().enumerate() {
        let f = f.expect("decode");
        assert_eq!(f.index, i as u64);
        out.push(f.md5_hex().expect("md5"));
    }
    out
}

#[test]
fn decoding_matches_ffmpeg_framemd5() {
    if !have_ffmpeg("decoding_matches_ffmpeg_framemd5") {
        return;
    }
    for path in [
        bframes_mp4(),
        bframes_ts(),
        bframes_h264(),
        vfr_mp4(),
        vfr_mkv(),
    ] {
        let expected = framemd5(&path);
        let mut d = Decoder::open(&path, yuv()).expect("open");
        assert_eq!((d.params().width, d.params().height), (320, 240));
        let mut hashes = Vec::new();
        let mut last_pts = None;
        while let Some(f) = d.next_frame().expect("decode") {
            assert_eq!(
                (f.width, f.height, f.layout),
                (320, 240, PixelLayout::Yuv420p)
            );
            assert_eq!(f.data.len(), 320 * 240 * 3 / 2);
            if let Some(p) = last_pts {
                assert!(f.pts > p, "{}: pts must increase", path.display());
            }
            last_pts = Some(f.pts);
            hashes.push(f.md5_hex().expect("md5"));
        }
        assert_eq!(
            hashes.len(),
            expected.len(),
            "{}: frame count",
            path.display()
        );
        assert_eq!(hashes, expected, "{}: per-frame MD5", path.display());
        assert_eq!(d.decode_errors(), 0);
        // The count in the header is exact for MP4, and always after indexing.
        if path.extension().is_some_and(|e| e == "mp4") {
            assert_eq!(d.params().frame_count_source, FrameCountSource::Container);
            assert_eq!(d.params().frame_count, expected.len() as u64);
        }
        let n = d.build_index().expect("index").len();
        assert_eq!(n, expected.len(), "{}: indexed count", path.display());
        assert_eq!(d.params().frame_count, expected.len() as u64);
        assert_eq!(d.params().frame_count_source, FrameCountSource::Index);
    }
}

#[test]
fn params_describe_the_stream_and_serialize() {
    if !have_ffmpeg("params_describe_the_stream_and_serialize") {
        return;
    }
    let mut d = Decoder::open(bframes_mp4(), DecoderOptions::default()).expect("open");
    let p = d.params().clone();
    assert_eq!(p.codec, "h264");
    assert_eq!(p.pixel_format, "yuv420p");
    assert_eq!(p.frame_rate.to_string(), "30/1");
    assert_eq!(p.avg_frame_rate.to_string(), "30/1");
    assert_eq!(p.frame_count, 60);
    assert!((p.duration_s.expect("duration") - 2.0).abs() < 0.01);
    assert!(p.bit_rate.expect("bit rate") > 10_000);
    d.build_index().expect("index");
    assert_eq!(d.params().gop_size, Some(12));
    assert_eq!(d.params().max_b_frames, Some(2));

    let json = serde_json::to_value(d.params()).expect("json");
    assert_eq!(json["frame_rate"], "30/1");
    assert_eq!(json["width"], 320);
    assert_eq!(json["frame_count_source"], "index");
    let back: VideoParams = serde_json::from_value(json).expect("from json");
    assert_eq!(&back, d.params());
}

#[test]
fn variable_frame_rate_keeps_real_timestamps() {
    if !have_ffmpeg("variable_frame_rate_keeps_real_timestamps") {
        return;
    }
    for path in [vfr_mp4(), vfr_mkv()] {
        let expected = ffprobe_frame_times(&path);
        let mut d = Decoder::open(&path, yuv()).expect("open");
        let times: Vec<f64> = d
            .frames()
            .map(|f| f.expect("decode").pts_seconds())
            .collect();
        assert_eq!(times.len(), expected.len());
        for (a, b) in times.iter().zip(&expected) {
            assert!(
                (a - b).abs() < 1e-6,
                "{}: {a} vs ffprobe {b}",
                path.display()
            );
        }
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let (min, max) = gaps
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), g| (lo.min(*g), hi.max(*g)));
        assert!(
            max > 3.0 * min,
            "{}: frame durations vary ({min}..{max})",
            path.display()
        );
    }
    let d = Decoder::open(vfr_mp4(), yuv()).expect("open");
    assert_ne!(d.params().frame_rate, d.params().avg_frame_rate);
}

#[test]
fn rgb_output_and_destination_size() {
    if !have_ffmpeg("rgb_output_and_destination_size") {
        return;
    }
    let path = bframes_mp4();
    let opts = DecoderOptions::default().with_width_dst(160);
    let mut d = Decoder::open(&path, opts).expect("open");
    assert_eq!(d.output_size(), (160, 120));
    let frames: Vec<_> = d.frames().collect::<Result<_, _>>().expect("decode");
    assert_eq!(frames.len(), 60);
    // Compare with ffmpeg's own scaler + RGB conversion: nearly the same pixels.
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(&path)
        .args([
            "-vf",
            "scale=160:120",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    let size = 160 * 120 * 3;
    assert_eq!(out.stdout.len(), size * 60);
    for (f, reference) in frames.iter().zip(out.stdout.chunks(size)) {
        assert_eq!(
            (f.width, f.height, f.layout),
            (160, 120, PixelLayout::Rgb24)
        );
        assert_eq!(f.data.len(), size);
        let diff: u64 = f
            .data
            .iter()
            .zip(reference)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = diff as f64 / size as f64;
        assert!(mean < 3.0, "frame {}: mean RGB difference {mean}", f.index);
    }
}

#[test]
fn exact_seek_returns_the_sequential_frames() {
    if !have_ffmpeg("exact_seek_returns_the_sequential_frames") {
        return;
    }
    for path in [bframes_mp4(), bframes_ts(), vfr_mp4(), bframes_h264()] {
        let seq = all_hashes(&path);
        let n = seq.len() as u64;
        let mut d = Decoder::open(&path, yuv()).expect("open");
        // Backwards, into the middle of GOPs, at key frames, across a GOP boundary, the end.
        for &i in &[n - 1, 13, 12, 11, 0, 35, 1, n - 2, 24, 23] {
            let before = d.frames_decoded();
            let frames = d.extract_frame(i, 3).expect("extract");
            let cost = d.frames_decoded() - before;
            eprintln!(
                "{}: extract_frame({i}, 3) decoded {cost} frames",
                path.display()
            );
            let want = &seq[i as usize..(i as usize + 3).min(seq.len())];
            let got: Vec<String> = frames.iter().map(|f| f.md5_hex().expect("md5")).collect();
            assert_eq!(got, want, "{}: frames from {i}", path.display());
            assert_eq!(frames[0].index, i);
            // Decoding continues after the extracted frames.
            if let Some(next) = d.next_frame().expect("next") {
                assert_eq!(next.index, i + 3);
                assert_eq!(next.md5_hex().expect("md5"), seq[i as usize + 3]);
            }
        }
        assert!(d.extract_frame(n, 1).is_err(), "past the end is an error");
    }
}

#[test]
fn seek_by_time_finds_the_frame_shown_then() {
    if !have_ffmpeg("seek_by_time_finds_the_frame_shown_then") {
        return;
    }
    let path = vfr_mp4();
    let seq = all_hashes(&path);
    let times = ffprobe_frame_times(&path);
    let mut d = Decoder::open(&path, yuv()).expect("open");
    for &t in &[1.5, 0.0, 0.12, 0.11, 1.0, 0.5, 1.97] {
        // The frame shown at t: the last one starting at or before it.
        let want = times
            .iter()
            .rposition(|&s| s - times[0] <= t + 1e-9)
            .expect("frame");
        let f = d.extract_frame_by_time(t, 1).expect("extract");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].index, want as u64, "t={t}");
        assert_eq!(f[0].md5_hex().expect("md5"), seq[want], "t={t}");
    }
    assert!(d.extract_frame_by_time(60.0, 1).is_err());
    assert!(d.extract_frame_by_time(-1.0, 1).is_err());
    assert!(d.extract_frame_by_time(f64::NAN, 1).is_err());
}

#[test]
fn gops_follow_reset_position() {
    if !have_ffmpeg("gops_follow_reset_position") {
        return;
    }
    let path = bframes_mp4();
    let seq = all_hashes(&path);
    let mut d = Decoder::open(&path, yuv()).expect("open");
    d.reset_gop_position(Position::Frame(30)).expect("reset");
    let gop = d.extract_gop().expect("gop").expect("some");
    assert_eq!(gop[0].index, 24);
    assert!(gop[0].key);
    assert_eq!(gop.len(), 12);
    assert_eq!(gop[0].md5_hex().expect("md5"), seq[24]);
    d.reset_gop_position(Position::Seconds(0.5)).expect("reset");
    let gop = d.extract_gop().expect("gop").expect("some");
    assert_eq!(gop[0].index, 12);
    // Extracting frames in between does not disturb the GOP sequence.
    d.extract_frame(50, 2).expect("extract");
    let gop = d.extract_gop().expect("gop").expect("some");
    assert_eq!(gop[0].index, 24);
    assert!(d.reset_gop_position(Position::Frame(60)).is_err());
}

#[test]
fn demuxer_gives_stored_packets_and_extradata() {
    if !have_ffmpeg("demuxer_gives_stored_packets_and_extradata") {
        return;
    }
    let mp4 = Demuxer::open(bframes_mp4(), &OpenOptions::default()).expect("open");
    assert_eq!(mp4.packet_format(), PacketFormat::LengthPrefixed);
    assert_eq!(mp4.extradata().first(), Some(&1), "avcC version 1");
    let mp4_packets: Vec<_> = mp4.collect::<Result<_, _>>().expect("read");
    assert_eq!(mp4_packets.len(), 60);
    assert!(mp4_packets[0].key);
    assert!(
        mp4_packets.iter().any(|p| p.pts != p.dts),
        "B-frames reorder"
    );
    for w in mp4_packets.windows(2) {
        assert!(w[1].dts > w[0].dts, "decode order");
    }
    for p in &mp4_packets {
        assert!(p.pts >= p.dts);
        // Length-prefixed: the first 4 bytes give the first NAL unit's size.
        let len = u32::from_be_bytes([p.data[0], p.data[1], p.data[2], p.data[3]]) as usize;
        assert!(len + 4 <= p.data.len());
    }
    assert_eq!(mp4_packets.iter().filter(|p| p.key).count(), 5);

    let mut ts = Demuxer::open(bframes_ts(), &OpenOptions::default()).expect("open");
    assert_eq!(ts.packet_format(), PacketFormat::AnnexB);
    let ts_packets: Vec<_> = ts.by_ref().collect::<Result<_, _>>().expect("read");
    assert_eq!(ts_packets.len(), 60);
    assert!(!ts.timestamps_synthesized());
    for p in &ts_packets {
        assert!(
            p.data.starts_with(&[0, 0, 1]) || p.data.starts_with(&[0, 0, 0, 1]),
            "Annex B"
        );
        assert!(
            nal_types(&p.data).iter().any(|&t| t == 1 || t == 5),
            "has a slice"
        );
    }
    for (a, b) in ts_packets.iter().zip(&mp4_packets) {
        assert_eq!(a.key, b.key);
        assert_eq!(a.pts - a.dts, (b.pts - b.dts) * 90_000 / 15_360);
    }
    // Rewind for loop playback.
    ts.rewind().expect("rewind");
    let again = ts.next_packet().expect("read").expect("packet");
    assert_eq!(again.data, ts_packets[0].data);

    let mut raw = Demuxer::open(bframes_h264(), &OpenOptions::default()).expect("open");
    let raw_packets: Vec<_> = raw.by_ref().collect::<Result<_, _>>().expect("read");
    assert_eq!(raw_packets.len(), 60);
    assert!(raw.timestamps_synthesized());
    for w in raw_packets.windows(2) {
        assert!(w[1].dts > w[0].dts);
    }
}
