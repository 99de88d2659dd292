//! Encoder round trips: frame count, B-frames, timestamps, SPS/PPS placement, quality, and an
//! independent decode by the ffmpeg CLI.

mod common;

use common::*;
use mpegcoder_codec::{
    Decoder, DecoderOptions, EncodedPacket, Encoder, EncoderConfig, Frame, PacketDecoder,
    PacketDecoderOptions, PixelLayout, Rational,
};

fn decode_all(path: &std::path::Path, opts: DecoderOptions) -> Vec<Frame> {
    let mut d = Decoder::open(path, opts).expect("open");
    d.frames().collect::<Result<_, _>>().expect("decode")
}

fn yuv() -> DecoderOptions {
    DecoderOptions::default().with_output(PixelLayout::Yuv420p)
}

/// PSNR in dB over all bytes of two equally sized buffers.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

fn decode_packets(extradata: &[u8], packets: &[EncodedPacket], tb: Rational) -> Vec<Frame> {
    let opts = PacketDecoderOptions::default().with_output(PixelLayout::Yuv420p);
    let mut dec = PacketDecoder::new(extradata, tb, opts).expect("packet decoder");
    let mut frames = Vec::new();
    for p in packets {
        frames.extend(dec.decode(&p.data, p.pts).expect("decode"));
    }
    frames.extend(dec.flush().expect("flush"));
    frames
}

fn check_headers(extradata: &[u8], packets: &[EncodedPacket]) {
    assert_eq!(
        nal_types(extradata),
        vec![7, 8],
        "extradata is Annex B SPS + PPS"
    );
    for p in packets {
        let types = nal_types(&p.data);
        let idr = types.iter().position(|&t| t == 5);
        assert_eq!(
            p.key,
            idr.is_some(),
            "key flag marks IDR access units: {types:?} pts {} dts {}",
            p.pts,
            p.dts
        );
        if let Some(idr) = idr {
            let sps = types
                .iter()
                .position(|&t| t == 7)
                .expect("SPS in-band before IDR");
            let pps = types
                .iter()
                .position(|&t| t == 8)
                .expect("PPS in-band before IDR");
            assert!(sps < pps && pps < idr, "order SPS, PPS, IDR: {types:?}");
        }
    }
}

#[test]
fn round_trip_with_b_frames() {
    if !have_ffmpeg("round_trip_with_b_frames") {
        return;
    }
    let src = bframes_mp4();
    let source = decode_all(&src, yuv());
    assert_eq!(source.len(), 60);
    let d = Decoder::open(&src, yuv()).expect("open");
    let config = d
        .encoder_config()
        .with_bit_rate(1_000_000)
        .with_gop_size(12)
        .with_max_b_frames(2)
        .with_preset("veryfast");
    assert_eq!(
        config.time_base,
        Rational::new(1, 15360),
        "inherits the stream time base"
    );
    let mut enc = Encoder::new(config).expect("encoder");
    let extradata = enc.extradata().clone();
    let mut packets = Vec::new();
    for f in &source {
        packets.extend(enc.encode(f).expect("encode"));
    }
    let before_finish = packets.len();
    packets.extend(enc.finish().expect("finish"));
    assert!(before_finish < 60, "libx264 delays frames until finish");
    assert!(enc.finish().expect("finish again").is_empty());
    assert!(enc.encode(&source[0]).is_err(), "no frames after finish");

    assert_eq!(packets.len(), 60, "one access unit per frame");
    assert!(
        packets.iter().any(|p| p.pts != p.dts),
        "pts != dts with B-frames"
    );
    assert!(
        packets.windows(2).any(|w| w[1].pts < w[0].pts),
        "B-frames: some frame is shown before one decoded earlier"
    );
    for p in &packets {
        assert!(p.pts >= p.dts, "pts {} < dts {}", p.pts, p.dts);
        assert_eq!(p.time_base, enc.time_base());
    }
    for w in packets.windows(2) {
        assert!(w[1].dts > w[0].dts, "dts increases");
    }
    let mut pts: Vec<i64> = packets.iter().map(|p| p.pts).collect();
    pts.sort_unstable();
    let src_pts: Vec<i64> = source.iter().map(|f| f.pts).collect();
    assert_eq!(pts, src_pts, "source timestamps kept");
    assert_eq!(
        packets.iter().filter(|p| p.key).count(),
        5,
        "an IDR every 12 frames"
    );
    check_headers(&extradata, &packets);

    // About the requested bit rate (2 s of video).
    let bits: usize = packets.iter().map(|p| p.data.len() * 8).sum();
    let rate = bits as f64 / 2.0;
    assert!(
        (400_000.0..1_600_000.0).contains(&rate),
        "bit rate {rate} b/s"
    );

    // Decode back: same count, same timestamps, close to the source.
    let decoded = decode_packets(&extradata, &packets, enc.time_base());
    assert_eq!(decoded.len(), 60);
    let mut total = 0.0;
    for (a, b) in decoded.iter().zip(&source) {
        assert_eq!(a.pts, b.pts);
        let p = psnr(&a.data, &b.data);
        assert!(p > 30.0, "frame {}: PSNR {p:.1} dB", b.index);
        total += p;
    }
    let mean = total / 60.0;
    assert!(mean > 35.0, "mean PSNR {mean:.1} dB");

    // An independent decoder (the ffmpeg CLI) reads the Annex B stream the same way; it needs
    // no extradata because SPS/PPS are in-band.
    let out = fixture_dir().join(format!("roundtrip-{}.h264", std::process::id()));
    let stream: Vec<u8> = packets
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    std::fs::write(&out, stream).expect("write");
    let reference = framemd5(&out);
    let _ = std::fs::remove_file(&out);
    let ours: Vec<String> = decoded.iter().map(|f| f.md5_hex().expect("md5")).collect();
    assert_eq!(ours, reference);
}

#[test]
fn rgb_buffers_scaled_and_timestamped_by_frame_rate() {
    if !have_ffmpeg("rgb_buffers_scaled_and_timestamped_by_frame_rate") {
        return;
    }
    let src = bframes_mp4();
    let rgb = decode_all(&src, DecoderOptions::default());
    let small = decode_all(
        &src,
        DecoderOptions::default()
            .with_width_dst(160)
            .with_height_dst(120)
            .with_output(PixelLayout::Yuv420p),
    );
    let config = EncoderConfig::new(160, 120, Rational::new(25, 1))
        .with_source_size(320, 240)
        .with_bit_rate(400_000)
        .with_preset("ultrafast");
    let mut enc = Encoder::new(config).expect("encoder");
    assert_eq!(enc.time_base(), Rational::new(1, 90_000));
    let mut packets = Vec::new();
    for f in rgb.iter().take(25) {
        assert_eq!(f.layout, PixelLayout::Rgb24);
        packets.extend(enc.encode_rgb24(&f.data).expect("encode"));
    }
    packets.extend(enc.finish().expect("finish"));
    assert_eq!(packets.len(), 25);
    for (n, p) in packets.iter().enumerate() {
        assert_eq!(p.pts, p.dts, "no B-frames configured");
        assert_eq!(p.pts, n as i64 * 3600, "frame n at n/25 s");
    }
    check_headers(enc.extradata(), &packets);
    let decoded = decode_packets(enc.extradata(), &packets, enc.time_base());
    assert_eq!(decoded.len(), 25);
    for (a, b) in decoded.iter().zip(&small) {
        assert_eq!((a.width, a.height), (160, 120));
        let p = psnr(&a.data, &b.data);
        assert!(p > 28.0, "frame {}: PSNR {p:.1} dB", b.index);
    }
}

#[test]
fn zerolatency_emits_each_frame_at_once() {
    if !have_ffmpeg("zerolatency_emits_each_frame_at_once") {
        return;
    }
    let source = decode_all(&bframes_mp4(), yuv());
    let config = EncoderConfig::new(320, 240, Rational::new(30, 1))
        .with_tune("zerolatency")
        .with_preset("ultrafast")
        .with_gop_size(10)
        .with_bit_rate(500_000);
    let mut enc = Encoder::new(config).expect("encoder");
    for (n, f) in source.iter().take(20).enumerate() {
        let out = enc.encode_yuv420p(&f.data).expect("encode");
        assert_eq!(out.len(), 1, "frame {n} comes out immediately");
        assert_eq!(out[0].pts, out[0].dts);
        assert_eq!(out[0].key, n % 10 == 0);
    }
    assert!(enc.finish().expect("finish").is_empty());
}

#[test]
fn packet_decoder_reads_demuxed_annexb() {
    if !have_ffmpeg("packet_decoder_reads_demuxed_annexb") {
        return;
    }
    use mpegcoder_codec::{Demuxer, OpenOptions};
    let path = bframes_ts();
    let expected = framemd5(&path);
    let demuxer = Demuxer::open(&path, &OpenOptions::default()).expect("open");
    let tb = demuxer.time_base();
    let packets: Vec<_> = demuxer.collect::<Result<_, _>>().expect("read");
    // No parameter sets up front: they are in-band in the TS packets.
    let frames = decode_packets(&[], &packets, tb);
    let hashes: Vec<String> = frames.iter().map(|f| f.md5_hex().expect("md5")).collect();
    assert_eq!(hashes, expected);
    for w in frames.windows(2) {
        assert!(w[1].pts > w[0].pts);
    }
}

#[test]
fn a_forced_key_frame_is_an_idr_with_its_parameter_sets() {
    if !have_ffmpeg("a_forced_key_frame_is_an_idr_with_its_parameter_sets") {
        return;
    }
    let source = decode_all(&bframes_mp4(), yuv());
    let d = Decoder::open(bframes_mp4(), yuv()).expect("open");
    let config = d
        .encoder_config()
        .with_gop_size(250)
        .with_max_b_frames(2)
        .with_preset("veryfast");
    let mut enc = Encoder::new(config).expect("encoder");
    let extradata = enc.extradata().clone();
    let mut packets = Vec::new();
    for (i, f) in source.iter().enumerate() {
        if i == 23 {
            enc.force_key_frame();
        }
        packets.extend(enc.encode(f).expect("encode"));
    }
    packets.extend(enc.finish().expect("finish"));
    let keys: Vec<i64> = packets.iter().filter(|p| p.key).map(|p| p.pts).collect();
    assert_eq!(
        keys,
        [source[0].pts, source[23].pts],
        "the first frame and the forced one are the only key frames of a 250-frame GOP"
    );
    check_headers(&extradata, &packets);
    assert_eq!(
        decode_packets(&extradata, &packets, enc.time_base()).len(),
        60
    );
}
