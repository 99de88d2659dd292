//! Fuzzes the RTMP player's sans-IO core with arbitrary server bytes. A fixed plain (non-
//! digest) handshake reply comes first, so the fuzzed bytes reach the chunk stream, the
//! command handling and the FLV tag parsing; the first input byte picks the piece size.
//! Nothing may panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::pull::{PullOptions, RtmpPlayCore};
use mpegcoder_transport::rtmp::RtmpUrl;

#[path = "common/rtmp_handshake.rs"]
mod rtmp_handshake;
use rtmp_handshake::handshake_reply;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let Ok(url) = RtmpUrl::parse("rtmp://127.0.0.1/live/cam") else {
        return;
    };
    let now = Instant::now();
    let Ok(mut core) = RtmpPlayCore::new(url, &PullOptions::default(), now) else {
        return;
    };
    let mut input = handshake_reply();
    input.extend_from_slice(data);
    for piece in input.chunks(step) {
        if core.handle_input(now, piece).is_err() {
            break;
        }
        while core.poll_transmit().is_some() {}
        while core.poll_event().is_some() {}
    }
    let _ = (core.state(), core.stats(), core.track(), core.audio_track());
    let _ = core.poll_timeout();
    let _ = core.handle_timeout(now + Duration::from_secs(100));
    core.close();
    let _ = core.handle_eof(now);
    while core.poll_transmit().is_some() {}
    while core.poll_event().is_some() {}
});
