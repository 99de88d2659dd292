//! The publish flow against rml_rtmp's `ServerSession` in memory: no sockets, no clocks.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use bytes::Bytes;
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

use super::*;
use crate::h264::{split_length_prefixed, AccessUnit, VideoTrack};
use crate::rtmp::error::RtmpError;
use crate::rtmp::flv;
use crate::rtmp::options::RtmpOptions;
use crate::rtmp::url::RtmpUrl;
use crate::rtmp::{RefusedStep, ServerRefusal};
use crate::session::Track;
use crate::TimeBase;

/// A fixed instant: these tests do not let time pass.
fn now() -> std::time::Instant {
    crate::clock::test_origin()
}

/// libx264's 320x240 High profile SPS (with VUI timing: 30 fps) and PPS.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

fn track() -> VideoTrack {
    VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS))
        .unwrap()
        .with_frame_rate(30, 1)
        .with_bitrate(2_500_000)
        .with_encoder("test-encoder")
}

fn core() -> RtmpPublisherCore {
    let url = RtmpUrl::parse("rtmp://user:pw@127.0.0.1/live/cam?x=1").unwrap();
    RtmpPublisherCore::new(url, &[Track::from(track())], &RtmpOptions::default(), now()).unwrap()
}

/// What the server does with requests.
#[derive(Default, Clone)]
struct Policy {
    reject_connect: Option<(&'static str, &'static str)>,
    reject_publish: Option<(&'static str, &'static str)>,
    /// Answer `publish` with an error-level `onStatus` (as nginx-rtmp does) instead.
    on_status_error: Option<(&'static str, &'static str)>,
    /// Never answer `connect`.
    ignore_connect: bool,
    /// Never answer `publish`.
    ignore_publish: bool,
}

/// rml_rtmp's server side: handshake plus `ServerSession`, recording what it sees.
struct TestServer {
    handshake: Option<Handshake>,
    session: Option<ServerSession>,
    policy: Policy,
    out: Vec<u8>,
    app: Option<String>,
    key: Option<String>,
    mirror: ChunkDeserializer,
    chunk_size: Option<u32>,
    metadata: Option<StreamMetadata>,
    video: Vec<(u32, Bytes)>,
    audio: Vec<(u32, Bytes)>,
    finished: bool,
}

impl TestServer {
    fn new(policy: Policy) -> Self {
        TestServer {
            handshake: Some(Handshake::new(PeerType::Server)),
            session: None,
            policy,
            out: Vec::new(),
            app: None,
            key: None,
            mirror: ChunkDeserializer::new(),
            chunk_size: None,
            metadata: None,
            video: Vec::new(),
            audio: Vec::new(),
            finished: false,
        }
    }

    fn feed(&mut self, data: &[u8]) {
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
        // A second reader of the client's chunks, to see its Set Chunk Size (rml_rtmp's server
        // applies it without raising an event).
        let mut input = data;
        while let Some(payload) = self.mirror.get_next_message(input).unwrap() {
            input = &[];
            if let RtmpMessage::SetChunkSize { size } = payload.to_rtmp_message().unwrap() {
                self.chunk_size = Some(size);
                self.mirror.set_max_chunk_size(size as usize).unwrap();
            }
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
                if self.policy.ignore_connect {
                    return;
                }
                let results = match self.policy.reject_connect {
                    Some((code, desc)) => session.reject_request(request_id, code, desc),
                    None => session.accept_request(request_id),
                };
                self.handle(results.unwrap());
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                self.key = Some(stream_key);
                if self.policy.ignore_publish {
                    return;
                }
                if let Some((code, desc)) = self.policy.on_status_error {
                    self.out.extend(on_status_packet("error", code, desc));
                    return;
                }
                let results = match self.policy.reject_publish {
                    Some((code, desc)) => session.reject_request(request_id, code, desc),
                    None => session.accept_request(request_id),
                };
                self.handle(results.unwrap());
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                self.metadata = Some(metadata)
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.video.push((timestamp.value, data)),
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.audio.push((timestamp.value, data)),
            ServerSessionEvent::PublishStreamFinished { .. } => self.finished = true,
            _ => {}
        }
    }
}

/// An `onStatus` command serialized on its own (full chunk header, so it decodes
/// independently of the server session's header compression).
fn on_status_packet(level: &str, code: &str, description: &str) -> Vec<u8> {
    let mut info = HashMap::new();
    info.insert("level".to_string(), Amf0Value::Utf8String(level.into()));
    info.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
    info.insert(
        "description".to_string(),
        Amf0Value::Utf8String(description.into()),
    );
    let message = RtmpMessage::Amf0Command {
        command_name: "onStatus".into(),
        transaction_id: 0.0,
        command_object: Amf0Value::Null,
        additional_arguments: vec![Amf0Value::Object(info)],
    };
    let payload = message
        .into_message_payload(RtmpTimestamp::new(0), 1)
        .unwrap();
    ChunkSerializer::new()
        .serialize(&payload, true, false)
        .unwrap()
        .bytes
}

/// Delivers the server's byte stream to the client in pieces chosen by `split`, which sees the
/// stream position of each buffer.
struct Wire {
    position: usize,
    /// Cut the stream before this position (0: never).
    cut_at: usize,
    /// Deliver every byte on its own.
    bytewise: bool,
}

impl Wire {
    fn whole() -> Self {
        Wire {
            position: 0,
            cut_at: 0,
            bytewise: false,
        }
    }

    fn pieces<'a>(&mut self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let start = self.position;
        self.position += data.len();
        if self.bytewise {
            return data.chunks(1).collect();
        }
        if self.cut_at > start && self.cut_at < self.position {
            let (a, b) = data.split_at(self.cut_at - start);
            return vec![a, b];
        }
        vec![data]
    }
}

/// The bytes of a transmit (none for the end of our side).
fn wire_bytes(t: &crate::session::Transmit) -> Vec<u8> {
    match t {
        crate::session::Transmit::Stream(c) => c.to_bytes().to_vec(),
        _ => Vec::new(),
    }
}

/// Moves bytes both ways until neither side has anything to say.
fn pump(
    core: &mut RtmpPublisherCore,
    server: &mut TestServer,
    wire: &mut Wire,
) -> Result<(), RtmpError> {
    loop {
        let mut moved = false;
        while let Some(b) = core.poll_transmit() {
            server.feed(&wire_bytes(&b));
            moved = true;
        }
        let out = std::mem::take(&mut server.out);
        if !out.is_empty() {
            moved = true;
            for piece in wire.pieces(&out) {
                core.handle_input(now(), piece)?;
            }
        }
        if !moved {
            return Ok(());
        }
    }
}

fn events(core: &mut RtmpPublisherCore) -> Vec<PublishEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

const TB: TimeBase = TimeBase { num: 1, den: 15360 };

/// 10 frames as libx264 writes them with 2 B-frames at 30 fps in a 1/15360 time base:
/// DTS starts two frames below zero; PTS in I P B B P B B … order.
fn clip() -> Vec<AccessUnit> {
    let pts_frames = [0i64, 3, 1, 2, 6, 4, 5, 9, 7, 8];
    pts_frames
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let key = i == 0;
            let mut nalus = vec![Bytes::from_static(&[0x09, 0xf0])]; // AUD, dropped
            if key {
                nalus.push(Bytes::from_static(SPS));
                nalus.push(Bytes::from_static(PPS));
                // Larger than the 4096-byte chunk size: sent as three chunks.
                let mut idr = vec![0x65, 0x88];
                idr.extend((0..10_000u32).map(|n| (n % 251) as u8 | 1));
                nalus.push(Bytes::from(idr));
            } else {
                nalus.push(Bytes::from(vec![0x41, 0x9a, i as u8, 0x20, 0x30]));
            }
            AccessUnit {
                pts: p * 512,
                dts: (i as i64 - 2) * 512,
                time_base: TB,
                key,
                nalus,
            }
        })
        .collect()
}

/// Splits a NALU tag body into (frame type, composition time, NAL units).
fn parse_nalu_body(body: &Bytes) -> (u8, i32, Vec<Bytes>) {
    assert_eq!(body[0] & 0x0f, 7, "codec id");
    assert_eq!(body[1], 1, "AVCPacketType NALU");
    // SI24: sign-extend from 24 bits.
    let ct = (i32::from_be_bytes([0, body[2], body[3], body[4]]) << 8) >> 8;
    (
        body[0] >> 4,
        ct,
        split_length_prefixed(&body.slice(5..), 4).unwrap(),
    )
}

#[test]
fn publishes_metadata_sequence_header_and_every_frame() {
    let mut core = core();
    let mut server = TestServer::new(Policy::default());
    let mut wire = Wire::whole();
    assert_eq!(core.state(), PublishState::Handshaking);
    pump(&mut core, &mut server, &mut wire).unwrap();
    assert_eq!(core.state(), PublishState::Publishing);
    assert_eq!(
        events(&mut core),
        vec![
            PublishEvent::HandshakeDone,
            PublishEvent::Connected,
            PublishEvent::Publishing
        ]
    );
    // connect: app and the publish name with the query and the userinfo's credentials.
    assert_eq!(server.app.as_deref(), Some("live"));
    assert_eq!(server.key.as_deref(), Some("cam?x=1&user=user&pass=pw"));
    assert_eq!(server.chunk_size, Some(4096));
    let meta = server.metadata.clone().expect("metadata arrived");
    assert_eq!(
        (meta.video_width, meta.video_height),
        (Some(320), Some(240))
    );
    assert_eq!(meta.video_codec_id, Some(7));
    assert_eq!(meta.video_frame_rate, Some(30.0));
    assert_eq!(meta.video_bitrate_kbps, Some(2500));
    assert_eq!(meta.encoder.as_deref(), Some("test-encoder"));

    let frames = clip();
    for au in &frames {
        core.send(now(), au).unwrap();
    }
    core.close(now()).unwrap();
    pump(&mut core, &mut server, &mut wire).unwrap();
    assert!(server.finished, "deleteStream reached the server");

    // Sequence header, 10 frames, end of sequence.
    assert_eq!(server.video.len(), 12);
    let (ts0, seq) = &server.video[0];
    assert_eq!(*ts0, 0);
    assert_eq!(
        seq,
        &flv::sequence_header_body(&track().avc_config().unwrap()).unwrap()
    );
    for (i, (au, (ts, body))) in frames.iter().zip(&server.video[1..11]).enumerate() {
        // DTS −67 ms shifted to 0; timestamps in ms, rounded per frame.
        let dts_ms = au.dts_in(TimeBase::MILLIS) + 67;
        let pts_ms = au.pts_in(TimeBase::MILLIS) + 67;
        assert_eq!(i64::from(*ts), dts_ms, "frame {i} timestamp");
        let (frame_type, ct, nalus) = parse_nalu_body(body);
        assert_eq!(frame_type, if au.key { 1 } else { 2 }, "frame {i} type");
        assert_eq!(i64::from(ct), pts_ms - dts_ms, "frame {i} composition time");
        assert!(ct >= 0);
        assert_eq!(
            nalus,
            au.nalus[1..].to_vec(),
            "frame {i} NAL units, AUD dropped"
        );
    }
    let (ts_end, eos) = &server.video[11];
    assert_eq!(*ts_end, server.video[10].0);
    assert_eq!(&eos[..], &[0x17, 0x02, 0, 0, 0]);
    let stats = core.stats();
    assert_eq!(
        (stats.frames, stats.key_frames, stats.sequence_headers),
        (10, 1, 1)
    );
    assert_eq!(stats.dropped_aud, 10);
    assert_eq!(
        (stats.first_dts_ms, stats.last_dts_ms),
        (Some(0), Some(300))
    );
}

#[test]
fn every_split_of_the_servers_bytes_until_publishing() {
    // Record the server's byte stream up to NetStream.Publish.Start once. A fresh core accepts
    // it again: the client does not verify S2 (rml_rtmp), and nothing after the handshake
    // depends on the client's random C1. So each split replays the recording instead of
    // running two handshakes (which cost milliseconds each in a debug build).
    // Recorded per round: the server only ever answers what the client already sent, so a
    // replay must not hand the client a round before the previous one was processed.
    let rounds: Vec<Vec<u8>> = {
        let mut core = core();
        let mut server = TestServer::new(Policy::default());
        let mut rounds = Vec::new();
        loop {
            while let Some(b) = core.poll_transmit() {
                server.feed(&wire_bytes(&b));
            }
            let out = std::mem::take(&mut server.out);
            if out.is_empty() {
                break;
            }
            core.handle_input(now(), &out).unwrap();
            rounds.push(out);
        }
        assert_eq!(core.state(), PublishState::Publishing);
        rounds
    };
    let total: usize = rounds.iter().map(Vec::len).sum();
    assert!(total > 3073, "handshake (S0+S1+S2) plus session messages");
    let replay = |cut_at: usize| {
        let mut core = core();
        let mut written = 0;
        let mut start = 0;
        for round in &rounds {
            let end = start + round.len();
            let pieces: Vec<&[u8]> = if cut_at > start && cut_at < end {
                let (a, b) = round.split_at(cut_at - start);
                vec![a, b]
            } else {
                vec![round]
            };
            for piece in pieces {
                core.handle_input(now(), piece)?;
            }
            while let Some(b) = core.poll_transmit() {
                written += b.len();
            }
            start = end;
        }
        assert!(written > 1537, "C0+C1, C2 and commands were written");
        Ok::<_, RtmpError>(core)
    };
    // Each replay runs a real client handshake (HMAC-SHA256, ~4 ms unoptimised): spread the
    // ~3500 cuts over the cores.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let replay = &replay;
            scope.spawn(move || {
                for cut_at in (t..total).step_by(threads) {
                    let mut core =
                        replay(cut_at).unwrap_or_else(|e| panic!("split at {cut_at}: {e}"));
                    assert_eq!(core.state(), PublishState::Publishing, "split at {cut_at}");
                    assert_eq!(
                        events(&mut core),
                        vec![
                            PublishEvent::HandshakeDone,
                            PublishEvent::Connected,
                            PublishEvent::Publishing
                        ],
                        "split at {cut_at}"
                    );
                }
            });
        }
    });
    // And one byte at a time, through publishing and closing.
    let mut core = core();
    let mut server = TestServer::new(Policy::default());
    let mut wire = Wire {
        position: 0,
        cut_at: 0,
        bytewise: true,
    };
    pump(&mut core, &mut server, &mut wire).unwrap();
    for au in &clip() {
        core.send(now(), au).unwrap();
    }
    core.close(now()).unwrap();
    pump(&mut core, &mut server, &mut wire).unwrap();
    assert_eq!(server.video.len(), 12);
    assert!(server.finished);
}

#[test]
fn rejected_publish_is_a_typed_error_with_code_and_description() {
    let mut core = core();
    let mut server = TestServer::new(Policy {
        reject_publish: Some(("NetStream.Publish.Denied", "no publishing here")),
        ..Policy::default()
    });
    let err = pump(&mut core, &mut server, &mut Wire::whole()).unwrap_err();
    match &err {
        RtmpError::Refused(ServerRefusal {
            url,
            step: RefusedStep::Publish,
            code,
            description,
            ..
        }) => {
            assert_eq!(code, "NetStream.Publish.Denied");
            assert_eq!(description, "no publishing here");
            assert_eq!(url, "rtmp://127.0.0.1/live/cam?x=1");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(err.server_code(), Some("NetStream.Publish.Denied"));
    assert_eq!(core.state(), PublishState::Failed);
    // The session stays failed with the same error.
    assert!(matches!(
        core.send(now(), &clip()[0]),
        Err(RtmpError::Refused(ServerRefusal {
            step: RefusedStep::Publish,
            ..
        }))
    ));
    assert!(matches!(
        core.handle_input(now(), &[0]),
        Err(RtmpError::Refused(ServerRefusal {
            step: RefusedStep::Publish,
            ..
        }))
    ));
}

#[test]
fn error_status_on_publish_is_a_typed_error() {
    // nginx-rtmp answers a busy stream name with onStatus(level "error").
    let mut core = core();
    let mut server = TestServer::new(Policy {
        on_status_error: Some(("NetStream.Publish.BadName", "Already publishing")),
        ..Policy::default()
    });
    let err = pump(&mut core, &mut server, &mut Wire::whole()).unwrap_err();
    assert!(
        matches!(&err, RtmpError::Refused(ServerRefusal { step: RefusedStep::Publish, code, description, .. })
            if code == "NetStream.Publish.BadName" && description == "Already publishing"),
        "{err:?}"
    );
    assert!(err.to_string().contains("NetStream.Publish.BadName"));
    assert!(!err.to_string().contains("pw"), "{err}");
}

#[test]
fn rejected_connect_is_a_typed_error_with_code_and_description() {
    let mut core = core();
    let mut server = TestServer::new(Policy {
        reject_connect: Some(("NetConnection.Connect.Rejected", "bad app")),
        ..Policy::default()
    });
    let err = pump(&mut core, &mut server, &mut Wire::whole()).unwrap_err();
    assert!(
        matches!(&err, RtmpError::Refused(ServerRefusal { step: RefusedStep::Connect, code, description, .. })
            if code == "NetConnection.Connect.Rejected" && description == "bad app"),
        "{err:?}"
    );
}

#[test]
fn send_before_publishing_and_bad_timestamps_leave_the_session_usable() {
    let mut core = core();
    assert!(matches!(
        core.send(now(), &clip()[0]),
        Err(RtmpError::InvalidState(_))
    ));
    let mut server = TestServer::new(Policy::default());
    let mut wire = Wire::whole();
    pump(&mut core, &mut server, &mut wire).unwrap();
    let frames = clip();
    core.send(now(), &frames[0]).unwrap();
    core.send(now(), &frames[1]).unwrap();
    // DTS going backwards: rejected, nothing queued, session unchanged.
    let queued = core.queued_bytes();
    assert!(matches!(
        core.send(now(), &frames[0]),
        Err(RtmpError::InvalidAccessUnit(
            flv::FlvError::NonMonotonicDts { .. }
        ))
    ));
    assert_eq!(core.queued_bytes(), queued);
    // An access unit with only an AUD sends nothing.
    let empty = AccessUnit {
        nalus: vec![Bytes::from_static(&[0x09, 0x10])],
        ..frames[2].clone()
    };
    core.send(now(), &empty).unwrap();
    assert_eq!(core.queued_bytes(), queued);
    core.send(now(), &frames[2]).unwrap();
    pump(&mut core, &mut server, &mut wire).unwrap();
    assert_eq!(core.state(), PublishState::Publishing);
    assert_eq!(server.video.len(), 4);
    assert_eq!(core.stats().skipped_empty, 1);
}

#[test]
fn changed_in_band_parameter_sets_send_a_new_sequence_header() {
    let mut core = core();
    let mut server = TestServer::new(Policy::default());
    let mut wire = Wire::whole();
    pump(&mut core, &mut server, &mut wire).unwrap();
    let frames = clip();
    core.send(now(), &frames[0]).unwrap();
    core.send(now(), &frames[1]).unwrap();
    let mut sps2 = SPS.to_vec();
    sps2[3] = 0x1e; // level 3.0
    let sps2 = Bytes::from(sps2);
    let new_key = AccessUnit {
        pts: 10 * 512,
        dts: 8 * 512,
        time_base: TB,
        key: true,
        nalus: vec![
            sps2.clone(),
            Bytes::from_static(PPS),
            Bytes::from_static(&[0x65, 0x88, 0x99]),
        ],
    };
    core.send(now(), &new_key).unwrap();
    pump(&mut core, &mut server, &mut wire).unwrap();
    // seq header, frame, frame, new seq header, key frame.
    assert_eq!(server.video.len(), 5);
    let expected = flv::sequence_header_body(
        &crate::h264::AvcDecoderConfig::from_parameter_sets(&sps2, &Bytes::from_static(PPS))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(server.video[3].1, expected);
    assert_eq!(
        server.video[3].0, server.video[4].0,
        "header carries the frame's time"
    );
    assert_eq!(core.stats().sequence_headers, 2);
    // The same parameter sets again: no further header.
    let again = AccessUnit {
        pts: 11 * 512,
        dts: 9 * 512,
        ..new_key.clone()
    };
    core.send(now(), &again).unwrap();
    pump(&mut core, &mut server, &mut wire).unwrap();
    assert_eq!(server.video.len(), 6);
}

#[test]
fn timestamps_wrap_at_32_bits_through_the_session() {
    let mut core = core();
    let mut server = TestServer::new(Policy::default());
    let mut wire = Wire::whole();
    pump(&mut core, &mut server, &mut wire).unwrap();
    let start: i64 = (1 << 32) - 70;
    let dts: Vec<i64> = (0..5).map(|i| start + 33 * i).collect();
    for (i, &d) in dts.iter().enumerate() {
        let au = AccessUnit {
            pts: d + 33,
            dts: d,
            time_base: TimeBase::MILLIS,
            key: i == 0,
            nalus: vec![Bytes::from(vec![0x41, i as u8 + 1])],
        };
        core.send(now(), &au).unwrap();
    }
    pump(&mut core, &mut server, &mut wire).unwrap();
    let seen: Vec<u32> = server.video[1..].iter().map(|(t, _)| *t).collect();
    let expected: Vec<u32> = dts.iter().map(|&d| flv::wire_timestamp(d)).collect();
    assert_eq!(seen, expected);
    assert_eq!(seen[3], 29, "wrapped past 2^32");
}

#[test]
fn metadata_data_rate_is_kilobits_of_1000_bits() {
    let t = track().with_bitrate(1_234_499);
    assert_eq!(
        super::core::metadata_for(Some(&t), None).video_bitrate_kbps,
        Some(1234)
    );
    let t = track().with_bitrate(1_234_500);
    assert_eq!(
        super::core::metadata_for(Some(&t), None).video_bitrate_kbps,
        Some(1235)
    );
    let mut t = track();
    t.bitrate = None;
    t.encoder = None;
    let m = super::core::metadata_for(Some(&t), None);
    assert_eq!(m.video_bitrate_kbps, None);
    assert_eq!(m.encoder.as_deref(), Some("mpegcoder"));
}

// ---- virtual time ------------------------------------------------------------------------
//
// The core never reads a clock: these tests take one origin and pass it instants built by
// adding durations, so every deadline is checked to the nanosecond without sleeping.

use std::time::{Duration, Instant};

use crate::rtmp::error::Step;
use crate::session::Transmit;

/// The origin of virtual time.
fn origin() -> Instant {
    crate::clock::test_origin()
}

/// Distinct limits, so an error's `after` tells which one fired.
fn timed_options() -> RtmpOptions {
    RtmpOptions::default()
        .with_handshake_timeout(Duration::from_secs(3))
        .with_command_timeout(Duration::from_secs(5))
        .with_send_timeout(Duration::from_secs(7))
        .with_close_timeout(Duration::from_secs(2))
}

const REDACTED: &str = "rtmp://127.0.0.1/live/cam?x=1";

fn core_at(options: &RtmpOptions, t0: Instant) -> RtmpPublisherCore {
    let url = RtmpUrl::parse("rtmp://user:pw@127.0.0.1/live/cam?x=1").unwrap();
    RtmpPublisherCore::new(url, &[Track::from(track())], options, t0).unwrap()
}

/// One exchange at `now`, as a driver whose socket takes every byte at once: the core's
/// transmits go to the server (reported written), then the server's answer goes to the core.
/// Returns whether anything moved and whether our side was shut down.
fn round(
    core: &mut RtmpPublisherCore,
    server: &mut TestServer,
    now: Instant,
) -> Result<(bool, bool), RtmpError> {
    let mut moved = false;
    let mut shut = false;
    while let Some(t) = core.poll_transmit() {
        moved = true;
        match &t {
            Transmit::Stream(c) => {
                server.feed(&c.to_bytes());
                core.handle_written(now, c.len());
            }
            Transmit::Shutdown => shut = true,
            other => panic!("RTMP writes only to its connection: {other:?}"),
        }
    }
    let out = std::mem::take(&mut server.out);
    if !out.is_empty() {
        moved = true;
        core.handle_input(now, &out)?;
    }
    Ok((moved, shut))
}

/// Rounds at `now` until neither side has anything to say.
fn pump_at(
    core: &mut RtmpPublisherCore,
    server: &mut TestServer,
    now: Instant,
) -> Result<(), RtmpError> {
    while round(core, server, now)?.0 {}
    Ok(())
}

/// A core publishing since `t0`, everything written.
fn publishing_at(options: &RtmpOptions, t0: Instant) -> (RtmpPublisherCore, TestServer) {
    let mut core = core_at(options, t0);
    let mut server = TestServer::new(Policy::default());
    pump_at(&mut core, &mut server, t0).unwrap();
    assert_eq!(core.state(), PublishState::Publishing);
    let _ = events(&mut core);
    (core, server)
}

/// Takes every queued transmit without reporting any byte written (the socket is full).
fn take_unwritten(core: &mut RtmpPublisherCore) -> Vec<Transmit> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

fn stream_len(transmits: &[Transmit]) -> usize {
    transmits.iter().map(Transmit::len).sum()
}

const NANO: Duration = Duration::from_nanos(1);

#[test]
fn handshake_times_out_at_its_deadline_and_not_before() {
    let t0 = origin();
    let opts = timed_options();
    let mut core = core_at(&opts, t0);
    // C0+C1 written at once: the only deadline left is the handshake's.
    let c0c1 = core.poll_transmit().unwrap();
    core.handle_written(t0, c0c1.len());
    assert!(core.poll_transmit().is_none());
    assert_eq!(core.poll_timeout(), Some(t0 + opts.handshake_timeout));
    // The connection opened later than the core was made: the deadline starts again.
    let opened = t0 + Duration::from_millis(500);
    core.restart_handshake_deadline(opened);
    let deadline = opened + opts.handshake_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    core.handle_timeout(t0 + opts.handshake_timeout).unwrap();
    core.handle_timeout(deadline - NANO).unwrap();
    assert_eq!(core.state(), PublishState::Handshaking);

    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, RtmpError::Timeout { step: Step::Handshake, after, url }
            if *after == opts.handshake_timeout && url == REDACTED),
        "{e:?}"
    );
    assert!(e.is_timeout());
    assert!(!e.to_string().contains("pw"), "{e}");
    assert_eq!(core.state(), PublishState::Failed);
    assert_eq!(core.poll_timeout(), None);
    // Failed for good: every later call reports the same error.
    let later = deadline + Duration::from_secs(60);
    assert_eq!(
        core.handle_timeout(later).unwrap_err().to_string(),
        e.to_string()
    );
    assert_eq!(
        core.handle_input(later, &[3]).unwrap_err().to_string(),
        e.to_string()
    );
    assert_eq!(core.close(later).unwrap_err().to_string(), e.to_string());
}

#[test]
fn connect_times_out_when_the_server_never_answers_it() {
    let t0 = origin();
    let opts = timed_options();
    let mut core = core_at(&opts, t0);
    let mut server = TestServer::new(Policy {
        ignore_connect: true,
        ..Policy::default()
    });
    // The handshake finishes at t1; `connect` goes out and is never answered.
    let t1 = t0 + Duration::from_secs(2);
    pump_at(&mut core, &mut server, t1).unwrap();
    assert_eq!(core.state(), PublishState::Connecting);
    assert_eq!(server.app.as_deref(), Some("live"));
    assert_eq!(events(&mut core), vec![PublishEvent::HandshakeDone]);
    let deadline = t1 + opts.command_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    // The handshake's deadline is gone.
    core.handle_timeout(t0 + opts.handshake_timeout).unwrap();
    core.handle_timeout(deadline - NANO).unwrap();
    assert_eq!(core.state(), PublishState::Connecting);
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, RtmpError::Timeout { step: Step::Connect, after, url }
            if *after == opts.command_timeout && url == REDACTED),
        "{e:?}"
    );
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn publish_times_out_when_the_server_never_answers_it() {
    let t0 = origin();
    let opts = timed_options();
    let mut core = core_at(&opts, t0);
    let mut server = TestServer::new(Policy {
        ignore_publish: true,
        ..Policy::default()
    });
    // Handshake at t1, `connect` answered at t2, then `createStream` + `publish` unanswered.
    let t1 = t0 + Duration::from_secs(1);
    let t2 = t1 + Duration::from_secs(4);
    assert!(round(&mut core, &mut server, t1).unwrap().0);
    assert_eq!(core.state(), PublishState::Connecting);
    assert_eq!(core.poll_timeout(), Some(t1 + opts.command_timeout));
    pump_at(&mut core, &mut server, t2).unwrap();
    assert_eq!(core.state(), PublishState::RequestingPublish);
    assert_eq!(server.key.as_deref(), Some("cam?x=1&user=user&pass=pw"));
    let deadline = t2 + opts.command_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    // The step's deadline started with the step: connect's is gone.
    core.handle_timeout(t1 + opts.command_timeout).unwrap();
    core.handle_timeout(deadline - NANO).unwrap();
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, RtmpError::Timeout { step: Step::Publish, after, url }
            if *after == opts.command_timeout && url == REDACTED),
        "{e:?}"
    );
    assert_eq!(core.state(), PublishState::Failed);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn a_write_without_progress_times_out_and_progress_pushes_the_deadline() {
    let t0 = origin();
    let opts = timed_options();
    let (mut core, _server) = publishing_at(&opts, t0);
    // Publishing with nothing unwritten: no deadline at all.
    assert_eq!(core.poll_timeout(), None);
    let frames = clip();
    let t1 = t0 + Duration::from_secs(1);
    core.send(t1, &frames[0]).unwrap();
    let queued = take_unwritten(&mut core);
    assert_eq!(core.poll_timeout(), Some(t1 + opts.send_timeout));
    // Written in full: the deadline goes away again.
    core.handle_written(t1, stream_len(&queued));
    assert_eq!(core.poll_timeout(), None);

    let t2 = t1 + Duration::from_secs(1);
    core.send(t2, &frames[1]).unwrap();
    let queued = take_unwritten(&mut core);
    let total = stream_len(&queued);
    assert!(total > 10);
    assert_eq!(core.poll_timeout(), Some(t2 + opts.send_timeout));
    core.handle_timeout(t2 + opts.send_timeout - NANO).unwrap();
    // Some bytes go out at t3: the stall counts from there.
    let t3 = t2 + Duration::from_secs(3);
    core.handle_written(t3, 10);
    let deadline = t3 + opts.send_timeout;
    assert_eq!(core.poll_timeout(), Some(deadline));
    core.handle_timeout(t2 + opts.send_timeout).unwrap();
    core.handle_timeout(deadline - NANO).unwrap();
    assert_eq!(core.state(), PublishState::Publishing);
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, RtmpError::Timeout { step: Step::Streaming, after, url }
            if *after == opts.send_timeout && url == REDACTED),
        "{e:?}"
    );
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(
        core.send(deadline, &frames[2]).unwrap_err().to_string(),
        e.to_string()
    );
}

/// Publishes two frames and closes at `t1`; returns the transmits `close` queued.
fn closing_at(
    opts: &RtmpOptions,
    t0: Instant,
    t1: Instant,
) -> (RtmpPublisherCore, TestServer, Vec<Transmit>) {
    let (mut core, mut server) = publishing_at(opts, t0);
    let frames = clip();
    core.send(t0, &frames[0]).unwrap();
    core.send(t0, &frames[1]).unwrap();
    pump_at(&mut core, &mut server, t0).unwrap();
    core.close(t1).unwrap();
    let queued = take_unwritten(&mut core);
    // End of sequence and deleteStream, then the end of our side, last.
    assert!(queued.len() >= 3, "{queued:?}");
    assert!(
        matches!(queued.last(), Some(Transmit::Shutdown)),
        "{queued:?}"
    );
    assert_eq!(
        queued
            .iter()
            .filter(|t| matches!(t, Transmit::Shutdown))
            .count(),
        1
    );
    assert_eq!(core.state(), PublishState::Closing);
    assert_eq!(core.poll_timeout(), Some(t1 + opts.close_timeout));
    (core, server, queued)
}

/// Hands `queued` to the server and reports it written at `now`.
fn deliver(
    core: &mut RtmpPublisherCore,
    server: &mut TestServer,
    queued: &[Transmit],
    now: Instant,
) {
    for t in queued {
        if let Transmit::Stream(c) = t {
            server.feed(&c.to_bytes());
            core.handle_written(now, c.len());
        }
    }
}

#[test]
fn close_is_confirmed_by_the_server_closing_its_side() {
    let t0 = origin();
    let opts = timed_options();
    let t1 = t0 + Duration::from_secs(1);
    let (mut core, mut server, queued) = closing_at(&opts, t0, t1);
    deliver(&mut core, &mut server, &queued, t1);
    assert!(server.finished, "deleteStream reached the server");
    assert_eq!(server.video.last().unwrap().1[..], [0x17, 0x02, 0, 0, 0]);
    // Idempotent; nothing more to send.
    core.close(t1).unwrap();
    assert!(core.poll_transmit().is_none());
    assert!(matches!(
        core.send(t1, &clip()[2]),
        Err(RtmpError::InvalidState(_))
    ));
    // Whatever the server says after deleteStream is read, and does not end the close.
    let out = std::mem::take(&mut server.out);
    core.handle_input(t1, &out).unwrap();
    assert_eq!(core.state(), PublishState::Closing);
    let deadline = t1 + opts.close_timeout;
    core.handle_timeout(deadline - NANO).unwrap();
    assert!(!core.stats().closed_cleanly);
    core.handle_eof(deadline - NANO).unwrap();
    assert!(
        events(&mut core).contains(&PublishEvent::Closed),
        "the server's EOF ends the session"
    );
    assert_eq!(core.state(), PublishState::Closed);
    assert!(core.stats().closed_cleanly);
    assert_eq!(core.poll_timeout(), None);
    core.handle_timeout(deadline + Duration::from_secs(10))
        .unwrap();
    core.handle_eof(deadline).unwrap();
}

#[test]
fn close_not_confirmed_in_time_names_the_url_and_what_is_missing() {
    let opts = timed_options();
    // Everything written, but the server never closes its side.
    let t0 = origin();
    let t1 = t0 + Duration::from_secs(1);
    let (mut core, mut server, queued) = closing_at(&opts, t0, t1);
    deliver(&mut core, &mut server, &queued, t1);
    let deadline = t1 + opts.close_timeout;
    core.handle_timeout(deadline - NANO).unwrap();
    let e = core.handle_timeout(deadline).unwrap_err();
    let RtmpError::CloseNotConfirmed { url, after, what } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((url.as_str(), *after), (REDACTED, opts.close_timeout));
    assert!(
        what.contains("did not close the connection after deleteStream"),
        "{what}"
    );
    let text = e.to_string();
    assert!(text.contains(REDACTED), "{text}");
    assert!(text.contains("deleteStream"), "{text}");
    assert!(!text.contains("pw") && !text.contains("user"), "{text}");
    assert_eq!(core.state(), PublishState::Failed);
    assert!(!core.stats().closed_cleanly);
    assert_eq!(core.poll_timeout(), None);
    // A late EOF does not turn the failure into a clean close.
    assert_eq!(core.handle_eof(deadline).unwrap_err().to_string(), text);

    // The server stopped reading: the bytes of the close never left.
    let (mut core, _server, queued) = closing_at(&opts, t0, t1);
    let unwritten = stream_len(&queued);
    core.handle_timeout(deadline - NANO).unwrap();
    let e = core.handle_timeout(deadline).unwrap_err();
    let RtmpError::CloseNotConfirmed { url, what, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(url, REDACTED);
    assert_eq!(
        what,
        &format!("{unwritten} bytes were still unwritten (the server stopped reading)")
    );
    assert!(e.to_string().contains(&format!("{unwritten} bytes")), "{e}");
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn the_server_closing_before_the_close_was_written_is_no_confirmation() {
    // The server went away while the end of sequence and deleteStream were still waiting to
    // be written: it cannot have read them, so the close is not confirmed.
    let opts = timed_options();
    let t0 = origin();
    let t1 = t0 + Duration::from_secs(1);
    let (mut core, _server, queued) = closing_at(&opts, t0, t1);
    let unwritten = stream_len(&queued);
    let e = core
        .handle_eof(t1 + Duration::from_millis(100))
        .unwrap_err();
    let RtmpError::CloseNotConfirmed { url, what, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(url, REDACTED);
    assert!(what.contains(&format!("{unwritten} bytes")), "{what}");
    assert!(!core.stats().closed_cleanly);
    assert!(!events(&mut core).contains(&PublishEvent::Closed));
    assert_eq!(core.state(), PublishState::Failed);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn nothing_is_queued_after_the_end_of_our_side() {
    let opts = timed_options();
    let t0 = origin();
    let t1 = t0 + Duration::from_secs(1);
    let t2 = t1 + Duration::from_millis(100);

    // A ping that arrives while the end of our side is still queued is answered before it.
    let (mut core, mut server) = publishing_at(&opts, t0);
    core.close(t1).unwrap();
    let (ping, _) = server
        .session
        .as_mut()
        .unwrap()
        .send_ping_request()
        .unwrap();
    core.handle_input(t2, &ping.bytes).unwrap();
    let queued = take_unwritten(&mut core);
    assert!(queued.len() >= 3, "{queued:?}");
    assert!(
        matches!(queued.last(), Some(Transmit::Shutdown)),
        "{queued:?}"
    );
    deliver(&mut core, &mut server, &queued, t2);

    // Once our side is closed there is nothing more to write: a ping then is not answered
    // (a write after the shutdown would fail and look like the server's close).
    let (ping, _) = server
        .session
        .as_mut()
        .unwrap()
        .send_ping_request()
        .unwrap();
    core.handle_input(t2, &ping.bytes).unwrap();
    let after: Vec<Transmit> = take_unwritten(&mut core);
    assert!(after.is_empty(), "written after the shutdown: {after:?}");
    // The close still needs the server's EOF.
    assert_eq!(core.state(), PublishState::Closing);
    core.handle_eof(t2).unwrap();
    assert!(core.stats().closed_cleanly);
}

#[test]
fn audio_tags_follow_the_aac_sequence_header_on_the_shared_timeline() {
    use crate::audio::{AudioCodec, AudioFrame, AudioTrack};
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/av").unwrap();
    let aac = AudioTrack::aac(Bytes::from_static(&[0x11, 0x88]))
        .unwrap()
        .with_bitrate(96_000);
    let tracks = [Track::from(track()), Track::from(aac.clone())];
    let mut core = RtmpPublisherCore::new(url, &tracks, &RtmpOptions::default(), now()).unwrap();
    let mut server = TestServer::new(Policy::default());
    let mut wire = Wire::whole();
    pump(&mut core, &mut server, &mut wire).unwrap();
    let meta = server.metadata.clone().expect("metadata arrived");
    assert_eq!(meta.audio_codec_id, Some(10));
    assert_eq!(meta.audio_sample_rate, Some(48_000));
    assert_eq!(meta.audio_channels, Some(1));
    assert_eq!(meta.audio_is_stereo, Some(false));
    assert_eq!(meta.audio_bitrate_kbps, Some(96));
    assert_eq!(meta.video_codec_id, Some(7));

    // Video starts at −67 ms (two B-frames): the shift applies to audio too.
    let frames = clip();
    let audio_tb = TimeBase::new(1, 48_000);
    let audio: Vec<AudioFrame> = (0..5)
        .map(|n| AudioFrame::new(Bytes::from(vec![n as u8; 40]), n * 1024, audio_tb))
        .collect();
    core.send(now(), &frames[0]).unwrap();
    core.send(now(), &frames[1]).unwrap();
    for f in &audio {
        core.send_audio(now(), f).unwrap();
    }
    for au in &frames[2..] {
        core.send(now(), au).unwrap();
    }
    core.close(now()).unwrap();
    pump(&mut core, &mut server, &mut wire).unwrap();
    assert_eq!(server.audio.len(), 6, "sequence header and five frames");
    assert_eq!(
        server.audio[0],
        (67, Bytes::from_static(&[0xaf, 0x00, 0x11, 0x88]))
    );
    for (n, (ts, body)) in server.audio[1..].iter().enumerate() {
        let ms = audio[n].pts_in(TimeBase::MILLIS) + 67;
        assert_eq!(i64::from(*ts), ms, "audio frame {n}");
        assert_eq!(&body[..2], &[0xaf, 0x01]);
        assert_eq!(&body[2..], &audio[n].data[..]);
    }
    let stats = core.stats();
    assert_eq!(
        (
            stats.audio_frames,
            stats.audio_sequence_headers,
            stats.frames
        ),
        (5, 1, 10)
    );
    assert_eq!(stats.audio_bytes, 4 + 5 * 42);

    // A frame before the stream's start is refused and the session goes on.
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/av2").unwrap();
    let mut core = RtmpPublisherCore::new(url, &tracks, &RtmpOptions::default(), now()).unwrap();
    let mut server = TestServer::new(Policy::default());
    pump(&mut core, &mut server, &mut Wire::whole()).unwrap();
    core.send_audio(now(), &audio[1]).unwrap();
    // The video's first frame at −67 ms is before the start the audio set.
    assert!(matches!(
        core.send(now(), &frames[0]),
        Err(RtmpError::InvalidAccessUnit(flv::FlvError::BeforeStart {
            dts_ms: -67,
            start_ms: 0
        }))
    ));
    assert_eq!(core.state(), PublishState::Publishing);

    // Opus has no FLV sound format: refused before connecting.
    let opus = AudioTrack::new(AudioCodec::Opus, 48_000, 2).unwrap();
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/opus").unwrap();
    let e = RtmpPublisherCore::new(
        url,
        &[Track::from(track()), Track::from(opus)],
        &RtmpOptions::default(),
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot publish opus audio to rtmp://127.0.0.1/live/opus: FLV has no sound format for it"
    );
}
