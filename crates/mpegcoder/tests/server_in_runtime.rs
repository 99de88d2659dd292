//! The push side used from inside a tokio runtime, in both flavours: the blocking `Server`
//! (open, `serve_packet_block`, `close`, and dropped without `close`), `AsyncServer` (the same,
//! on the test's own runtime) and `push()` must work there and never panic. The blocking calls
//! block the runtime's thread, which is allowed; nothing may call `Runtime::block_on` or a
//! tokio `blocking_*` method there. What arrived at nginx-rtmp is checked: every frame, with
//! the source's per-frame MD5 for packets passed through.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mpegcoder::codec::{EncodedPacket, EncoderConfig, Rational};
use mpegcoder::{
    push, AsyncServer, FrameRef, PacketStream, PushOptions, Server, ServerConfig, ServerError,
    VideoCodec,
};
use mpegcoder_protocol_tests::*;

/// Playback speed: paced (the server sleeps between frames), four times real time to keep
/// the test short.
const RATE: f64 = 4.0;
/// Frames encoded by the servers that encode.
const ENCODED: usize = 30;

/// A clip, its packets, and the server they go to.
struct Fixture {
    _dir: TempDir,
    clip: Clip,
    nginx: Arc<NginxRtmp>,
    stream: PacketStream,
    packets: Vec<EncodedPacket>,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = TempDir::new(tag);
        let clip = Clip::generate(dir.path(), ClipSpec::default());
        let nginx = Arc::new(NginxRtmp::start(dir.path()));
        let time_base = Rational::new(clip.time_base.0, clip.time_base.1);
        let stream = PacketStream::new(Bytes::from(clip.extradata.clone()), time_base);
        let packets = clip
            .packets
            .iter()
            .map(|p| EncodedPacket {
                data: Bytes::from(p.data.clone()),
                pts: p.pts,
                dts: p.dts,
                key: p.key,
                duration: 0,
                time_base,
            })
            .collect();
        Fixture {
            _dir: dir,
            clip,
            nginx,
            stream,
            packets,
        }
    }

    /// Copy mode to stream `key`, paced at [`RATE`].
    fn packets_config(&self, key: &str) -> ServerConfig {
        ServerConfig::packets(self.stream.clone(), self.nginx.url(key)).with_rate(RATE)
    }

    /// libx264 mode to stream `key`, paced at [`RATE`].
    fn encode_config(&self, key: &str) -> ServerConfig {
        let encoder = EncoderConfig::new(320, 240, Rational::new(30, 1));
        ServerConfig::encode(encoder, self.nginx.url(key)).with_rate(RATE)
    }

    /// Waits (off the runtime's threads, so the sessions on it go on) until nginx closed the
    /// recording of `key`, and returns the MD5 of each of its frames.
    async fn recorded(&self, key: &str) -> Vec<String> {
        let nginx = Arc::clone(&self.nginx);
        let key = key.to_string();
        tokio::task::spawn_blocking(move || {
            framemd5(&nginx.wait_recording(&key, Duration::from_secs(15)))
        })
        .await
        .unwrap()
    }

    /// Asserts that the recording of `key` holds exactly the source's frames.
    async fn assert_bit_exact(&self, key: &str, what: &str) {
        let frames = self.recorded(key).await;
        assert_frames_match(&self.clip.framemd5, &frames, true, what);
    }
}

/// A YUV420P 320x240 picture, different for every `n`.
fn picture(n: usize) -> Vec<u8> {
    let mut data = vec![128u8; 320 * 240 * 3 / 2];
    for (i, b) in data.iter_mut().take(320 * 240).enumerate() {
        *b = ((i % 320 + i / 320 + n * 8) % 256) as u8;
    }
    data
}

/// The blocking `Server`, called on the runtime's thread.
async fn blocking_server(f: &Fixture, flavour: &str) {
    let key = format!("{flavour}-blocking-close");
    let mut server = Server::open(f.packets_config(&key)).unwrap();
    for p in &f.packets {
        server.serve_packet_block(p).unwrap();
    }
    assert!(server.wait_ref() <= Duration::from_millis(50));
    let stats = server.close().unwrap();
    assert_eq!(stats.frames_sent, 60, "{key}");
    f.assert_bit_exact(&key, &key).await;

    // Dropped without close: the session ends in the background, after what was queued.
    let key = format!("{flavour}-blocking-drop");
    let mut server = Server::open(f.packets_config(&key)).unwrap();
    for p in &f.packets {
        server.serve_packet_block(p).unwrap();
    }
    drop(server);
    f.assert_bit_exact(&key, &key).await;

    // Encoding with libx264 on the calling thread.
    let key = format!("{flavour}-blocking-encode");
    let mut server = Server::open(f.encode_config(&key)).unwrap();
    for n in 0..ENCODED {
        server
            .serve_frame_block(FrameRef::Yuv420p(&picture(n)))
            .unwrap();
    }
    let stats = server.close().unwrap();
    assert_eq!(stats.frames_sent, ENCODED as u64, "{key}");
    assert_eq!(f.recorded(&key).await.len(), ENCODED, "{key}");

    // A refused connection is an error, not a panic.
    let refused = format!("rtmp://127.0.0.1:{}/live/x", free_tcp_port());
    let e = Server::open(f.packets_config("x").with_address(refused)).unwrap_err();
    assert!(matches!(e, ServerError::Publish(_)), "{e:?}");
}

/// `AsyncServer` on the test's own runtime.
async fn async_server(f: &Fixture, flavour: &str) {
    let key = format!("{flavour}-async-close");
    let mut server = AsyncServer::open(f.packets_config(&key)).await.unwrap();
    for p in &f.packets {
        server.serve_packet_block(p).await.unwrap();
    }
    let stats = server.close().await.unwrap();
    assert_eq!(stats.frames_sent, 60, "{key}");
    f.assert_bit_exact(&key, &key).await;

    // Dropped without close: the session's task ends it on this runtime, which goes on
    // running while the test waits for the recording.
    let key = format!("{flavour}-async-drop");
    let mut server = AsyncServer::open(f.packets_config(&key)).await.unwrap();
    for p in &f.packets {
        server.serve_packet_block(p).await.unwrap();
    }
    drop(server);
    f.assert_bit_exact(&key, &key).await;

    // Encoding with libx264 on the encoder's own thread.
    let key = format!("{flavour}-async-encode");
    let mut server = AsyncServer::open(f.encode_config(&key)).await.unwrap();
    for n in 0..ENCODED {
        server
            .serve_frame_block(FrameRef::Yuv420p(&picture(n)))
            .await
            .unwrap();
    }
    let stats = server.close().await.unwrap();
    assert_eq!(stats.frames_sent, ENCODED as u64, "{key}");
    assert_eq!(f.recorded(&key).await.len(), ENCODED, "{key}");

    let refused = format!("rtmp://127.0.0.1:{}/live/x", free_tcp_port());
    let e = AsyncServer::open(f.packets_config("x").with_address(refused))
        .await
        .unwrap_err();
    assert!(matches!(e, ServerError::Publish(_)), "{e:?}");
}

/// `push()` (blocking) on the runtime's thread, in both modes.
async fn push_in_runtime(f: &Fixture, flavour: &str) {
    let stop = AtomicBool::new(false);
    let key = format!("{flavour}-push-copy");
    let options = PushOptions::new(f.clip.mp4.to_string_lossy(), f.nginx.url(&key))
        .with_codec(VideoCodec::Copy)
        .with_rate(RATE);
    let summary = push(&options, &stop, |_| {}).unwrap();
    assert_eq!(summary.stats.frames_sent, 60, "{key}");
    f.assert_bit_exact(&key, &key).await;

    let key = format!("{flavour}-push-libx264");
    let options = PushOptions::new(f.clip.mp4.to_string_lossy(), f.nginx.url(&key))
        .with_rate(RATE)
        .with_preset(Some("ultrafast".into()));
    let summary = push(&options, &stop, |_| {}).unwrap();
    assert_eq!(summary.stats.frames_sent, 60, "{key}");
    assert_eq!(f.recorded(&key).await.len(), 60, "{key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_side_works_inside_a_multi_thread_runtime() {
    if !require("server_in_multi_thread_runtime", NGINX_TOOLS) {
        return;
    }
    let f = Fixture::new("server-in-mt-runtime");
    blocking_server(&f, "mt").await;
    async_server(&f, "mt").await;
    push_in_runtime(&f, "mt").await;
}

#[tokio::test]
async fn the_push_side_works_inside_a_current_thread_runtime() {
    if !require("server_in_current_thread_runtime", NGINX_TOOLS) {
        return;
    }
    let f = Fixture::new("server-in-ct-runtime");
    blocking_server(&f, "ct").await;
    async_server(&f, "ct").await;
    push_in_runtime(&f, "ct").await;
}

#[test]
fn async_open_outside_a_runtime_is_an_error_not_a_panic() {
    let stream = PacketStream::new(Bytes::from_static(&[1, 2, 3]), Rational::new(1, 90_000));
    let config = ServerConfig::packets(stream, "rtmp://127.0.0.1:1/live/x");
    let e = futures::executor::block_on(AsyncServer::open(config)).unwrap_err();
    assert!(matches!(e, ServerError::Runtime { .. }), "{e:?}");
    let source = std::error::Error::source(&e).map(ToString::to_string);
    assert!(source.is_some_and(|s| s.contains("tokio runtime")), "{e:?}");
}
