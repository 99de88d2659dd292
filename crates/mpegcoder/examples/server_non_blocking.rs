//! mpegCoder's `server-non-blocking.py` in Rust: one thread decodes GOP by GOP and serves each
//! frame without waiting (`serve_frame`); every 10 frames it sleeps `wait_ref()`, half of how
//! far the pushed stream is ahead of the playing time.
//!
//! ```text
//! cargo run --example server_non_blocking -- test-video.mp4 rtsp://localhost:8554/video
//! ```
#![forbid(unsafe_code)]

use mpegcoder::codec::{Decoder, DecoderOptions, PixelLayout};
use mpegcoder::{Server, ServerConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(url)) = (args.next(), args.next()) else {
        eprintln!("usage: server_non_blocking INPUT URL");
        std::process::exit(2);
    };
    if let Err(e) = run(&input, &url) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(input: &str, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut decoder = Decoder::open(
        input,
        DecoderOptions::default().with_output(PixelLayout::Yuv420p),
    )?;
    // Inherit most parameters from the decoder; encode with libx264 (the default).
    let config = ServerConfig::from_params(decoder.params(), url);
    let mut server = Server::open(config)?; // marks the start time
    let mut since_sync = 0;
    while let Some(gop) = decoder.extract_gop()? {
        for frame in &gop {
            server.serve_frame(frame)?;
            since_sync += 1;
            if since_sync == 10 {
                std::thread::sleep(server.wait_ref());
                since_sync = 0;
            }
        }
    }
    // Flush the encoder's delayed frames (paced) and tear down.
    let stats = server.close()?;
    println!(
        "sent {} frames in {:.2} s (stream {:.2} s)",
        stats.frames_sent, stats.elapsed_s, stats.stream_time_s
    );
    Ok(())
}
