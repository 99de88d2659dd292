//! The chunk check, the AMF0 reader and panic containment; the publisher against the inputs
//! that made rml_rtmp 0.8.0 panic (found by the `rtmp_publish` fuzz target).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::time::RtmpTimestamp;

use super::contain::contain;
use super::guard::{amf0_values, Amf0Problem, ChunkCheck, MAX_AMF0_DEPTH};
use super::RtmpPublisherCore;
use crate::audio::{AudioFrame, AudioTrack};
use crate::h264::{AccessUnit, VideoTrack};
use crate::rtmp::error::RtmpError;
use crate::rtmp::options::RtmpOptions;
use crate::rtmp::url::RtmpUrl;
use crate::session::Track;
use crate::TimeBase;

/// Bytes from a hex string (whitespace ignored).
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// The server's side of a plain handshake (S0, an all-zero S1, an S2 the client accepts), as
/// the fuzz targets send it.
pub(crate) fn handshake_reply() -> Vec<u8> {
    let mut v = vec![0u8; 1 + 2 * 1536];
    v[0] = 3;
    v
}

/// One message as rml_rtmp's serializer writes it (a full header, chunk size 128).
fn serialized(type_id: u8, stream_id: u32, data: &[u8]) -> Vec<u8> {
    let payload = MessagePayload {
        timestamp: RtmpTimestamp::new(0),
        type_id,
        message_stream_id: stream_id,
        data: Bytes::copy_from_slice(data),
    };
    ChunkSerializer::new()
        .serialize(&payload, true, false)
        .unwrap()
        .bytes
}

/// One message of at most 128 bytes in one chunk with a full header on chunk stream 3, also
/// an empty one (which rml_rtmp's serializer does not write).
fn one_chunk(type_id: u8, stream_id: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut v = vec![0x03, 0, 0, 0, len[1], len[2], len[3], type_id];
    v.extend(stream_id.to_le_bytes());
    v.extend(body);
    v
}

/// An AMF0 command: `_result`, 1, null (the three values every command has).
const RESULT: &[u8] = &[
    0x02, 0x00, 0x07, b'_', b'r', b'e', b's', b'u', b'l', b't', 0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
    0x05,
];

#[test]
fn well_formed_chunks_pass_at_every_split() {
    // A 300-byte video message in three chunks (all with a full header: rml_rtmp's serializer
    // repeats it when told not to compress, and the check lets a header that repeats the
    // message's length, type and stream continue it), a command, Set Chunk Size 4096, then a
    // 5000-byte message in a full and a Type 3 chunk of the new size.
    let mut bytes = serialized(9, 1, &[7; 300]);
    bytes.extend(serialized(20, 0, RESULT));
    bytes.extend(serialized(1, 0, &4096u32.to_be_bytes()));
    let mut big = ChunkSerializer::new();
    big.set_max_chunk_size(4096, RtmpTimestamp::new(0)).unwrap();
    let payload = MessagePayload {
        timestamp: RtmpTimestamp::new(0x0100_0000),
        type_id: 9,
        message_stream_id: 1,
        data: Bytes::from(vec![1; 5000]),
    };
    bytes.extend(big.serialize(&payload, false, false).unwrap().bytes);
    for step in [1, 2, 3, 7, 128, bytes.len()] {
        let mut check = ChunkCheck::default();
        for piece in bytes.chunks(step) {
            check.check(piece).unwrap();
        }
        let last = check.last().unwrap();
        assert_eq!(
            (last.fmt, last.type_id, last.length),
            (3, 9, 5000),
            "{step}"
        );
    }
}

#[test]
fn a_new_message_inside_an_unfinished_one_is_refused_before_rml_rtmp_sees_it() {
    // 300 bytes announced on chunk stream 4, one 128-byte chunk sent, then a 4-byte message on
    // chunk stream 4 (rml_rtmp: 4 - 128 underflows) and on chunk stream 2 (the same, its buffer
    // is shared by all chunk streams).
    let first = serialized(9, 1, &[7; 300]);
    let partial = &first[..12 + 128];
    for (csid, unsupported) in [(4u8, false), (2, true)] {
        let mut bytes = partial.to_vec();
        let second_at = bytes.len();
        bytes.extend([csid, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0]);
        bytes.extend(2_500_000u32.to_be_bytes());
        let mut check = ChunkCheck::default();
        let (before, m) = check.check(&bytes).unwrap_err();
        assert_eq!(before, second_at);
        assert_eq!(m.unsupported, unsupported, "{m}");
        let text = m.to_string();
        assert!(text.contains("still had 172 bytes to come"), "{text}");
        assert!(
            text.contains(&format!(
                "chunk type 0 on chunk stream {csid}, message type 5"
            )),
            "{text}"
        );
        // What the check let through does not make rml_rtmp panic.
        let mut d = ChunkDeserializer::new();
        assert!(d.get_next_message(&bytes[..before]).unwrap().is_none());
    }
}

#[test]
fn headers_without_a_previous_header_and_small_extended_deltas_are_refused() {
    // Type 1 on a fresh chunk stream.
    let e = ChunkCheck::default()
        .check(&[0x45, 0, 0, 0, 0, 0, 1, 9])
        .unwrap_err();
    assert_eq!(e.0, 0);
    assert!(e.1.problem.contains("no"), "{}", e.1);
    // A message on chunk stream 3, then a Type 1 header whose extended delta is below
    // 0xFFFFFF (rml_rtmp computes `delta - 0xFFFFFF`).
    let mut bytes = one_chunk(9, 1, &[1; 4]);
    let at = bytes.len();
    bytes.extend([0x43, 0xff, 0xff, 0xff, 0, 0, 1, 9, 0, 0, 0, 5, 0]);
    let (before, m) = ChunkCheck::default().check(&bytes).unwrap_err();
    assert_eq!(before, at);
    assert!(m.problem.contains("extended timestamp delta of 5"), "{m}");
}

#[test]
fn set_chunk_size_is_followed_and_zero_is_refused() {
    let mut check = ChunkCheck::default();
    check
        .check(&serialized(1, 0, &200u32.to_be_bytes()))
        .unwrap();
    // A 200-byte message now fits one chunk: a Type 0 header right after it is a new message.
    let mut bytes = vec![0x06, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0];
    bytes.extend([3; 200]);
    bytes.extend(serialized(20, 0, RESULT));
    check.check(&bytes).unwrap();
    let e = ChunkCheck::default()
        .check(&serialized(1, 0, &0u32.to_be_bytes()))
        .unwrap_err();
    assert!(e.1.to_string().contains("Set Chunk Size 0"), "{}", e.1);
    let e = ChunkCheck::default()
        .check(&serialized(1, 0, &[0, 1]))
        .unwrap_err();
    assert!(e.1.problem.contains("of 2 bytes"), "{}", e.1);
}

#[test]
fn commands_with_fewer_than_three_values_are_refused() {
    // One empty string (the fuzz input), nothing at all, and an AMF3 command (17) whose
    // leading zero rml_rtmp skips.
    for (type_id, body, n) in [
        (20u8, &[0x02, 0x00, 0x00][..], 1),
        (20, &[][..], 0),
        (17, &[0x00, 0x05, 0x05][..], 2),
    ] {
        let (before, m) = ChunkCheck::default()
            .check(&one_chunk(type_id, 0, body))
            .unwrap_err();
        assert_eq!(before, 0);
        let text = m.to_string();
        assert!(
            text.starts_with("the server sent a malformed RTMP message"),
            "{text}"
        );
        assert!(
            text.contains(&format!("a command of {n} AMF0 value")),
            "{text}"
        );
        assert!(
            text.contains(&format!("chunk stream 3, message type {type_id}")),
            "{text}"
        );
        // rml_rtmp itself panics on exactly these.
        let mut d = ChunkDeserializer::new();
        let payload = d.get_next_message(&one_chunk(type_id, 0, body)).unwrap();
        let decoded = contain(|| payload.unwrap().to_rtmp_message().is_ok());
        assert!(decoded.is_err(), "{type_id} {body:?}");
    }
    ChunkCheck::default()
        .check(&serialized(20, 0, RESULT))
        .unwrap();
    // What rml_amf0 refuses by itself (an unknown marker) is left to it.
    ChunkCheck::default()
        .check(&serialized(20, 0, &[0x0d]))
        .unwrap();
}

#[test]
fn the_amf0_reader_counts_as_rml_amf0_and_bounds_the_nesting() {
    assert_eq!(amf0_values(RESULT), Ok(3));
    // Reading stops at an object-end marker at the top level, and at the end of the data.
    assert_eq!(amf0_values(&[0x05, 0x09, 0x05]), Ok(1));
    // A short string is padded, not refused; invalid UTF-8 is refused.
    assert_eq!(amf0_values(&[0x02, 0x00, 0x05, b'a']), Ok(1));
    assert_eq!(
        amf0_values(&[0x02, 0x00, 0x01, 0xff]),
        Err(Amf0Problem::Invalid)
    );
    // A number needs 8 bytes.
    assert_eq!(amf0_values(&[0x00, 1, 2]), Err(Amf0Problem::Invalid));
    // An object {a: 1.0}, an ECMA array, a strict array [null, null].
    let object = [
        0x03, 0x00, 0x01, b'a', 0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x09,
    ];
    assert_eq!(amf0_values(&object), Ok(1));
    let ecma = [0x08, 0, 0, 0, 1, 0x00, 0x01, b'b', 0x05, 0x00, 0x00, 0x09];
    assert_eq!(amf0_values(&ecma), Ok(1));
    assert_eq!(amf0_values(&[0x0a, 0, 0, 0, 2, 0x05, 0x05, 0x05]), Ok(2));
    // A property without a value is an error.
    assert_eq!(
        amf0_values(&[0x03, 0x00, 0x01, b'a']),
        Err(Amf0Problem::Invalid)
    );
    // Nesting: MAX_AMF0_DEPTH strict arrays pass, one more does not.
    let nested = |levels: usize| {
        let mut v = Vec::new();
        for _ in 0..levels {
            v.extend([0x0a, 0, 0, 0, 1]);
        }
        v.push(0x05);
        v
    };
    assert_eq!(amf0_values(&nested(MAX_AMF0_DEPTH)), Ok(1));
    assert_eq!(
        amf0_values(&nested(MAX_AMF0_DEPTH + 1)),
        Err(Amf0Problem::TooDeep)
    );
    // A data message nested far deeper than rml_amf0's recursion can take is refused.
    let mut check = ChunkCheck::default();
    let deep = nested(200_000);
    let len = u32::try_from(deep.len()).unwrap().to_be_bytes();
    let mut bytes = vec![0x03, 0, 0, 0, len[1], len[2], len[3], 18, 1, 0, 0, 0];
    for (i, piece) in deep.chunks(128).enumerate() {
        if i > 0 {
            bytes.push(0xc3);
        }
        bytes.extend(piece);
    }
    let (_, m) = check.check(&bytes).unwrap_err();
    assert!(m.problem.contains("nested more than 64 levels"), "{m}");
}

#[test]
fn contain_turns_rml_rtmps_panics_into_their_message() {
    // The chunk deserializer's underflow itself, without the check in front.
    let mut bytes = serialized(9, 1, &[7; 300])[..12 + 128].to_vec();
    bytes.extend([0x04, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0, 0, 0, 0, 1]);
    let mut d = ChunkDeserializer::new();
    let caught = contain(|| d.get_next_message(&bytes).map(|m| m.is_some()));
    let message = caught.unwrap_err();
    assert!(
        message.contains("overflow") || message.contains("capacity"),
        "{message}"
    );
    assert_eq!(contain(|| 1 + 1), Ok(2));
}

/// The `rtmp_publish` fuzz target's run: its first byte is the piece size, the rest follows the
/// handshake reply; media is sent whenever the core can. Returns the first error.
fn publish_like_the_fuzz_target(input: &[u8]) -> Result<(), RtmpError> {
    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
    let (&split, data) = input.split_first().unwrap();
    let step = usize::from(split).max(1);
    let video = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    let audio = AudioTrack::aac(Bytes::from_static(&[0x12, 0x10])).unwrap();
    let url = RtmpUrl::parse("rtmp://user:pw@127.0.0.1/live/cam?x=1").unwrap();
    let now = crate::clock::test_origin();
    let tracks = [Track::from(video), Track::from(audio)];
    let mut core = RtmpPublisherCore::new(url, &tracks, &RtmpOptions::default(), now).unwrap();
    let mut bytes = handshake_reply();
    bytes.extend_from_slice(data);
    let tb = TimeBase::new(1, 1000);
    let au = Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x10]);
    for (i, piece) in bytes.chunks(step).enumerate() {
        core.handle_input(now, piece)?;
        while core.poll_transmit().is_some() {}
        while core.poll_event().is_some() {}
        if core.can_send() {
            let pts = i64::try_from(i).unwrap() * 33;
            let _ = core.send(now, &AccessUnit::from_annexb(&au, pts, pts, tb, true));
            let frame = AudioFrame::new(Bytes::from_static(&[0x21, 0x10]), pts, tb);
            let _ = core.send_audio(now, &frame);
        }
    }
    Ok(())
}

/// The error of a fuzz input: a protocol error naming the malformed message, found before
/// rml_rtmp read it (not by catching its panic).
fn assert_refused(e: &RtmpError, wants: &[&str]) {
    let RtmpError::Protocol { reason, url, .. } = e else {
        panic!("{e:?}")
    };
    assert!(!url.contains("pw"), "{url}");
    assert!(!reason.contains("panicked"), "{reason}");
    for want in wants {
        assert!(reason.contains(want), "{want:?} not in {reason}");
    }
}

#[test]
fn publisher_survives_an_amf0_command_of_one_value() {
    // fuzz/artifacts/rtmp_publish/amf0-command-one-value: a command that is one empty string
    // (rml_rtmp: `amf0_command.rs:35` slice out of range).
    let e = publish_like_the_fuzz_target(&unhex("40030000000000031400000000020000")).unwrap_err();
    assert_refused(
        &e,
        &[
            "the server sent a malformed RTMP message (chunk type 0 on chunk stream 3, message \
             type 20 (AMF0 command) on message stream 0, 3 bytes)",
            "a command of 1 AMF0 value;",
        ],
    );
    assert!(
        e.to_string()
            .starts_with("RTMP protocol error with rtmp://127.0.0.1/live/cam?x=1 during"),
        "{e}"
    );
    // The same 16 bytes taken as server bytes (a leading 0x40 byte as the piece size: all at
    // once): a Type 1 chunk header with nothing before it on its chunk stream.
    let mut input = vec![0xff];
    input.extend(unhex("40030000000000031400000000020000"));
    let e = publish_like_the_fuzz_target(&input).unwrap_err();
    assert_refused(
        &e,
        &["chunk type 1 on chunk stream 67", "earlier message header"],
    );
}

/// fuzz/artifacts/rtmp_publish/crash-127e0bf2…: `_result`s, one truncated, then a 0x5a-byte
/// `onStatus` whose header arrives inside another message.
const PUBLISH_CRASH_127E: &str =
    "4002007074696f6e0200026f6b0000090300000000001d14000000000200075f726573756c7400400000000000\
000005003ff00000000000000300000000001d14000000000200075f7265730000001d14000000000200075f72\
6573756c7400400800000000000005003ff00000000000000300000000001d14000000000200075f726573756c\
740040000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
00000000000000000000000000000000000000000000001000000000000005003ff00000000000000500000000\
005a14010000000200086f6e537461747573000000000000000000050300056c657665028e38e38e38e38e7573\
0004636f64650200174e657453747265616d2e5075626c6973682e537406737461740065736372697074696f6e\
02000178000009";

/// fuzz/artifacts/rtmp_publish/crash-3e1d23c4…: a server's replies to connect and
/// createStream with one length changed.
const PUBLISH_CRASH_3E1D: &str =
    "0702000000000004010000000000001000020000000000040500000000002625a0020000000000050600000000\
002625a0020300000000009214000000000200075f726573756c74003ff0000000000000030006666d73566572\
02000d464d532f332c302c312c313233000c6361706162696c697469657300403f000000000000000009030005\
6c6576656c0200067374617475730004636f646502001d4e6574436f6e6e656374696f6e2e436f6e6e6563742e\
53756363657373000b6465736372697074696f6e0200026f6b0000090300000000001d14000000000200075f72\
6573756c7400400000000000000005003ff00000000000000300000000001d14000000000200075f726573756c\
74004008007a0000000005003ff00000000000000300000000001d14000000000200075f726573756c74004010\
00000000000005003ff00000000000000500000000005b14010000000204086f6e537461747573000000000000\
000000050300056c6576656c02000565720c6361706162696c697469657300403f000000000000000009030005\
6c6576656c0200067374616465736372697074696f6e02000178000009";

#[test]
fn publisher_survives_the_fuzzed_chunk_streams() {
    for (name, hex) in [("127e", PUBLISH_CRASH_127E), ("3e1d", PUBLISH_CRASH_3E1D)] {
        let e = publish_like_the_fuzz_target(&unhex(hex)).unwrap_err();
        assert_refused(&e, &["chunk stream"]);
        assert!(e.to_string().contains("during"), "{name}: {e}");
    }
}
