//! Fuzzes the AAC parsers fed bytes from a file or a peer: AudioSpecificConfig, ADTS headers and
//! ADTS frame splitting. Nothing may panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::audio::{is_adts, split_adts, AacConfig, AdtsHeader};
use mpegcoder_transport::AudioTrack;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = AacConfig::parse(data) {
        let _ = (cfg.channels(), cfg.frequency_index());
    }
    let _ = AudioTrack::aac(Bytes::copy_from_slice(data)).map(|t| t.rtp_clock_rate());

    for offset in 0..data.len().min(16) {
        if let Ok(h) = AdtsHeader::parse(&data[offset..], offset) {
            assert!(h.frame_len >= h.header_len);
            // The header's own configuration is a valid AudioSpecificConfig or a clean error.
            let _ = AacConfig::parse(&h.config());
        }
    }

    let adts = is_adts(data);
    let bytes = Bytes::copy_from_slice(data);
    if let Ok((first, frames)) = split_adts(&bytes) {
        assert!(adts, "split_adts accepted input that is_adts rejects");
        assert!(!frames.is_empty());
        assert!(frames.iter().map(Bytes::len).sum::<usize>() <= bytes.len());
        let _ = first.config();
    }
});
