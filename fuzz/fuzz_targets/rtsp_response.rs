//! Fuzzes the RTSP response parser: arbitrary server bytes, pushed in arbitrary pieces, through
//! the incremental decoder, the header parsers and the publisher state machine. None may panic,
//! and the decoder must not depend on how the bytes are split.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mpegcoder_transport::rtsp::auth::parse_challenges;
use mpegcoder_transport::rtsp::headers::{SessionHeader, TransportHeader};
use mpegcoder_transport::rtsp::message::{parse_message, Incoming, MessageDecoder};
use mpegcoder_transport::rtsp::{ConnectionInfo, RtspOptions, RtspPublisherCore, RtspUrl};
use mpegcoder_transport::{Track, Transport, VideoTrack};

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

fn decode_all(pieces: &[&[u8]]) -> Vec<Result<Incoming, (u64, &'static str)>> {
    let mut d = MessageDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        d.push(p);
        loop {
            match d.next_message() {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err((e.offset, e.reason)));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    // Whole versus in pieces of `split` bytes: the same messages.
    let step = usize::from(split).max(1);
    let whole = decode_all(&[data]);
    let pieces: Vec<&[u8]> = data.chunks(step).collect();
    assert_eq!(decode_all(&pieces), whole);
    let _ = parse_message(data);

    for msg in whole.iter().flatten() {
        if let Incoming::Response(r) = msg {
            for h in &r.headers.0 {
                let _ = TransportHeader::parse(&h.value);
                let _ = SessionHeader::parse(&h.value);
            }
            let _ = parse_challenges(r.headers.get_all("WWW-Authenticate"));
        }
    }

    // The state machine fed the same bytes as server replies, over both transports.
    let Ok(track) = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)) else {
        return;
    };
    for transport in [Transport::Tcp, Transport::Udp] {
        let Ok(url) = RtspUrl::parse("rtsp://user:pw@127.0.0.1:8554/live") else {
            return;
        };
        let now = Instant::now();
        let conn = ConnectionInfo {
            server_ip: [127, 0, 0, 1].into(),
            local_ip: [127, 0, 0, 1].into(),
            client_ports: vec![(5000, 5001)],
            seed: 1,
        };
        let options = RtspOptions::default().with_transport(transport);
        let Ok(mut core) = RtspPublisherCore::new(
            url,
            &[Track::from(&track)],
            options,
            conn,
            now,
            SystemTime::UNIX_EPOCH,
        ) else {
            return;
        };
        for p in &pieces {
            if core.handle_input(now, p).is_err() {
                break;
            }
            while core.poll_transmit().is_some() {}
            while core.poll_event().is_some() {}
        }
        core.handle_rtcp(now, data);
        let _ = core.handle_timeout(now + Duration::from_secs(100));
        let _ = core.close(now);
        let _ = core.handle_eof(now);
    }
});
