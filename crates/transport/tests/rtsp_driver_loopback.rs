//! The tokio driver of the RTSP publisher against a scripted server on loopback: it reads
//! while the caller is idle, sends keepalives at half the session timeout, and makes `send`
//! wait when the server stops reading instead of buffering without bound.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use mpegcoder_transport::rtsp::message::{Incoming, MessageDecoder};
use mpegcoder_transport::rtsp::{RtspOptions, RtspPublisher};
use mpegcoder_transport::{AccessUnit, TimeBase, Track, Transport, VideoTrack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// Reads until the next request; returns (method, CSeq) and counts RTP access units (marker
/// bits on channel 0) seen on the way.
async fn next_request(s: &mut TcpStream, d: &mut MessageDecoder, aus: &mut u64) -> (String, u32) {
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(m) = d.next_message().unwrap() {
            match m {
                Incoming::Request(r) => return (r.method, r.headers.cseq().unwrap()),
                Incoming::Data {
                    channel: 0,
                    payload,
                } if payload.get(1).is_some_and(|b| b & 0x80 != 0) => *aus += 1,
                _ => {}
            }
        }
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "client closed early");
        d.push(&buf[..n]);
    }
}

async fn respond(s: &mut TcpStream, cseq: u32, extra: &str) {
    let r = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n");
    s.write_all(r.as_bytes()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_while_idle_keeps_alive_and_applies_backpressure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (resume_tx, resume_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut d = MessageDecoder::new();
        let mut aus = 0;
        for (method, extra) in [
            (
                "OPTIONS",
                "Public: OPTIONS, ANNOUNCE, SETUP, RECORD, GET_PARAMETER\r\n",
            ),
            ("ANNOUNCE", ""),
            (
                "SETUP",
                "Session: s1;timeout=2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
            ),
            ("RECORD", ""),
        ] {
            let (m, cseq) = next_request(&mut s, &mut d, &mut aus).await;
            assert_eq!(m, method);
            respond(&mut s, cseq, extra).await;
        }
        let recording_since = Instant::now();
        // 4 MB of interleaved RTCP-channel data while the client sits idle: this write only
        // completes if the driver keeps reading.
        let frame: Vec<u8> = [b'$', 1, 0x40, 0]
            .into_iter()
            .chain([0u8; 0x4000])
            .collect();
        let flood: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 256)
            .collect();
        tokio::time::timeout(Duration::from_secs(5), s.write_all(&flood))
            .await
            .expect("the client stopped reading while idle")
            .unwrap();
        let (m, cseq) = next_request(&mut s, &mut d, &mut aus).await;
        let keepalive_after = recording_since.elapsed();
        assert_eq!(m, "GET_PARAMETER");
        respond(&mut s, cseq, "").await;
        // Stop reading until the test has seen `send` wait.
        resume_rx.await.unwrap();
        loop {
            let (m, cseq) = next_request(&mut s, &mut d, &mut aus).await;
            respond(&mut s, cseq, "").await;
            if m == "TEARDOWN" {
                break;
            }
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        (keepalive_after, aus)
    });

    let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let mut p = RtspPublisher::connect(&url, &[Track::from(&track)], RtspOptions::default())
        .await
        .unwrap();
    // Idle past the keepalive (session timeout 2 s: keepalive after 1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut slice = vec![0x65];
    slice.resize(1_000_000, 0x5a);
    let slice = Bytes::from(slice);
    let mut sent = 0u64;
    loop {
        let au = AccessUnit {
            pts: sent as i64 * 3000,
            dts: sent as i64 * 3000,
            time_base: TimeBase::RTP_VIDEO,
            key: true,
            nalus: vec![slice.clone()],
        };
        match tokio::time::timeout(Duration::from_millis(500), p.send(&au)).await {
            Ok(r) => {
                r.unwrap();
                sent += 1;
                assert!(sent < 100, "send never waited: memory is not bounded");
            }
            // `send` waits: the server is not reading. (A cancelled send sends nothing.)
            Err(_) => break,
        }
    }
    assert!(sent > 0);
    resume_tx.send(()).unwrap();
    let stats = p.close().await.unwrap();
    assert_eq!(stats.frames, sent);
    let (keepalive_after, aus) = server.await.unwrap();
    assert_eq!(aus, sent);
    assert!(
        keepalive_after >= Duration::from_millis(900)
            && keepalive_after < Duration::from_millis(1800),
        "{keepalive_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closing_mid_stream_is_a_typed_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut d = MessageDecoder::new();
        let mut aus = 0;
        for extra in [
            "",
            "",
            "Session: s1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
            "",
        ] {
            let (_, cseq) = next_request(&mut s, &mut d, &mut aus).await;
            respond(&mut s, cseq, extra).await;
        }
        // Leave without TEARDOWN.
    });
    let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    let url = format!("rtsp://user:pw-not-shown@127.0.0.1:{port}/live");
    let mut p = RtspPublisher::connect(&url, &[Track::from(&track)], RtspOptions::default())
        .await
        .unwrap();
    server.await.unwrap();
    let au = AccessUnit {
        pts: 0,
        dts: 0,
        time_base: TimeBase::RTP_VIDEO,
        key: false,
        nalus: vec![Bytes::from_static(&[0x41, 1, 2, 3])],
    };
    let started = Instant::now();
    let e = loop {
        match p.send(&au).await {
            Ok(()) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => break e,
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no error");
    };
    assert!(
        matches!(&e, mpegcoder_transport::rtsp::RtspError::ConnectionClosed { during, .. } if during == "while recording"),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("pw-not-shown"));
    // Later calls keep reporting it.
    assert!(p.send(&au).await.is_err());
    assert!(p.close().await.is_err());
}

/// The server port given in the client's `Transport` header (`client_port=a-b`).
fn client_rtp_port(transport: &str) -> u16 {
    let ports = transport
        .split(';')
        .find_map(|p| p.strip_prefix("client_port="))
        .unwrap();
    ports.split('-').next().unwrap().parse().unwrap()
}

/// Reads until the next request, answering every interleaved frame with `400 Bad Request`
/// without CSeq, as a server that parses `$` frames as requests does. Returns the method,
/// CSeq and Transport header.
async fn next_request_rejecting_data(
    s: &mut TcpStream,
    d: &mut MessageDecoder,
) -> (String, u32, Option<String>) {
    let mut buf = vec![0u8; 65536];
    loop {
        while let Some(m) = d.next_message().unwrap() {
            match m {
                Incoming::Request(r) => {
                    let t = r.headers.get("Transport").map(str::to_string);
                    return (r.method, r.headers.cseq().unwrap(), t);
                }
                Incoming::Data { .. } => {
                    s.write_all(b"RTSP/1.0 400 Bad Request\r\n\r\n")
                        .await
                        .unwrap();
                }
                Incoming::Response(_) => {}
            }
        }
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            return (String::new(), 0, None);
        }
        d.push(&buf[..n]);
    }
}

fn key_frame(n: i64) -> AccessUnit {
    AccessUnit {
        pts: n * 3000,
        dts: n * 3000,
        time_base: TimeBase::RTP_VIDEO,
        key: true,
        nalus: vec![Bytes::from_static(&[0x65, 1, 2, 3])],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_udp_when_the_server_rejects_interleaved_data() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        // First connection: takes TCP in SETUP, then rejects the interleaved probe.
        let (mut s, _) = listener.accept().await.unwrap();
        let mut d = MessageDecoder::new();
        let mut first = Vec::new();
        loop {
            let (m, cseq, transport) = next_request_rejecting_data(&mut s, &mut d).await;
            if m.is_empty() {
                break;
            }
            first.push((m.clone(), transport));
            let extra = match m.as_str() {
                "SETUP" => "Session: s1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
                _ => "",
            };
            respond(&mut s, cseq, extra).await;
        }
        // Second connection: over UDP; counts the access units that arrive.
        let (mut s, _) = listener.accept().await.unwrap();
        let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rtp_port = rtp.local_addr().unwrap().port();
        let mut d = MessageDecoder::new();
        let mut aus = 0;
        let mut second = Vec::new();
        loop {
            let (m, cseq, transport) = next_request_rejecting_data(&mut s, &mut d).await;
            second.push((m.clone(), transport.clone()));
            let extra = match m.as_str() {
                "SETUP" => {
                    let client = client_rtp_port(transport.as_deref().unwrap());
                    format!(
                        "Session: s2\r\nTransport: RTP/AVP;unicast;client_port={client}-{};\
                         server_port={rtp_port}-{}\r\n",
                        client + 1,
                        rtp_port + 1
                    )
                }
                _ => String::new(),
            };
            if m == "TEARDOWN" {
                // Everything sent before TEARDOWN is in the socket buffer by now.
                let mut buf = [0u8; 2048];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(200), rtp.recv(&mut buf)).await
                {
                    if n > 1 && buf[1] & 0x80 != 0 {
                        aus += 1;
                    }
                }
                respond(&mut s, cseq, &extra).await;
                break;
            }
            respond(&mut s, cseq, &extra).await;
        }
        (first, second, aus)
    });

    let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let opts = RtspOptions::default().with_transport(Transport::Auto);
    let mut p = RtspPublisher::connect(&url, &[Track::from(&track)], opts)
        .await
        .unwrap();
    for n in 0..5 {
        p.send(&key_frame(n)).await.unwrap();
    }
    let stats = p.close().await.unwrap();
    assert_eq!(stats.frames, 5);
    assert_eq!(stats.rtsp().unwrap().transport, Transport::Udp);
    let (first, second, aus) = server.await.unwrap();
    let methods = |v: &[(String, Option<String>)]| -> Vec<String> {
        v.iter().map(|(m, _)| m.clone()).collect()
    };
    // No media went over the rejected connection: it was abandoned during the probe.
    assert_eq!(
        methods(&first),
        ["OPTIONS", "ANNOUNCE", "SETUP", "RECORD"],
        "{first:?}"
    );
    assert!(first[2].1.as_deref().unwrap().starts_with("RTP/AVP/TCP"));
    assert_eq!(
        methods(&second),
        ["OPTIONS", "ANNOUNCE", "SETUP", "RECORD", "TEARDOWN"]
    );
    assert!(second[2].1.as_deref().unwrap().contains("client_port="));
    assert_eq!(aus, 5, "every access unit arrived over UDP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_stops_within_a_second_when_the_server_rejects_interleaved_data() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut d = MessageDecoder::new();
        loop {
            let (m, cseq, _) = next_request_rejecting_data(&mut s, &mut d).await;
            if m.is_empty() {
                break;
            }
            let extra = match m.as_str() {
                "SETUP" => "Session: s1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
                _ => "",
            };
            respond(&mut s, cseq, extra).await;
        }
    });
    let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    let url = format!("rtsp://u:pw-not-shown@127.0.0.1:{port}/live");
    let mut p = RtspPublisher::connect(&url, &[Track::from(&track)], RtspOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    let mut n = 0;
    let e = loop {
        match p.send(&key_frame(n)).await {
            Ok(()) => tokio::time::sleep(Duration::from_millis(33)).await,
            Err(e) => break e,
        }
        n += 1;
        assert!(started.elapsed() < Duration::from_secs(5), "no error");
    };
    assert!(
        matches!(
            &e,
            mpegcoder_transport::rtsp::RtspError::InterleavedRejected { status: 400, .. }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("--transport udp"), "{e}");
    assert!(!format!("{e} {e:?}").contains("pw-not-shown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_teardown_does_not_fail_the_push() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut d = MessageDecoder::new();
        let mut aus = 0;
        loop {
            let (m, cseq) = next_request(&mut s, &mut d, &mut aus).await;
            if m == "TEARDOWN" {
                break;
            }
            let extra = match m.as_str() {
                "SETUP" => "Session: s1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
                _ => "",
            };
            respond(&mut s, cseq, extra).await;
        }
        // Silent from here; the client closes its side after the TEARDOWN timeout.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        aus
    });
    let track = VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap();
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let mut p = RtspPublisher::connect(&url, &[Track::from(&track)], RtspOptions::default())
        .await
        .unwrap();
    for n in 0..3 {
        p.send(&key_frame(n)).await.unwrap();
    }
    let closing = Instant::now();
    let stats = tokio::time::timeout(Duration::from_secs(8), p.close())
        .await
        .expect("close is bounded")
        .unwrap();
    let took = closing.elapsed();
    assert!(stats.rtsp().unwrap().teardown_unanswered);
    assert_eq!(stats.frames, 3);
    // The 2 s TEARDOWN limit, not the 10 s request timeout.
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(server.await.unwrap(), 3);
}
