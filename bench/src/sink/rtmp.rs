//! The RTMP sink: rml_rtmp's server handshake and `ServerSession` accept `connect` and
//! `publish`; every video message holding an AVC NALU tag is a frame, and every audio message
//! other than an AAC sequence header an audio arrival, each recorded with its arrival instant
//! and RTMP timestamp.

use std::time::Instant;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

use super::digest::{avcc_length_size, AuDigest};
use super::{AudioArrival, Conn, FrameArrival, Read, Session};

/// True for an FLV video tag body that carries AVC NAL units (CodecID 7, AVCPacketType 1), as
/// opposed to a sequence header or an end-of-sequence tag.
pub fn is_avc_nalu(body: &[u8]) -> bool {
    matches!(body, [first, 1, ..] if first & 0x0f == 7)
}

/// True for an FLV audio tag body that carries audio frames: anything but an AAC sequence
/// header (SoundFormat 10 with AACPacketType 0) or an empty body.
pub fn is_audio_frame(body: &[u8]) -> bool {
    match body {
        [] => false,
        [first, rest @ ..] if first >> 4 == 10 => rest.first() == Some(&1),
        _ => true,
    }
}

/// The sans-IO part of the sink: bytes in, bytes to write back out, frames into a
/// [`Session`].
pub struct SinkCore {
    handshake: Handshake,
    server: Option<ServerSession>,
    video: VideoState,
}

/// What the sink keeps of the video track between messages.
#[derive(Debug)]
struct VideoState {
    digest: AuDigest,
    /// NALU length size from the AVC sequence header (4 until one is seen).
    length_size: usize,
}

impl std::fmt::Debug for SinkCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkCore")
            .field("handshake_done", &self.server.is_some())
            .finish()
    }
}

impl Default for SinkCore {
    fn default() -> Self {
        SinkCore::new()
    }
}

impl SinkCore {
    /// A connection that has not started its handshake.
    pub fn new() -> SinkCore {
        SinkCore::with_hash(false)
    }

    /// The same, hashing every frame's VCL NAL units when `hash` is set.
    pub fn with_hash(hash: bool) -> SinkCore {
        SinkCore {
            handshake: Handshake::new(PeerType::Server),
            server: None,
            video: VideoState {
                digest: AuDigest::new(hash),
                length_size: 4,
            },
        }
    }

    /// Processes bytes received at `at`; returns the bytes to send back.
    pub fn input(
        &mut self,
        data: &[u8],
        at: Instant,
        session: &mut Session,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let results = match &mut self.server {
            Some(server) => server
                .handle_input(data)
                .map_err(|e| format!("RTMP session: {e}"))?,
            None => match self
                .handshake
                .process_bytes(data)
                .map_err(|e| format!("RTMP handshake: {e}"))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    out.extend_from_slice(&response_bytes);
                    return Ok(out);
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    out.extend_from_slice(&response_bytes);
                    let (server, mut results) = ServerSession::new(ServerSessionConfig::new())
                        .map_err(|e| format!("RTMP session: {e}"))?;
                    let server = self.server.insert(server);
                    if !remaining_bytes.is_empty() {
                        results.extend(
                            server
                                .handle_input(&remaining_bytes)
                                .map_err(|e| format!("RTMP session: {e}"))?,
                        );
                    }
                    results
                }
            },
        };
        let Some(server) = self.server.as_mut() else {
            return Ok(out);
        };
        let mut work: std::collections::VecDeque<ServerSessionResult> = results.into();
        while let Some(result) = work.pop_front() {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    out.extend_from_slice(&packet.bytes);
                }
                ServerSessionResult::RaisedEvent(event) => {
                    let more = on_event(server, event, at, session, &mut self.video)?;
                    work.extend(more);
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(out)
    }
}

fn on_event(
    server: &mut ServerSession,
    event: ServerSessionEvent,
    at: Instant,
    session: &mut Session,
    video: &mut VideoState,
) -> Result<Vec<ServerSessionResult>, String> {
    let accept = |server: &mut ServerSession, id: u32| {
        server
            .accept_request(id)
            .map_err(|e| format!("RTMP accept: {e}"))
    };
    match event {
        ServerSessionEvent::ConnectionRequested { request_id, .. }
        | ServerSessionEvent::ReleaseStreamRequested { request_id, .. } => {
            accept(server, request_id)
        }
        ServerSessionEvent::PublishStreamRequested {
            request_id,
            app_name,
            stream_key,
            ..
        } => {
            session.name = format!("{app_name}/{stream_key}");
            session.ready_at.get_or_insert(at);
            accept(server, request_id)
        }
        ServerSessionEvent::VideoDataReceived {
            data, timestamp, ..
        } => {
            session.media_packets += 1;
            session.media_bytes += data.len() as u64;
            if is_avc_nalu(&data) {
                video
                    .digest
                    .avcc(data.get(5..).unwrap_or_default(), video.length_size);
                let (key, hash) = video.digest.finish();
                session.frames.push(FrameArrival {
                    at,
                    timestamp: timestamp.value,
                    key,
                    hash,
                });
            } else if matches!(&data[..], [first, 0, ..] if first & 0x0f == 7) {
                if let Some(n) = avcc_length_size(&data) {
                    video.length_size = n;
                }
            }
            Ok(Vec::new())
        }
        ServerSessionEvent::AudioDataReceived {
            data, timestamp, ..
        } => {
            session.audio_packets += 1;
            session.audio_bytes += data.len() as u64;
            session.audio_clock_rate = Some(1000);
            if is_audio_frame(&data) {
                session.audio.push(AudioArrival {
                    at,
                    timestamp: timestamp.value,
                    frames: 1,
                });
            }
            Ok(Vec::new())
        }
        ServerSessionEvent::PublishStreamFinished { .. } => {
            session.ended_cleanly = true;
            Ok(Vec::new())
        }
        _ => Ok(Vec::new()),
    }
}

/// Serves one RTMP connection into `session`.
pub(crate) fn serve(mut conn: Conn<'_>, session: &mut Session) -> Result<(), String> {
    conn.configure()?;
    let mut core = SinkCore::with_hash(conn.shared.hash);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match conn.read(&mut chunk)? {
            Read::Eof => return Ok(()),
            Read::Data(n, at) => {
                let before = session.frames.len();
                let reply = core.input(chunk.get(..n).unwrap_or_default(), at, session);
                conn.count_frames(session.frames.len() - before);
                let reply = reply?;
                if !reply.is_empty() {
                    conn.write_all(&reply)?;
                }
            }
        }
        if conn.stopping() {
            return Err("the sink stopped with the connection still open".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mpegcoder::transport::rtmp::{PublishState, RtmpOptions, RtmpPublisherCore, RtmpUrl};
    use mpegcoder::transport::session::Transmit;
    use mpegcoder::transport::{AccessUnit, AudioFrame, AudioTrack, TimeBase, Track, VideoTrack};

    /// libx264's 320x240 SPS and PPS.
    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    #[test]
    fn tells_nalu_tags_from_headers() {
        assert!(is_avc_nalu(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]));
        assert!(is_avc_nalu(&[0x27, 1]));
        assert!(!is_avc_nalu(&[0x17, 0, 0, 0, 0]));
        assert!(!is_avc_nalu(&[0x17, 2, 0, 0, 0]));
        assert!(!is_avc_nalu(&[0x22, 1]));
        assert!(!is_avc_nalu(&[0x17]));
        assert!(!is_avc_nalu(&[]));
    }

    #[test]
    fn tells_audio_frames_from_sequence_headers() {
        assert!(is_audio_frame(&[0xAF, 1, 0x21]));
        assert!(!is_audio_frame(&[0xAF, 0, 0x11, 0x90]));
        assert!(!is_audio_frame(&[0xAF]));
        assert!(!is_audio_frame(&[]));
        // MP3 (SoundFormat 2) has no packet type: every message is a frame.
        assert!(is_audio_frame(&[0x2F, 0xFF, 0xFB]));
    }

    /// Our publisher's sans-IO core against the sink's, in memory: every frame is recorded
    /// with its timestamp, and the end of the stream is seen.
    #[test]
    fn records_frames_from_a_publisher_in_memory() {
        let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS))
            .expect("valid parameter sets");
        // AAC-LC, 48 kHz, stereo.
        let audio = AudioTrack::aac(Bytes::from_static(&[0x11, 0x90])).expect("valid config");
        let url = RtmpUrl::parse("rtmp://127.0.0.1/live/key").expect("valid URL");
        let mut publisher = RtmpPublisherCore::new(
            url,
            &[Track::from(track), Track::from(audio)],
            &RtmpOptions::default(),
            Instant::now(),
        )
        .expect("publisher");
        let mut sink = SinkCore::new();
        let mut session = Session::new(0, Instant::now());
        let mut pump = |publisher: &mut RtmpPublisherCore, session: &mut Session| {
            for _ in 0..50 {
                let mut sent = false;
                while let Some(t) = publisher.poll_transmit() {
                    let Transmit::Stream(chunks) = t else {
                        continue;
                    };
                    let bytes = chunks.to_bytes();
                    sent = true;
                    let reply = sink
                        .input(&bytes, Instant::now(), session)
                        .expect("sink accepts");
                    if !reply.is_empty() {
                        publisher
                            .handle_input(Instant::now(), &reply)
                            .expect("publisher accepts");
                    }
                }
                if !sent {
                    break;
                }
            }
        };
        pump(&mut publisher, &mut session);
        assert_eq!(publisher.state(), PublishState::Publishing);
        for n in 0..3i64 {
            let au = AccessUnit {
                pts: n * 3000,
                dts: n * 3000,
                time_base: TimeBase::RTP_VIDEO,
                key: n == 0,
                nalus: vec![Bytes::from_static(if n == 0 {
                    &[0x65, 0x88, 0x84]
                } else {
                    &[0x41, 0x9a]
                })],
            };
            publisher.send(Instant::now(), &au).expect("send");
            let frame = AudioFrame::new(
                Bytes::from_static(&[0x21, 0x10, 0x04]),
                n * 1024,
                TimeBase::new(1, 48_000),
            );
            publisher
                .send_audio(Instant::now(), &frame)
                .expect("send audio");
            pump(&mut publisher, &mut session);
        }
        publisher.close(Instant::now()).expect("close");
        pump(&mut publisher, &mut session);
        let ts: Vec<u32> = session.frames.iter().map(|f| f.timestamp).collect();
        assert_eq!(ts, vec![0, 33, 67]);
        assert_eq!(session.name, "live/key");
        assert!(session.ended_cleanly);
        // Sequence header, three frames, end of sequence.
        assert_eq!(session.media_packets, 5);
        // The AAC sequence header, then three frames at 0, 21.33 and 42.67 ms.
        let audio: Vec<(u32, u32)> = session
            .audio
            .iter()
            .map(|a| (a.timestamp, a.frames))
            .collect();
        assert_eq!(audio, vec![(0, 1), (21, 1), (43, 1)]);
        assert_eq!(session.audio_packets, 4);
        assert_eq!(session.audio_clock_rate, Some(1000));
    }
}
