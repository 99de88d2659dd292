//! `Client` and `AsyncClient` used from inside a tokio runtime, in both flavours: created,
//! started, read and dropped (with and without `terminate` / `close`) on a runtime thread, they
//! must work and never panic. The blocking calls block that thread, which is allowed; nothing
//! may call `Runtime::block_on` or a tokio `blocking_*` method there.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::time::Duration;

use mpegcoder::transport::pull::PullError;
use mpegcoder::{AsyncClient, Client, ClientError, ClientOptions, ClientStatus};
use mpegcoder_protocol_tests::*;

#[path = "../../../tests/tests/pull_common/mod.rs"]
mod pull_common;
use pull_common::*;

/// How many frames each client reads before it is closed or dropped.
const READ: usize = 20;

/// Checks that `hashes` are consecutive source frames starting at a key frame.
fn assert_source_run(clip: &Clip, hashes: &[String], what: &str) {
    assert_eq!(hashes.len(), READ, "{what}");
    let start = clip
        .framemd5
        .iter()
        .position(|h| h == &hashes[0])
        .unwrap_or_else(|| panic!("{what}: the first frame is no source frame"));
    assert_eq!(
        start % clip.spec.gop as usize,
        0,
        "{what}: not at a key frame"
    );
    assert_eq!(
        &clip.framemd5[start..start + hashes.len()],
        hashes,
        "{what}: not the source's frames in order"
    );
}

/// Both clients against a live stream on nginx-rtmp, from inside the current runtime.
async fn pull_both_ways(what: &str) {
    if !require(what, NGINX_TOOLS) {
        return;
    }
    let dir = TempDir::new("client-in-runtime");
    // 5 s: long enough for the clients one after the other.
    let clip = Clip::generate(
        dir.path(),
        ClipSpec {
            frames: 150,
            ..live_spec()
        },
    );
    let nginx = NginxRtmp::start(dir.path());
    let url = nginx.url("rt");
    let publisher = LivePublisher::start(&url, &clip);
    tokio::time::sleep(JOIN_AFTER).await;

    // AsyncClient: read, then close.
    let mut client = AsyncClient::connect(&url, hash_options()).await.unwrap();
    let mut hashes = Vec::new();
    while hashes.len() < READ {
        let frame = tokio::time::timeout(Duration::from_secs(10), client.next_frame())
            .await
            .unwrap_or_else(|_| panic!("{what}: no frame within 10 s"))
            .unwrap()
            .expect("the stream goes on");
        hashes.push(frame.md5_hex().unwrap());
    }
    assert_source_run(&clip, &hashes, &format!("{what}, AsyncClient"));
    let params = client.params().unwrap();
    assert_eq!((params.width, params.height), (320, 240));
    let ring = client.extract_frames(100);
    assert!(!ring.is_empty() && ring.len() <= 30, "{}", ring.len());
    client.close().await.unwrap();

    // AsyncClient dropped mid-stream without `close`.
    let mut dropped = AsyncClient::connect(&url, hash_options()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), dropped.next_frame()).await;
    assert!(matches!(first, Ok(Ok(Some(_)))), "{what}: {first:?}");
    drop(dropped);

    // Client: created, started, read and dropped (without `terminate`) on this thread.
    let mut client = Client::new(&url, hash_options()).unwrap();
    let frames = client.subscribe(64).unwrap();
    client.start().unwrap();
    let params = client.wait_ready(Duration::from_secs(10)).unwrap();
    assert_eq!((params.width, params.height), (320, 240));
    let hashes: Vec<String> = (0..READ)
        .map(|_| {
            let frame = frames
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{what}: Client: {e:?}, {:?}", client.status()));
            frame.md5_hex().unwrap()
        })
        .collect();
    assert_source_run(&clip, &hashes, &format!("{what}, Client"));
    assert!(!client.extract_frames(5).is_empty());
    drop(client);
    // The pipeline has finished: the subscription ends after what it holds.
    assert!(frames.count() <= 64, "more than the channel holds");

    // Client dropped right after start, while connecting.
    let mut early = Client::new(&url, hash_options()).unwrap();
    early.start().unwrap();
    drop(early);

    publisher.join();
}

/// Without any server: failures, and drops while connecting.
async fn refused_and_silent(what: &str) {
    let url = format!("rtmp://127.0.0.1:{}/live/x", free_tcp_port());
    let e = AsyncClient::connect(&url, ClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Pull(PullError::Connect { .. })),
        "{what}: {e:?}"
    );

    let mut client = Client::new(&url, ClientOptions::default()).unwrap();
    client.start().unwrap();
    let status = client.wait_finished(Duration::from_secs(5));
    assert!(
        matches!(
            status,
            ClientStatus::Failed(ClientError::Pull(PullError::Connect { .. }))
        ),
        "{what}: {status:?}"
    );
    drop(client);

    // A server that accepts and never answers: drops while the handshake waits.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "rtmp://127.0.0.1:{}/live/x",
        silent.local_addr().unwrap().port()
    );
    let mut client = Client::new(&url, ClientOptions::default()).unwrap();
    client.start().unwrap();
    let status = client.terminate();
    assert!(
        matches!(status, ClientStatus::Stopped),
        "{what}: {status:?}"
    );
    let connecting = tokio::time::timeout(
        Duration::from_millis(300),
        AsyncClient::connect(&url, ClientOptions::default()),
    )
    .await;
    assert!(connecting.is_err(), "{what}: connected to a silent server?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_work_inside_a_multi_thread_runtime() {
    refused_and_silent("multi_thread").await;
    pull_both_ways("client_in_multi_thread_runtime").await;
}

#[tokio::test]
async fn both_clients_work_inside_a_current_thread_runtime() {
    refused_and_silent("current_thread").await;
    pull_both_ways("client_in_current_thread_runtime").await;
}

#[test]
fn async_connect_outside_a_runtime_is_an_error_not_a_panic() {
    let connect = AsyncClient::connect("rtsp://127.0.0.1:1/x", ClientOptions::default());
    let e = futures::executor::block_on(connect).unwrap_err();
    assert!(matches!(e, ClientError::Worker(_)), "{e:?}");
    let source = std::error::Error::source(&e).map(ToString::to_string);
    assert!(source.is_some_and(|s| s.contains("tokio runtime")), "{e:?}");
}
