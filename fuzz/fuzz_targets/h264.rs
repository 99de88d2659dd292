//! Fuzzes the H.264 byte-stream parsers fed bytes from a file or a peer: Annex B and
//! length-prefixed splitting, the avcC record (with a serialise/parse round trip), the SPS
//! reader and the track constructors. Nothing may panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::h264::{split_annexb, split_length_prefixed, AvcDecoderConfig, SpsInfo};
use mpegcoder_transport::VideoTrack;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);

    let nalus = split_annexb(&bytes);
    for n in &nalus {
        let _ = SpsInfo::parse(n);
    }
    let _ = VideoTrack::from_nalus(&nalus);

    for length_size in 1..=4u8 {
        if let Ok(units) = split_length_prefixed(&bytes, length_size) {
            // Every unit is a part of the input, so together they are no longer than it.
            assert!(units.iter().map(Bytes::len).sum::<usize>() <= bytes.len());
            let _ = VideoTrack::from_nalus(&units);
        }
    }

    if let Ok(cfg) = AvcDecoderConfig::parse(&bytes) {
        if let Ok(written) = cfg.to_bytes() {
            let reparsed = AvcDecoderConfig::parse(&written);
            assert_eq!(reparsed.as_ref(), Ok(&cfg), "avcC round trip");
        }
    }

    if let Ok(info) = SpsInfo::parse(data) {
        let _ = info.profile_level_id();
    }

    if let Ok(track) = VideoTrack::from_extradata(&bytes) {
        let _ = (track.width(), track.height());
        let _ = track.avc_config().map(|c| c.to_bytes());
    }
});
