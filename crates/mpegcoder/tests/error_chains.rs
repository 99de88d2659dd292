//! Every error says its own part once: where another error caused it, that error is its
//! `source()` and its text is not repeated in the error's own message. The command prints the
//! chain joined by ": ", so a repeated cause would show twice on the user's error line.
//!
//! The errors are made the way a user meets them (refused ports, bad URLs and options, files
//! that are not videos) where the public API allows, and built directly for the variants that
//! need a failing peer, disk or thread.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mpegcoder::codec::{CodecError, EncoderConfig, FfmpegError, Rational};
use mpegcoder::transport::h264::VideoTrack;
use mpegcoder::transport::options::InvalidOption;
use mpegcoder::transport::pull::{PullOptions, Puller};
use mpegcoder::transport::rtmp::{RtmpOptions, RtmpPublisher};
use mpegcoder::transport::rtsp::{RtspOptions, RtspPublisher};
use mpegcoder::transport::{MediaError, PublishOptions, Publisher, Track};
use mpegcoder::{
    push, AsyncClient, Client, ClientError, ClientOptions, PacketStream, PushError, PushOptions,
    Server, ServerConfig, ServerError, VideoCodec,
};
use mpegcoder_protocol_tests::*;

/// SPS and PPS of a 320x240 libx264 stream.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

fn track() -> Track {
    Track::H264(VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap())
}

fn annexb_extradata() -> Bytes {
    let mut v = vec![0, 0, 0, 1];
    v.extend_from_slice(SPS);
    v.extend_from_slice(&[0, 0, 0, 1]);
    v.extend_from_slice(PPS);
    Bytes::from(v)
}

/// A loopback port nothing listens on.
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The error and its causes, outermost first.
fn chain(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut texts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        texts.push(c.to_string());
        cause = c.source();
    }
    texts
}

/// Collects errors under a name and checks them all at the end, so one run reports every
/// offender.
#[derive(Default)]
struct Checked {
    seen: Vec<(String, Vec<String>)>,
}

impl Checked {
    fn add(&mut self, what: &str, e: &(dyn Error + 'static)) {
        self.seen.push((what.to_string(), chain(e)));
    }

    fn add_result<T, E: Error + 'static>(&mut self, what: &str, r: Result<T, E>) {
        match r {
            Ok(_) => panic!("{what}: expected an error"),
            Err(e) => self.add(what, &e),
        }
    }

    fn assert_each_part_said_once(&self, at_least: usize) {
        assert!(
            self.seen.len() >= at_least,
            "only {} errors checked",
            self.seen.len()
        );
        let mut offenders = Vec::new();
        for (what, texts) in &self.seen {
            assert!(!texts[0].is_empty(), "{what}: empty message");
            for (i, outer) in texts.iter().enumerate() {
                for inner in texts.iter().skip(i + 1).filter(|t| !t.is_empty()) {
                    if outer.contains(inner.as_str()) {
                        offenders.push(format!("{what}: {outer:?} repeats its cause {inner:?}"));
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "{}", offenders.join("\n"));
    }
}

async fn network_errors(checked: &mut Checked) {
    let port = refused_port();
    let rtsp = format!("rtsp://u:pw@127.0.0.1:{port}/cam");
    let rtmp = format!("rtmp://u:pw@127.0.0.1:{port}/live/cam");
    let tracks = [track()];

    // PublishError: refused, bad scheme, bad URL, bad options.
    for (what, url) in [
        ("Publisher rtsp refused", rtsp.as_str()),
        ("Publisher rtmp refused", rtmp.as_str()),
        ("Publisher http", "http://u:pw@127.0.0.1/x"),
        ("Publisher rtmp without key", "rtmp://127.0.0.1/live"),
        ("Publisher rtsp bad port", "rtsp://127.0.0.1:99999/x"),
    ] {
        let r = Publisher::connect(url, &tracks, PublishOptions::default()).await;
        checked.add_result(what, r);
    }
    let zero = RtmpOptions::default().with_command_timeout(Duration::ZERO);
    let r = Publisher::connect(&rtmp, &tracks, PublishOptions::default().with_rtmp(zero)).await;
    checked.add_result("Publisher rtmp zero timeout", r);

    // RtspError and RtmpError straight from their publishers.
    let r = RtspPublisher::connect(&rtsp, &tracks, RtspOptions::default()).await;
    checked.add_result("RtspPublisher refused", r);
    let r = RtspPublisher::connect("rtsp://", &tracks, RtspOptions::default()).await;
    checked.add_result("RtspPublisher empty URL", r);
    let r = RtmpPublisher::connect(&rtmp, &tracks, RtmpOptions::default()).await;
    checked.add_result("RtmpPublisher refused", r);
    let r = RtmpPublisher::connect("rtmp://h", &tracks, RtmpOptions::default()).await;
    checked.add_result("RtmpPublisher no app", r);
    let r = RtmpPublisher::connect(&rtmp, &tracks, RtmpOptions::default().with_chunk_size(0)).await;
    checked.add_result("RtmpPublisher chunk size 0", r);
    // ConnectError with an I/O source: a name that does not resolve (or a timeout).
    let r = RtspPublisher::connect(
        "rtsp://no-such-host.invalid/x",
        &tracks,
        RtspOptions::default().with_connect_timeout(Duration::from_secs(3)),
    )
    .await;
    checked.add_result("RtspPublisher unresolvable", r);

    // PullError.
    for (what, url) in [
        ("Puller rtsp refused", rtsp.as_str()),
        ("Puller rtmp refused", rtmp.as_str()),
        ("Puller http", "http://u:pw@127.0.0.1/x"),
        ("Puller rtmp without key", "rtmp://127.0.0.1/live"),
    ] {
        let r = Puller::connect(url, PullOptions::default()).await;
        checked.add_result(what, r);
    }
    let r = Puller::connect(
        &rtmp,
        PullOptions::default().with_setup_timeout(Duration::ZERO),
    )
    .await;
    checked.add_result("Puller zero timeout", r);

    // ClientError from the async client.
    let r = AsyncClient::connect(&rtsp, ClientOptions::default()).await;
    checked.add_result("AsyncClient refused", r);
    let r = AsyncClient::connect(&rtmp, ClientOptions::default().with_cache_size(0)).await;
    checked.add_result("AsyncClient cache 0", r);
}

fn blocking_errors(checked: &mut Checked) {
    let port = refused_port();
    let rtsp = format!("rtsp://u:pw@127.0.0.1:{port}/cam");
    let rtmp = format!("rtmp://127.0.0.1:{port}/live/cam");
    let tb = Rational::new(1, 90_000);

    // ServerError: connect refused, no parameter sets, bad rate, libx264 refusing a config.
    let good = PacketStream::new(annexb_extradata(), tb);
    for (what, url) in [
        ("Server rtsp refused", &rtsp),
        ("Server rtmp refused", &rtmp),
    ] {
        checked.add_result(what, Server::open(ServerConfig::packets(good.clone(), url)));
    }
    let empty = PacketStream::new(Bytes::new(), tb);
    checked.add_result(
        "Server no SPS",
        Server::open(ServerConfig::packets(empty, &rtsp)),
    );
    checked.add_result(
        "Server rate 0",
        Server::open(ServerConfig::packets(good, &rtsp).with_rate(0.0)),
    );
    let encoder = EncoderConfig::new(320, 240, Rational::new(30, 1)).with_preset("no-such-preset");
    checked.add_result(
        "Server bad preset",
        Server::open(ServerConfig::encode(encoder, &rtsp)),
    );

    // ClientError from the blocking client.
    checked.add_result(
        "Client bad URL",
        Client::new("rtsp://[::1", ClientOptions::default()),
    );
    checked.add_result(
        "Client target fps",
        Client::new(&rtsp, ClientOptions::default().with_target_fps(-1.0)),
    );
    let mut client = Client::new(&rtsp, ClientOptions::default()).unwrap();
    client.start().unwrap();
    let status = client.wait_finished(Duration::from_secs(5));
    checked.add(
        "Client refused",
        status.error().expect("the connect failed"),
    );
    checked.add_result("Client started twice", client.start());

    // PushError without a server: options and inputs.
    let stop = AtomicBool::new(false);
    let push_with = |o: PushOptions| push(&o, &stop, |_| {});
    checked.add_result(
        "push missing file",
        push_with(PushOptions::new("/nonexistent/in.mp4", &rtsp)),
    );
    checked.add_result(
        "push loop 0",
        push_with(PushOptions::new("/nonexistent/in.mp4", &rtsp).with_loops(0)),
    );
    checked.add_result(
        "push copy with bit rate",
        push_with(
            PushOptions::new("in.mp4", &rtsp)
                .with_codec(VideoCodec::Copy)
                .with_bit_rate(Some(1_000_000)),
        ),
    );
}

/// Errors of variants that need a failing disk, thread or peer: built directly.
fn built_errors(checked: &mut Checked) {
    let io = || Arc::new(std::io::Error::other("disk full"));
    let ffmpeg = || FfmpegError::from_code(-0x4144_4e49); // AVERROR_INVALIDDATA
    let codec = || CodecError::Read {
        url: "in.mp4".into(),
        source: ffmpeg(),
    };
    checked.add(
        "ServerError::Runtime",
        &ServerError::Runtime {
            what: "encoder thread",
            source: io(),
        },
    );
    checked.add("ServerError::Codec", &ServerError::Codec(codec()));
    checked.add(
        "ServerError::Publish(Media)",
        &ServerError::Publish(MediaError::Empty { dts: 3000 }.into()),
    );
    checked.add("PushError::Reader", &PushError::Reader(io()));
    checked.add("PushError::Input", &PushError::Input(codec()));
    checked.add(
        "ClientError::Decoder",
        &ClientError::Decoder {
            url: "rtsp://h/x".into(),
            source: Arc::new(codec()),
        },
    );
    checked.add(
        "ClientError::Record",
        &ClientError::Record {
            url: "rtsp://h/x".into(),
            source: io(),
        },
    );
    checked.add("ClientError::Worker", &ClientError::Worker(io()));
    checked.add(
        "ClientError::InvalidOptions",
        &ClientError::InvalidOptions(InvalidOption::new("cache_size", "must not be zero")),
    );
}

#[test]
fn no_error_repeats_the_text_of_its_source() {
    let mut checked = Checked::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(network_errors(&mut checked));
    blocking_errors(&mut checked);
    built_errors(&mut checked);
    checked.assert_each_part_said_once(35);
}

#[test]
fn push_errors_from_real_inputs_say_each_part_once() {
    if !require("push_errors_from_real_inputs", FFMPEG_TOOLS) {
        return;
    }
    let dir = TempDir::new("error-chains");
    let clip = Clip::generate(dir.path(), ClipSpec::default());
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a video\n").unwrap();
    let mpeg4 = dir.path().join("mpeg4.mp4");
    run(std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=64x48:rate=10", "-frames:v", "3"])
        .args(["-c:v", "mpeg4"])
        .arg(&mpeg4));
    let refused = format!("rtsp://u:pw@127.0.0.1:{}/cam", refused_port());
    let stop = AtomicBool::new(false);
    let mut checked = Checked::default();
    let mp4 = clip.mp4.to_string_lossy().to_string();
    for (what, options) in [
        (
            "push not a video",
            PushOptions::new(notes.to_string_lossy(), &refused),
        ),
        (
            "push mpeg4 copy",
            PushOptions::new(mpeg4.to_string_lossy(), &refused).with_codec(VideoCodec::Copy),
        ),
        (
            "push copy refused",
            PushOptions::new(&mp4, &refused).with_codec(VideoCodec::Copy),
        ),
        ("push libx264 refused", PushOptions::new(&mp4, &refused)),
    ] {
        checked.add_result(what, push(&options, &stop, |_| {}));
    }
    checked.assert_each_part_said_once(4);
}
