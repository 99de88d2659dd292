//! Pulling with `mpegcoder::AsyncClient` on the test's own tokio runtime: a publisher sends a
//! clip live, the client joins mid-stream and takes every frame with `next_frame`. From the
//! first key frame on, every decoded frame must equal the source's (MD5 over the YUV420P
//! planes, computed independently by the ffmpeg CLI), in number and in order.
//! - RTMP through nginx-rtmp: the publisher leaving ends the stream (`Ok(None)`, `Ended`).
//! - RTSP through GStreamer's relay, which never signals the end: once the stream went quiet
//!   the test requests a stop, and the decoder's last (reordered) frames must still come out.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mpegcoder::{AsyncClient, ClientStatus, Transport};
use mpegcoder_protocol_tests::*;

mod pull_common;
use pull_common::*;

/// Takes every frame of `client` until `next_frame` returns `None`. When `stop_when_quiet` is
/// set, requests a stop once `publisher_done` says so and no access unit arrived for a second
/// (a relay that never signals the end). Panics after `timeout`.
async fn take_all(
    client: &mut AsyncClient,
    stop_when_quiet: bool,
    publisher_done: impl Fn() -> bool,
    timeout: Duration,
    what: &str,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut hashes = Vec::new();
    let mut last = (u64::MAX, Instant::now());
    let mut stop_requested = false;
    loop {
        assert!(
            Instant::now() < deadline,
            "{what}: the pull did not finish within {timeout:?}: {:?} {:?}",
            client.status(),
            client.counters()
        );
        // `next_frame` is cancel-safe: a timeout loses no frame.
        match tokio::time::timeout(Duration::from_millis(100), client.next_frame()).await {
            Ok(Ok(Some(frame))) => hashes.push(frame.md5_hex().unwrap()),
            Ok(Ok(None)) => return hashes,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => {}
        }
        let n = client.counters().access_units;
        if n != last.0 {
            last = (n, Instant::now());
        } else if stop_when_quiet
            && !stop_requested
            && publisher_done()
            && last.1.elapsed() >= Duration::from_secs(1)
        {
            client.request_stop();
            stop_requested = true;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_pull_rtmp_round_trip_bit_exact() {
    if !require("async_pull_rtmp_round_trip_bit_exact", NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("async-pull-rtmp");
    let clip = Clip::generate(dir.path(), live_spec());
    assert!(clip.has_bframes());
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("cam");
    let publisher = LivePublisher::start(&url, &clip);
    tokio::time::sleep(JOIN_AFTER).await;

    let mut client = AsyncClient::connect(&url, hash_options())
        .await
        .unwrap_or_else(|e| panic!("{e}; nginx log: {}", nginx.log()));
    let what = "AsyncClient over RTMP";
    let actual = take_all(&mut client, false, || true, Duration::from_secs(15), what).await;
    // nginx tells players when the publisher leaves: the stream ended by itself.
    assert!(
        matches!(client.status(), ClientStatus::Ended),
        "{what}: {:?}",
        client.status()
    );
    let params = client.params().unwrap();
    assert_eq!((params.width, params.height), (320, 240), "{what}");
    assert_eq!((params.protocol, params.codec), ("rtmp", "h264"));
    assert!((params.fps - 30.0).abs() < 1e-9, "{what}: {params:?}");
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
    assert_eq!(c.access_units, actual.len() as u64, "{what}: {c:?}");
    assert_eq!(c.frames_decoded, actual.len() as u64, "{what}: {c:?}");
    assert!(c.key_frames >= 1 && c.decode_errors == 0, "{what}: {c:?}");
    client.close().await.unwrap();
    assert_eq!(publisher.join(), clip.packets.len());
}

#[tokio::test]
async fn async_pull_rtsp_relay_tcp_and_udp_bit_exact_with_the_last_frames_after_a_stop() {
    if !require("async_pull_rtsp_relay", GST_TOOLS) {
        return;
    }
    let dir = TempDir::new("async-pull-rtsp");
    let clip = Clip::generate(dir.path(), live_spec());
    assert!(clip.has_bframes());
    for transport in [Transport::Tcp, Transport::Udp] {
        let what = format!("AsyncClient over RTSP/{transport:?}");
        let server = GstRtspRecord::start_with(
            dir.path(),
            GstOptions {
                relay_mount: Some("/play".into()),
                ..GstOptions::default()
            },
        );
        let publisher = LivePublisher::start(&server.url(None), &clip);
        tokio::time::sleep(JOIN_AFTER).await;
        let options = hash_options();
        let pull = options.pull().clone().with_transport(transport);
        let mut client = AsyncClient::connect(&server.relay_url(), options.with_pull(pull))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}; server log: {}", server.log()));
        let done = || publisher.is_finished();
        let actual = take_all(&mut client, true, done, Duration::from_secs(20), &what).await;
        assert!(
            matches!(client.status(), ClientStatus::Stopped),
            "{what}: {:?}",
            client.status()
        );
        let params = client.params().unwrap();
        assert_eq!((params.width, params.height), (320, 240), "{what}");
        assert_eq!((params.protocol, params.codec), ("rtsp", "h264"));
        assert!(
            actual.len() >= clip.spec.gop as usize,
            "{what}: only {} frames",
            actual.len()
        );
        // Up to the clip's last frame: the ones the decoder held back came out after the stop.
        assert_frames_match(&clip.framemd5, &actual, false, &what);
        let c = client.counters();
        eprintln!(
            "{what}: {} frames from source frame {}, {c:?}",
            actual.len(),
            clip.framemd5.len() - actual.len()
        );
        assert_eq!(c.access_units, actual.len() as u64, "{what}: {c:?}");
        assert_eq!(c.frames_decoded, actual.len() as u64, "{what}: {c:?}");
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
        client.close().await.unwrap();
        assert_eq!(publisher.join(), clip.packets.len());
    }
}
