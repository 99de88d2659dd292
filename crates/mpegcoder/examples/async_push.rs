//! Publishing a file from async code: `AsyncServer` on a multi-thread tokio runtime, in copy
//! mode (the H.264 packets pass through untouched), each packet sent when it is due
//! (`serve_packet_block`).
//!
//! Demuxing is blocking FFmpeg file I/O, so it runs on a blocking-pool thread
//! (`spawn_blocking`) and streams the packets to the async side through a small bounded
//! channel: the file is never read into memory whole, and the reader waits while the sender
//! is ahead.
//!
//! ```text
//! cargo run --release --example async_push -- test-video.mp4 rtmp://localhost/live/cam
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;

use mpegcoder::codec::{CodecError, Demuxer, EncodedPacket, OpenOptions};
use mpegcoder::{AsyncServer, PacketStream, ServerConfig, ServerStats};
use tokio::sync::{mpsc, oneshot};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Packets between the reader and the sender. The sender waits for each packet's deadline,
/// so a few are enough to keep it fed.
const PACKET_QUEUE: usize = 8;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(url)) = (args.next(), args.next()) else {
        eprintln!("usage: async_push INPUT URL");
        return ExitCode::from(2);
    };
    match push(input, &url).await {
        Ok(stats) => {
            println!(
                "sent {} frames in {:.2} s (stream {:.2} s), late {}",
                stats.frames_sent, stats.elapsed_s, stats.stream_time_s, stats.late_frames
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn push(input: String, url: &str) -> Result<ServerStats, Error> {
    let (stream_tx, stream_rx) = oneshot::channel();
    let (packet_tx, mut packets) = mpsc::channel(PACKET_QUEUE);
    let reader = tokio::task::spawn_blocking(move || read(&input, stream_tx, packet_tx));

    // The reader first describes the stream (its global header and time base); without it
    // it failed, and its result says why.
    let Ok(stream) = stream_rx.await else {
        reader.await??;
        return Err("the reader ended without describing the stream".into());
    };
    let mut server = AsyncServer::open(ServerConfig::packets(stream, url)).await?;
    while let Some(packet) = packets.recv().await {
        server.serve_packet_block(&packet).await?;
    }
    // The channel closes when the reader is done: at the end of the file, or on an error.
    reader.await??;
    Ok(server.close().await?)
}

/// Runs on a blocking-pool thread: opens the input, sends its description, then every
/// packet, waiting while the channel is full. Returns early, without error, when the async
/// side has gone (it failed and dropped its receiver).
fn read(
    input: &str,
    stream_tx: oneshot::Sender<PacketStream>,
    packet_tx: mpsc::Sender<EncodedPacket>,
) -> Result<(), CodecError> {
    let mut demuxer = Demuxer::open(input, &OpenOptions::default())?;
    let params = demuxer.params();
    let stream = PacketStream::new(demuxer.extradata().clone(), demuxer.time_base())
        .with_frame_rate(Some(params.best_frame_rate()))
        .with_bit_rate(params.bit_rate);
    if stream_tx.send(stream).is_err() {
        return Ok(());
    }
    while let Some(packet) = demuxer.next_packet()? {
        // Not a runtime thread: waiting here is allowed.
        if packet_tx.blocking_send(packet).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}
