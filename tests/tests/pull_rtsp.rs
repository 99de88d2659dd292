//! Pulling over RTSP with `mpegcoder::Client` from GStreamer's RTSP server: a publisher RECORDs
//! a clip live into `/record`, the server relays it to the PLAY mount `/play`, and the client
//! joins mid-stream. From the first key frame on, every decoded frame must equal the source's
//! (MD5 over the YUV420P planes, computed independently by the ffmpeg CLI for the source).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mpegcoder::transport::pull::PullError;
use mpegcoder::{Client, ClientError, ClientStatus, Transport};
use mpegcoder_protocol_tests::*;

mod pull_common;
use pull_common::*;

fn relay_server(dir: &std::path::Path) -> GstRtspRecord {
    GstRtspRecord::start_with(
        dir,
        GstOptions {
            relay_mount: Some("/play".into()),
            ..GstOptions::default()
        },
    )
}

/// Joins `/play` 0.5 s after the publisher started, collects every frame, and checks them.
fn pull_and_check(
    server: &GstRtspRecord,
    clip: &Clip,
    transport: Transport,
    publisher_done: impl Fn() -> bool,
    what: &str,
) -> ClientStatus {
    std::thread::sleep(JOIN_AFTER);
    let options = hash_options();
    let pull = options.pull().clone().with_transport(transport);
    let mut client = Client::new(&server.relay_url(), options.with_pull(pull)).unwrap();
    let hashes = collect_hashes(client.subscribe(256).unwrap());
    client.start().unwrap();
    let params = client
        .wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{what}: {e}; server log: {}", server.log()));
    assert_eq!((params.width, params.height), (320, 240), "{what}");
    assert_eq!((params.protocol, params.codec), ("rtsp", "h264"));
    // GStreamer's relay never signals the end: stop once nothing arrived for a second after
    // the publisher left.
    let status = finish_when_quiet(
        &mut client,
        publisher_done,
        Duration::from_secs(1),
        Duration::from_secs(20),
    );
    assert!(
        matches!(status, ClientStatus::Stopped),
        "{what}: {status:?}"
    );
    let actual = hashes.join().unwrap();
    assert!(
        actual.len() >= clip.spec.gop as usize,
        "{what}: only {} frames",
        actual.len()
    );
    assert_frames_match(&clip.framemd5, &actual, false, what);
    let c = client.counters();
    eprintln!(
        "{what}: {} frames from source frame {}, {c:?}",
        actual.len(),
        clip.framemd5.len() - actual.len()
    );
    assert_eq!(c.frames_decoded, actual.len() as u64, "{what}: {c:?}");
    assert_eq!(c.access_units, actual.len() as u64, "{what}: {c:?}");
    assert!(c.key_frames >= 1 && c.decode_errors == 0, "{what}: {c:?}");
    // The ring kept the newest 30 frames: the clip's last ones.
    let ring: Vec<String> = client
        .extract_frames(1000)
        .iter()
        .map(|f| f.md5_hex().unwrap())
        .collect();
    assert_eq!(ring.len(), 30.min(actual.len()));
    assert_eq!(
        &ring[..],
        &clip.framemd5[clip.framemd5.len() - ring.len()..]
    );
    status
}

#[test]
fn pull_rtsp_round_trip_tcp_and_udp_bit_exact() {
    if !require("pull_rtsp_round_trip_tcp_and_udp_bit_exact", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-rtsp");
    let clip = Clip::generate(dir.path(), live_spec());
    assert!(clip.has_bframes());
    for transport in [Transport::Tcp, Transport::Udp] {
        let server = relay_server(dir.path());
        let publisher = LivePublisher::start(&server.url(None), &clip);
        let done = || publisher.is_finished();
        pull_and_check(&server, &clip, transport, done, &format!("{transport:?}"));
        assert_eq!(publisher.join(), clip.packets.len());
    }
}

#[test]
fn pull_rtsp_from_an_ffmpeg_publisher() {
    if !require("pull_rtsp_from_an_ffmpeg_publisher", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-rtsp-ffmpeg");
    let clip = Clip::generate(dir.path(), live_spec());
    let server = relay_server(dir.path());
    let publisher = std::sync::Mutex::new(Some(FfmpegPublisher::start(&server.url(None), &clip)));
    let done = || {
        let mut p = publisher.lock().unwrap();
        match p.as_mut().map(FfmpegPublisher::is_finished) {
            Some(true) | None => {
                if let Some(p) = p.take() {
                    p.wait(Duration::from_secs(1));
                }
                true
            }
            Some(false) => false,
        }
    };
    pull_and_check(&server, &clip, Transport::Tcp, done, "ffmpeg publisher");
}

#[test]
fn pull_rtsp_errors_name_the_url_and_come_within_the_timeouts() {
    if !require("pull_rtsp_errors", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-rtsp-errors");
    let server = relay_server(dir.path());
    let run = |url: &str, setup: Duration| -> (ClientError, Duration) {
        let options = hash_options();
        let mut pull = options.pull().clone();
        pull.connect_timeout = setup;
        pull.setup_timeout = setup;
        pull.idle_timeout = setup;
        let mut client = Client::new(url, options.with_pull(pull)).unwrap();
        let started = Instant::now();
        client.start().unwrap();
        let status = client.wait_finished(Duration::from_secs(30));
        let took = started.elapsed();
        match status {
            ClientStatus::Failed(e) => (e, took),
            other => panic!("{url}: {other:?}"),
        }
    };

    // A path the server does not serve: 404 to DESCRIBE.
    let url = format!("rtsp://u:hunter2@127.0.0.1:{}/no/such/path", server.port);
    let (e, took) = run(&url, Duration::from_secs(5));
    assert!(
        matches!(
            e,
            ClientError::Pull(PullError::RtspStatus { status: 404, .. })
        ),
        "{e:?}"
    );
    let shown = e.to_string();
    assert!(
        shown.contains("/no/such/path") && shown.contains("404"),
        "{shown}"
    );
    assert!(!format!("{shown} {e:?}").contains("hunter2"), "{shown}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The relay mount before anyone publishes: GStreamer holds DESCRIBE until data flows;
    // the client gives up after the longer of the connect and setup timeouts (both 0.7 s).
    let (e, took) = run(&server.relay_url(), Duration::from_millis(700));
    assert!(
        matches!(&e, ClientError::Pull(PullError::Timeout { after, .. }) if *after == Duration::from_millis(700)),
        "{e:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Nothing listens: refused at once.
    let url = format!("rtsp://127.0.0.1:{}/x", free_tcp_port());
    let (e, took) = run(&url, Duration::from_secs(5));
    assert!(
        matches!(e, ClientError::Pull(PullError::Connect { .. })),
        "{e:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}
