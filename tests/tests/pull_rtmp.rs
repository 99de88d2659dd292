//! Pulling over RTMP with `mpegcoder::Client` from nginx-rtmp (`live` application): a
//! publisher sends a clip live, the client joins mid-stream. From the first key frame on, every
//! decoded frame must equal the source's (MD5 over the YUV420P planes, computed independently
//! by the ffmpeg CLI), and the publisher leaving ends the client's stream cleanly.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use mpegcoder::transport::pull::{PullError, PullStep};
use mpegcoder::{Client, ClientError, ClientStatus};
use mpegcoder_protocol_tests::*;

mod pull_common;
use pull_common::*;

/// Joins `url` 0.5 s after the publisher started and checks every frame up to the end.
fn pull_and_check(url: &str, clip: &Clip, what: &str, log: impl Fn() -> String) {
    std::thread::sleep(JOIN_AFTER);
    let mut client = Client::new(url, hash_options()).unwrap();
    let hashes = collect_hashes(client.subscribe(256).unwrap());
    client.start().unwrap();
    let params = client
        .wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{what}: {e}; nginx log: {}", log()));
    assert_eq!((params.width, params.height), (320, 240), "{what}");
    assert_eq!((params.protocol, params.codec), ("rtmp", "h264"));
    // 30 fps from the SPS's timing information.
    assert!((params.fps - 30.0).abs() < 1e-9, "{what}: {params:?}");
    // nginx tells players when the publisher leaves (NetStream.Play.UnpublishNotify).
    let status = client.wait_finished(Duration::from_secs(15));
    assert!(matches!(status, ClientStatus::Ended), "{what}: {status:?}");
    let actual = hashes.join().unwrap();
    let c = client.counters();
    eprintln!(
        "{what}: {} frames from source frame {}, {c:?}",
        actual.len(),
        clip.framemd5.len().saturating_sub(actual.len())
    );
    assert!(
        actual.len() >= clip.spec.gop as usize,
        "{what}: only {} frames",
        actual.len()
    );
    assert_frames_match(&clip.framemd5, &actual, false, what);
    assert_eq!(c.access_units, actual.len() as u64, "{what}: {c:?}");
    assert!(c.key_frames >= 1 && c.decode_errors == 0, "{what}: {c:?}");
    // Stream time covers the frames received: 33.3 ms apart.
    let expected = (actual.len() - 1) as f64 / 30.0;
    assert!(
        (c.stream_duration_s - expected).abs() < 0.05,
        "{what}: {c:?}"
    );
}

#[test]
fn pull_rtmp_round_trip_bit_exact() {
    if !require("pull_rtmp_round_trip_bit_exact", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-rtmp");
    let clip = Clip::generate(dir.path(), live_spec());
    assert!(clip.has_bframes());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("cam");
    let publisher = LivePublisher::start(&url, &clip);
    pull_and_check(&url, &clip, "mpegcoder publisher", || nginx.log());
    assert_eq!(publisher.join(), clip.packets.len());
}

#[test]
fn pull_rtmp_from_an_ffmpeg_publisher() {
    if !require("pull_rtmp_from_an_ffmpeg_publisher", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-rtmp-ffmpeg");
    let clip = Clip::generate(dir.path(), live_spec());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("ff");
    let publisher = FfmpegPublisher::start(&url, &clip);
    pull_and_check(&url, &clip, "ffmpeg publisher", || nginx.log());
    publisher.wait(Duration::from_secs(10));
}

fn failure(url: &str, setup: Duration, idle: Duration) -> (ClientError, Duration) {
    let options = hash_options();
    let mut pull = options.pull().clone();
    pull.setup_timeout = setup;
    pull.idle_timeout = idle;
    let mut client = Client::new(url, options.with_pull(pull)).unwrap();
    let started = Instant::now();
    client.start().unwrap();
    let status = client.wait_finished(Duration::from_secs(30));
    let took = started.elapsed();
    match status {
        ClientStatus::Failed(e) => (e, took),
        other => panic!("{url}: {other:?}"),
    }
}

#[test]
fn pull_rtmp_unknown_stream_ends_with_the_idle_timeout() {
    if !require("pull_rtmp_unknown_stream", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-rtmp-unknown");
    let nginx = NginxRtmp::start(dir.path());
    // nginx accepts `play` of a stream nobody publishes and then sends nothing.
    let idle = Duration::from_millis(1500);
    let (e, took) = failure(&nginx.url("nobody"), Duration::from_secs(5), idle);
    assert!(
        matches!(&e, ClientError::Pull(PullError::NoVideoReceived { after, .. }) if *after == idle),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("no video received within 1.5s"),
        "{e}"
    );
    assert!(
        took >= idle && took < idle + Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn pull_rtmp_streams_without_h264_video_are_refused() {
    if !require("pull_rtmp_streams_without_h264_video", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("pull-rtmp-novideo");
    let nginx = NginxRtmp::start(dir.path());
    let publish = |key: &str, input: &str, codec: &[&str]| {
        std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i", input])
            .args(codec)
            .args(["-f", "flv"])
            .arg(nginx.url(key))
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let idle = Duration::from_millis(1500);
    // Audio only (AAC).
    let mut audio = publish("audio", "sine=duration=4", &["-c:a", "aac"]);
    std::thread::sleep(JOIN_AFTER);
    let (e, _) = failure(&nginx.url("audio"), Duration::from_secs(5), idle);
    assert!(
        matches!(&e, ClientError::Pull(PullError::NoVideo { found, .. }) if found.contains("only audio")),
        "{e:?}"
    );
    assert!(e.to_string().contains("has no H.264 video"), "{e}");
    // Sorenson H.263 video (FLV CodecID 2): refused as soon as the first video tag arrives.
    let mut h263 = publish(
        "h263",
        "testsrc2=size=160x120:rate=15:duration=4",
        &["-c:v", "flv1"],
    );
    std::thread::sleep(JOIN_AFTER);
    let (e, took) = failure(&nginx.url("h263"), Duration::from_secs(5), idle);
    assert!(
        matches!(&e, ClientError::Pull(PullError::NoVideo { found, .. }) if found.contains("Sorenson H.263")),
        "{e:?}"
    );
    assert!(took < idle, "{took:?}");
    for child in [&mut audio, &mut h263] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn pull_rtmp_refused_silent_and_bad_urls() {
    // Nothing listens.
    let url = format!("rtmp://u:hunter2@127.0.0.1:{}/live/x", free_tcp_port());
    let (e, took) = failure(&url, Duration::from_secs(5), Duration::from_secs(5));
    assert!(
        matches!(e, ClientError::Pull(PullError::Connect { .. })),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Accepts TCP and never answers: the handshake times out.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "rtmp://127.0.0.1:{}/live/x",
        silent.local_addr().unwrap().port()
    );
    let setup = Duration::from_millis(700);
    let (e, took) = failure(&url, setup, Duration::from_secs(5));
    assert!(
        matches!(
            e,
            ClientError::Pull(PullError::Timeout {
                step: PullStep::Handshake,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(
        took >= setup && took < setup + Duration::from_secs(2),
        "{took:?}"
    );

    // Not pullable at all: refused before connecting.
    for bad in ["http://host/live/x", "rtmp://host/onlyapp", "no url"] {
        assert!(
            matches!(
                Client::new(bad, hash_options()),
                Err(ClientError::Pull(
                    PullError::UnsupportedScheme { .. } | PullError::InvalidUrl { .. }
                ))
            ),
            "{bad}"
        );
    }
}
