//! The state machine driven by scripted server replies, without sockets and on virtual time.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime};

/// An arbitrary origin for virtual time: the core never reads a clock, so tests pass it
/// instants built from this one plus explicit offsets.
fn origin() -> Instant {
    crate::clock::test_origin()
}

use bytes::Bytes;

use super::*;
use crate::rtsp::auth::{digest_response, parse_challenges, Challenge};
use crate::rtsp::message::{parse_message, Incoming};
use crate::rtsp::url::RtspUrl;
use crate::session::Track;
use crate::TimeBase;

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
const SSRC: u32 = 0x0102_0304;
const FIRST_SEQ: u16 = 65_530; // wraps during the tests
const URL: &str = "rtsp://127.0.0.1:8554/live";
const PASSWORD: &str = "s3cr3t-pw";

fn track() -> VideoTrack {
    VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS))
        .unwrap()
        .with_frame_rate(30, 1)
}

fn options(transport: Transport) -> RtspOptions {
    let mut o = RtspOptions::default().with_transport(transport);
    o.packetizer.ssrc = Some(SSRC);
    o.packetizer.initial_sequence = Some(FIRST_SEQ);
    o.packetizer.timestamp_offset = Some(1000);
    o
}

fn conn(transport: Transport) -> ConnectionInfo {
    ConnectionInfo {
        server_ip: "127.0.0.1".parse().unwrap(),
        local_ip: "127.0.0.1".parse().unwrap(),
        client_ports: if transport != Transport::Tcp {
            vec![(5000, 5001)]
        } else {
            Vec::new()
        },
        seed: 7,
    }
}

fn new_core(url: &str, transport: Transport, t0: Instant) -> RtspPublisherCore {
    new_core_with(url, options(transport), t0)
}

/// The wall-clock time the cores are created at (see `new_core_with`).
const WALL_UNIX_SECS: u64 = 1_700_000_000;

fn new_core_with(url: &str, opts: RtspOptions, t0: Instant) -> RtspPublisherCore {
    let transport = opts.transport;
    RtspPublisherCore::new(
        RtspUrl::parse(url).unwrap(),
        &[Track::from(track())],
        opts,
        conn(transport),
        t0,
        SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_UNIX_SECS),
    )
    .unwrap()
}

/// A 30 fps access unit: frame `n`, key or not, with a slice of `size` bytes.
fn au(n: i64, key: bool, size: usize) -> AccessUnit {
    let mut slice = vec![if key { 0x65 } else { 0x41 }];
    slice.extend((0..size).map(|i| (i % 251) as u8 | 1));
    AccessUnit {
        pts: n * 3000,
        dts: n * 3000,
        time_base: TimeBase::RTP_VIDEO,
        key,
        nalus: vec![Bytes::from(slice)],
    }
}

/// Everything the core wrote, as (kind, bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Tcp(Vec<u8>),
    UdpRtp(String, Vec<Vec<u8>>),
    UdpRtcp(String, Vec<u8>),
    Shutdown,
}

fn drain(core: &mut RtspPublisherCore) -> Vec<Out> {
    let mut out = Vec::new();
    while let Some(t) = core.poll_transmit() {
        // As a driver would: every byte of the connection is written at once.
        if let Transmit::Stream(c) = &t {
            core.handle_written(origin(), c.len());
        }
        out.push(match t {
            Transmit::Stream(c) => {
                let mut v = Vec::new();
                let mut slices = Vec::new();
                c.io_slices(&mut slices);
                for s in &slices {
                    v.extend_from_slice(s);
                }
                assert_eq!(v.len(), c.len());
                assert_eq!(&v[..], &c.to_bytes()[..]);
                Out::Tcp(v)
            }
            Transmit::RtpDatagrams { dest, packets, .. } => Out::UdpRtp(
                dest.to_string(),
                packets.iter().map(|p| p.to_bytes().to_vec()).collect(),
            ),
            Transmit::RtcpDatagram { dest, data, .. } => {
                Out::UdpRtcp(dest.to_string(), data.to_vec())
            }
            Transmit::Shutdown => Out::Shutdown,
        });
    }
    out
}

fn events(core: &mut RtspPublisherCore) -> Vec<SessionEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// A request the core wrote: method, URI, headers, body.
#[derive(Debug)]
struct Req {
    method: String,
    uri: String,
    headers: crate::rtsp::message::Headers,
    body: Bytes,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
    fn cseq(&self) -> u32 {
        self.headers.cseq().unwrap()
    }
}

fn as_request(out: &Out) -> Req {
    let Out::Tcp(bytes) = out else {
        panic!("not TCP: {out:?}")
    };
    let (msg, used) = parse_message(bytes).unwrap().unwrap();
    assert_eq!(used, bytes.len(), "one request per transmit");
    let Incoming::Request(r) = msg else {
        panic!("not a request: {msg:?}")
    };
    Req {
        method: r.method,
        uri: r.uri,
        headers: r.headers,
        body: r.body,
    }
}

/// The single request among `outs`.
fn only_request(outs: &[Out]) -> Req {
    assert_eq!(outs.len(), 1, "{outs:?}");
    as_request(&outs[0])
}

fn reply(cseq: u32, extra: &str) -> Vec<u8> {
    format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n").into_bytes()
}

fn status(code: u16, reason: &str, cseq: u32, extra: &str) -> Vec<u8> {
    format!("RTSP/1.0 {code} {reason}\r\nCSeq: {cseq}\r\n{extra}\r\n").into_bytes()
}

const PUBLIC: &str = "Public: OPTIONS, ANNOUNCE, SETUP, RECORD, GET_PARAMETER, TEARDOWN\r\n";
const SESSION: &str = "Session: 4711abc;timeout=30\r\n";

fn setup_reply(cseq: u32, transport: Transport) -> Vec<u8> {
    let t = match transport {
        Transport::Tcp | Transport::Auto => {
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n"
        }
        Transport::Udp => {
            "Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001;\
             ssrc=0A0B0C0D;mode=record\r\n"
        }
    };
    reply(cseq, &format!("{SESSION}{t}"))
}

/// An RTCP receiver report from the server about our SSRC.
fn receiver_report(ext_highest: u32) -> Vec<u8> {
    let mut v = vec![0x81, 201, 0, 7];
    v.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
    v.extend_from_slice(&SSRC.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(&ext_highest.to_be_bytes());
    v.extend_from_slice(&[0; 12]);
    v
}

fn interleaved(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![b'$', channel];
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Runs OPTIONS..RECORD with plain 200 replies; returns the core in Recording.
fn recording(transport: Transport, t0: Instant) -> RtspPublisherCore {
    recording_with(options(transport), t0)
}

/// Runs OPTIONS..RECORD with `opts`; returns the core in Recording.
fn recording_with(opts: RtspOptions, t0: Instant) -> RtspPublisherCore {
    let transport = opts.transport;
    let mut core = new_core_with(URL, opts, t0);
    assert_eq!(only_request(&drain(&mut core)).method, "OPTIONS");
    core.handle_input(t0, &reply(1, PUBLIC)).unwrap();
    assert_eq!(only_request(&drain(&mut core)).method, "ANNOUNCE");
    core.handle_input(t0, &reply(2, "")).unwrap();
    assert_eq!(only_request(&drain(&mut core)).method, "SETUP");
    core.handle_input(t0, &setup_reply(3, transport)).unwrap();
    assert_eq!(only_request(&drain(&mut core)).method, "RECORD");
    core.handle_input(t0, &reply(4, SESSION)).unwrap();
    assert!(drain(&mut core).is_empty());
    assert!(matches!(
        events(&mut core).as_slice(),
        [SessionEvent::Publishing]
    ));
    core
}

/// Splits interleaved frames `$ ch len data`.
fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert_eq!(rest[0], b'$', "interleaved frame expected");
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        out.push((rest[1], rest[4..4 + len].to_vec()));
        rest = &rest[4 + len..];
    }
    out
}

fn rtp_seq(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

fn rtp_marker(p: &[u8]) -> bool {
    p[1] & 0x80 != 0
}

fn rtcp_types(p: &[u8]) -> Vec<u8> {
    crate::rtcp::parse_compound(p)
        .unwrap()
        .iter()
        .map(|x| match x {
            crate::rtcp::RtcpPacket::SenderReport { .. } => 200,
            crate::rtcp::RtcpPacket::ReceiverReport { .. } => 201,
            crate::rtcp::RtcpPacket::Bye { .. } => 203,
            crate::rtcp::RtcpPacket::Other { packet_type, .. } => *packet_type,
        })
        .collect()
}

#[test]
fn tcp_happy_path() {
    let t0 = origin();
    let mut core = new_core(URL, Transport::Tcp, t0);
    assert_eq!(core.state(), State::Options);
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let r = only_request(&drain(&mut core));
    assert_eq!((r.method.as_str(), r.uri.as_str()), ("OPTIONS", URL));
    assert_eq!(r.cseq(), 1);
    assert!(r.header("User-Agent").unwrap().starts_with("mpegcoder/"));

    core.handle_input(t0, &reply(1, PUBLIC)).unwrap();
    let r = only_request(&drain(&mut core));
    assert_eq!(
        (r.method.as_str(), r.uri.as_str(), r.cseq()),
        ("ANNOUNCE", URL, 2)
    );
    assert_eq!(r.header("Content-Type"), Some("application/sdp"));
    let sdp = std::str::from_utf8(&r.body).unwrap();
    assert!(sdp.starts_with("v=0\r\n"), "{sdp}");
    for line in [
        "c=IN IP4 127.0.0.1",
        "m=video 0 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "a=fmtp:96 packetization-mode=1;profile-level-id=64000d;sprop-parameter-sets=",
        "a=control:streamid=0",
        "a=framerate:30",
    ] {
        assert!(sdp.contains(line), "{line} missing in {sdp}");
    }

    core.handle_input(t0, &reply(2, "")).unwrap();
    let r = only_request(&drain(&mut core));
    assert_eq!(r.method, "SETUP");
    assert_eq!(r.uri, "rtsp://127.0.0.1:8554/live/streamid=0");
    assert_eq!(
        r.header("Transport"),
        Some("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
    );
    assert_eq!(r.header("Session"), None);

    core.handle_input(t0, &setup_reply(3, Transport::Tcp))
        .unwrap();
    let r = only_request(&drain(&mut core));
    assert_eq!((r.method.as_str(), r.uri.as_str()), ("RECORD", URL));
    assert_eq!(r.header("Session"), Some("4711abc"));
    assert_eq!(r.header("Range"), Some("npt=0.000-"));
    assert!(!core.can_send());

    core.handle_input(t0, &reply(4, SESSION)).unwrap();
    let ev = events(&mut core);
    let [SessionEvent::Publishing] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let n = core.negotiated().unwrap().clone();
    assert_eq!(n.session_id, "4711abc");
    assert_eq!(n.session_timeout, Duration::from_secs(30));
    assert_eq!(n.keepalive, Method::GetParameter);
    assert_eq!(n.ssrc, SSRC);
    assert_eq!(
        n.transport,
        NegotiatedTransport::Tcp {
            rtp_channel: 0,
            rtcp_channel: 1
        }
    );
    assert_eq!(core.state(), State::Recording);
    assert!(core.can_send());

    // Media: one transmit per access unit holding all its interleaved packets; the first
    // sender report right after the first access unit.
    core.send(t0, &au(0, true, 4000)).unwrap();
    core.send(t0, &au(1, false, 500)).unwrap();
    let outs = drain(&mut core);
    assert_eq!(outs.len(), 3, "{outs:?}");
    let Out::Tcp(first) = &outs[0] else { panic!() };
    let f = frames(first);
    assert!(f.iter().all(|(ch, _)| *ch == 0));
    // SPS+PPS were prepended (STAP-A, RFC 6184 §5.7.1), then the 4001-byte IDR in FU-As.
    assert_eq!(f[0].1[12] & 0x1f, 24);
    assert_eq!(f[0].1[13..15], [0, SPS.len() as u8]);
    assert!(f[1..].iter().all(|(_, p)| p[12] & 0x1f == 28));
    let seqs: Vec<u16> = f.iter().map(|(_, p)| rtp_seq(p)).collect();
    let expect: Vec<u16> = (0..f.len() as u16)
        .map(|i| FIRST_SEQ.wrapping_add(i))
        .collect();
    assert_eq!(seqs, expect);
    assert!(f.iter().rev().skip(1).all(|(_, p)| !rtp_marker(p)));
    assert!(rtp_marker(&f.last().unwrap().1));
    let Out::Tcp(sr) = &outs[1] else { panic!() };
    let sr = frames(sr);
    assert_eq!(sr[0].0, 1);
    assert_eq!(rtcp_types(&sr[0].1), vec![200, 202]);
    let Out::Tcp(second) = &outs[2] else { panic!() };
    let f2 = frames(second);
    assert_eq!(f2.len(), 1);
    assert_eq!(rtp_seq(&f2[0].1), FIRST_SEQ.wrapping_add(f.len() as u16));

    // Close: SR + SDES + BYE, then TEARDOWN (TCP needs no wait).
    core.close(t0).unwrap();
    let outs = drain(&mut core);
    assert_eq!(outs.len(), 2, "{outs:?}");
    let Out::Tcp(bye) = &outs[0] else { panic!() };
    assert_eq!(rtcp_types(&frames(bye)[0].1), vec![200, 202, 203]);
    let r = as_request(&outs[1]);
    assert_eq!((r.method.as_str(), r.uri.as_str()), ("TEARDOWN", URL));
    assert_eq!(r.header("Session"), Some("4711abc"));
    assert_eq!(core.state(), State::Teardown);
    core.handle_input(t0, &reply(r.cseq(), "")).unwrap();
    // TEARDOWN answered: our side closes, and the server closing its side ends the session.
    assert_eq!(drain(&mut core), vec![Out::Shutdown]);
    assert_eq!(core.state(), State::ShuttingDown);
    core.handle_eof(t0).unwrap();
    assert_eq!(events(&mut core), vec![SessionEvent::Closed]);
    assert_eq!(core.state(), State::Closed);
    let stats = core.stats();
    assert_eq!(stats.frames, 2);
    assert_eq!(stats.packets, f.len() as u64 + 1);
    assert!(stats.octets > 4500);
    assert!(core.send(t0, &au(2, false, 10)).is_err());
}

#[test]
fn udp_happy_path_waits_for_the_receiver_report() {
    let t0 = origin();
    let mut core = new_core(URL, Transport::Udp, t0);
    drain(&mut core);
    core.handle_input(t0, &reply(1, "")).unwrap();
    drain(&mut core);
    core.handle_input(t0, &reply(2, "")).unwrap();
    let r = only_request(&drain(&mut core));
    assert_eq!(
        r.header("Transport"),
        Some("RTP/AVP;unicast;client_port=5000-5001;mode=record")
    );
    core.handle_input(t0, &setup_reply(3, Transport::Udp))
        .unwrap();
    drain(&mut core);
    core.handle_input(t0, &reply(4, "")).unwrap();
    let ev = events(&mut core);
    let [SessionEvent::Publishing] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let n = core.negotiated().unwrap().clone();
    assert_eq!(
        n.transport,
        NegotiatedTransport::Udp {
            server_rtp: "127.0.0.1:6000".parse().unwrap(),
            server_rtcp: "127.0.0.1:6001".parse().unwrap(),
            client_ports: (5000, 5001),
        }
    );
    // OPTIONS did not list GET_PARAMETER: keepalives are OPTIONS.
    assert_eq!(n.keepalive, Method::Options);

    for i in 0..10 {
        core.send(t0, &au(i, i == 0, 2000)).unwrap();
    }
    let outs = drain(&mut core);
    let mut sent = 0;
    for o in &outs {
        match o {
            Out::UdpRtp(dest, packets) => {
                assert_eq!(dest, "127.0.0.1:6000");
                sent += packets.len();
            }
            Out::UdpRtcp(dest, data) => {
                assert_eq!(dest, "127.0.0.1:6001");
                assert_eq!(rtcp_types(data), vec![200, 202]);
            }
            Out::Tcp(_) | Out::Shutdown => panic!("media over TCP"),
        }
    }
    let last_ext = u32::from(FIRST_SEQ) + sent as u32 - 1;

    core.close(t0).unwrap();
    let outs = drain(&mut core);
    // A sender report now; the BYE after the wait.
    assert!(matches!(&outs[..], [Out::UdpRtcp(_, d)] if rtcp_types(d) == vec![200, 202]));
    assert_eq!(core.state(), State::Draining);
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    // A report short of the last packet does not end the wait; one covering it does.
    let t1 = t0 + Duration::from_millis(100);
    core.handle_rtcp(t1, &receiver_report(last_ext - 1));
    assert!(drain(&mut core).is_empty());
    core.handle_rtcp(t1, b"garbage");
    core.handle_rtcp(t1, &receiver_report(last_ext));
    let outs = drain(&mut core);
    assert_eq!(outs.len(), 2, "{outs:?}");
    assert!(matches!(&outs[0], Out::UdpRtcp(_, d) if rtcp_types(d) == vec![200, 202, 203]));
    let r = as_request(&outs[1]);
    assert_eq!(r.method, "TEARDOWN");
    let ev = events(&mut core);
    assert_eq!(ev.len(), 2);
    assert!(
        matches!(ev[1], SessionEvent::ReceiverReport(b) if b.extended_highest_sequence == last_ext)
    );
    core.handle_input(t1, &reply(r.cseq(), "")).unwrap();
    assert_eq!(drain(&mut core), vec![Out::Shutdown]);
    // A server that keeps the connection open after answering TEARDOWN: the session is over
    // after the shutdown wait all the same.
    assert!(events(&mut core).is_empty());
    assert_eq!(core.poll_timeout(), Some(t1 + Duration::from_secs(1)));
    core.handle_timeout(t1 + Duration::from_secs(1)).unwrap();
    assert_eq!(events(&mut core), vec![SessionEvent::Closed]);
}

#[test]
fn udp_close_without_receiver_report_times_out_then_tears_down() {
    let t0 = origin();
    let mut core = recording(Transport::Udp, t0);
    core.send(t0, &au(0, true, 100)).unwrap();
    drain(&mut core);
    core.close(t0).unwrap();
    drain(&mut core);
    let deadline = t0 + Duration::from_secs(1);
    core.handle_timeout(deadline - Duration::from_millis(1))
        .unwrap();
    assert!(drain(&mut core).is_empty());
    core.handle_timeout(deadline).unwrap();
    let outs = drain(&mut core);
    assert!(matches!(&outs[0], Out::UdpRtcp(_, d) if rtcp_types(d) == vec![200, 202, 203]));
    assert_eq!(as_request(&outs[1]).method, "TEARDOWN");
    // A server that closes instead of answering TEARDOWN still ends the session cleanly.
    core.handle_eof(deadline).unwrap();
    assert_eq!(events(&mut core), vec![SessionEvent::Closed]);
    assert_eq!(core.state(), State::Closed);
}

/// Drives OPTIONS with a 401 challenge and returns the retried OPTIONS request.
fn challenged(url: &str, challenge_headers: &str) -> (RtspPublisherCore, Req) {
    let t0 = origin();
    let mut core = new_core(url, Transport::Tcp, t0);
    let first = only_request(&drain(&mut core));
    assert_eq!(first.header("Authorization"), None);
    core.handle_input(t0, &status(401, "Unauthorized", 1, challenge_headers))
        .unwrap();
    let retry = only_request(&drain(&mut core));
    assert_eq!((retry.method.as_str(), retry.cseq()), ("OPTIONS", 2));
    (core, retry)
}

/// Checks a Digest Authorization header against the challenge.
fn check_digest(auth: &str, challenge: &str, method: &str, uri: &str) {
    let Challenge::Digest(d) = parse_challenges([challenge]).remove(0) else {
        panic!()
    };
    let field = |name: &str| {
        auth.split(&format!("{name}="))
            .nth(1)
            .map(|v| v.split(',').next().unwrap().trim_matches('"').to_string())
    };
    assert_eq!(field("username").as_deref(), Some("alice"));
    assert_eq!(field("uri").as_deref(), Some(uri));
    let qop = field("nc").map(|nc| {
        (
            u32::from_str_radix(&nc, 16).unwrap(),
            field("cnonce").unwrap(),
        )
    });
    let creds = crate::rtsp::url::Credentials {
        username: "alice".into(),
        password: PASSWORD.into(),
    };
    let expect = digest_response(
        &d,
        &creds,
        method,
        uri,
        qop.as_ref().map(|(n, c)| (*n, c.as_str())),
    );
    assert_eq!(field("response"), Some(expect), "{auth}");
}

#[test]
fn digest_md5_flow_reuses_the_challenge() {
    let url = format!("rtsp://alice:{PASSWORD}@127.0.0.1:8554/live");
    let ch = "Digest realm=\"GStreamer RTSP Server\", nonce=\"abc123\"";
    let (mut core, retry) = challenged(&url, &format!("WWW-Authenticate: {ch}\r\n"));
    let auth = retry.header("Authorization").unwrap();
    assert!(auth.starts_with("Digest ") && !auth.contains("algorithm"));
    check_digest(auth, ch, "OPTIONS", URL);
    let t = origin();
    core.handle_input(t, &reply(2, "")).unwrap();
    // The challenge is reused for later requests without another 401.
    let announce = only_request(&drain(&mut core));
    assert_eq!(announce.method, "ANNOUNCE");
    check_digest(
        announce.header("Authorization").unwrap(),
        ch,
        "ANNOUNCE",
        URL,
    );
    core.handle_input(t, &reply(3, "")).unwrap();
    let setup = only_request(&drain(&mut core));
    check_digest(
        setup.header("Authorization").unwrap(),
        ch,
        "SETUP",
        "rtsp://127.0.0.1:8554/live/streamid=0",
    );
    // Nothing the core writes contains the password.
    assert!(!String::from_utf8_lossy(&announce.body).contains(PASSWORD));
    assert!(!setup.uri.contains("alice"));
}

#[test]
fn digest_sha256_preferred_with_qop() {
    let url = format!("rtsp://alice:{PASSWORD}@127.0.0.1:8554/live");
    let md5 = "Digest realm=\"r\", nonce=\"n1\", qop=\"auth\", algorithm=MD5";
    let sha = "Digest realm=\"r\", nonce=\"n1\", qop=\"auth\", algorithm=SHA-256, opaque=\"op\"";
    let (mut core, retry) = challenged(
        &url,
        &format!("WWW-Authenticate: {md5}\r\nWWW-Authenticate: {sha}\r\n"),
    );
    let auth = retry.header("Authorization").unwrap();
    assert!(
        auth.contains("algorithm=SHA-256") && auth.contains("opaque=\"op\""),
        "{auth}"
    );
    assert!(
        auth.contains("qop=auth") && auth.contains("nc=00000001"),
        "{auth}"
    );
    check_digest(auth, sha, "OPTIONS", URL);
    core.handle_input(origin(), &reply(2, "")).unwrap();
    let announce = only_request(&drain(&mut core));
    let auth = announce.header("Authorization").unwrap();
    assert!(auth.contains("nc=00000002"), "{auth}");
    check_digest(auth, sha, "ANNOUNCE", URL);
}

#[test]
fn basic_flow() {
    let url = format!("rtsp://alice:{PASSWORD}@127.0.0.1:8554/live");
    let (_, retry) = challenged(&url, "WWW-Authenticate: Basic realm=\"x\"\r\n");
    use base64::Engine as _;
    let expect = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    assert_eq!(
        retry.header("Authorization"),
        Some(&*format!("Basic {expect}"))
    );
}

#[test]
fn unauthorized_after_credentials_and_without() {
    let url = format!("rtsp://alice:{PASSWORD}@127.0.0.1:8554/live");
    let ch = "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n";
    let (mut core, _) = challenged(&url, ch);
    let e = core
        .handle_input(origin(), &status(401, "Unauthorized", 2, ch))
        .unwrap_err();
    let RtspError::Unauthorized {
        status: st,
        credentials_given: true,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((st.method, st.status, st.cseq), (Method::Options, 401, 2));
    assert_eq!(st.reason, "Unauthorized");
    let shown = format!("{e} {e:?}");
    assert!(
        shown.contains("OPTIONS") && shown.contains("401"),
        "{shown}"
    );
    assert!(
        !shown.contains(PASSWORD) && !shown.contains("alice"),
        "{shown}"
    );
    assert_eq!(core.state(), State::Failed);
    assert_eq!(e.status(), Some(401));

    // stale=true: the nonce expired, the credentials were fine: retry, no error.
    let (mut core, _) = challenged(&url, ch);
    core.handle_input(
        origin(),
        &status(
            401,
            "Unauthorized",
            2,
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n2\", stale=true\r\n",
        ),
    )
    .unwrap();
    let r = only_request(&drain(&mut core));
    assert!(r.header("Authorization").unwrap().contains("nonce=\"n2\""));

    // No credentials in the URL.
    let t0 = origin();
    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    let e = core
        .handle_input(t0, &status(401, "Unauthorized", 1, ch))
        .unwrap_err();
    assert!(
        matches!(
            e,
            RtspError::Unauthorized {
                credentials_given: false,
                ..
            }
        ),
        "{e:?}"
    );

    // An unsupported scheme.
    let mut core = new_core(&url, Transport::Tcp, t0);
    drain(&mut core);
    let e = core
        .handle_input(
            t0,
            &status(401, "Unauthorized", 1, "WWW-Authenticate: Negotiate\r\n"),
        )
        .unwrap_err();
    assert!(matches!(e, RtspError::UnsupportedAuth { .. }), "{e:?}");
}

/// Runs the session up to `method` and answers it with `code`.
fn error_at(method: &str, code: u16, reason: &str) -> RtspError {
    let t0 = origin();
    let url = format!("rtsp://alice:{PASSWORD}@127.0.0.1:8554/live");
    let mut core = new_core(&url, Transport::Tcp, t0);
    let replies = [
        reply(1, PUBLIC),
        reply(2, ""),
        setup_reply(3, Transport::Tcp),
    ];
    let order = ["OPTIONS", "ANNOUNCE", "SETUP", "RECORD"];
    for (i, m) in order.iter().enumerate() {
        let r = only_request(&drain(&mut core));
        assert_eq!(r.method, *m);
        assert_eq!(r.cseq(), i as u32 + 1);
        if *m == method {
            return core
                .handle_input(t0, &status(code, reason, r.cseq(), ""))
                .unwrap_err();
        }
        core.handle_input(t0, &replies[i]).unwrap();
    }
    panic!("{method} not reached")
}

#[test]
fn each_error_status_is_typed() {
    let e = error_at("ANNOUNCE", 404, "Not Found");
    assert!(
        matches!(&e, RtspError::NotFound(s) if s.method == Method::Announce && s.status == 404)
    );
    let e = error_at("RECORD", 454, "Session Not Found");
    assert!(matches!(&e, RtspError::SessionNotFound(s) if s.method == Method::Record));
    let e = error_at("RECORD", 455, "Method Not Valid in This State");
    assert!(
        matches!(&e, RtspError::MethodNotValidInState(s) if s.reason == "Method Not Valid in This State")
    );
    let e = error_at("SETUP", 461, "Unsupported transport");
    assert!(matches!(&e, RtspError::UnsupportedTransport(s)
        if s.method == Method::Setup && s.url == "rtsp://127.0.0.1:8554/live/streamid=0"));
    let shown = e.to_string();
    assert!(shown.contains("SETUP") && shown.contains("461") && shown.contains("Unsupported"));
    assert!(!shown.contains(PASSWORD));
    let e = error_at("OPTIONS", 500, "Internal Server Error");
    assert!(matches!(&e, RtspError::Status(s) if s.status == 500));
    // A server without OPTIONS: carry on.
    let t0 = origin();
    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    core.handle_input(t0, &status(501, "Not Implemented", 1, ""))
        .unwrap();
    assert_eq!(only_request(&drain(&mut core)).method, "ANNOUNCE");
}

#[test]
fn setup_replies_missing_parts_are_protocol_errors() {
    for (headers, transport, want) in [
        (
            "Transport: RTP/AVP/TCP;interleaved=0-1\r\n",
            Transport::Tcp,
            "no Session",
        ),
        (SESSION, Transport::Tcp, "no Transport"),
        (
            "Session: 1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n",
            Transport::Udp,
            "server_port",
        ),
        (
            "Session: 1\r\nTransport: RTP/AVP;server_port=1-2\r\n",
            Transport::Tcp,
            "asked for TCP",
        ),
    ] {
        let t0 = origin();
        let mut core = new_core(URL, transport, t0);
        drain(&mut core);
        core.handle_input(t0, &reply(1, "")).unwrap();
        core.handle_input(t0, &reply(2, "")).unwrap();
        drain(&mut core);
        let e = core.handle_input(t0, &reply(3, headers)).unwrap_err();
        assert!(
            matches!(&e, RtspError::Protocol { method: Method::Setup, reason, .. } if reason.contains(want)),
            "{e:?}"
        );
    }
}

#[test]
fn keepalive_timing_on_virtual_time() {
    let t0 = origin();
    let mut core = recording(Transport::Tcp, t0);
    // timeout=30: keepalive every 15 s. No media yet: no sender reports either.
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(15)));
    core.handle_timeout(t0 + Duration::from_secs(14)).unwrap();
    assert!(drain(&mut core).is_empty());
    let t15 = t0 + Duration::from_secs(15);
    core.handle_timeout(t15).unwrap();
    let r = only_request(&drain(&mut core));
    assert_eq!((r.method.as_str(), r.uri.as_str()), ("GET_PARAMETER", URL));
    assert_eq!(r.header("Session"), Some("4711abc"));
    // While it is outstanding the deadline is its reply timeout.
    assert_eq!(core.poll_timeout(), Some(t15 + Duration::from_secs(10)));
    core.handle_input(t15, &reply(r.cseq(), "")).unwrap();
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    // A refused GET_PARAMETER switches keepalives to OPTIONS.
    let t30 = t0 + Duration::from_secs(30);
    core.handle_timeout(t30).unwrap();
    let r = only_request(&drain(&mut core));
    core.handle_input(t30, &status(405, "Method Not Allowed", r.cseq(), ""))
        .unwrap();
    let t45 = t0 + Duration::from_secs(45);
    core.handle_timeout(t45).unwrap();
    let r = only_request(&drain(&mut core));
    assert_eq!(r.method, "OPTIONS");
    // An unanswered keepalive times out.
    let e = core
        .handle_timeout(t45 + Duration::from_secs(10))
        .unwrap_err();
    assert!(
        matches!(
            e,
            RtspError::Timeout {
                step: Step::Request(Method::Options),
                ..
            }
        ),
        "{e:?}"
    );

    // Sender reports every 5 s once media flows; the default session timeout is 60 s.
    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    for (i, r) in [
        reply(1, ""),
        reply(2, ""),
        reply(
            3,
            "Session: s\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n",
        ),
        reply(4, ""),
    ]
    .iter()
    .enumerate()
    {
        core.handle_input(t0, r).unwrap();
        drain(&mut core);
        let _ = i;
    }
    core.send(t0, &au(0, true, 10)).unwrap();
    drain(&mut core);
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    let mut srs = 0;
    let mut keepalives = 0;
    while let Some(next) = core.poll_timeout() {
        if next > t0 + Duration::from_secs(31) {
            break;
        }
        let t = next;
        core.handle_timeout(t).unwrap();
        for o in drain(&mut core) {
            let Out::Tcp(b) = &o else { panic!() };
            if b[0] == b'$' {
                srs += 1;
            } else {
                keepalives += 1;
                let r = as_request(&o);
                assert_eq!(r.method, "OPTIONS");
                assert_eq!(t, t0 + Duration::from_secs(30));
                core.handle_input(t, &reply(r.cseq(), "")).unwrap();
            }
        }
    }
    assert_eq!((srs, keepalives), (6, 1));
}

/// A scripted session with interleaved data, RTCP and a server request among the replies.
/// Returns everything observable.
fn scripted(chunks: &[Vec<Vec<u8>>]) -> (Vec<Out>, Vec<SessionEvent>, State, Option<String>) {
    let t0 = origin();
    let mut core = new_core(URL, Transport::Tcp, t0);
    let mut outs = drain(&mut core);
    let mut evs = Vec::new();
    let mut err = None;
    for (step, pieces) in chunks.iter().enumerate() {
        for p in pieces {
            if let Err(e) = core.handle_input(t0, p) {
                err = Some(e.to_string());
            }
            outs.extend(drain(&mut core));
            evs.extend(events(&mut core));
        }
        if step == 3 {
            core.send(t0, &au(0, true, 3000)).unwrap();
            core.close(t0).unwrap();
            outs.extend(drain(&mut core));
        }
    }
    // The server closes after answering TEARDOWN.
    if core.state() == State::ShuttingDown {
        core.handle_eof(t0).unwrap();
        evs.extend(events(&mut core));
    }
    (outs, evs, core.state(), err)
}

fn script() -> Vec<Vec<u8>> {
    let server_request = b"OPTIONS * RTSP/1.0\r\nCSeq: 77\r\n\r\n".to_vec();
    let mut s = vec![
        [b"\r\n".to_vec(), reply(1, PUBLIC)].concat(),
        [interleaved(5, b"stray data"), reply(2, "")].concat(),
        [setup_reply(3, Transport::Tcp), server_request].concat(),
        [
            interleaved(1, &receiver_report(3)),
            interleaved(0, b"rtp?"),
            reply(4, SESSION),
        ]
        .concat(),
    ];
    s.push(
        [
            interleaved(1, &receiver_report(u32::from(FIRST_SEQ) + 3)),
            b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ]
        .concat(),
    );
    s
}

#[test]
fn interleaved_data_and_server_requests_between_replies() {
    let s = script();
    let (outs, evs, state, err) = scripted(&s.iter().map(|c| vec![c.clone()]).collect::<Vec<_>>());
    assert_eq!(err, None);
    assert_eq!(state, State::Closed);
    // The server's OPTIONS was answered with its CSeq.
    assert!(outs
        .iter()
        .any(|o| matches!(o, Out::Tcp(b) if b.starts_with(b"RTSP/1.0 200 OK\r\nCSeq: 77\r\n"))));
    let rr: Vec<u32> = evs
        .iter()
        .filter_map(|e| match e {
            SessionEvent::ReceiverReport(b) => Some(b.extended_highest_sequence),
            _ => None,
        })
        .collect();
    // The RR on channel 1 before RECORD's reply is read too (the channel is known after
    // SETUP); data on other channels is skipped.
    assert_eq!(rr, vec![3, u32::from(FIRST_SEQ) + 3]);
    assert!(
        matches!(evs.get(1), Some(SessionEvent::Publishing)),
        "{evs:?}"
    );
    assert_eq!(evs.last(), Some(&SessionEvent::Closed));
}

#[test]
fn replies_split_at_every_byte_give_identical_outcomes() {
    let s = script();
    let whole = scripted(&s.iter().map(|c| vec![c.clone()]).collect::<Vec<_>>());
    let mut runs = 0;
    for (i, chunk) in s.iter().enumerate() {
        for k in 0..=chunk.len() {
            let mut chunks: Vec<Vec<Vec<u8>>> = s.iter().map(|c| vec![c.clone()]).collect();
            chunks[i] = vec![chunk[..k].to_vec(), chunk[k..].to_vec()];
            assert_eq!(scripted(&chunks), whole, "split of reply {i} at byte {k}");
            runs += 1;
        }
    }
    assert!(runs > 400);
    // And byte by byte.
    let bytes: Vec<Vec<Vec<u8>>> = s
        .iter()
        .map(|c| c.iter().map(|b| vec![*b]).collect())
        .collect();
    assert_eq!(scripted(&bytes), whole);
}

#[test]
fn malformed_reply_and_closed_connection() {
    let t0 = origin();
    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    core.handle_input(t0, &reply(1, "")).unwrap();
    let e = core
        .handle_input(t0, b"RTSP/1.0 200 OK\r\nCSeq 2\r\n\r\n")
        .unwrap_err();
    assert!(
        matches!(e, RtspError::MalformedReply { offset: 45, .. }),
        "{e:?}"
    );
    assert_eq!(core.state(), State::Failed);

    let mut core = recording(Transport::Tcp, t0);
    let e = core.handle_eof(t0).unwrap_err();
    assert!(
        matches!(&e, RtspError::ConnectionClosed { during, .. } if during == "while recording"),
        "{e:?}"
    );
    let mut core = new_core(URL, Transport::Tcp, t0);
    let e = core.handle_eof(t0).unwrap_err();
    assert!(e.to_string().contains("reply to OPTIONS"), "{e}");
}

#[test]
fn wrong_cseq_fails_at_once_a_missing_one_is_ignored_and_content_base_is_used() {
    let t0 = origin();
    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    let e = core.handle_input(t0, &reply(9, "")).unwrap_err();
    assert!(
        e.to_string().contains("CSeq 9 to the request with CSeq 1"),
        "{e}"
    );

    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    // RFC 2326 §12.17: a reply without CSeq answers nothing.
    core.handle_input(t0, b"RTSP/1.0 400 Bad Request\r\n\r\n")
        .unwrap();
    assert!(drain(&mut core).is_empty());
    assert_eq!(core.state(), State::Options);
    core.handle_input(t0, &reply(1, "")).unwrap();
    drain(&mut core);
    core.handle_input(
        t0,
        &reply(2, "Content-Base: rtsp://127.0.0.1:8554/other/\r\n"),
    )
    .unwrap();
    let r = only_request(&drain(&mut core));
    assert_eq!(r.uri, "rtsp://127.0.0.1:8554/other/streamid=0");
    core.handle_input(t0, &setup_reply(3, Transport::Tcp))
        .unwrap();
    let r = only_request(&drain(&mut core));
    assert_eq!(r.uri, "rtsp://127.0.0.1:8554/other/");
}

#[test]
fn bytes_that_are_not_rtsp_fail_at_once_naming_what_arrived() {
    let t0 = origin();
    for bytes in [&b"SSH-2.0-OpenSSH_9.2\r\n"[..], b"\x8f\x03\xff", b"RTSP/x"] {
        let mut core = new_core(URL, Transport::Tcp, t0);
        drain(&mut core);
        let e = core.handle_input(t0, bytes).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("invalid start line"), "{text}");
        let line = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
        let seen = format!("{}", line.escape_ascii());
        assert!(text.contains(&seen), "{text}");
    }
}

#[test]
fn a_late_reply_to_the_keepalive_outstanding_at_teardown_is_ignored() {
    let t0 = origin();
    let mut core = recording(Transport::Tcp, t0);
    // Session timeout 30 s: the keepalive goes out at 15 s.
    let t1 = t0 + Duration::from_secs(15);
    core.handle_timeout(t1).unwrap();
    let keepalive = only_request(&drain(&mut core));
    assert_eq!(keepalive.method, "GET_PARAMETER");
    core.close(t1).unwrap();
    let outs = drain(&mut core);
    let teardown = as_request(outs.last().unwrap());
    assert_eq!(teardown.method, "TEARDOWN");
    // The keepalive's reply arrives now, with its own (earlier) CSeq: not an error.
    core.handle_input(t1, &reply(keepalive.cseq(), "")).unwrap();
    assert_eq!(core.state(), State::Teardown);
    core.handle_input(t1, &reply(teardown.cseq(), "")).unwrap();
    assert_eq!(core.state(), State::ShuttingDown);
    // A CSeq never sent is still the server's mistake.
    let mut core = recording(Transport::Tcp, t0);
    core.handle_timeout(t1).unwrap();
    drain(&mut core);
    let e = core.handle_input(t1, &reply(77, "")).unwrap_err();
    assert!(e.to_string().contains("with CSeq 77"), "{e}");
}

#[test]
fn error_replies_to_interleaved_media_stop_the_session_and_suggest_udp() {
    let t0 = origin();
    let mut core = recording(Transport::Tcp, t0);
    core.send(t0, &au(0, true, 3000)).unwrap();
    drain(&mut core);
    // What a server that parses `$` frames as requests answers: 400 without CSeq.
    let e = core
        .handle_input(t0, b"RTSP/1.0 400 Bad Request\r\n\r\n")
        .unwrap_err();
    assert!(
        matches!(&e, RtspError::InterleavedRejected { status: 400, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("--transport udp"), "{text}");
    assert!(text.contains("400 Bad Request"), "{text}");
    assert_eq!(core.state(), State::Failed);
    assert_eq!(core.stats().replies_without_cseq, 1);
    // Over UDP nothing goes interleaved: the same reply is only counted.
    let mut core = recording(Transport::Udp, t0);
    core.handle_input(t0, b"RTSP/1.0 400 Bad Request\r\n\r\n")
        .unwrap();
    assert_eq!(core.state(), State::Recording);
    assert_eq!(core.stats().replies_without_cseq, 1);
}

#[test]
fn auto_asks_for_udp_when_setup_over_tcp_gets_461() {
    let t0 = origin();
    let mut core = new_core(URL, Transport::Auto, t0);
    drain(&mut core);
    core.handle_input(t0, &reply(1, PUBLIC)).unwrap();
    drain(&mut core);
    core.handle_input(t0, &reply(2, "")).unwrap();
    let setup = only_request(&drain(&mut core));
    assert!(setup
        .header("Transport")
        .unwrap()
        .starts_with("RTP/AVP/TCP"));
    core.handle_input(t0, &status(461, "Unsupported Transport", 3, ""))
        .unwrap();
    let setup = only_request(&drain(&mut core));
    assert_eq!(setup.method, "SETUP");
    assert_eq!(
        setup.header("Transport"),
        Some("RTP/AVP;unicast;client_port=5000-5001;mode=record")
    );
    core.handle_input(t0, &setup_reply(setup.cseq(), Transport::Udp))
        .unwrap();
    let record = only_request(&drain(&mut core));
    assert_eq!(record.method, "RECORD");
    core.handle_input(t0, &reply(record.cseq(), SESSION))
        .unwrap();
    // Over UDP there is nothing to probe: recording at once.
    assert_eq!(core.state(), State::Recording);
    assert_eq!(core.stats().transport, Transport::Udp);
    assert!(matches!(
        events(&mut core).as_slice(),
        [SessionEvent::Publishing]
    ));
    // Tcp alone takes 461 as the answer.
    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    core.handle_input(t0, &reply(1, PUBLIC)).unwrap();
    core.handle_input(t0, &reply(2, "")).unwrap();
    drain(&mut core);
    let e = core
        .handle_input(t0, &status(461, "Unsupported Transport", 3, ""))
        .unwrap_err();
    assert!(matches!(e, RtspError::UnsupportedTransport(_)), "{e:?}");
}

#[test]
fn auto_over_tcp_probes_the_interleaved_channel_before_the_media() {
    let t0 = origin();
    let start = |t0| {
        let mut core = new_core(URL, Transport::Auto, t0);
        drain(&mut core);
        core.handle_input(t0, &reply(1, PUBLIC)).unwrap();
        core.handle_input(t0, &reply(2, "")).unwrap();
        core.handle_input(t0, &setup_reply(3, Transport::Tcp))
            .unwrap();
        drain(&mut core);
        core.handle_input(t0, &reply(4, SESSION)).unwrap();
        core
    };
    let mut core = start(t0);
    assert_eq!(core.state(), State::Probing);
    assert!(!core.can_send());
    assert!(events(&mut core).is_empty());
    // The probe: an RR without report blocks and the CNAME, on RTCP channel 1.
    let outs = drain(&mut core);
    let [Out::Tcp(bytes)] = outs.as_slice() else {
        panic!("{outs:?}")
    };
    let f = frames(bytes);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].0, 1);
    assert_eq!(rtcp_types(&f[0].1), vec![201, 202]);
    assert_eq!(core.poll_timeout(), Some(t0 + INTERLEAVED_PROBE));
    core.handle_timeout(t0 + INTERLEAVED_PROBE).unwrap();
    assert_eq!(core.state(), State::Recording);
    assert!(core.can_send());
    assert!(matches!(
        events(&mut core).as_slice(),
        [SessionEvent::Publishing]
    ));
    // A server that cannot take interleaved data answers the probe.
    let mut core = start(t0);
    drain(&mut core);
    let e = core
        .handle_input(t0, b"RTSP/1.0 400 Bad Request\r\n\r\n")
        .unwrap_err();
    assert!(matches!(e, RtspError::InterleavedRejected { .. }), "{e:?}");
}

#[test]
fn an_unanswered_teardown_ends_the_session_cleanly_after_two_seconds() {
    let t0 = origin();
    let mut core = recording(Transport::Tcp, t0);
    core.send(t0, &au(0, true, 3000)).unwrap();
    core.close(t0).unwrap();
    let outs = drain(&mut core);
    assert_eq!(as_request(outs.last().unwrap()).method, "TEARDOWN");
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    core.handle_timeout(t0 + Duration::from_millis(1999))
        .unwrap();
    assert_eq!(core.state(), State::Teardown);
    core.handle_timeout(t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(core.state(), State::ShuttingDown);
    assert!(core.stats().teardown_unanswered);
    assert_eq!(core.stats().frames, 1);
    assert_eq!(drain(&mut core), vec![Out::Shutdown]);
    // A request before TEARDOWN still gets the full request timeout, and failing it is an
    // error.
    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let e = core
        .handle_timeout(t0 + Duration::from_secs(10))
        .unwrap_err();
    assert!(e.to_string().contains("reply to OPTIONS"), "{e}");
}

#[test]
fn send_queue_is_bounded() {
    let t0 = origin();
    let mut core = recording(Transport::Tcp, t0);
    let mut n = 0;
    while core.can_send() {
        core.send(t0, &au(n, n == 0, 100_000)).unwrap();
        n += 1;
    }
    assert!(core.queued_bytes() >= 1 << 20);
    assert!(core.queued_bytes() < (1 << 20) + 110_000);
    assert!(matches!(
        core.send(t0, &au(n, false, 10)),
        Err(RtspError::QueueFull { .. })
    ));
    // Taking transmits frees the queue.
    while core.poll_transmit().is_some() {}
    assert_eq!(core.queued_bytes(), 0);
    assert!(core.can_send());
}

#[test]
fn parameter_sets_prepended_only_when_missing() {
    let t0 = origin();
    let mut core = recording(Transport::Tcp, t0);
    let mut with_ps = au(0, true, 50);
    with_ps.nalus.insert(0, Bytes::from_static(PPS));
    with_ps.nalus.insert(0, Bytes::from_static(SPS));
    let before = core.stats().octets;
    core.send(t0, &with_ps).unwrap();
    let with_octets = core.stats().octets - before;
    core.send(t0, &au(1, true, 50)).unwrap();
    let prepended_octets = core.stats().octets - before - with_octets;
    assert_eq!(with_octets, prepended_octets);
    core.send(t0, &au(2, false, 50)).unwrap();
    let plain = core.stats().octets - before - with_octets - prepended_octets;
    assert_eq!(plain, 51);
    // An access unit the packetizer rejects leaves the session recording.
    let empty = AccessUnit {
        nalus: vec![],
        ..au(3, false, 0)
    };
    assert!(matches!(
        core.send(t0, &empty),
        Err(RtspError::Packetize(_))
    ));
    assert_eq!(core.state(), State::Recording);
}

#[test]
fn absurd_session_timeout_from_the_server_is_capped() {
    let t0 = origin();
    let mut core = new_core(URL, Transport::Tcp, t0);
    drain(&mut core);
    core.handle_input(t0, &reply(1, "")).unwrap();
    core.handle_input(t0, &reply(2, "")).unwrap();
    let huge =
        "Session: x;timeout=18446744073709551615\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n";
    core.handle_input(t0, &reply(3, huge)).unwrap();
    core.handle_input(t0, &reply(4, "")).unwrap();
    assert_eq!(core.state(), State::Recording);
    // The requests were written (a driver writes what the core queues).
    drain(&mut core);
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(43_200)));
}

// ---- write stall, shutdown, receiver reports (virtual time) --------------------------------

const NANO: Duration = Duration::from_nanos(1);

/// Takes every queued transmit without reporting any byte written (the socket is full).
fn take_unwritten(core: &mut RtspPublisherCore) -> Vec<Transmit> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

#[test]
fn a_write_without_progress_times_out_on_virtual_time() {
    let t0 = origin();
    let limit = Duration::from_secs(3);
    let mut core = recording_with(options(Transport::Tcp).with_request_timeout(limit), t0);
    // Recording, everything written: the next deadline is the keepalive (timeout=30).
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(15)));

    // An access unit and the first sender report, taken but not written.
    let t1 = t0 + Duration::from_secs(1);
    core.send(t1, &au(0, true, 3000)).unwrap();
    let taken = take_unwritten(&mut core);
    assert_eq!(taken.len(), 2, "{taken:?}");
    let total: usize = taken.iter().map(Transmit::len).sum();
    assert_eq!(core.poll_timeout(), Some(t1 + limit));
    // Written in full: back to the sender report's interval.
    core.handle_written(t1, total);
    assert_eq!(core.poll_timeout(), Some(t1 + Duration::from_secs(5)));

    let t2 = t1 + Duration::from_millis(500);
    core.send(t2, &au(1, false, 3000)).unwrap();
    let total: usize = take_unwritten(&mut core).iter().map(Transmit::len).sum();
    assert_eq!(core.poll_timeout(), Some(t2 + limit));
    core.handle_timeout(t2 + limit - NANO).unwrap();
    // Progress at t3 restarts the count.
    let t3 = t2 + Duration::from_secs(1);
    core.handle_written(t3, total / 2);
    let deadline = t3 + limit;
    assert_eq!(core.poll_timeout(), Some(deadline));
    core.handle_timeout(t2 + limit).unwrap();
    core.handle_timeout(deadline - NANO).unwrap();
    assert_eq!(core.state(), State::Recording);
    let e = core.handle_timeout(deadline).unwrap_err();
    assert!(
        matches!(&e, RtspError::Timeout { step: Step::Write, after, url }
            if *after == limit && url == URL),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("timed out after 3s writing to the server ({URL})")
    );
    assert_eq!(core.state(), State::Failed);
    assert_eq!(core.failure().map(ToString::to_string), Some(e.to_string()));
    assert_eq!(core.poll_timeout(), None);
    assert!(!core.can_send());
}

/// Recording over TCP with a 2 s shutdown wait; closes at `t1` and checks what `close`
/// queued: BYE, then TEARDOWN. Returns the TEARDOWN's CSeq.
fn torn_down(t0: Instant, t1: Instant) -> (RtspPublisherCore, u32) {
    let opts = options(Transport::Tcp).with_shutdown_wait(Duration::from_secs(2));
    let mut core = recording_with(opts, t0);
    core.send(t0, &au(0, true, 100)).unwrap();
    drain(&mut core);
    core.close(t1).unwrap();
    let outs = drain(&mut core);
    assert_eq!(outs.len(), 2, "{outs:?}");
    let Out::Tcp(bye) = &outs[0] else {
        panic!("{outs:?}")
    };
    assert_eq!(rtcp_types(&frames(bye)[0].1), vec![200, 202, 203]);
    let r = as_request(&outs[1]);
    assert_eq!(r.method, "TEARDOWN");
    assert_eq!(core.state(), State::Teardown);
    assert_eq!(core.poll_timeout(), Some(t1 + Duration::from_secs(2)));
    (core, r.cseq())
}

#[test]
fn after_the_teardown_reply_our_side_closes_and_the_session_ends() {
    let t0 = origin();
    let t1 = t0 + Duration::from_secs(1);
    let t2 = t1 + Duration::from_millis(300);
    let wait = Duration::from_secs(2);

    // The server closes its side: Closed at its EOF.
    let (mut core, cseq) = torn_down(t0, t1);
    core.handle_input(t2, &reply(cseq, "")).unwrap();
    assert_eq!(drain(&mut core), vec![Out::Shutdown]);
    assert_eq!(core.state(), State::ShuttingDown);
    assert_eq!(core.poll_timeout(), Some(t2 + wait));
    // Nothing the server sends now is answered or queued after the end of our side.
    core.handle_input(t2, b"OPTIONS * RTSP/1.0\r\nCSeq: 90\r\n\r\n")
        .unwrap();
    core.handle_rtcp(t2, &receiver_report(u32::from(FIRST_SEQ)));
    core.handle_timeout(t2 + wait - NANO).unwrap();
    assert!(drain(&mut core).is_empty());
    // The report is still read; the session is not over yet.
    let ev = events(&mut core);
    assert!(
        matches!(ev.as_slice(), [SessionEvent::ReceiverReport(_)]),
        "{ev:?}"
    );
    core.handle_eof(t2 + Duration::from_millis(100)).unwrap();
    assert_eq!(events(&mut core), vec![SessionEvent::Closed]);
    assert_eq!(core.state(), State::Closed);
    assert_eq!(core.poll_timeout(), None);

    // The server keeps the connection open: Closed after the shutdown wait all the same.
    let (mut core, cseq) = torn_down(t0, t1);
    core.handle_input(t2, &reply(cseq, "")).unwrap();
    assert_eq!(drain(&mut core), vec![Out::Shutdown]);
    core.handle_timeout(t2 + wait - NANO).unwrap();
    assert!(events(&mut core).is_empty());
    core.handle_timeout(t2 + wait).unwrap();
    assert_eq!(events(&mut core), vec![SessionEvent::Closed]);
    assert_eq!(core.state(), State::Closed);
    assert_eq!(core.poll_timeout(), None);
    // A late EOF changes nothing.
    core.handle_eof(t2 + wait).unwrap();
    assert!(events(&mut core).is_empty());

    // TEARDOWN never answered: after its 2 s our side closes as if it had been, and the
    // session ends without an error (every frame was written).
    let (mut core, _) = torn_down(t0, t1);
    let deadline = t1 + Duration::from_secs(2);
    core.handle_timeout(deadline - NANO).unwrap();
    assert_eq!(core.state(), State::Teardown);
    core.handle_timeout(deadline).unwrap();
    assert_eq!(drain(&mut core), vec![Out::Shutdown]);
    assert!(core.stats().teardown_unanswered);
    core.handle_timeout(deadline + wait).unwrap();
    assert_eq!(events(&mut core), vec![SessionEvent::Closed]);
    assert_eq!(core.poll_timeout(), None);
}

/// A receiver report from SSRC 0xdeadbeef with one block about our stream.
fn report_block_rr(
    fraction: u8,
    lost: [u8; 3],
    ext: u32,
    jitter: u32,
    lsr: u32,
    dlsr: u32,
) -> Vec<u8> {
    let mut v = vec![0x81, 201, 0, 7];
    v.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
    v.extend_from_slice(&SSRC.to_be_bytes());
    v.push(fraction);
    v.extend_from_slice(&lost);
    for word in [ext, jitter, lsr, dlsr] {
        v.extend_from_slice(&word.to_be_bytes());
    }
    v
}

#[test]
fn receiver_reports_give_loss_jitter_and_round_trip() {
    // NTP time counts seconds from 1900: the Unix epoch is 2 208 988 800 s later (70 years,
    // 17 of them leap). LSR and DLSR are the middle 32 bits of NTP time, 16.16 fixed point
    // (RFC 3550 §6.4.1).
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let middle32 = |unix_secs: u64, frac16: u32| -> u32 {
        ((((unix_secs + NTP_UNIX_OFFSET) & 0xffff) as u32) << 16) | frac16
    };

    let t0 = origin();
    let mut core = recording(Transport::Tcp, t0);
    // The first access unit at t0 + 1 s brings the first sender report, stamped with the
    // wall clock anchored at creation: WALL_UNIX_SECS + 1 s exactly.
    let t1 = t0 + Duration::from_secs(1);
    core.send(t1, &au(0, true, 100)).unwrap();
    let outs = drain(&mut core);
    let Out::Tcp(sr) = &outs[1] else {
        panic!("{outs:?}")
    };
    let sr = crate::rtcp::parse_compound(&frames(sr)[0].1).unwrap();
    let crate::rtcp::RtcpPacket::SenderReport { info, .. } = &sr[0] else {
        panic!("{sr:?}")
    };
    assert_eq!(
        info.ntp.0,
        (WALL_UNIX_SECS + 1 + NTP_UNIX_OFFSET) << 32,
        "SR NTP time"
    );
    let lsr = middle32(WALL_UNIX_SECS + 1, 0);
    assert_eq!(info.ntp.middle32(), lsr);

    // The receiver held our report 0.125 s (DLSR 0x2000) and its report arrives at
    // t0 + 2.5 s, whose middle 32 bits are (s + 2) . 0x8000. Round trip = A − LSR − DLSR
    // = 1.5 s − 0.125 s = 0x16000 units = 1.375 s.
    let t2 = t0 + Duration::from_millis(2500);
    let arrival = middle32(WALL_UNIX_SECS + 2, 0x8000);
    let dlsr = 0x2000;
    let units = arrival.wrapping_sub(lsr).wrapping_sub(dlsr);
    assert_eq!(units, 0x16000);
    let expected_rtt = Duration::from_nanos(u64::from(units) * 1_000_000_000 / 65_536);
    assert_eq!(expected_rtt, Duration::from_millis(1375));

    let ext = u32::from(FIRST_SEQ) + 1;
    let rr = report_block_rr(64, [0, 0x03, 0xe8], ext, 4500, lsr, dlsr);
    core.handle_input(t2, &interleaved(1, &rr)).unwrap();
    let ev = events(&mut core);
    let [SessionEvent::ReceiverReport(r)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(r.round_trip, Some(expected_rtt));
    assert_eq!(r.fraction_lost, 0.25);
    assert_eq!(r.cumulative_lost, 1000);
    // 4500 units of the 90 kHz clock.
    assert_eq!(r.jitter, Duration::from_millis(50));
    assert_eq!(r.extended_highest_sequence, ext);
    let stats = core.publisher_stats();
    assert_eq!(stats.reception, Some(*r));
    assert_eq!(stats.receiver_reports, 1);

    // LSR = 0: the receiver has not seen a sender report, so there is no round trip. A
    // cumulative loss of 0xffffff is −1 (duplicates).
    let rr = report_block_rr(0, [0xff, 0xff, 0xff], ext, 0, 0, 0);
    core.handle_input(t2, &interleaved(1, &rr)).unwrap();
    let ev = events(&mut core);
    let [SessionEvent::ReceiverReport(r)] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(r.round_trip, None);
    assert_eq!((r.fraction_lost, r.cumulative_lost), (0.0, -1));
    assert_eq!(r.jitter, Duration::ZERO);

    // An LSR after the arrival (a report that cannot be ours): no round trip either.
    let rr = report_block_rr(0, [0; 3], ext, 0, arrival.wrapping_add(0x1_0000), 0);
    core.handle_rtcp(t2, &rr);
    let ev = events(&mut core);
    assert!(
        matches!(ev.as_slice(), [SessionEvent::ReceiverReport(r)] if r.round_trip.is_none()),
        "{ev:?}"
    );
    assert_eq!(core.publisher_stats().receiver_reports, 3);
}

#[test]
fn requests_carry_the_real_query_and_messages_the_redacted_one() {
    let t0 = origin();
    let mut core = new_core(
        "rtsp://127.0.0.1:8554/live?token=s3cr3t",
        Transport::Tcp,
        t0,
    );
    let r = only_request(&drain(&mut core));
    assert_eq!(r.method, "OPTIONS");
    assert_eq!(r.uri, "rtsp://127.0.0.1:8554/live?token=s3cr3t");
    // A server that refuses: the error shows the URL with the token masked.
    let e = core
        .handle_input(t0, b"RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n")
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains("token=***"), "{shown}");
}

// ---- audio ---------------------------------------------------------------------------------

/// AAC LC, 48 kHz, stereo.
fn aac() -> AudioTrack {
    AudioTrack::aac(Bytes::from_static(&[0x11, 0x90])).unwrap()
}

const AUDIO_SSRC: u32 = 0x0a0b_0c0d;

fn av_options(transport: Transport, aggregation: Duration) -> RtspOptions {
    let mut o = options(transport).with_audio_aggregation(aggregation);
    o.audio_packetizer.ssrc = Some(AUDIO_SSRC);
    o.audio_packetizer.initial_sequence = Some(100);
    o.audio_packetizer.timestamp_offset = Some(5000);
    o
}

/// AAC frame `n` (1024 samples at 48 kHz) of `size` bytes.
fn audio_frame(n: i64, size: usize) -> AudioFrame {
    AudioFrame::new(
        Bytes::from(vec![n as u8; size]),
        n * 1024,
        TimeBase::new(1, 48_000),
    )
}

/// Runs OPTIONS..RECORD for video + AAC; checks both SETUPs on the way.
fn av_recording(opts: RtspOptions, t0: Instant) -> RtspPublisherCore {
    let transport = opts.transport;
    let mut c = conn(transport);
    if transport == Transport::Udp {
        c.client_ports = vec![(5000, 5001), (5002, 5003)];
    }
    let mut core = RtspPublisherCore::new(
        RtspUrl::parse(URL).unwrap(),
        &[Track::from(track()), Track::from(aac())],
        opts,
        c,
        t0,
        SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_UNIX_SECS),
    )
    .unwrap();
    assert_eq!(only_request(&drain(&mut core)).method, "OPTIONS");
    core.handle_input(t0, &reply(1, PUBLIC)).unwrap();
    let announce = only_request(&drain(&mut core));
    let sdp = std::str::from_utf8(&announce.body).unwrap().to_string();
    let video_at = sdp.find("m=video 0 RTP/AVP 96").expect("video section");
    let audio_at = sdp.find("m=audio 0 RTP/AVP 97").expect("audio section");
    assert!(video_at < audio_at, "{sdp}");
    assert!(
        sdp[audio_at..].contains("a=rtpmap:97 MPEG4-GENERIC/48000/2\r\n"),
        "{sdp}"
    );
    assert!(sdp[audio_at..].contains(
        "a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;\
         indexlength=3;indexdeltalength=3;constantDuration=1024;config=1190\r\n"
    ));
    assert!(
        sdp[audio_at..].contains("a=control:streamid=1\r\n"),
        "{sdp}"
    );
    core.handle_input(t0, &reply(2, "")).unwrap();
    let setup = only_request(&drain(&mut core));
    assert_eq!(setup.uri, "rtsp://127.0.0.1:8554/live/streamid=0");
    core.handle_input(t0, &setup_reply(3, transport)).unwrap();
    let setup = only_request(&drain(&mut core));
    assert_eq!(setup.method, "SETUP");
    assert_eq!(setup.uri, "rtsp://127.0.0.1:8554/live/streamid=1");
    // The second SETUP joins the session of the first (RFC 2326 §10.4).
    assert_eq!(setup.header("Session"), Some("4711abc"));
    let second = match transport {
        Transport::Tcp | Transport::Auto => {
            assert_eq!(
                setup.header("Transport"),
                Some("RTP/AVP/TCP;unicast;interleaved=2-3;mode=record")
            );
            "Transport: RTP/AVP/TCP;unicast;interleaved=2-3;mode=record\r\n"
        }
        Transport::Udp => {
            assert_eq!(
                setup.header("Transport"),
                Some("RTP/AVP;unicast;client_port=5002-5003;mode=record")
            );
            "Transport: RTP/AVP;unicast;client_port=5002-5003;server_port=6002-6003;mode=record\r\n"
        }
    };
    core.handle_input(t0, &reply(4, &format!("{SESSION}{second}")))
        .unwrap();
    assert_eq!(only_request(&drain(&mut core)).method, "RECORD");
    core.handle_input(t0, &reply(5, SESSION)).unwrap();
    assert_eq!(events(&mut core), vec![SessionEvent::Publishing]);
    core
}

/// The sender reports of every interleaved RTCP packet among `outs`.
fn interleaved_sender_reports(outs: &[Out]) -> Vec<(u32, f64, u32)> {
    outs.iter()
        .flat_map(|o| match o {
            Out::Tcp(b) => frames(b),
            _ => Vec::new(),
        })
        .flat_map(|(_, p)| sender_reports(&p))
        .collect()
}

/// (ssrc, NTP as f64 seconds, RTP timestamp) of each sender report in a compound packet.
fn sender_reports(data: &[u8]) -> Vec<(u32, f64, u32)> {
    crate::rtcp::parse_compound(data)
        .unwrap()
        .iter()
        .filter_map(|p| match p {
            crate::rtcp::RtcpPacket::SenderReport { info, .. } => Some((
                info.ssrc,
                f64::from(info.ntp.seconds()) + f64::from(info.ntp.fraction()) / 4_294_967_296.0,
                info.rtp_timestamp,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn tcp_audio_track_has_its_own_setup_channels_ssrc_and_sender_reports() {
    let t0 = origin();
    let mut core = av_recording(av_options(Transport::Tcp, Duration::ZERO), t0);
    let n = core.negotiated().unwrap().clone();
    assert_eq!(n.tracks.len(), 2);
    assert_eq!(n.tracks[1].kind, "audio");
    assert_eq!(n.tracks[1].ssrc, AUDIO_SSRC);
    assert_eq!(n.tracks[1].payload_type, 97);
    assert_eq!(
        n.tracks[1].transport,
        NegotiatedTransport::Tcp {
            rtp_channel: 2,
            rtcp_channel: 3
        }
    );
    // Frame 0 of each track at t0: video on channel 0 (+ its SR on 1), audio on 2 (+ 3).
    core.send(t0, &au(0, true, 100)).unwrap();
    core.send_audio(t0, &audio_frame(0, 300)).unwrap();
    let t1 = t0 + Duration::from_millis(21);
    core.send_audio(t1, &audio_frame(1, 310)).unwrap();
    let mut by_channel: std::collections::BTreeMap<u8, Vec<Vec<u8>>> = Default::default();
    for o in drain(&mut core) {
        let Out::Tcp(b) = o else { panic!("{o:?}") };
        for (ch, p) in frames(&b) {
            by_channel.entry(ch).or_default().push(p);
        }
    }
    let audio = &by_channel[&2];
    assert_eq!(audio.len(), 2, "zero aggregation: a packet per frame");
    // RFC 3640: PT 97, our SSRC, timestamps in samples from the offset, marker set, one AU
    // header of 16 bits with the frame's size.
    assert_eq!(audio[0][1], 0x80 | 97);
    assert_eq!(
        u32::from_be_bytes(audio[0][8..12].try_into().unwrap()),
        AUDIO_SSRC
    );
    assert_eq!(u32::from_be_bytes(audio[0][4..8].try_into().unwrap()), 5000);
    assert_eq!(
        u32::from_be_bytes(audio[1][4..8].try_into().unwrap()),
        5000 + 1024
    );
    assert_eq!(rtp_seq(&audio[0]), 100);
    assert_eq!(
        &audio[0][12..16],
        &[0, 16, (300u16 << 3 >> 8) as u8, (300u16 << 3) as u8]
    );
    assert_eq!(audio[0].len(), 12 + 4 + 300);
    // One first sender report per track, on its own RTCP channel, from one media clock:
    // both RTP timestamps correspond to media time 0 at t0.
    let srs: Vec<_> = by_channel[&1]
        .iter()
        .chain(&by_channel[&3])
        .flat_map(|p| sender_reports(p))
        .collect();
    assert_eq!(srs.len(), 2, "{srs:?}");
    assert_eq!((srs[0].0, srs[0].2), (SSRC, 1000));
    assert_eq!((srs[1].0, srs[1].2), (AUDIO_SSRC, 5000));
    assert_eq!(srs[0].1, srs[1].1);

    // A later report of both tracks maps the same instant to the same media time: the
    // clock anchored at the first unit (media time 0 at t0) and running at wall speed. Audio
    // frame 1 (21.3 ms) left 0.3 ms early at t1 = 21 ms: early units do not move the clock.
    let t2 = t1 + Duration::from_secs(5);
    core.handle_timeout(t2).unwrap();
    let outs = drain(&mut core);
    let srs = interleaved_sender_reports(&outs);
    assert_eq!(srs.len(), 2, "{outs:?}");
    // Media time at t2: 21 ms + 5 s.
    let media_s = 0.021 + 5.0;
    let expect_video = 1000 + (media_s * 90_000.0_f64).round() as u32;
    let expect_audio = 5000 + (media_s * 48_000.0_f64).round() as u32;
    assert_eq!(srs[0], (SSRC, srs[0].1, expect_video));
    assert_eq!(srs[1], (AUDIO_SSRC, srs[0].1, expect_audio));
    let s = core.stats();
    assert_eq!((s.frames, s.audio_frames, s.audio_packets), (1, 2, 2));
    assert_eq!(s.audio_octets, 2 * 4 + 300 + 310);
    let p = core.publisher_stats();
    assert_eq!((p.frames, p.audio_frames, p.audio_bytes), (1, 2, 618));

    // Interleaved RTCP receiver reports on channel 3 about the audio SSRC count too.
    let mut rr = receiver_report(101);
    rr[8..12].copy_from_slice(&AUDIO_SSRC.to_be_bytes());
    core.handle_input(t2, &interleaved(3, &rr)).unwrap();
    let ev = events(&mut core);
    assert!(
        matches!(ev.as_slice(), [SessionEvent::ReceiverReport(r)] if r.extended_highest_sequence == 101),
        "{ev:?}"
    );
    // Close: a BYE for each track, then TEARDOWN.
    core.close(t2).unwrap();
    let outs = drain(&mut core);
    let byes = outs
        .iter()
        .filter(|o| matches!(o, Out::Tcp(b) if b[0] == b'$' && rtcp_types(&frames(b)[0].1).contains(&203)))
        .count();
    assert_eq!(byes, 2, "{outs:?}");
    assert_eq!(as_request(outs.last().unwrap()).method, "TEARDOWN");
}

#[test]
fn aac_frames_held_for_aggregation_leave_at_the_bound_or_at_close() {
    let t0 = origin();
    let mut core = av_recording(av_options(Transport::Tcp, Duration::from_millis(50)), t0);
    core.send_audio(t0, &audio_frame(0, 100)).unwrap();
    // Held back: nothing on the wire, and a deadline 50 ms on.
    assert!(drain(&mut core).is_empty());
    assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_millis(50)));
    // The second frame completes a packet of two (42.7 ms ≤ 50 ms; a third would not fit).
    core.send_audio(t0 + Duration::from_millis(21), &audio_frame(1, 100))
        .unwrap();
    let outs = drain(&mut core);
    let audio: Vec<Vec<u8>> = outs
        .iter()
        .flat_map(|o| match o {
            Out::Tcp(b) => frames(b),
            _ => Vec::new(),
        })
        .filter(|(ch, _)| *ch == 2)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(audio.len(), 1);
    assert_eq!(&audio[0][12..14], &[0, 32], "two AU headers");
    // A lone frame goes out at its deadline.
    let t1 = t0 + Duration::from_millis(100);
    core.send_audio(t1, &audio_frame(2, 100)).unwrap();
    assert!(drain(&mut core).is_empty());
    let deadline = core.poll_timeout().unwrap();
    assert_eq!(deadline, t1 + Duration::from_millis(50));
    core.handle_timeout(deadline).unwrap();
    let outs = drain(&mut core);
    assert_eq!(outs.len(), 1, "{outs:?}");
    // And one held at close goes before the BYE.
    core.send_audio(deadline, &audio_frame(3, 100)).unwrap();
    assert!(drain(&mut core).is_empty());
    core.close(deadline).unwrap();
    let outs = drain(&mut core);
    let Out::Tcp(first) = &outs[0] else { panic!() };
    assert_eq!(frames(first)[0].0, 2, "the held frame first: {outs:?}");
    assert_eq!(core.stats().audio_frames, 4);
}

#[test]
fn udp_audio_uses_its_own_port_pair_and_the_close_waits_for_both_tracks() {
    let t0 = origin();
    let mut core = av_recording(av_options(Transport::Udp, Duration::ZERO), t0);
    let n = core.negotiated().unwrap().clone();
    assert_eq!(
        n.tracks[1].transport,
        NegotiatedTransport::Udp {
            server_rtp: "127.0.0.1:6002".parse().unwrap(),
            server_rtcp: "127.0.0.1:6003".parse().unwrap(),
            client_ports: (5002, 5003),
        }
    );
    core.send(t0, &au(0, true, 100)).unwrap();
    core.send_audio(t0, &audio_frame(0, 100)).unwrap();
    let mut sockets = Vec::new();
    while let Some(t) = core.poll_transmit() {
        match t {
            Transmit::RtpDatagrams { socket, dest, .. } => {
                sockets.push(("rtp", socket, dest.port()))
            }
            Transmit::RtcpDatagram { socket, dest, .. } => {
                sockets.push(("rtcp", socket, dest.port()))
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        sockets,
        vec![
            ("rtp", 0, 6000),
            ("rtcp", 0, 6001),
            ("rtp", 1, 6002),
            ("rtcp", 1, 6003)
        ]
    );
    core.close(t0).unwrap();
    drain(&mut core);
    assert_eq!(core.state(), State::Draining);
    // The video's report alone does not end the wait; the audio's too does.
    core.handle_rtcp(t0, &receiver_report(u32::from(FIRST_SEQ)));
    assert_eq!(core.state(), State::Draining);
    let mut rr = receiver_report(100);
    rr[8..12].copy_from_slice(&AUDIO_SSRC.to_be_bytes());
    core.handle_rtcp(t0, &rr);
    assert_eq!(core.state(), State::Teardown);
}

#[test]
fn audio_only_and_refusals() {
    let t0 = origin();
    // No audio track: an audio frame is refused, the session goes on.
    let mut core = recording(Transport::Tcp, t0);
    assert!(matches!(
        core.send_audio(t0, &audio_frame(0, 10)),
        Err(RtspError::Media(MediaError::NoTrack { kind: "audio" }))
    ));
    assert!(core.can_send());
    // UDP with fewer port pairs than tracks cannot start.
    let e = RtspPublisherCore::new(
        RtspUrl::parse(URL).unwrap(),
        &[Track::from(track()), Track::from(aac())],
        options(Transport::Udp),
        conn(Transport::Udp),
        t0,
        SystemTime::UNIX_EPOCH,
    )
    .unwrap_err();
    assert!(e.to_string().contains("port pair per track"), "{e}");
    // An empty AAC frame is refused by the packetizer; the session goes on.
    let mut core = av_recording(av_options(Transport::Tcp, Duration::ZERO), t0);
    assert!(core.send_audio(t0, &audio_frame(0, 0)).is_err());
    assert!(core.can_send());
}

#[test]
fn the_sender_report_clock_ignores_early_units_and_follows_late_ones() {
    let t0 = origin();
    let mut core = av_recording(av_options(Transport::Tcp, Duration::ZERO), t0);
    let ms = Duration::from_millis;
    // Media time 0 at t0; then audio at 100 ms handed over 10 ms early (the pacer's lead),
    // then video at 300 ms handed over 50 ms late (a stall).
    core.send(t0, &au(0, true, 10)).unwrap();
    core.send_audio(
        t0 + ms(90),
        &AudioFrame::new(Bytes::from_static(&[1]), 4800, TimeBase::new(1, 48_000)),
    )
    .unwrap();
    let report_at = |core: &mut RtspPublisherCore, at: Instant| -> (u32, u32) {
        drain(core);
        core.handle_timeout(at).unwrap();
        let srs = interleaved_sender_reports(&drain(core));
        assert_eq!(srs.len(), 2, "{srs:?}");
        (srs[0].2, srs[1].2)
    };
    // At t0 + 5 s the clock still reads 5 s: the early audio did not move it.
    let (v, a) = report_at(&mut core, t0 + Duration::from_secs(5));
    assert_eq!((v, a), (1000 + 450_000, 5000 + 240_000));
    // A late unit: video frame 9 (300 ms) at t0 + 5.35 s moves the clock: 300 ms then.
    core.send(t0 + ms(5350), &au(9, false, 10)).unwrap();
    let (v, a) = report_at(&mut core, t0 + ms(10_350));
    assert_eq!((v, a), (1000 + 27_000 + 450_000, 5000 + 14_400 + 240_000));
}
