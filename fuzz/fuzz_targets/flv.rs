//! Fuzzes the FLV video and audio tag body parsers (what an RTMP server sends a player), with
//! the timestamp extender over the same bytes. Nothing may panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::pull::flv_parse::{
    parse_audio_tag, parse_video_tag, TimestampExtender, VideoTagBody,
};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(VideoTagBody::SequenceHeader(cfg)) = parse_video_tag(&bytes) {
        let _ = cfg.to_bytes();
    }
    let _ = parse_audio_tag(&bytes);

    let mut ext = TimestampExtender::new();
    for chunk in data.chunks_exact(4) {
        let ts = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let _ = ext.extend(ts);
    }
});
