//! No password and no secret query value of a URL ever shows: for generated `rtsp://` and
//! `rtmp://` URLs with `user:password@` and `token=` / `key=` / `pass=` … values, every value of
//! the project that carries the URL and can be made without a server (configurations and
//! options, clients, the errors of every connect to a refused port, push errors) is printed
//! with `Display` and `Debug`, and every log event is captured: neither secret may appear,
//! not even in part or percent-encoded. One real push to nginx-rtmp checks the summary, its
//! JSON and the session's log events the same way.
//!
//! Not checked: the serde form of `ServerConfig` and `PushOptions`. They are plain data meant
//! to cross a thread or process boundary and be used there (mpegCoder's `configDict`), so they
//! carry the address as given, credentials included.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use mpegcoder::codec::{EncoderConfig, Rational};
use mpegcoder::transport::h264::VideoTrack;
use mpegcoder::transport::pull::{PullOptions, Puller};
use mpegcoder::transport::rtmp::{RtmpOptions, RtmpPublisher};
use mpegcoder::transport::rtsp::{RtspOptions, RtspPublisher};
use mpegcoder::transport::{PublishOptions, Publisher, Track};
use mpegcoder::{
    push, AsyncClient, AsyncServer, Client, ClientOptions, PacketStream, PushOptions, Server,
    ServerConfig, ServerStats, VideoCodec,
};
use mpegcoder_protocol_tests::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Every generated password starts with this, every secret query value with [`TOKEN_MARK`]:
/// text that no other part of a message holds, so a leak shows even when only part of the
/// secret or its percent-encoded form leaks.
const PASSWORD_MARK: &str = "Qpw";
const TOKEN_MARK: &str = "Qtk";

/// SPS and PPS of a 320x240 libx264 stream, as Annex B extradata.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

fn annexb_extradata() -> Bytes {
    let mut v = vec![0, 0, 0, 1];
    v.extend_from_slice(SPS);
    v.extend_from_slice(&[0, 0, 0, 1]);
    v.extend_from_slice(PPS);
    Bytes::from(v)
}

fn track() -> Track {
    Track::H264(VideoTrack::new(Bytes::from_static(SPS), Bytes::from_static(PPS)).unwrap())
}

/// Every log event of this test binary, at every level, as text.
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(move || LogWriter(logs))
            .finish();
        // Only this function installs one.
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

struct LogWriter(&'static Mutex<Vec<u8>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_text() -> String {
    let logs = captured_logs().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&logs).into_owned()
}

/// A loopback port nothing listens on.
fn refused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A clip to push, made once (needs the ffmpeg CLI).
fn clip() -> Option<&'static Clip> {
    static CLIP: OnceLock<Option<(TempDir, Clip)>> = OnceLock::new();
    CLIP.get_or_init(|| {
        if !require("redaction: a clip to push", FFMPEG_TOOLS) {
            return None;
        }
        let dir = TempDir::new("redaction");
        let clip = Clip::generate(
            dir.path(),
            ClipSpec {
                frames: 10,
                ..ClipSpec::default()
            },
        );
        Some((dir, clip))
    })
    .as_ref()
    .map(|(_, clip)| clip)
}

/// What was printed, named for the failure message.
#[derive(Default)]
struct Shown {
    texts: Vec<(String, String)>,
}

impl Shown {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.texts.push((what.into(), text.into()));
    }

    /// The value's `Debug` form.
    fn debug(&mut self, what: &str, value: &impl std::fmt::Debug) {
        self.add(format!("{what} (Debug)"), format!("{value:?}"));
    }

    /// An error's `Display`, `Debug`, and each cause's `Display`.
    fn error(&mut self, what: &str, e: &(dyn Error + 'static)) {
        self.add(format!("{what} (Display)"), e.to_string());
        self.add(format!("{what} (Debug)"), format!("{e:?}"));
        let mut cause = e.source();
        while let Some(c) = cause {
            self.add(format!("{what} (cause)"), c.to_string());
            cause = c.source();
        }
    }

    /// The error of `r`, or the `Debug` form of its value.
    fn result<T: std::fmt::Debug, E: Error + 'static>(&mut self, what: &str, r: &Result<T, E>) {
        match r {
            Ok(v) => self.debug(what, v),
            Err(e) => self.error(what, e),
        }
    }

    fn assert_hidden(&self, secrets: &[&str]) -> Result<(), TestCaseError> {
        for (what, text) in &self.texts {
            for s in secrets.iter().chain(&[PASSWORD_MARK, TOKEN_MARK]) {
                prop_assert!(!text.contains(s), "{what} shows {s:?}: {text}");
            }
        }
        Ok(())
    }
}

/// The values made with `url` by the async API (and the errors of connecting to a refused
/// port, which `url` names).
async fn async_values(url: String, shown: &mut Shown) {
    let tracks = [track()];
    shown.result(
        "Publisher::connect",
        &Publisher::connect(&url, &tracks, PublishOptions::default()).await,
    );
    if url.starts_with("rtsp") {
        shown.result(
            "RtspPublisher::connect",
            &RtspPublisher::connect(&url, &tracks, RtspOptions::default()).await,
        );
    } else {
        shown.result(
            "RtmpPublisher::connect",
            &RtmpPublisher::connect(&url, &tracks, RtmpOptions::default()).await,
        );
    }
    shown.result(
        "Puller::connect",
        &Puller::connect(&url, PullOptions::default()).await,
    );
    shown.result(
        "AsyncClient::connect",
        &AsyncClient::connect(&url, ClientOptions::default()).await,
    );
    let config = ServerConfig::packets(
        PacketStream::new(annexb_extradata(), Rational::new(1, 90_000)),
        url.clone(),
    );
    shown.result("AsyncServer::open", &AsyncServer::open(config).await);
}

/// The values made with `url` by the blocking API, without a server.
fn blocking_values(url: &str, shown: &mut Shown) {
    let packets = ServerConfig::packets(
        PacketStream::new(annexb_extradata(), Rational::new(1, 90_000)),
        url,
    );
    shown.debug("ServerConfig::packets", &packets);
    let encode = ServerConfig::encode(EncoderConfig::new(320, 240, Rational::new(30, 1)), url);
    shown.debug("ServerConfig::encode", &encode);
    shown.result("Server::open", &Server::open(packets));

    match Client::new(url, ClientOptions::default()) {
        Ok(client) => {
            shown.debug("Client::new", &client);
            shown.add("Client::url", client.url());
        }
        Err(e) => shown.error("Client::new", &e),
    }

    let stop = AtomicBool::new(false);
    // The URL as the address, and as the input (FFmpeg opens it and is refused).
    for (what, options) in [
        ("PushOptions", PushOptions::new("/nonexistent/in.mp4", url)),
        ("PushOptions as input", PushOptions::new(url, url)),
        (
            "PushOptions copy with bit rate",
            PushOptions::new(url, url)
                .with_codec(VideoCodec::Copy)
                .with_bit_rate(Some(1_000_000)),
        ),
    ] {
        shown.debug(what, &options);
        shown.result(&format!("push with {what}"), &push(&options, &stop, |_| {}));
    }
    if let Some(clip) = clip() {
        for codec in [VideoCodec::Copy, VideoCodec::Libx264] {
            let options = PushOptions::new(clip.mp4.to_string_lossy(), url).with_codec(codec);
            shown.debug("PushOptions with a clip", &options);
            let what = format!("push {codec:?} to a refused port");
            shown.result(&what, &push(&options, &stop, |_| {}));
        }
    }
}

fn password() -> impl Strategy<Value = String> {
    // Printable ASCII except '/', '?' and '#', which would end the authority (a '\' does
    // not: `a_backslash_after_a_numeric_password_prefix_is_hidden`).
    "Qpw[!-~&&[^/?#]]{2,14}"
}

fn query_secret() -> impl Strategy<Value = String> {
    // A query value: printable, without '&' and '#', which would end it.
    "Qtk[!-~&&[^&#]]{2,14}"
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_password_or_secret_query_value_shows(
        rtmp in any::<bool>(),
        user in "[a-z0-9._~-]{0,8}",
        password in password(),
        name in "(token|key|pass|password|pwd|secret|streamKey|auth|sig|access_token)",
        value in query_secret(),
        form in 0..3usize,
    ) {
        captured_logs();
        let port = refused_port();
        let (scheme, path) = if rtmp { ("rtmp", "/live/cam") } else { ("rtsp", "/cam") };
        let url = match form {
            0 => format!("{scheme}://{user}:{password}@127.0.0.1:{port}{path}"),
            1 => format!(
                "{scheme}://{user}:{password}@127.0.0.1:{port}{path}?a=1&{name}={value}"
            ),
            _ => format!("{scheme}://127.0.0.1:{port}{path}?{name}={value}&b=2"),
        };
        let mut shown = Shown::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async_values(url.clone(), &mut shown));
        drop(runtime);
        blocking_values(&url, &mut shown);
        shown.add("log events", logs_text());
        shown.assert_hidden(&[&password, &value])?;
    }
}

/// A real push with credentials and a secret query value: the summary (`Debug`, JSON), the
/// final statistics' JSON and the session's log events hide both.
#[test]
fn a_real_push_hides_credentials_in_its_summary_and_logs() {
    if !require("redaction: a real push", NGINX_TOOLS) {
        return;
    }
    captured_logs();
    let clip = clip().expect("the ffmpeg CLI is there");
    let dir = TempDir::new("redaction-push");
    let nginx = NginxRtmp::start(dir.path());
    let (password, token) = ("Qpw:s3cr@t!", "Qtk-t0ken");
    let url = format!(
        "rtmp://alice:{password}@127.0.0.1:{}/live/cam?token={token}&x=1",
        nginx.port
    );
    let options = PushOptions::new(clip.mp4.to_string_lossy(), &url)
        .with_codec(VideoCodec::Copy)
        .with_pace(false);
    let mut last: Option<ServerStats> = None;
    let summary = push(&options, &AtomicBool::new(false), |s| {
        last = Some(s.clone())
    })
    .unwrap();
    assert_eq!(summary.stats.frames_sent, 10);
    assert_eq!(
        summary.url,
        format!("rtmp://127.0.0.1:{}/live/cam?token=***&x=1", nginx.port)
    );
    let flv = nginx.wait_recording("cam", Duration::from_secs(10));
    assert_eq!(framemd5(&flv), clip.framemd5);

    let mut shown = Shown::default();
    shown.debug("PushSummary", &summary);
    shown.add("PushSummary JSON", serde_json::to_string(&summary).unwrap());
    let stats = last.expect("progress was reported");
    shown.add("ServerStats JSON", serde_json::to_string(&stats).unwrap());
    let logs = logs_text();
    assert!(logs.contains("publishing"), "{logs}");
    shown.add("log events", logs);
    shown.assert_hidden(&[password, token]).unwrap();
}

/// A password whose text before a backslash ends in `:` and digits is hidden whole in
/// `ServerConfig`'s and `PushOptions`' `Debug` (a backslash once ended the authority there).
#[test]
fn a_backslash_after_a_numeric_password_prefix_is_hidden() {
    let url = "rtsp://user:12\\Qpw@127.0.0.1:8554/cam";
    let config = ServerConfig::packets(
        PacketStream::new(annexb_extradata(), Rational::new(1, 90_000)),
        url,
    );
    let mut shown = Shown::default();
    shown.debug("ServerConfig", &config);
    shown.debug("PushOptions", &PushOptions::new("in.mp4", url));
    shown.assert_hidden(&["12\\Qpw"]).unwrap();
}
