//! The bench's own RTMP source server, for the relay measurement: it serves the clip to one
//! player (the relay under test), paced by the clip's decoding times, with `TCP_NODELAY` set,
//! and records the instant each frame's write to the player's socket returned, with the hash
//! of the frame's slices ([`AuDigest`]).
//!
//! Why not only nginx: nginx-rtmp never sets `TCP_NODELAY` on its connections, so a frame it
//! forwards to a player that has not acknowledged the previous segment waits for the
//! player's delayed ACK (about 40 ms on Linux); that happens to each player on its own, a
//! few percent of the frames, and dominates the tail of any difference between two players
//! of nginx. With this source, the time a frame left the source is known exactly and no
//! server stall sits on the path: sink arrival − source write is what the relay adds (its
//! receive, processing and send) plus one loopback hop.
//!
//! rml_rtmp's `ServerSession` does the protocol: handshake, `connect` and `play` accepted,
//! then `onMetaData`, the AVC sequence header (the MP4's avcC) and one NALU tag per frame
//! (composition time from pts − dts); at the end `NetStream.Play.Complete`, then the
//! connection closes. One thread; between frames it takes what the player sent
//! (acknowledgements) without blocking.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use mpegcoder::codec::{Demuxer, OpenOptions, PacketFormat};
use mpegcoder::pacer::clock::{sleep_until_with, SleepTail};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

use crate::sink::digest::{avcc_length_size, AuDigest};

/// One frame of the clip, ready to send.
#[derive(Debug, Clone)]
pub struct SourceFrame {
    /// The FLV video tag body (AVC NALU tag).
    pub body: Bytes,
    /// RTMP timestamp: decoding time, ms from the first frame's.
    pub timestamp_ms: u32,
    /// When it is due after the start.
    pub due: Duration,
    /// The hash of its VCL NAL units.
    pub hash: Option<u64>,
}

/// The clip as the source serves it.
#[derive(Debug, Clone)]
pub struct SourceClip {
    /// The AVC sequence header tag body.
    pub sequence_header: Bytes,
    /// Width and height, pixels.
    pub size: (u32, u32),
    /// Frames per second.
    pub fps: f64,
    /// Every frame, in decoding order.
    pub frames: Vec<SourceFrame>,
}

/// Reads an MP4 (length-prefixed H.264) clip into tag bodies.
pub fn load(path: &Path) -> Result<SourceClip> {
    let mut demuxer = Demuxer::open(path, &OpenOptions::default())
        .with_context(|| format!("cannot open {}", path.display()))?;
    if demuxer.packet_format() != PacketFormat::LengthPrefixed {
        bail!(
            "{}: the source serves MP4/MKV (avcC) clips only",
            path.display()
        );
    }
    let avcc = demuxer.extradata().clone();
    let mut sequence_header = vec![0x17, 0, 0, 0, 0];
    sequence_header.extend_from_slice(&avcc);
    let length_size = avcc_length_size(&sequence_header).unwrap_or(4);
    let params = demuxer.params().clone();
    let fps = params.best_frame_rate();
    let tb = demuxer.time_base();
    let ms = |ticks: i64| -> i64 {
        let ns = i128::from(ticks) * i128::from(tb.num) * 1_000_000_000 / i128::from(tb.den.max(1));
        i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
    };
    let mut packets = Vec::new();
    while let Some(p) = demuxer.next_packet()? {
        packets.push(p);
    }
    let Some(first) = packets.first().map(|p| p.dts) else {
        bail!("{} has no video packets", path.display());
    };
    let mut frames = Vec::with_capacity(packets.len());
    let mut digest = AuDigest::new(true);
    for p in &packets {
        let dts = ms(p.dts.saturating_sub(first)).max(0);
        let cts = ms(p.pts.saturating_sub(p.dts)).clamp(-(1 << 23), (1 << 23) - 1) as i32;
        let mut body = Vec::with_capacity(p.data.len() + 5);
        body.push(if p.key { 0x17 } else { 0x27 });
        body.push(1);
        body.extend_from_slice(&cts.to_be_bytes()[1..]);
        body.extend_from_slice(&p.data);
        digest.avcc(&p.data, length_size);
        let (_, hash) = digest.finish();
        let due_ns =
            i128::from(p.dts.saturating_sub(first).max(0)) * i128::from(tb.num) * 1_000_000_000
                / i128::from(tb.den.max(1));
        frames.push(SourceFrame {
            body: Bytes::from(body),
            timestamp_ms: u32::try_from(dts).unwrap_or(u32::MAX),
            due: Duration::from_nanos(u64::try_from(due_ns).unwrap_or(u64::MAX)),
            hash,
        });
    }
    Ok(SourceClip {
        sequence_header: Bytes::from(sequence_header),
        size: (params.width, params.height),
        fps: f64::from(fps.num) / f64::from(fps.den.max(1)),
        frames,
    })
}

/// What the source did.
#[derive(Debug, Clone, Default)]
pub struct SourceRecord {
    /// The player's `app/stream key`.
    pub played: String,
    /// Each frame sent: the instant its write returned, and its hash.
    pub sent: Vec<(Instant, Option<u64>)>,
    /// Why serving ended early, if it did.
    pub error: Option<String>,
}

/// A running source.
#[derive(Debug)]
pub struct Source {
    port: u16,
    thread: JoinHandle<SourceRecord>,
}

impl Source {
    /// Listens on a free loopback port and serves `clip` to the first player that connects
    /// within `accept_limit`.
    pub fn start(clip: SourceClip, accept_limit: Duration) -> io::Result<Source> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let thread = std::thread::Builder::new()
            .name(format!("rtmp-source-{port}"))
            .spawn(move || {
                let mut record = SourceRecord::default();
                if let Err(e) = serve(&listener, &clip, accept_limit, &mut record) {
                    record.error = Some(e);
                }
                record
            })?;
        Ok(Source { port, thread })
    }

    /// The URL a player uses.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// Waits for the source to finish serving.
    pub fn finish(self) -> SourceRecord {
        self.thread.join().unwrap_or_else(|_| SourceRecord {
            error: Some("the source thread panicked".into()),
            ..SourceRecord::default()
        })
    }
}

/// The connection and its session.
struct Player {
    stream: TcpStream,
    handshake: Handshake,
    session: Option<ServerSession>,
    /// The stream id `play` was accepted on.
    playing: Option<u32>,
}

impl Player {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("writing to the player: {e}"))
    }

    /// Feeds `data` from the player to the session and answers it.
    fn input(&mut self, data: &[u8], record: &mut SourceRecord) -> Result<(), String> {
        let results = match &mut self.session {
            Some(s) => s
                .handle_input(data)
                .map_err(|e| format!("RTMP session: {e}"))?,
            None => match self
                .handshake
                .process_bytes(data)
                .map_err(|e| format!("RTMP handshake: {e}"))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    return self.write(&response_bytes);
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.write(&response_bytes)?;
                    let (mut session, mut results) = ServerSession::new(ServerSessionConfig::new())
                        .map_err(|e| format!("RTMP session: {e}"))?;
                    if !remaining_bytes.is_empty() {
                        results.extend(
                            session
                                .handle_input(&remaining_bytes)
                                .map_err(|e| format!("RTMP session: {e}"))?,
                        );
                    }
                    self.session = Some(session);
                    results
                }
            },
        };
        let mut work: std::collections::VecDeque<ServerSessionResult> = results.into();
        while let Some(result) = work.pop_front() {
            let Some(session) = self.session.as_mut() else {
                break;
            };
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.write(&packet.bytes)?,
                ServerSessionResult::RaisedEvent(event) => {
                    let id = match event {
                        ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                            Some(request_id)
                        }
                        ServerSessionEvent::PlayStreamRequested {
                            request_id,
                            app_name,
                            stream_key,
                            stream_id,
                            ..
                        } => {
                            record.played = format!("{app_name}/{stream_key}");
                            self.playing = Some(stream_id);
                            Some(request_id)
                        }
                        _ => None,
                    };
                    if let Some(id) = id {
                        work.extend(
                            session
                                .accept_request(id)
                                .map_err(|e| format!("RTMP accept: {e}"))?,
                        );
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    /// Takes whatever the player sent without waiting; false when it closed.
    fn drain(&mut self, buf: &mut [u8], record: &mut SourceRecord) -> Result<bool, String> {
        self.stream
            .set_nonblocking(true)
            .map_err(|e| format!("socket: {e}"))?;
        let result = loop {
            match self.stream.read(buf) {
                Ok(0) => break Ok(false),
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default().to_vec();
                    if let Err(e) = self.input(&data, record) {
                        break Err(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(format!("reading from the player: {e}")),
            }
        };
        self.stream
            .set_nonblocking(false)
            .map_err(|e| format!("socket: {e}"))?;
        result
    }

    fn session(&mut self) -> Result<&mut ServerSession, String> {
        self.session
            .as_mut()
            .ok_or_else(|| "no RTMP session".to_string())
    }
}

fn serve(
    listener: &TcpListener,
    clip: &SourceClip,
    accept_limit: Duration,
    record: &mut SourceRecord,
) -> Result<(), String> {
    let deadline = Instant::now() + accept_limit;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(format!("no player connected: {e}")),
        }
    };
    let configured = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_nodelay(true))
        .and_then(|()| stream.set_read_timeout(Some(Duration::from_millis(50))))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))));
    configured.map_err(|e| format!("configuring the socket: {e}"))?;
    let mut player = Player {
        stream,
        handshake: Handshake::new(PeerType::Server),
        session: None,
        playing: None,
    };
    let mut buf = vec![0u8; 64 * 1024];
    // Until the player's `play` is accepted.
    let setup_deadline = Instant::now() + Duration::from_secs(15);
    let stream_id = loop {
        if let Some(id) = player.playing {
            break id;
        }
        if Instant::now() >= setup_deadline {
            return Err("the player did not ask to play within 15 s".into());
        }
        match player.stream.read(&mut buf) {
            Ok(0) => return Err("the player closed before playing".into()),
            Ok(n) => {
                let data = buf.get(..n).unwrap_or_default().to_vec();
                player.input(&data, record)?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("reading from the player: {e}")),
        }
    };
    let metadata = StreamMetadata {
        video_width: Some(clip.size.0),
        video_height: Some(clip.size.1),
        video_codec_id: Some(7),
        video_frame_rate: Some(clip.fps as f32),
        ..StreamMetadata::new()
    };
    let packet = player
        .session()?
        .send_metadata(stream_id, &metadata)
        .map_err(|e| format!("RTMP metadata: {e}"))?;
    player.write(&packet.bytes)?;
    let packet = player
        .session()?
        .send_video_data(
            stream_id,
            clip.sequence_header.clone(),
            RtmpTimestamp::new(0),
            false,
        )
        .map_err(|e| format!("RTMP video: {e}"))?;
    player.write(&packet.bytes)?;
    let start = Instant::now() + Duration::from_millis(20);
    record.sent.reserve(clip.frames.len());
    for frame in &clip.frames {
        if !player.drain(&mut buf, record)? {
            return Err("the player closed during the stream".into());
        }
        sleep_until_with(start + frame.due, SleepTail::NONE);
        let packet = player
            .session()?
            .send_video_data(
                stream_id,
                frame.body.clone(),
                RtmpTimestamp::new(frame.timestamp_ms),
                false,
            )
            .map_err(|e| format!("RTMP video: {e}"))?;
        player.write(&packet.bytes)?;
        record.sent.push((Instant::now(), frame.hash));
    }
    let packet = player
        .session()?
        .finish_playing(stream_id)
        .map_err(|e| format!("RTMP play complete: {e}"))?;
    player.write(&packet.bytes)?;
    // Let the player take the end, then close: write side first, then read until it goes.
    std::thread::sleep(Duration::from_millis(200));
    let _ = player.stream.shutdown(Shutdown::Write);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        match player.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    Ok(())
}
