//! Fuzzes the RTMP publisher's sans-IO core with arbitrary server bytes. A fixed plain (non-
//! digest) handshake reply comes first, so the fuzzed bytes reach the chunk stream and the
//! command handling; the first input byte picks the piece size. Nothing may panic.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::rtmp::{RtmpOptions, RtmpPublisherCore, RtmpUrl};
use mpegcoder_transport::{AccessUnit, AudioFrame, AudioTrack, TimeBase, Track, VideoTrack};

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
/// AAC LC, 44.1 kHz, stereo.
const ASC: &[u8] = &[0x12, 0x10];
#[path = "common/rtmp_handshake.rs"]
mod rtmp_handshake;
use rtmp_handshake::handshake_reply;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let Ok(video) = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)) else {
        return;
    };
    let Ok(audio) = AudioTrack::aac(Bytes::from_static(ASC)) else {
        return;
    };
    let Ok(url) = RtmpUrl::parse("rtmp://user:pw@127.0.0.1/live/cam?x=1") else {
        return;
    };
    let now = Instant::now();
    let tracks = [Track::from(video), Track::from(audio)];
    let Ok(mut core) = RtmpPublisherCore::new(url, &tracks, &RtmpOptions::default(), now) else {
        return;
    };
    let mut input = handshake_reply();
    input.extend_from_slice(data);
    let tb = TimeBase::new(1, 1000);
    let au = Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x10]);
    for (i, piece) in input.chunks(step).enumerate() {
        if core.handle_input(now, piece).is_err() {
            break;
        }
        while let Some(t) = core.poll_transmit() {
            let _ = t;
        }
        while core.poll_event().is_some() {}
        if core.can_send() {
            let pts = i64::try_from(i).unwrap_or(0) * 33;
            let _ = core.send(now, &AccessUnit::from_annexb(&au, pts, pts, tb, true));
            let frame = AudioFrame::new(Bytes::from_static(&[0x21, 0x10]), pts, tb);
            let _ = core.send_audio(now, &frame);
        }
    }
    let _ = (
        core.state(),
        core.stats(),
        core.queued_bytes(),
        core.poll_timeout(),
    );
    let _ = core.handle_timeout(now + Duration::from_secs(100));
    let _ = core.close(now);
    let _ = core.handle_eof(now);
    while core.poll_transmit().is_some() {}
    while core.poll_event().is_some() {}
});
