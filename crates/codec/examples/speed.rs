//! Prints decode and encode speeds for a video file.
//!
//! ```text
//! cargo run --release -p mpegcoder-codec --example speed -- INPUT [MAX_FRAMES]
//! ```
//!
//! Decodes the file with automatic and single-threaded frame threading, to YUV420P and to RGB24,
//! then encodes the first MAX_FRAMES (default 300) YUV420P frames with libx264 presets
//! ultrafast and veryfast (B-frames, automatic threads).

use std::error::Error;
use std::time::Instant;

use mpegcoder_codec::{Decoder, DecoderOptions, Encoder, Frame, PixelLayout};

fn decode(path: &str, output: PixelLayout, threads: usize) -> Result<(usize, f64), Box<dyn Error>> {
    let options = DecoderOptions::default()
        .with_output(output)
        .with_threads(threads);
    let mut decoder = Decoder::open(path, options)?;
    let start = Instant::now();
    let mut n = 0;
    while decoder.next_frame()?.is_some() {
        n += 1;
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        return Err("usage: speed INPUT [MAX_FRAMES]".into());
    };
    let max: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(300);

    let decoder = Decoder::open(&path, DecoderOptions::default())?;
    let p = decoder.params();
    println!(
        "{path}: {}x{} {} {} fps",
        p.width, p.height, p.codec, p.frame_rate
    );
    for (layout, threads) in [
        (PixelLayout::Yuv420p, 0),
        (PixelLayout::Yuv420p, 1),
        (PixelLayout::Rgb24, 0),
    ] {
        let (n, secs) = decode(&path, layout, threads)?;
        let t = if threads == 0 {
            "auto".to_owned()
        } else {
            threads.to_string()
        };
        println!(
            "decode to {layout:<7} threads {t:<4}: {n} frames in {secs:.2} s = {:.0} fps",
            n as f64 / secs
        );
    }

    let options = DecoderOptions::default().with_output(PixelLayout::Yuv420p);
    let mut decoder = Decoder::open(&path, options)?;
    let frames: Vec<Frame> = decoder.frames().take(max).collect::<Result<_, _>>()?;
    for preset in ["ultrafast", "veryfast"] {
        let config = decoder
            .encoder_config()
            .with_preset(preset)
            .with_max_b_frames(2)
            .with_bit_rate(4_000_000);
        let mut encoder = Encoder::new(config)?;
        let start = Instant::now();
        let mut packets = Vec::new();
        for f in &frames {
            packets.extend(encoder.encode(f)?);
        }
        packets.extend(encoder.finish()?);
        let secs = start.elapsed().as_secs_f64();
        let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
        let reordered = packets.iter().filter(|p| p.pts != p.dts).count();
        println!(
            "encode {preset:<9}: {} frames in {secs:.2} s = {:.0} fps, {bytes} bytes, {reordered} packets with pts != dts",
            frames.len(),
            frames.len() as f64 / secs
        );
    }
    Ok(())
}
