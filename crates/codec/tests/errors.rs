//! Bad input gets a typed error, never a panic.

mod common;

use common::*;
use mpegcoder_codec::{
    CodecError, Decoder, DecoderOptions, Demuxer, Encoder, EncoderConfig, FfmpegError, Frame,
    OpenOptions, PacketDecoder, PacketDecoderOptions, PixelLayout, Rational,
};

fn scratch(name: &str, data: &[u8]) -> std::path::PathBuf {
    let path = fixture_dir().join(format!("err-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("write");
    path
}

#[test]
fn missing_file_is_not_found() {
    let e =
        Decoder::open("/nonexistent/dir/clip.mp4", DecoderOptions::default()).expect_err("missing");
    assert!(
        matches!(e, CodecError::NotFound { ref url } if url.contains("clip.mp4")),
        "{e:?}"
    );
    assert!(e.to_string().contains("/nonexistent/dir/clip.mp4"));
    let e =
        Demuxer::open("/nonexistent/dir/clip.mp4", &OpenOptions::default()).expect_err("missing");
    assert!(matches!(e, CodecError::NotFound { .. }), "{e:?}");
}

#[test]
fn empty_text_and_binary_junk_do_not_open() {
    for (name, data) in [
        ("empty.mp4", &b""[..]),
        (
            "notes.txt",
            &b"this is not a video, just some text\nline two\n"[..],
        ),
        ("zeros.mp4", &[0u8; 4096][..]),
    ] {
        let path = scratch(name, data);
        let e = Decoder::open(&path, DecoderOptions::default()).expect_err(name);
        let _ = std::fs::remove_file(&path);
        assert!(matches!(e, CodecError::Open { .. }), "{name}: {e:?}");
        let text = e.to_string();
        assert!(
            text.contains(name),
            "{name}: message names the file: {text}"
        );
    }
}

#[test]
fn invalid_urls_are_rejected() {
    let e = Decoder::open("", DecoderOptions::default()).expect_err("empty url");
    assert!(matches!(e, CodecError::InvalidUrl { .. }), "{e:?}");
    let e = Decoder::open("a\0b.mp4", DecoderOptions::default()).expect_err("nul");
    assert!(matches!(e, CodecError::InvalidUrl { .. }), "{e:?}");
    let opts = OpenOptions::default().with_format_option("bad\0key", "v");
    let e = Demuxer::open("x.mp4", &opts).expect_err("nul option");
    assert!(matches!(e, CodecError::InvalidArgument { .. }), "{e:?}");
    // Credentials never appear in messages.
    let e = Decoder::open(
        "rtsp://user:secret@127.0.0.1:1/x",
        DecoderOptions::default(),
    )
    .expect_err("nothing listens on port 1");
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[test]
fn truncated_mp4_fails_cleanly() {
    if !have_ffmpeg("truncated_mp4_fails_cleanly") {
        return;
    }
    // moov at the end (ffmpeg's default): cut in half, the header is gone.
    let full = std::fs::read(bframes_mp4()).expect("read");
    let path = scratch("half.mp4", &full[..full.len() / 2]);
    let e = Decoder::open(&path, DecoderOptions::default()).expect_err("truncated");
    assert!(matches!(e, CodecError::Open { .. }), "{e:?}");

    // moov first (faststart): opens, then the data runs out early.
    let src = bframes_mp4();
    let s = src.to_str().expect("utf-8").to_owned();
    let fast = clip(&["-i", &s, "-c", "copy", "-movflags", "+faststart"], "mp4");
    let full = std::fs::read(fast).expect("read");
    let path2 = scratch("half-faststart.mp4", &full[..full.len() / 2]);
    let mut d = Decoder::open(&path2, DecoderOptions::default()).expect("header is intact");
    assert_eq!(
        d.params().frame_count,
        60,
        "the header still claims 60 frames"
    );
    let mut n = 0;
    let result = loop {
        match d.next_frame() {
            Ok(Some(_)) => n += 1,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(n < 60, "decoded {n} frames of a half file");
    let e = result.expect_err("a cut file is damaged, not just shorter");
    assert!(matches!(e, CodecError::Damaged { .. }), "{e:?}");
    // Seeking past the real data fails with an error, not a panic.
    let _ = d.extract_frame(59, 1);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&path2);
}

#[test]
fn audio_only_file_has_no_video_stream() {
    if !have_ffmpeg("audio_only_file_has_no_video_stream") {
        return;
    }
    let path = clip(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-c:a",
            "aac",
        ],
        "m4a",
    );
    let e = Decoder::open(&path, DecoderOptions::default()).expect_err("audio only");
    assert!(matches!(e, CodecError::NoVideoStream { .. }), "{e:?}");
    let e = Demuxer::open(&path, &OpenOptions::default()).expect_err("audio only");
    assert!(matches!(e, CodecError::NoVideoStream { .. }), "{e:?}");
}

#[test]
fn bad_decoder_options() {
    if !have_ffmpeg("bad_decoder_options") {
        return;
    }
    let opts = DecoderOptions::default()
        .with_width_dst(0)
        .with_height_dst(100);
    let e = Decoder::open(bframes_mp4(), opts).expect_err("zero width");
    assert!(matches!(e, CodecError::InvalidFrameSize { .. }), "{e:?}");
}

fn small_encoder() -> Encoder {
    Encoder::new(EncoderConfig::new(64, 48, Rational::new(30, 1)).with_preset("ultrafast"))
        .expect("encoder")
}

#[test]
fn encoder_rejects_bad_frames() {
    let mut enc = small_encoder();
    let e = enc.encode_rgb24(&[]).expect_err("zero-size buffer");
    assert!(
        matches!(e, CodecError::BufferSize { actual: 0, expected, .. } if expected == 64 * 48 * 3),
        "{e:?}"
    );
    let e = enc.encode_rgb24(&[0u8; 100]).expect_err("short buffer");
    assert!(matches!(e, CodecError::BufferSize { .. }), "{e:?}");
    let frame = Frame::from_packed(
        PixelLayout::Yuv420p,
        32,
        24,
        vec![0u8; 32 * 24 * 3 / 2],
        0,
        Rational::new(1, 30),
    )
    .expect("frame");
    let e = enc.encode(&frame).expect_err("mismatched size");
    assert!(
        matches!(
            e,
            CodecError::FrameSizeMismatch {
                expected_width: 64,
                actual_width: 32,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(Frame::from_packed(
        PixelLayout::Rgb24,
        0,
        0,
        Vec::<u8>::new(),
        0,
        Rational::new(1, 30)
    )
    .is_err());

    // Timestamps must increase.
    let f = |pts| {
        Frame::from_packed(
            PixelLayout::Rgb24,
            64,
            48,
            vec![128u8; 64 * 48 * 3],
            pts,
            Rational::new(1, 30),
        )
        .expect("frame")
    };
    let mut n = enc.encode(&f(5)).expect("first frame").len();
    let e = enc.encode(&f(5)).expect_err("same pts");
    assert!(matches!(e, CodecError::NonMonotonicPts { .. }), "{e:?}");
    n += enc.encode(&f(6)).expect("next frame").len();
    n += enc.finish().expect("finish").len();
    assert_eq!(n, 2, "the rejected frame was not encoded");
    assert!(matches!(enc.encode(&f(7)), Err(CodecError::Finished)));
}

#[test]
fn encoder_rejects_bad_configs() {
    let base = EncoderConfig::new(64, 48, Rational::new(30, 1));
    for (what, c) in [
        ("odd width", base.clone().with_size(63, 48)),
        ("zero size", base.clone().with_size(0, 0)),
        ("zero source", base.clone().with_source_size(0, 48)),
        ("zero gop", base.clone().with_gop_size(0)),
        ("too many B", base.clone().with_max_b_frames(17)),
        (
            "zero rate",
            base.clone().with_frame_rate(Rational::new(0, 1)),
        ),
        (
            "bad time base",
            base.clone().with_time_base(Rational::new(1, 0)),
        ),
    ] {
        let e = Encoder::new(c).expect_err(what);
        assert!(
            matches!(e, CodecError::InvalidConfig { .. }),
            "{what}: {e:?}"
        );
    }
    // libx264's names are checked before it opens: which option, the value, what is accepted.
    for (c, needles) in [
        (
            base.clone().with_preset("warp-speed"),
            ["preset", "\"warp-speed\"", "ultrafast, superfast"],
        ),
        (
            base.clone().with_tune("speed"),
            ["tune", "\"speed\"", "film, animation"],
        ),
        (
            base.clone().with_tune("film,grain"),
            ["tune", "film and grain", "at most one"],
        ),
        (
            base.clone().with_profile("high10"),
            ["profile", "\"high10\"", "baseline, main, high"],
        ),
    ] {
        let e = Encoder::new(c).expect_err("bad name");
        assert!(matches!(e, CodecError::InvalidConfig { .. }), "{e:?}");
        for n in needles {
            assert!(e.to_string().contains(n), "{n:?} missing in: {e}");
        }
    }
    let ok = base
        .clone()
        .with_preset("Fast")
        .with_tune("fastdecode,zerolatency")
        .with_profile("main");
    Encoder::new(ok).expect("names libx264 accepts");
    // The config is plain serde data.
    let json = serde_json::to_string(&base).expect("json");
    let back: EncoderConfig = serde_json::from_str(&json).expect("back");
    assert_eq!(back, base);
}

#[test]
fn packet_decoder_survives_garbage() {
    let mut d = PacketDecoder::new(
        &[],
        Rational::new(1, 90_000),
        PacketDecoderOptions::default(),
    )
    .expect("decoder");
    assert!(d.decode(&[], 0).expect("empty is ignored").is_empty());
    for (i, junk) in [
        &[0u8, 0, 0, 1, 0x65, 0xff, 0x00][..],
        &[0xde, 0xad, 0xbe, 0xef],
        &[0, 0, 1, 7, 1, 2],
    ]
    .iter()
    .enumerate()
    {
        // Either an error or no frame; never a panic.
        if let Ok(frames) = d.decode(junk, i as i64) {
            assert!(frames.is_empty());
        }
    }
    assert!(d.flush().expect("flush").is_empty());
    assert!(PacketDecoder::new(&[], Rational::new(0, 1), PacketDecoderOptions::default()).is_err());
    let avcc = [1u8, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0];
    let e = PacketDecoder::new(
        &avcc,
        Rational::new(1, 90_000),
        PacketDecoderOptions::default(),
    )
    .expect_err("avcC is not Annex B");
    assert!(matches!(e, CodecError::InvalidArgument { .. }), "{e:?}");
}

/// The error and its sources joined by ": ", as the CLI prints them.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        next = cause.source();
    }
    line
}

#[test]
fn ffmpeg_causes_are_sources_said_once() {
    use std::error::Error as _;

    let path = scratch("cause.txt", b"this is not a video\n");
    let e = Decoder::open(&path, DecoderOptions::default()).expect_err("not a video");
    let _ = std::fs::remove_file(&path);
    assert!(matches!(e, CodecError::Open { .. }), "{e:?}");
    let source = e.source().expect("FFmpeg's error is the source");
    let cause = source.to_string();
    assert!(source.downcast_ref::<FfmpegError>().is_some(), "{source:?}");
    assert!(!cause.is_empty());
    assert!(!e.to_string().contains(&cause), "said twice: {e}");
    assert_eq!(
        one_line(&e),
        format!("cannot open {}: {cause}", path.display())
    );

    // Lossless coding (crf 0) is beyond the Main profile: libx264 itself refuses to open.
    let lossless_main = EncoderConfig::new(64, 48, Rational::new(30, 1))
        .with_crf(0.0)
        .with_profile("main");
    let e = Encoder::new(lossless_main).expect_err("main profile cannot be lossless");
    assert!(matches!(e, CodecError::EncoderOpen { .. }), "{e:?}");
    let source = e.source().expect("FFmpeg's error is the source");
    assert!(source.downcast_ref::<FfmpegError>().is_some(), "{source:?}");
    assert!(
        !e.to_string().contains(&source.to_string()),
        "said twice: {e}"
    );

    // Errors found by the crate itself say their reason in the message and have no source.
    let e = Decoder::open("", DecoderOptions::default()).expect_err("empty url");
    assert!(e.source().is_none(), "{e:?}");
    assert_eq!(one_line(&e), e.to_string());
}

/// Byte positions of the video packets of `path`, in stored order (ffprobe).
fn packet_positions(path: &std::path::Path) -> Vec<u64> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pos",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn damaged_files_end_after_the_last_complete_frame() {
    if !have_ffmpeg("damaged_files_end_after_the_last_complete_frame") {
        return;
    }
    // No B-frames: the frames of the first k packets are the first k frames.
    let src = h264_clip("2", 12, 0, "mp4");
    let s = src.to_str().expect("utf-8").to_owned();
    let fast = clip(&["-i", &s, "-c", "copy", "-movflags", "+faststart"], "mp4");
    let full = std::fs::read(&fast).expect("read");
    let all: Vec<_> = Demuxer::open(&fast, &OpenOptions::default())
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("the whole file reads without damage");
    assert_eq!(all.len(), 60);
    let hashes = framemd5(&fast);
    let pos = packet_positions(&fast);
    assert_eq!(pos.len(), 60);
    let k = 37usize;
    let start = usize::try_from(pos[k]).expect("position");
    // Cut inside packet k (the demuxer reads it short), and exactly before it (no packet is
    // short, but the index lists frames past the end).
    for (cut, detail) in [
        (start + 10, "bytes could be read"),
        (start, "the file ends at byte"),
    ] {
        let path = scratch(&format!("cut-{cut}.mp4"), &full[..cut]);
        let mut demuxer = Demuxer::open(&path, &OpenOptions::default()).expect("header intact");
        let mut got = Vec::new();
        let e = loop {
            match demuxer.next_packet() {
                Ok(Some(p)) => got.push(p),
                Ok(None) => panic!("cut at {cut}: ended without an error"),
                Err(e) => break e,
            }
        };
        assert_eq!(got, all[..k], "cut at {cut}: the complete packets");
        assert!(
            matches!(e, CodecError::Damaged { frame: Some(f), .. } if f == k as u64),
            "cut at {cut}: {e:?}"
        );
        let line = e.to_string();
        assert!(
            line.contains("input is truncated or corrupt at frame 37"),
            "{line}"
        );
        assert!(line.contains(detail), "{line}");
        assert!(line.contains(&format!("cut-{cut}.mp4")), "{line}");

        let yuv = DecoderOptions::default().with_output(PixelLayout::Yuv420p);
        let mut decoder = Decoder::open(&path, yuv).expect("open");
        let mut frames = Vec::new();
        let e = loop {
            match decoder.next_frame() {
                Ok(Some(f)) => frames.push(f.md5_hex().expect("md5")),
                Ok(None) => panic!("cut at {cut}: decoding ended without an error"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            frames,
            hashes[..k],
            "cut at {cut}: the frames before the damage"
        );
        assert!(matches!(e, CodecError::Damaged { .. }), "{e:?}");
        // Indexing stops at the damage too: the frame count is what can be decoded.
        let mut decoder = Decoder::open(&path, DecoderOptions::default()).expect("open");
        assert_eq!(decoder.build_index().expect("index").len(), k);
        let _ = std::fs::remove_file(&path);
    }
}
