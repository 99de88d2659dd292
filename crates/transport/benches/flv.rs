//! FLV tag building throughput (the RTMP media path): NALU tag bodies from access units, the
//! same with the tag timeline, and the whole send path of the RTMP publisher core (FLV body
//! plus rml_rtmp's chunking into wire bytes), against a plain copy of the same bytes as the
//! lower bound.
//!
//! The stream is the synthetic 720p-like H.264 of `packetize.rs`: a 30-frame GOP of one IDR
//! access unit (SPS, PPS, SEI and a 100 KB slice) and 29 P frames of 10–20 KB; the SPS and PPS
//! are real ones, so the publisher core accepts them. Throughput is in bytes of access unit
//! (NAL unit bytes) per second.
//!
//! Run: `cargo bench -p mpegcoder-transport --bench flv -- --warm-up-time 1
//! --measurement-time 3`.

use std::hint::black_box;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mpegcoder_transport::rtmp::flv::{nalu_body, sequence_header_body, FrameType, TagTimeline};
use mpegcoder_transport::rtmp::{PublishState, RtmpOptions, RtmpPublisherCore, RtmpUrl};
use mpegcoder_transport::session::{Track, Transmit};
use mpegcoder_transport::{AccessUnit, TimeBase, VideoTrack};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

/// libx264's SPS and PPS of a 320x240 High profile stream.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// Deterministic NAL unit bytes without start-code emulation (no zero bytes at all).
fn nal(header: u8, len: usize, seed: &mut u64) -> Bytes {
    let mut v = Vec::with_capacity(len);
    v.push(header);
    while v.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        for b in seed.to_le_bytes() {
            if v.len() < len {
                v.push(b | 1);
            }
        }
    }
    Bytes::from(v)
}

/// One GOP of 30 access units at 30 fps in a 90 kHz time base.
fn gop() -> Vec<AccessUnit> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    (0..30i64)
        .map(|k| {
            let nalus = if k == 0 {
                vec![
                    Bytes::from_static(SPS),
                    Bytes::from_static(PPS),
                    nal(0x06, 700, &mut seed),
                    nal(0x65, 100_000, &mut seed),
                ]
            } else {
                let size = 10_000 + (k as usize * 3_517) % 10_000;
                vec![nal(0x41, size, &mut seed)]
            };
            AccessUnit {
                pts: k * 3000,
                dts: k * 3000,
                time_base: TimeBase::RTP_VIDEO,
                key: k == 0,
                nalus,
            }
        })
        .collect()
}

/// A publisher core that has published to an in-memory rml_rtmp server.
fn publishing_core() -> Option<RtmpPublisherCore> {
    let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).ok()?;
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/bench").ok()?;
    let mut core = RtmpPublisherCore::new(
        url,
        &[Track::from(track)],
        &RtmpOptions::default(),
        Instant::now(),
    )
    .ok()?;
    let mut handshake = Some(Handshake::new(PeerType::Server));
    let mut server: Option<ServerSession> = None;
    for _ in 0..20 {
        let mut to_client = Vec::new();
        while let Some(t) = core.poll_transmit() {
            let Transmit::Stream(chunks) = t else {
                continue;
            };
            let bytes = chunks.to_bytes();
            let mut results = Vec::new();
            match (&mut handshake, &mut server) {
                (Some(h), _) => match h.process_bytes(&bytes).ok()? {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        to_client.extend(response_bytes)
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        to_client.extend(response_bytes);
                        let (s, r) = ServerSession::new(ServerSessionConfig::new()).ok()?;
                        results.extend(r);
                        let s = server.insert(s);
                        results.extend(s.handle_input(&remaining_bytes).ok()?);
                        handshake = None;
                    }
                },
                (None, Some(s)) => results.extend(s.handle_input(&bytes).ok()?),
                (None, None) => return None,
            }
            while let Some(r) = results.pop() {
                match r {
                    ServerSessionResult::OutboundResponse(p) => to_client.extend(p.bytes),
                    ServerSessionResult::RaisedEvent(
                        ServerSessionEvent::ConnectionRequested { request_id, .. }
                        | ServerSessionEvent::PublishStreamRequested { request_id, .. },
                    ) => {
                        let s = server.as_mut()?;
                        results.extend(s.accept_request(request_id).ok()?);
                    }
                    _ => {}
                }
            }
        }
        if !to_client.is_empty() {
            core.handle_input(Instant::now(), &to_client).ok()?;
        }
        if core.state() == PublishState::Publishing {
            while core.poll_transmit().is_some() {}
            return Some(core);
        }
    }
    None
}

fn bench(c: &mut Criterion) {
    let units = gop();
    let au_bytes: u64 = units.iter().map(|u| u.payload_len() as u64).sum();

    let mut g = c.benchmark_group("flv_720p_gop");
    g.throughput(Throughput::Bytes(au_bytes));

    g.bench_function("copy_lower_bound", |b| {
        // One copy of every NAL unit into one buffer per access unit: what any contiguous
        // tag body costs at least.
        b.iter(|| {
            for au in &units {
                let len: usize = au.nalus.iter().map(|n| n.len()).sum();
                let mut out = BytesMut::with_capacity(len);
                for n in &au.nalus {
                    out.put_slice(n);
                }
                black_box(out.freeze());
            }
        })
    });

    g.bench_function("nalu_body", |b| {
        b.iter(|| {
            for au in &units {
                let frame = if au.key {
                    FrameType::Key
                } else {
                    FrameType::Inter
                };
                black_box(nalu_body(frame, 0, black_box(&au.nalus)).ok());
            }
        })
    });

    g.bench_function("timeline_and_nalu_body", |b| {
        let mut timeline = TagTimeline::new();
        let mut base = 0i64;
        b.iter(|| {
            for au in &units {
                let dts = base + au.dts_in(TimeBase::MILLIS);
                let pts = base + au.pts_in(TimeBase::MILLIS);
                let Ok(t) = timeline.next(dts, pts) else {
                    continue;
                };
                let frame = if au.key {
                    FrameType::Key
                } else {
                    FrameType::Inter
                };
                black_box((
                    t.timestamp,
                    nalu_body(frame, t.composition_time_ms, &au.nalus).ok(),
                ));
            }
            // The next GOP continues the timeline.
            base += 1000;
        })
    });

    match publishing_core() {
        Some(mut core) => {
            // Each iteration sends the GOP again one GOP later, so DTS keeps increasing (the
            // clone shares the NAL unit bytes).
            let mut shift = 0i64;
            g.bench_function("publisher_core_send_to_wire_bytes", |b| {
                b.iter(|| {
                    for au in &units {
                        let mut au = au.clone();
                        au.dts += shift;
                        au.pts += shift;
                        if core.send(Instant::now(), &au).is_err() {
                            return;
                        }
                        while let Some(bytes) = core.poll_transmit() {
                            black_box(bytes);
                        }
                    }
                    shift += 30 * 3000;
                })
            });
        }
        None => eprintln!("skipped publisher_core_send_to_wire_bytes: no in-memory session"),
    }
    g.finish();

    let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS));
    if let Ok(config) = track.and_then(|t| t.avc_config()) {
        let mut g = c.benchmark_group("flv_sequence_header");
        g.bench_function("sequence_header_body", |b| {
            b.iter(|| black_box(sequence_header_body(black_box(&config)).ok()))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
