//! Fuzzes the compound RTCP parser with arbitrary datagrams from a peer, then reads every parsed
//! packet through its accessors. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::rtcp::{parse_compound, RtcpPacket};

fuzz_target!(|data: &[u8]| {
    let Ok(packets) = parse_compound(data) else {
        return;
    };
    // A successful parse consumes at least 4 bytes per packet.
    assert!(packets.len() * 4 <= data.len());
    for p in &packets {
        for block in p.report_blocks() {
            let seq = block.highest_sequence();
            // A receiver has always received its own highest sequence number.
            assert!(block.acknowledges(seq));
            let _ = block.acknowledges(seq.wrapping_add(1));
            let _ = block.acknowledges(seq.wrapping_sub(0x8000));
            // The 24-bit signed field stays within its range.
            assert!((-(1 << 23)..(1 << 23)).contains(&block.cumulative_lost));
        }
        if let RtcpPacket::Bye { reason, .. } = p {
            let _ = reason.as_deref().map(str::len);
        }
        let _ = format!("{p:?}");
    }
});
