//! The play flow against rml_rtmp's `ServerSession` in memory: no sockets, no clocks.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

use super::error::PullError;
use super::rtmp_core::{PlayEvent, PlayState, RtmpPlayCore};
use super::PullOptions;
use crate::h264::{AccessUnit, AvcDecoderConfig};
use crate::rtmp::flv::{self, FrameType};
use crate::rtmp::url::RtmpUrl;
use crate::rtmp::{RefusedStep, ServerRefusal};
use crate::TimeBase;

/// libx264's 320x240 High profile SPS (with VUI timing) and PPS.
pub(super) const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
pub(super) const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

fn core() -> RtmpPlayCore {
    let url = RtmpUrl::parse("rtmp://user:pw@127.0.0.1/live/cam?x=1").unwrap();
    RtmpPlayCore::new(url, &PullOptions::default(), crate::clock::test_origin()).unwrap()
}

/// How the server answers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) enum Answer {
    #[default]
    Accept,
    RejectConnect,
    RejectPlay,
    /// An error-level `onStatus` to `play`, as SRS and Wowza answer an unknown stream.
    StreamNotFound,
    /// Nothing at all (nginx-rtmp with a stream nobody publishes).
    Silent,
    /// Never answer `connect`.
    SilentConnect,
}

/// rml_rtmp's server side.
pub(super) struct TestServer {
    handshake: Option<Handshake>,
    session: Option<ServerSession>,
    answer: Answer,
    pub(super) out: Vec<u8>,
    app: Option<String>,
    key: Option<String>,
    pub(super) stream_id: Option<u32>,
}

impl TestServer {
    pub(super) fn new(answer: Answer) -> Self {
        TestServer {
            handshake: Some(Handshake::new(PeerType::Server)),
            session: None,
            answer,
            out: Vec::new(),
            app: None,
            key: None,
            stream_id: None,
        }
    }

    pub(super) fn feed(&mut self, data: &[u8]) {
        if let Some(hs) = self.handshake.as_mut() {
            match hs.process_bytes(data).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.out.extend(response_bytes)
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.out.extend(response_bytes);
                    self.handshake = None;
                    let (session, results) =
                        ServerSession::new(ServerSessionConfig::new()).unwrap();
                    self.session = Some(session);
                    self.handle(results);
                    if !remaining_bytes.is_empty() {
                        self.feed(&remaining_bytes);
                    }
                }
            }
            return;
        }
        let results = self.session.as_mut().unwrap().handle_input(data).unwrap();
        self.handle(results);
    }

    fn handle(&mut self, results: Vec<ServerSessionResult>) {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => self.out.extend(p.bytes),
                ServerSessionResult::RaisedEvent(e) => self.on_event(e),
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
    }

    fn on_event(&mut self, event: ServerSessionEvent) {
        let session = self.session.as_mut().unwrap();
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                self.app = Some(app_name);
                if self.answer == Answer::SilentConnect {
                    return;
                }
                let results = if self.answer == Answer::RejectConnect {
                    session.reject_request(request_id, "NetConnection.Connect.Rejected", "no app")
                } else {
                    session.accept_request(request_id)
                };
                self.handle(results.unwrap());
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                stream_key,
                stream_id,
                ..
            } => {
                self.key = Some(stream_key);
                self.stream_id = Some(stream_id);
                match self.answer {
                    Answer::RejectPlay => {
                        let r = session.reject_request(
                            request_id,
                            "NetStream.Play.Failed",
                            "not allowed",
                        );
                        self.handle(r.unwrap());
                    }
                    Answer::StreamNotFound => self.out.extend(command_packet(
                        "onStatus",
                        stream_id,
                        Some(("error", "NetStream.Play.StreamNotFound", "no such stream")),
                    )),
                    Answer::Silent => {}
                    _ => {
                        let r = session.accept_request(request_id);
                        self.handle(r.unwrap());
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn send_video(&mut self, timestamp: u32, body: Bytes) {
        let id = self.stream_id.unwrap();
        self.send_video_on(id, timestamp, body);
    }

    /// A video message on message stream `id`, whatever stream `play` created.
    pub(super) fn send_video_on(&mut self, id: u32, timestamp: u32, body: Bytes) {
        let p = self
            .session
            .as_mut()
            .unwrap()
            .send_video_data(id, body, RtmpTimestamp::new(timestamp), false)
            .unwrap();
        self.out.extend(p.bytes);
    }

    /// A raw AAC frame (before any sequence header unless the test sent one).
    fn send_audio(&mut self, timestamp: u32) {
        self.send_audio_body(timestamp, Bytes::from_static(&[0xaf, 0x01, 0x21]));
    }

    /// An audio message with this FLV audio tag body.
    pub(super) fn send_audio_body(&mut self, timestamp: u32, body: Bytes) {
        let id = self.stream_id.unwrap();
        self.send_audio_on(id, timestamp, body);
    }

    /// An audio message on message stream `id`.
    pub(super) fn send_audio_on(&mut self, id: u32, timestamp: u32, body: Bytes) {
        let p = self
            .session
            .as_mut()
            .unwrap()
            .send_audio_data(id, body, RtmpTimestamp::new(timestamp), false)
            .unwrap();
        self.out.extend(p.bytes);
    }

    fn send_metadata(&mut self, fps: f32) {
        let id = self.stream_id.unwrap();
        self.send_metadata_on(id, fps);
    }

    fn send_metadata_on(&mut self, id: u32, fps: f32) {
        let mut m = StreamMetadata::new();
        m.video_width = Some(320);
        m.video_height = Some(240);
        m.video_frame_rate = Some(fps);
        let p = self
            .session
            .as_mut()
            .unwrap()
            .send_metadata(id, &m)
            .unwrap();
        self.out.extend(p.bytes);
    }

    pub(super) fn finish(&mut self) {
        let id = self.stream_id.unwrap();
        let p = self.session.as_mut().unwrap().finish_playing(id).unwrap();
        self.out.extend(p.bytes);
    }
}

/// A command serialized on its own with a full chunk header (it decodes independently of the
/// server session's header compression; send it last or on a fresh chunk stream).
fn command_packet(name: &str, stream_id: u32, info: Option<(&str, &str, &str)>) -> Vec<u8> {
    let mut args = Vec::new();
    if let Some((level, code, description)) = info {
        let mut props = HashMap::new();
        props.insert("level".to_string(), Amf0Value::Utf8String(level.into()));
        props.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
        props.insert(
            "description".to_string(),
            Amf0Value::Utf8String(description.into()),
        );
        args.push(Amf0Value::Object(props));
    }
    let message = RtmpMessage::Amf0Command {
        command_name: name.into(),
        transaction_id: 0.0,
        command_object: Amf0Value::Null,
        additional_arguments: args,
    };
    let payload = message
        .into_message_payload(RtmpTimestamp::new(0), stream_id)
        .unwrap();
    ChunkSerializer::new()
        .serialize(&payload, true, false)
        .unwrap()
        .bytes
}

fn stream_eof_packet(stream_id: u32) -> Vec<u8> {
    let message = RtmpMessage::UserControl {
        event_type: UserControlEventType::StreamEof,
        stream_id: Some(stream_id),
        buffer_length: None,
        timestamp: None,
    };
    let payload = message
        .into_message_payload(RtmpTimestamp::new(0), 0)
        .unwrap();
    ChunkSerializer::new()
        .serialize(&payload, true, false)
        .unwrap()
        .bytes
}

/// Moves bytes both ways until neither side has anything to say; `bytewise` hands the server's
/// bytes to the core one at a time (every split point).
fn pump(core: &mut RtmpPlayCore, server: &mut TestServer, bytewise: bool) -> Result<(), PullError> {
    loop {
        let mut moved = false;
        while let Some(b) = core.poll_transmit() {
            server.feed(&b);
            moved = true;
        }
        let out = std::mem::take(&mut server.out);
        if !out.is_empty() {
            moved = true;
            if bytewise {
                for b in out.chunks(1) {
                    core.handle_input(crate::clock::test_origin(), b)?;
                }
            } else {
                core.handle_input(crate::clock::test_origin(), &out)?;
            }
        }
        if !moved {
            return Ok(());
        }
    }
}

fn events(core: &mut RtmpPlayCore) -> Vec<PlayEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

fn access_units(events: &[PlayEvent]) -> Vec<AccessUnit> {
    events
        .iter()
        .filter_map(|e| match e {
            PlayEvent::AccessUnit(au) => Some(au.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn config() -> AvcDecoderConfig {
    AvcDecoderConfig::from_parameter_sets(&Bytes::from_static(SPS), &Bytes::from_static(PPS))
        .unwrap()
}

pub(super) fn idr() -> Bytes {
    // Larger than the 4096-byte chunk size: several chunks.
    let mut v = vec![0x65, 0x88];
    v.extend((0..9000u32).map(|n| (n % 251) as u8 | 1));
    Bytes::from(v)
}

#[test]
fn plays_metadata_sequence_header_and_frames_at_every_split() {
    for bytewise in [false, true] {
        let mut core = core();
        let mut server = TestServer::new(Answer::Accept);
        assert_eq!(core.state(), PlayState::Handshaking);
        pump(&mut core, &mut server, bytewise).unwrap();
        assert_eq!(core.state(), PlayState::Playing);
        let ev: Vec<PlayEvent> = events(&mut core)
            .into_iter()
            .filter(|e| !matches!(e, PlayEvent::Status(_)))
            .collect();
        assert_eq!(
            &ev[..],
            &[
                PlayEvent::HandshakeDone,
                PlayEvent::Connected,
                PlayEvent::PlayRequested,
                PlayEvent::PlayStarted
            ]
        );
        // connect: app; play: the key with its query and the userinfo's credentials.
        assert_eq!(server.app.as_deref(), Some("live"));
        assert_eq!(server.key.as_deref(), Some("cam?x=1&user=user&pass=pw"));

        server.send_metadata(25.0);
        // An inter frame before any sequence header cannot be decoded: dropped, counted.
        server.send_video(
            0,
            flv::nalu_body(FrameType::Inter, 0, &[Bytes::from_static(&[0x41, 1])]).unwrap(),
        );
        server.send_video(1000, flv::sequence_header_body(&config()).unwrap());
        // I (dts 1000, pts 1067), P (dts 1033, pts 1133), B (dts 1067, pts 1067).
        server.send_video(1000, flv::nalu_body(FrameType::Key, 67, &[idr()]).unwrap());
        let p = Bytes::from_static(&[0x41, 0x9a, 0x02]);
        server.send_video(1033, flv::nalu_body(FrameType::Inter, 100, &[p]).unwrap());
        let b = Bytes::from_static(&[0x01, 0x9e, 0x03]);
        server.send_video(
            1067,
            flv::nalu_body(FrameType::Inter, 0, std::slice::from_ref(&b)).unwrap(),
        );
        server.send_audio(1070);
        // Command frame and end of sequence: no pictures.
        server.send_video(1100, Bytes::from_static(&[0x57, 0x00]));
        server.send_video(1100, flv::end_of_sequence_body());
        pump(&mut core, &mut server, bytewise).unwrap();
        let ev = events(&mut core);
        let tracks: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                PlayEvent::Track(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(tracks.len(), 1, "{ev:?}");
        assert_eq!((tracks[0].width(), tracks[0].height()), (320, 240));
        assert!(tracks[0].frame_rate.is_some());
        assert!(ev.iter().any(|e| matches!(e, PlayEvent::Metadata(_))));
        let aus = access_units(&ev);
        let times: Vec<(i64, i64, bool)> = aus.iter().map(|a| (a.dts, a.pts, a.key)).collect();
        assert_eq!(
            times,
            vec![(1000, 1067, true), (1033, 1133, false), (1067, 1067, false)]
        );
        assert!(aus.iter().all(|a| a.time_base == TimeBase::MILLIS));
        assert_eq!(aus[0].nalus, vec![idr()]);
        assert_eq!(aus[2].nalus, vec![b]);
        let stats = core.stats().clone();
        assert_eq!(stats.without_config, 1);
        assert_eq!(stats.sequence_headers, 1);
        assert_eq!(stats.audio_messages, 1);
        assert_eq!(stats.access_units, 3);
        assert_eq!(stats.video_messages, 7);

        // NetStream.Play.Complete ends playback.
        server.finish();
        pump(&mut core, &mut server, bytewise).unwrap();
        assert_eq!(core.state(), PlayState::Ended);
        assert_eq!(
            events(&mut core),
            vec![PlayEvent::EndOfStream("NetStream.Play.Complete".into())]
        );
    }
}

#[test]
fn rejections_carry_the_servers_code_and_description() {
    let mut core = core();
    let mut server = TestServer::new(Answer::RejectConnect);
    let e = pump(&mut core, &mut server, false).unwrap_err();
    let PullError::Refused(ServerRefusal {
        url,
        step: RefusedStep::Connect,
        code,
        description,
        ..
    }) = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (code.as_str(), description.as_str()),
        ("NetConnection.Connect.Rejected", "no app")
    );
    assert_eq!(url, "rtmp://127.0.0.1/live/cam?x=1");
    assert!(!format!("{e} {e:?}").contains("pw"));
    assert_eq!(core.state(), PlayState::Failed);
    // Once failed, every call returns the same error.
    assert!(matches!(
        core.handle_input(crate::clock::test_origin(), &[0]),
        Err(PullError::Refused(ServerRefusal {
            step: RefusedStep::Connect,
            ..
        }))
    ));

    let mut core = self::core();
    let mut server = TestServer::new(Answer::RejectPlay);
    let e = pump(&mut core, &mut server, false).unwrap_err();
    assert!(
        matches!(&e, PullError::Refused(ServerRefusal { step: RefusedStep::Play, code, description, .. })
            if code == "NetStream.Play.Failed" && description == "not allowed"),
        "{e:?}"
    );

    let mut core = self::core();
    let mut server = TestServer::new(Answer::StreamNotFound);
    let e = pump(&mut core, &mut server, false).unwrap_err();
    assert_eq!(e.server_code(), Some("NetStream.Play.StreamNotFound"));
    assert!(e.to_string().contains("no such stream"), "{e}");
}

#[test]
fn a_silent_server_leaves_the_session_waiting_after_play() {
    let mut core = core();
    let mut server = TestServer::new(Answer::Silent);
    pump(&mut core, &mut server, false).unwrap();
    // The driver applies the idle timeout from here.
    assert_eq!(core.state(), PlayState::PlayRequested);
    // Media before Play.Start also means playing.
    server.send_video(0, flv::sequence_header_body(&config()).unwrap());
    pump(&mut core, &mut server, false).unwrap();
    assert_eq!(core.state(), PlayState::Playing);
}

#[test]
fn other_codecs_fail_with_no_video() {
    let mut core = core();
    let mut server = TestServer::new(Answer::Accept);
    pump(&mut core, &mut server, false).unwrap();
    // HEVC with the non-standard CodecID 12.
    server.send_video(0, Bytes::from_static(&[0x1c, 0x00, 0, 0, 0]));
    let e = pump(&mut core, &mut server, false).unwrap_err();
    assert!(
        matches!(&e, PullError::NoVideo { found, .. } if found.contains("HEVC")),
        "{e:?}"
    );
}

#[test]
fn unpublish_notify_and_stream_eof_end_playback() {
    for end in ["unpublish", "eof"] {
        let mut core = core();
        let mut server = TestServer::new(Answer::Accept);
        pump(&mut core, &mut server, false).unwrap();
        server.send_video(0, flv::sequence_header_body(&config()).unwrap());
        server.send_video(0, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap());
        let id = server.stream_id.unwrap();
        // The end comes in the same bytes as the last frame: the frame is delivered first.
        if end == "unpublish" {
            server.out.extend(command_packet(
                "onStatus",
                id,
                Some(("status", "NetStream.Play.UnpublishNotify", "gone")),
            ));
        } else {
            server.out.extend(stream_eof_packet(id));
        }
        pump(&mut core, &mut server, false).unwrap();
        let ev = events(&mut core);
        assert_eq!(access_units(&ev).len(), 1, "{end}");
        assert!(
            matches!(ev.last(), Some(PlayEvent::EndOfStream(_))),
            "{end}: {ev:?}"
        );
        assert_eq!(core.state(), PlayState::Ended);
        // deleteStream on close.
        core.close();
        assert!(core.poll_transmit().is_some());
    }
}

#[test]
fn timestamps_extend_across_the_32_bit_wrap() {
    let mut core = core();
    let mut server = TestServer::new(Answer::Accept);
    pump(&mut core, &mut server, false).unwrap();
    server.send_video(0, flv::sequence_header_body(&config()).unwrap());
    let wrap = 1i64 << 32;
    for ts in [u32::MAX - 32, 0, 33] {
        let p = Bytes::from_static(&[0x41, 0x9a]);
        server.send_video(ts, flv::nalu_body(FrameType::Inter, -10, &[p]).unwrap());
    }
    pump(&mut core, &mut server, false).unwrap();
    let dts: Vec<(i64, i64)> = access_units(&events(&mut core))
        .iter()
        .map(|a| (a.dts, a.pts))
        .collect();
    assert_eq!(
        dts,
        vec![
            (wrap - 33, wrap - 43),
            (wrap, wrap - 10),
            (wrap + 33, wrap + 23)
        ]
    );
}

#[test]
fn in_band_parameter_sets_set_the_track_without_a_sequence_header() {
    let mut core = core();
    let mut server = TestServer::new(Answer::Accept);
    pump(&mut core, &mut server, false).unwrap();
    let nalus = [Bytes::from_static(SPS), Bytes::from_static(PPS), idr()];
    server.send_video(40, flv::nalu_body(FrameType::Key, 0, &nalus).unwrap());
    pump(&mut core, &mut server, false).unwrap();
    assert!(core.track().is_some());
    let aus = access_units(&events(&mut core));
    assert_eq!(aus.len(), 1);
    assert!(aus[0].key && aus[0].has_parameter_sets());
}

// ---- virtual time ------------------------------------------------------------------------
//
// One origin, every other instant built from it by adding durations: the core reads no
// clock, so its setup and idle deadlines are checked exactly and without sleeping.

use std::time::{Duration, Instant};

use super::error::PullStep;

/// The origin of virtual time.
fn origin() -> Instant {
    crate::clock::test_origin()
}

const NANO: Duration = Duration::from_nanos(1);
const REDACTED: &str = "rtmp://127.0.0.1/live/cam?x=1";

/// Distinct limits, so an error's `after` tells which one fired.
fn timed_options() -> PullOptions {
    PullOptions::default()
        .with_setup_timeout(Duration::from_secs(3))
        .with_idle_timeout(Duration::from_secs(4))
}

fn core_at(options: &PullOptions, t0: Instant) -> RtmpPlayCore {
    let url = RtmpUrl::parse("rtmp://user:pw@127.0.0.1/live/cam?x=1").unwrap();
    RtmpPlayCore::new(url, options, t0).unwrap()
}

/// One exchange at `now`: our bytes to the server, its answer back. True when anything moved.
fn round_at(
    core: &mut RtmpPlayCore,
    server: &mut TestServer,
    now: Instant,
) -> Result<bool, PullError> {
    let mut moved = false;
    while let Some(b) = core.poll_transmit() {
        server.feed(&b);
        moved = true;
    }
    let out = std::mem::take(&mut server.out);
    if !out.is_empty() {
        moved = true;
        core.handle_input(now, &out)?;
    }
    Ok(moved)
}

fn pump_at(
    core: &mut RtmpPlayCore,
    server: &mut TestServer,
    now: Instant,
) -> Result<(), PullError> {
    while round_at(core, server, now)? {}
    Ok(())
}

/// A core playing since `t0` (the server answered `play` with `NetStream.Play.Start`).
fn playing_at(options: &PullOptions, t0: Instant) -> (RtmpPlayCore, TestServer) {
    let mut core = core_at(options, t0);
    let mut server = TestServer::new(Answer::Accept);
    pump_at(&mut core, &mut server, t0).unwrap();
    assert_eq!(core.state(), PlayState::Playing);
    let _ = events(&mut core);
    (core, server)
}

#[test]
fn each_setup_step_has_its_own_deadline() {
    let opts = timed_options();
    let t0 = origin();
    // No answer at all: the handshake's deadline.
    let mut core = core_at(&opts, t0);
    assert!(core.poll_transmit().is_some(), "C0+C1");
    let deadline = t0 + opts.setup_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    core.handle_timeout(deadline - NANO).unwrap();
    assert_eq!(core.state(), PlayState::Handshaking);
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, PullError::Timeout { step: PullStep::Handshake, after, url }
            if *after == opts.setup_timeout && url == REDACTED),
        "{e:?}"
    );
    assert!(!e.to_string().contains("pw"), "{e}");
    assert_eq!(core.state(), PlayState::Failed);
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(
        core.handle_timeout(deadline + Duration::from_secs(9))
            .unwrap_err()
            .to_string(),
        e.to_string()
    );

    // The handshake finishes at t1, `connect` is never answered: connect's deadline, counted
    // from t1 (the handshake's is gone).
    let mut core = core_at(&opts, t0);
    let mut server = TestServer::new(Answer::SilentConnect);
    let t1 = t0 + Duration::from_secs(2);
    pump_at(&mut core, &mut server, t1).unwrap();
    assert_eq!(core.state(), PlayState::Connecting);
    let deadline = t1 + opts.setup_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    core.handle_timeout(t0 + opts.setup_timeout).unwrap();
    core.handle_timeout(deadline - NANO).unwrap();
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, PullError::Timeout { step: PullStep::Connect, after, .. }
            if *after == opts.setup_timeout),
        "{e:?}"
    );
}

#[test]
fn no_video_after_play_is_no_video_received() {
    let opts = timed_options();
    let t0 = origin();
    // The server accepts `play` at t1 and then sends nothing (nginx-rtmp with no publisher).
    let mut core = core_at(&opts, t0);
    let mut server = TestServer::new(Answer::Silent);
    let t1 = t0 + Duration::from_secs(1);
    pump_at(&mut core, &mut server, t1).unwrap();
    assert_eq!(core.state(), PlayState::PlayRequested);
    let deadline = t1 + opts.idle_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    // The setup limit does not apply after `play`: a server may wait for a publisher.
    core.handle_timeout(t1 + opts.setup_timeout).unwrap();
    core.handle_timeout(deadline - NANO).unwrap();
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, PullError::NoVideoReceived { after, url }
            if *after == opts.idle_timeout && url == REDACTED),
        "{e:?}"
    );
    assert_eq!(core.state(), PlayState::Failed);
    assert_eq!(core.poll_timeout(), None);

    // Play.Start but no media, and a sequence header is not video either: the same.
    let (mut core, mut server) = playing_at(&opts, t0);
    let t2 = t0 + Duration::from_secs(2);
    server.send_video(0, flv::sequence_header_body(&config()).unwrap());
    pump_at(&mut core, &mut server, t2).unwrap();
    assert_eq!(core.poll_timeout(), Some(t0 + opts.idle_timeout));
    let e = core.handle_timeout(t0 + opts.idle_timeout).unwrap_err();
    assert!(matches!(e, PullError::NoVideoReceived { .. }), "{e:?}");
}

#[test]
fn video_then_silence_is_a_stall() {
    let opts = timed_options();
    let t0 = origin();
    let (mut core, mut server) = playing_at(&opts, t0);
    server.send_video(0, flv::sequence_header_body(&config()).unwrap());
    server.send_video(0, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap());
    let t1 = t0 + Duration::from_secs(3);
    pump_at(&mut core, &mut server, t1).unwrap();
    assert_eq!(access_units(&events(&mut core)).len(), 1);
    // Each access unit pushes the deadline.
    assert_eq!(core.poll_timeout(), Some(t1 + opts.idle_timeout));
    let t2 = t1 + Duration::from_secs(3);
    let p = Bytes::from_static(&[0x41, 0x9a, 0x01]);
    server.send_video(40, flv::nalu_body(FrameType::Inter, 0, &[p]).unwrap());
    pump_at(&mut core, &mut server, t2).unwrap();
    let deadline = t2 + opts.idle_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    core.handle_timeout(t1 + opts.idle_timeout).unwrap();
    // Audio alone does not keep a video stream alive.
    server.send_audio(50);
    pump_at(&mut core, &mut server, deadline - NANO).unwrap();
    core.handle_timeout(deadline - NANO).unwrap();
    assert_eq!(core.poll_timeout(), Some(deadline));
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, PullError::Stalled { after, url }
            if *after == opts.idle_timeout && url == REDACTED),
        "{e:?}"
    );
    assert!(e.to_string().contains("stalled"), "{e}");
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn only_audio_is_no_video() {
    let opts = timed_options();
    let t0 = origin();
    let (mut core, mut server) = playing_at(&opts, t0);
    let t1 = t0 + Duration::from_secs(1);
    for ts in [0, 23, 46] {
        server.send_audio(ts);
    }
    pump_at(&mut core, &mut server, t1).unwrap();
    assert_eq!(core.stats().audio_messages, 3);
    let deadline = t0 + opts.idle_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    core.handle_timeout(deadline - NANO).unwrap();
    let e = core.handle_timeout(deadline).unwrap_err();
    let PullError::NoVideo { url, found } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(url, REDACTED);
    assert_eq!(
        found,
        &format!(
            "only audio arrived within {:?} (3 audio messages)",
            opts.idle_timeout
        )
    );
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn eof_while_playing_is_a_lost_connection_and_fails_a_setup() {
    let opts = timed_options();
    let t0 = origin();
    let (mut core, mut server) = playing_at(&opts, t0);
    server.send_video(0, flv::sequence_header_body(&config()).unwrap());
    server.send_video(0, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap());
    pump_at(&mut core, &mut server, t0).unwrap();
    let _ = events(&mut core);
    let t1 = t0 + Duration::from_secs(1);
    // No unpublish status came first: the server went away, not the stream.
    let e = core.handle_eof(t1).unwrap_err();
    assert!(
        matches!(&e, PullError::ConnectionClosed { step: PullStep::Streaming, url } if url == REDACTED),
        "{e:?}"
    );
    assert!(events(&mut core).is_empty());
    assert_eq!(core.poll_timeout(), None);
    // Later calls keep reporting it.
    assert!(core.handle_eof(t1).is_err());

    // During setup (handshake done, `connect` unanswered) the same EOF is an error.
    let mut core = core_at(&opts, t0);
    let mut server = TestServer::new(Answer::SilentConnect);
    pump_at(&mut core, &mut server, t0).unwrap();
    assert_eq!(core.state(), PlayState::Connecting);
    let e = core.handle_eof(t1).unwrap_err();
    assert!(
        matches!(&e, PullError::ConnectionClosed { step: PullStep::Connect, url } if url == REDACTED),
        "{e:?}"
    );
    assert_eq!(core.state(), PlayState::Failed);
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(
        core.handle_timeout(t1 + opts.setup_timeout)
            .unwrap_err()
            .to_string(),
        e.to_string()
    );
    // Before anything came back at all.
    let mut core = core_at(&opts, t0);
    let e = core.handle_eof(t0).unwrap_err();
    assert!(
        matches!(
            e,
            PullError::ConnectionClosed {
                step: PullStep::Handshake,
                ..
            }
        ),
        "{e:?}"
    );
}

// ---- audio -------------------------------------------------------------------------------

use crate::audio::{AudioCodec, AudioFrame, AudioTrack};

/// AAC LC, 48 kHz, stereo.
pub(super) const ASC: &[u8] = &[0x11, 0x90];

/// The FLV audio tag body of an AAC sequence header (FLV spec E.4.2.1: 0xaf = AAC, 44 kHz,
/// 16-bit, stereo; AACPacketType 0).
pub(super) fn aac_header() -> Bytes {
    let mut v = vec![0xaf, 0x00];
    v.extend_from_slice(ASC);
    Bytes::from(v)
}

/// The FLV audio tag body of a raw AAC frame (AACPacketType 1) of `len` bytes marked `n`.
pub(super) fn aac_frame(n: u8, len: usize) -> Bytes {
    let mut v = vec![0xaf, 0x01];
    v.extend(std::iter::repeat_n(n, len));
    Bytes::from(v)
}

fn audio_frames(events: &[PlayEvent]) -> Vec<AudioFrame> {
    events
        .iter()
        .filter_map(|e| match e {
            PlayEvent::AudioFrame(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

fn audio_tracks(events: &[PlayEvent]) -> Vec<AudioTrack> {
    events
        .iter()
        .filter_map(|e| match e {
            PlayEvent::AudioTrack(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn aac_audio_becomes_frames_in_arrival_order_at_every_split() {
    for bytewise in [false, true] {
        let mut core = core();
        let mut server = TestServer::new(Answer::Accept);
        pump(&mut core, &mut server, bytewise).unwrap();
        let _ = events(&mut core);
        // A raw frame before the sequence header cannot be decoded: dropped, counted.
        server.send_audio_body(0, aac_frame(9, 10));
        server.send_audio_body(0, aac_header());
        server.send_video(0, flv::sequence_header_body(&config()).unwrap());
        server.send_audio_body(0, aac_frame(1, 300));
        server.send_video(0, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap());
        // 21.33 ms per 1024-sample frame at 48 kHz, stamped in whole milliseconds. One frame
        // larger than the chunk size.
        server.send_audio_body(21, aac_frame(2, 5000));
        server.send_audio_body(43, aac_frame(3, 7));
        let p = Bytes::from_static(&[0x41, 0x9a, 0x02]);
        server.send_video(33, flv::nalu_body(FrameType::Inter, 0, &[p]).unwrap());
        server.send_audio_body(64, aac_frame(4, 7));
        pump(&mut core, &mut server, bytewise).unwrap();
        let ev = events(&mut core);
        assert_eq!(
            audio_tracks(&ev),
            vec![AudioTrack::aac(Bytes::from_static(ASC)).unwrap()]
        );
        let track = core.audio_track().unwrap();
        assert_eq!(
            (track.codec, track.sample_rate, track.channels),
            (AudioCodec::Aac, 48_000, 2)
        );
        // Arrival order, video and audio interleaved as sent.
        let order: Vec<(&str, i64)> = ev
            .iter()
            .filter_map(|e| match e {
                PlayEvent::AccessUnit(au) => Some(("video", au.dts)),
                PlayEvent::AudioFrame(f) => Some(("audio", f.pts)),
                _ => None,
            })
            .collect();
        assert_eq!(
            order,
            vec![
                ("audio", 0),
                ("video", 0),
                ("audio", 21),
                ("audio", 43),
                ("video", 33),
                ("audio", 64)
            ]
        );
        let frames = audio_frames(&ev);
        assert!(frames.iter().all(|f| f.time_base == TimeBase::MILLIS));
        assert_eq!(frames[0].data, Bytes::from(vec![1u8; 300]));
        assert_eq!(frames[1].data, Bytes::from(vec![2u8; 5000]));
        let stats = core.stats();
        assert_eq!(stats.audio_messages, 6);
        assert_eq!(stats.audio_frames, 4);
        assert_eq!(stats.audio_sequence_headers, 1);
        assert_eq!(stats.audio_without_config, 1);
        assert_eq!(stats.audio_bytes, (12 + 4 + 302 + 5002 + 9 + 9) as u64);
        assert_eq!(stats.access_units, 2);
        // The same sequence header again is no new track; a different one is.
        server.send_audio_body(80, aac_header());
        server.send_audio_body(80, Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]));
        pump(&mut core, &mut server, bytewise).unwrap();
        let tracks = audio_tracks(&events(&mut core));
        assert_eq!(tracks.len(), 1);
        assert_eq!((tracks[0].sample_rate, tracks[0].channels), (44_100, 2));
    }
}

#[test]
fn malformed_and_unsupported_audio_is_counted_and_playing_goes_on() {
    let opts = timed_options();
    let t0 = origin();
    let (mut core, mut server) = playing_at(&opts, t0);
    server.send_video(0, flv::sequence_header_body(&config()).unwrap());
    server.send_video(0, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap());
    // (An empty message never reaches the core: rml_rtmp does not raise one.)
    let bad: [&[u8]; 5] = [
        // AAC without its packet type; a sequence header without a config; a raw frame
        // without data; an unknown AAC packet type; a config with audio object type 0.
        &[0xaf],
        &[0xaf, 0x00],
        &[0xaf, 0x01],
        &[0xaf, 0x07, 1, 2],
        &[0xaf, 0x00, 0x00, 0x00],
    ];
    for (i, body) in bad.iter().enumerate() {
        server.send_audio_body(i as u32, Bytes::copy_from_slice(body));
    }
    // Speex, Nellymoser and ADPCM: not handed out.
    for body in [&[0xb2u8, 1, 2][..], &[0x6a, 1], &[0x1f, 1, 2, 3]] {
        server.send_audio_body(10, Bytes::copy_from_slice(body));
    }
    // G.711 and MP3 tags with nothing after the header byte.
    server.send_audio_body(11, Bytes::from_static(&[0x72]));
    server.send_audio_body(11, Bytes::from_static(&[0x2f]));
    let p = Bytes::from_static(&[0x41, 0x9a, 0x02]);
    server.send_video(33, flv::nalu_body(FrameType::Inter, 0, &[p]).unwrap());
    pump_at(&mut core, &mut server, t0).unwrap();
    assert_eq!(core.state(), PlayState::Playing);
    let ev = events(&mut core);
    assert_eq!(access_units(&ev).len(), 2, "{ev:?}");
    assert!(audio_frames(&ev).is_empty());
    assert!(core.audio_track().is_none());
    let stats = core.stats().clone();
    assert_eq!(stats.audio_messages, 10);
    assert_eq!(stats.bad_audio_tags, 7, "{stats:?}");
    assert_eq!(stats.audio_sequence_headers, 1);
    assert_eq!(stats.audio_unsupported, 3);
    assert_eq!(stats.unsupported_audio, Some("ADPCM"));
    assert_eq!(stats.audio_frames, 0);
    // Audio, good or bad, does not keep a stalled video stream alive.
    assert_eq!(core.poll_timeout(), Some(t0 + opts.idle_timeout));
}

#[test]
fn mp3_and_g711_tags_set_their_track_from_the_first_tag() {
    let mut core = core();
    let mut server = TestServer::new(Answer::Accept);
    pump(&mut core, &mut server, false).unwrap();
    let _ = events(&mut core);
    // MPEG-1 layer III, 48 kHz, joint stereo (the FLV header can only say 44 kHz).
    let mut mp3 = vec![0x2f, 0xff, 0xfb, 0x94, 0x64];
    mp3.extend_from_slice(&[0x55; 200]);
    let mp3 = Bytes::from(mp3);
    server.send_audio_body(0, mp3.clone());
    server.send_audio_body(24, mp3.clone());
    // The publisher switches to G.711 µ-law, mono: a new track.
    server.send_audio_body(48, Bytes::from_static(&[0x82, 0xff, 0x7f, 0xff]));
    pump(&mut core, &mut server, false).unwrap();
    let ev = events(&mut core);
    assert_eq!(
        audio_tracks(&ev),
        vec![
            AudioTrack::new(AudioCodec::Mp3, 48_000, 2).unwrap(),
            AudioTrack::new(AudioCodec::Pcmu, 8_000, 1).unwrap()
        ]
    );
    let frames = audio_frames(&ev);
    let pts: Vec<i64> = frames.iter().map(|f| f.pts).collect();
    assert_eq!(pts, vec![0, 24, 48]);
    assert_eq!(frames[0].data, mp3.slice(1..));
    assert_eq!(&frames[2].data[..], &[0xff, 0x7f, 0xff]);
    assert_eq!(core.audio_track().unwrap().codec, AudioCodec::Pcmu);
}

#[test]
fn audio_shares_the_video_timeline_across_the_wrap_and_never_goes_back() {
    let mut core = core();
    let mut server = TestServer::new(Answer::Accept);
    pump(&mut core, &mut server, false).unwrap();
    server.send_audio_body(u32::MAX - 40, aac_header());
    server.send_video(u32::MAX - 32, flv::sequence_header_body(&config()).unwrap());
    server.send_audio_body(u32::MAX - 20, aac_frame(1, 4));
    server.send_video(
        u32::MAX - 10,
        flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap(),
    );
    // Past the wrap: the audio frame is first to see it.
    server.send_audio_body(2, aac_frame(2, 4));
    let p = Bytes::from_static(&[0x41, 0x9a]);
    server.send_video(23, flv::nalu_body(FrameType::Inter, 0, &[p]).unwrap());
    // An audio frame stamped before the previous one: dropped.
    server.send_audio_body(1, aac_frame(3, 4));
    server.send_audio_body(24, aac_frame(4, 4));
    pump(&mut core, &mut server, false).unwrap();
    let ev = events(&mut core);
    let wrap = 1i64 << 32;
    let audio: Vec<(i64, u8)> = audio_frames(&ev)
        .iter()
        .map(|f| (f.pts, f.data[0]))
        .collect();
    assert_eq!(audio, vec![(wrap - 21, 1), (wrap + 2, 2), (wrap + 24, 4)]);
    let video: Vec<i64> = access_units(&ev).iter().map(|a| a.dts).collect();
    assert_eq!(video, vec![wrap - 11, wrap + 23]);
    assert_eq!(core.stats().audio_backwards, 1);
}

// Media on any message stream (issue 15, item 5), and what arrived when none was usable.

#[test]
fn media_on_stream_0_or_another_stream_than_plays_is_played() {
    for other in [0u32, 7] {
        let mut core = core();
        let mut server = TestServer::new(Answer::Accept);
        pump(&mut core, &mut server, false).unwrap();
        assert_eq!(core.state(), PlayState::Playing);
        assert_ne!(server.stream_id, Some(other));
        let _ = events(&mut core);
        server.send_metadata_on(other, 25.0);
        server.send_video_on(other, 0, flv::sequence_header_body(&config()).unwrap());
        server.send_video_on(
            other,
            0,
            flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap(),
        );
        server.send_audio_on(other, 10, Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]));
        server.send_audio_on(other, 20, Bytes::from_static(&[0xaf, 0x01, 0x21]));
        let p = Bytes::from_static(&[0x41, 0x9a, 0x02]);
        server.send_video_on(
            other,
            40,
            flv::nalu_body(FrameType::Inter, 0, &[p]).unwrap(),
        );
        // Every split point.
        pump(&mut core, &mut server, true).unwrap();
        let ev = events(&mut core);
        let times: Vec<(i64, bool)> = access_units(&ev).iter().map(|a| (a.dts, a.key)).collect();
        assert_eq!(times, vec![(0, true), (40, false)], "stream {other}");
        assert_eq!(access_units(&ev)[0].nalus, vec![idr()]);
        assert!(ev.iter().any(|e| matches!(e, PlayEvent::Metadata(_))));
        assert!(core.track().is_some_and(|t| t.frame_rate.is_some()));
        assert_eq!(core.stats().audio_frames, 1);
        assert!(core.audio_track().is_some());
        assert_eq!(core.stats().other_stream_media, 5);
        // rml_rtmp's server also sends `|RtmpSampleAccess` data messages.
        assert!(core.stats().data_messages >= 1);
    }
}

#[test]
fn media_on_plays_stream_is_played_once() {
    let mut core = core();
    let mut server = TestServer::new(Answer::Accept);
    pump(&mut core, &mut server, false).unwrap();
    server.send_video(0, flv::sequence_header_body(&config()).unwrap());
    server.send_video(0, flv::nalu_body(FrameType::Key, 0, &[idr()]).unwrap());
    server.send_audio(5);
    pump(&mut core, &mut server, false).unwrap();
    let ev = events(&mut core);
    assert_eq!(access_units(&ev).len(), 1);
    let tracks = ev
        .iter()
        .filter(|e| matches!(e, PlayEvent::Track(_)))
        .count();
    assert_eq!(tracks, 1);
    let stats = core.stats();
    assert_eq!((stats.video_messages, stats.audio_messages), (2, 1));
    assert_eq!(stats.other_stream_media, 0);
}

/// An aggregate message (RTMP spec §7.1.6, type 22), which the player does not unpack.
fn aggregate_packet(stream_id: u32) -> Vec<u8> {
    let payload = rml_rtmp::messages::MessagePayload {
        timestamp: RtmpTimestamp::new(0),
        type_id: 22,
        message_stream_id: stream_id,
        data: Bytes::from_static(&[9, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x17, 0x01, 0, 0, 0, 13]),
    };
    ChunkSerializer::new()
        .serialize(&payload, true, false)
        .unwrap()
        .bytes
}

#[test]
fn unusable_video_is_named_when_the_idle_timeout_passes() {
    let opts = timed_options();
    let t0 = origin();
    // The field case: pictures on stream 0 with no sequence header ever, audio beside them.
    let (mut core, mut server) = playing_at(&opts, t0);
    for n in 0..5u32 {
        let p = Bytes::from_static(&[0x41, 0x9a, 0x02]);
        server.send_video_on(
            0,
            n * 40,
            flv::nalu_body(FrameType::Inter, 0, &[p]).unwrap(),
        );
        server.send_audio_on(0, n * 40, Bytes::from_static(&[0xaf, 0x01, 0x21]));
    }
    // A tag cut inside its AVC packet header.
    server.send_video(200, Bytes::from_static(&[0x27, 0x01]));
    pump_at(&mut core, &mut server, t0).unwrap();
    let deadline = t0 + opts.idle_timeout;
    core.handle_timeout(deadline - NANO).unwrap();
    let e = core.handle_timeout(deadline).unwrap_err();
    let PullError::NoUsableVideo {
        url,
        after,
        arrived,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((url.as_str(), *after), (REDACTED, opts.idle_timeout));
    assert_eq!(
        arrived,
        "6 video messages arrived but none gave a picture: 5 before any AVC sequence header, \
         1 unparseable (last: video tag of 2 bytes is too short for its AVC packet header); \
         5 audio messages"
    );
    assert!(e.is_timeout());
    assert!(
        e.to_string()
            .starts_with("no usable video within 4s from rtmp://127.0.0.1/live/cam?x=1: 6 video"),
        "{e}"
    );

    // Only aggregate messages: named by their type.
    let (mut core, mut server) = playing_at(&opts, t0);
    let id = server.stream_id.unwrap();
    for _ in 0..3 {
        server.out.extend(aggregate_packet(id));
    }
    pump_at(&mut core, &mut server, t0).unwrap();
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, PullError::NoUsableVideo { arrived, .. } if arrived ==
            "no video message arrived; 3 messages of a type this player does not read (last: \
             type 22, aggregate)"),
        "{e:?}"
    );
}

/// The `rtmp_pull` fuzz target's run: its first byte is the piece size, the rest follows the
/// handshake reply. Returns the first error.
fn pull_like_the_fuzz_target(input: &[u8]) -> Result<(), PullError> {
    use crate::rtmp::session::guard_tests::handshake_reply;
    let (&split, data) = input.split_first().unwrap();
    let step = usize::from(split).max(1);
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/cam").unwrap();
    let now = origin();
    let mut core = RtmpPlayCore::new(url, &PullOptions::default(), now).unwrap();
    let mut bytes = handshake_reply();
    bytes.extend_from_slice(data);
    for piece in bytes.chunks(step) {
        core.handle_input(now, piece)?;
        while core.poll_transmit().is_some() {}
        while core.poll_event().is_some() {}
    }
    Ok(())
}

/// fuzz/artifacts/rtmp_pull/chunk-length-underflow: a 116-byte message on chunk stream 2, and
/// before it is complete a new header with a shorter length (rml_rtmp: `deserializer.rs:371`,
/// subtract with overflow, or a `reserve` that overflows the capacity).
const PULL_CHUNK_LENGTH_UNDERFLOW: &str =
    "40020000007400d70100000408010801000000af0121100460012110046000040801000000af00121000121004\
0000000000060801000000af01211004600000000000060801000000af0121100460000000af012110046000af\
01211060af0121100460040801000000af001210040000000000060801000000af012110046000000000000608\
01000000af0121100460000000af01100460";

/// fuzz/artifacts/rtmp_pull/crash-43a80dd6…: the replies up to `NetStream.Play.Start`, then
/// media whose headers break the chunk stream.
const PULL_CRASH_43A8: &str =
    "40020000000001d7010000000000001000020000000000040500000000002625a0020000000000050600000000\
002625a0020300000000009214000000000200075f726573756c74003ff0000000000000030006666d73566572\
02000d464d532f332c302c312c313233000c6361706162696c697469657300403f000000000000000009030005\
6c6576656c0200067374617475730004636f646502001d4e6574436f6e6e656374696f6e2e436f6e6e6563742e\
53756363657373000b6465736372697074696f6e0200026f6b0000090300000000001d14000000000200075f72\
6573756c7400400000000000000005003ff00000000000000300000000001d14000000000200075f726573756c\
7400400800000000000005003ff00000000000000300000000001d14000000000200075f726573756c74004010\
00000000000005003ff00000000000000500000000005714010000000200086f6e537461747573000000000000\
000000050300056c6576656c0200067374617475730004636f64650200144e657453747265616d2f506c61792e\
5374617274c00600000000000e09010000001701000000000000056588840010040000000000040801000000af\
001210040000000000060801000000af0121100460";

/// fuzz/artifacts/rtmp_pull/crash-a821496f…: the same with a sequence header and frames.
const PULL_CRASH_A821: &str =
    "4002000000006c69766500000000001000020000000000040500000000002625a0020000000000050600000000\
002625a0020300000000009214000000000200075f726573756c74003ff0000000000000030006666d73566572\
02000d464d532f332c302c312c313233000c6361706162696c697469657300403f000000000000000009030005\
6c6576656c0200067374617475730004636f646502001d4e6574436f6e6e656374696f6e2e436f6e6e6563742e\
52756363657373000b6465736372697074696f6e0200026f6b0000090300000000001d14000000000200075f72\
6573756c7400400000000000000005003ff03400000000000300000000001d14000000000200075f726573756c\
7400400800000000000005003ff00000000000000300000000001d14000000000200075f726573756c74004010\
00000000000005003ff00000000000000500000000005714010000000200086f6e537461747573000000000000\
000000050300056c6576656c0200067374617475730004636f64650200144e657453747265616d2f506c61792e\
5374617274000b6465736372697074696f6e020001780000090600000000002f09010000001700000000016400\
0dffe100196764000dacd94141fb0110000003001000000303c0f142996001000668ebe3cb22c0060000000000\
0e09010000001701000000000000056588840010040000000000040801000000af001210040000000000060801\
000000af0121100460";

#[test]
fn puller_survives_the_fuzzed_chunk_streams() {
    use crate::rtmp::session::guard_tests::unhex;
    for (name, hex) in [
        ("underflow", PULL_CHUNK_LENGTH_UNDERFLOW),
        ("43a8", PULL_CRASH_43A8),
        ("a821", PULL_CRASH_A821),
    ] {
        let e = pull_like_the_fuzz_target(&unhex(hex)).unwrap_err();
        let PullError::Protocol { reason, .. } = &e else {
            panic!("{name}: {e:?}")
        };
        // Refused before rml_rtmp read it, not caught as a panic.
        assert!(!reason.contains("panicked"), "{name}: {reason}");
        assert!(reason.contains("chunk stream"), "{name}: {reason}");
    }
}
