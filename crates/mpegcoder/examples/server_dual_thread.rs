//! mpegCoder's `server-dual-procs.py` in Rust: a decoder thread and a pusher thread joined by
//! a bounded queue of 20 items. The decoder first sends its parameters (the configDict), then
//! every frame, then `None`; the pusher builds its server from those parameters and serves
//! each frame with `serve_frame_block`, which waits until the frame is due.
//!
//! ```text
//! cargo run --example server_dual_thread -- test-video.mp4 rtsp://localhost:8554/video
//! ```
#![forbid(unsafe_code)]

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use mpegcoder::codec::{Decoder, DecoderOptions, EncoderConfig, Frame, PixelLayout, VideoParams};
use mpegcoder::{Server, ServerConfig};

enum Item {
    Params(Box<VideoParams>),
    Frame(Frame),
    End,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(url)) = (args.next(), args.next()) else {
        eprintln!("usage: server_dual_thread INPUT URL");
        std::process::exit(2);
    };
    let (tx, rx) = sync_channel::<Item>(20);
    let decoder = std::thread::spawn(move || decode(&input, tx));
    let pusher = std::thread::spawn(move || serve(&url, rx));
    let pushed = pusher.join();
    let decoded = decoder.join();
    for (what, result) in [("pusher", pushed), ("decoder", decoded)] {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("error: {what}: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("error: the {what} thread panicked");
                std::process::exit(1);
            }
        }
    }
}

fn decode(input: &str, tx: SyncSender<Item>) -> Result<(), Error> {
    let opened = Decoder::open(
        input,
        DecoderOptions::default().with_output(PixelLayout::Yuv420p),
    );
    let mut decoder = match opened {
        Ok(d) => d,
        Err(e) => {
            // Tell the pusher there is nothing to push, then report.
            let _ = tx.send(Item::End);
            return Err(e.into());
        }
    };
    if tx
        .send(Item::Params(Box::new(decoder.params().clone())))
        .is_err()
    {
        return Ok(()); // the pusher gave up
    }
    while let Some(gop) = decoder.extract_gop()? {
        for frame in gop {
            if tx.send(Item::Frame(frame)).is_err() {
                return Ok(());
            }
        }
    }
    let _ = tx.send(Item::End);
    Ok(())
}

fn serve(url: &str, rx: Receiver<Item>) -> Result<(), Error> {
    let params = match rx.recv() {
        Ok(Item::Params(p)) => p,
        _ => return Err("the decoder sent no parameters".into()),
    };
    // Inherit the decoder's parameters (the configDict); more B-frames, as the original
    // example's maxBframe=16.
    let mut encoder = EncoderConfig::from_params(&params);
    encoder.max_b_frames = 16;
    let config = ServerConfig::encode(encoder, url);
    let mut server = Server::open(config)?;
    while let Ok(Item::Frame(frame)) = rx.recv() {
        server.serve_frame_block(&frame)?;
    }
    let stats = server.close()?;
    println!(
        "sent {} frames in {:.2} s (stream {:.2} s)",
        stats.frames_sent, stats.elapsed_s, stats.stream_time_s
    );
    Ok(())
}
